"""A ManiSkill arm standing in for the real one behind the robot's interfaces (joint states, camera images,
commands), so the whole ROS graph can be run and tried without hardware (`camera:=sim robot:=sim`), and
`pirl-trials` can dry-run against it.

    arm = SimArm(SimArmConfig(task="PushCube-v1"))
    instruction = arm.reset(seed=0)
    arm.apply(command)              # one control tick: a command in the env's action units, or None (hold)
    names, positions = arm.joint_names, arm.joint_positions()
    rgb = arm.render()              # (H, W, 3) uint8 from the task camera (placed by camera.yaml if given)

Holding: an absolute (joint position) controller keeps its last target; a delta controller gets a zero
delta with the gripper as last commanded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimArmConfig:
    task: str = "PushCube-v1"
    control_mode: str = "pd_ee_delta_pos"
    """The engine's action space decides this: pd_ee_delta_pos for the demo's engines, pd_joint_pos for
    joint-position ones."""
    image_size: tuple[int, int] = (128, 128)
    """(height, width) of the rendered camera image (camera.yaml's resolution when a camera file is given)."""
    camera_file: str | None = None
    camera_name: str = "base_camera"
    max_episode_steps: int = 10_000
    """A dry run ends when the operator or pirl-trials says so, not on the task's time limit."""


class SimArm:
    def __init__(self, cfg: SimArmConfig):
        from core.camera import CameraSpec
        from training.envs.maniskill import ManiSkillChunkEnv, ManiSkillConfig

        size = cfg.image_size
        if cfg.camera_file is not None:
            spec = CameraSpec.load(cfg.camera_file)
            size = (spec.height, spec.width)
        self.cfg = cfg
        self.env = ManiSkillChunkEnv(cfg.task, ManiSkillConfig(
            tasks=(cfg.task,), num_envs=1, image_size=size, camera_file=cfg.camera_file,
            camera_name=cfg.camera_name, control_mode=cfg.control_mode, max_episode_steps=cfg.max_episode_steps))
        robot = self.env.raw.agent.robot
        self.joint_names = tuple(j.name for j in robot.get_active_joints())
        self.action_dim = self.env.action_dim
        self.absolute = "delta" not in cfg.control_mode
        self._last: np.ndarray | None = None
        self.success = False
        self.steps = 0

    def reset(self, seed: int = 0) -> str:
        """A new episode; returns the task's instruction for it."""
        instruction = self.env.sim_reset(seed)
        self._last, self.success, self.steps = None, False, 0
        return instruction

    def hold_command(self) -> np.ndarray:
        if self.absolute:
            if self._last is None:  # the controller's current target: where the arm is
                return self.joint_positions()[: self.action_dim].astype(np.float64)
            return self._last.copy()
        hold = np.zeros(self.action_dim)
        if self._last is not None:
            hold[-1] = self._last[-1]  # the gripper keeps its last command
        return hold

    def apply(self, command: np.ndarray | None) -> bool:
        """Step the simulation by one control tick with `command` (A,) or a hold; returns task success."""
        cmd = self.hold_command() if command is None else np.asarray(command, np.float64)
        if cmd.shape != (self.action_dim,):
            raise ValueError(f"sim arm ({self.cfg.control_mode}) takes commands of shape ({self.action_dim},), got "
                             f"{cmd.shape}")
        _, success, _, _ = self.env.sim_step(cmd.astype(np.float32))
        self._last = cmd
        self.success = self.success or success
        self.steps += 1
        return success

    def joint_positions(self) -> np.ndarray:
        return self.env.sim_state()

    def render(self) -> np.ndarray:
        return self.env.render_images()[self.cfg.camera_name]

    def close(self) -> None:
        self.env.close()
