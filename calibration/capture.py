"""Guided capture of hand-eye samples: board image + end-effector pose, saved as they are taken.

    session = CaptureSession(board, "samples/")
    result = session.offer(rgb, T_base_ee)      # saved, or a warning (no board, pose too close to sample k)
    preview = session.preview(rgb)              # the image with the detected corners and the sample count

Samples land in DIR as NNNN.png plus one line per sample in DIR/poses.jsonl (append-only, flushed per
sample), which `pirl-calibrate handeye --samples DIR` reads. End-effector poses come from a file (one 4x4 per
line, in capture order), a callback, or on the robot from tf (`pirl_ros.tf_pose.RosTfPose`, under ros_ws).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.board import Board, CalibrationError
from calibration.handeye import pose_difference

POSES_FILE = "poses.jsonl"


@dataclass
class Offer:
    saved: bool
    message: str
    path: Path | None = None


def read_samples(directory: str | Path) -> list[tuple[Path, np.ndarray]]:
    """(image path, T_base_ee) of every sample in a capture directory; a torn last line is skipped."""
    directory = Path(directory)
    path = directory / POSES_FILE
    if not path.exists():
        raise CalibrationError(f"{directory} has no {POSES_FILE}; capture samples with `pirl-calibrate capture`")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # an interrupted write: that sample was not completed
        T = np.asarray(rec["T_base_ee"], float)
        if T.shape != (4, 4):
            raise CalibrationError(f"{path}:{n}: T_base_ee must be 4x4")
        out.append((directory / rec["image"], T))
    return out


class CaptureSession:
    def __init__(self, board: Board, out_dir: str | Path, min_rotation_deg: float = 5.0,
                 min_translation_m: float = 0.03, min_corners: int = 8):
        self.board, self.out = board, Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.min_rotation_deg, self.min_translation_m, self.min_corners = min_rotation_deg, min_translation_m, \
            min_corners
        self.poses = [T for _, T in read_samples(self.out)] if (self.out / POSES_FILE).exists() else []

    def too_close(self, T_base_ee: np.ndarray) -> int | None:
        """Index of a previous sample this pose barely differs from (rotation and translation), else None."""
        for i, T in enumerate(self.poses):
            d_m, d_deg = pose_difference(T, T_base_ee)
            if d_m < self.min_translation_m and d_deg < self.min_rotation_deg:
                return i
        return None

    def offer(self, rgb: np.ndarray, T_base_ee: np.ndarray, force: bool = False) -> Offer:
        det = self.board.detect(rgb, min_corners=self.min_corners)
        if det is None:
            return Offer(False, "no board in view (or too few corners): move the board fully into the image")
        close = self.too_close(T_base_ee)
        if close is not None and not force:
            return Offer(False, f"pose too similar to sample {close} (< {self.min_translation_m * 100:.0f} cm and "
                                f"< {self.min_rotation_deg:.0f} deg apart): move and tilt the gripper more")
        index = len(self.poses)
        name = f"{index:04d}.png"
        tmp = self.out / f".{name}"
        cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)
        os.replace(tmp, self.out / name)  # the image is complete before its pose line names it
        with open(self.out / POSES_FILE, "a") as f:
            f.write(json.dumps({"image": name, "T_base_ee": np.asarray(T_base_ee).tolist(),
                                "corners": int(len(det.ids))}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.poses.append(np.asarray(T_base_ee, float))
        return Offer(True, f"sample {index} saved ({len(det.ids)} corners)", self.out / name)

    def preview(self, rgb: np.ndarray) -> np.ndarray:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR)
        det = self.board.detect(rgb, min_corners=1)
        if det is not None:
            cv2.aruco.drawDetectedCornersCharuco(bgr, det.corners.reshape(-1, 1, 2), det.ids.reshape(-1, 1))
        text = f"samples: {len(self.poses)}  corners: {0 if det is None else len(det.ids)}"
        cv2.putText(bgr, text, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 255), 2)
        return bgr


def poses_from_file(path: str | Path) -> Callable[[], np.ndarray]:
    """A pose source reading one T_base_ee per line (JSON 4x4, or {"T_base_ee": 4x4}) in capture order."""
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    poses = []
    for ln in lines:
        rec = json.loads(ln)
        poses.append(np.asarray(rec["T_base_ee"] if isinstance(rec, dict) else rec, float))
    it = iter(poses)

    def next_pose() -> np.ndarray:
        try:
            return next(it)
        except StopIteration:
            raise CalibrationError(f"{path}: no more poses ({len(poses)} given)") from None

    return next_pose
