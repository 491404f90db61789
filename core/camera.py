"""camera.yaml: the one description of a camera that calibration writes and the sim env and the ROS camera
node both read (docs/design.md, "Camera file").

Conventions: the camera frame is OpenCV's optical frame (x right, y down, z forward); `T_base_camera` maps
points in that frame to the robot base frame (p_base = T_base_camera @ p_camera); K is the 3x3 pinhole
matrix for pixel centres at integer coordinates; distortion is OpenCV's (k1, k2, p1, p2, k3).

    name: base_camera
    width: 640
    height: 480
    K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortion: [k1, k2, p1, p2, k3]
    T_base_camera: 4x4 row-major
    frame: opencv_optical
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FRAME = "opencv_optical"
# Columns are SAPIEN's camera axes (x forward, y left, z up) written in the OpenCV optical frame.
R_OPENCV_SAPIEN = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class CameraSpec:
    name: str
    width: int
    height: int
    K: np.ndarray  # (3, 3)
    T_base_camera: np.ndarray  # (4, 4)
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(5))
    quality: dict[str, Any] = field(default_factory=dict)  # calibration figures, informational

    def __post_init__(self) -> None:
        K, T = np.asarray(self.K, float), np.asarray(self.T_base_camera, float)
        if K.shape != (3, 3) or K[2].tolist() != [0.0, 0.0, 1.0] or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"camera {self.name!r}: K must be a 3x3 pinhole matrix [[fx,0,cx],[0,fy,cy],[0,0,1]] "
                             f"with positive focal lengths, got {K.tolist()}")
        if T.shape != (4, 4) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise ValueError(f"camera {self.name!r}: T_base_camera must be a 4x4 homogeneous transform")
        if not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5) or np.linalg.det(T[:3, :3]) < 0:
            raise ValueError(f"camera {self.name!r}: the rotation part of T_base_camera is not a proper rotation")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera {self.name!r}: width and height must be positive")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "T_base_camera", T)
        object.__setattr__(self, "distortion", np.asarray(self.distortion, float).reshape(-1))

    def project(self, points_base: np.ndarray) -> np.ndarray:
        """Pinhole projection (no distortion) of base-frame points (N, 3) -> pixels (N, 2)."""
        p = np.c_[points_base, np.ones(len(points_base))] @ np.linalg.inv(self.T_base_camera).T
        uvw = p[:, :3] @ self.K.T
        return uvw[:, :2] / uvw[:, 2:3]

    def scaled(self, width: int, height: int) -> "CameraSpec":
        """The same camera rendered at another resolution (K scaled about pixel centres)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return CameraSpec(self.name, width, height, K, self.T_base_camera, self.distortion, self.quality)

    def sapien_pose_in(self, T_world_base: np.ndarray) -> np.ndarray:
        """4x4 world pose of the SAPIEN camera entity (SAPIEN axes) for a robot base at T_world_base."""
        T = np.asarray(T_world_base, float) @ self.T_base_camera
        T = T.copy()
        T[:3, :3] = T[:3, :3] @ R_OPENCV_SAPIEN
        return T

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "width": self.width, "height": self.height, "K": self.K.tolist(),
                "distortion": self.distortion.tolist(), "T_base_camera": self.T_base_camera.tolist(),
                "frame": FRAME, "quality": self.quality}

    def save(self, path: str | Path) -> None:
        import yaml

        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "CameraSpec":
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"camera file {path} not found") from None
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not valid YAML: {e}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "camera") -> "CameraSpec":
        """The camera a `to_dict()` (or a camera.yaml's mapping) describes; `source` names it in errors."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping with name, width, height, K, T_base_camera")
        missing = [k for k in ("name", "width", "height", "K", "T_base_camera") if k not in data]
        if missing:
            raise ValueError(f"{source}: missing fields {missing} (a camera.yaml needs name, width, height, K, "
                             "T_base_camera; distortion and frame are optional)")
        if data.get("frame", FRAME) != FRAME:
            raise ValueError(f"{source}: frame {data['frame']!r} is not supported; write poses in {FRAME!r}")
        try:
            return cls(name=str(data["name"]), width=int(data["width"]), height=int(data["height"]),
                       K=np.asarray(data["K"], float), T_base_camera=np.asarray(data["T_base_camera"], float),
                       distortion=np.asarray(data.get("distortion", [0.0] * 5), float),
                       quality=data.get("quality") or {})
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None


def look_at(name: str, eye_base: np.ndarray, target_base: np.ndarray, width: int, height: int,
            fov_y_deg: float = 60.0) -> CameraSpec:
    """A camera at `eye_base` looking at `target_base` (base frame, z up), square pixels."""
    eye, target = np.asarray(eye_base, float), np.asarray(target_base, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-6:
        raise ValueError("look_at: the view direction is vertical; give the camera some horizontal offset")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
    K = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return CameraSpec(name, width, height, K, T)
