"""Intrinsics from synthetic ChArUco views with known truth (pixel noise, bad frames), and the errors."""

import numpy as np
import pytest

from calibration.board import Board, CalibrationError, render_view
from calibration.intrinsics import calibrate_intrinsics
from calibration.synthetic import BOARD, K_TRUE, SIZE, random_view_pose, views


def test_recovers_focal_length_and_principal_point_and_rejects_bad_frames():
    images, _ = views(14, seed=1)
    rng = np.random.default_rng(5)
    blank = rng.integers(0, 255, images[0].shape, dtype=np.uint8)  # no board at all
    half = images[0].copy()
    half[:, : SIZE[0] - 40] = 90  # the board out of view but for a sliver: too few corners
    names = [f"v{i:02d}.png" for i in range(14)] + ["blank.png", "cut.png"]
    r = calibrate_intrinsics([*images, blank, half], BOARD, names=names)
    assert abs(r.K[0, 0] / K_TRUE[0, 0] - 1) < 0.005 and abs(r.K[1, 1] / K_TRUE[1, 1] - 1) < 0.005
    assert np.abs(r.K[:2, 2] - K_TRUE[:2, 2]).max() < 2.0
    assert set(r.rejected) == {"blank.png", "cut.png"} and "no board found" in r.rejected["blank.png"]
    assert r.rms < 0.5 and len(r.view_errors) == 14


def test_a_view_with_a_wrong_pose_is_rejected_by_its_reprojection_error():
    images, _ = views(10, seed=2)
    # a frame from another camera (a 50% longer focal length, anisotropic) cannot fit the same K
    pose = random_view_pose(np.random.default_rng(9))
    pose[2, 3] += 0.3
    other = render_view(BOARD, np.diag([1.5, 1.35, 1.0]) @ K_TRUE, pose, SIZE)
    r = calibrate_intrinsics([*images, other], BOARD, names=[f"v{i}" for i in range(10)] + ["other"],
                             max_view_error_px=0.5)
    assert "other" in r.rejected and "reprojection error" in r.rejected["other"]
    assert abs(r.K[0, 0] / K_TRUE[0, 0] - 1) < 0.005


def test_errors_name_the_problem():
    images, _ = views(8, seed=3)
    with pytest.raises(CalibrationError, match=r"only 3 usable views"):
        calibrate_intrinsics(images[:3], BOARD)
    wrong_dict = Board(7, 5, 0.04, 0.03, "DICT_5X5_100")
    with pytest.raises(CalibrationError, match="no board found in any of the 8 images: check that board.yaml"):
        calibrate_intrinsics(images, wrong_dict)
    with pytest.raises(CalibrationError, match="different resolutions"):
        calibrate_intrinsics([images[0], images[1][:200]], BOARD)
    with pytest.raises(CalibrationError, match="marker_length"):
        Board(7, 5, 0.04, 0.05)
