"""Where a run trains: one rule for SFT and PPO, single process or a torchrun rank."""

from __future__ import annotations

import os

import torch


def resolve_device(requested: str = "auto") -> torch.device:
    """The device this process trains on: "auto" is the rank's GPU (LOCAL_RANK under torchrun) when CUDA is
    available, else the CPU; "cpu" and "cuda" force one."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device (torch.cuda.is_available() "
                           "is False); use device: auto or cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
