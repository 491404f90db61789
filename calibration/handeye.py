"""Hand-eye calibration with OpenCV's solvers: where the camera is relative to the robot.

    eye-to-hand   camera fixed in the cell, board held by the gripper  -> T_base_camera
    eye-in-hand   camera on the wrist, board fixed in the cell          -> T_ee_camera

Each sample pairs the end-effector pose T_base_ee (from the robot) with the board pose T_camera_board (PnP
on the board's ChArUco corners). The unknown X satisfies, for every sample i,
    eye-to-hand:  inv(T_base_ee_i) @ X @ T_camera_board_i = T_ee_board        (the same for all i)
    eye-in-hand:  T_base_ee_i @ X @ T_camera_board_i      = T_base_board
so the spread of that product over the samples is the residual we report (and use to reject outliers).
Every OpenCV method solves the same data; their disagreement is the consistency figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from calibration.board import CalibrationError, Detection

METHODS = {"park": cv2.CALIB_HAND_EYE_PARK, "tsai": cv2.CALIB_HAND_EYE_TSAI, "horaud": cv2.CALIB_HAND_EYE_HORAUD,
           "andreff": cv2.CALIB_HAND_EYE_ANDREFF, "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS}
MODES = ("eye-to-hand", "eye-in-hand")
MIN_SAMPLES = 5
MIN_ROTATION_DEG = 10.0


def board_pose(det: Detection, K: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """T_camera_board (4x4) from a detection: planar PnP (IPPE) refined by Levenberg-Marquardt."""
    ok, rvec, tvec = cv2.solvePnP(det.object_points, det.corners, K, distortion, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("PnP failed on a board detection")
    rvec, tvec = cv2.solvePnPRefineLM(det.object_points, det.corners, K, distortion, rvec, tvec)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.reshape(3)
    return T


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def pose_difference(A: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    """(translation distance in metres, rotation angle in degrees) between two poses."""
    dR = A[:3, :3].T @ B[:3, :3]
    angle = np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1.0, 1.0)))
    return float(np.linalg.norm(A[:3, 3] - B[:3, 3])), float(angle)


@dataclass
class HandEyeResult:
    mode: str
    T: np.ndarray  # T_base_camera (eye-to-hand) or T_ee_camera (eye-in-hand)
    method: str
    residual_mm: dict[str, float]  # sample -> translation residual (kept samples)
    residual_deg: dict[str, float]
    solver_spread_mm: float  # largest distance of another method's answer from the chosen one
    solver_spread_deg: float
    per_method: dict[str, np.ndarray] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "T_base_camera" if self.mode == "eye-to-hand" else "T_ee_camera"

    def summary(self) -> dict:
        r_mm, r_deg = list(self.residual_mm.values()), list(self.residual_deg.values())
        return {"mode": self.mode, self.name: self.T.tolist(), "method": self.method,
                "samples_used": len(r_mm), "residual_mm_rms": float(np.sqrt(np.mean(np.square(r_mm)))),
                "residual_deg_rms": float(np.sqrt(np.mean(np.square(r_deg)))),
                "solver_spread_mm": self.solver_spread_mm, "solver_spread_deg": self.solver_spread_deg,
                "rejected": self.rejected}


def check_poses(T_base_ee: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Every robot pose must be a finite rigid transform in metres; say which sample is not."""
    for name, T in zip(names, T_base_ee, strict=True):
        T = np.asarray(T, float)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise CalibrationError(f"{name}: T_base_ee must be a finite 4x4 matrix, got shape {T.shape}"
                                   + ("" if T.shape != (4, 4) else " with NaN or inf"))
        R = T[:3, :3]
        if not np.allclose(T[3], [0, 0, 0, 1]) or not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or \
                np.linalg.det(R) < 0:
            raise CalibrationError(f"{name}: T_base_ee is not a rigid transform (rotation not orthonormal or bottom "
                                   "row not [0, 0, 0, 1]); poses must be homogeneous 4x4 matrices")
        if np.linalg.norm(T[:3, 3]) > 5.0:
            raise CalibrationError(f"{name}: the end effector is {np.linalg.norm(T[:3, 3]):.1f} m from the base; "
                                   "poses must be in metres (were they written in millimetres?)")


def check_motion(T_base_ee: Sequence[np.ndarray]) -> None:
    """Hand-eye needs rotations about at least two different axes; pure translations leave X unobservable."""
    Rs = Rotation.from_matrix(np.stack([T[:3, :3] for T in T_base_ee]))
    rel = Rs[0].inv() * Rs  # every pose relative to the first
    angles = np.degrees(rel.magnitude())
    if angles.max() < MIN_ROTATION_DEG:
        raise CalibrationError(f"the end-effector barely rotates between samples (at most {angles.max():.1f} deg): "
                               "motion that is (nearly) pure translation cannot determine the camera pose; "
                               f"tilt the gripper by {MIN_ROTATION_DEG:.0f}+ degrees about different axes")
    axes = rel.as_rotvec()[angles > MIN_ROTATION_DEG / 2]
    axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    if len(axes) < 2 or np.linalg.svd(axes, compute_uv=False)[1] < 0.1:
        raise CalibrationError("all end-effector rotations are about one axis: hand-eye is then degenerate; "
                               "add samples rotated about a second axis")


