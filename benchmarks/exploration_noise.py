"""How far each rollout sampler moves an executed chunk away from the deterministic (ODE) policy's, from the
same initial noise, on a policy's own demo observations: the exploration PPO has to learn from.

    python benchmarks/exploration_noise.py runs/demo/sft/checkpoint runs/demo/demos/PushCubeNarrow-v1 ...

Prints, in normalized action units over the executed steps' real dims: the RMS deviation of Flow-Noise (the
noise network as SFT left it), of Flow-SDE's hybrid chain per stochastic step j (and overall) at a few noise
levels a, and the chain log-probability's per-element scale. Figures: docs/results/2026-12-05-three-methods.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from training.policy.checkpoint import load_checkpoint
from training.policy.config import SamplerConfig
from training.policy.sampling import element_mask, sample_chain, sample_ode
from training.sft.run import chunk_samples, load_demos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("demos", nargs="+")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--num_executed", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    policy = load_checkpoint(args.checkpoint)
    model = policy.model.eval()
    datasets, _ = load_demos(args.demos, 0)
    samples = chunk_samples(datasets, policy.cfg.action_horizon)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(samples["state"]), min(args.samples, len(samples["state"])), replace=False)
    obs = {"images": {c: v[idx] for c, v in samples["images"].items()}, "state": samples["state"][idx],
           "instruction": [samples["instruction"][i] for i in idx]}
    inputs = policy.prepare(obs)
    mask = element_mask(policy.cfg.action_horizon, policy.cfg.action_dim, args.num_executed,
                        policy.norm_stats.actions.dim).float()
    n, k = len(idx), 4
    with torch.no_grad():
        cache = model.encode_prefix(inputs)
        noise = torch.randn(n, policy.cfg.action_horizon, policy.cfg.action_dim)
        ode = sample_ode(model, cache, inputs.state, noise, k)

        def rms(x: torch.Tensor) -> float:
            return float((((x - ode) ** 2) * mask).sum() / (mask.sum() * n)) ** 0.5

        spread = float((((ode - ode.mean(0)) ** 2) * mask).sum() / (mask.sum() * n)) ** 0.5
        print(f"ODE actions' spread across observations (RMS about their mean): {spread:.3f}")
        s = sample_chain(model, cache, inputs.state, SamplerConfig(method="flow_noise", num_steps=k), noise=noise,
                         generator=torch.Generator().manual_seed(1))
        lp = (s.term_log_probs[:, 1:] * mask).sum() / (mask.sum() * n * k)
        print(f"flow_noise (joint):  RMS deviation {rms(s.actions):.3f}, mean log-prob per element and step {lp:.2f}")
        for level in (0.2, 0.5, 0.8):
            cfg = SamplerConfig(method="flow_sde", noise_level=level, num_steps=k)
            s = sample_chain(model, cache, inputs.state, cfg, noise=noise, generator=torch.Generator().manual_seed(1))
            assert s.hybrid_step is not None
            per_step = []
            for j in range(k):
                sel = s.hybrid_step == j
                dev = (((s.actions[sel] - ode[sel]) ** 2) * mask).sum() / (mask.sum() * max(int(sel.sum()), 1))
                per_step.append(float(dev) ** 0.5)
            lp = (s.term_log_probs.sum(1) * mask).sum() / (mask.sum() * n)
            print(f"flow_sde a={level} (hybrid): RMS deviation {rms(s.actions):.3f}; by stochastic step j = 0..3 "
                  f"(t = 1, 0.75, 0.5, 0.25): " + ", ".join(f"{d:.3f}" for d in per_step)
                  + f"; mean log-prob per element {lp:.2f}")


if __name__ == "__main__":
    main()
