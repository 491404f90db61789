"""Flow-matching behaviour cloning (SFT) on an in-memory demonstration set: the optimisation loop.

`training.sft.run` wraps it into `pirl-train sft` (datasets, validation, evaluation in simulation, checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from training.policy.model import Observation
from training.policy.policy import Policy
from training.sft.config import SFTConfig


@dataclass
class DemoTensors:
    """A demonstration set prepared once into model inputs (normalized, padded, tokenized)."""

    obs: Observation
    actions: torch.Tensor  # (N, H, A) normalized, padded
    loss_mask: torch.Tensor  # bool (N, H, A): real action dims

    def __len__(self) -> int:
        return self.actions.shape[0]

    def batch(self, idx: torch.Tensor) -> tuple[Observation, torch.Tensor, torch.Tensor]:
        o = self.obs
        return (Observation({c: im[idx] for c, im in o.images.items()}, o.state[idx], o.tokens[idx],
                            o.token_mask[idx]), self.actions[idx], self.loss_mask[idx])


def prepare_demos(policy: Policy, obs: dict[str, Any], actions: np.ndarray,
                  action_valid: np.ndarray | None = None) -> DemoTensors:
    """obs: an observation batch of N samples; actions: float32 (N, H, A_real) in env units; action_valid:
    bool (N, H), False for chunk steps past the episode's end (excluded from the loss)."""
    h, a_real = policy.cfg.action_horizon, policy.norm_stats.actions.dim
    if actions.shape[1:] != (h, a_real):
        raise ValueError(f"demo actions must be (N, {h}, {a_real}), got {actions.shape}")
    inputs = policy.prepare(obs)
    acts = torch.as_tensor(policy.normalize_actions(actions), device=policy.device)
    mask = torch.zeros_like(acts, dtype=torch.bool)
    mask[..., :a_real] = True
    if action_valid is not None:
        mask &= torch.as_tensor(action_valid, device=policy.device)[..., None]
    return DemoTensors(inputs, acts, mask)


def beta_flow_time(n: int, gen: torch.Generator) -> torch.Tensor:
    """pi0's flow times t ~ Beta(1.5, 1) * 0.999 + 0.001, from `gen` (Beta(a, 1) = U^(1/a))."""
    return torch.rand(n, generator=gen) ** (1 / 1.5) * 0.999 + 0.001


@torch.no_grad()
def validation_loss(policy: Policy, demos: DemoTensors, seed: int = 0, batch: int = 64) -> float:
    """Flow-matching loss on held-out demos with fixed noise and times (comparable across calls)."""
    model = policy.model
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for start in range(0, len(demos), batch):
        idx = torch.arange(start, min(start + batch, len(demos)))
        obs, actions, mask = demos.batch(idx)
        noise = torch.randn(actions.shape, generator=gen).to(actions)
        loss = model.flow_matching_loss(obs, actions, mask, noise=noise, time=beta_flow_time(len(idx), gen).to(actions))
        total += float(loss) * len(idx)
        count += len(idx)
    model.train(was_training)
    return total / max(count, 1)


def train_sft(policy: Policy, demos: DemoTensors, cfg: SFTConfig, progress: bool = True,
              val: DemoTensors | None = None,
              val_log: list[tuple[int, float]] | None = None,
              on_step: Callable[[int], dict[str, str] | None] | None = None) -> list[float]:
    """Run `cfg.steps` flow-matching steps; returns the loss per step. With `val`, the held-out loss is
    computed every `cfg.val_every` steps and appended to `val_log` as (step, loss). `on_step(step)` runs after
    every step (e.g. a periodic evaluation in sim) and may return fields for the progress bar."""
    model = policy.model
    model.set_prefix_trainable(cfg.train_prefix)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(cfg.warmup_steps, 1)) * 0.5 * (1 + np.cos(np.pi * s / cfg.steps)))
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    extra_postfix: dict[str, str] = {}
    bar = tqdm(range(cfg.steps), desc="sft", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        idx = torch.randint(0, len(demos), (min(cfg.batch_size, len(demos)),), generator=gen)
        obs, actions, mask = demos.batch(idx)
        # Noise and flow times from the run's own generator: the run is reproducible whatever else used torch.
        noise = torch.randn(actions.shape, generator=gen).to(actions)
        time = beta_flow_time(len(idx), gen).to(actions)
        loss = model.flow_matching_loss(obs, actions, mask, noise=noise, time=time)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        step = len(losses)
        if val is not None and val_log is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            val_log.append((step, validation_loss(policy, val)))
        postfix = {"loss": f"{np.mean(losses[-20:]):.4f}", "lr": f"{sched.get_last_lr()[0]:.1e}"}
        if val_log:
            postfix["val"] = f"{val_log[-1][1]:.4f}"
        if on_step is not None:
            shown = on_step(step)
            model.train()  # the hook may have switched to eval mode
            if shown:
                extra_postfix.update(shown)
        bar.set_postfix(postfix | extra_postfix)
    model.eval()
    return losses
