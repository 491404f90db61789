"""The one vectorized env contract that PPO, evaluation, engine checks and calibration talk to.

A vectorized env holds N language-conditioned episodes:

    obs = env.reset(seed)            # {"images": {cam: uint8 (N,H,W,3)}, "state": float32 (N,S),
                                     #  "instruction": list[str] (N)}
    out = env.step(chunk)            # chunk float32 (N, H_exec, A), executed action by action in each env

`step` executes a chunk's actions one by one and stops an env's chunk early when its episode ends (the rest
of that env's chunk is dropped). Images are rendered once per chunk (at the decision point), not per physics
step. Auto-reset: when an episode ends inside a chunk, that env is reset at once, `out.obs` holds the first
observation of the *new* episode, and the last observation of the finished one is in `out.final_obs[i]`,
its statistics in `out.episodes[i]`.

Seeds: `reset(seed)` seeds env i's first episode with `seed + i`; later episodes of env i draw their seeds
from (seed + i, episode index), so a run is reproducible. Evaluation uses `EVAL_SEED_BASE` and up, a range
training never reaches by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

EVAL_SEED_BASE = 1_000_000
"""Held-out test episodes use seeds in [EVAL_SEED_BASE, 2 * EVAL_SEED_BASE); training seeds default to
[0, EVAL_SEED_BASE)."""
VAL_SEED_BASE = 2 * EVAL_SEED_BASE
"""Validation episodes (PPO's mid-run evaluations, checkpoint selection) use [VAL_SEED_BASE, 3 * EVAL_SEED_BASE):
choosing a policy on them leaves the test seeds unseen."""


def episode_seed(base_seed: int, episode: int) -> int:
    """Seed of the `episode`-th episode of an env first reset with `base_seed` (episode 0 is base_seed), in
    base_seed's range of EVAL_SEED_BASE seeds: a test env never plays a training or validation seed."""
    if episode == 0:
        return base_seed
    low = base_seed // EVAL_SEED_BASE * EVAL_SEED_BASE
    return low + int(np.random.default_rng([base_seed, episode]).integers(0, EVAL_SEED_BASE))


@dataclass
class EpisodeStats:
    task: str
    instruction: str
    seed: int
    length: int  # env steps
    ret: float  # summed reward
    success: bool  # success reached at any step of the episode


@dataclass
class ChunkStep:
    obs: dict[str, Any]
    reward: np.ndarray  # float32 (N,), summed over the executed steps of the chunk
    terminated: np.ndarray  # bool (N,)
    truncated: np.ndarray  # bool (N,)
    success: np.ndarray  # bool (N,): success reached during this chunk
    executed: np.ndarray  # int (N,): actions of the chunk actually executed (< H_exec if the episode ended)
    final_obs: list[dict[str, Any] | None] = field(default_factory=list)  # per env, if its episode ended
    episodes: list[EpisodeStats | None] = field(default_factory=list)  # per env, if its episode ended

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VecEnv(Protocol):
    num_envs: int
    camera_names: tuple[str, ...]
    image_size: tuple[int, int]  # (H, W)
    state_dim: int
    action_dim: int
    tasks: list[str]  # task of each env
    privileged_dim: int  # > 0: obs also hold "privileged": float32 (N, P), sim-only state for the critic

    def reset(self, seed: int = 0) -> dict[str, Any]: ...

    def step(self, chunk: np.ndarray) -> ChunkStep: ...

    def close(self) -> None: ...


class EnvError(RuntimeError):
    """A problem in a simulator or its worker, with what to do about it."""


def check_chunk(chunk: Any, num_envs: int, action_dim: int) -> np.ndarray:
    """Validate an action chunk before it reaches any simulator: (N, H_exec, A) finite floats."""
    chunk = np.asarray(chunk)
    if chunk.ndim != 3 or chunk.shape[0] != num_envs or chunk.shape[2] != action_dim or chunk.shape[1] < 1:
        raise ValueError(f"action chunk must be (N={num_envs}, H_exec>=1, A={action_dim}), got {chunk.shape}")
    if not np.issubdtype(chunk.dtype, np.floating):
        raise ValueError(f"action chunk must be floating point, got {chunk.dtype}")
    if not np.isfinite(chunk).all():
        env, step, dim = np.argwhere(~np.isfinite(chunk))[0]
        raise ValueError(f"action chunk has a non-finite value at [env {env}, step {step}, dim {dim}]; "
                         "nothing was executed")
    return chunk.astype(np.float32, copy=False)
