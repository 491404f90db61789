"""Joint hand-eye refinement: one least-squares problem over every ChArUco corner of every sample.

The textbook two-step (calibrateCamera, then calibrateHandEye with K fixed) solves for the camera's intrinsics
from the board views alone and then for its pose from board poses that inherit the intrinsics' errors. With a
distorted lens and a board a metre away, that leaves the camera pose several millimetres off. Here every
corner observation constrains everything at once, through the robot's kinematics:

    eye-to-hand:  T_camera_board_i = inv(T_base_camera) @ T_base_ee_i @ T_ee_board
    eye-in-hand:  T_camera_board_i = inv(T_ee_camera) @ inv(T_base_ee_i) @ T_base_board
    residual_ij  = project(K, distortion, T_camera_board_i, corner_j) - detected_ij       (pixels)

over intrinsics (fx, fy, cx, cy), distortion (the chosen model), the camera pose X and the board pose Y, with
scipy's least_squares started from the two-step result. The robust pass (soft-L1, scale ~1 px) finds samples
whose robot pose disagrees with their image (rejected above `outlier_px`); a plain least-squares pass on the
rest gives the answer and its covariance (1-sigma, from corner noise). Refits without each fifth of the samples
give a jackknife standard error, which also sees errors shared by all corners of a sample. Both go into
camera.yaml, so its quality block says how well the camera is known rather than how self-consistent it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from calibration.board import CalibrationError, Detection
from calibration.handeye import MIN_SAMPLES

# Distortion models: name -> (number of OpenCV coefficients, indices of the free ones among them).
# OpenCV's order is k1, k2, p1, p2, k3, k4, k5, k6 (k4..k6 form the rational model's denominator).
DISTORTION_MODELS: dict[str, tuple[int, tuple[int, ...]]] = {
    "no-k3": (5, (0, 1, 2, 3)),
    "k3": (5, (0, 1, 2, 3, 4)),
    "rational": (8, (0, 1, 2, 3, 4, 5, 6, 7)),
}
CV_FLAGS = {"no-k3": cv2.CALIB_FIX_K3, "k3": 0, "rational": cv2.CALIB_RATIONAL_MODEL}


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def _perturbed(T0: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """T0 moved by a 6-vector (rotation vector applied on the right, translation added), 4x4."""
    T = np.eye(4)
    T[:3, :3] = T0[:3, :3] @ Rotation.from_rotvec(delta[:3]).as_matrix()
    T[:3, 3] = T0[:3, 3] + delta[3:]
    return T


@dataclass
class JointResult:
    mode: str
    K: np.ndarray  # (3, 3)
    distortion: np.ndarray  # (5,) or (8,)
    distortion_model: str
    X: np.ndarray  # T_base_camera (eye-to-hand) or T_ee_camera (eye-in-hand)
    Y: np.ndarray  # T_ee_board (eye-to-hand) or T_base_board (eye-in-hand)
    rms_px: float  # reprojection RMS over the kept samples' corners
    sample_rms_px: dict[str, float]  # kept sample -> its reprojection RMS
    sigma: dict[str, float]  # 1-sigma from the covariance: fx, fy, cx, cy (px); position (mm); rotation (deg)
    leave_out: dict[str, float] = field(default_factory=dict)  # jackknife over fifths of the samples (_leave_out)
    rejected: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "T_base_camera" if self.mode == "eye-to-hand" else "T_ee_camera"

    def summary(self) -> dict:
        return {"mode": self.mode, self.name: self.X.tolist(), "method": "joint", "solver": "joint",
                "K": self.K.tolist(), "distortion": self.distortion.tolist(),
                "distortion_model": self.distortion_model, "samples_used": len(self.sample_rms_px),
                "reprojection_rms_px": self.rms_px, "sample_rms_px": self.sample_rms_px,
                "sigma": self.sigma, "leave_out": self.leave_out, "rejected": self.rejected,
                "board_pose": self.Y.tolist()}


class _Problem:
    """Parameters [fx, fy, cx, cy, free distortion coefficients, dX (6), dY (6)] around (X0, Y0)."""

    def __init__(self, dets: Sequence[Detection], T_base_ee: Sequence[np.ndarray], mode: str, model: str,
                 X0: np.ndarray, Y0: np.ndarray, fix_intrinsics: bool, K0: np.ndarray, dist0: np.ndarray):
        self.dets, self.mode, self.X0, self.Y0 = list(dets), mode, X0, Y0
        self.robot = [T if mode == "eye-to-hand" else _inv(T) for T in T_base_ee]
        self.n_coeffs, self.free = DISTORTION_MODELS[model]
        self.fix_intrinsics, self.K0 = fix_intrinsics, K0
        self.dist0 = np.zeros(self.n_coeffs)
        self.dist0[: min(len(dist0), self.n_coeffs)] = np.asarray(dist0).reshape(-1)[: self.n_coeffs]
        self.n_intr = 0 if fix_intrinsics else 4 + len(self.free)

    def x0(self) -> np.ndarray:
        intr = [] if self.fix_intrinsics else [self.K0[0, 0], self.K0[1, 1], self.K0[0, 2], self.K0[1, 2],
                                                *self.dist0[list(self.free)]]
        return np.concatenate([intr, np.zeros(12)])

    def unpack(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.fix_intrinsics:
            K, dist = self.K0, self.dist0
        else:
            K = np.array([[p[0], 0.0, p[2]], [0.0, p[1], p[3]], [0.0, 0.0, 1.0]])
            dist = self.dist0.copy()
            dist[list(self.free)] = p[4: self.n_intr]
        X = _perturbed(self.X0, p[self.n_intr: self.n_intr + 6])
        Y = _perturbed(self.Y0, p[self.n_intr + 6: self.n_intr + 12])
        return K, dist, X, Y

    def sample_residuals(self, p: np.ndarray, indices: Sequence[int]) -> list[np.ndarray]:
        """Per sample, the reprojection residuals (M_i, 2) in pixels."""
        K, dist, X, Y = self.unpack(p)
        X_inv = _inv(X)
        out = []
        for i in indices:
            T = X_inv @ self.robot[i] @ Y  # T_camera_board of sample i
            d = self.dets[i]
            proj, _ = cv2.projectPoints(d.object_points.astype(np.float64), cv2.Rodrigues(T[:3, :3])[0],
                                        T[:3, 3], K, dist)
            out.append(proj.reshape(-1, 2) - d.corners)
        return out

    def residuals(self, p: np.ndarray, indices: Sequence[int]) -> np.ndarray:
        return np.concatenate([r.reshape(-1) for r in self.sample_residuals(p, indices)])


def _solve(problem: _Problem, indices: Sequence[int], start: np.ndarray, loss: str, f_scale: float = 1.0):
    return least_squares(problem.residuals, start, args=(list(indices),), method="trf", loss=loss,
                         f_scale=f_scale, x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=200)


def _sigma(problem: _Problem, fit) -> dict[str, float]:
    """1-sigma uncertainties from the Gauss-Newton covariance s^2 inv(J^T J), s^2 the residual variance."""
    J, r = fit.jac, fit.fun
    dof = max(len(r) - len(fit.x), 1)
    try:
        cov = np.linalg.inv(J.T @ J) * float(r @ r) / dof
    except np.linalg.LinAlgError:
        raise CalibrationError("the joint refinement is degenerate (its normal matrix is singular): add samples "
                               "with the board tilted differently and the gripper rotated about other axes") from None
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    n = problem.n_intr
    out = {} if problem.fix_intrinsics else {"fx_px": sd[0], "fy_px": sd[1], "cx_px": sd[2], "cy_px": sd[3]}
    # X's rotation is perturbed on the right, so its covariance is in X's own frame: fine for an angle magnitude.
    # Its translation is in the base frame; position_mm is the 1-sigma radius of the three axes together.
    out["rotation_deg"] = float(np.degrees(np.sqrt(np.trace(cov[n: n + 3, n: n + 3]))))
    out["position_mm"] = float(1e3 * np.sqrt(np.trace(cov[n + 3: n + 6, n + 3: n + 6])))
    return {k: float(v) for k, v in out.items()}


def refine_hand_eye(dets: Sequence[Detection], T_base_ee: Sequence[np.ndarray], mode: str, K0: np.ndarray,
                    dist0: np.ndarray, X0: np.ndarray, Y0: np.ndarray, names: Sequence[str] | None = None,
                    distortion_model: str = "k3", fix_intrinsics: bool = False, outlier_px: float = 3.0,
                    outlier_factor: float = 4.0, leave_out_folds: int = 5) -> JointResult:
    """Refine intrinsics, distortion, X and Y jointly from a two-step start (K0, dist0, X0, Y0).

    A sample is rejected when its reprojection RMS after the robust pass exceeds max(outlier_px, outlier_factor x
    the median sample RMS); the answer is then refitted on the rest with plain least squares."""
    if distortion_model not in DISTORTION_MODELS:
        raise CalibrationError(f"distortion model must be one of {sorted(DISTORTION_MODELS)}, got "
                               f"{distortion_model!r}")
    names = list(names) if names is not None else [f"sample_{i}" for i in range(len(dets))]
    if not len(dets) == len(T_base_ee) == len(names):
        raise CalibrationError(f"{len(dets)} detections, {len(T_base_ee)} robot poses and {len(names)} names")
    problem = _Problem(dets, T_base_ee, mode, distortion_model, X0, Y0, fix_intrinsics, np.asarray(K0, float),
                       np.asarray(dist0, float))
    every = list(range(len(dets)))
    robust = _solve(problem, every, problem.x0(), "soft_l1", f_scale=1.0)
    rms = np.array([np.sqrt(np.mean(np.sum(r**2, 1))) for r in problem.sample_residuals(robust.x, every)])
    limit = max(outlier_px, outlier_factor * float(np.median(rms)))
    keep = [i for i in every if rms[i] <= limit]
    if len(keep) < MIN_SAMPLES:
        raise CalibrationError(f"only {len(keep)} samples reproject within {limit:.1f} px after the joint fit (need "
                               f"{MIN_SAMPLES}): the robot poses do not match the images - check that poses.jsonl "
                               "holds T_base_ee of the flange the board is mounted on, in metres")
    rejected = {names[i]: f"reprojection RMS {rms[i]:.1f} px > {limit:.1f} px after the joint fit (its robot pose "
                          "disagrees with its image)" for i in every if i not in keep}
    fit = _solve(problem, keep, robust.x, "linear")
    K, dist, X, Y = problem.unpack(fit.x)
    per_sample = problem.sample_residuals(fit.x, keep)
    sample_rms = {names[i]: float(np.sqrt(np.mean(np.sum(r**2, 1)))) for i, r in zip(keep, per_sample, strict=True)}
    all_r = np.concatenate(per_sample)
    result = JointResult(mode, K, dist, distortion_model, X, Y, float(np.sqrt(np.mean(np.sum(all_r**2, 1)))),
                         sample_rms, _sigma(problem, fit), rejected=rejected)
    if leave_out_folds >= 2 and len(keep) >= leave_out_folds + MIN_SAMPLES:
        result.leave_out = _leave_out(problem, keep, fit.x, X, K, leave_out_folds)
    return result


def _leave_out(problem: _Problem, keep: list[int], x: np.ndarray, X: np.ndarray, K: np.ndarray,
               folds: int) -> dict[str, float]:
    """Refit without each of `folds` interleaved fifths: the grouped-jackknife standard error of X's position and
    rotation and of the principal point, se = sqrt((g - 1) / g * sum_k |theta_k - mean|^2), and the largest
    move. Unlike the covariance it also sees errors shared by a sample's corners (a robot pose a little off)."""
    t, rot, pp = [], [], []
    for k in range(folds):
        subset = [i for j, i in enumerate(keep) if j % folds != k]
        Kk, _, Xk, _ = problem.unpack(_solve(problem, subset, x, "linear").x)
        t.append(Xk[:3, 3])
        rot.append(Rotation.from_matrix(X[:3, :3].T @ Xk[:3, :3]).as_rotvec())
        pp.append(Kk[:2, 2])

    def se(values: list[np.ndarray]) -> float:
        v = np.asarray(values)
        return float(np.sqrt((folds - 1) / folds * np.sum((v - v.mean(0)) ** 2)))

    return {"folds": folds, "position_mm": 1e3 * se(t), "rotation_deg": float(np.degrees(se(rot))),
            "principal_point_px": se(pp),
            "max_move_mm": 1e3 * float(np.max(np.linalg.norm(np.asarray(t) - X[:3, 3], axis=1)))}


