"""Checkpoints: a directory with config.json, model.safetensors, norm_stats.json and the tokenizer.

Written atomically (a temporary sibling directory, then renames), so a crash never leaves a half-written
checkpoint under the final name. Loading never unpickles: JSON and safetensors only. config.json records
each file's size and SHA-256, so a truncated or swapped weights file is named as such.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.action_space import ActionSpace
from core.hashing import sha256_file  # noqa: F401 (re-exported)
from core.normalize import NormStats
from core.tokenizer import load_tokenizer
from training.policy.config import PolicyConfig, SamplerConfig
from training.policy.model import FlowVLA
from training.policy.policy import Policy

FORMAT = "pirl-checkpoint"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: str | Path, policy: Policy, metadata: dict[str, Any] | None = None) -> Path:
    """Write `policy` to `directory` atomically (replacing an existing checkpoint there). Returns the path."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in policy.model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        policy.norm_stats.save(tmp)
        policy.tokenizer.save(tmp)
        weights = tmp / WEIGHTS_FILE
        config = {
            "format": FORMAT,
            "version": VERSION,
            "policy": policy.cfg.to_dict(),
            "sampler": dataclasses.asdict(policy.sampler),
            "action_space": policy.action_space.to_dict() if policy.action_space else None,
            "files": {WEIGHTS_FILE: {"bytes": weights.stat().st_size, "sha256": sha256_file(weights)}},
            "metadata": metadata or {},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        old = None
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{os.getpid()}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync_dir(directory.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {directory} is not a pirl checkpoint")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the file may be truncated") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format is {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {config.get('version')} is not supported "
                              f"(this pirl reads version {VERSION})")
    return config


def checkpoint_hash(directory: str | Path) -> str:
    """SHA-256 of the checkpoint's weights, as recorded at save time (engines cite it)."""
    return read_config(directory)["files"][WEIGHTS_FILE]["sha256"]


def _config_diff(a: PolicyConfig, b: PolicyConfig) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    return [f"{k}: checkpoint {da[k]!r} vs expected {db[k]!r}" for k in sorted(da) if da[k] != db[k]]


def load_checkpoint(directory: str | Path, expect_config: PolicyConfig | None = None,
                    device: str | torch.device = "cpu", verify_hash: bool = True) -> Policy:
    """Load a checkpoint into a `Policy`. Every failure names the file and what is wrong with it."""
    directory = Path(directory)
    config = read_config(directory)
    try:
        cfg = PolicyConfig.from_dict(config["policy"])
        sampler = SamplerConfig(**config.get("sampler", {}))
        action_space = ActionSpace.from_dict(config["action_space"]) if config.get("action_space") else None
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid policy config: {e}") from None
    if expect_config is not None and cfg != expect_config:
        raise CheckpointError(f"{directory} was saved with another policy config:\n  "
                              + "\n  ".join(_config_diff(cfg, expect_config)))

    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing")
    expected = config["files"][WEIGHTS_FILE]
    size = weights.stat().st_size
    if size != expected["bytes"]:
        raise CheckpointError(f"{weights} is {size} bytes but config.json recorded {expected['bytes']}: "
                              "the file is truncated or from another checkpoint")
    if verify_hash and sha256_file(weights) != expected["sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 differs from the one recorded in config.json: the file is "
                              "corrupt or from another checkpoint")
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights} could not be read as safetensors: {e}") from None

    # Built on the meta device and given the loaded tensors (assign): no random init, no second copy, so a pi0
    # (13 GB in float32) loads in its own size. Tensors keep the file's dtype only if it is float32.
    with torch.device("meta"):
        model = FlowVLA(cfg)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors, e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors, e.g. {unexpected[:5]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches, e.g. {shapes[:5]}")
        raise CheckpointError(f"{weights} does not match the config in {directory / CONFIG_FILE}: "
                              + "; ".join(parts))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                          strict=True, assign=True)
    model.vision.reset_fixed_buffers(device)
    try:
        norm_stats = NormStats.load(directory)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise CheckpointError(f"{directory / NormStats.FILENAME}: {e}") from None
    try:
        tokenizer = load_tokenizer(directory)
    except (FileNotFoundError, ValueError) as e:
        raise CheckpointError(str(e)) from None
    try:
        return Policy(model, tokenizer, norm_stats, sampler, action_space)
    except ValueError as e:
        raise CheckpointError(f"{directory}: {e}") from None
