"""Hand-eye from rendered board views and known robot poses: eye-to-hand and eye-in-hand against truth."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.board import CalibrationError, render_view
from calibration.handeye import board_pose, pose_difference, solve_hand_eye
from calibration.intrinsics import calibrate_intrinsics
from calibration.synthetic import (
    BOARD,
    K_TRUE,
    SIZE,
    T_BASE_CAMERA,
    eye_to_hand_samples,
    noisy,
    random_view_pose,
    transform,
    views,
)


def _board_poses(images, K, dist):
    return [board_pose(BOARD.detect(im), K, dist) for im in images]


def test_eye_to_hand_within_2mm_and_half_a_degree_with_outliers_rejected():
    intr = calibrate_intrinsics(views(12, seed=4)[0], BOARD)  # the pipeline's own intrinsics, not the truth
    images, T_base_ee = eye_to_hand_samples(18, seed=7)
    T_base_ee[3] = T_base_ee[3] @ transform(np.eye(3), [0.03, 0.0, 0.0])  # the robot reported a wrong pose
    T_base_ee[11] = T_base_ee[11] @ transform(Rotation.from_euler("z", 3, degrees=True).as_matrix(), [0, 0, 0])
    names = [f"s{i:02d}" for i in range(18)]
    r = solve_hand_eye(T_base_ee, _board_poses(images, intr.K, intr.distortion), "eye-to-hand", names=names)
    d_m, d_deg = pose_difference(r.T, T_BASE_CAMERA)
    assert d_m < 0.002 and d_deg < 0.5, (d_m, d_deg)
    assert set(r.rejected) == {"s03", "s11"}
    s = r.summary()
    assert s["samples_used"] == 16 and s["residual_mm_rms"] < 2.0 and r.solver_spread_mm < 3.0


def test_eye_in_hand_within_2mm_and_half_a_degree():
    rng = np.random.default_rng(11)
    T_ee_camera = transform(Rotation.from_euler("xyz", [2, -3, 90], degrees=True).as_matrix(), [0.05, -0.03, 0.04])
    T_base_board = transform(Rotation.from_euler("x", 180, degrees=True).as_matrix(), [0.4, -0.1, 0.0])  # on the table
    images, T_base_ee = [], []
    for _ in range(16):
        T_cam_board = random_view_pose(rng)
        T_base_ee.append(T_base_board @ np.linalg.inv(T_cam_board) @ np.linalg.inv(T_ee_camera))
        images.append(noisy(render_view(BOARD, K_TRUE, T_cam_board, SIZE), rng))
    r = solve_hand_eye(T_base_ee, _board_poses(images, K_TRUE, np.zeros(5)), "eye-in-hand")
    d_m, d_deg = pose_difference(r.T, T_ee_camera)
    assert d_m < 0.002 and d_deg < 0.5, (d_m, d_deg)
    assert r.name == "T_ee_camera" and not r.rejected


def test_degenerate_motion_and_too_few_samples_are_refused():
    _, T_base_ee = eye_to_hand_samples(8, seed=1)
    translated = [transform(T_base_ee[0][:3, :3], T_base_ee[0][:3, 3] + [0.02 * i, 0.01 * i, 0]) for i in range(8)]
    with pytest.raises(CalibrationError, match="pure translation"):
        solve_hand_eye(translated, [np.eye(4)] * 8, "eye-to-hand")
    one_axis = [transform(Rotation.from_euler("z", 15 * i, degrees=True).as_matrix(), [0.4, 0, 0.3]) for i in range(8)]
    with pytest.raises(CalibrationError, match="about one axis"):
        solve_hand_eye(one_axis, [np.eye(4)] * 8, "eye-to-hand")
    with pytest.raises(CalibrationError, match="at least 5"):
        solve_hand_eye(T_base_ee[:3], [np.eye(4)] * 3, "eye-to-hand")
    with pytest.raises(CalibrationError, match="mode must be"):
        solve_hand_eye(T_base_ee, [np.eye(4)] * 8, "eye-on-hand")
