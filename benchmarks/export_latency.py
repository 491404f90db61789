"""Chunk latency of the exported engine: PyTorch eager vs onnxruntime, one graph vs prefix + denoiser graphs.
Prints p50/p99 per chunk at batch 1; never run as a test.

    python benchmarks/export_latency.py                       # tiny preset, CPU
    python benchmarks/export_latency.py --checkpoint DIR      # a trained checkpoint
    python benchmarks/export_latency.py --preset pi0 --device cuda --steps 10   # on a GPU machine: random
        weights; PyTorch CUDA, plus onnxruntime CUDA when onnxruntime-gpu is installed (presets under 1B params)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deploy.export.onnx import export
from deploy.robot.runtime import load_engine
from training.policy.checkpoint import load_checkpoint, save_checkpoint
from training.policy.config import SamplerConfig
from training.policy.policy import Policy, fake_obs
from training.policy.presets import get_preset


def _times(fn, runs: int, sync=lambda: None) -> tuple[float, float]:
    for _ in range(5):
        fn()
    sync()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        t.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(t, 50)), float(np.percentile(t, 99))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--steps", type=int, default=4, help="K denoising steps (fresh policies)")
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
            policy = load_checkpoint(ckpt)
        else:
            cfg = get_preset(args.preset)
            rng = np.random.default_rng(0)
            policy = Policy.create(cfg, ["pick up the cube"], rng.standard_normal((64, cfg.state_dim)),
                                   rng.uniform(-1, 1, (64, cfg.action_horizon, cfg.action_dim)),
                                   sampler=SamplerConfig(num_steps=args.steps))
            ckpt = None
        params = sum(p.numel() for p in policy.model.parameters())
        obs = fake_obs(policy.cfg, batch=1, state_dim=policy.norm_stats.state.dim)
        if args.device == "cuda":
            policy.model.to("cuda", dtype=torch.bfloat16 if params > 1e9 else torch.float32)
            rows.append(("PyTorch CUDA eager", *_times(lambda: policy.infer(obs), args.runs, torch.cuda.synchronize)))
        else:
            rows.append(("PyTorch CPU eager (prefix cache)", *_times(lambda: policy.infer(obs), args.runs)))
        if params < 1e9:
            if ckpt is None:
                ckpt = save_checkpoint(Path(tmp) / "ckpt", _cpu(policy))
            providers = ("CUDAExecutionProvider",) if args.device == "cuda" else ("CPUExecutionProvider",)
            for graph in ("one", "two"):
                out = Path(tmp) / f"engine_{graph}"
                export(ckpt, out, graph=graph)
                try:
                    engine = load_engine(out, backends=("onnxruntime",), providers=providers)
                except RuntimeError as e:
                    print(f"# skipped onnxruntime {providers[0]}: {e}")
                    break
                run = engine.infer
                rows.append((f"{engine.backend}, graph {graph}", *_times(lambda r=run: r(obs),
                                                                                    args.runs)))
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# chunk latency, batch 1, K={policy.sampler.num_steps}, {policy.cfg.name} preset "
          f"({params / 1e6:.1f}M params), {where}")
    print("| runner | p50 ms | p99 ms |\n| --- | --- | --- |")
    for name, p50, p99 in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")


def _cpu(policy: Policy) -> Policy:
    policy.model.to("cpu", dtype=torch.float32)
    return policy


if __name__ == "__main__":
    main()
