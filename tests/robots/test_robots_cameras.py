"""Cameras: OpenCV on a real video file, RealSense against the real pyrealsense2 module (no device on this machine)
and a fake pipeline, the concurrent grab, make_cameras dispatch and the --cameras.* flags."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest

from robot_common import cameras as cams
from robot_common.camera_sync import grab
from robot_common.cameras import CameraArgs
from robot_common.cameras import OpenCVCamera
from robot_common.cameras import RealSenseCamera
from robot_common.cameras import make_cameras
from robot_common.interface import Camera
from robot_common.interface import SimCamera

rs = pytest.importorskip("pyrealsense2")

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]  # RGB: red, green, blue, yellow


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 64x96 mp4 (h264 through imageio-ffmpeg): frame k is COLORS[k] with a white square top-left."""
    import imageio.v2 as imageio

    path = tmp_path_factory.mktemp("cam") / "cam.mp4"
    frames = []
    for c in COLORS:
        f = np.zeros((64, 96, 3), np.uint8)
        f[:] = c
        f[:16, :16] = 255
        frames.append(f)
    imageio.mimwrite(path, frames, fps=10, macro_block_size=16)
    return str(path)


def test_opencv_reads_a_video_file_as_rgb_resized_and_loops(video):
    cam = OpenCVCamera(video, hw=(32, 48))
    imgs = [cam.read() for _ in range(len(COLORS) + 1)]
    for img, color in zip(imgs, COLORS + COLORS[:1], strict=True):
        assert img.shape == (32, 48, 3) and img.dtype == np.uint8
        centre = img[16:, 16:].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(centre, color, atol=30)  # RGB order, not OpenCV's BGR
        assert img[:6, :6].min() > 200  # the white square is still top-left (no flip / transpose)
    cam.close()
    native = OpenCVCamera(video, hw=(64, 96)).read()
    assert native.shape == (64, 96, 3)


def test_opencv_follows_a_by_id_style_symlink(video, tmp_path):
    link = tmp_path / "usb-Cam_123-video-index0"  # like /dev/v4l/by-id/...: resolved before opening
    link.symlink_to(video)
    img = OpenCVCamera(str(link), hw=(32, 48)).read()
    np.testing.assert_allclose(img[16:, 16:].reshape(-1, 3).mean(0), COLORS[0], atol=30)


def test_opencv_bad_device_errors_name_the_flag_and_how_to_list():
    with pytest.raises(FileNotFoundError, match=r"--cameras\.wrist='/dev/video_nope'.*v4l2-ctl --list-devices"):
        OpenCVCamera("/dev/video_nope", flag="--cameras.wrist")
    with pytest.raises(RuntimeError, match=r"--cameras\.base=57: camera could not be opened.*/dev/v4l/by-id"):
        OpenCVCamera("57", flag="--cameras.base")


def test_realsense_real_module_missing_serial_lists_connected_devices():
    assert cams.connected_realsense_serials() == []  # no RealSense on this machine
    with pytest.raises(RuntimeError, match=r"--cameras\.wrist='123456'.*connected serials: \[\].*rs-enumerate"):
        RealSenseCamera("123456", flag="--cameras.wrist")
    with pytest.raises(RuntimeError, match=r"no serial given and 0 RealSense devices are connected \[\]"):
        RealSenseCamera(None)


def test_realsense_contract_every_name_the_class_uses_exists_in_pyrealsense2():
    for path in [
        "context",
        "context.query_devices",
        "device.get_info",
        "camera_info.serial_number",
        "config",
        "config.enable_device",
        "config.enable_stream",
        "stream.color",
        "format.rgb8",
        "pipeline",
        "pipeline.start",
        "pipeline.stop",
        "pipeline.wait_for_frames",
        "composite_frame.get_color_frame",
        "frame.get_data",
    ]:
        obj = rs
        for part in path.split("."):
            assert hasattr(obj, part), f"pyrealsense2 has no {path}"
            obj = getattr(obj, part)
    # The exact calls, with the real types (resolving needs a device, building the config does not).
    config = rs.config()
    config.enable_device("123456789012")
    config.enable_stream(rs.stream.color, 640, 480, rs.format.rgb8, 30)
    assert "timeout_ms" in rs.pipeline.wait_for_frames.__doc__


class _FakeDevice:
    def __init__(self, serial):
        self.serial = serial

    def get_info(self, key):
        assert key == rs.camera_info.serial_number
        return self.serial


