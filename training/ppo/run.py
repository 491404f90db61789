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
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from core.io import write_json_atomic
from training.device import resolve_device
from training.envs.base import EVAL_SEED_BASE, VAL_SEED_BASE
from training.envs.factory import EnvSpec, control_mode_for, make_vec_env
from training.eval import evaluate
from training.policy.checkpoint import load_checkpoint, save_checkpoint
from training.policy.policy import Policy
from training.ppo.config import PPOConfig, PPORunConfig
from training.ppo.distributed import barrier, broadcast_parameters, gather_objects, init_from_env
from training.ppo.rollout import RolloutCollector, success_by_task, success_rate
from training.ppo.train import PPOLearner
from training.run_logger import RunLogger
from training.sft.run import chunk_samples, demo_tensors, load_demos
from training.sft.train import DemoTensors

LEARNER_FILE = "learner.pt"
BEST_DIR = "best"
"""The validation-best policy (`select: best_val`), beside checkpoint/ (the last update's, with learner state)."""
EMA_DIR = "ema"
"""The weight-averaged policy (`select: ema`), beside checkpoint/."""


def _tasks_and_env(run: PPORunConfig, policy, start: str,
                   privileged: bool = False) -> tuple[tuple[str, ...], dict | None, object]:
    """The run's tasks (flag, else those the init checkpoint was trained on), the camera the checkpoint was
    trained through, and the env."""
    meta = json.loads((Path(start) / "config.json").read_text())["metadata"]
    meta_tasks, camera = meta.get("tasks", []), meta.get("camera")
    tasks = tuple(run.tasks) or tuple(meta_tasks)
    if not tasks:
        raise ValueError("no tasks: pass --tasks (the checkpoint does not record the tasks it was trained on)")
    env = make_vec_env(EnvSpec(tasks=tasks, num_envs=run.num_envs, image_size=policy.cfg.vision.image_size,
                               camera_names=policy.cfg.camera_names, max_episode_steps=run.max_episode_steps,
                               reward_mode=run.reward_mode, sim_backend=run.sim_backend,
                               privileged=privileged, camera=camera,
                               control_mode=control_mode_for(policy.action_space.to_dict() if policy.action_space
                                                             else None)))
    return tasks, camera, env


class PolicySelector:
    """Which policy the final test evaluation judges and the pipeline exports (`select`): the last update's
    (checkpoint/), the Polyak average of the weights (ema/), or the best of the validation evaluations after
    the critic warm-up (best/). Lives on rank 0."""

    def __init__(self, run: PPORunConfig, out: Path, learner: PPOLearner, meta: dict):
        self.select, self.out, self.learner, self.meta = run.select, out, learner, meta
        self.warmup, self.updates = run.algo.critic_warmup_updates, run.algo.updates

    @property
    def directory(self) -> Path:
        return self.out / {"best_val": BEST_DIR, "ema": EMA_DIR}.get(self.select, "checkpoint")

    def on_validation(self, success: float, env_steps: int, evals: dict) -> None:
        """A validation evaluation of the current actor: keep it in best/ if it is the best so far (ties go to
        the later policy). The SFT policy and the warm-up's (the same actor) are not candidates."""
        done = self.learner.updates_done
        if self.select != "best_val" or not (done > self.warmup or done == self.updates):
            return
        best = evals.get("best")
        if best is None or success >= best["success"]:
            save_checkpoint(self.out / BEST_DIR, self.learner.policy, metadata=self.meta)
            evals["best"] = {"updates": done, "env_steps": env_steps, "success": success}

    def save(self) -> None:
        """Beside every checkpoint: the averaged policy, when one is kept."""
        if self.learner.ema:
            save_checkpoint(self.out / EMA_DIR, self.averaged(), metadata=self.meta)

    def averaged(self) -> Policy:
        averaged = copy.deepcopy(self.learner.policy)
        averaged.model.load_state_dict(self.learner.averaged_weights())
        return averaged

    def chosen(self, device: torch.device) -> Policy | None:
        """The policy the final evaluation plays; None: the live actor (select: last)."""
        if self.select == "last":
            return None
        policy = load_checkpoint(self.directory)
        policy.model.to(device)
        return policy

    def chosen_updates(self, evals: dict) -> int:
        return evals["best"]["updates"] if self.select == "best_val" else self.learner.updates_done


