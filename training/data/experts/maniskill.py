"""Scripted ManiSkill experts that read privileged simulator state (object and gripper poses) and drive the
Panda with end-effector delta control (`pd_ee_delta_pos`: xyz deltas in [-1, 1] -> +-0.1 m, gripper +1 open,
-1 closed). Each is a small state machine over waypoints; `act` returns one action per env step.
"""

from __future__ import annotations

import numpy as np

OPEN, CLOSED = 1.0, -1.0
_POS_SCALE = 0.1  # metres per unit of normalized delta action


def _p(actor) -> np.ndarray:
    p = actor.pose.p
    return (p.detach().cpu().numpy() if hasattr(p, "detach") else np.asarray(p))[0].astype(np.float64)


def _toward(tcp: np.ndarray, target: np.ndarray, gripper: float, max_step: float = 1.0) -> np.ndarray:
    delta = np.clip((target - tcp) / _POS_SCALE, -max_step, max_step)
    return np.r_[delta, gripper].astype(np.float32)


class WaypointExpert:
    """Visits (target, gripper, tolerance, min_steps) waypoints in order; targets are recomputed every step from
    the live scene, so the plan follows objects as they move."""

    task = ""

    def __init__(self, env, speed: float = 1.0):
        """`speed` in (0, 1]: the largest step the expert takes, as a fraction of the controller's (0.1 m);
        below 1 it moves like a cautious teleoperator, slower than the controller allows."""
        if not 0 < speed <= 1:
            raise ValueError(f"expert speed must be in (0, 1], got {speed}")
        self.env, self.speed = env, speed  # a ManiSkillChunkEnv
        self.raw = env.raw
        self.phase, self.steps_in_phase = 0, 0

    def reset(self) -> None:
        self.phase, self.steps_in_phase = 0, 0

    def waypoints(self) -> list[tuple[np.ndarray, float, float, int]]:
        raise NotImplementedError

    def act(self) -> np.ndarray:
        tcp = _p(self.raw.agent.tcp)
        plan = self.waypoints()
        target, gripper, tol, min_steps = plan[min(self.phase, len(plan) - 1)]
        self.steps_in_phase += 1
        reached = np.linalg.norm(target - tcp) < tol and self.steps_in_phase >= min_steps
        if reached and self.phase < len(plan) - 1:
            self.phase, self.steps_in_phase = self.phase + 1, 0
        return _toward(tcp, target, gripper, self.speed)


class PickCubeExpert(WaypointExpert):
    task = "PickCube-v1"

    def waypoints(self):
        cube, goal = _p(self.raw.cube), _p(self.raw.goal_site)
        return [(cube + [0, 0, 0.06], OPEN, 0.01, 1),
                (cube, OPEN, 0.005, 1),
                (cube, CLOSED, 1.0, 6),  # close the gripper in place
                (goal, CLOSED, 0.0, 10_000)]  # carry to the goal and hold there


class PushCubeExpert(WaypointExpert):
    task = "PushCube-v1"

    def waypoints(self):
        cube, goal = _p(self.raw.obj), _p(self.raw.goal_region)
        h = float(self.raw.cube_half_size)
        behind = cube - [h + 0.03, 0, 0]
        behind[2] = h
        return [(behind + [0, 0, 0.08], CLOSED, 0.01, 1),
                (behind, CLOSED, 0.005, 1),
                (np.array([goal[0] - h - 0.005, goal[1], h]), CLOSED, 0.0, 10_000)]


class PullCubeExpert(WaypointExpert):
    task = "PullCube-v1"

    def waypoints(self):
        cube, goal = _p(self.raw.obj), _p(self.raw.goal_region)
        h = float(self.raw.cube_half_size)
        front = cube + [h + 0.03, 0, 0]
        front[2] = h
        return [(front + [0, 0, 0.08], CLOSED, 0.01, 1),
                (front, CLOSED, 0.005, 1),
                (np.array([goal[0] + h + 0.005, goal[1], h]), CLOSED, 0.0, 10_000)]


class StackCubeExpert(WaypointExpert):
    task = "StackCube-v1"

    def waypoints(self):
        a, b = _p(self.raw.cubeA), _p(self.raw.cubeB)
        h = float(self.raw.cube_half_size[0]) if np.ndim(self.raw.cube_half_size) else float(self.raw.cube_half_size)
        above_b = b + [0, 0, 2 * h + 0.005]
        return [(a + [0, 0, 0.06], OPEN, 0.01, 1),
                (a, OPEN, 0.005, 1),
                (a, CLOSED, 1.0, 6),
                (np.array([a[0], a[1], b[2] + 0.1]), CLOSED, 0.01, 1),  # lift to a fixed height
                (above_b + [0, 0, 0.05], CLOSED, 0.01, 1),
                (above_b, CLOSED, 0.004, 1),
                (above_b, OPEN, 1.0, 4),
                (above_b + [0, 0, 0.06], OPEN, 0.0, 10_000)]


EXPERTS = {e.task: e for e in (PickCubeExpert, PushCubeExpert, PullCubeExpert, StackCubeExpert)}
EXPERTS["PushCubeNarrow-v1"], EXPERTS["PullCubeNarrow-v1"] = PushCubeExpert, PullCubeExpert
