"""Synthetic calibration data with known truth, for tests and `benchmarks/calibration_accuracy.py`: ChArUco
board views rendered from known camera poses and intrinsics (OpenCV warps of the printed board) with pixel
noise, and hand-eye samples from a known camera placement."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from calibration.board import Board, render_view

BOARD = Board(squares_x=7, squares_y=5, square_length=0.04, marker_length=0.03, dictionary="DICT_4X4_50")
SIZE = (640, 480)
K_TRUE = np.array([[612.0, 0.0, 322.5], [0.0, 608.0, 236.0], [0.0, 0.0, 1.0]])


def transform(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def board_centre() -> np.ndarray:
    return np.array([BOARD.squares_x * BOARD.square_length / 2, BOARD.squares_y * BOARD.square_length / 2, 0.0])


def random_view_pose(rng: np.random.Generator) -> np.ndarray:
    """T_camera_board: the board 0.45-0.7 m ahead, tilted up to ~35 degrees, off-centre."""
    R = Rotation.from_euler("xyz", rng.uniform([-35, -35, -20], [35, 35, 20]), degrees=True).as_matrix()
    centre = np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.06, 0.06), rng.uniform(0.45, 0.7)])
    return transform(R, centre - R @ board_centre())


def noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def views(n: int, seed: int = 0, K: np.ndarray = K_TRUE) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    poses = [random_view_pose(rng) for _ in range(n)]
    return [noisy(render_view(BOARD, K, T, SIZE), rng) for T in poses], poses


def look_at_pose(eye, target) -> np.ndarray:
    """T_base_camera of an OpenCV-frame camera at `eye` looking at `target` (base frame, z up)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return transform(np.stack([x, np.cross(z, x), z], axis=1), eye)


T_BASE_CAMERA = look_at_pose([1.1, 0.35, 0.65], [0.45, 0.0, 0.1])  # eye-to-hand truth
T_EE_BOARD = transform(Rotation.from_euler("x", 180, degrees=True).as_matrix(), [-0.14, -0.1, 0.05])


def eye_to_hand_samples(n: int, seed: int = 0, noise_px: float = 2.0):
    """(images, T_base_ee) of a board held by the gripper, seen by the fixed camera T_BASE_CAMERA."""
    rng = np.random.default_rng(seed)
    images, T_base_ee = [], []
    for _ in range(n):
        T_cam_board = random_view_pose(rng)
        T_base_ee.append(T_BASE_CAMERA @ T_cam_board @ np.linalg.inv(T_EE_BOARD))
        images.append(noisy(render_view(BOARD, K_TRUE, T_cam_board, SIZE), rng, noise_px))
    return images, T_base_ee
