"""The robot graph in one process, on the ManiSkill sim arm and a simulated clock: the same camera frames ->
PolicyRunner -> ArmController (executor + safety) -> arm path as `ros2 launch pirl_bringup arm.launch.py
camera:=sim robot:=sim`, without ROS. Used for dry runs of trials (`pirl-trials run --dry-run`), to test the
graph's logic where ROS 2 is not installed, and to measure the chunk schedule (benchmarks/chunk_schedule.py).

    loop = DryRunLoop(load_engine(dir), SimArm(SimArmConfig(task=..., image_size=(s, s))), limits,
                      control_hz=20, camera_hz=30, latency_s=0.1)
    result = loop.episode(seed=0, max_steps=200)   # success, steps, chunks, holds, faults, frames, ...

The clock runs at the control rate. The camera delivers a frame every 1 / camera_hz (at the first tick at or
after its time, as a real camera's frame waits for the next control tick). The executor asks for a chunk when
it needs one (`ArmController.wants_chunk`, as the executor node does over `policy/request`); the policy runs
on the latest inputs at once and its chunk arrives `latency_s` later, stamped with the observation's time,
which is what the robot's inference and transport do to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deploy.robot.arm_control import ArmController
from deploy.robot.executor import ChunkExecutor
from deploy.robot.policy_loop import Chunk, NoChunk, PolicyRunner
from deploy.robot.runtime import Engine
from deploy.robot.safety import SafetyFilter, SafetyLimits
from deploy.sim.arm import SimArm


@dataclass
class DryRunResult:
    success: bool
    steps: int
    chunks: int
    instruction: str
    faults: int
    holds: int  # control ticks at which the arm held
    holds_after_first_chunk: int = 0  # ... of them once the first chunk had arrived (steady state)
    frames: list[np.ndarray] = field(default_factory=list)  # the camera frames the policy received (videos)
    actions: list[np.ndarray] = field(default_factory=list)  # the executed commands, one per control tick
    joints: list[np.ndarray] = field(default_factory=list)  # joint positions at each control tick
    discontinuities: list[float] = field(default_factory=list)
    """Per arriving chunk: mean |its action for the arrival tick - the previous chunk's action for that tick|,
    the jump at a chunk boundary (raw policy actions, before the safety filter)."""


class DryRunLoop:
    def __init__(self, engine: Engine, arm: SimArm, limits: SafetyLimits, control_hz: float = 20.0,
                 num_executed: int = 5, camera_hz: float = 30.0, latency_s: float = 0.0, rtc: bool = False):
        """`camera_hz`: the camera's frame rate; `latency_s`: the injected inference + transport time; `rtc`:
        real-time chunking (each chunk guided towards the actions already committed from the current one)."""
        if camera_hz <= 0 or latency_s < 0:
            raise ValueError(f"camera_hz must be > 0 and latency_s >= 0, got {camera_hz} and {latency_s}")
        if rtc and not engine.rtc:
            raise ValueError(f"{engine.directory} was exported before real-time chunking; re-export it for rtc")
        names = (engine.spec.get("action_space") or {}).get("names") or [f"a{i}" for i in range(engine.action_dim)]
        self.engine, self.arm, self.control_hz = engine, arm, control_hz
        self.runner = PolicyRunner(engine, arm.joint_names[: int(engine.spec["state_dim"])], max_age_s=1.0)
        # the executor starts from its default latency guess and measures the rest, as on the robot
        self.controller = ArmController(ChunkExecutor(SafetyFilter(limits, control_hz), control_hz, num_executed),
                                        names,
                                        joint_state_timeout_s=2.0 / control_hz, chunk_timeout_s=2.0)
        self.action_names, self.camera_hz, self.latency_s, self.rtc = tuple(names), camera_hz, latency_s, rtc

    def episode(self, seed: int, max_steps: int, instruction: str | None = None,
                stop: Callable[[int], bool] | None = None) -> DryRunResult:
        """One episode from `reset(seed)`; ends on success, `max_steps`, or `stop(step)` returning True."""
        task_instruction = self.arm.reset(seed)
        self.runner.set_instruction(instruction or task_instruction)
        camera = self.engine.cameras[0]
        dt = 1.0 / self.control_hz
        result = DryRunResult(False, 0, 0, self.runner.instruction or "", 0, 0)
        next_frame = 0.0
        in_flight: list[tuple[float, Chunk]] = []  # (arrival time, chunk)
        for step in range(max_steps):
            now = step * dt
            q = self.arm.joint_positions()
            result.joints.append(q)
            self.runner.on_joint_state(self.arm.joint_names, q, now)
            self.controller.on_joint_state(self.arm.joint_names, q, now)
            if now >= next_frame - 1e-9:
                frame = self.arm.render()
                self.runner.on_image(camera, frame, now)
                result.frames.append(frame)
                next_frame += 1.0 / self.camera_hz
            if step == 0:
                self.controller.start(now)
            self._deliver(in_flight, now, result)  # chunks whose inference has finished by now
            if self.controller.wants_chunk(now):
                try:
                    guide = self.controller.executor.guide(now, self.engine.action_horizon) if self.rtc else None
                    in_flight.append((now + self.latency_s, self.runner.step(now, guide)))
                except NoChunk:
                    pass  # the executor asks again; the arm holds if its chunk runs out meanwhile
                self._deliver(in_flight, now, result)  # with no latency, at once
            command = self.controller.tick(now)
            result.holds += int(command.hold)
            result.holds_after_first_chunk += int(command.hold and result.chunks > 0)
            result.actions.append(np.asarray(command.values if command.values is not None else []))
            self.arm.apply(command.values)
            result.steps = step + 1
            if self.arm.success or (stop is not None and stop(step)):
                break
        result.success = self.arm.success
        result.faults = int(self.controller.executor.counts["faults"])
        self.controller.stop()
        return result

    def _deliver(self, in_flight: list[tuple[float, Chunk]], now: float, result: DryRunResult) -> None:
        executor = self.controller.executor
        for arrival, chunk in sorted(in_flight, key=lambda x: x[0]):
            if arrival > now + 1e-9:
                continue
            expected = executor.action_at(now)
            if self.controller.on_chunk(self.action_names, chunk.actions, chunk.stamp, now):
                result.chunks += 1
                new = executor.action_at(now)
                if expected is not None and new is not None:
                    result.discontinuities.append(float(np.abs(new - expected).mean()))
        in_flight[:] = [x for x in in_flight if x[0] > now + 1e-9]
