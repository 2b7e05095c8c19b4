"""Real cameras behind the small `Camera` interface: UVC devices through OpenCV and Intel RealSense through
pyrealsense2, the `CameraArgs` config block (`--cameras.*` flags) and `make_cameras`, the one factory both arms use.

Every camera returns RGB uint8 HWC frames of the configured (height, width). cv2 and pyrealsense2 are imported
lazily, so `robot_common` imports without them. Synchronized reads of several cameras: `robot_common.camera_sync`.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import logging
import os
import sys

import numpy as np

from robot_common.camera_sync import grab  # noqa: F401  (re-exported: `from robot_common.cameras import grab`)
from robot_common.interface import Camera
from robot_common.interface import SimCamera

logger = logging.getLogger("robot_common.cameras")

BACKENDS = ("opencv", "realsense")
LIST_UVC = "list cameras with `v4l2-ctl --list-devices` or `ls -l /dev/v4l/by-id/`"
LIST_RS = "list RealSense serials with `rs-enumerate-devices -s`"


def _resize(img: np.ndarray, hw) -> np.ndarray:
    if img.shape[:2] == tuple(hw):
        return img
    import cv2

    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def _live_api(cv2) -> int:
    return cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY


def _video_nodes() -> list[str]:
    return sorted(glob.glob("/dev/video*")) + sorted(glob.glob("/dev/v4l/by-id/*"))


class OpenCVCamera(Camera):
    """A UVC camera (or, for tests and replays, a video file, which loops) read through OpenCV.

    `device`: an index (0, "0"), a device path (/dev/video4) or a stable /dev/v4l/by-id/... link. Frames of a
    different size than `hw` are resized. `flag` names the option the device came from, for error messages."""

    def __init__(self, device: int | str = 0, hw=(480, 640), fps: int = 30, *, flag: str = "--cameras.base"):
        import cv2

        self._cv2, self.hw, self.flag = cv2, tuple(hw), flag
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.device, self._is_file = device, False
        if isinstance(device, str):
            if not os.path.exists(device):
                raise FileNotFoundError(
                    f"{flag}={device!r}: no such device or file; {LIST_UVC} (present: {_video_nodes() or 'none'})"
                )
            real = os.path.realpath(device)  # /dev/v4l/by-id/... -> /dev/videoN
            self._is_file = not real.startswith("/dev/")
            self._cap = cv2.VideoCapture(real) if self._is_file else cv2.VideoCapture(real, _live_api(cv2))
        else:
            self._cap = cv2.VideoCapture(device, _live_api(cv2))
        if not self._cap.isOpened():
            raise RuntimeError(
                f"{flag}={device!r}: camera could not be opened (busy, missing, or no permission: add yourself to "
                f"the 'video' group); {LIST_UVC} (present: {_video_nodes() or 'none'})"
            )
        if not self._is_file:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.hw[0])
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.hw[1])
            self._cap.set(cv2.CAP_PROP_FPS, fps)
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the newest frame, not a backlog
            if not self._cap.grab():
                self.close()
                raise RuntimeError(
                    f"{flag}={device!r}: opened but delivered no frame (UVC cameras expose two /dev/video nodes; "
                    f"the second is metadata only, use the first); {LIST_UVC}"
                )

    def read(self) -> np.ndarray:
        ok, frame = self._cap.read()
        if not ok and self._is_file:  # a video file loops (replays, tests)
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            raise RuntimeError(f"{self.flag}={self.device!r}: camera read failed (unplugged?); {LIST_UVC}")
        code = self._cv2.COLOR_GRAY2RGB if frame.ndim == 2 else self._cv2.COLOR_BGR2RGB
        return _resize(self._cv2.cvtColor(frame, code), self.hw)

    def close(self) -> None:
        self._cap.release()


def connected_realsense_serials(rs=None) -> list[str]:
    """Serial numbers of the connected RealSense devices."""
    rs = rs or _import_rs()
    return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]


def _import_rs():
    try:
        return importlib.import_module("pyrealsense2")
    except ImportError as e:
        raise ImportError(
            "--cameras.backend realsense needs pyrealsense2: `make setup-venv` installs it (x86_64); on ARM build "
            "librealsense with -DBUILD_PYTHON_BINDINGS=ON"
        ) from e


class RealSenseCamera(Camera):
    """The color stream (rgb8 at hw and fps) of an Intel RealSense. `serial` picks the device; None = the only
    connected one. `rs` replaces the pyrealsense2 module (tests); `timeout_ms` bounds each frame wait."""

    def __init__(
        self,
        serial: str | None = None,
        hw=(480, 640),
        fps: int = 30,
        *,
        flag: str = "--cameras.base",
        rs=None,
        timeout_ms: int = 1000,
    ):
        self._rs = rs = rs or _import_rs()
        self.hw, self.flag, self._timeout_ms = tuple(hw), flag, int(timeout_ms)
        connected = connected_realsense_serials(rs)
        if serial is None:
            if len(connected) != 1:
                raise RuntimeError(
                    f"{flag}: no serial given and {len(connected)} RealSense devices are connected {connected}; "
                    f"pass {flag} SERIAL ({LIST_RS})"
                )
            serial = connected[0]
        elif serial not in connected:
            raise RuntimeError(
                f"{flag}={serial!r}: no RealSense with this serial is connected; connected serials: {connected} "
                f"({LIST_RS}; check the USB3 cable)"
            )
        self.serial = serial
        config = rs.config()
        config.enable_device(serial)
        config.enable_stream(rs.stream.color, self.hw[1], self.hw[0], rs.format.rgb8, int(fps))
        self._pipeline = rs.pipeline()
        try:
            self._pipeline.start(config)
        except RuntimeError as e:
            raise RuntimeError(
                f"{flag}={serial!r}: could not start the color stream {self.hw[1]}x{self.hw[0]} @ {fps} fps ({e}); "
                "supported modes: `rs-enumerate-devices -s` (typical: 640x480 / 1280x720 at 15 or 30 fps)"
            ) from e

    def read(self) -> np.ndarray:
        try:
            frames = self._pipeline.wait_for_frames(self._timeout_ms)
        except RuntimeError as e:
            raise RuntimeError(f"{self.flag}={self.serial!r}: no frame within {self._timeout_ms} ms ({e})") from e
        color = frames.get_color_frame()
        if not color:
            raise RuntimeError(f"{self.flag}={self.serial!r}: the frame set has no color frame")
        img = np.asanyarray(color.get_data())
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise RuntimeError(f"{self.flag}: expected an rgb8 HxWx3 frame, got {img.shape} {img.dtype}")
        return _resize(np.array(img, copy=True), self.hw)  # copy: the SDK reuses the frame's buffer

    def close(self) -> None:
        self._pipeline.stop()


@dataclasses.dataclass
class CameraArgs:
    """The two cameras of an arm (`--cameras.*`)."""

    backend: str = "opencv"
    """opencv (any UVC camera, including a RealSense's color node) or realsense (pyrealsense2, picked by serial)."""
    base: str = "0"
    """Base (third-person) camera: OpenCV index, /dev/videoN or /dev/v4l/by-id/... path; RealSense serial, or
    'auto' for the only connected RealSense."""
    wrist: str = "2"
    """Wrist camera, as --cameras.base."""
    base_backend: str | None = None
    """Backend of the base camera only (mixing, e.g. a RealSense base and a UVC wrist camera); default: backend."""
    wrist_backend: str | None = None
    """Backend of the wrist camera only; default: backend."""
    height: int = 480
    """Frame height recorded and sent to the policy (frames of another size are resized)."""
    width: int = 640
    """Frame width."""
    fps: int = 30
    """Camera frame rate (RealSense needs a supported mode: 6/15/30/60)."""

    def __post_init__(self):
        for field in ("height", "width", "fps"):
            if int(getattr(self, field)) <= 0:
                raise ValueError(f"--cameras.{field} must be > 0, got {getattr(self, field)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"--cameras.backend {self.backend!r}: choose one of {list(BACKENDS)}")
        for name in ("base", "wrist"):
            backend = self.backend_of(name)
            if backend not in BACKENDS:
                raise ValueError(f"--cameras.{name}-backend {backend!r}: choose one of {list(BACKENDS)}")

    def check_devices(self) -> None:
        """Check the device selection against the backends (real cameras only; --sim ignores it)."""
        for name in ("base", "wrist"):
            backend, value = self.backend_of(name), str(getattr(self, name)).strip()
            if not value:
                raise ValueError(f"--cameras.{name} is empty; {LIST_RS if backend == 'realsense' else LIST_UVC}")
            if backend == "realsense" and value.isdigit() and len(value) <= 2:
                raise ValueError(
                    f"--cameras.{name}={value!r} looks like an OpenCV index, but the {name} camera uses the realsense "
                    f"backend: pass its serial number ({LIST_RS}) or 'auto' (the only connected RealSense)"
                )
        if (
            all(self.backend_of(n) == "realsense" for n in ("base", "wrist"))
            and self.base.strip() == self.wrist.strip()
        ):
            raise ValueError(
                f"--cameras.base and --cameras.wrist select the same RealSense ({self.base!r}); pass two serials"
            )

    @property
    def hw(self) -> tuple[int, int]:
        return (int(self.height), int(self.width))

    def backend_of(self, name: str) -> str:
        return getattr(self, f"{name}_backend") or self.backend


def open_camera(name: str, args: CameraArgs, *, rs=None) -> Camera:
    """One real camera (`name`: base or wrist) as configured by `args`."""
    value, flag = str(getattr(args, name)).strip(), f"--cameras.{name}"
    if args.backend_of(name) == "realsense":
        return RealSenseCamera(None if value == "auto" else value, args.hw, args.fps, flag=flag, rs=rs)
    return OpenCVCamera(value, args.hw, args.fps, flag=flag)


def make_cameras(robot, args: CameraArgs, sim: bool) -> dict[str, Camera]:
    """{"base", "wrist"} cameras: simulated frames that follow the robot's state with `sim`, else the real ones
    (if the second fails to open, the first is closed before the error propagates)."""
    if sim:
        return {"base": SimCamera(robot, args.hw, seed=1), "wrist": SimCamera(robot, args.hw, seed=2)}
    args.check_devices()
    cameras: dict[str, Camera] = {}
    try:
        for name in ("base", "wrist"):
            cameras[name] = open_camera(name, args)
    except BaseException:
        close_cameras(cameras)
        raise
    return cameras


def close_cameras(cameras: dict[str, Camera]) -> None:
    """Release every camera that has a `close()`. A failing close is logged with its camera and the others are
    still closed (this runs on shutdown and error paths, where raising would hide the original error)."""
    for name, cam in cameras.items():
        try:
            getattr(cam, "close", lambda: None)()
        except Exception:
            logger.exception("camera %r failed to close", name)
