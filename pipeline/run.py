"""`pirl-train pipeline`: the piRL recipe end to end, and the README's main job on the CPU default.

    scripted demos per task -> few-shot SFT -> PPO (one run per method) -> the SFT and RL policies evaluated
    on the same held-out seeds -> results table (report.md, results.json) and plots in the run directory.

Each stage skips itself when its output is already complete, so a killed pipeline continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from core.io import write_text_atomic
from pipeline.config import PipelineConfig
from training.data.collect import CollectConfig, collect
from training.ppo.run import run_ppo


def stage_configs(cfg: PipelineConfig, method: str, demo_dirs: tuple[str, ...], out: Path):
    """The SFT and PPO configs of one method's run: the pipeline's sections with its paths, tasks, seed and
    method written in."""
    sft = dataclasses.replace(cfg.sft, data=demo_dirs, out=str(out / "sft"), seed=cfg.sft.seed + cfg.seed)
    run_dir = out / f"ppo_{method}"
    algo = cfg.ppo.algo
    algo = dataclasses.replace(algo, seed=algo.seed + cfg.seed,
                               sampler=dataclasses.replace(algo.sampler, method=method))
    ppo = dataclasses.replace(cfg.ppo, init=str(out / "sft" / "checkpoint"), out=str(run_dir), tasks=cfg.tasks,
                              resume=(run_dir / "checkpoint").exists(), bc_data=demo_dirs, algo=algo)
    return sft, ppo


def run_pipeline(cfg: PipelineConfig, progress: bool = True) -> dict:
    import draccus

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "pipeline_config.yaml", draccus.dump(cfg))  # the resolved tree, defaults included
    timings: dict[str, float] = {}

    # 1. scripted demonstrations
    demo_dirs = []
    for task in cfg.tasks:
        d = out / "demos" / task
        demo_dirs.append(str(d))
        if (d / "norm_stats.json").exists():
            continue
        t = time.time()
        summary = collect(CollectConfig(task=task, episodes=cfg.demo_episodes, out=str(d), workers=cfg.workers,
                                        seed=1000 * cfg.seed,
                                        image_size=cfg.image_size, resume=d.exists(),
                                        expert_speed=cfg.expert_speed, camera_file=cfg.camera_file,
                                        control_mode=cfg.control_mode),
                         progress=progress)
        timings[f"demos {task}"] = time.time() - t
        print(f"demos: {task} expert success {summary['success_rate']:.0%} over {summary['episodes']} episodes")

    # 2. few-shot SFT
    sft, _ = stage_configs(cfg, cfg.methods[0], tuple(demo_dirs), out)
    if not (out / "sft" / "checkpoint").exists():
        from training.sft.run import run_sft

        t = time.time()
        run_sft(sft, progress=progress)
        timings["sft"] = time.time() - t

    # 3. PPO per method, each evaluated against the SFT policy on the same held-out seeds
    results = {}
    for method in cfg.methods:
        run_dir = out / f"ppo_{method}"
        if (run_dir / "results.json").exists():
            results[method] = json.loads((run_dir / "results.json").read_text())
            continue
        t = time.time()
        if run_dir.exists() and not (run_dir / "checkpoint").exists():  # killed before its first checkpoint
            aside = run_dir.with_name(f"{run_dir.name}.incomplete-{int(time.time())}")
            run_dir.rename(aside)
            print(f"pipeline: {run_dir} had no checkpoint yet; moved it to {aside} and starting PPO again")
        _, ppo = stage_configs(cfg, method, tuple(demo_dirs), out)
        results[method] = run_ppo(ppo, progress=progress)
        timings[f"ppo {method}"] = time.time() - t

    # 4. what the robot would run: the first method's policy as an engine, closed loop on the same seeds
    engine = export_and_evaluate(out, cfg, timings) if cfg.export.enabled and results else None
    report = write_report(out, cfg, results, timings, time.time() - t0, engine)
    return report


def export_and_evaluate(out: Path, cfg: PipelineConfig, timings: dict) -> dict | None:
    try:
        from deploy.export.onnx import export_engine
        from deploy.sim.eval import run as eval_engine
    except ImportError as e:
        print(f"pipeline: skipping the engine export ({e}); install the export extra: pip install 'pirl[export]'")
        return None
    first = json.loads((out / f"ppo_{cfg.methods[0]}" / "results.json").read_text())
    ckpt = Path(first.get("policy") or out / f"ppo_{cfg.methods[0]}" / "checkpoint")  # the policy PPO chose
    engine_dir, result_path = out / "engine", out / "engine_eval.json"
    set_aside_stale_engine(engine_dir, result_path, ckpt)
    if not (engine_dir / "engine.json").exists():
        t = time.time()
        export_engine(ckpt, engine_dir, cfg.export)
        timings["export"] = time.time() - t
    if not cfg.engine_eval.enabled:
        return None
    if not result_path.exists():
        t = time.time()
        run = cfg.ppo
        episodes = cfg.engine_eval.episodes or run.eval_episodes_per_env * run.num_envs
        eval_engine(str(engine_dir), list(cfg.tasks), episodes, run.num_envs,
                    run.algo.num_executed, run.max_episode_steps, str(ckpt), str(result_path))
        timings["engine eval"] = time.time() - t
    result = json.loads(result_path.read_text())
    parity = json.loads((engine_dir / "engine.json").read_text())["parity"]["onnxruntime_max_abs_diff"]
    return {"method": cfg.methods[0], "engine": result["engine"]["overall"], "backend": result["backend"],
            "pytorch": (result.get("pytorch") or {}).get("overall"),
            "disagreements": len(result.get("disagreements", [])), "parity": parity,
            "latency_ms": result["engine"]["latency_ms"]}


def set_aside_stale_engine(engine_dir: Path, result_path: Path, ckpt: Path) -> None:
    """An engine (and its evaluation) exported from another policy than `ckpt` - a rerun with another first
    method, or PPO continued since - is renamed aside, never deleted, so the pipeline exports `ckpt` again."""
    from training.policy.checkpoint import checkpoint_hash

    spec_path = engine_dir / "engine.json"
    if not spec_path.exists():
        return
    source = json.loads(spec_path.read_text()).get("source_checkpoint") or {}
    if source.get("sha256") == checkpoint_hash(ckpt):
        return
    stamp = int(time.time())
    aside = engine_dir.with_name(f"{engine_dir.name}.stale-{stamp}")
    engine_dir.rename(aside)
    if result_path.exists():
        result_path.rename(aside / result_path.name)
    print(f"pipeline: {engine_dir} was exported from {source.get('path')}, not {ckpt}; moved it to {aside} "
          "and exporting again")


def write_report(out: Path, cfg: PipelineConfig, results: dict, timings: dict, seconds: float,
                 engine: dict | None = None) -> dict:
    lines = ["# pirl pipeline results", "",
             f"Tasks: {', '.join(cfg.tasks)}; {cfg.demo_episodes} scripted demos per task; held-out seeds from "
             "1,000,000 (the same episodes for every policy).", "",
             "| policy | success | 95% CI (Wilson) | episodes | env steps |", "| --- | --- | --- | --- | --- |"]
    first = next(iter(results.values()), None)
    if first:
        s = first["sft"]
        lines.append(f"| SFT | {s['success']:.1%} | {s['ci95'][0]:.1%} - {s['ci95'][1]:.1%} | {s['n']} | 0 |")
    for method, r in results.items():
        rl = r["rl"]
        lines.append(f"| PPO {method} | {rl['success']:.1%} | {rl['ci95'][0]:.1%} - {rl['ci95'][1]:.1%} | "
                     f"{rl['n']} | {r['env_steps']} |")
    if engine:
        e = engine["engine"]
        lines.append(f"| engine of PPO {engine['method']} ({engine['backend']}) | {e['success']:.1%} | "
                     f"{e['ci95'][0]:.1%} - {e['ci95'][1]:.1%} | {e['n']} | - |")
    for method, r in results.items():
        verdict = "beyond both 95% intervals" if r["intervals_separate"] else "within the 95% intervals"
        lines.append(f"\nPPO {method}: {r['gain_points']:+.1f} points over SFT ({verdict}).")
        if r.get("select") == "best_val":
            lines.append(f"The PPO policy is update {r['policy_updates']}'s, the best of the run's validation "
                         f"evaluations ({r['val_success']:.1%}; validation seeds from 2,000,000, apart from the "
                         "test seeds).")
    if engine:
        lines.append(f"\nEngine (`engine/`, ONNX): parity with PyTorch {engine['parity']:.1e}; episodes whose outcome "
                     f"differs from the PyTorch policy's: {engine['disagreements']}; latency per decision p50 "
                     f"{engine['latency_ms']['p50']:.1f} ms.")
        if engine.get("pytorch"):
            t = engine["pytorch"]
            lines.append(f"On those {t['n']} episodes the PyTorch policy (same initial noise) succeeds in "
                         f"{t['success']:.1%}, the engine in {engine['engine']['success']:.1%}.")
    lines.append(f"\nWall time {seconds / 60:.1f} min: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot_runs(out, list(results))
    summary = {"results": results, "engine": engine, "timings_s": timings, "seconds": seconds}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(lines))
    return summary


def plot_runs(out: Path, methods: list[str]) -> None:
    """success vs env steps (train episodes and held-out evaluations) and the PPO losses, per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for method in methods:
        run_dir = out / f"ppo_{method}"
        if not (run_dir / "metrics.jsonl").exists():
            continue
        m = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
        steps = [r["env_steps"] for r in m]
        train = [r["train_success"] for r in m]
        k = min(10, len(train))  # rolling mean over updates: single updates hold only a few episodes
        smooth = [float(np.mean(train[max(0, i - k + 1): i + 1])) for i in range(len(train))]
        axes[0].plot(steps, smooth, alpha=0.6, label=f"{method} train episodes (mean of {k} updates)")
        evals = json.loads((run_dir / "evals.json").read_text())
        best = evals.pop("best", None)
        for seeds, style in (("test", "o"), ("validation", "s--")):
            pts = sorted((v["env_steps"], v["overall"]["success"], v["overall"]["ci95"]) for v in evals.values()
                         if v.get("seeds", "test") == seeds)
            if pts:
                axes[0].errorbar([p[0] for p in pts], [p[1] for p in pts], fmt=style, capsize=3,
                                 yerr=[[p[1] - p[2][0] for p in pts], [p[2][1] - p[1] for p in pts]],
                                 label=f"{method} ODE policy, {seeds} seeds")
        if best:
            axes[0].plot([best["env_steps"]], [best["success"]], "*", markersize=14,
                         label=f"{method} chosen (update {best['updates']})")
        axes[1].plot(steps, [r["policy_loss"] for r in m], label=f"{method} policy")
        axes[1].plot(steps, [r["value_loss"] for r in m], label=f"{method} value")
        axes[2].plot(steps, [r["approx_kl"] for r in m], label=f"{method} approx KL")
        axes[2].plot(steps, [r["clipfrac"] for r in m], label=f"{method} clip fraction")
    axes[0].set(xlabel="env steps", ylabel="success rate", ylim=(-0.05, 1.05), title="success")
    axes[1].set(xlabel="env steps", title="losses")
    axes[2].set(xlabel="env steps", title="PPO diagnostics")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
