"""Scripted LIBERO experts from privileged state, for the libero_spatial "pick up the black bowl ... and place
it on the plate" tasks: grasp the bowl's rim, carry it over the plate, set it down, let go.

Actions are OSC_POSE deltas (xyz in [-1, 1] -> +-5 cm a step, no rotation, gripper -1 open / +1 closed). The
Panda's fingers close along the world y axis in LIBERO's default pose, so the rim is grasped at +y or -y,
whichever side is clear of other objects."""

from __future__ import annotations

import numpy as np

OPEN, CLOSED = -1.0, 1.0
_POS_SCALE = 0.05
_PHASE_TIMEOUT = 30  # steps
_RIM = 0.045  # bowl centre to rim, metres: at 0.05 the fingers landed on the rim on an AVX-512 EPYC (no lift)


class PickPlaceBowlExpert:
    def __init__(self, env):
        self.env = env  # a LiberoChunkEnv
        goal = env.env.env.parsed_problem["goal_state"]
        if len(goal) != 1 or goal[0][0].lower() != "on":
            raise ValueError(f"{env.task}: expected one (On bowl plate) goal, got {goal}")
        _, self.obj, self.target = goal[0]
        self.phase, self.steps_in_phase = 0, 0
        self.side = self._clear_side()

    def reset(self) -> None:
        self.phase, self.steps_in_phase = 0, 0
        self.side = self._clear_side()

    def _clear_side(self) -> float:
        """Grasp the rim on the side (+y or -y) farther from the other objects, so the fingers fit."""
        bowl = self.env.object_position(self.obj)
        others = [np.asarray(v)[:2] for k, v in self.env._obs.items()
                  if k.endswith("_pos") and "_to_" not in k and not k.startswith("robot")
                  and k not in (f"{self.obj}_pos", f"{self.target}_pos")]
        if not others:
            return 1.0
        clearance = {s: min(np.linalg.norm(bowl[:2] + [0.0, s * _RIM] - o) for o in others) for s in (1.0, -1.0)}
        return max(clearance, key=clearance.get)

    def _plan(self) -> list[tuple[np.ndarray, float, float, int]]:
        bowl = self.env.object_position(self.obj)
        plate = self.env.object_position(self.target)
        rim = bowl + [0.0, self.side * _RIM, 0.0]
        over_plate = plate + [0.0, self.side * _RIM, 0.0]
        return [(rim + [0, 0, 0.12], OPEN, 0.01, 1),
                (rim + [0, 0, 0.01], OPEN, 0.008, 1),
                (rim + [0, 0, 0.01], CLOSED, 1.0, 10),  # close on the rim
                (np.r_[rim[:2], 1.08], CLOSED, 0.02, 1),
                (np.r_[over_plate[:2], 1.08], CLOSED, 0.01, 1),
                (over_plate + [0, 0, 0.04], CLOSED, 0.01, 1),
                (over_plate + [0, 0, 0.04], OPEN, 1.0, 8),
                (over_plate + [0, 0, 0.15], OPEN, 0.0, 10_000)]

    def act(self) -> np.ndarray:
        eef = np.asarray(self.env._obs["robot0_eef_pos"], dtype=np.float64)
        plan = self._plan()
        target, gripper, tol, min_steps = plan[min(self.phase, len(plan) - 1)]
        self.steps_in_phase += 1
        reached = np.linalg.norm(target - eef) < tol and self.steps_in_phase >= min_steps
        stuck = self.steps_in_phase > _PHASE_TIMEOUT  # blocked by contact: go on from where we are
        if (reached or stuck) and self.phase < len(plan) - 1:
            self.phase, self.steps_in_phase = self.phase + 1, 0
        delta = np.clip((target - eef) / _POS_SCALE, -1.0, 1.0)
        return np.r_[delta, 0.0, 0.0, 0.0, gripper].astype(np.float32)
