"""SigLIP-style ViT image encoder (as in PaliGemma): patch embedding, learned positions, pre-LayerNorm
blocks with GELU MLPs, a final LayerNorm, and a linear projection into the prefix decoder's width."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.policy.config import VisionConfig


class ViTBlock(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.norm1 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.norm2 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, d_head)
        attn = F.scaled_dot_product_attention(q, k, v)  # bidirectional
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


def sincos_2d(grid: int, width: int) -> Tensor:
    """(grid * grid, width) fixed positions, row-major patches: sin/cos of the row in the first half of the
    channels and of the column in the second (MAE's 2-D sine-cosine embedding), unit scale."""
    quarter = width // 4
    freqs = 1.0 / (10_000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))  # (width/4,)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")
    parts = []
    for coord in (rows.reshape(-1), cols.reshape(-1)):
        angles = coord[:, None] * freqs[None, :]  # (P, width/4)
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1)


class VisionEncoder(nn.Module):
    """uint8 images (B, H, W, 3) -> tokens (B, num_patches, out_dim)."""

    def __init__(self, cfg: VisionConfig, out_dim: int):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        if cfg.pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, cfg.num_patches, cfg.width) * 0.02)
        else:  # fixed, not saved: a function of the config
            grid = cfg.image_size // cfg.patch_size
            self.register_buffer("pos_embed", sincos_2d(grid, cfg.width)[None], persistent=False)
        self.blocks = nn.ModuleList(ViTBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.head = nn.Linear(cfg.width, out_dim)  # PaliGemma's multimodal projector

    def reset_fixed_buffers(self, device: str | torch.device = "cpu") -> None:
        """Recompute the fixed (non-saved) positions, e.g. after building on the meta device and loading."""
        if self.cfg.pos_embed != "learned":
            grid = self.cfg.image_size // self.cfg.patch_size
            self.pos_embed = sincos_2d(grid, self.cfg.width)[None].to(device)

    def forward(self, images: Tensor) -> Tensor:
        # SigLIP input convention: pixels scaled to [-1, 1].
        x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0  # (B, 3, H, W)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, num_patches, width)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))
