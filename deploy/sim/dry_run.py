"""The robot graph in one process, on the ManiSkill sim arm and a simulated clock: the same camera frames ->
PolicyRunner -> ArmController (executor + safety) -> arm path as `ros2 launch pirl_bringup arm.launch.py
camera:=sim robot:=sim`, without ROS. Used for dry runs of trials (`pirl-trials run --dry-run`) and to test
the graph's logic where ROS 2 is not installed.

    loop = DryRunLoop(load_engine(dir), SimArm(SimArmConfig(task=..., image_size=(s, s))), limits, control_hz=20)
    result = loop.episode(seed=0, max_steps=200)   # success, steps, chunks, faults, frames
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deploy.robot.arm_control import ArmController
from deploy.robot.executor import ChunkExecutor
from deploy.robot.policy_loop import NoChunk, PolicyRunner
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
    holds: int
    frames: list[np.ndarray] = field(default_factory=list)  # camera frames at decision points (for videos)
    actions: list[np.ndarray] = field(default_factory=list)  # the executed commands, one per control tick
    joints: list[np.ndarray] = field(default_factory=list)  # joint positions at each control tick


class DryRunLoop:
    def __init__(self, engine: Engine, arm: SimArm, limits: SafetyLimits, control_hz: float = 20.0,
                 num_executed: int = 5, camera_every: int = 5, latency_s: float = 0.0):
        """`camera_every`: control ticks between camera frames; `latency_s`: simulated inference time."""
        names = (engine.spec.get("action_space") or {}).get("names") or [f"a{i}" for i in range(engine.action_dim)]
        self.engine, self.arm, self.control_hz = engine, arm, control_hz
        self.runner = PolicyRunner(engine, arm.joint_names[: int(engine.spec["state_dim"])], max_age_s=1.0)
        self.controller = ArmController(ChunkExecutor(SafetyFilter(limits, control_hz), control_hz, num_executed,
                                                      latency_s=latency_s), names,
                                        joint_state_timeout_s=2.0 / control_hz, chunk_timeout_s=2.0)
        self.action_names, self.camera_every, self.latency_s = tuple(names), camera_every, latency_s

    def episode(self, seed: int, max_steps: int, instruction: str | None = None,
                stop: Callable[[int], bool] | None = None) -> DryRunResult:
        """One episode from `reset(seed)`; ends on success, `max_steps`, or `stop(step)` returning True."""
        task_instruction = self.arm.reset(seed)
        self.runner.set_instruction(instruction or task_instruction)
        camera = self.engine.cameras[0]
        dt = 1.0 / self.control_hz
        result = DryRunResult(False, 0, 0, self.runner.instruction or "", 0, 0)
        for step in range(max_steps):
            now = step * dt
            q = self.arm.joint_positions()
            result.joints.append(q)
            self.runner.on_joint_state(self.arm.joint_names, q, now)
            self.controller.on_joint_state(self.arm.joint_names, q, now)
            if step % self.camera_every == 0:
                frame = self.arm.render()
                self.runner.on_image(camera, frame, now)
                result.frames.append(frame)
            if step == 0:
                self.controller.start(now)
            if self.controller.executor.needs_chunk(now):
                try:
                    chunk = self.runner.step(now)
                    self.controller.on_chunk(self.action_names, chunk.actions, chunk.stamp + self.latency_s, now)
                    result.chunks += 1
                except NoChunk:
                    pass
            command = self.controller.tick(now)
            result.holds += int(command.hold)
            result.actions.append(np.asarray(command.values if command.values is not None else []))
            self.arm.apply(command.values)
            result.steps = step + 1
            if self.arm.success or (stop is not None and stop(step)):
                break
        result.success = self.arm.success
        result.faults = int(self.controller.executor.counts["faults"])
        self.controller.stop()
        return result
