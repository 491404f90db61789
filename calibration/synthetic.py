"""Synthetic calibration data with known truth, for tests and `benchmarks/calibration_accuracy.py`: ChArUco
board views rendered from known camera poses and intrinsics (OpenCV warps of the printed board, optionally
through lens distortion) with pixel noise, and hand-eye samples from a known camera placement: a clean pinhole
set, and a realistic one (distorted lens, blur, shot and read noise, the board over the whole view)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
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


# A realistic eye-to-hand set (what a user's first calibration looks like): a 640x480 lens with radial distortion
# including a real k3 and tangential distortion, the board held by the gripper and moved around the whole view,
# images blurred by the optics and carrying shot and read noise.
K_LENS = np.array([[540.0, 0.0, 327.3], [0.0, 538.5, 236.8], [0.0, 0.0, 1.0]])
DIST_LENS = np.array([-0.29, 0.12, 0.0009, -0.0006, -0.04])  # k1, k2, p1, p2, k3


def sensor(img: np.ndarray, rng: np.random.Generator, blur_px: float = 0.8, read_noise: float = 2.0,
           shot_gain: float = 0.03) -> np.ndarray:
    """Optics blur (Gaussian, sigma in px), then shot noise (variance gain * level) and read noise (std)."""
    x = cv2.GaussianBlur(img.astype(np.float32), (0, 0), blur_px) if blur_px > 0 else img.astype(np.float32)
    x = x + rng.normal(0, 1, x.shape) * np.sqrt(shot_gain * x + read_noise**2)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class HandEyeSet:
    """Synthetic hand-eye samples with their truth."""

    images: list[np.ndarray]
    T_base_ee: list[np.ndarray]
    K: np.ndarray
    distortion: np.ndarray
    T_base_camera: np.ndarray
    T_ee_board: np.ndarray


def realistic_eye_to_hand(n: int = 20, seed: int = 0, K: np.ndarray = K_LENS,
                          distortion: np.ndarray = DIST_LENS) -> HandEyeSet:
    """`n` samples of the 28 x 20 cm board on the gripper seen by a fixed distorted camera 0.7-1.0 m away (an
    eye-to-hand camera overlooking the workspace; farther, blur and noise defeat the 3 cm markers), spread over
    the image and tilted up to 25 degrees; every sample shows at least 12 ChArUco corners."""
    rng = np.random.default_rng(seed)
    images, T_base_ee = [], []
    while len(images) < n:
        R = Rotation.from_euler("xyz", rng.uniform([-25, -25, -30], [25, 25, 30]), degrees=True).as_matrix()
        z = rng.uniform(0.7, 1.0)
        centre = np.array([rng.uniform(-0.3, 0.3) * z, rng.uniform(-0.21, 0.21) * z, z])
        T_cam_board = transform(R, centre - R @ board_centre())
        img = sensor(render_view(BOARD, K, T_cam_board, SIZE, distortion=distortion), rng, blur_px=1.0,
                     read_noise=3.0)
        det = BOARD.detect(img, min_corners=12)
        if det is None:
            continue  # mostly out of view: a person would not take this sample either
        images.append(img)
        T_base_ee.append(T_BASE_CAMERA @ T_cam_board @ np.linalg.inv(T_EE_BOARD))
    return HandEyeSet(images, T_base_ee, K, distortion, T_BASE_CAMERA, T_EE_BOARD)
