"""Camera readers for the robot: a RealSense (pyrealsense2; live by serial or played back from a recording)
or any OpenCV camera, behind one `read() -> Frame`, and a wrapper that survives an unplug.

    camera = ReconnectingCamera(lambda: RealSenseReader(serial="123456", width=640, height=480, fps=30))
    frame = camera.read()          # Frame, or None while the camera is away (it says so, and retries)

Frames are RGB uint8 (H, W, 3); depth, when asked for, is uint16 (H, W) in the device's depth units, aligned
to the colour image. Stamps are host monotonic seconds taken when the frame arrived (what staleness checks
compare against). Recordings: `write_realsense_recording` makes a `.db3` that `RealSenseReader(playback=...)`
plays back with the same code path as a live camera, so that path is tested without hardware.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger("pirl.camera")


class CameraError(RuntimeError):
    """A camera that cannot be opened or stopped delivering frames."""


@dataclass
class Frame:
    rgb: np.ndarray  # uint8 (H, W, 3)
    stamp: float  # host monotonic seconds at arrival
    number: int  # the device's frame counter
    depth: np.ndarray | None = None  # uint16 (H, W), aligned to rgb


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    K: np.ndarray  # (3, 3)
    distortion: np.ndarray  # (5,) OpenCV (k1, k2, p1, p2, k3)


class CameraReader(Protocol):
    def read(self, timeout_s: float = 1.0) -> Frame: ...
    def close(self) -> None: ...


class RealSenseReader:
    """A RealSense camera through pyrealsense2: live (by serial, or the first one found) or a `.db3` playback.

    Live cameras stream through a pipeline that keeps only the latest frame set (never a stale one), with
    depth aligned to colour when asked for. A recording is played from its colour sensor into a queue, not
    in real time, so every recorded frame arrives in order however slow the reader (a pipeline would drop
    them) - what tests and dry runs need."""

    def __init__(self, serial: str | None = None, width: int = 640, height: int = 480, fps: int = 30,
                 depth: bool = False, playback: str | Path | None = None):
        try:
            import pyrealsense2 as rs
        except ImportError as e:
            raise CameraError(f"pyrealsense2 is not importable ({e}); pip install 'pirl[camera]'") from e
        self._rs, self.depth = rs, depth
        self.pipeline = self._sensor = self._queue = self._align = None
        if playback is not None:
            self._open_playback(Path(playback))
            return
        found = [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
        if not found or (serial and serial not in found):
            raise CameraError(f"cannot start RealSense {serial or '(first found)'}: connected RealSense cameras "
                              f"{found or 'none'}. Check the cable (USB 3) and the serial (`rs-enumerate-devices`)")
        config = rs.config()
        if serial:
            config.enable_device(serial)
        config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
        if depth:
            config.enable_stream(rs.stream.depth, width, height, rs.format.z16, fps)
        self.pipeline = rs.pipeline()
        try:
            profile = self.pipeline.start(config)
        except RuntimeError as e:
            raise CameraError(f"cannot start RealSense {serial or '(first found)'} at {width}x{height}@{fps}: {e}. "
                              "Check the cable (USB 3), the serial (`rs-enumerate-devices`) and that the mode is "
                              "supported") from e
        self._align = rs.align(rs.stream.color) if depth else None
        self._color = profile.get_stream(rs.stream.color).as_video_stream_profile()

    def _open_playback(self, path: Path) -> None:
        rs = self._rs
        if not path.exists():
            raise CameraError(f"RealSense recording {path} not found")
        if self.depth:
            raise CameraError("depth is not played back from recordings; open the recording without depth")
        try:
            device = rs.context().load_device(str(path))
        except RuntimeError as e:
            raise CameraError(f"cannot open RealSense recording {path}: {e}") from e
        device.as_playback().set_real_time(False)
        for sensor in device.query_sensors():
            colour = [p for p in sensor.get_stream_profiles() if p.stream_type() == rs.stream.color]
            if colour:
                self._queue = rs.frame_queue(256, keep_frames=True)
                sensor.open(colour[0])
                sensor.start(self._queue)
                self._sensor, self._color = sensor, colour[0].as_video_stream_profile()
                self._device = device  # keeps the playback alive
                return
        raise CameraError(f"{path} has no colour stream")

    def intrinsics(self) -> Intrinsics:
        """The device's factory intrinsics of the colour stream (OpenCV K and distortion)."""
        i = self._color.get_intrinsics()
        K = np.array([[i.fx, 0.0, i.ppx], [0.0, i.fy, i.ppy], [0.0, 0.0, 1.0]])
        return Intrinsics(i.width, i.height, K, np.asarray(list(i.coeffs)[:5], float))

    def read(self, timeout_s: float = 1.0) -> Frame:
        rs, ms = self._rs, int(timeout_s * 1000)
        depth = None
        if self._queue is not None:
            ok, frame = self._queue.try_wait_for_frame(ms)
            color = frame.as_video_frame() if ok else None
        else:
            ok, frames = self.pipeline.try_wait_for_frames(ms)
            if ok and self._align is not None:
                frames = self._align.process(frames)
            color = frames.get_color_frame() if ok else None
            if ok and self.depth:
                d = frames.get_depth_frame()
                depth = np.asanyarray(d.get_data()).copy() if d else None
        if not ok or not color:
            raise CameraError(f"no RealSense frame within {timeout_s:.1f} s")
        rgb = np.asanyarray(color.get_data()).copy()
        if color.get_profile().format() == rs.format.bgr8:
            rgb = rgb[..., ::-1].copy()
        return Frame(rgb, time.monotonic(), int(color.get_frame_number()), depth)

    def close(self) -> None:
        try:
            if self.pipeline is not None:
                self.pipeline.stop()
            elif self._sensor is not None:
                self._sensor.stop()
                self._sensor.close()
        except RuntimeError:
            pass  # already stopped (unplugged)