class _FakeFrame:
    def __init__(self, buf):
        self._buf = buf

    def __bool__(self):
        return True

    def get_data(self):
        return memoryview(self._buf)  # like rs.frame: a buffer the SDK reuses for the next frame


class _FakeFrames:
    def __init__(self, buf):
        self._buf = buf

    def get_color_frame(self):
        return _FakeFrame(self._buf)


class _FakePipeline:
    instances: list = []

    def __init__(self):
        self.config, self.started, self.stopped, self.buf, self.timeouts = None, False, False, None, []
        _FakePipeline.instances.append(self)

    def start(self, config):
        assert isinstance(config, rs.config)  # the real config object, filled through the real API
        self.config, self.started = config, True

    def stop(self):
        self.stopped = True

    def wait_for_frames(self, timeout_ms):
        self.timeouts.append(timeout_ms)
        if self.buf is None:
            raise RuntimeError("Frame didn't arrive within 1000")
        return _FakeFrames(self.buf)


def _fake_rs(serials):
    """The real pyrealsense2 types (config, stream, format, camera_info) with a fake device list and pipeline."""
    _FakePipeline.instances = []
    ctx = types.SimpleNamespace(query_devices=lambda: [_FakeDevice(s) for s in serials])
    return types.SimpleNamespace(
        context=lambda: ctx,
        config=rs.config,
        stream=rs.stream,
        format=rs.format,
        camera_info=rs.camera_info,
        pipeline=_FakePipeline,
    )


def test_realsense_read_path_copies_rgb_frames_and_wraps_timeouts():
    fake = _fake_rs(["111", "222"])
    with pytest.raises(RuntimeError, match=r"2 RealSense devices are connected \['111', '222'\]"):
        RealSenseCamera(None, rs=fake)
    cam = RealSenseCamera("222", hw=(48, 64), fps=15, rs=fake, flag="--cameras.wrist", timeout_ms=250)
    pipe = _FakePipeline.instances[-1]
    assert pipe.started and cam.serial == "222"
    with pytest.raises(RuntimeError, match=r"--cameras\.wrist='222': no frame within 250 ms"):
        cam.read()
    pipe.buf = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    expected = pipe.buf.copy()
    img = cam.read()
    pipe.buf[:] = 0  # the SDK reuses the buffer: the returned frame must be a copy
    np.testing.assert_array_equal(img, expected)
    assert img.dtype == np.uint8 and pipe.timeouts == [250, 250]
    pipe.buf = np.full((96, 128, 3), 7, np.uint8)  # a device at another resolution is resized
    assert cam.read().shape == (48, 64, 3)
    cam.close()
    assert pipe.stopped
    only = RealSenseCamera(None, rs=_fake_rs(["333"]))
    assert only.serial == "333"


class _SlowCamera(Camera):
    def __init__(self, delay, value):
        self.delay, self.value, self.threads = delay, value, set()

    def read(self):
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        return np.full((4, 4, 3), self.value, np.uint8)


def test_grab_reads_cameras_concurrently_and_reports_the_skew():
    cameras = {"base": _SlowCamera(0.5, 1), "wrist": _SlowCamera(0.5, 2), "extra": _SlowCamera(0.05, 3)}
    grab(cameras)  # warm the pool
    t0 = time.monotonic()
    frames = grab(cameras)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.85, f"{elapsed:.2f}s: reads were serialized (sum 1.05 s, max 0.5 s)"
    assert {k: int(v[0, 0, 0]) for k, v in frames.items()} == {"base": 1, "wrist": 2, "extra": 3}
    assert set(frames.timestamps) == set(cameras)
    assert 0.3 < frames.skew < 0.7  # the fast camera finished ~0.45 s before the slow ones
    assert all(len(c.threads) == 1 for c in cameras.values())  # one persistent reader per camera
    assert len(set().union(*(c.threads for c in cameras.values()))) == 3


def test_grab_errors_name_the_camera():
    with pytest.raises(TimeoutError, match="'wrist' gave no frame within 0.2 s"):
        grab({"base": _SlowCamera(0.0, 1), "wrist": _SlowCamera(0.6, 2)}, timeout=0.2)

    class Broken(Camera):
        def read(self):
            raise OSError("unplugged")

    with pytest.raises(RuntimeError, match="camera 'base': unplugged"):
        grab({"base": Broken(), "wrist": _SlowCamera(0.0, 2)})


