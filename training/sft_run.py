"""`pirl-train sft`: few-shot flow-matching SFT from a demo dataset, then an evaluation in simulation."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training.data.demos import DemoDataset
from training.policy.action_space import ActionSpace
from training.policy.checkpoint import save_checkpoint
from training.policy.policy import Policy
from training.policy.presets import get_preset
from training.sft import SFTConfig, prepare_demos, train_sft


@dataclass(frozen=True)
class SFTRunConfig:
    data: str = "data/demos"
    """Demo dataset directory(ies), comma-separated (`pirl-train demos` writes them)."""
    out: str = "runs/sft"
    preset: str = "tiny"
    max_episodes: int = 0
    """Use at most this many successful episodes per dataset (0: all): the few-shot size."""
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0


def load_demos(paths: list[str], max_episodes: int) -> tuple[list[DemoDataset], ActionSpace]:
    """Successful episodes of several datasets (the first `max_episodes` of each, if set); all must share
    one action space."""
    datasets, space = [], None
    for path in paths:
        if not Path(path, "meta.json").exists():
            raise FileNotFoundError(f"no demo dataset at {path} (meta.json missing); create one with "
                                    "`pirl-train demos --task ... --out DIR`")
        data = DemoDataset(path, successful_only=True)
        if max_episodes:
            data.records = data.records[:max_episodes]
        if not len(data):
            raise ValueError(f"{path} holds no successful episodes")
        this_space = ActionSpace.from_dict(data.meta["action_space"])
        if space is not None and this_space != space:
            raise ValueError(f"{path}: action space {this_space.kind} {this_space.names} differs from the "
                             f"other datasets' {space.kind} {space.names}")
        space = this_space
        datasets.append(data)
    return datasets, space


def run_sft(cfg: SFTRunConfig, progress: bool = True) -> Path:
    t0 = time.time()
    out = Path(cfg.out)
    if (out / "checkpoint").exists():
        raise FileExistsError(f"{out} already holds a run (checkpoint/); choose another --out")
    preset = get_preset(cfg.preset)
    paths = [p for p in cfg.data.split(",") if p]
    datasets, space = load_demos(paths, cfg.max_episodes)
    tasks = [d.meta["task"] for d in datasets]
    h = preset.action_horizon
    parts = [d.chunk_samples(horizon=h) for d in datasets]
    cams = tuple(parts[0]["images"])
    size = parts[0]["images"][cams[0]].shape[1]
    samples = {"images": {c: np.concatenate([p["images"][c] for p in parts]) for c in cams},
               "state": np.concatenate([p["state"] for p in parts]),
               "instruction": [i for p in parts for i in p["instruction"]],
               "actions": np.concatenate([p["actions"] for p in parts]),
               "action_valid": np.concatenate([p["action_valid"] for p in parts])}
    vision = dataclasses.replace(preset.vision, image_size=size)
    pcfg = dataclasses.replace(preset, camera_names=cams, vision=vision,
                               state_dim=max(preset.state_dim, samples["state"].shape[1]))
    policy = Policy.create(pcfg, sorted(set(samples["instruction"])), samples["state"], samples["actions"],
                           seed=cfg.seed, action_space=space)
    episodes = sum(len(d) for d in datasets)
    print(f"sft: {episodes} demos ({', '.join(tasks)}), {len(samples['state'])} samples, cameras {list(cams)} "
          f"{size}px; policy {pcfg.name} state_dim {pcfg.state_dim}")
    demos = prepare_demos(policy, {k: samples[k] for k in ("images", "state", "instruction")}, samples["actions"],
                          samples["action_valid"])
    losses = train_sft(policy, demos, SFTConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                                seed=cfg.seed), progress=progress)
    save_checkpoint(out / "checkpoint", policy, metadata={"sft": asdict(cfg), "tasks": tasks, "episodes": episodes})
    metrics = {"loss_first10": float(np.mean(losses[:10])), "loss_last10": float(np.mean(losses[-10:])),
               "seconds": time.time() - t0, "tasks": tasks, "episodes": episodes}
    (out / "sft_metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"sft: loss {metrics['loss_first10']:.3f} -> {metrics['loss_last10']:.3f} in {metrics['seconds']:.0f}s; "
          f"checkpoint {out / 'checkpoint'}")
    return out / "checkpoint"
