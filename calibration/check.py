"""Render-and-compare: the simulated scene seen from the calibrated camera, overlaid on the real image and
scored; optionally the camera pose refined by maximizing that alignment.

Score: a symmetric chamfer distance on Canny edges - the mean distance (px) from each simulated edge pixel to
the nearest real edge and back, each truncated at `max_px` so clutter the simulator lacks counts only so
much; 0 is perfect. The real image is undistorted with camera.yaml's distortion first, because the
simulator renders an ideal pinhole camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from core.camera import CameraSpec


def edges(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    return cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 1.2), 40, 120) > 0


def _chamfer(from_edges: np.ndarray, to_edges: np.ndarray, max_px: float) -> float:
    if not from_edges.any() or not to_edges.any():
        return max_px
    dist = cv2.distanceTransform((~to_edges).astype(np.uint8), cv2.DIST_L2, 5)
    return float(np.minimum(dist[from_edges], max_px).mean())


def alignment_score(sim_rgb: np.ndarray, real_rgb: np.ndarray, max_px: float = 20.0) -> float:
    """Symmetric truncated chamfer distance (px) between the simulated and the real edges."""
    sim_e, real_e = edges(sim_rgb), edges(real_rgb)
    return 0.5 * (_chamfer(sim_e, real_e, max_px) + _chamfer(real_e, sim_e, max_px))


def overlay(sim_rgb: np.ndarray, real_rgb: np.ndarray) -> np.ndarray:
    """Side by side: a 50/50 blend, and the real image with the simulator's edges in green."""
    blend = cv2.addWeighted(real_rgb, 0.5, sim_rgb, 0.5, 0)
    marked = real_rgb.copy()
    marked[edges(sim_rgb)] = (0, 255, 0)
    return np.concatenate([blend, marked], axis=1)


class SimCameraView:
    """A ManiSkill task scene rendered from a movable camera (the same placement code as training's envs)."""

    def __init__(self, task: str, spec: CameraSpec, seed: int = 0, qpos: np.ndarray | None = None):
        import tempfile
        from pathlib import Path

        from training.envs.maniskill import ManiSkillChunkEnv, ManiSkillConfig

        self._tmp = tempfile.TemporaryDirectory()
        path = Path(self._tmp.name) / "camera.yaml"
        spec.save(path)
        self.spec = spec
        self.env = ManiSkillChunkEnv(task, ManiSkillConfig(tasks=(task,), num_envs=1, camera_file=str(path),
                                                           image_size=(spec.height, spec.width),
                                                           camera_name=spec.name))
        self.env.sim_reset(seed)
        if qpos is not None:
            self.env.raw.agent.robot.set_qpos(np.asarray(qpos, np.float32)[None])

    def render(self, T_base_camera: np.ndarray | None = None) -> np.ndarray:
        import sapien

        if T_base_camera is not None:
            spec = CameraSpec(self.spec.name, self.spec.width, self.spec.height, self.spec.K, T_base_camera)
            raw = self.env.raw
            T_world_base = raw.agent.robot.pose.to_transformation_matrix()[0].cpu().numpy()
            raw._sensors[self.spec.name].camera.set_local_pose(sapien.Pose(spec.sapien_pose_in(T_world_base)))
        return self.env.render_images()[self.spec.name]

    def close(self) -> None:
        self.env.close()
        self._tmp.cleanup()


@dataclass
class CheckResult:
    score_before: float
    score_after: float | None
    T_base_camera: np.ndarray  # refined (or the given one when not refined)
    delta_mm: float
    delta_deg: float
    overlay_before: np.ndarray
    overlay_after: np.ndarray | None


def perturb(T: np.ndarray, x: np.ndarray) -> np.ndarray:
    """T moved by x = (rotation vector in degrees about the camera's own axes, translation in mm in its frame)."""
    D = np.eye(4)
    D[:3, :3] = Rotation.from_rotvec(np.radians(x[:3])).as_matrix()
    D[:3, 3] = x[3:] / 1000.0
    return T @ D


def check_alignment(view: SimCameraView, real_rgb: np.ndarray, refine: bool = False, max_evals: int = 240
                    ) -> CheckResult:
    spec = view.spec
    if real_rgb.shape[:2] != (spec.height, spec.width):
        raise ValueError(f"the real image is {real_rgb.shape[1]}x{real_rgb.shape[0]} but camera.yaml describes "
                         f"{spec.width}x{spec.height}; use an image from the calibrated camera mode")
    real = cv2.undistort(real_rgb, spec.K, spec.distortion) if np.any(spec.distortion) else real_rgb
    T0 = spec.T_base_camera
    sim0 = view.render(T0)
    before = alignment_score(sim0, real)
    if not refine:
        return CheckResult(before, None, T0, 0.0, 0.0, overlay(sim0, real), None)

    def cost(x):
        return alignment_score(view.render(perturb(T0, x)), real)

    # Nelder-Mead needs no gradients (the score is piecewise constant at the pixel scale); restarted with a
    # smaller simplex (1 deg / 10 mm, then 0.3 deg / 3 mm), which gets it out of the early stalls.
    x, best = np.zeros(6), before
    for scale in (1.0, 0.3):
        simplex = np.vstack([x, x + np.diag([scale] * 3 + [10 * scale] * 3)])
        res = minimize(cost, x, method="Nelder-Mead", options={"initial_simplex": simplex, "maxfev": max_evals // 2,
                                                               "xatol": 0.02, "fatol": 1e-3})
        if res.fun < best:
            x, best = res.x, float(res.fun)
    T1 = perturb(T0, x)
    sim1 = view.render(T1)
    after = alignment_score(sim1, real)
    from calibration.handeye import pose_difference

    d_m, d_deg = pose_difference(T0, T1)
    return CheckResult(before, after, T1, d_m * 1e3, d_deg, overlay(sim0, real), overlay(sim1, real))