SOLVERS = ("joint", "two-step")


@dataclass
class HandEyeCalibration:
    """What `pirl-calibrate handeye` writes: the answer, the intrinsics it used or refined, and its quality."""

    solver: str
    mode: str
    width: int
    height: int
    K: np.ndarray
    distortion: np.ndarray
    X: np.ndarray
    summary: dict

    def to_dict(self) -> dict:
        return {**self.summary, "solver": self.solver, "width": self.width, "height": self.height,
                "K": self.K.tolist(), "distortion": self.distortion.tolist()}


def calibrate_hand_eye(dets: Sequence[Detection], T_base_ee: Sequence[np.ndarray], mode: str,
                       size: tuple[int, int], K0: np.ndarray, dist0: np.ndarray, names: Sequence[str] | None = None,
                       solver: str = "joint", method: str = "park", distortion_model: str = "k3",
                       fix_intrinsics: bool = False, outlier_px: float = 3.0, outlier_mm: float = 5.0,
                       outlier_deg: float = 1.0) -> HandEyeCalibration:
    """Hand-eye from detections and robot poses, starting from intrinsics (K0, dist0): the two-step solution
    (OpenCV's `method`, samples rejected by pose consistency), refined jointly unless solver == "two-step"."""
    from calibration.handeye import board_mount, board_pose, solve_hand_eye

    if solver not in SOLVERS:
        raise CalibrationError(f"solver must be one of {SOLVERS}, got {solver!r}")
    names = list(names) if names is not None else [f"sample_{i}" for i in range(len(dets))]
    K0, dist0 = np.asarray(K0, float), np.asarray(dist0, float).reshape(-1)
    T_board = [board_pose(d, K0, dist0) for d in dets]
    two = solve_hand_eye(T_base_ee, T_board, mode, names=names, method=method, outlier_mm=outlier_mm,
                         outlier_deg=outlier_deg)
    start = {**two.summary(), "per_method": {m: X.tolist() for m, X in two.per_method.items()}}
    if solver == "two-step":
        return HandEyeCalibration(solver, mode, size[0], size[1], K0, dist0, two.T, start)
    kept = [i for i, n in enumerate(names) if n not in two.rejected]
    Y0 = board_mount(two.T, [T_base_ee[i] for i in kept], [T_board[i] for i in kept], mode)
    joint = refine_hand_eye(dets, T_base_ee, mode, K0, dist0, two.T, Y0, names, distortion_model, fix_intrinsics,
                            outlier_px)
    return HandEyeCalibration(solver, mode, size[0], size[1], joint.K, joint.distortion, joint.X,
                              {**joint.summary(), "start": start})
