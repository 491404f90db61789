"""Policy figures on this machine: chunk latency with and without the prefix KV cache, and the SFT step time.
Prints a table; never run as a test.

    python benchmarks/policy_latency.py [--preset tiny] [--batch 1] [--repeats 50]
    python benchmarks/policy_latency.py --preset pi0 --views 1 --device cuda --autocast bf16 --no-sft   # GPU
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)  # GPU work is asynchronous
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 90) * 1e3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--sft-batch", type=int, default=32)
    p.add_argument("--views", type=int, default=0, help="cameras (the preset's first N; 0: all of them)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--autocast", default="none", choices=["none", "bf16"], help="bf16: matmuls in bfloat16")
    p.add_argument("--no-sft", action="store_true", help="skip the SFT step timing")
    args = p.parse_args()

    cfg = get_preset(args.preset)
    if args.views:
        cfg = dataclasses.replace(cfg, camera_names=cfg.camera_names[: args.views])
    data, camera = make_synthetic_reach(64, cfg.action_horizon, cfg.vision.image_size, cfg.camera_names[0])
    policy = Policy.create(cfg, data.instruction, data.state, data.actions)
    model = policy.model.to(args.device).eval()
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    on_gpu = args.device.startswith("cuda")
    where = torch.cuda.get_device_name() if on_gpu else platform.processor() or platform.machine()
    print(f"# preset={cfg.name} ({n_params:.2f}M params) views={len(cfg.camera_names)} batch={args.batch} "
          f"torch={torch.__version__} threads={torch.get_num_threads()} device={where} autocast={args.autocast}")
    obs = policy.prepare(fake_obs(cfg, args.batch, state_dim=data.state.shape[1], instruction=data.instruction[0]))
    noise = torch.randn(args.batch, cfg.action_horizon, cfg.action_dim, device=args.device)
    amp = (torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16) if args.autocast == "bf16"
           else contextlib.nullcontext())

    print(f"{'chunk latency':<34}{'p50 ms':>10}{'p90 ms':>10}")
    with torch.inference_mode(), amp:
        for k in (4, 10):
            cached = _percentiles(lambda k=k: sample_ode(model, model.encode_prefix(obs), obs.state, noise, k),
                                  args.repeats)
            uncached = _percentiles(lambda k=k: sample_ode_uncached(model, obs, noise, k), args.repeats)
            print(f"{f'K={k} with prefix cache':<34}{cached[0]:>10.2f}{cached[1]:>10.2f}")
            print(f"{f'K={k} without cache':<34}{uncached[0]:>10.2f}{uncached[1]:>10.2f}")
    if args.no_sft:
        return
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
