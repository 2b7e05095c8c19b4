"""The recorder's own bounded frame queue between the control loop and a LeRobot dataset.

The control loop `put`s each frame (a copy: camera drivers may reuse their buffers) and goes on; one writer thread
hands the frames, in order, to the dataset's public `LeRobotDataset.add_frame`, where the images go to LeRobot's
writers (its streaming video encoder, or its PNG writer threads: `wait_images` waits for those after every frame,
so that the backlog is the frames in this queue). The queue's size is the recorder's own: when it is full, `put`
waits for room (backpressure, never a dropped frame) and returns how long it waited. A failure of `add_frame` in
the thread is kept (`error`) and the frames after it are skipped; the recorder raises it in the control loop.
`check_complete` checks a saved episode on disk: every frame in its data and in each of its videos.
"""

from __future__ import annotations

import pathlib
import queue
import threading
import time

_STOP = object()


class FrameQueueFull(RuntimeError):
    """The writer took no frame out of the full queue within the timeout."""


class FrameWriter:
    def __init__(self, dataset, maxsize: int, *, wait_images: bool = False, name: str = "episode-writer"):
        self.dataset, self.wait_images = dataset, wait_images
        self.queue: queue.Queue = queue.Queue(maxsize)
        self.error: BaseException | None = None
        self.written = 0
        """Frames handed to `add_frame` (and, with `wait_images`, written as images)."""
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Frames waiting in the queue."""
        return self.queue.qsize()

    def _run(self) -> None:
        while True:
            frame = self.queue.get()
            if frame is _STOP:
                return
            if self.error is not None or self._cancelled.is_set():
                continue
            try:
                self.dataset.add_frame(frame)
                if self.wait_images and self.dataset.image_writer is not None:
                    self.dataset.image_writer.wait_until_done()
                self.written += 1
            except BaseException as e:  # kept, raised in the control loop
                self.error = e

    def put(self, frame: dict, timeout: float) -> float:
        """Queue a frame; if the queue is full, wait for room (at most `timeout` s). Returns the seconds waited."""
        try:
            self.queue.put_nowait(frame)
            return 0.0
        except queue.Full:
            pass
        t0 = time.monotonic()
        try:
            self.queue.put(frame, timeout=timeout)
        except queue.Full:
            raise FrameQueueFull(f"the episode writer made no progress for {timeout:.0f} s (queue full)") from None
        return time.monotonic() - t0

    def finish(self) -> None:
        """Wait until every queued frame has been handed to the dataset, then stop the thread."""
        self.queue.put(_STOP)
        self._thread.join()

    def cancel(self) -> None:
        """Stop the thread without handing it the queued frames (the episode is dropped)."""
        self._cancelled.set()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.queue.put(_STOP)
        self._thread.join()


def _video_frames(path: pathlib.Path) -> int:
    import av

    with av.open(str(path)) as container:
        return container.streams.video[0].frames


def check_complete(root: pathlib.Path, data_frames: int, frames: int, video_keys: list[str]) -> None:
    """Every frame the control loop recorded is in the episode's data and in each of its videos (a single-episode
    dataset: every video file under videos/<key>/ is this episode's)."""
    if data_frames != frames:
        raise RuntimeError(f"the episode has {data_frames} of its {frames} frames; the episode is not saved")
    for key in video_keys:
        n = sum(_video_frames(f) for f in sorted((root / "videos" / key).rglob("*.mp4")))
        if n != frames:
            raise RuntimeError(
                f"the video encoder dropped {frames - n} frames of {key} (its video has {n} of {frames}); "
                "the episode is not saved"
            )
