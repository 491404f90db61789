"""A Gaussian-mixture action distribution whose flow-matching velocity is known in closed form: the ground
truth for checking samplers without a network (tests and `benchmarks/sampler_marginals.py`).

Data a ~ sum_k pi_k N(m_k, s_k^2 I); x_t = t eps + (1 - t) a. Given component k, (a, x_t) is jointly Gaussian
with Var(x_t) = V_k = (1 - t)^2 s_k^2 + t^2, so
    E[a | x, k]   = m_k + (1 - t) s_k^2 / V_k (x - (1 - t) m_k),   E[eps | x, k] = t / V_k (x - (1 - t) m_k),
and the exact velocity is v(x, t) = sum_k w_k(x) (E[eps | x, k] - E[a | x, k]), w_k the posterior weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from training.policy.samplers import draw, flow_sde_step, ode_step, time_grid


@dataclass(frozen=True)
class GaussianMixture:
    weights: tuple[float, ...]
    means: tuple[tuple[float, ...], ...]  # (K, D)
    stds: tuple[float, ...]  # isotropic std per component

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) samples of the data distribution."""
        m, s = torch.tensor(self.means), torch.tensor(self.stds)
        k = torch.multinomial(torch.tensor(self.weights), n, replacement=True, generator=generator)
        return m[k] + s[k, None] * torch.randn(n, m.shape[1], generator=generator)

    def velocity(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Exact velocity at x (N, D), time t (scalar or (N,))."""
        m = torch.tensor(self.means, dtype=x.dtype)  # (K, D)
        s2 = torch.tensor(self.stds, dtype=x.dtype) ** 2  # (K,)
        logw = torch.log(torch.tensor(self.weights, dtype=x.dtype))
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1)  # (N or 1, 1)
        var = (1 - t) ** 2 * s2 + t**2  # (N or 1, K)
        resid = x[:, None, :] - (1 - t)[:, :, None] * m[None]  # (N, K, D)
        d = x.shape[1]
        log_post = logw - 0.5 * (resid**2).sum(-1) / var - 0.5 * d * torch.log(var)  # (N, K)
        w = torch.softmax(log_post, dim=1)
        e_eps = t[:, :, None] / var[:, :, None] * resid
        e_a = m[None] + ((1 - t) * s2 / var)[:, :, None] * resid
        return (w[:, :, None] * (e_eps - e_a)).sum(1)


DEFAULT_MIXTURE = GaussianMixture(weights=(0.3, 0.5, 0.2), means=((-1.0, -1.0), (1.5, 0.5), (0.0, 1.5)),
                                  stds=(0.3, 0.4, 0.25))


def integrate(mixture: GaussianMixture, num_steps: int, noise_level: float | None, n: int, seed: int) -> Tensor:
    """Samples (n, D) from K Euler steps on the mixture's exact velocity: ODE steps when `noise_level` is
    None, Flow-SDE steps otherwise."""
    g = torch.Generator().manual_seed(seed)
    ts = time_grid(num_steps)
    x = torch.randn(n, 1, len(mixture.means[0]), generator=g)  # (N, H=1, D)
    for i in range(num_steps):
        t, delta = float(ts[i]), float(ts[i] - ts[i + 1])
        v = mixture.velocity(x[:, 0], t)[:, None]
        if noise_level is None:
            x = ode_step(x, v, t, delta)
        else:
            x, _ = draw(*flow_sde_step(x, v, t, delta, noise_level, float(ts[1])), generator=g)
    return x[:, 0]
