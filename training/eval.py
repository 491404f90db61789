"""The closed-loop evaluator (`run_episodes`) and its summaries: success rate with a Wilson 95% interval,
per task and per instruction, on fixed held-out seeds. The PyTorch policy (`evaluate`, in SFT and PPO runs) and
the exported engine (deploy/sim/eval.py) are both played by `run_episodes`.

Env i of the eval env plays `episodes_per_env` consecutive episodes from seed EVAL_SEED_BASE + i (and the
seeds derived from it), so two policies evaluated with the same env config face exactly the same episodes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from core.stats import wilson_interval  # noqa: F401 - re-exported: training.eval.wilson_interval
from training.envs.base import EVAL_SEED_BASE, EpisodeStats, VecEnv
from training.policy.policy import Policy
from training.policy.sampling import sample_ode


def summarize(episodes: list[EpisodeStats]) -> dict:
    def block(eps: list[EpisodeStats]) -> dict:
        k = sum(e.success for e in eps)
        lo, hi = wilson_interval(k, len(eps))
        return {"success": k / max(len(eps), 1), "ci95": [lo, hi], "n": len(eps),
                "mean_length": float(np.mean([e.length for e in eps])) if eps else float("nan")}

    by_task, by_instr = defaultdict(list), defaultdict(list)
    for e in episodes:
        by_task[e.task].append(e)
        by_instr[(e.task, e.instruction)].append(e)
    return {"overall": block(episodes), "per_task": {t: block(v) for t, v in sorted(by_task.items())},
            "per_instruction": {f"{t} | {i}": block(v) for (t, i), v in sorted(by_instr.items())}}


def write_video(frames: list[np.ndarray], path: Path, fps: int = 4) -> Path:
    """Decision-point frames (H, W, 3) -> an mp4 (or a GIF where ffmpeg is missing). Returns the path."""
    import imageio.v2 as imageio

    try:
        imageio.mimwrite(path.with_suffix(".mp4"), frames, fps=fps, macro_block_size=1)
        return path.with_suffix(".mp4")
    except (ImportError, ValueError, RuntimeError):
        imageio.mimwrite(path.with_suffix(".gif"), frames, duration=1 / fps)
        return path.with_suffix(".gif")


class Executor(Protocol):
    """Turns one env's chunk into the commands it executes (deploy's ChunkExecutor + safety filter on a
    virtual clock: deploy/sim/eval.py). Without one, the first `num_executed` actions run as they are."""

    def execute(self, chunk: np.ndarray, num_executed: int) -> np.ndarray:
        """chunk (H, A) -> commands (num_executed, A)."""
        ...

    def reset(self) -> None:
        """The env's episode ended: forget the chunk and any filter state."""
        ...


Infer = Callable[[dict, torch.Tensor], np.ndarray]
"""(observation batch, initial noise (N, H, A_pad)) -> action chunks (N, H, A) in env units."""


def run_episodes(infer: Infer, env: VecEnv, episodes_per_env: int, num_executed: int, noise_shape: tuple[int, int],
                 executors: Sequence[Executor] | None = None, seed: int = EVAL_SEED_BASE,
                 video_dir: Path | None = None, videos: int = 2) -> dict:
    """The closed-loop evaluator: play `episodes_per_env` episodes in every env from `reset(seed)`; returns
    `summarize`'s blocks plus the episodes, the videos and the latency of `infer` per decision.

    The initial noise of every decision comes from one CPU torch generator seeded with `seed`, so any two
    runners (a PyTorch policy, its exported engine) meet the same noise on the same episodes. With `video_dir`,
    the first `videos` episodes of env 0 are written as videos of what the policy saw."""
    gen = torch.Generator().manual_seed(seed)
    obs = env.reset(seed=seed)
    done_per_env = np.zeros(env.num_envs, int)
    episodes: list[EpisodeStats] = []
    cam = env.camera_names[0] if env.camera_names else None
    frames: list[np.ndarray] = []
    video_paths: list[str] = []
    latencies: list[float] = []
    while (done_per_env < episodes_per_env).any():
        if video_dir is not None and cam and len(video_paths) < videos:
            frames.append(obs["images"][cam][0])
        noise = torch.randn(env.num_envs, *noise_shape, generator=gen)
        t0 = time.perf_counter()
        chunk = infer(obs, noise)  # (N, H, A)
        latencies.append(time.perf_counter() - t0)
        if executors is None:
            commands = chunk[:, :num_executed]
        else:
            commands = np.stack([ex.execute(chunk[i], num_executed) for i, ex in enumerate(executors)])
        out = env.step(commands)
        for i, ep in enumerate(out.episodes):
            if ep is None:
                continue
            if executors is not None:
                executors[i].reset()
            if done_per_env[i] < episodes_per_env:
                episodes.append(ep)
                done_per_env[i] += 1
        if video_dir is not None and cam and out.episodes[0] is not None and len(video_paths) < videos:
            frames.append(out.final_obs[0]["images"][cam])
            ep = out.episodes[0]
            video_dir.mkdir(parents=True, exist_ok=True)
            name = f"{ep.task.replace('/', '-')}_seed{ep.seed}_{'success' if ep.success else 'failure'}"  # libero_x/3
            video_paths.append(str(write_video(frames, video_dir / name)))
            frames = []
        obs = out.obs
    summary = summarize(episodes)
    summary["episodes"] = [asdict(e) for e in episodes]
    summary["videos"] = video_paths
    summary["latency_ms"] = {"p50": 1000 * float(np.percentile(latencies, 50)),
                             "p90": 1000 * float(np.percentile(latencies, 90))}
    return summary


def ode_infer(policy: Policy, num_steps: int) -> Infer:
    """The PyTorch policy's deterministic ODE sampler as an `Infer` (the policy the engine is exported from)."""
    model = policy.model.eval()

    @torch.no_grad()
    def infer(obs: dict, noise: torch.Tensor) -> np.ndarray:
        inputs = policy.prepare(obs)
        actions = sample_ode(model, model.encode_prefix(inputs), inputs.state, noise.to(policy.device), num_steps)
        return policy.unnormalize_actions(actions.cpu().numpy())

    return infer


def evaluate(policy: Policy, env: VecEnv, episodes_per_env: int, num_executed: int, num_steps: int = 4,
             seed: int = EVAL_SEED_BASE, video_dir: Path | None = None, videos: int = 2) -> dict:
    """The ODE policy on `run_episodes`: success per task and instruction on the held-out seeds."""
    return run_episodes(ode_infer(policy, num_steps), env, episodes_per_env, num_executed,
                        (policy.cfg.action_horizon, policy.cfg.action_dim), seed=seed, video_dir=video_dir,
                        videos=videos)
