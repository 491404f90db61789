"""The RL-only heads: the Flow-Noise noise network and the critic. Neither is in the deterministic policy
that export compiles."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class NoiseNet(nn.Module):
    """Flow-Noise std network (piRL): action-expert output tokens -> per-element std in [std_min, std_max].

    tanh(raw) is mapped linearly onto [log std_min^2, log std_max^2] and std = exp(logvar / 2), so the std is
    bounded whatever the features do.
    """

    def __init__(self, in_dim: int, hidden: int, action_dim: int, std_min: float, std_max: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, action_dim))
        self.log_var_min = 2 * math.log(std_min)
        self.log_var_max = 2 * math.log(std_max)

    def forward(self, action_features: Tensor) -> Tensor:
        """action_features (B, H, W) -> std (B, H, A)."""
        unit = (torch.tanh(self.net(action_features)) + 1) / 2  # in (0, 1)
        log_var = self.log_var_min + unit * (self.log_var_max - self.log_var_min)
        return torch.exp(0.5 * log_var)


class ValueHead(nn.Module):
    """Critic MLP: pooled features (B, D) -> value (B,)."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 1))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)
