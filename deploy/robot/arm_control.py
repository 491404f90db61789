"""The executor node's logic without ROS: a small state machine around the chunk executor and the safety
filter that decides, every control tick, what the arm is told - and that makes it hold on any fault.

    idle --start--> running --hold--> held --start--> running
      ^                |  \\--stop--> idle
      |                v
      +--stop------ fault  (joint state stale, chunks stopped coming, a chunk for other joints)

Outside `running`, and on every fault, the command is the hold command: the current joint positions for an
absolute action space, a zero delta (gripper kept) for a delta one. Leaving `fault` needs an explicit start,
so the arm never resumes on its own after a fault.
"""

from __future__ import annotations

import copy
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deploy.robot.executor import ChunkExecutor

log = logging.getLogger("pirl.executor")


class ArmState(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    FAULT = "fault"


@dataclass(frozen=True)
class Command:
    values: np.ndarray | None  # float64 (A,): joint targets (absolute kinds) or deltas, in the action's
    # units; None: send nothing (no position known yet to hold at; the driver keeps its last target)
    hold: bool
    state: ArmState


class ArmController:
    def __init__(self, executor: ChunkExecutor, action_joints: Sequence[str], joint_state_timeout_s: float = 0.2,
                 chunk_timeout_s: float = 1.0):
        """`action_joints`: the name of each action dim, as chunks and joint states name them."""
        if len(action_joints) != len(executor.safety.limits.lower):
            raise ValueError(f"{len(action_joints)} action joints {list(action_joints)} but the safety limits "
                             f"have {len(executor.safety.limits.lower)} dims")
        self.executor, self.action_joints = executor, tuple(action_joints)
        self.absolute = executor.safety.limits.absolute
        self.joint_state_timeout_s, self.chunk_timeout_s = joint_state_timeout_s, chunk_timeout_s
        self.state = ArmState.IDLE
        self.fault_reason = ""
        self._current: np.ndarray | None = None
        self._current_stamp = -np.inf
        self._last_chunk = -np.inf
        self._started_at = -np.inf
        self._requested_at: float | None = None

    # ---- inputs
    def on_joint_state(self, names: Sequence[str], positions: Sequence[float] | np.ndarray, stamp: float) -> None:
        if not self.absolute:
            self._current_stamp = stamp  # deltas need no positions, only a sign of life
            return
        index = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.action_joints if j not in index]
        if missing:
            self._fault(f"joint state lacks the commanded joints {missing} (got {list(names)}); check "
                        "action_joints in the arm config")
            return
        pos = np.asarray(positions, np.float64)
        self._current, self._current_stamp = pos[[index[j] for j in self.action_joints]], stamp

    def on_chunk(self, joint_names: Sequence[str], actions: np.ndarray, stamp: float, now: float) -> bool:
        """A chunk (H, A) from the policy; False when it is not used (not running, or refused)."""
        if tuple(joint_names) != self.action_joints:
            self._fault(f"a chunk for joints {list(joint_names)} arrived; this arm commands "
                        f"{list(self.action_joints)} (the engine's action space and the arm config disagree)")
            return False
        if self.state is not ArmState.RUNNING:
            self.executor.counts["chunks_ignored"] += 1
            return False
        self.executor.submit(actions, stamp, now)
        self._last_chunk = now
        self._requested_at = None
        return True

    def wants_chunk(self, now: float) -> bool:
        """Ask the policy for a chunk now? While running, when the executor needs one and no request is
        outstanding (one unanswered for 3x the expected latency, at least 0.5 s, is asked again). The caller
        sends the request (the policy node infers on it) and the chunk comes back through `on_chunk`."""
        if self.state is not ArmState.RUNNING or not self.executor.needs_chunk(now):
            return False
        if self._requested_at is not None and now - self._requested_at < max(
                3 * self.executor.expected_latency(), 0.5):
            return False
        self._requested_at = now
        self.executor.counts["requests"] += 1
        return True

    # ---- services
    def start(self, now: float) -> tuple[bool, str]:
        if self.absolute and (self._current is None or now - self._current_stamp > self.joint_state_timeout_s):
            return False, "no fresh joint state: cannot start (is the arm driver running?)"
        self.executor.clear()
        self.executor.safety.reset(self._current)
        self.state, self.fault_reason = ArmState.RUNNING, ""
        self._requested_at = None
        self._started_at = now
        log.info("executor running")
        return True, "running"

    def stop(self) -> tuple[bool, str]:
        self.executor.clear()
        self.state = ArmState.IDLE
        return True, "stopped; the arm holds"

    def hold(self) -> tuple[bool, str]:
        self.executor.clear()
        if self.state is ArmState.RUNNING:
            self.state = ArmState.HELD
        return True, f"holding ({self.state.value})"

    def _fault(self, reason: str) -> None:
        if self.state is not ArmState.FAULT:
            log.error("FAULT, the arm holds: %s", reason)
        self.executor.clear()
        self.state, self.fault_reason = ArmState.FAULT, reason
        self.executor.counts["faults"] += 1

    # ---- the control tick
    def tick(self, now: float) -> Command:
        if self.state is ArmState.RUNNING:
            if now - self._current_stamp > self.joint_state_timeout_s:
                self._fault(f"joint state is {now - self._current_stamp:.2f} s old (limit "
                            f"{self.joint_state_timeout_s} s): the arm driver or its topic stopped")
            elif now - max(self._last_chunk, self._started_at) > self.chunk_timeout_s:
                self._fault(f"no chunk from the policy for {self.chunk_timeout_s} s: the policy node stopped or "
                            "its inputs are stale (see its log)")
        if self.state is ArmState.RUNNING:
            holds = self.executor.counts["hold_no_chunk"]
            values = self.executor.tick(now, self._current)
            return Command(values, self.executor.counts["hold_no_chunk"] > holds, self.state)
        safety = self.executor.safety
        if not safety.can_hold(self._current):
            return Command(None, True, self.state)
        return Command(safety(safety.hold(self._current), self._current), True, self.state)

    def preview(self, now: float, steps: int) -> np.ndarray:
        """The commands the next `steps` ticks (at now, now + 1/hz, ...) will give if no chunk arrives, through
        the same executor and safety filter, without changing either: (steps, A)."""
        executor = copy.deepcopy(self.executor)
        dt = 1.0 / executor.control_hz
        return np.stack([executor.tick(now + k * dt, self._current) for k in range(steps)])


