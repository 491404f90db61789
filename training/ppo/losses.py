"""PPO's pieces as pure functions (docs/algorithms.md, "PPO over the two-layer MDP").

Outer steps are executed chunks: one reward per chunk (summed env rewards), one value per chunk, one
log-probability per chunk (the denoising chain's). Shapes: T rollout steps, N envs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.ppo.distributed import world_size


def gae(rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor, gamma: float = 0.99,
        lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over chunk steps.

    rewards, values, dones: (T, N); dones[t] = the episode ended during step t (so step t + 1 starts a new
    one and nothing bootstraps across); last_value (N,) = V(obs after the last step).
    Returns (advantages, returns), both (T, N).
    """
    t_max = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(t_max)):
        live = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * next_value * live - values[t]
        next_adv = delta + gamma * lam * live * next_adv
        adv[t] = next_adv
        next_value = values[t]
    return adv, adv + values


def normalize_advantages(adv: Tensor, eps: float = 1e-8) -> Tensor:
    return (adv - adv.mean()) / (adv.std() + eps)


def normalize_advantages_across_ranks(adv: Tensor, eps: float = 1e-8) -> Tensor:
    """The whole rollout's advantages (B,) normalised once with the mean and std of every rank's together
    (one process: `normalize_advantages`). Ranks hold equal-sized rollouts."""
    n = world_size()
    if n == 1:
        return normalize_advantages(adv, eps)
    moments = torch.stack([adv.mean(), (adv**2).mean()])
    torch.distributed.all_reduce(moments)
    mean, sq = moments / n
    count = adv.numel() * n
    std = ((sq - mean**2).clamp(min=0) * count / max(count - 1, 1)).sqrt()  # unbiased, as Tensor.std
    return (adv - mean) / (std + eps)


def normalize_advantages_by_group(adv: Tensor, group: Tensor, eps: float = 1e-8) -> Tensor:
    """Each group's advantages (B,) normalised on their own (group: long (B,), e.g. the task of each sample),
    as multi-task RL normalises per task (PopArt, Hessel et al. 2019): a task whose returns vary more must not
    take the batch's whole gradient while another's policy drifts. A group of one sample is only centred."""
    out = torch.empty_like(adv)
    for g in torch.unique(group):
        sel = group == g
        a = adv[sel]
        out[sel] = a - a.mean() if a.numel() < 2 else (a - a.mean()) / (a.std() + eps)
    return out


def clipped_surrogate(log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, clip: float = 0.2,
                      dual_clip: float | None = 3.0) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped policy loss (to minimise) with dual clip for negative advantages (Ye et al. 2020):
    for A < 0 the loss is capped at -c * A, so a huge ratio on a bad action cannot dominate the batch.
    All inputs (B,) or broadcastable. Returns (loss, stats: ratio mean, clip fraction, approx KL)."""
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    surr1 = -advantages * ratio
    surr2 = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = torch.maximum(surr1, surr2)
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -dual_clip * advantages), loss)
    with torch.no_grad():
        stats = {"ratio": ratio.mean(), "clipfrac": ((ratio - 1).abs() > clip).float().mean(),
                 # Schulman's low-variance estimator of KL(old || new)
                 "approx_kl": ((ratio - 1) - log_ratio).mean()}
    return loss.mean(), stats


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip: float | None = 0.2,
                       huber_delta: float = 10.0) -> Tensor:
    """Huber value loss, with the new value kept within `clip` of the rollout's (PPO2 style, max of the two)."""
    loss = F.huber_loss(values, returns, delta=huber_delta, reduction="none")
    if clip is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        loss = torch.maximum(loss, F.huber_loss(clipped, returns, delta=huber_delta, reduction="none"))
    return loss.mean()


def explained_variance(pred: Tensor, target: Tensor) -> float:
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - pred).var() / var)
