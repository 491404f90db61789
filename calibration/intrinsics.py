"""Camera intrinsics from ChArUco views (OpenCV), with per-view reprojection errors and rejection of bad
views, or a RealSense's factory intrinsics.

    result = calibrate_intrinsics(images, board)      # K, distortion, per-view errors, rejected views
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.board import Board, CalibrationError, Detection

MIN_VIEWS = 6


@dataclass
class IntrinsicsResult:
    width: int
    height: int
    K: np.ndarray  # (3, 3)
    distortion: np.ndarray  # (5,) k1, k2, p1, p2, k3 or, for the rational model, (8,) ... k4, k5, k6
    rms: float  # overall reprojection RMS (px) of the kept views
    view_errors: dict[str, float]  # name -> RMS reprojection error (px), kept views
    rejected: dict[str, str] = field(default_factory=dict)  # name -> why it was left out
    distortion_model: str = "no-k3"

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "K": self.K.tolist(),
                "distortion": self.distortion.tolist(), "distortion_model": self.distortion_model,
                "rms_px": self.rms, "view_errors_px": self.view_errors, "rejected": self.rejected, "source": "charuco"}


def _calibrate(dets: list[Detection], size: tuple[int, int], flags: int, n_coeffs: int):
    obj = [d.object_points for d in dets]
    img = [d.corners for d in dets]
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, size, None, None, flags=flags)
    errors = []
    for d, r, t in zip(dets, rvecs, tvecs, strict=True):
        proj, _ = cv2.projectPoints(d.object_points, r, t, K, dist)
        errors.append(float(np.sqrt(((proj.reshape(-1, 2) - d.corners) ** 2).sum(1).mean())))
    return float(rms), K, dist.reshape(-1)[:n_coeffs], errors


def calibrate_intrinsics(images: Sequence[np.ndarray], board: Board, names: Sequence[str] | None = None,
                         max_view_error_px: float = 1.0, min_corners: int = 8,
                         distortion_model: str = "no-k3") -> IntrinsicsResult:
    """K and distortion from views of `board`. Views without the board, with fewer than `min_corners`
    corners, or whose reprojection error exceeds `max_view_error_px` (and 3x the median) after a first fit
    are rejected, and the camera is refitted on the rest. `distortion_model`: no-k3 (k1, k2, p1, p2: few views
    do not pin down k3), k3 (adds k3: wide or strongly distorted lenses) or rational (OpenCV's 8 coefficients)."""
    from calibration.refine import CV_FLAGS, DISTORTION_MODELS

    if distortion_model not in DISTORTION_MODELS:
        raise CalibrationError(f"distortion model must be one of {sorted(DISTORTION_MODELS)}, got "
                               f"{distortion_model!r}")
    names = list(names) if names is not None else [f"view_{i}" for i in range(len(images))]
    if len(names) != len(images):
        raise ValueError("give one name per image")
    if not images:
        raise CalibrationError("no images given")
    sizes = {(im.shape[1], im.shape[0]) for im in images}
    if len(sizes) > 1:
        raise CalibrationError(f"images have different resolutions {sorted(sizes)}; calibrate one camera mode "
                               "at a time")
    size = sizes.pop()
    rejected: dict[str, str] = {}
    kept: list[tuple[str, Detection]] = []
    for name, im in zip(names, images, strict=True):
        det = board.detect(im, min_corners=min_corners)
        if det is None:
            rejected[name] = f"no board found (fewer than {min_corners} ChArUco corners)"
        else:
            kept.append((name, det))
    if not kept:
        raise CalibrationError(f"no board found in any of the {len(images)} images: check that board.yaml matches "
                               f"the printed board (dictionary {board.dictionary}, {board.squares_x}x"
                               f"{board.squares_y} squares) and that the board is in view and in focus")
    if len(kept) < MIN_VIEWS:
        raise CalibrationError(f"only {len(kept)} usable views ({', '.join(sorted(rejected)) or 'none'} rejected: "
                               f"{'; '.join(f'{k}: {v}' for k, v in rejected.items()) or '-'}); take at least "
                               f"{MIN_VIEWS}, with the board tilted differently and covering the image corners")
    flags, n_coeffs = CV_FLAGS[distortion_model], DISTORTION_MODELS[distortion_model][0]
    rms, K, dist, errors = _calibrate([d for _, d in kept], size, flags, n_coeffs)
    limit = max(max_view_error_px, 3 * float(np.median(errors)))
    bad = [i for i, e in enumerate(errors) if e > limit]
    if bad and len(kept) - len(bad) >= MIN_VIEWS:
        for i in bad:
            rejected[kept[i][0]] = f"reprojection error {errors[i]:.2f} px > {limit:.2f} px"
        kept = [k for i, k in enumerate(kept) if i not in bad]
        rms, K, dist, errors = _calibrate([d for _, d in kept], size, flags, n_coeffs)
    if rms > 3 * max_view_error_px:
        raise CalibrationError(f"reprojection RMS {rms:.2f} px even after rejecting bad views: the board "
                               f"description probably does not match the printed board (square_length, "
                               f"squares_x/y) or the images are blurred")
    return IntrinsicsResult(size[0], size[1], K, dist, rms, {n: e for (n, _), e in zip(kept, errors, strict=True)},
                            rejected, distortion_model)


def realsense_intrinsics(serial: str | None = None, width: int = 640, height: int = 480, fps: int = 30,
                         playback: str | None = None) -> IntrinsicsResult:
    """The factory intrinsics of a RealSense's colour stream (no views needed)."""
    from deploy.robot.camera_io import RealSenseReader

    cam = RealSenseReader(serial=serial, width=width, height=height, fps=fps, playback=playback)
    try:
        i = cam.intrinsics()
    finally:
        cam.close()
    result = IntrinsicsResult(i.width, i.height, i.K, i.distortion, 0.0, {})
    return result