@dataclass(frozen=True)
class TrajectoryGoal:
    """One FollowJointTrajectory goal: positions (N, A) reached at times_from_start (N,) seconds."""

    positions: np.ndarray
    times_from_start: np.ndarray
    hold: bool


class TrajectoryStreamer:
    """For a joint_trajectory_controller: the chunk as one trajectory goal instead of a goal per tick.

    Each new chunk becomes one goal holding every command still to run (the safety-filtered ticks the
    executor will produce, via `ArmController.preview`), one point per control period; the controller replaces
    its trajectory with each new goal (ros2_control's trajectory replacement), so the arm moves smoothly
    between chunks. A hold (fault, stop, no chunk) sends a one-point goal at the hold position, once."""

    def __init__(self, arm: ArmController):
        self.arm = arm
        self._chunks_sent = 0
        self._holding = False

    def update(self, now: float, command: Command) -> TrajectoryGoal | None:
        """After `arm.tick(now)` gave `command`: the goal to send now, or None (the last goal stands)."""
        dt = 1.0 / self.arm.executor.control_hz
        if command.values is None:
            return None
        if command.hold:
            if self._holding:
                return None
            self._holding = True
            return TrajectoryGoal(np.asarray(command.values, np.float64)[None], np.array([dt]), True)
        self._holding = False
        chunks = self.arm.executor.counts["chunks"]
        if chunks == self._chunks_sent:
            return None
        self._chunks_sent = chunks
        later = self.arm.executor.remaining(now + dt)
        points = [np.asarray(command.values, np.float64)]
        if later:
            points += list(self.arm.preview(now + dt, later))
        return TrajectoryGoal(np.stack(points), dt * np.arange(1, len(points) + 1), False)
