"""ManiSkill3 behind the vectorized env contract (`training.envs.base`).

CPU (here, laptops): ManiSkill's CPU backend holds one env per process, so N envs run in N worker processes
(gymnasium's AsyncVectorEnv, forkserver, one torch thread each). Each worker is a `ManiSkillChunkEnv`: one
ManiSkill env that executes a whole chunk per call, renders its cameras once at the end (the decision point),
and resets itself when an episode ends (so the autoreset semantics are the same on every backend).
GPU (clusters): `sim_backend="physx_cuda"` runs all N envs batched in one process (`ManiSkillGPUVecEnv`),
same class of outputs.

State: the robot's joint positions (qpos: 7 arm joints + 2 finger joints for the Panda), which a real arm
reports too. Actions: the ManiSkill controller's (default `pd_ee_delta_pos`, normalized to [-1, 1]).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from training.envs.base import ChunkStep, EnvError, EpisodeStats, check_chunk, episode_seed
from training.envs.camera import CameraSpec
from training.envs.maniskill_tasks import INSTRUCTIONS, check_task

INSTRUCTION_SPACE = gym.spaces.Text(max_length=256, charset="".join(chr(c) for c in range(32, 127)))


@dataclass(frozen=True)
class ManiSkillConfig:
    tasks: tuple[str, ...] = ("PickCube-v1",)
    """Tasks, assigned to envs round robin (env i runs tasks[i % len(tasks)])."""
    num_envs: int = 2
    image_size: tuple[int, int] = (64, 64)
    """(height, width) of every camera image."""
    camera_file: str | None = None
    """camera.yaml placing the task's camera; None keeps the task's default camera."""
    camera_name: str = "base_camera"
    control_mode: str = "pd_ee_delta_pos"
    reward_mode: str = "sparse"
    """"sparse" (success, as in the piRL paper), "dense" or "normalized_dense"."""
    max_episode_steps: int = 50
    sim_backend: str = "cpu"
    """"cpu" (worker processes) or "physx_cuda" (batched on the GPU)."""
    render_every_step: bool = False
    """Render the cameras after every physics step, not only at decision points (benchmarking only)."""
    step_timeout_s: float = 300.0
    """A worker that does not answer within this time is reported, not waited on forever."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if not self.tasks:
            raise ValueError("give at least one task")
        if self.sim_backend not in ("cpu", "physx_cuda"):
            raise ValueError(f"sim_backend must be 'cpu' or 'physx_cuda', got {self.sim_backend!r}")


def _sensor_overrides(cfg: ManiSkillConfig) -> tuple[dict, CameraSpec | None]:
    h, w = cfg.image_size
    if cfg.camera_file is None:
        return {cfg.camera_name: {"width": w, "height": h}}, None
    spec = CameraSpec.load(cfg.camera_file)
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


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class ManiSkillChunkEnv(gym.Env):
    """One ManiSkill env (CPU backend) that executes a chunk per `step` and auto-resets itself."""

    def __init__(self, task: str, cfg: ManiSkillConfig, env_index: int = 0):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)
        self.task, self.cfg, self.env_index = task, cfg, env_index
        self.env = make_maniskill(task, cfg)
        self.raw = self.env.unwrapped
        _, self.camera_spec = _sensor_overrides(cfg)
        h, w = cfg.image_size
        self.state_dim = int(self.raw.agent.robot.get_qpos().shape[-1])
        self.action_dim = int(self.env.action_space.shape[-1])
        self.observation_space = gym.spaces.Dict({
            "images": gym.spaces.Dict({cfg.camera_name: gym.spaces.Box(0, 255, (h, w, 3), np.uint8)}),
            "state": gym.spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32),
            "instruction": INSTRUCTION_SPACE,
        })
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (1, self.action_dim), np.float32)
        self._base_seed, self._episode = 0, 0
        self._instruction = ""
        self._ep_return, self._ep_len, self._ep_success, self._ep_seed = 0.0, 0, False, 0

    # ------------------------------------------------------------------ observation
    def _place_camera(self) -> None:
        if self.camera_spec is None:
            return
        import sapien

        T_world_base = _to_numpy(self.raw.agent.robot.pose.to_transformation_matrix())[0]
        pose = sapien.Pose(self.camera_spec.sapien_pose_in(T_world_base))
        self.raw._sensors[self.cfg.camera_name].camera.set_local_pose(pose)

    def render_images(self) -> dict[str, np.ndarray]:
        # ManiSkill renders sensors on request even in state observation mode: only at decision points.
        data = self.raw._get_obs_sensor_data()
        return {self.cfg.camera_name: _to_numpy(data[self.cfg.camera_name]["rgb"])[0]}

    def _observe(self) -> dict[str, Any]:
        state = _to_numpy(self.raw.agent.robot.get_qpos())[0].astype(np.float32)
        return {"images": self.render_images(), "state": state, "instruction": self._instruction}

    # ------------------------------------------------------------------ episodes
    def _start_episode(self, seed: int) -> None:
        self.env.reset(seed=seed)
        self._place_camera()
        phrases = INSTRUCTIONS[self.task]
        self._instruction = phrases[np.random.default_rng(seed).integers(len(phrases))]
        self._ep_return, self._ep_len, self._ep_success, self._ep_seed = 0.0, 0, False, seed

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._base_seed, self._episode = int(seed), 0
        else:
            self._episode += 1
        self._start_episode(episode_seed(self._base_seed, self._episode))
        return self._observe(), {}

    def step(self, chunk: np.ndarray):
        chunk = np.asarray(chunk, np.float32).reshape(-1, self.action_dim)
        reward, success, executed = 0.0, False, 0
        terminated = truncated = False
        for action in chunk:
            _, r, term, trunc, info = self.env.step(action[None])
            executed += 1
            reward += float(_to_numpy(r).sum())
            success |= bool(_to_numpy(info.get("success", False)).any())
            terminated, truncated = bool(_to_numpy(term).any()), bool(_to_numpy(trunc).any())
            if self.cfg.render_every_step:
                self.render_images()
            if terminated or truncated:
                break
        self._ep_return += reward
        self._ep_len += executed
        self._ep_success |= success
        info = {"success": success, "executed": executed, "task": self.task}
        if terminated or truncated:
            # One opaque value (not a dict), so the vector env keeps it per env instead of merging its keys.
            info["final"] = (self._observe(), EpisodeStats(self.task, self._instruction, self._ep_seed,
                                                           self._ep_len, self._ep_return, self._ep_success))
            self._episode += 1
            self._start_episode(episode_seed(self._base_seed, self._episode))
        return self._observe(), reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()


