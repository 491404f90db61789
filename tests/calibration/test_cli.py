"""pirl-calibrate end to end on synthetic data: views -> intrinsics, a capture session replayed from a video file
and a pose file -> hand-eye -> camera.yaml -> a ManiSkill camera whose rendered pixels agree with K."""

import json

import cv2
import numpy as np
import pytest

from calibration.capture import CaptureSession, read_samples
from calibration.cli import main
from calibration.handeye import pose_difference
from calibration.synthetic import BOARD, K_TRUE, SIZE, T_BASE_CAMERA, eye_to_hand_samples, views


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    BOARD.save(d / "board.yaml")
    paths = []
    for i, img in enumerate(views(12, seed=21)[0]):
        paths.append(str(d / f"view_{i:02d}.png"))
        cv2.imwrite(paths[-1], img)
    assert main(["intrinsics", *paths, "--board", str(d / "board.yaml"), "--out", str(d / "intrinsics.json")]) == 0
    # capture: the camera is an OpenCV video file, poses come from a file in the same order
    images, T_base_ee = eye_to_hand_samples(17, seed=22)
    images.insert(5, images[4].copy())  # the operator pressed capture twice without moving
    T_base_ee.insert(5, T_base_ee[4])
    writer = cv2.VideoWriter(str(d / "capture.avi"), cv2.VideoWriter_fourcc(*"FFV1"), 5, SIZE)
    for img in images:
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    writer.release()
    (d / "poses.jsonl").write_text("".join(json.dumps(T.tolist()) + "\n" for T in T_base_ee))
    assert main(["capture", "--board", str(d / "board.yaml"), "--camera", f"video:{d / 'capture.avi'}",
                 "--poses", str(d / "poses.jsonl"), "--auto", "--out", str(d / "samples")]) == 0
    assert main(["handeye", "--samples", str(d / "samples"), "--mode", "eye-to-hand", "--intrinsics",
                 str(d / "intrinsics.json"), "--board", str(d / "board.yaml"), "--out", str(d / "handeye.json")]) == 0
    assert main(["write", "--intrinsics", str(d / "intrinsics.json"), "--handeye", str(d / "handeye.json"),
                 "--out", str(d / "camera.yaml")]) == 0
    return d


def test_pipeline_files_hold_the_truth(calibrated):
    intr = json.loads((calibrated / "intrinsics.json").read_text())
    assert abs(intr["K"][0][0] / K_TRUE[0, 0] - 1) < 0.005
    samples = read_samples(calibrated / "samples")
    assert len(samples) == 17  # the repeated pose was refused
    he = json.loads((calibrated / "handeye.json").read_text())
    d_m, d_deg = pose_difference(np.asarray(he["T_base_camera"]), T_BASE_CAMERA)
    assert d_m < 0.002 and d_deg < 0.5
    from core.camera import CameraSpec

    spec = CameraSpec.load(calibrated / "camera.yaml")
    assert (spec.width, spec.height) == SIZE and spec.quality["handeye_samples"] == 17
    assert spec.quality["handeye_solver"] == "joint" and spec.quality["reprojection_rms_px"] < 0.5
    assert spec.quality["position_sigma_mm"] < 2.0 and spec.quality["handeye_rejected"] == []


def test_capture_warns_about_repeated_poses_and_missing_boards(tmp_path):
    images, T_base_ee = eye_to_hand_samples(2, seed=3)
    session = CaptureSession(BOARD, tmp_path)
    assert session.offer(images[0], T_base_ee[0]).saved
    again = session.offer(images[0], T_base_ee[0] @ np.diag([1, 1, 1, 1.0]))
    assert not again.saved and "too similar to sample 0" in again.message
    assert not session.offer(np.full_like(images[0], 90), T_base_ee[1]).saved
    assert session.offer(images[1], T_base_ee[1]).saved
    with open(tmp_path / "poses.jsonl", "a") as f:
        f.write('{"image": "0002.png", "T_base_')  # a crash mid-write
    assert len(read_samples(tmp_path)) == 2
    assert len(CaptureSession(BOARD, tmp_path).poses) == 2  # a restarted session continues the count


