"""USB / UVC cameras through OpenCV (RealSense color streams also appear as UVC devices)."""

from __future__ import annotations

import numpy as np

from robot_common.interface import Camera


class OpenCVCamera(Camera):
    def __init__(self, index: int, hw=(480, 640), fps: int = 30):
        import cv2

        self._cv2 = cv2
        self._cap = cv2.VideoCapture(index)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, hw[0])
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, hw[1])
        self._cap.set(cv2.CAP_PROP_FPS, fps)
        if not self._cap.isOpened():
            raise RuntimeError(f"camera {index} could not be opened; check `ls /dev/video*` and the --*-index flags")

    def read(self) -> np.ndarray:
        ok, frame = self._cap.read()
        if not ok:
            raise RuntimeError("camera read failed (unplugged?)")
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)
