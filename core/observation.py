"""Observation checks and padding shared by the training policy and the deploy runtime: numpy only, so a
robot install (no torch) validates observations exactly as training does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class ObservationError(ValueError):
    """An observation that does not match what the policy was built for."""


def validate_observation(obs: dict[str, Any], camera_names: Sequence[str], image_size: int, state_dim: int) -> int:
    """Check an observation batch against a policy's (or an engine's) spec; returns the batch size N."""
    if not isinstance(obs, Mapping):
        raise ObservationError(f"an observation must be a dict with keys images, state, instruction; got "
                               f"{type(obs).__name__}")
    for key in ("images", "state", "instruction"):
        if key not in obs:
            raise ObservationError(f"observation is missing {key!r}; expected keys images, state, instruction")
    images, state, instruction = obs["images"], obs["state"], obs["instruction"]
    if not isinstance(images, dict) or set(images) != set(camera_names):
        got = sorted(images) if isinstance(images, dict) else type(images).__name__
        raise ObservationError(f"camera set mismatch: the policy expects cameras {list(camera_names)}, "
                               f"got {got}")
    state = np.asarray(state)
    if state.ndim != 2 or state.shape[1] != state_dim:
        raise ObservationError(f"state must be (N, {state_dim}), got shape {state.shape}")
    if state.dtype != np.float32:
        raise ObservationError(f"state must be float32, got {state.dtype}; cast with .astype(np.float32)")
    if not np.isfinite(state).all():
        bad = np.argwhere(~np.isfinite(state))[0]
        raise ObservationError(f"state has a non-finite value (NaN or inf) at [env {bad[0]}, dim {bad[1]}]")
    n = state.shape[0]
    s = image_size
    for name, img in images.items():
        img = np.asarray(img)
        if img.dtype != np.uint8:
            raise ObservationError(f"camera {name!r}: images must be uint8, got {img.dtype}")
        if img.shape != (n, s, s, 3):
            raise ObservationError(f"camera {name!r}: expected images of shape (N={n}, {s}, {s}, 3), got "
                                   f"{img.shape}; render or resize to {s}x{s} RGB")
    if not isinstance(instruction, (list, tuple)) or len(instruction) != n:
        got = f" of length {len(instruction)}" if isinstance(instruction, (list, tuple)) else ""
        raise ObservationError(f"instruction must be a list of {n} strings (one per env), got "
                               f"{type(instruction).__name__}{got}")
    for i, text in enumerate(instruction):
        if not isinstance(text, str):
            raise ObservationError(f"instruction {i} must be a str, got {type(text).__name__}")
    return n


def pad_last(x: np.ndarray, dim: int) -> np.ndarray:
    if x.shape[-1] > dim:
        raise ValueError(f"cannot pad size {x.shape[-1]} down to {dim}")
    return np.concatenate([x, np.zeros((*x.shape[:-1], dim - x.shape[-1]), x.dtype)], axis=-1)
