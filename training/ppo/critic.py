"""The asymmetric critic: a value function over the simulator's privileged state (object and goal poses,
joint velocities) instead of the policy's camera features.

Which initial states succeed is mostly decided by where the cube and goal are, something a few-shot image
critic barely sees; a critic that reads the poses separates "lucky start" from "good chunk", so the advantages
PPO follows are far less noisy. Only training uses it: the policy, and everything export compiles, never sees
the privileged state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RunningNorm(nn.Module):
    """Per-feature running mean and variance (Chan et al. parallel update), frozen between `update` calls."""

    def __init__(self, dim: int, eps: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(eps, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """x (B, dim)."""
        x = x.double()
        b_mean, b_var, b = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = b_mean - self.mean, self.count + b
        self.mean += delta * b / total
        self.var = (self.var * self.count + b_var * b + delta**2 * self.count * b / total) / total
        self.count = total

    def forward(self, x: Tensor) -> Tensor:
        return ((x.double() - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-10, 10).to(x.dtype)


class PrivilegedCritic(nn.Module):
    """privileged state (B, P) -> value (B,)."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.norm = RunningNorm(dim)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))

    def forward(self, privileged: Tensor) -> Tensor:
        return self.net(self.norm(privileged)).squeeze(-1)
