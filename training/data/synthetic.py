"""A tiny synthetic reaching task for tests and the CPU smoke demo (no simulator, no downloads).

Each sample shows two coloured squares on a grey table (top-down, 64x64 or any size); the instruction names
one colour; the state is the end-effector's planar position (x, y) in [-1, 1] and a gripper value; the
expert chunk moves in a straight line to the named square and closes the gripper on the last step. A
policy must read both the image and the instruction to succeed.

Arrays: images uint8 (N, S, S, 3), state float32 (N, 3), actions float32 (N, H, 3) absolute targets
(x, y, gripper), instruction list[str].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.action_space import ActionSpace

ACTION_SPACE = ActionSpace(kind="ee_position", names=("x", "y", "gripper"), units="table units in [-1, 1]",
                           gripper="last dim, 0 = open, 1 = closed", control_hz=10.0)
COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}
PHRASES = ("move to the {c} block", "reach the {c} square", "go to the {c} one")


@dataclass
class SyntheticReach:
    images: np.ndarray
    state: np.ndarray
    actions: np.ndarray
    instruction: list[str]
    target: np.ndarray  # (N, 2) the named square's centre

    def __len__(self) -> int:
        return len(self.instruction)

    def subset(self, idx: np.ndarray) -> "SyntheticReach":
        return SyntheticReach(self.images[idx], self.state[idx], self.actions[idx],
                              [self.instruction[i] for i in idx], self.target[idx])


def _to_pixel(xy: np.ndarray, size: int) -> np.ndarray:
    return np.round((xy + 1) / 2 * (size - 1)).astype(int)


def make_synthetic_reach(n: int, horizon: int = 8, image_size: int = 64, camera: str = "base",
                         seed: int = 0) -> tuple[SyntheticReach, str]:
    """n samples of the reach task. Returns the dataset and the camera name its images belong to."""
    rng = np.random.default_rng(seed)
    names = list(COLORS)
    images = np.full((n, image_size, image_size, 3), 120, dtype=np.uint8)
    state = np.zeros((n, 3), dtype=np.float32)
    actions = np.zeros((n, horizon, 3), dtype=np.float32)
    targets = np.zeros((n, 2), dtype=np.float32)
    instructions = []
    half = max(image_size // 16, 2)
    for i in range(n):
        c1, c2 = rng.choice(len(names), 2, replace=False)
        while True:  # two squares far enough apart to tell which one was reached
            p1, p2 = rng.uniform(-0.8, 0.8, (2, 2))
            if np.linalg.norm(p1 - p2) > 0.6:
                break
        for c, p in ((c1, p1), (c2, p2)):
            px, py = _to_pixel(p, image_size)
            images[i, max(py - half, 0): py + half, max(px - half, 0): px + half] = COLORS[names[c]]
        target = p1
        ee = rng.uniform(-0.9, 0.9, 2)
        ex, ey = _to_pixel(ee, image_size)
        images[i, max(ey - 1, 0): ey + 2, max(ex - 1, 0): ex + 2] = 0  # the end effector, a black dot
        state[i] = (*ee, 0.0)
        frac = np.arange(1, horizon + 1)[:, None] / horizon
        actions[i, :, :2] = ee + frac * (target - ee)
        actions[i, -1, 2] = 1.0
        targets[i] = target
        instructions.append(PHRASES[rng.integers(len(PHRASES))].format(c=names[c1]))
    return SyntheticReach(images, state, actions, instructions, targets), camera


def reach_success(actions: np.ndarray, target: np.ndarray, tol: float = 0.15) -> np.ndarray:
    """actions (N, H, 3) -> bool (N,): the chunk ends within `tol` of the named square."""
    return np.linalg.norm(actions[:, -1, :2] - target, axis=-1) < tol