class _Robot:
    def state(self):
        return np.array([0.3, -0.2, 0.0], np.float32)


def test_grab_with_sim_cameras_and_a_single_camera():
    robot = _Robot()
    sims = make_cameras(robot, CameraArgs(height=24, width=40), sim=True)
    assert all(isinstance(c, SimCamera) for c in sims.values()) and set(sims) == {"base", "wrist"}
    frames = grab(sims)
    for name, cam in sims.items():
        np.testing.assert_array_equal(frames[name], cam.read())
        assert frames[name].shape == (24, 40, 3)
    assert not np.array_equal(frames["base"], frames["wrist"])  # seeds 1 and 2
    one = grab({"base": sims["base"]})
    assert list(one) == ["base"] and one.skew == 0.0


def test_make_cameras_dispatches_opencv_and_realsense(video, monkeypatch):
    cv = make_cameras(None, CameraArgs(base=video, wrist=video, height=16, width=24), sim=False)
    assert all(isinstance(c, OpenCVCamera) for c in cv.values())
    assert grab(cv)["wrist"].shape == (16, 24, 3)
    fake = _fake_rs(["111", "222"])
    monkeypatch.setattr(cams, "_import_rs", lambda: fake)
    real = make_cameras(None, CameraArgs(backend="realsense", base="111", wrist="222", fps=15), sim=False)
    assert [type(c) for c in real.values()] == [RealSenseCamera] * 2 and real["wrist"].serial == "222"
    mixed = make_cameras(None, CameraArgs(base="111", base_backend="realsense", wrist=video), sim=False)
    assert isinstance(mixed["base"], RealSenseCamera) and isinstance(mixed["wrist"], OpenCVCamera)
    # The wrist fails to open: the base camera already opened is released.
    n_before = len(_FakePipeline.instances)
    with pytest.raises(RuntimeError, match=r"--cameras\.wrist='999'.*connected serials: \['111', '222'\]"):
        make_cameras(None, CameraArgs(backend="realsense", base="111", wrist="999"), sim=False)
    opened = _FakePipeline.instances[n_before:]
    assert len(opened) == 1 and opened[0].started and opened[0].stopped


def test_make_cameras_realsense_with_the_real_module_and_bad_selections():
    with pytest.raises(RuntimeError, match=r"--cameras\.base='123456'.*connected serials: \[\]"):
        make_cameras(None, CameraArgs(backend="realsense", base="123456", wrist="654321"), sim=False)
    with pytest.raises(ValueError, match=r"--cameras\.wrist='2' looks like an OpenCV index.*serial"):
        make_cameras(None, CameraArgs(backend="realsense", base="123456"), sim=False)
    with pytest.raises(ValueError, match="same RealSense"):
        make_cameras(None, CameraArgs(backend="realsense", base="auto", wrist="auto"), sim=False)
    with pytest.raises(ValueError, match=r"--cameras\.backend 'kinect'"):
        CameraArgs(backend="kinect")
    with pytest.raises(ValueError, match=r"--cameras\.height must be > 0"):
        CameraArgs(height=0)


def test_camera_flags_parse_through_tyro():
    import tyro

    from robot_flexiv import collect as flexiv_collect
    from robot_piper import run as piper_run

    args = piper_run.Args  # RunArgs subclass
    parsed = tyro.cli(args, args=["--cameras.backend", "realsense", "--cameras.base", "123456"])
    assert parsed.cameras.backend == "realsense" and parsed.cameras.base == "123456"
    assert parsed.cameras.wrist == "2" and parsed.cameras.hw == (480, 640)
    parsed = tyro.cli(
        flexiv_collect.Args,
        args=[
            "--cameras.wrist",
            "/dev/v4l/by-id/usb-cam-video-index0",
            "--cameras.height",
            "240",
            "--cameras.width",
            "320",
        ],
    )
    assert parsed.cameras.hw == (240, 320) and parsed.cameras.wrist.startswith("/dev/v4l/by-id/")
    assert parsed.cameras.backend_of("wrist") == "opencv"
    parsed = tyro.cli(args, args=["--cameras.base-backend", "realsense", "--cameras.base", "auto"])
    assert parsed.cameras.backend_of("base") == "realsense" and parsed.cameras.backend_of("wrist") == "opencv"
