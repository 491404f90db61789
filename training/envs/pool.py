"""What every CPU simulator backend shares: a single-env `ChunkEnv` that executes a whole chunk per call and
resets itself, and `WorkerPool`, N of them in worker processes behind the VecEnv contract.

gymnasium's AsyncVectorEnv is the transport (forkserver workers, pipes, error propagation); its own
autoreset is disabled because each ChunkEnv resets itself the moment an episode ends inside a chunk, which
is the same semantics the batched GPU backends implement.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from training.envs.base import ChunkStep, EnvError, EpisodeStats, check_chunk, episode_seed

INSTRUCTION_SPACE = gym.spaces.Text(max_length=512, charset="".join(chr(c) for c in range(32, 127)))


class ChunkEnv(gym.Env):
    """One simulator env. Subclasses implement the `sim_*` hooks and `render_images`; scripted demo
    collection drives those hooks directly (one action and one render per step)."""

    task: str
    camera_names: tuple[str, ...]
    image_size: tuple[int, int]
    state_dim: int
    action_dim: int
    render_every_step: bool = False
    privileged_dim: int = 0
    """Length of the simulator-only state vector offered to an asymmetric critic (0: none)."""

    # ------------------------------------------------------------------ hooks
    def sim_reset(self, seed: int) -> str:
        """Start an episode from `seed`; return its instruction."""
        raise NotImplementedError

    def sim_step(self, action: np.ndarray) -> tuple[float, bool, bool, bool]:
        """Apply one action; return (reward, success, terminated, truncated)."""
        raise NotImplementedError

    def sim_state(self) -> np.ndarray:
        """Proprioceptive state, float32 (state_dim,)."""
        raise NotImplementedError

    def render_images(self) -> dict[str, np.ndarray]:
        """Render every camera now: {name: uint8 (H, W, 3)}."""
        raise NotImplementedError

    def sim_privileged(self) -> np.ndarray:
        """Simulator-only state (object and goal poses...), float32 (privileged_dim,): critic input only, the
        policy never sees it. Only called when `privileged_dim` > 0."""
        raise NotImplementedError

    # ------------------------------------------------------------------ gym.Env
    def _init_spaces(self) -> None:
        h, w = self.image_size
        self.observation_space = gym.spaces.Dict({
            "images": gym.spaces.Dict({c: gym.spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.camera_names}),
            "state": gym.spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32),
            "instruction": INSTRUCTION_SPACE,
            **({"privileged": gym.spaces.Box(-np.inf, np.inf, (self.privileged_dim,), np.float32)}
               if self.privileged_dim else {}),
        })
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (1, self.action_dim), np.float32)
        self._base_seed, self._episode = 0, 0
        self._instruction = ""
        self._ep_return, self._ep_len, self._ep_success, self._ep_seed = 0.0, 0, False, 0

    def observe(self) -> dict[str, Any]:
        obs = {"images": self.render_images(), "state": self.sim_state(), "instruction": self._instruction}
        if self.privileged_dim:
            obs["privileged"] = self.sim_privileged()
        return obs

    def _start_episode(self, seed: int) -> None:
        self._instruction = self.sim_reset(seed)
        self._ep_return, self._ep_len, self._ep_success, self._ep_seed = 0.0, 0, False, seed

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._base_seed, self._episode = int(seed), 0
        else:
            self._episode += 1
        self._start_episode(episode_seed(self._base_seed, self._episode))
        return self.observe(), {}

    def step(self, chunk: np.ndarray):
        chunk = np.asarray(chunk, np.float32).reshape(-1, self.action_dim)
        reward, success, executed = 0.0, False, 0
        terminated = truncated = False
        for action in chunk:
            r, s, terminated, truncated = self.sim_step(action)
            executed += 1
            reward += r
            success |= s
            if self.render_every_step:
                self.render_images()
            if terminated or truncated:
                break
        self._ep_return += reward
        self._ep_len += executed
        self._ep_success |= success
        info: dict[str, Any] = {"success": success, "executed": executed}
        if terminated or truncated:
            # One opaque value (not a dict), so the vector env keeps it per env instead of merging its keys.
            info["final"] = (self.observe(), EpisodeStats(self.task, self._instruction, self._ep_seed,
                                                          self._ep_len, self._ep_return, self._ep_success))
            self._episode += 1
            self._start_episode(episode_seed(self._base_seed, self._episode))
        return self.observe(), reward, terminated, truncated, info


def limit_threads() -> None:
    """One BLAS/torch thread per worker: N workers on N cores, not N x N threads fighting."""
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


class WorkerPool:
    """N ChunkEnvs in N worker processes behind the VecEnv contract."""

    def __init__(self, env_fns: Sequence[Callable[[], ChunkEnv]], tasks: Sequence[str], backend: str,
                 step_timeout_s: float = 300.0):
        self.tasks = list(tasks)
        self.num_envs = len(env_fns)
        self.backend = backend
        self.step_timeout_s = step_timeout_s
        self._closed = False
        try:
            self._pool = gym.vector.AsyncVectorEnv(list(env_fns), shared_memory=False, context="forkserver",
                                                   autoreset_mode=gym.vector.AutoresetMode.DISABLED)
        except Exception as e:
            raise EnvError(f"starting {self.num_envs} {backend} worker processes failed: {type(e).__name__}: {e}. "
                           "The workers' own tracebacks are printed above.") from e
        space = self._pool.single_observation_space
        self.camera_names = tuple(space["images"].keys())
        first = space["images"][self.camera_names[0]].shape if self.camera_names else (0, 0)
        self.image_size = (int(first[0]), int(first[1]))
        self.state_dim = int(space["state"].shape[0])
        self.privileged_dim = int(space["privileged"].shape[0]) if "privileged" in space.spaces else 0
        self.action_dim = int(self._pool.single_action_space.shape[-1])

    @property
    def processes(self) -> list:
        return list(self._pool.processes)

    def _call(self, fn, what: str):
        if self._closed:
            raise EnvError(f"this {self.backend} env was closed; create a new one")
        try:
            return fn()
        except Exception as e:  # a worker that raised or died: say which, close cleanly, never hang
            dead = [f"env {i} ({self.tasks[i]}, pid {p.pid}, exit code {p.exitcode})"
                    for i, p in enumerate(self._pool.processes) if not p.is_alive()]
            self.close(terminate=True)
            if dead:
                raise EnvError(f"{self.backend} worker process died during {what}: {'; '.join(dead)}. The pool "
                               "was closed; create a new env to continue.") from e
            raise EnvError(f"{self.backend} env failed during {what}: {type(e).__name__}: {e}. The pool was "
                           "closed; create a new env to continue.") from e

    @staticmethod
    def _batch(obs: dict[str, Any]) -> dict[str, Any]:
        batch = {"images": dict(obs["images"]), "state": np.asarray(obs["state"], np.float32),
                 "instruction": list(obs["instruction"])}
        if "privileged" in obs:
            batch["privileged"] = np.asarray(obs["privileged"], np.float32)
        return batch

    def reset(self, seed: int = 0) -> dict[str, Any]:
        obs, _ = self._call(lambda: self._pool.reset(seed=seed), "reset")
        return self._batch(obs)

    def step(self, chunk: np.ndarray) -> ChunkStep:
        if self._closed:
            raise EnvError(f"this {self.backend} env was closed; create a new one")
        chunk = check_chunk(chunk, self.num_envs, self.action_dim)

        def run():
            self._pool.step_async(chunk)
            return self._pool.step_wait(timeout=self.step_timeout_s)

        obs, reward, terminated, truncated, info = self._call(run, "step")
        final_obs: list[dict | None] = [None] * self.num_envs
        episodes: list[EpisodeStats | None] = [None] * self.num_envs
        for i in range(self.num_envs):
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

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
