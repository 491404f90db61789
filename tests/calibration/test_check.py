"""Render-and-compare: the overlay and score, and the refinement pulling a misplaced camera towards the truth
(the "real" image is a noisy render from the true camera pose)."""

import cv2
import numpy as np
import pytest

pytest.importorskip("mani_skill")

from calibration.check import alignment_score, perturb  # noqa: E402
from calibration.cli import main  # noqa: E402
from core.camera import CameraSpec, look_at  # noqa: E402


def _pixel_error(spec_a: CameraSpec, T_b: np.ndarray) -> float:
    """Mean image distance (px) between where two camera poses put workspace points (the table top and above)."""
    g = np.stack(np.meshgrid(np.linspace(0.3, 0.8, 6), np.linspace(-0.25, 0.25, 6), [0.0, 0.15]), -1).reshape(-1, 3)
    spec_b = CameraSpec(spec_a.name, spec_a.width, spec_a.height, spec_a.K, T_b)
    return float(np.linalg.norm(spec_a.project(g) - spec_b.project(g), axis=1).mean())


def test_score_is_zero_for_identical_images_and_grows_with_shift():
    rng = np.random.default_rng(0)
    img = np.zeros((120, 160, 3), np.uint8)
    cv2.rectangle(img, (40, 30), (100, 90), (255, 255, 255), -1)
    assert alignment_score(img, img) == 0.0
    shifted = np.roll(img, 4, axis=1)
    assert 1.0 < alignment_score(shifted, img) < alignment_score(np.roll(img, 12, axis=1), img)
    assert alignment_score(img, rng.integers(0, 2, img.shape, dtype=np.uint8)) > 0


def test_check_overlays_and_refinement_reduces_the_misalignment(tmp_path):
    truth = look_at("base_camera", [1.0, 0.35, 0.55], [0.3, 0.0, 0.05], 160, 120, fov_y_deg=55)
    from calibration.check import SimCameraView

    view = SimCameraView("PushCube-v1", truth, seed=0)
    try:
        real = view.render(truth.T_base_camera)
    finally:
        view.close()
    rng = np.random.default_rng(1)
    real = np.clip(real + rng.normal(0, 3, real.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "real.png"), cv2.cvtColor(real, cv2.COLOR_RGB2BGR))
    off = perturb(truth.T_base_camera, np.array([0.8, -0.6, 0.5, 8.0, -6.0, 5.0]))
    CameraSpec(truth.name, truth.width, truth.height, truth.K, off).save(tmp_path / "camera.yaml")
    assert main(["check", "--camera", str(tmp_path / "camera.yaml"), "--real", str(tmp_path / "real.png"),
                 "--sim-task", "PushCube-v1", "--refine", "--write-refined", str(tmp_path / "refined.yaml"),
                 "--out", str(tmp_path / "check.png")]) == 0
    overlay = cv2.imread(str(tmp_path / "check.png"))
    assert overlay.shape == (2 * 120, 2 * 160, 3)  # before / after rows, blend | edges columns
    refined = CameraSpec.load(tmp_path / "refined.yaml")
    before, after = _pixel_error(truth, off), _pixel_error(truth, refined.T_base_camera)
    assert after < 0.6 * before, (before, after)
    assert refined.quality["render_compare_score_px"] < 1.0
