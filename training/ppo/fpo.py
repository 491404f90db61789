"""Flow Policy Optimization (FPO; McAllister, Ge et al. 2025, "Flow Matching Policy Gradients"): PPO's ratio
without a chain likelihood (docs/algorithms.md, "FPO").

Rollouts play the deterministic ODE policy from a random initial noise, exactly the sampler that is deployed.
For each executed chunk a (normalized, (H, A)) the rollout draws M pairs (t_m, eps_m) and records the
conditional flow-matching losses of the rollout's weights

    l_m(theta) = w(t_m) * sum_{executed h, real d} (v_theta(x_m, t_m) - (eps_m - a))^2,   x_m = t_m eps_m + (1 - t_m) a

(the same interpolation and velocity target as SFT, docs/algorithms.md). The learner recomputes them with the
current weights on the same draws, and the PPO ratio is

    rho = exp(mean_m l_m(theta_old) - mean_m l_m(theta))

so `-mean_m l_m` stands where the chain's log-probability stands in Flow-Noise / Flow-SDE PPO. The loss is a
variational bound: with the ELBO weight w(t) = (1 - t) / t, log pi(a) = -E[l] + c(a) for a velocity field that is
exact for its policy, so the expected log-ratio is the likelihood ratio (Kingma & Gao 2023; tested on a
Gaussian policy). FPO, and the default here, uses w = 1 ("uniform"): a lower-variance surrogate that orders
actions the same way for small policy changes, without the ELBO weight's 1/t blow-up near the data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

FPO_WEIGHTINGS = ("uniform", "elbo")


def draw_cfm_pairs(batch: int, num_draws: int, horizon: int, action_dim: int, generator: torch.Generator | None,
                   device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """The Monte-Carlo draws of one rollout batch: t (B, M) ~ U(0, 1) and eps (B, M, H, A) ~ N(0, I)."""
    t = torch.rand(batch, num_draws, generator=generator, device=device)
    eps = torch.randn(batch, num_draws, horizon, action_dim, generator=generator, device=device)
    return t, eps


def cfm_losses(velocity: Callable[[Tensor, Tensor], Tensor], actions: Tensor, t: Tensor, eps: Tensor,
               elem_mask: Tensor, weighting: str = "uniform") -> Tensor:
    """Per-draw conditional flow-matching losses (B, M) of `actions` (B, H, A) under `velocity(x_t (B, H, A),
    t (B,)) -> (B, H, A)`, summed over the elements of `elem_mask` (H, A) (the executed steps' real dims).
    One velocity pass per draw m, so the memory is that of one denoising step."""
    if weighting not in FPO_WEIGHTINGS:
        raise ValueError(f"fpo weighting must be one of {FPO_WEIGHTINGS}, got {weighting!r}")
    mask = elem_mask.to(actions.dtype)
    losses = []
    for m in range(t.shape[1]):
        tm, em = t[:, m], eps[:, m]
        x_t = tm[:, None, None] * em + (1 - tm[:, None, None]) * actions
        err = (velocity(x_t, tm) - (em - actions)) ** 2
        loss = (err * mask).sum((1, 2))
        losses.append(loss * (1 - tm) / tm if weighting == "elbo" else loss)
    return torch.stack(losses, 1)


def fpo_log_likelihood(losses: Tensor) -> Tensor:
    """What FPO puts in place of a chunk's log-probability (B,): minus the mean loss over the M draws."""
    return -losses.mean(1)