def test_camera_yaml_round_trip_through_maniskill_within_a_pixel(calibrated):
    """camera.yaml -> ManiSkill sensor -> the rendered surface at a known point's K-projection is that point."""
    pytest.importorskip("mani_skill")
    from core.camera import CameraSpec
    from training.envs.maniskill import ManiSkillChunkEnv, ManiSkillConfig

    # Rendered at half the calibrated resolution (K scaled as training does): ManiSkill's minimal shader
    # stores surface positions in whole millimetres, 0.75 px at 640x480 and 0.8 m, 0.37 px at 320x240.
    spec = CameraSpec.load(calibrated / "camera.yaml").scaled(320, 240)
    env = ManiSkillChunkEnv("PickCube-v1", ManiSkillConfig(tasks=("PickCube-v1",), num_envs=1,
                                                           image_size=(spec.height, spec.width),
                                                           camera_file=str(calibrated / "camera.yaml")))
    try:
        env.sim_reset(0)
        raw = env.raw
        T_world_base = raw.agent.robot.pose.to_transformation_matrix()[0].numpy()
        cam = raw._sensors["base_camera"]
        rgb = env.render_images()["base_camera"]  # updates the scene's render state, then read positions
        assert rgb.shape == (spec.height, spec.width, 3)
        cam.capture()
        xyz = cam.get_obs(rgb=False, depth=False, position=True, segmentation=False)["position"][0].numpy()
        top = raw.cube.pose.p[0].numpy() + [0.0, 0.0, raw.cube_half_size]  # centre of the cube's top face
        p_base = (np.linalg.inv(T_world_base) @ np.r_[top, 1.0])[:3]
        u, v = spec.project(p_base[None])[0]
        assert 0 <= u < spec.width and 0 <= v < spec.height, "the calibrated camera does not see the cube"
        px = np.array([round(u), round(v)])
        p_gl = xyz[px[1], px[0], :3].astype(float) / 1000.0  # the surface the renderer drew there (mm -> m)
        p_cv = np.array([p_gl[0], -p_gl[1], -p_gl[2]])  # OpenGL -> OpenCV camera axes
        uv = spec.K @ p_cv
        assert np.abs(uv[:2] / uv[2] - px).max() < 1.0  # K projects it back onto the same pixel
        seen_base = (spec.T_base_camera @ np.r_[p_cv, 1.0])[:3]
        assert np.linalg.norm(seen_base - p_base) < 0.01
    finally:
        env.close()


def test_cli_errors_are_clear(tmp_path, capsys):
    (tmp_path / "camera.yaml").write_text("name: cam\nwidth: 640\n")
    (tmp_path / "real.png").write_bytes(cv2.imencode(".png", np.zeros((480, 640, 3), np.uint8))[1].tobytes())
    assert main(["check", "--camera", str(tmp_path / "camera.yaml"), "--real", str(tmp_path / "real.png")]) == 2
    assert "missing fields ['height', 'K', 'T_base_camera']" in capsys.readouterr().err
    assert main(["intrinsics", "--board", str(tmp_path / "none.yaml"), str(tmp_path / "real.png")]) == 2
    assert "board file" in capsys.readouterr().err
    BOARD.save(tmp_path / "board.yaml")
    assert main(["handeye", "--samples", str(tmp_path), "--mode", "eye-to-hand", "--intrinsics",
                 str(tmp_path / "x.json"), "--board", str(tmp_path / "board.yaml")]) == 2


def test_realsense_factory_intrinsics_from_a_playback(tmp_path):
    pytest.importorskip("pyrealsense2")
    from deploy.robot.camera_io import write_realsense_recording

    K = np.array([[615.5, 0.0, 318.25], [0.0, 614.75, 241.5], [0.0, 0.0, 1.0]])
    rec = write_realsense_recording(tmp_path / "rs.db3", [np.zeros((480, 640, 3), np.uint8)] * 2, K=K)
    assert main(["intrinsics", "--realsense", "--playback", str(rec), "--out", str(tmp_path / "i.json")]) == 0
    out = json.loads((tmp_path / "i.json").read_text())
    np.testing.assert_allclose(out["K"], K, atol=1e-3)
    assert (out["width"], out["height"], out["source"]) == (640, 480, "realsense factory")


def test_tf_poses_need_ros_and_say_so():
    import importlib.util

    from calibration.board import CalibrationError
    from calibration.cli import _tf_pose

    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("ROS 2 is installed here: tf poses would be read")
    with pytest.raises(CalibrationError, match="needs ROS 2 and the pirl_ros package.*--poses FILE"):
        _tf_pose("panda_link0", "panda_hand")