class OpenCVReader:
    """Any camera OpenCV opens: a device index (/dev/videoN), a device path, a stream URL or a video file."""

    def __init__(self, device: int | str = 0, width: int | None = None, height: int | None = None,
                 fps: float | None = None):
        import cv2

        self._cv2 = cv2
        source = int(device) if isinstance(device, str) and device.isdigit() else device
        self.cap = cv2.VideoCapture(source)
        if not self.cap.isOpened():
            raise CameraError(f"OpenCV cannot open camera {device!r}; check the index or path (`v4l2-ctl "
                              "--list-devices`) and permissions (group video)")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, fps)):
            if value:
                self.cap.set(prop, value)
        self._count = 0

    def read(self, timeout_s: float = 1.0) -> Frame:
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            raise CameraError("OpenCV camera returned no frame (unplugged, or the end of a file)")
        self._count += 1
        return Frame(self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB), time.monotonic(), self._count)

    def close(self) -> None:
        self.cap.release()


@dataclass
class ReconnectingCamera:
    """Keeps a camera going across unplugs: a failed read closes it and later reads try to reopen it every
    `retry_s`, logging the loss and the return once each (not per attempt)."""

    open_camera: Callable[[], CameraReader]
    retry_s: float = 1.0
    timeout_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    counts: Counter = field(default_factory=Counter)
    _camera: CameraReader | None = None
    _next_try: float = 0.0
    _lost_at: float | None = None

    @property
    def connected(self) -> bool:
        return self._camera is not None

    def read(self) -> Frame | None:
        """The next frame, or None while the camera is away."""
        now = self.clock()
        if self._camera is None:
            if now < self._next_try:
                return None
            try:
                self._camera = self.open_camera()
            except CameraError as e:
                self._next_try = now + self.retry_s
                if self._lost_at is None:
                    self._lost_at = now
                    log.error("camera unavailable: %s; retrying every %.1f s", e, self.retry_s)
                return None
            if self._lost_at is not None:
                log.warning("camera reconnected after %.1f s", now - self._lost_at)
                self.counts["reconnects"] += 1
                self._lost_at = None
        try:
            frame = self._camera.read(self.timeout_s)
        except CameraError as e:
            log.error("camera lost: %s; reconnecting every %.1f s (the policy holds the arm meanwhile)", e,
                      self.retry_s)
            self.counts["losses"] += 1
            self._drop()
            self._lost_at, self._next_try = now, now + self.retry_s
            return None
        self.counts["frames"] += 1
        return frame

    def _drop(self) -> None:
        if self._camera is not None:
            try:
                self._camera.close()
            finally:
                self._camera = None

    def close(self) -> None:
        self._drop()


