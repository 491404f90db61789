"""State/action normalization statistics that travel with every checkpoint (norm_stats.json).

`normalize` and `unnormalize` are exact mirrors. z-score (pi0) or quantile to [-1, 1] (pi0.5) per key.
The length of a key's statistics is the robot's real dimension; the model's padded dims stay zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

NormMode = Literal["zscore", "quantile"]
_EPS = 1e-6


@dataclass(frozen=True)
class Stats:
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    q01: np.ndarray  # (D,)
    q99: np.ndarray  # (D,)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def from_data(cls, x: np.ndarray) -> "Stats":
        """x: (..., D) samples."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        return cls(x.mean(0), x.std(0), np.quantile(x, 0.01, axis=0), np.quantile(x, 0.99, axis=0))

    def to_dict(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).astype(float).tolist() for k in ("mean", "std", "q01", "q99")}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "Stats":
        try:
            arrs = {k: np.asarray(d[k], dtype=np.float64) for k in ("mean", "std", "q01", "q99")}
        except KeyError as e:
            raise ValueError(f"{where}: missing statistic {e.args[0]!r} (need mean, std, q01, q99)") from None
        dims = {k: v.shape for k, v in arrs.items()}
        if len({s for s in dims.values()}) != 1 or len(arrs["mean"].shape) != 1:
            raise ValueError(f"{where}: statistics must be 1-D and of equal length, got shapes {dims}")
        return cls(**arrs)


@dataclass(frozen=True)
class NormStats:
    state: Stats
    actions: Stats
    mode: NormMode = "zscore"

    FILENAME = "norm_stats.json"

    def save(self, directory: Path) -> None:
        data = {"mode": self.mode, "state": self.state.to_dict(), "actions": self.actions.to_dict()}
        (Path(directory) / self.FILENAME).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, directory: Path, filename: str = FILENAME) -> "NormStats":
        path = Path(directory) / filename
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e}); the checkpoint may be truncated") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object with 'state' and 'actions', found "
                             f"{type(data).__name__}")
        mode = data.get("mode", "zscore")
        if mode not in ("zscore", "quantile"):
            raise ValueError(f"{path}: unknown normalization mode {mode!r} (use 'zscore' or 'quantile')")
        for key in ("state", "actions"):
            if not isinstance(data.get(key), dict):
                raise ValueError(f"{path}: missing the {key!r} statistics (an object with mean, std, q01, q99)")
        return cls(Stats.from_dict(data["state"], f"{path} [state]"),
                   Stats.from_dict(data["actions"], f"{path} [actions]"), mode)


def normalize(x: np.ndarray, stats: Stats, mode: NormMode) -> np.ndarray:
    if mode == "zscore":
        return ((x - stats.mean) / (stats.std + _EPS)).astype(np.float32)
    return ((x - stats.q01) / (stats.q99 - stats.q01 + _EPS) * 2.0 - 1.0).astype(np.float32)


def unnormalize(x: np.ndarray, stats: Stats, mode: NormMode) -> np.ndarray:
    if mode == "zscore":
        return (x * (stats.std + _EPS) + stats.mean).astype(np.float32)
    return ((x + 1.0) / 2.0 * (stats.q99 - stats.q01 + _EPS) + stats.q01).astype(np.float32)