class RunEvaluations:
    """The run's evaluations of the ODE policy (test seeds, or validation seeds for the mid-run ones), kept in
    evals.json by tag; rank 0 plays them while the other ranks wait."""

    def __init__(self, run: PPORunConfig, env, out: Path, evals: dict, lead: bool):
        self.run, self.env, self.out, self.evals, self.lead = run, env, out, evals, lead
        self.logger: RunLogger | None = None

    def __contains__(self, tag: str) -> bool:
        return tag in self.evals

    def __call__(self, tag: str, policy: Policy, env_steps: int, updates: int, val: bool = False,
                 selector: PolicySelector | None = None) -> None:
        if self.lead:
            run = self.run
            episodes, seed = (run.val_episodes_per_env, VAL_SEED_BASE) if val else (run.eval_episodes_per_env,
                                                                                     EVAL_SEED_BASE)
            summary = evaluate(policy, self.env, episodes, run.algo.num_executed, run.algo.sampler.num_steps,
                               seed=seed, video_dir=None if val else self.out / "videos" / tag)
            self.evals[tag] = {k: v for k, v in summary.items() if k != "episodes"} | {
                "env_steps": env_steps, "updates": updates, "seeds": "validation" if val else "test"}
            if val and selector is not None:
                selector.on_validation(summary["overall"]["success"], env_steps, self.evals)
            self.write()
            if self.logger is not None:
                self.logger.summary({f"eval/{tag}/success": summary["overall"]["success"]})
            o = summary["overall"]
            print(f"eval [{tag}]: success {o['success']:.1%} (95% CI {o['ci95'][0]:.1%}-{o['ci95'][1]:.1%}, "
                  f"n={o['n']}, {'validation' if val else 'test'} seeds)")
        barrier()  # the other ranks wait for rank 0's evaluation

    def write(self) -> None:
        write_json_atomic(self.out / "evals.json", self.evals)


