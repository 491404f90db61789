"""Tiny-preset policy figures on this machine: chunk latency with and without the prefix KV cache, and the
SFT step time. Prints a table; never run as a test.

    python benchmarks/policy_latency.py [--preset tiny] [--batch 1] [--repeats 50]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from training.data.synthetic import make_synthetic_reach
from training.policy.policy import Policy, fake_obs
from training.policy.presets import get_preset
from training.policy.sampling import sample_ode, sample_ode_uncached
from training.sft import SFTConfig, prepare_demos, train_sft


def _percentiles(fn, repeats: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 90) * 1e3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--sft-batch", type=int, default=32)
    args = p.parse_args()

    cfg = get_preset(args.preset)
    data, camera = make_synthetic_reach(64, cfg.action_horizon, cfg.vision.image_size, cfg.camera_names[0])
    policy = Policy.create(cfg, data.instruction, data.state, data.actions)
    model = policy.model.eval()
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"# preset={cfg.name} ({n_params:.2f}M params) batch={args.batch} torch={torch.__version__} "
          f"threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}")
    obs = policy.prepare(fake_obs(cfg, args.batch, state_dim=data.state.shape[1], instruction=data.instruction[0]))
    noise = torch.randn(args.batch, cfg.action_horizon, cfg.action_dim)

    print(f"{'chunk latency':<34}{'p50 ms':>10}{'p90 ms':>10}")
    with torch.inference_mode():
        for k in (4, 10):
            cached = _percentiles(lambda k=k: sample_ode(model, model.encode_prefix(obs), obs.state, noise, k),
                                  args.repeats)
            uncached = _percentiles(lambda k=k: sample_ode_uncached(model, obs, noise, k), args.repeats)
            print(f"{f'K={k} with prefix cache':<34}{cached[0]:>10.2f}{cached[1]:>10.2f}")
            print(f"{f'K={k} without cache':<34}{uncached[0]:>10.2f}{uncached[1]:>10.2f}")

    train, _ = make_synthetic_reach(256, cfg.action_horizon, cfg.vision.image_size, camera, seed=1)
    demos = prepare_demos(policy, {"images": {camera: train.images}, "state": train.state,
                                   "instruction": train.instruction}, train.actions)
    steps = 20
    train_sft(policy, demos, SFTConfig(steps=3, batch_size=args.sft_batch), progress=False)  # warm-up
    t0 = time.perf_counter()
    train_sft(policy, demos, SFTConfig(steps=steps, batch_size=args.sft_batch), progress=False)
    step_ms = (time.perf_counter() - t0) / steps * 1e3
    print(f"{f'SFT step (batch {args.sft_batch}, full model)':<34}{step_ms:>10.1f}{'':>10}")


if __name__ == "__main__":
    main()
