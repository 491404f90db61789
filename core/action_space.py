"""What an action means. Every dataset, checkpoint and engine declares it (docs/design.md, "Action space"), so a
chunk never reaches a robot that would read it differently."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

ActionKind = Literal["joint_position", "joint_delta", "ee_delta_pose", "ee_position"]
KINDS = ("joint_position", "joint_delta", "ee_delta_pose", "ee_position")


@dataclass(frozen=True)
class ActionSpace:
    kind: ActionKind
    """joint_position (absolute targets; the default for anything that leaves simulation), joint_delta,
    ee_delta_pose (needs IK on the robot side) or ee_position."""
    names: tuple[str, ...]
    """One name per action dimension, e.g. ("joint1", ..., "joint7", "gripper")."""
    units: str = "rad"
    gripper: str = "none"
    """How the gripper dimension reads, e.g. "last dim, 0 = open, 1 = closed", or "none"."""
    control_hz: float = 20.0
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None
    """The valid range of each dim (e.g. the joint limits of joint-position actions); None: not declared."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}; use one of {KINDS}")
        if not self.names:
            raise ValueError("an action space names at least one dimension")
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {self.control_hz}")
        for name in ("lower", "upper"):
            bound = getattr(self, name)
            if bound is not None and len(bound) != len(self.names):
                raise ValueError(f"{name} has {len(bound)} values for {len(self.names)} action dims")
        if self.lower is not None and self.upper is not None and any(
                lo > hi for lo, hi in zip(self.lower, self.upper, strict=True)):
            raise ValueError(f"lower {self.lower} exceeds upper {self.upper} somewhere")

    @property
    def dim(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ActionSpace":
        bounds = {k: tuple(d[k]) for k in ("lower", "upper") if d.get(k) is not None}
        return cls(**{**d, "names": tuple(d["names"]), **bounds})
