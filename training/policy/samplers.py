"""Denoising steps as pure functions of (x, v, t, delta): no network inside (docs/algorithms.md).

Every step's mean is mu = w0 * x0_hat + w1 * x1_hat with x0_hat = x - v t (predicted action) and
x1_hat = x + v (1 - t) (predicted noise); the steps differ only in w1 and the std:

    ODE         w1 = t - delta                                  std = 0            (mu = x - delta v)
    Flow-SDE    w1 = t - delta - sigma_t^2 delta / (2 t)        std = sqrt(delta) sigma_t
    Flow-Noise  w1 = t - delta                                  std = sigma_phi (noise network)

Tensors x, v: (B, H, A); t, delta: (B,) (per-sample times, so a hybrid chain can mix steps) or floats.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def time_grid(num_steps: int, device: torch.device | str | None = None) -> Tensor:
    """Uniform Euler grid t_0 = 1 > t_1 > ... > t_K = 0, shape (K + 1,)."""
    return torch.linspace(1.0, 0.0, num_steps + 1, device=device)


def _bcast(t: Tensor | float, like: Tensor) -> Tensor | float:
    """Per-sample (B,) times broadcast over (B, H, A); scalars pass through."""
    return t[:, None, None] if isinstance(t, Tensor) and t.ndim == 1 else t


def ode_step(x: Tensor, v: Tensor, t: Tensor | float, delta: Tensor | float) -> Tensor:
    """Deterministic Euler step towards t - delta (the exported policy)."""
    return x - _bcast(delta, x) * v


def sde_sigma(t: Tensor | float, noise_level: float, t_first: float) -> Tensor | float:
    """sigma_t = a sqrt(t / (1 - t)); at t = 1 the denominator uses t_1 (the grid's second point) so it stays
    finite (as RLinf does)."""
    if isinstance(t, Tensor):
        denom = 1 - torch.where(t >= 1.0, torch.full_like(t, t_first), t)
        return noise_level * torch.sqrt(t / denom)
    return noise_level * math.sqrt(t / (1 - (t_first if t >= 1.0 else t)))


def flow_sde_step(x: Tensor, v: Tensor, t: Tensor | float, delta: Tensor | float, noise_level: float,
                  t_first: float) -> tuple[Tensor, Tensor]:
    """Euler-Maruyama step of the reverse SDE with the ODE's marginals. Returns (mean, std), both (B, H, A).

    mu = x - delta (v + sigma_t^2 / (2 t) (x + (1 - t) v)): the score is -(x + (1 - t) v) / t.
    """
    tt, dd = _bcast(t, x), _bcast(delta, x)
    sigma = _bcast(sde_sigma(t, noise_level, t_first), x)
    # Algebraically w0 x0_hat + w1 x1_hat; written this way so that a = 0 gives the ODE step bit for bit.
    mean = x - dd * (v + sigma**2 / (2 * tt) * (x + (1 - tt) * v))
    std = torch.as_tensor(dd, dtype=x.dtype, device=x.device).sqrt() * sigma
    return mean, torch.broadcast_to(torch.as_tensor(std, dtype=x.dtype, device=x.device), x.shape)


def flow_noise_step(x: Tensor, v: Tensor, t: Tensor | float, delta: Tensor | float, std: Tensor
                    ) -> tuple[Tensor, Tensor]:
    """ODE mean with a learned std (B, H, A) from the noise network. Returns (mean, std)."""
    return ode_step(x, v, t, delta), std


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Per-element log N(x; mean, std^2). All (B, H, A)."""
    return -((x - mean) ** 2) / (2 * std**2) - torch.log(std) - _LOG_SQRT_2PI


def gaussian_entropy(std: Tensor) -> Tensor:
    """Per-element entropy 0.5 log(2 pi e std^2)."""
    return 0.5 * torch.log(2 * math.pi * math.e * std**2)


def draw(mean: Tensor, std: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Sample from N(mean, std^2) and return (sample, per-element log-prob)."""
    sample = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return sample, gaussian_log_prob(sample, mean, std)
