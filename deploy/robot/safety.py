"""Safety limits applied to every command before it reaches an arm (real or simulated).

Absolute action spaces (joint or end-effector positions): each command is clamped to the position box, then
its step from the previous command to the velocity limit (max change per control tick) and the change of that
step to the acceleration limit; an optional Cartesian workspace box (with a forward-kinematics function)
turns a command that would leave the box into a hold. Delta action spaces: the delta itself is clamped to
its box (a per-tick velocity limit by construction) and holding means a zero delta. A gripper dimension is
clamped to its range. A command with a NaN or inf is never passed on: the arm holds. Every intervention is
counted, so a run reports how often the policy was corrected.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ABSOLUTE_KINDS = ("joint_position", "ee_position")
DELTA_KINDS = ("joint_delta", "ee_delta_pose")


@dataclass(frozen=True)
class SafetyLimits:
    kind: str
    """The action space kind (core/action_space.py): absolute positions or deltas."""
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    """Per action dim: the position box (absolute) or the delta box (delta kinds)."""
    max_velocity: tuple[float, ...] | None = None
    """Absolute kinds: max |change| per second per dim (None: unlimited)."""
    max_acceleration: tuple[float, ...] | None = None
    """Absolute kinds: max |change of velocity| per second^2 per dim (None: unlimited)."""
    gripper_index: int | None = None
    gripper_range: tuple[float, float] = (-1.0, 1.0)
    workspace_lower: tuple[float, float, float] | None = None
    workspace_upper: tuple[float, float, float] | None = None
    """Optional Cartesian box (robot base frame, metres) the end effector must stay in; needs `fk`."""
    max_chunk_age_s: float = 0.5
    """A chunk whose observation is older than this is dropped and the arm holds (watchdog)."""

    def __post_init__(self) -> None:
        if self.kind not in ABSOLUTE_KINDS + DELTA_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}; use one of {ABSOLUTE_KINDS + DELTA_KINDS}")
        n = len(self.lower)
        if len(self.upper) != n or any(lo > hi for lo, hi in zip(self.lower, self.upper, strict=True)):
            raise ValueError(f"lower/upper must have the same length with lower <= upper; got {self.lower}, "
                             f"{self.upper}")
        for name in ("max_velocity", "max_acceleration"):
            v = getattr(self, name)
            if v is not None and (len(v) != n or min(v) <= 0):
                raise ValueError(f"{name} needs {n} positive values, got {v}")
        if (self.workspace_lower is None) != (self.workspace_upper is None):
            raise ValueError("give both workspace_lower and workspace_upper, or neither")

    @property
    def absolute(self) -> bool:
        return self.kind in ABSOLUTE_KINDS

    @classmethod
    def load(cls, path: str | Path) -> "SafetyLimits":
        """From a JSON or YAML file with the fields above."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown safety fields {unknown}; valid: {sorted(known)}")
        missing = [k for k in ("kind", "lower", "upper") if k not in data]
        if missing:
            raise ValueError(f"{path}: missing {missing}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class SafetyFilter:
    """Stateful: remembers the previous command (for velocity and acceleration limits)."""

    limits: SafetyLimits
    control_hz: float
    fk: Callable[[np.ndarray], np.ndarray] | None = None
    """Joint positions -> end-effector xyz, for the workspace box."""
    counts: Counter = field(default_factory=Counter)
    _prev: np.ndarray | None = None
    _prev_step: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.limits.workspace_lower is not None and self.fk is None:
            raise ValueError("a workspace box needs a forward-kinematics function (fk)")

    def reset(self, current: np.ndarray | None = None) -> None:
        self._prev = None if current is None else np.asarray(current, np.float64).copy()
        self._prev_step = None

    def can_hold(self, current: np.ndarray | None) -> bool:
        """False when an absolute action space has no position to hold at (nothing known yet)."""
        return not self.limits.absolute or current is not None or self._prev is not None

    def hold(self, current: np.ndarray | None) -> np.ndarray:
        """The command that keeps the arm where it is."""
        lim = self.limits
        if not lim.absolute:
            out = np.zeros(len(lim.lower))
            if lim.gripper_index is not None and self._prev is not None:
                out[lim.gripper_index] = self._prev[lim.gripper_index]  # keep the gripper as it was
            return out
        if current is not None:
            return np.asarray(current, np.float64).copy()
        if self._prev is None:
            raise ValueError("holding an absolute action space needs the current position")
        return self._prev.copy()

    def __call__(self, command: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
        """A policy command (A,) -> the command sent to the arm (A,), float64."""
        lim = self.limits
        cmd = np.asarray(command, np.float64).copy()
        if cmd.shape != (len(lim.lower),):
            raise ValueError(f"command must have shape ({len(lim.lower)},), got {cmd.shape}")
        if not np.isfinite(cmd).all():
            self.counts["non_finite"] += 1
            return self._emit(self.hold(current), hold=True)
        lo, hi = np.asarray(lim.lower), np.asarray(lim.upper)
        clamped = np.clip(cmd, lo, hi)
        self.counts["position_clamped" if lim.absolute else "delta_clamped"] += int((clamped != cmd).any())
        cmd = clamped
        if lim.gripper_index is not None:
            g = lim.gripper_index
            new = float(np.clip(cmd[g], *lim.gripper_range))
            self.counts["gripper_clamped"] += int(new != cmd[g])
            cmd[g] = new
        if lim.absolute:
            prev = self._prev if self._prev is not None else (None if current is None else np.asarray(current))
            if prev is not None:
                step = cmd - prev
                if lim.max_velocity is not None:
                    vmax = np.asarray(lim.max_velocity) / self.control_hz
                    limited = np.clip(step, -vmax, vmax)
                    self.counts["velocity_clamped"] += int((limited != step).any())
                    step = limited
                if lim.max_acceleration is not None and self._prev_step is not None:
                    amax = np.asarray(lim.max_acceleration) / self.control_hz**2
                    limited = np.clip(step, self._prev_step - amax, self._prev_step + amax)
                    self.counts["acceleration_clamped"] += int((limited != step).any())
                    step = limited
                cmd = prev + step
            if self.fk is not None and lim.workspace_lower is not None:
                xyz = np.asarray(self.fk(cmd))
                if (xyz < np.asarray(lim.workspace_lower)).any() or (xyz > np.asarray(lim.workspace_upper)).any():
                    self.counts["workspace_hold"] += 1
                    return self._emit(self.hold(current), hold=True)
        return self._emit(cmd)

    def _emit(self, cmd: np.ndarray, hold: bool = False) -> np.ndarray:
        if self.limits.absolute:
            self._prev_step = None if hold or self._prev is None else cmd - self._prev
            self._prev = cmd.copy()
        elif self.limits.gripper_index is not None:
            self._prev = cmd.copy()
        self.counts["commands"] += 1
        return cmd