def check_resolution(expected: tuple[int, int], frame: Frame, source: str = "camera.yaml") -> None:
    """Refuse frames whose (width, height) differ from the calibrated camera's: K would not apply."""
    h, w = frame.rgb.shape[:2]
    if (w, h) != tuple(expected):
        raise CameraError(f"the camera delivers {w}x{h} but {source} describes {expected[0]}x{expected[1]}: "
                          "set the camera's width/height to match, or recalibrate at this resolution")


class Undistorter:
    """Real camera frames -> the pinhole images the simulated camera renders.

    The sim camera renders through camera.yaml's K with no distortion, so a policy trained there has only seen
    straight lines stay straight. Undistorting each real frame to the same K (OpenCV's rectify map, computed
    once; bilinear remap) makes the robot's images match, pixel for pixel up to the lens model's error. The
    other way, rendering the sim camera through the lens, would need a distorting renderer in every simulator
    and would tie every dataset to one lens; undistorting once on the robot keeps training camera-agnostic.
    A camera.yaml without distortion gives the identity."""

    def __init__(self, width: int, height: int, K: np.ndarray, distortion: np.ndarray):
        self.size = (int(width), int(height))
        self.distortion = np.asarray(distortion, np.float64).reshape(-1)
        self.maps = None
        if np.any(self.distortion != 0):
            import cv2

            K = np.asarray(K, np.float64)
            self.maps = cv2.initUndistortRectifyMap(K, self.distortion, None, K, self.size, cv2.CV_32FC1)

    @classmethod
    def from_spec(cls, spec) -> "Undistorter":
        """From a core.camera.CameraSpec (camera.yaml)."""
        return cls(spec.width, spec.height, spec.K, spec.distortion)

    @property
    def identity(self) -> bool:
        return self.maps is None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) at camera.yaml's resolution -> the undistorted image, same size and K."""
        h, w = rgb.shape[:2]
        if (w, h) != self.size:
            raise CameraError(f"the image is {w}x{h} but camera.yaml describes {self.size[0]}x{self.size[1]}: "
                              "its K and distortion do not apply; set the camera to that resolution or recalibrate")
        if self.maps is None:
            return rgb
        import cv2

        return cv2.remap(rgb, self.maps[0], self.maps[1], interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT)


def write_realsense_recording(path: str | Path, images: Sequence[np.ndarray], fps: int = 30,
                              K: np.ndarray | None = None) -> Path:
    """Write RGB frames (H, W, 3) uint8 as a RealSense `.db3` recording with pyrealsense2's software device,
    so `RealSenseReader(playback=path)` replays them through the live-camera code path."""
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"pyrealsense2 records to .db3 files, got {path.name}")
    images = [np.ascontiguousarray(i, np.uint8) for i in images]
    if not images or images[0].ndim != 3 or images[0].shape[2] != 3:
        raise ValueError("give at least one RGB image (H, W, 3)")
    h, w = images[0].shape[:2]
    K = np.array([[w, 0, (w - 1) / 2], [0, w, (h - 1) / 2], [0, 0, 1]], float) if K is None else np.asarray(K)
    device = rs.software_device()
    sensor = device.add_sensor("Color")
    intr = rs.intrinsics()
    intr.width, intr.height = w, h
    intr.fx, intr.fy, intr.ppx, intr.ppy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp = w, h, fps, 3
    stream.fmt, stream.intrinsics = rs.format.rgb8, intr
    profile = sensor.add_video_stream(stream)
    recorder = rs.recorder(str(path), device)
    queue = rs.frame_queue(len(images) + 1)
    sensor.open(profile)
    sensor.start(queue)
    try:
        for n, img in enumerate(images):
            if img.shape != (h, w, 3):
                raise ValueError(f"frame {n} has shape {img.shape}, the first {(h, w, 3)}")
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = img, w * 3, 3
            f.timestamp, f.frame_number = n * 1000.0 / fps, n
            f.domain, f.profile = rs.timestamp_domain.hardware_clock, profile.as_video_stream_profile()
            sensor.on_video_frame(f)
            queue.wait_for_frame()
    finally:
        sensor.stop()
        sensor.close()
        del recorder  # flushes and closes the file
    return path