def run_ppo(run: PPORunConfig, progress: bool = True) -> dict:
    """One process, or one rank of a torchrun job: each rank owns its envs (seeds offset by rank) and
    rollouts, gradients are averaged every step; rank 0 evaluates, logs and saves, and its checkpoint holds
    every rank's RNG state so `--resume` replays the same episodes on every rank."""
    cfg, sampler = run.algo, run.algo.sampler
    device = resolve_device(run.device)
    rank, world = init_from_env(device)
    lead = rank == 0
    out = Path(run.out)
    state_path = out / "checkpoint" / LEARNER_FILE
    if lead and out.exists() and any(out.iterdir()) and not run.resume:
        raise FileExistsError(f"{out} already holds a run; pass --resume true to continue it or choose another --out")
    start = str(out / "checkpoint") if run.resume else run.init
    if run.resume:
        _check_resume(out, cfg, world)
    barrier()  # rank 0 has checked the run directory
    policy = load_checkpoint(start)
    policy.model.to(device)
    broadcast_parameters(policy.model)
    tasks, camera, env = _tasks_and_env(run, policy, start, privileged=cfg.critic == "privileged")
    learner = PPOLearner(policy, cfg, privileged_dim=env.privileged_dim, bc_demos=_bc_demos(run, cfg, policy))
    if learner.critic is not None:
        broadcast_parameters(learner.critic)
    collector = RolloutCollector(env, policy, sampler, cfg.num_executed, seed=cfg.seed + 1_000 * rank,
                                 critic=learner.critic, critic_input=cfg.critic_input)
    meta = {"tasks": list(tasks), "ppo": asdict(run), "camera": camera}
    selector = PolicySelector(run, out, learner, meta)
    evaluations = RunEvaluations(run, env, out, {}, lead)
    if run.resume:
        state = torch.load(state_path, weights_only=True, map_location="cpu")  # the optimizer moves its own
        learner.load_state_dict(state["learner"])
        collector.generator.set_state(state["generators"][rank])
        if (out / "evals.json").exists():
            evaluations.evals = json.loads((out / "evals.json").read_text())
    env_steps = 0
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", {"run": asdict(run), "tasks": list(tasks), "world_size": world})
        print(f"ppo: method={sampler.method} chain={sampler.resolved_chain_mode} "
              f"log_prob={sampler.log_prob_reduction} K={sampler.num_steps} a={sampler.noise_level} "
              f"H={policy.cfg.action_horizon} executed={cfg.num_executed} envs={run.num_envs}x{world} "
              f"tasks={list(tasks)} critic={cfg.critic} train_prefix={cfg.train_prefix}")
        env_steps = _trim_metrics(out / "metrics.jsonl", learner.updates_done)
        evaluations.logger = RunLogger(out, {"run": asdict(run), "tasks": list(tasks), "world_size": world},
                                       name=out.name, use_wandb=run.wandb, resume=run.resume)
    logger = evaluations.logger

    def save() -> None:
        generators = gather_objects(collector.generator.get_state())
        if lead:
            ckpt = save_checkpoint(out / "checkpoint", policy, metadata=meta)
            torch.save({"learner": learner.state_dict(), "generators": generators}, ckpt / LEARNER_FILE)
            selector.save()
        barrier()

    validate = run.val_episodes_per_env > 0
    if "sft" not in evaluations:
        evaluations("sft", policy, env_steps, learner.updates_done)
    if validate and "val_update_0" not in evaluations:  # the SFT policy on the validation seeds: where the curve starts
        evaluations("val_update_0", policy, env_steps, learner.updates_done, val=True, selector=selector)
    bar = tqdm(total=cfg.updates, initial=learner.updates_done, desc=f"ppo {sampler.method}",
               disable=not (progress and lead), dynamic_ncols=True)
    t_start = time.time()
    while learner.updates_done < cfg.updates:
        u = learner.updates_done
        collector.obs = env.reset(seed=cfg.seed + (u * world + rank) * run.num_envs)
        level = sampler.noise_level_at(u)
        t0 = time.time()
        ro = collector.collect(cfg.rollout_steps, level,
                               bootstrap_gamma=cfg.gamma if cfg.bootstrap_truncation else None)
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
            if f"val_update_{done}" not in evaluations:
                evaluations(f"val_update_{done}", policy, env_steps, done, val=True, selector=selector)
        elif run.eval_every and done % run.eval_every == 0 and done < cfg.updates:
            evaluations(f"update_{done}", policy, env_steps, done)
        if done % run.save_every == 0 or done == cfg.updates:
            save()
    bar.close()
    evals = evaluations.evals
    if evals.get("final", {}).get("updates") != learner.updates_done:  # none yet, or a run extended by --updates
        chosen = selector.chosen(device) if lead else None
        evaluations("final", chosen or policy, env_steps, learner.updates_done)
        if lead:
            evals["final"]["policy_updates"] = selector.chosen_updates(evals)
            evaluations.write()
    env.close()
    if not lead:
        return {}
    sft, rl = evals["sft"]["overall"], evals["final"]["overall"]
    results = {"sft": sft, "rl": rl, "gain_points": 100 * (rl["success"] - sft["success"]),
               "intervals_separate": rl["ci95"][0] > sft["ci95"][1], "env_steps": env_steps,
               "seconds": time.time() - t_start, "world_size": world, "policy": str(selector.directory),
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


def _check_resume(out: Path, cfg: PPOConfig, world: int) -> None:
    """Only the number of updates may change on resume, and only with the same number of ranks."""
    state_path = out / "checkpoint" / LEARNER_FILE
    if not state_path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint with learner state in {out / 'checkpoint'}")
    saved = json.loads((out / "config.json").read_text())
    was, now = _flat(saved["run"]["algo"]), _flat(json.loads(json.dumps(asdict(cfg))))
    changed = sorted(k for k in now.keys() | was.keys() if k != "updates" and was.get(k) != now.get(k))
    if changed:
        raise ValueError(f"--resume: algo.{changed[0]} differs from the run saved in {out / 'config.json'} "
                         f"(saved {was.get(changed[0])!r}, now {now.get(changed[0])!r}; all: {changed})")
    if saved.get("world_size", 1) != world:
        raise ValueError(f"--resume: the run was saved with {saved.get('world_size', 1)} rank(s), this job has "
                         f"{world}; relaunch with --nproc-per-node matching it")


def _bc_demos(run: PPORunConfig, cfg: PPOConfig, policy) -> DemoTensors | None:
    if cfg.bc_coef <= 0:
        return None
    if not run.bc_data:
        raise ValueError(f"algo.bc_coef={cfg.bc_coef} needs demonstrations: set bc_data (the SFT policy's demo "
                         "datasets, e.g. --bc_data '[data/a,data/b]'), or algo.bc_coef 0")
    datasets, _ = load_demos(list(run.bc_data), max_episodes=0)
    return demo_tensors(policy, chunk_samples(datasets, policy.cfg.action_horizon))


def _flat(tree: dict, prefix: str = "") -> dict:
    """{"sampler": {"method": ...}} -> {"sampler.method": ...}: nested configs compared key by key."""
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat |= _flat(v, f"{prefix}{k}.")
        else:
            flat[prefix + k] = v
    return flat


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
