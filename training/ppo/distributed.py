"""Multi-process PPO with torch.distributed: `torchrun --nproc-per-node G pirl-train ppo ...`.

Each rank owns its env batch and rollouts (seeded apart), computes gradients on its own minibatches, and the
gradients are averaged across ranks before every optimizer step (NCCL on GPU, gloo on CPU), so every rank
holds the same weights; rank 0 evaluates, logs and saves. This is DDP's gradient all-reduce written out
explicitly, because the policy is driven through several methods (prefix, chain log-probs, value), not one
`forward` that DDP's hooks could wrap.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: torch.device | None = None) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (RANK/WORLD_SIZE set): NCCL when
    this rank trains on a GPU (which it then makes current), gloo on the CPU."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    if not dist.is_initialized():
        on_gpu = device is not None and device.type == "cuda"
        if on_gpu:
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _comm_device() -> torch.device:
    """Where a collective's tensors must live: NCCL reduces GPU tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    world = world_size()
    if world == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset: offset + n].view_as(p).clone()
        offset += n


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's weights."""
    if world_size() == 1:
        return
    for t in module.state_dict().values():
        dist.broadcast(t, src=0)


def mean_across_ranks(x: float) -> float:
    if world_size() == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def gather_objects(obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] on one process)."""
    if world_size() == 1:
        return [obj]
    objs = [None] * world_size()
    dist.all_gather_object(objs, obj)
    return objs
