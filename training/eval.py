"""Evaluation of the deterministic ODE policy on fixed held-out seeds: success rate with a Wilson 95%
interval, per task and per instruction.

Env i of the eval env plays `episodes_per_env` consecutive episodes from seed EVAL_SEED_BASE + i (and the
seeds derived from it), so two policies evaluated with the same env config face exactly the same episodes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from training.envs.base import EVAL_SEED_BASE, EpisodeStats, VecEnv
from training.policy.policy import Policy
from training.policy.sampling import sample_ode
from training.stats import wilson_interval  # noqa: F401 - re-exported: training.eval.wilson_interval


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


@torch.no_grad()
def evaluate(policy: Policy, env: VecEnv, episodes_per_env: int, num_executed: int, num_steps: int = 4,
             seed: int = EVAL_SEED_BASE, video_dir: Path | None = None, videos: int = 2) -> dict:
    """Play `episodes_per_env` episodes in every env with the ODE policy; returns the summary + episodes.
    With `video_dir`, the first `videos` episodes of env 0 are written as videos of what the policy saw."""
    model = policy.model.eval()
    cfg = policy.cfg
    gen = torch.Generator().manual_seed(seed)
    obs = env.reset(seed=seed)
    done_per_env = np.zeros(env.num_envs, int)
    episodes: list[EpisodeStats] = []
    cam = env.camera_names[0] if env.camera_names else None
    frames: list[np.ndarray] = []
    video_paths: list[str] = []
    while (done_per_env < episodes_per_env).any():
        if video_dir is not None and cam and len(video_paths) < videos:
            frames.append(obs["images"][cam][0])
        inputs = policy.prepare(obs)
        # drawn on the CPU, so a policy meets the same initial noise on every device
        noise = torch.randn(inputs.batch_size, cfg.action_horizon, cfg.action_dim, generator=gen).to(policy.device)
        actions = sample_ode(model, model.encode_prefix(inputs), inputs.state, noise, num_steps)
        out = env.step(policy.unnormalize_actions(actions.cpu().numpy())[:, :num_executed])
        for i, ep in enumerate(out.episodes):
            if ep is not None and done_per_env[i] < episodes_per_env:
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
    return summary
