"""The embedded CPU default, end to end on what exists so far: build the tiny policy, SFT it on the synthetic
reach task, evaluate the deterministic ODE policy on held-out samples, draw Flow-SDE (hybrid) and
Flow-Noise (joint) chains with their log-probs, and round-trip a checkpoint.

Later work grows this into the full demo (SFT in simulation, then PPO beating it)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from training.data.synthetic import ACTION_SPACE, SyntheticReach, make_synthetic_reach, reach_success
from training.policy.checkpoint import checkpoint_hash, load_checkpoint, save_checkpoint
from training.policy.config import SamplerConfig
from training.policy.policy import Policy
from training.policy.presets import get_preset
from training.policy.sampling import element_mask, reduce_log_prob, sample_chain
from training.sft import SFTConfig, prepare_demos, train_sft


@dataclass(frozen=True)
class DemoConfig:
    out: str = "runs/demo"
    """Run directory: checkpoint, metrics.json, loss_curve.png."""
    preset: str = "tiny"
    train_samples: int = 256
    eval_samples: int = 128
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0


def _obs(d: SyntheticReach, camera: str) -> dict:
    return {"images": {camera: d.images}, "state": d.state, "instruction": d.instruction}


def _evaluate(policy: Policy, d: SyntheticReach, camera: str) -> dict[str, float]:
    noise = np.random.default_rng(123).standard_normal(
        (len(d), policy.cfg.action_horizon, policy.cfg.action_dim)).astype(np.float32)
    actions = policy.infer(_obs(d, camera), noise=noise)
    return {"success": float(reach_success(actions, d.target).mean()),
            "action_mae": float(np.abs(actions - d.actions).mean())}


def _plot_losses(losses: list[float], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, alpha=0.3, label="step")
    k = max(len(losses) // 30, 1)
    ax.plot(np.convolve(losses, np.ones(k) / k, mode="valid"), label=f"mean of {k}")
    ax.set(xlabel="SFT step", ylabel="flow-matching loss", yscale="log", title="tiny policy, synthetic reach")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    t_start = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    pcfg = get_preset(cfg.preset)
    camera = pcfg.camera_names[0]
    train, _ = make_synthetic_reach(cfg.train_samples, pcfg.action_horizon, pcfg.vision.image_size, camera, cfg.seed)
    held_out, _ = make_synthetic_reach(cfg.eval_samples, pcfg.action_horizon, pcfg.vision.image_size, camera,
                                       cfg.seed + 10_000)
    policy = Policy.create(pcfg, train.instruction, train.state, train.actions, seed=cfg.seed,
                           action_space=ACTION_SPACE)
    n_params = sum(p.numel() for p in policy.model.parameters())
    print(f"policy: preset={pcfg.name} params={n_params / 1e6:.2f}M cameras={list(pcfg.camera_names)} "
          f"image={pcfg.vision.image_size}px H={pcfg.action_horizon} time_conditioning={pcfg.time_conditioning}")

    before = _evaluate(policy, held_out, camera)
    print(f"before SFT: held-out success {before['success']:.1%}, action MAE {before['action_mae']:.3f}")
    demos = prepare_demos(policy, _obs(train, camera), train.actions)
    losses = train_sft(policy, demos, SFTConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                                seed=cfg.seed), progress=progress)
    after = _evaluate(policy, held_out, camera)
    seen = _evaluate(policy, train.subset(np.arange(min(len(train), cfg.eval_samples))), camera)
    print(f"after SFT:  held-out success {after['success']:.1%}, action MAE {after['action_mae']:.3f}; "
          f"on training samples {seen['success']:.1%}, MAE {seen['action_mae']:.3f} "
          f"(loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f})")

    # The RL samplers on the trained policy: chains and their exact log-probs (per chunk, mean over steps).
    inputs = policy.prepare(_obs(held_out, camera))
    cache = policy.model.encode_prefix(inputs)
    emask = element_mask(pcfg.action_horizon, pcfg.action_dim, num_executed=5,
                         real_action_dim=policy.norm_stats.actions.dim)
    gen = torch.Generator().manual_seed(cfg.seed)
    samplers = {}
    for sampler in (SamplerConfig(method="flow_sde", noise_level=0.5), SamplerConfig(method="flow_noise")):
        with torch.no_grad():
            chain = sample_chain(policy.model, cache, inputs.state, sampler, generator=gen)
        lp = reduce_log_prob(chain.term_log_probs, chain.term_mask, emask, sampler.log_prob_reduction)
        actions = policy.unnormalize_actions(chain.actions.numpy())
        key = f"{sampler.method}/{sampler.resolved_chain_mode}"
        samplers[key] = {"success": float(reach_success(actions, held_out.target).mean()),
                         "log_prob_mean": float(lp.mean()), "log_prob_reduction": sampler.log_prob_reduction,
                         "value_mean": float(chain.value.mean())}
        print(f"{key:<18} success {samplers[key]['success']:.1%}  log-prob ({sampler.log_prob_reduction}) "
              f"{samplers[key]['log_prob_mean']:.2f}")

    ckpt = save_checkpoint(out / "checkpoint", policy, metadata={"demo": asdict(cfg)})
    reloaded = load_checkpoint(ckpt, expect_config=pcfg)
    probe = _obs(held_out.subset(np.arange(4)), camera)
    noise = np.zeros((4, pcfg.action_horizon, pcfg.action_dim), np.float32)
    roundtrip_err = float(np.abs(reloaded.infer(probe, noise) - policy.infer(probe, noise)).max())
    print(f"checkpoint {ckpt} (sha256 {checkpoint_hash(ckpt)[:12]}): reload max abs diff {roundtrip_err:.2e}")

    metrics = {"params": n_params, "before_sft": before, "after_sft": after, "after_sft_train": seen,
               "samplers": samplers,
               "loss_first10": float(np.mean(losses[:10])), "loss_last10": float(np.mean(losses[-10:])),
               "checkpoint_roundtrip_max_abs_diff": roundtrip_err, "seconds": time.time() - t_start}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if _plot_losses(losses, out / "loss_curve.png"):
        print(f"loss curve: {out / 'loss_curve.png'}")
    print(f"done in {metrics['seconds']:.0f}s; metrics: {out / 'metrics.json'}")
    return metrics
