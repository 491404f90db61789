"""`pirl-train ppo`: PPO fine-tuning of an SFT checkpoint in ManiSkill, with evaluation before and after on
the same held-out seeds, a metrics JSONL, checkpoints with the learner's state, and `--resume`.

Every update starts from an env reset with seed `seed + (update * world + rank) * num_envs`, so a resumed run
replays exactly the episodes an uninterrupted one would have (ratio, losses and weights match bit for bit on
CPU), under torchrun too.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from training.device import resolve_device
from training.envs.base import EVAL_SEED_BASE, VAL_SEED_BASE
from training.envs.factory import EnvSpec, make_vec_env
from training.eval import evaluate
from training.policy.checkpoint import load_checkpoint, save_checkpoint
from training.policy.policy import Policy
from training.ppo.distributed import barrier, broadcast_parameters, gather_objects, init_from_env
from training.ppo.rollout import RolloutCollector, success_by_task, success_rate
from training.ppo.train import PPOConfig, PPOLearner
from training.run_logger import RunLogger, write_json_atomic
from training.sft import DemoTensors
from training.sft_run import chunk_samples, demo_tensors, load_demos

LEARNER_FILE = "learner.pt"
BEST_DIR = "best"
"""The validation-best policy (`select: best_val`), beside checkpoint/ (the last update's, with learner state)."""
EMA_DIR = "ema"
"""The weight-averaged policy (`select: ema`), beside checkpoint/."""


@dataclass(frozen=True)
class PPORunConfig:
    init: str = "runs/sft/checkpoint"
    """SFT checkpoint to start from."""
    out: str = "runs/ppo"
    tasks: str = ""
    """Comma-separated ManiSkill tasks or LIBERO SUITE/INDEX tasks; empty: those the checkpoint was trained on."""
    num_envs: int = 2
    max_episode_steps: int = 50
    """0: the simulator's default (LIBERO: the suite's published limit)."""
    reward_mode: str = "sparse"
    """"sparse" (success, as the paper) or ManiSkill's "normalized_dense" shaped reward."""
    sim_backend: str = "cpu"
    """"cpu" (a worker process per env) or "physx_cuda" (all envs batched on the GPU)."""
    eval_episodes_per_env: int = 10
    eval_every: int = 0
    """Evaluate every N updates (0: only before and after)."""
    val_episodes_per_env: int = 0
    """Mid-run evaluations (every `eval_every` updates, and of the SFT policy and the last update) play this many
    episodes per env on validation seeds (VAL_SEED_BASE...) instead of the test seeds; 0: they use the test
    seeds, like the evaluations before and after."""
    select: str = "last"
    """Which policy the final test evaluation judges (and the pipeline exports): "last" (the last update's),
    "ema" (the Polyak average of the weights, saved in ema/; needs the ppo config's ema_decay) or "best_val"
    (the mid-run validation evaluation's best after the critic warm-up, saved in best/; needs eval_every and
    val_episodes_per_env). A single PPO run's held-out success drifts by several points from one
    checkpoint to the next; choosing on validation seeds keeps the test seeds an unbiased judge."""
    save_every: int = 10
    device: str = "auto"
    """"auto" (the rank's GPU when CUDA is available, else the CPU), "cpu" or "cuda": where the policy, critic
    and learner live. Checkpoints are written from the CPU either way, so they load anywhere."""
    bc_data: str = ""
    """Demo dataset directories (comma-separated) for the `bc_coef` loss; the pipeline passes its demos."""
    resume: bool = False
    wandb: bool = True
    """Log to Weights & Biases when installed (offline unless WANDB_API_KEY is set)."""

    def __post_init__(self) -> None:
        if self.select not in ("last", "ema", "best_val"):
            raise ValueError(f"select must be 'last', 'ema' or 'best_val', got {self.select!r}")
        if self.select == "best_val" and not (self.eval_every > 0 and self.val_episodes_per_env > 0):
            raise ValueError("select: best_val chooses among validation evaluations: set eval_every > 0 and "
                             f"val_episodes_per_env > 0 (got {self.eval_every} and {self.val_episodes_per_env})")


def _tasks_and_env(run: PPORunConfig, policy, start: str,
                   privileged: bool = False) -> tuple[tuple[str, ...], dict | None, object]:
    """The run's tasks (flag, else those the init checkpoint was trained on), the camera the checkpoint was
    trained through, and the env."""
    meta = json.loads((Path(start) / "config.json").read_text())["metadata"]
    meta_tasks, camera = meta.get("tasks", []), meta.get("camera")
    tasks = tuple(t for t in run.tasks.split(",") if t) or tuple(meta_tasks)
    if not tasks:
        raise ValueError("no tasks: pass --tasks (the checkpoint does not record the tasks it was trained on)")
    env = make_vec_env(EnvSpec(tasks=tasks, num_envs=run.num_envs, image_size=policy.cfg.vision.image_size,
                               camera_names=policy.cfg.camera_names, max_episode_steps=run.max_episode_steps,
                               reward_mode=run.reward_mode, sim_backend=run.sim_backend,
                               privileged=privileged, camera=camera))
    return tasks, camera, env


def run_ppo(run: PPORunConfig, cfg: PPOConfig, progress: bool = True) -> dict:
    """One process, or one rank of a torchrun job: each rank owns its envs (seeds offset by rank) and
    rollouts, gradients are averaged every step; rank 0 evaluates, logs and saves, and its checkpoint holds
    every rank's RNG state so `--resume` replays the same episodes on every rank."""
    if run.select == "ema" and cfg.ema_decay <= 0:
        raise ValueError("select: ema judges the weight-averaged policy: set ema_decay > 0 in the ppo config "
                         "(e.g. 0.95), or select: last")
    device = resolve_device(run.device)
    rank, world = init_from_env(device)
    lead = rank == 0
    out = Path(run.out)
    state_path = out / "checkpoint" / LEARNER_FILE
    if lead and out.exists() and any(out.iterdir()) and not run.resume:
        raise FileExistsError(f"{out} already holds a run; pass --resume true to continue it or choose another --out")
    start = run.init
    if run.resume:
        if not state_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint with learner state in {out / 'checkpoint'}")
        saved = json.loads((out / "config.json").read_text())
        now = json.loads(json.dumps(asdict(cfg)))
        changed = sorted(k for k in now if k != "updates" and saved["ppo"].get(k) != now[k])
        if changed:  # only the number of updates may grow on resume
            raise ValueError(f"--resume: {changed} differ from the run saved in {out / 'config.json'}; "
                             f"e.g. {changed[0]}: saved {saved['ppo'].get(changed[0])!r}, now {now[changed[0]]!r}")
        if saved.get("world_size", 1) != world:
            raise ValueError(f"--resume: the run was saved with {saved.get('world_size', 1)} rank(s), this job has "
                             f"{world}; relaunch with --nproc-per-node matching it")
        start = str(out / "checkpoint")
    barrier()  # rank 0 has checked the run directory
    policy = load_checkpoint(start)
    policy.model.to(device)
    broadcast_parameters(policy.model)
    tasks, camera, env = _tasks_and_env(run, policy, start, privileged=cfg.critic == "privileged")
    sampler = cfg.sampler()
    learner = PPOLearner(policy, cfg, privileged_dim=env.privileged_dim, bc_demos=_bc_demos(run, cfg, policy))
    if learner.critic is not None:
        broadcast_parameters(learner.critic)
    collector = RolloutCollector(env, policy, sampler, cfg.num_executed, seed=cfg.seed + 1_000 * rank,
                                 critic=learner.critic)
    evals: dict = {}
    if run.resume:
        state = torch.load(state_path, weights_only=True, map_location="cpu")  # the optimizer moves its own
        learner.load_state_dict(state["learner"])
        collector.generator.set_state(state["generators"][rank])
        evals = json.loads((out / "evals.json").read_text()) if (out / "evals.json").exists() else {}
    logger = None
    env_steps = 0
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"run": asdict(run), "ppo": asdict(cfg), "tasks": tasks,
                                                     "world_size": world}, indent=2))
        print(f"ppo: method={cfg.method} chain={sampler.resolved_chain_mode} log_prob={cfg.log_prob_reduction} "
              f"K={cfg.num_steps} a={cfg.noise_level} H={policy.cfg.action_horizon} executed={cfg.num_executed} "
              f"envs={run.num_envs}x{world} tasks={list(tasks)} critic={cfg.critic} train_prefix={cfg.train_prefix}")
        env_steps = _trim_metrics(out / "metrics.jsonl", learner.updates_done)
        logger = RunLogger(out, {"run": asdict(run), "ppo": asdict(cfg), "tasks": list(tasks), "world_size": world},
                           name=out.name, use_wandb=run.wandb, resume=run.resume)

    validate = run.val_episodes_per_env > 0

    def run_eval(tag: str, judged: Policy | None = None, val: bool = False) -> None:
        if lead:
            episodes, seed = (run.val_episodes_per_env, VAL_SEED_BASE) if val else (run.eval_episodes_per_env,
                                                                                     EVAL_SEED_BASE)
            summary = evaluate(judged or policy, env, episodes, cfg.num_executed, cfg.num_steps, seed=seed,
                               video_dir=None if val else out / "videos" / tag)
            evals[tag] = {k: v for k, v in summary.items() if k != "episodes"} | {
                "env_steps": env_steps, "updates": learner.updates_done, "seeds": "validation" if val else "test"}
            candidate = learner.updates_done > cfg.critic_warmup_updates or learner.updates_done == cfg.updates
            if val and candidate and run.select == "best_val":  # not the SFT policy (nor warm-up: same actor)
                best = evals.get("best")
                if best is None or summary["overall"]["success"] >= best["success"]:  # ties: the later policy
                    save_checkpoint(out / BEST_DIR, policy, metadata=checkpoint_meta())
                    evals["best"] = {"updates": learner.updates_done, "env_steps": env_steps,
                                     "success": summary["overall"]["success"]}
            write_json_atomic(out / "evals.json", evals)
            logger.summary({f"eval/{tag}/success": summary["overall"]["success"]})
            o = summary["overall"]
            print(f"eval [{tag}]: success {o['success']:.1%} (95% CI {o['ci95'][0]:.1%}-{o['ci95'][1]:.1%}, "
                  f"n={o['n']}, {'validation' if val else 'test'} seeds)")
        barrier()  # the other ranks wait for rank 0's evaluation

    def checkpoint_meta() -> dict:
        return {"tasks": list(tasks), "ppo": asdict(cfg), "camera": camera}

    def save() -> None:
        generators = gather_objects(collector.generator.get_state())
        if lead:
            ckpt = save_checkpoint(out / "checkpoint", policy, metadata=checkpoint_meta())
            torch.save({"learner": learner.state_dict(), "generators": generators}, ckpt / LEARNER_FILE)
            if learner.ema:
                save_checkpoint(out / EMA_DIR, averaged_policy(), metadata=checkpoint_meta())
        barrier()

    def averaged_policy() -> Policy:
        averaged = copy.deepcopy(policy)
        averaged.model.load_state_dict(learner.averaged_weights())
        return averaged

    if "sft" not in evals:
        run_eval("sft")
    if validate and "val_update_0" not in evals:
        run_eval("val_update_0", val=True)  # the SFT policy on the validation seeds: where the curve starts
    bar = tqdm(total=cfg.updates, initial=learner.updates_done, desc=f"ppo {cfg.method}",
               disable=not (progress and lead), dynamic_ncols=True)
    t_start = time.time()
    while learner.updates_done < cfg.updates:
        u = learner.updates_done
        collector.obs = env.reset(seed=cfg.seed + (u * world + rank) * run.num_envs)
        level = sampler.noise_level_at(u)
        t0 = time.time()
        ro = collector.collect(cfg.rollout_steps, level)
        t_rollout = time.time() - t0
        stats = learner.update(ro, level)
        env_steps += ro.env_steps * world
        done = learner.updates_done
        if lead:
            record = {"update": u + 1, "env_steps": env_steps, "train_success": success_rate(ro.episodes),
                      "episodes": len(ro.episodes), "reward_mean": float(ro.rewards.sum(0).mean()),
                      "noise_level": level, "rollout_s": t_rollout, "sim_s": ro.sim_s, "policy_s": ro.policy_s,
                      "update_s": time.time() - t0 - t_rollout,
                      "env_steps_per_s": ro.env_steps * world / max(t_rollout, 1e-9),
                      **success_by_task(ro.episodes), **stats}
            logger.log(record, step=env_steps)
            bar.update(1)
            bar.set_postfix(succ=f"{record['train_success']:.0%}", kl=f"{stats['approx_kl']:.3f}",
                            vloss=f"{stats['value_loss']:.3f}", sps=f"{record['env_steps_per_s']:.0f}")
        if validate and (run.eval_every and done % run.eval_every == 0 or done == cfg.updates):
            if f"val_update_{done}" not in evals:
                run_eval(f"val_update_{done}", val=True)
        elif run.eval_every and done % run.eval_every == 0 and done < cfg.updates:
            run_eval(f"update_{done}")
        if done % run.save_every == 0 or done == cfg.updates:
            save()
    bar.close()
    if evals.get("final", {}).get("updates") != learner.updates_done:  # none yet, or a run extended by --updates
        chosen = None
        if lead and run.select in ("best_val", "ema"):
            chosen = load_checkpoint(out / (BEST_DIR if run.select == "best_val" else EMA_DIR))
            chosen.model.to(device)
        run_eval("final", judged=chosen)
        if lead:
            best_val = run.select == "best_val"
            evals["final"]["policy_updates"] = evals["best"]["updates"] if best_val else learner.updates_done
            write_json_atomic(out / "evals.json", evals)
    env.close()
    if not lead:
        return {}
    sft, rl = evals["sft"]["overall"], evals["final"]["overall"]
    policy_dir = out / {"best_val": BEST_DIR, "ema": EMA_DIR}.get(run.select, "checkpoint")
    results = {"sft": sft, "rl": rl, "gain_points": 100 * (rl["success"] - sft["success"]),
               "intervals_separate": rl["ci95"][0] > sft["ci95"][1], "env_steps": env_steps,
               "seconds": time.time() - t_start, "world_size": world, "policy": str(policy_dir),
               "policy_updates": evals["final"]["policy_updates"], "select": run.select}
    if run.select == "best_val":
        results["val_success"] = evals["best"]["success"]
    write_json_atomic(out / "results.json", results)
    logger.summary({"sft_success": sft["success"], "rl_success": rl["success"]})
    logger.finish()
    which = f" (update {results['policy_updates']}, best on validation)" if run.select == "best_val" else ""
    print(f"ppo: SFT {sft['success']:.1%} -> RL {rl['success']:.1%}{which} on the same held-out seeds "
          f"({results['gain_points']:+.1f} points) after {env_steps} env steps")
    return results


def _bc_demos(run: PPORunConfig, cfg: PPOConfig, policy) -> DemoTensors | None:
    if cfg.bc_coef <= 0:
        return None
    paths = [p for p in run.bc_data.split(",") if p]
    if not paths:
        raise ValueError(f"bc_coef={cfg.bc_coef} needs demonstrations: pass --bc-data DIR[,DIR] (the SFT "
                         "policy's demo datasets), or --bc-coef 0")
    datasets, _ = load_demos(paths, max_episodes=0)
    return demo_tensors(policy, chunk_samples(datasets, policy.cfg.action_horizon))


def _trim_metrics(path: Path, updates_done: int) -> int:
    """On resume, drop metric lines of updates after the checkpoint (they will be replayed); returns the env
    steps at the checkpoint."""
    if not path.exists():
        return 0
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line from a crash
        if rec["update"] <= updates_done:
            keep.append(rec)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
    tmp.replace(path)
    return int(keep[-1]["env_steps"]) if keep else 0
