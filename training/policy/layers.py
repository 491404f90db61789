"""Gemma-style building blocks, written so two "experts" (the VLM prefix and the action expert) can attend
jointly in one layer while keeping their own weights, as in pi0.

Shapes: B batch, L tokens, D width, Hq query heads, Hkv key/value heads, Dh head dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.policy.config import DecoderConfig


class RMSNorm(nn.Module):
    """Gemma RMSNorm: x / rms(x) * (1 + w), w initialised to 0.

    With `cond_dim` it is pi0.5's adaptive RMSNorm: scale, shift and a residual gate are predicted from a
    conditioning vector (the flow time embedding), zero-initialised so each block starts as identity.
    """

    def __init__(self, dim: int, cond_dim: int | None = None, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim)) if cond_dim is None else None
        self.modulation = nn.Linear(cond_dim, 3 * dim) if cond_dim is not None else None
        if self.modulation is not None:
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x: (B, L, D); cond: (B, C) for adaptive norms. Returns (normed x, residual gate or None)."""
        var = x.float().pow(2).mean(-1, keepdim=True)
        normed = (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype)
        if self.modulation is None:
            return normed * (1.0 + self.weight), None
        if cond is None:
            raise ValueError("adaptive RMSNorm needs a conditioning vector (the time embedding)")
        scale, shift, gate = self.modulation(cond)[:, None, :].chunk(3, dim=-1)  # each (B, 1, D)
        return normed * (1.0 + scale) + shift, gate


def gated_residual(x: Tensor, y: Tensor, gate: Tensor | None) -> Tensor:
    return x + y if gate is None else x + y * gate


def rope(x: Tensor, positions: Tensor, max_wavelength: float) -> Tensor:
    """Rotary position embedding (rotate-half form, as Gemma). x: (B, H, L, Dh); positions: (B, L)."""
    half = x.shape[-1] // 2
    freq_exponents = torch.arange(half, device=x.device, dtype=torch.float32) * (2.0 / x.shape[-1])
    inv_timescale = max_wavelength ** (-freq_exponents)  # (Dh/2,)
    angles = positions[:, None, :, None].float() * inv_timescale  # (B, 1, L, Dh/2)
    sin, cos = torch.sin(angles), torch.cos(angles)
    x1, x2 = x.float()[..., :half], x.float()[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Grouped-query attention. q: (B, Hq, Lq, Dh); k, v: (B, Hkv, Lk, Dh); mask: (B, Lq, Lk) bool,
    True = may attend. Returns (B, Hq, Lq, Dh)."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # expand shared KV heads (explicit, so the graph exports to ONNX cleanly)
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :, :])


class DecoderBlock(nn.Module):
    """One Gemma layer for one expert, split into the part before joint attention (`qkv`) and after it
    (`finish`), so the layer can mix tokens of two experts in one attention."""

    def __init__(self, cfg: DecoderConfig, cond_dim: int | None = None):
        super().__init__()
        self.cfg = cfg
        d, h, hkv, dh = cfg.width, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.pre_attn_norm = RMSNorm(d, cond_dim)
        self.q_proj = nn.Linear(d, h * dh, bias=False)
        self.k_proj = nn.Linear(d, hkv * dh, bias=False)
        self.v_proj = nn.Linear(d, hkv * dh, bias=False)
        self.o_proj = nn.Linear(h * dh, d, bias=False)
        self.pre_mlp_norm = RMSNorm(d, cond_dim)
        self.gate_proj = nn.Linear(d, cfg.mlp_dim, bias=False)
        self.up_proj = nn.Linear(d, cfg.mlp_dim, bias=False)
        self.down_proj = nn.Linear(cfg.mlp_dim, d, bias=False)

    def qkv(self, x: Tensor, positions: Tensor, cond: Tensor | None, max_wavelength: float
            ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """x: (B, L, D) -> q (B, Hq, L, Dh) scaled, k and v (B, Hkv, L, Dh) with RoPE on q and k."""
        b, n, _ = x.shape
        c = self.cfg
        h, gate = self.pre_attn_norm(x, cond)
        q = self.q_proj(h).view(b, n, c.num_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, n, c.num_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, n, c.num_kv_heads, c.head_dim).transpose(1, 2)
        q = rope(q, positions, max_wavelength)
        k = rope(k, positions, max_wavelength)
        return q, k, v, gate

    def finish(self, x: Tensor, attn_out: Tensor, attn_gate: Tensor | None, cond: Tensor | None) -> Tensor:
        """x: (B, L, D) residual stream; attn_out: (B, Hq, L, Dh) -> (B, L, D)."""
        b, _, n, _ = attn_out.shape
        x = gated_residual(x, self.o_proj(attn_out.transpose(1, 2).reshape(b, n, -1)), attn_gate)
        h, gate = self.pre_mlp_norm(x, cond)
        mlp = self.down_proj(F.gelu(self.gate_proj(h), approximate="tanh") * self.up_proj(h))
        return gated_residual(x, mlp, gate)


def posemb_sincos(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """Sine-cosine embedding of flow time t in [0, 1] (pi0's periods). t: (B,) -> (B, dim)."""
    if dim % 2:
        raise ValueError(f"time embedding dim must be even, got {dim}")
    # In float64, as openpi / LeRobot compute it: at t near 1 the fastest period's angle is ~1.6e3 rad, where
    # float32 loses ~1e-4 of the sine (measured: velocity parity 6.8e-5 in float32, 1.3e-6 in float64).
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float64)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.double()[:, None] * (2 * math.pi / period)[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).float()
