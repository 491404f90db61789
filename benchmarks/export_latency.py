"""Engine latency: one ONNX graph vs prefix + denoiser graphs (onnxruntime), next to the PyTorch policy, for
a checkpoint or a fresh tiny-preset policy. Prints p50/p90 per chunk at batch 1; never run as a test.

    python benchmarks/export_latency.py [--checkpoint DIR] [--runs 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deploy.export import export
from deploy.runtime import load_engine
from training.policy.checkpoint import load_checkpoint, save_checkpoint
from training.policy.policy import Policy, fake_obs
from training.policy.presets import get_preset


def _times(fn, runs: int) -> tuple[float, float]:
    for _ in range(5):
        fn()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(t, 50)), float(np.percentile(t, 90))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--runs", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.checkpoint) if args.checkpoint else None
        if ckpt is None:
            cfg = get_preset("tiny")
            rng = np.random.default_rng(0)
            policy = Policy.create(cfg, ["pick up the cube"], rng.standard_normal((64, 9)),
                                   rng.uniform(-1, 1, (64, cfg.action_horizon, 7)))
            ckpt = save_checkpoint(Path(tmp) / "ckpt", policy)
        policy = load_checkpoint(ckpt)
        obs = fake_obs(policy.cfg, batch=1, state_dim=policy.norm_stats.state.dim)
        rows = [("PyTorch (prefix cache)", *_times(lambda: policy.infer(obs), args.runs))]
        for graph in ("one", "two"):
            out = Path(tmp) / f"engine_{graph}"
            export(ckpt, out, graph=graph)
            engine = load_engine(out, backends=("onnxruntime",))
            run = engine.infer
            rows.append((f"onnxruntime, graph {graph} ({engine.backend})", *_times(lambda r=run: r(obs), args.runs)))
    print(f"# chunk latency, batch 1, K={policy.sampler.num_steps}, {policy.cfg.name} preset, "
          f"{torch.get_num_threads()} threads")
    print("| runner | p50 ms | p90 ms |\n| --- | --- | --- |")
    for name, p50, p90 in rows:
        print(f"| {name} | {p50:.2f} | {p90:.2f} |")


if __name__ == "__main__":
    main()
