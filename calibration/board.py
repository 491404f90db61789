"""The calibration target: a ChArUco board described by board.yaml, detected with OpenCV's aruco module.

    type: charuco
    squares_x: 7            # squares along the board's x axis (left to right in its printed image)
    squares_y: 5
    square_length: 0.04     # metres, as printed (measure it: printers scale)
    marker_length: 0.03     # metres
    dictionary: DICT_4X4_50

Board frame: origin at the outer top-left corner of the printed board, x along squares_x, y along squares_y
(down the printed image), z into the board - OpenCV's convention for ChArUco object points.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


class CalibrationError(ValueError):
    """Calibration input that cannot give a trustworthy result; the message says what to do."""


@dataclass(frozen=True)
class Detection:
    corners: np.ndarray  # float32 (M, 2) ChArUco corner pixels
    ids: np.ndarray  # int (M,) corner ids
    object_points: np.ndarray  # float32 (M, 3) the corners in the board frame (metres)


@dataclass(frozen=True)
class Board:
    squares_x: int = 7
    squares_y: int = 5
    square_length: float = 0.04
    marker_length: float = 0.03
    dictionary: str = "DICT_4X4_50"

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise CalibrationError(f"a ChArUco board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_length < self.square_length:
            raise CalibrationError(f"marker_length ({self.marker_length}) must be positive and smaller than "
                                   f"square_length ({self.square_length})")
        if not hasattr(cv2.aruco, self.dictionary):
            raise CalibrationError(f"unknown aruco dictionary {self.dictionary!r}; e.g. DICT_4X4_50, DICT_5X5_100")

    @classmethod
    def load(cls, path: str | Path) -> "Board":
        import yaml

        path = Path(path)
        if not path.exists():
            raise CalibrationError(f"board file {path} not found")
        data = yaml.safe_load(path.read_text()) or {}
        if data.pop("type", "charuco") != "charuco":
            raise CalibrationError(f"{path}: only type: charuco boards are supported")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise CalibrationError(f"{path}: unknown fields {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump({"type": "charuco", **self.__dict__}, sort_keys=False))

    @property
    def cv(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_length, self.marker_length, d)

    @property
    def num_corners(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)

    def image(self, pixels_per_square: int = 100) -> np.ndarray:
        """The printable board, uint8 grey (squares_y * pps, squares_x * pps); pixel (u, v) covers the board
        point ((u + 0.5) s, (v + 0.5) s) with s = square_length / pixels_per_square."""
        size = (self.squares_x * pixels_per_square, self.squares_y * pixels_per_square)
        return self.cv.generateImage(size, marginSize=0, borderBits=1)

    def detect(self, image: np.ndarray, min_corners: int = 6) -> Detection | None:
        """ChArUco corners in an image (RGB, BGR or grey), or None with fewer than `min_corners` found."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        board = self.cv
        corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(grey)
        if ids is None or len(ids) < min_corners:
            return None
        obj, img = board.matchImagePoints(corners, ids)
        return Detection(img.reshape(-1, 2).astype(np.float32), ids.reshape(-1),
                         obj.reshape(-1, 3).astype(np.float32))


def _undistorted_rays(K: np.ndarray, distortion: np.ndarray, size: tuple[int, int], supersample: int) -> np.ndarray:
    """Normalized pinhole coordinates (x, y) (H*f, W*f, 2) seen by each supersampled pixel of a distorted camera:
    OpenCV's iterative undistortion of the pixel grid (pixel centres at integer coordinates). The grid is the same
    for every view of one camera and takes about a second, so it is memoized."""
    return _undistort_grid(K.astype(np.float64).tobytes(), distortion.astype(np.float64).tobytes(), tuple(size),
                           supersample)


@functools.lru_cache(maxsize=2)
def _undistort_grid(K: bytes, distortion: bytes, size: tuple[int, int], supersample: int) -> np.ndarray:
    f = supersample
    u = (np.arange(size[0] * f) + 0.5) / f - 0.5
    v = (np.arange(size[1] * f) + 0.5) / f - 0.5
    grid = np.stack(np.meshgrid(u, v), -1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    rays = cv2.undistortPointsIter(grid, np.frombuffer(K).reshape(3, 3), np.frombuffer(distortion), None, None,
                                   criteria)
    rays = rays.reshape(size[1] * f, size[0] * f, 2)
    rays.flags.writeable = False
    return rays


def render_view(board: Board, K: np.ndarray, T_camera_board: np.ndarray, size: tuple[int, int],
                background: int = 90, pixels_per_square: int = 120, supersample: int = 3,
                distortion: np.ndarray | None = None) -> np.ndarray:
    """Synthetic camera image (grey uint8, size = (width, height)) of the printed board seen by a camera K with
    OpenCV `distortion` (None: a pinhole) at pose T_camera_board (board frame -> camera frame), rendered
    `supersample` times larger and averaged down (anti-aliased), for tests and for checking a set-up's geometry.
    Each rendered pixel looks up the board point its (undistorted) ray hits, so lens distortion is exact."""
    f = supersample
    s = board.square_length / pixels_per_square
    R, t = T_camera_board[:3, :3], T_camera_board[:3, 3]
    printed = board.image(pixels_per_square)
    if distortion is None or not np.any(distortion):
        K_big = np.diag([f, f, 1.0]) @ np.asarray(K, float)
        K_big[:2, 2] = (np.asarray(K, float)[:2, 2] + 0.5) * f - 0.5  # scale about pixel centres
        pixel_to_board = np.array([[s, 0, 0.5 * s], [0, s, 0.5 * s], [0, 0, 1.0]])
        H = K_big @ np.c_[R[:, 0], R[:, 1], t] @ pixel_to_board
        big = (size[0] * f, size[1] * f)
        canvas = cv2.warpPerspective(printed, H, big, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=0)
        cover = cv2.warpPerspective(np.full(printed.shape, 255, np.uint8), H, big, flags=cv2.INTER_LINEAR) / 255.0
    else:
        rays = _undistorted_rays(np.asarray(K, float), np.asarray(distortion, float), size, f)
        # the ray (x, y, 1) meets the board plane where [r1 r2 t] (X, Y, 1) ~ (x, y, 1)
        hom = np.concatenate([rays, np.ones((*rays.shape[:2], 1))], -1) @ np.linalg.inv(np.c_[R[:, 0], R[:, 1], t]).T
        w = hom[..., 2]
        behind = w <= 0  # the plane is behind the camera along this ray
        w = np.where(behind, 1.0, w)
        map_x = (hom[..., 0] / w / s - 0.5).astype(np.float32)
        map_y = (hom[..., 1] / w / s - 0.5).astype(np.float32)
        map_x[behind] = -1e6
        canvas = cv2.remap(printed, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        cover = cv2.remap(np.full(printed.shape, 255, np.uint8), map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) / 255.0
    out = canvas.astype(np.float32) * cover + background * (1 - cover)
    return cv2.resize(np.clip(out, 0, 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA)
