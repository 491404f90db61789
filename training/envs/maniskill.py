"""ManiSkill3 behind the vectorized env contract (`training.envs.base`).

CPU (here, laptops): ManiSkill's CPU backend holds one env per process, so N envs run in N worker processes
(gymnasium's AsyncVectorEnv, forkserver, one torch thread each). Each worker is a `ManiSkillChunkEnv`: one
ManiSkill env that executes a whole chunk per call, renders its cameras once at the end (the decision point),
and resets itself when an episode ends (so the autoreset semantics are the same on every backend).
GPU (clusters): `sim_backend="physx_cuda"` runs all N envs batched in one process (`ManiSkillGPUVecEnv`),
same class of outputs.

State: the robot's joint positions (qpos: 7 arm joints + 2 finger joints for the Panda), which a real arm
reports too. Actions, by `control_mode`:
    pd_ee_delta_pos   end-effector position deltas normalized to [-1, 1] (10 cm a step) + gripper (+1 open)
    pd_joint_pos      absolute joint targets: 7 arm joints in rad + the finger position in m (per finger,
                      -0.01 pressing closed .. 0.04 open), the units a Franka under ros2_control takes; the env
                      converts the finger to ManiSkill's normalized gripper action
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from core.camera import CameraSpec
from training.envs.base import EnvError
from training.envs.maniskill_tasks import INSTRUCTIONS, check_task
from training.envs.pool import ChunkEnv, WorkerPool, limit_threads

CONTROL_MODES = ("pd_ee_delta_pos", "pd_joint_pos")
PANDA_JOINT_ACTIONS = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1",)
"""The joint-position action dims, named as the Franka's joints (ros_ws/src/pirl_bringup/config/franka.yaml)."""
PANDA_JOINT_LIMITS = ((-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
                      (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973))
"""The Panda's arm joint limits in rad (ManiSkill's URDF, the same as Franka's datasheet)."""
FINGER_RANGE = (-0.01, 0.04)
"""The Panda gripper controller's finger target range in m (ManiSkill: -0.01 so that a thin object is pressed)."""

PRIVILEGED_DIM = 64
"""Length of the privileged state vector (the longest offline Panda task, StackCube, has 48 values)."""


@dataclass(frozen=True)
class ManiSkillConfig:
    tasks: tuple[str, ...] = ("PickCube-v1",)
    """Tasks, assigned to envs round robin (env i runs tasks[i % len(tasks)])."""
    num_envs: int = 2
    image_size: tuple[int, int] = (64, 64)
    """(height, width) of every camera image."""
    camera_file: str | dict | None = None
    """camera.yaml placing the task's camera, or its contents (`CameraSpec.to_dict()`, as demo datasets and
    checkpoints record the camera they were made with); None keeps the task's default camera."""
    camera_name: str = "base_camera"
    control_mode: str = "pd_ee_delta_pos"
    reward_mode: str = "sparse"
    """"sparse" (success, as in the piRL paper), "dense" or "normalized_dense"."""
    max_episode_steps: int = 50
    sim_backend: str = "cpu"
    """"cpu" (worker processes) or "physx_cuda" (batched on the GPU)."""
    render: bool = True
    """Render camera images at decision points; False gives state-only observations (images = {})."""
    render_every_step: bool = False
    """Render the cameras after every physics step, not only at decision points (benchmarking only)."""
    step_timeout_s: float = 300.0
    """A worker that does not answer within this time is reported, not waited on forever."""
    privileged: bool = False
    """Also return the simulator state (object/goal poses) as obs["privileged"], for an asymmetric critic."""
    absorbing_success: bool = True
    """Dense reward modes: a success ends the episode, so it pays its (maximal) reward once for every step left
    until the time limit, as if the success state were absorbing. Without this, ending early forfeits the
    per-step reward that a policy hovering next to the goal keeps collecting, and PPO learns to avoid success."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if not self.tasks:
            raise ValueError("give at least one task")
        if self.sim_backend not in ("cpu", "physx_cuda"):
            raise ValueError(f"sim_backend must be 'cpu' or 'physx_cuda', got {self.sim_backend!r}")
        if self.control_mode not in CONTROL_MODES:
            raise ValueError(f"control_mode must be one of {CONTROL_MODES}, got {self.control_mode!r}")


def finger_to_gripper_action(finger_m: np.ndarray) -> np.ndarray:
    """Finger position (m) -> ManiSkill's normalized gripper action in [-1, 1]."""
    lo, hi = FINGER_RANGE
    return np.clip(2.0 * (np.asarray(finger_m) - lo) / (hi - lo) - 1.0, -1.0, 1.0)


def gripper_action_to_finger(action: np.ndarray) -> np.ndarray:
    """ManiSkill's normalized gripper action -> the finger position it commands (m)."""
    lo, hi = FINGER_RANGE
    return lo + (np.clip(np.asarray(action), -1.0, 1.0) + 1.0) / 2.0 * (hi - lo)


def to_controller(actions: np.ndarray, control_mode: str) -> np.ndarray:
    """pirl's actions (..., A) -> the ManiSkill controller's: the finger dim of joint-position actions from m to
    the normalized gripper action; end-effector actions pass as they are."""
    if control_mode != "pd_joint_pos":
        return actions
    out = np.array(actions, dtype=np.float32, copy=True)
    out[..., -1] = finger_to_gripper_action(out[..., -1])
    return out


def _sensor_overrides(cfg: ManiSkillConfig) -> tuple[dict, CameraSpec | None]:
    h, w = cfg.image_size
    if cfg.camera_file is None:
        return {cfg.camera_name: {"width": w, "height": h}}, None
    spec = (CameraSpec.from_dict(cfg.camera_file) if isinstance(cfg.camera_file, dict)
            else CameraSpec.load(cfg.camera_file))
    if (spec.height, spec.width) != (h, w):
        spec = spec.scaled(w, h)
    import sapien

    # Pose is placed after loading, once the robot base is known (see `ManiSkillChunkEnv._place_camera`).
    return {cfg.camera_name: {"width": w, "height": h, "intrinsic": spec.K, "fov": None,
                              "pose": sapien.Pose()}}, spec


def make_maniskill(task: str, cfg: ManiSkillConfig, num_envs: int = 1) -> gym.Env:
    """The raw ManiSkill env for one task, state observations; cameras rendered on demand."""
    check_task(task)
    import mani_skill.envs  # noqa: F401

    sensors, _ = _sensor_overrides(cfg)
    kwargs = dict(obs_mode="state_dict", control_mode=cfg.control_mode, reward_mode=cfg.reward_mode,
                  num_envs=num_envs, sim_backend=cfg.sim_backend, sensor_configs=sensors,
                  max_episode_steps=cfg.max_episode_steps, **cfg.env_kwargs)
    if cfg.sim_backend == "cpu":
        kwargs["render_backend"] = "cpu"
    return gym.make(task, **kwargs)


def success_bonus(reward: np.ndarray, success: np.ndarray, terminated: np.ndarray, elapsed: np.ndarray,
                  cfg: ManiSkillConfig) -> np.ndarray:
    """The extra reward of `ManiSkillConfig.absorbing_success` for one env step (arrays over envs): the success
    step's reward (ManiSkill's dense rewards give success their maximum) times the steps left to the limit."""
    if not cfg.absorbing_success or cfg.reward_mode == "sparse":
        return np.zeros_like(reward)
    left = np.maximum(cfg.max_episode_steps - elapsed, 0)
    return np.where(success & terminated, reward * left, 0.0).astype(reward.dtype)


def instruction_for(task: str, seed: int) -> str:
    """The episode's phrasing: seed s gets phrasing s mod n, so any run of consecutive seeds (a few-shot demo
    set: seeds 0..N-1) covers every phrasing evenly. (A random draw per seed left phrasings that 8 demos never
    showed; the few-shot policy then failed every held-out episode that used them.)"""
    phrases = INSTRUCTIONS[task]
    return phrases[seed % len(phrases)]


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class ManiSkillChunkEnv(ChunkEnv):
    """One ManiSkill env on the CPU backend: a chunk per `step`, cameras rendered at decision points."""

    def __init__(self, task: str, cfg: ManiSkillConfig):
        self.task, self.cfg = task, cfg
        self.env = make_maniskill(task, cfg)
        self.raw = self.env.unwrapped
        _, self.camera_spec = _sensor_overrides(cfg)
        self.camera_names = (cfg.camera_name,) if cfg.render else ()
        self.image_size = cfg.image_size
        self.render_every_step = cfg.render_every_step
        self.state_dim = int(self.raw.agent.robot.get_qpos().shape[-1])
        self.action_dim = int(self.env.action_space.shape[-1])
        self.privileged_dim = PRIVILEGED_DIM if cfg.privileged else 0
        self._init_spaces()

    def _place_camera(self) -> None:
        if self.camera_spec is None:
            return
        import sapien

        T_world_base = _to_numpy(self.raw.agent.robot.pose.to_transformation_matrix())[0]
        pose = sapien.Pose(self.camera_spec.sapien_pose_in(T_world_base))
        self.raw._sensors[self.cfg.camera_name].camera.set_local_pose(pose)

    def render_images(self) -> dict[str, np.ndarray]:
        # ManiSkill renders sensors on request even in state observation mode: only at decision points.
        if not self.cfg.render:
            return {}
        data = self.raw._get_obs_sensor_data()
        return {self.cfg.camera_name: _to_numpy(data[self.cfg.camera_name]["rgb"])[0]}

    def sim_state(self) -> np.ndarray:
        return _to_numpy(self.raw.agent.robot.get_qpos())[0].astype(np.float32)

    def sim_privileged(self) -> np.ndarray:
        # ManiSkill's full state observation (robot qpos/qvel, tcp, object and goal poses), zero-padded to one
        # length so that envs of different tasks share an observation space; the last entry is the elapsed
        # fraction of the episode, without which returns-to-go under a time limit are unpredictable.
        from mani_skill.utils.common import flatten_state_dict

        flat = _to_numpy(flatten_state_dict(self.raw.get_obs(), use_torch=True))[0].astype(np.float32)
        if flat.size > PRIVILEGED_DIM - 1:
            raise EnvError(f"{self.task}: its state has {flat.size} values, more than PRIVILEGED_DIM - 1 ="
                           f"{PRIVILEGED_DIM - 1}; raise PRIVILEGED_DIM in training/envs/maniskill.py")
        out = np.zeros(PRIVILEGED_DIM, np.float32)
        out[: flat.size] = flat
        out[-1] = float(_to_numpy(self.raw.elapsed_steps).reshape(-1)[0]) / self.cfg.max_episode_steps
        return out

    def sim_reset(self, seed: int) -> str:
        self.env.reset(seed=seed)
        self._place_camera()
        return instruction_for(self.task, seed)

    def joint_targets(self) -> np.ndarray:
        """The arm joints' position targets (7,) the controller tracks after the last step: with end-effector
        control, the IK solution of the step's action (what a scripted expert's Cartesian step means in joints)."""
        target = self.raw.agent.controller.controllers["arm"]._target_qpos
        return _to_numpy(target)[0].astype(np.float32)

    def sim_step(self, action: np.ndarray) -> tuple[float, bool, bool, bool]:
        _, r, term, trunc, info = self.env.step(to_controller(action, self.cfg.control_mode)[None])
        r, term = _to_numpy(r).reshape(-1), _to_numpy(term).reshape(-1).astype(bool)
        success = _to_numpy(info.get("success", False)).reshape(-1).astype(bool)
        r = r + success_bonus(r, success, term, _to_numpy(self.raw.elapsed_steps).reshape(-1), self.cfg)
        return float(r.sum()), bool(success.any()), bool(term.any()), bool(_to_numpy(trunc).any())

    def close(self) -> None:
        self.env.close()


def _make_worker(task: str, cfg: ManiSkillConfig) -> ManiSkillChunkEnv:
    limit_threads()
    return ManiSkillChunkEnv(task, cfg)


class ManiSkillVecEnv(WorkerPool):
    """N ManiSkill envs on the CPU backend, one worker process each, behind the VecEnv contract."""

    def __init__(self, cfg: ManiSkillConfig):
        if cfg.sim_backend != "cpu":
            raise ValueError("ManiSkillVecEnv runs the CPU backend; use ManiSkillGPUVecEnv for physx_cuda")
        for task in set(cfg.tasks):
            check_task(task)  # fail here, clearly, not inside a worker
        self.cfg = cfg
        tasks = [cfg.tasks[i % len(cfg.tasks)] for i in range(cfg.num_envs)]
        super().__init__([partial(_make_worker, t, cfg) for t in tasks], tasks, "ManiSkill", cfg.step_timeout_s)


class ManiSkillGPUVecEnv:
    """All envs batched on one GPU (`sim_backend="physx_cuda"`), one batched ManiSkill env per task, with the
    CPU pool's outputs and semantics: chunks stop per env at episode end (later actions of that env are not
    counted and hold still), done envs are reset at once (partial reset) after the chunk, images rendered
    once per chunk on the GPU. Needs CUDA; not exercised on CPU-only CI."""

    def __init__(self, cfg: ManiSkillConfig):
        import torch

        if cfg.sim_backend != "physx_cuda":
            raise ValueError("ManiSkillGPUVecEnv runs sim_backend='physx_cuda'")
        if not torch.cuda.is_available():
            raise RuntimeError("sim_backend='physx_cuda' needs a CUDA GPU; use sim_backend='cpu' here")
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.tasks = [cfg.tasks[i % len(cfg.tasks)] for i in range(cfg.num_envs)]
        self.camera_names = (cfg.camera_name,)
        self.image_size = cfg.image_size
        if cfg.privileged:
            raise ValueError("the GPU backend does not offer privileged critic state yet; use critic: policy")
        if cfg.camera_file is not None:
            raise ValueError("the GPU backend does not place cameras from a camera file yet; collect demos and train "
                             "with the task's default camera (no camera_file) for GPU runs")
        self.privileged_dim = 0
        self._groups = []  # (task, env, indices into the batch)
        for task in dict.fromkeys(self.tasks):
            idx = np.array([i for i, t in enumerate(self.tasks) if t == task])
            self._groups.append((task, make_maniskill(task, cfg, num_envs=len(idx)), idx))
        env0 = self._groups[0][1]
        self.state_dim = int(env0.unwrapped.agent.robot.get_qpos().shape[-1])
        self.action_dim = int(env0.action_space.shape[-1])
        self._seeds = np.zeros(self.num_envs, dtype=np.int64)
        self._episode = np.zeros(self.num_envs, dtype=np.int64)
        self._base = np.zeros(self.num_envs, dtype=np.int64)
        self._instr = [""] * self.num_envs
        self._ep_ret = np.zeros(self.num_envs)
        self._ep_len = np.zeros(self.num_envs, dtype=np.int64)
        self._ep_succ = np.zeros(self.num_envs, dtype=bool)

    def _start(self, task: str, env, idx: np.ndarray, local: np.ndarray) -> None:
        import torch

        from training.envs.base import episode_seed

        seeds = [episode_seed(int(self._base[i]), int(self._episode[i])) for i in idx[local]]
        env.reset(seed=seeds, options={"env_idx": torch.as_tensor(local, device=env.unwrapped.device)})
        for i, s in zip(idx[local], seeds, strict=True):
            self._seeds[i], self._instr[i] = s, instruction_for(task, s)
            self._ep_ret[i], self._ep_len[i], self._ep_succ[i] = 0.0, 0, False

    def _observe(self) -> dict[str, Any]:
        h, w = self.image_size
        images = np.zeros((self.num_envs, h, w, 3), np.uint8)
        state = np.zeros((self.num_envs, self.state_dim), np.float32)
        for _, env, idx in self._groups:
            data = env.unwrapped._get_obs_sensor_data()
            images[idx] = _to_numpy(data[self.cfg.camera_name]["rgb"])
            state[idx] = _to_numpy(env.unwrapped.agent.robot.get_qpos())
        return {"images": {self.cfg.camera_name: images}, "state": state, "instruction": list(self._instr)}

    def reset(self, seed: int = 0) -> dict[str, Any]:
        self._base = seed + np.arange(self.num_envs)
        self._episode[:] = 0
        for task, env, idx in self._groups:
            self._start(task, env, idx, np.arange(len(idx)))
        return self._observe()

    def step(self, chunk: np.ndarray):
        import torch

        from training.envs.base import ChunkStep, EpisodeStats, check_chunk

        chunk = check_chunk(chunk, self.num_envs, self.action_dim)
        n = self.num_envs
        reward, executed = np.zeros(n, np.float32), np.zeros(n, int)
        success, term, trunc = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        for _, env, idx in self._groups:
            active = np.ones(len(idx), bool)
            for k in range(chunk.shape[1]):
                action = to_controller(np.where(active[:, None], chunk[idx, k], 0.0), self.cfg.control_mode)
                _, r, te, tr, info = env.step(torch.as_tensor(action, device=env.unwrapped.device))
                r, te, tr = _to_numpy(r), _to_numpy(te).astype(bool), _to_numpy(tr).astype(bool)
                s = _to_numpy(info.get("success", np.zeros(len(idx), bool))).astype(bool)
                r = r + success_bonus(r, s, te, _to_numpy(env.unwrapped.elapsed_steps), self.cfg)
                reward[idx] += np.where(active, r, 0.0)
                executed[idx] += active
                success[idx] |= s & active
                term[idx] |= te & active
                trunc[idx] |= tr & active
                active &= ~(te | tr)
                if not active.any():
                    break
        self._ep_ret += reward
        self._ep_len += executed
        self._ep_succ |= success
        done = term | trunc
        final_obs: list = [None] * n
        episodes: list = [None] * n
        if done.any():
            last = self._observe()
            for i in np.flatnonzero(done):
                final_obs[i] = {"images": {c: v[i] for c, v in last["images"].items()}, "state": last["state"][i],
                                "instruction": self._instr[i]}
                episodes[i] = EpisodeStats(self.tasks[i], self._instr[i], int(self._seeds[i]), int(self._ep_len[i]),
                                           float(self._ep_ret[i]), bool(self._ep_succ[i]))
                self._episode[i] += 1
            for task, env, idx in self._groups:
                local = np.flatnonzero(done[idx])
                if len(local):
                    self._start(task, env, idx, local)
        return ChunkStep(self._observe(), reward, term, trunc, success, executed, final_obs, episodes)

    def close(self) -> None:
        for _, env, _ in self._groups:
            env.close()


def make_maniskill_vec_env(cfg: ManiSkillConfig):
    """The ManiSkill VecEnv for the configured backend."""
    return ManiSkillVecEnv(cfg) if cfg.sim_backend == "cpu" else ManiSkillGPUVecEnv(cfg)