def _make_worker(task: str, cfg: ManiSkillConfig, index: int) -> ManiSkillChunkEnv:
    return ManiSkillChunkEnv(task, cfg, index)


class ManiSkillVecEnv:
    """N ManiSkill envs on the CPU backend, one worker process each, behind the VecEnv contract."""

    def __init__(self, cfg: ManiSkillConfig):
        if cfg.sim_backend != "cpu":
            raise ValueError("ManiSkillVecEnv runs the CPU backend; use make_env() to get the GPU one")
        for task in set(cfg.tasks):
            check_task(task)  # fail here, clearly, not inside a worker
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.tasks = [cfg.tasks[i % len(cfg.tasks)] for i in range(cfg.num_envs)]
        self.camera_names = (cfg.camera_name,)
        self.image_size = cfg.image_size
        fns = [partial(_make_worker, task, cfg, i) for i, task in enumerate(self.tasks)]
        try:
            self._pool = gym.vector.AsyncVectorEnv(fns, shared_memory=False, context="forkserver",
                                                   autoreset_mode=gym.vector.AutoresetMode.DISABLED)
        except Exception as e:
            raise EnvError(f"starting {cfg.num_envs} ManiSkill worker processes failed: {type(e).__name__}: {e}. "
                           "The workers' own tracebacks are printed above.") from e
        space = self._pool.single_observation_space
        self.state_dim = int(space["state"].shape[0])
        self.action_dim = int(self._pool.single_action_space.shape[-1])
        self._closed = False

    def _call(self, fn, what: str):
        try:
            return fn()
        except Exception as e:  # a worker that raised or died: say which, close cleanly, never hang
            dead = [f"env {i} ({self.tasks[i]}, pid {p.pid}, exit code {p.exitcode})"
                    for i, p in enumerate(self._pool.processes) if not p.is_alive()]
            self.close(terminate=True)
            if dead:
                raise EnvError(f"ManiSkill worker process died during {what}: {'; '.join(dead)}. The pool was "
                               "closed; create a new env to continue.") from e
            raise EnvError(f"ManiSkill env failed during {what}: {type(e).__name__}: {e}. The pool was "
                           "closed; create a new env to continue.") from e

    @staticmethod
    def _batch(obs: dict[str, Any]) -> dict[str, Any]:
        return {"images": dict(obs["images"]), "state": np.asarray(obs["state"], np.float32),
                "instruction": list(obs["instruction"])}

    def reset(self, seed: int = 0) -> dict[str, Any]:
        obs, _ = self._call(lambda: self._pool.reset(seed=seed), "reset")
        return self._batch(obs)

    def step(self, chunk: np.ndarray) -> ChunkStep:
        if self._closed:
            raise EnvError("this env was closed; create a new one")
        chunk = check_chunk(chunk, self.num_envs, self.action_dim)

        def run():
            self._pool.step_async(chunk)
            return self._pool.step_wait(timeout=self.cfg.step_timeout_s)

        obs, reward, terminated, truncated, info = self._call(run, "step")
        n = self.num_envs
        final_obs: list[dict | None] = [None] * n
        episodes: list[EpisodeStats | None] = [None] * n
        for i in range(n):
            if "final" in info and info["_final"][i]:
                final_obs[i], episodes[i] = info["final"][i]
        return ChunkStep(obs=self._batch(obs), reward=np.asarray(reward, np.float32),
                         terminated=np.asarray(terminated, bool), truncated=np.asarray(truncated, bool),
                         success=np.asarray(info["success"], bool), executed=np.asarray(info["executed"], int),
                         final_obs=final_obs, episodes=episodes)

    def close(self, terminate: bool = False) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._pool.close(terminate=terminate)
            except Exception:  # a broken pool: make sure no process outlives us
                for p in self._pool.processes:
                    if p.is_alive():
                        p.kill()

    def __enter__(self) -> "ManiSkillVecEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
