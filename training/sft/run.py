"""`pirl-train sft`: few-shot flow-matching SFT from a demo dataset, then an evaluation in simulation."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core.action_space import ActionSpace
from training.data.demos import DemoDataset
from training.device import resolve_device
from training.envs.factory import EnvSpec, control_mode_for, make_vec_env
from training.eval import evaluate
from training.policy.checkpoint import save_checkpoint
from training.policy.policy import Policy
from training.policy.presets import get_preset
from training.sft.config import SFTConfig
from training.sft.train import DemoTensors, prepare_demos, train_sft


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
    cameras = {json.dumps(d.meta.get("camera"), sort_keys=True) for d in datasets}
    if len(cameras) > 1:
        raise ValueError(f"the datasets {paths} were recorded through different cameras (meta.json 'camera'); "
                         "a policy sees one camera placement: collect them all with the same --camera-file")
    return datasets, space


def chunk_samples(datasets: list[DemoDataset], horizon: int) -> dict:
    """Every chunk sample of several datasets, concatenated (`DemoDataset.chunk_samples`' keys)."""
    parts = [d.chunk_samples(horizon=horizon) for d in datasets]
    cams = tuple(parts[0]["images"])
    return {"images": {c: np.concatenate([p["images"][c] for p in parts]) for c in cams},
            "state": np.concatenate([p["state"] for p in parts]),
            "instruction": [i for p in parts for i in p["instruction"]],
            "actions": np.concatenate([p["actions"] for p in parts]),
            "action_valid": np.concatenate([p["action_valid"] for p in parts])}


def demo_tensors(policy: Policy, samples: dict) -> DemoTensors:
    """`chunk_samples` output as the policy's model inputs."""
    return prepare_demos(policy, {k: samples[k] for k in ("images", "state", "instruction")}, samples["actions"],
                         samples["action_valid"])


class SimEval:
    """The periodic in-sim evaluation of an SFT run: success of the ODE policy on the held-out seeds every
    `eval_every` steps and at the last step, appended to `sft_evals.jsonl`."""

    def __init__(self, policy: Policy, tasks: list[str], cfg: SFTConfig, out: Path, camera: dict | None):
        self.policy, self.tasks, self.cfg, self.out, self.camera = policy, tasks, cfg, out, camera
        self.env = None
        self.history: list[dict] = []

    def __call__(self, step: int) -> dict[str, str] | None:
        if step % self.cfg.eval_every and step != self.cfg.steps:
            return None
        if self.env is None:
            self.env = make_vec_env(EnvSpec(tasks=tuple(self.tasks), num_envs=self.cfg.eval_envs,
                                            image_size=self.policy.cfg.vision.image_size,
                                            camera_names=self.policy.cfg.camera_names,
                                            max_episode_steps=self.cfg.eval_max_episode_steps,
                                            camera=self.camera,
                                            control_mode=control_mode_for(self.policy.action_space.to_dict()
                                                                          if self.policy.action_space else None)))
        o = evaluate(self.policy, self.env, self.cfg.eval_episodes_per_env, self.cfg.eval_num_executed)["overall"]
        record = {"step": step, "success": o["success"], "ci95": o["ci95"], "n": o["n"]}
        self.history.append(record)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "sft_evals.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        return {"sim": f"{o['success']:.0%}"}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def run_sft(cfg: SFTConfig, progress: bool = True) -> Path:
    t0 = time.time()
    out = Path(cfg.out)
    if (out / "checkpoint").exists():
        raise FileExistsError(f"{out} already holds a run (checkpoint/); choose another --out")
    preset = get_preset(cfg.preset)
    if cfg.action_horizon:
        preset = dataclasses.replace(preset, action_horizon=cfg.action_horizon)
    paths = list(cfg.data)
    datasets, space = load_demos(paths, cfg.max_episodes)
    tasks = [d.meta["task"] for d in datasets]
    camera = datasets[0].meta.get("camera")  # the same for all (load_demos checks)
    h = preset.action_horizon
    val_sets = []
    for d in datasets:  # hold out the last episodes of each dataset for the validation loss
        if cfg.val_episodes and len(d) > cfg.val_episodes:
            held = DemoDataset(d.root, successful_only=True)
            held.records = d.records[-cfg.val_episodes:]
            d.records = d.records[: -cfg.val_episodes]
            val_sets.append(held)
    samples = chunk_samples(datasets, h)
    cams = tuple(samples["images"])
    size = samples["images"][cams[0]].shape[1]
    vision = dataclasses.replace(preset.vision, image_size=size)
    pcfg = dataclasses.replace(preset, camera_names=cams, vision=vision,
                               state_dim=max(preset.state_dim, samples["state"].shape[1]),
                               value_source=cfg.value_source or preset.value_source, use_state=cfg.use_state)
    policy = Policy.create(pcfg, sorted(set(samples["instruction"])), samples["state"], samples["actions"],
                           seed=cfg.seed, action_space=space)
    policy.model.to(resolve_device(cfg.device))
    episodes = sum(len(d) for d in datasets)
    print(f"sft: {episodes} demos ({', '.join(tasks)}), {len(samples['state'])} samples, cameras {list(cams)} "
          f"{size}px; policy {pcfg.name} state_dim {pcfg.state_dim}")
    demos = demo_tensors(policy, samples)
    val = demo_tensors(policy, chunk_samples(val_sets, h)) if val_sets else None
    val_log: list[tuple[int, float]] = []
    sim_eval = SimEval(policy, tasks, cfg, out, camera) if cfg.eval_every else None
    try:
        losses = train_sft(policy, demos, cfg, progress=progress, val=val, val_log=val_log, on_step=sim_eval)
    finally:
        if sim_eval is not None:
            sim_eval.close()
    save_checkpoint(out / "checkpoint", policy, metadata={"sft": asdict(cfg), "tasks": tasks, "episodes": episodes,
                                                                  "camera": camera})
    metrics = {"loss_first10": float(np.mean(losses[:10])), "loss_last10": float(np.mean(losses[-10:])),
               "val_loss": val_log, "sim_success": sim_eval.history if sim_eval else [],
               "seconds": time.time() - t0, "tasks": tasks, "episodes": episodes}
    with open(out / "sft_losses.jsonl", "w") as f:
        f.writelines(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses))
    (out / "sft_metrics.json").write_text(json.dumps(metrics, indent=2))
    if val_log:
        print(f"sft: validation loss {val_log[0][1]:.3f} (step {val_log[0][0]}) -> {val_log[-1][1]:.3f} "
              f"(step {val_log[-1][0]}) on {len(val)} held-out samples")
    print(f"sft: loss {metrics['loss_first10']:.3f} -> {metrics['loss_last10']:.3f} in {metrics['seconds']:.0f}s; "
          f"checkpoint {out / 'checkpoint'}")
    return out / "checkpoint"
