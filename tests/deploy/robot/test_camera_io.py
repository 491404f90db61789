"""Camera readers on real pyrealsense2 playback and real OpenCV capture (from files: no camera here), and
reconnection across an unplug (a scripted camera double stands in for the cable being pulled)."""

import logging

import numpy as np
import pytest

from deploy.robot.camera_io import CameraError, Frame, OpenCVReader, ReconnectingCamera, check_resolution

pytest.importorskip("cv2")


def _frames(n=6, h=48, w=64):
    imgs = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = 10 * i  # red ramps with the frame index
        img[:, : w // 2, 2] = 200  # blue left half: catches an RGB/BGR swap and a mirrored image
        imgs.append(img)
    return imgs


def test_realsense_playback_delivers_the_recorded_frames_and_intrinsics(tmp_path):
    pytest.importorskip("pyrealsense2", reason="pip install pyrealsense2 (the camera extra)")
    from deploy.robot.camera_io import RealSenseReader, write_realsense_recording

    K = np.array([[50.0, 0, 31.5], [0, 52.0, 23.5], [0, 0, 1]])
    path = write_realsense_recording(tmp_path / "session.db3", _frames(), fps=30, K=K)
    cam = RealSenseReader(playback=path)
    try:
        intr = cam.intrinsics()
        assert (intr.width, intr.height) == (64, 48)
        np.testing.assert_allclose(intr.K, K, atol=1e-4)
        got = []
        while True:
            try:
                got.append(cam.read(timeout_s=1.0))
            except CameraError:
                break  # the end of the recording reads as a camera that stopped
    finally:
        cam.close()
    assert [f.number for f in got] == list(range(6))
    for i, f in enumerate(got):
        assert f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8
        assert f.rgb[0, -1, 0] == 10 * i and f.rgb[0, 0, 2] == 200 and f.rgb[0, -1, 2] == 0


def test_realsense_errors_are_clear(tmp_path):
    pytest.importorskip("pyrealsense2")
    from deploy.robot.camera_io import RealSenseReader, write_realsense_recording

    with pytest.raises(CameraError, match="not found"):
        RealSenseReader(playback=tmp_path / "missing.db3")
    with pytest.raises(CameraError, match="cannot start RealSense 000000000000"):
        RealSenseReader(serial="000000000000")  # no device with this serial (none at all here)
    with pytest.raises(ValueError, match=".db3"):
        write_realsense_recording(tmp_path / "x.bag", _frames(1))


def test_opencv_reader_converts_to_rgb(tmp_path):
    import cv2

    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for img in _frames(3):
        writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    writer.release()
    cam = OpenCVReader(path)
    frames = [cam.read() for _ in range(3)]
    with pytest.raises(CameraError, match="no frame"):
        cam.read()
    cam.close()
    assert frames[0].rgb[10, 10, 2] > 150 and frames[0].rgb[10, 50, 2] < 50  # blue stays left, in channel 2
    with pytest.raises(CameraError, match="cannot open camera"):
        OpenCVReader(str(tmp_path / "nothing.avi"))


class UnpluggableCamera:
    """Test double for a camera whose cable is pulled: frames until `fail_after`, then errors."""

    def __init__(self, fail_after: int):
        self.fail_after, self.n = fail_after, 0

    def read(self, timeout_s: float = 1.0) -> Frame:
        if self.n >= self.fail_after:
            raise CameraError("device disconnected")
        self.n += 1
        return Frame(np.zeros((4, 4, 3), np.uint8), 0.0, self.n)

    def close(self) -> None:
        pass


def test_reconnecting_camera_survives_an_unplug(caplog):
    now = [0.0]
    plugged = [True]
    opened = []

    def open_camera():
        if not plugged[0]:
            raise CameraError("no device")
        opened.append(UnpluggableCamera(fail_after=2))
        return opened[-1]

    cam = ReconnectingCamera(open_camera, retry_s=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="pirl.camera"):
        assert cam.read() is not None and cam.read() is not None
        plugged[0] = False
        assert cam.read() is None and not cam.connected  # the third read fails: lost
        now[0] = 0.5
        assert cam.read() is None  # before retry_s: no attempt
        now[0] = 1.2
        assert cam.read() is None  # attempt fails, still away
        plugged[0] = True
        now[0] = 2.3
        assert cam.read() is not None and cam.connected
    assert cam.counts["losses"] == 1 and cam.counts["reconnects"] == 1 and len(opened) == 2
    text = caplog.text
    assert "camera lost: device disconnected" in text and "camera reconnected after" in text
    assert text.count("camera unavailable") <= 1  # one line per outage, not one per attempt


def test_resolution_mismatch_with_camera_yaml_is_refused():
    frame = Frame(np.zeros((480, 640, 3), np.uint8), 0.0, 0)
    check_resolution((640, 480), frame)
    with pytest.raises(CameraError, match="delivers 640x480 but camera.yaml describes 1280x720"):
        check_resolution((1280, 720), frame)


def _distorted_pair(w=320, h=240):
    """A pinhole image of a grid and the same scene through a lens (k1 -0.3, k2 0.1, tangential): each distorted
    pixel samples the pinhole image where the lens model says its ray lands (OpenCV's undistortPoints)."""
    import cv2

    K = np.array([[260.0, 0, 158.0], [0, 262.0, 121.0], [0, 0, 1]])
    dist = np.array([-0.30, 0.10, 0.001, -0.002, -0.02])
    pinhole = np.full((h, w, 3), 30, np.uint8)
    pinhole[::16] = 230
    pinhole[:, ::16] = 230
    pinhole = cv2.GaussianBlur(pinhole, (3, 3), 0)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = cv2.undistortPoints(np.stack([u, v], -1).reshape(-1, 1, 2), K, dist, P=K).reshape(h, w, 2)
    distorted = cv2.remap(pinhole, rays[..., 0].astype(np.float32), rays[..., 1].astype(np.float32),
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return K, dist, pinhole, distorted


def test_undistort_turns_a_lens_image_back_into_the_pinhole_image():
    from deploy.robot.camera_io import CameraError, Undistorter

    K, dist, pinhole, distorted = _distorted_pair()
    centre = (slice(40, 200), slice(50, 270))  # away from the border the remap leaves black
    before = np.abs(distorted[centre].astype(float) - pinhole[centre]).mean()
    undistorted = Undistorter(320, 240, K, dist)(distorted)
    after = np.abs(undistorted[centre].astype(float) - pinhole[centre]).mean()
    assert before > 20 and after < 0.25 * before, (before, after)
    assert undistorted.shape == distorted.shape and undistorted.dtype == np.uint8
    assert Undistorter(320, 240, K, np.zeros(5)).identity  # no distortion: frames pass unchanged
    with pytest.raises(CameraError, match="camera.yaml describes 320x240"):
        Undistorter(320, 240, K, dist)(distorted[:200])