def _solve(T_base_ee, T_cam_board, mode: str, method: int) -> np.ndarray:
    robot = T_base_ee if mode == "eye-in-hand" else [_inv(T) for T in T_base_ee]  # eye-to-hand: base in ee
    R, t = cv2.calibrateHandEye([T[:3, :3] for T in robot], [T[:3, 3] for T in robot],
                                [T[:3, :3] for T in T_cam_board], [T[:3, 3] for T in T_cam_board], method=method)
    X = np.eye(4)
    X[:3, :3], X[:3, 3] = R, t.reshape(3)
    return X


def _chain(X, T_base_ee, T_cam_board, mode) -> list[np.ndarray]:
    """Per sample, the board's pose in the frame it is fixed to (ee for eye-to-hand, base for eye-in-hand)."""
    return [(_inv(E) if mode == "eye-to-hand" else E) @ X @ B for E, B in zip(T_base_ee, T_cam_board, strict=True)]


def _mean_pose(poses: Sequence[np.ndarray]) -> np.ndarray:
    mean = np.eye(4)
    mean[:3, :3] = Rotation.from_matrix(np.stack([C[:3, :3] for C in poses])).mean().as_matrix()
    mean[:3, 3] = np.mean([C[:3, 3] for C in poses], axis=0)
    return mean


def board_mount(X: np.ndarray, T_base_ee: Sequence[np.ndarray], T_camera_board: Sequence[np.ndarray],
                mode: str) -> np.ndarray:
    """The board's fixed pose given X: T_ee_board (eye-to-hand) or T_base_board (eye-in-hand), averaged."""
    return _mean_pose(_chain(X, T_base_ee, T_camera_board, mode))


def _residuals(X, T_base_ee, T_cam_board, mode) -> tuple[np.ndarray, np.ndarray]:
    chain = _chain(X, T_base_ee, T_cam_board, mode)
    mean = _mean_pose(chain)
    diffs = np.array([pose_difference(mean, C) for C in chain])
    return diffs[:, 0] * 1e3, diffs[:, 1]


def solve_hand_eye(T_base_ee: Sequence[np.ndarray], T_camera_board: Sequence[np.ndarray], mode: str,
                   names: Sequence[str] | None = None, method: str = "park", outlier_mm: float = 5.0,
                   outlier_deg: float = 1.0) -> HandEyeResult:
    """Solve, reject samples whose residual exceeds max(outlier, 3x median) and solve again."""
    if mode not in MODES:
        raise CalibrationError(f"mode must be one of {MODES}, got {mode!r}")
    if method not in METHODS:
        raise CalibrationError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if len(T_base_ee) != len(T_camera_board):
        raise CalibrationError(f"{len(T_base_ee)} robot poses but {len(T_camera_board)} board poses")
    names = list(names) if names is not None else [f"sample_{i}" for i in range(len(T_base_ee))]
    check_poses(T_base_ee, names)
    if len(T_base_ee) < MIN_SAMPLES:
        raise CalibrationError(f"{len(T_base_ee)} samples; hand-eye needs at least {MIN_SAMPLES} (15 or more for "
                               "millimetre accuracy), with the gripper rotated about different axes")
    check_motion(T_base_ee)
    keep = list(range(len(names)))
    rejected: dict[str, str] = {}
    X = _solve(T_base_ee, T_camera_board, mode, METHODS[method])
    r_mm, r_deg = _residuals(X, T_base_ee, T_camera_board, mode)
    lim_mm, lim_deg = max(outlier_mm, 3 * np.median(r_mm)), max(outlier_deg, 3 * np.median(r_deg))
    bad = [i for i in keep if r_mm[i] > lim_mm or r_deg[i] > lim_deg]
    if bad and len(keep) - len(bad) >= MIN_SAMPLES:
        for i in bad:
            rejected[names[i]] = f"residual {r_mm[i]:.1f} mm / {r_deg[i]:.2f} deg (limit {lim_mm:.1f} / {lim_deg:.2f})"
        keep = [i for i in keep if i not in bad]
    Es, Bs = [T_base_ee[i] for i in keep], [T_camera_board[i] for i in keep]
    per_method = {m: _solve(Es, Bs, mode, flag) for m, flag in METHODS.items()}
    X = per_method[method]
    r_mm, r_deg = _residuals(X, Es, Bs, mode)
    spread = np.array([pose_difference(X, Y) for Y in per_method.values()])
    return HandEyeResult(mode, X, method, {names[i]: float(v) for i, v in zip(keep, r_mm, strict=True)},
                         {names[i]: float(v) for i, v in zip(keep, r_deg, strict=True)},
                         float(spread[:, 0].max() * 1e3), float(spread[:, 1].max()), per_method, rejected)
