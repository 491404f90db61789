"""PPO rollout throughput and where the wall time goes (simulation vs policy inference vs learning), for the
CPU demo config (configs/cpu_demo.yaml). Prints a table; never run as a test.

    python benchmarks/ppo_throughput.py [--config configs/cpu_demo.yaml] [--updates 5] [--init CHECKPOINT]
                                        [--method flow_noise|flow_sde|fpo] [--noise-level A]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from core.camera import CameraSpec
from pipeline.cli import parse
from training.envs.factory import EnvSpec, make_vec_env
from training.envs.maniskill_tasks import INSTRUCTIONS
from training.policy.checkpoint import load_checkpoint
from training.policy.policy import Policy
from training.policy.presets import get_preset
from training.ppo.config import PPO_METHODS
from training.ppo.rollout import RolloutCollector
from training.ppo.train import PPOLearner


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/cpu_demo.yaml")
    p.add_argument("--updates", type=int, default=5)
    p.add_argument("--init", default=None, help="an SFT checkpoint (default: a fresh tiny policy)")
    p.add_argument("--method", choices=PPO_METHODS, default=None,
                   help="the PPO method (default: the config's)")
    p.add_argument("--noise-level", type=float, default=None, help="Flow-SDE's a (default: the config's)")
    args = p.parse_args()
    pipe = parse("pipeline", ["--config", args.config])
    run = pipe.ppo
    # Steady-state updates: the config's critic-only warm-up updates skip the actor's epochs and would
    # understate the learning share.
    sampler = dataclasses.replace(run.algo.sampler, **{k: v for k, v in (("method", args.method),
                                  ("noise_level", args.noise_level)) if v is not None})
    cfg = dataclasses.replace(run.algo, critic_warmup_updates=0, sampler=sampler)
    tasks = tuple(pipe.tasks)
    camera = CameraSpec.load(pipe.camera_file).to_dict() if pipe.camera_file else None  # render as the demo does
    env = make_vec_env(EnvSpec(tasks=tasks, num_envs=run.num_envs, image_size=pipe.image_size,
                               max_episode_steps=run.max_episode_steps, reward_mode=run.reward_mode,
                               privileged=cfg.critic == "privileged", camera=camera))
    if args.init:
        policy = load_checkpoint(args.init)
    else:
        preset = get_preset("tiny")
        pcfg = dataclasses.replace(preset, camera_names=env.camera_names,
                                   state_dim=max(preset.state_dim, env.state_dim),
                                   vision=dataclasses.replace(preset.vision, image_size=pipe.image_size))
        rng = np.random.default_rng(0)
        policy = Policy.create(pcfg, [i for t in tasks for i in INSTRUCTIONS[t]],
                               rng.standard_normal((64, env.state_dim)),
                               rng.uniform(-1, 1, (64, pcfg.action_horizon, env.action_dim)))
    learner = PPOLearner(policy, cfg, privileged_dim=env.privileged_dim)
    collector = RolloutCollector(env, policy, cfg.sampler, cfg.num_executed, critic=learner.critic,
                                 critic_input=cfg.critic_input)
    sim = pol = learn = 0.0
    steps = 0
    t_all = time.perf_counter()
    for u in range(args.updates):
        collector.obs = env.reset(seed=u * run.num_envs)
        ro = collector.collect(cfg.rollout_steps, cfg.sampler.noise_level)
        t0 = time.perf_counter()
        learner.update(ro, cfg.sampler.noise_level)
        learn += time.perf_counter() - t0
        sim, pol, steps = sim + ro.sim_s, pol + ro.policy_s, steps + ro.env_steps
    total = time.perf_counter() - t_all
    env.close()
    method = cfg.sampler.method + (f" a={cfg.sampler.noise_level}" if cfg.sampler.method == "flow_sde" else "")
    print(f"# {args.config}: {run.num_envs} envs x {cfg.rollout_steps} chunks x {cfg.num_executed} actions per "
          f"update, {method}, K={cfg.sampler.num_steps}, {cfg.epochs} epochs; {args.updates} updates")
    print(f"rollout env-steps/s (sim + policy)   {steps / (sim + pol):8.1f}")
    print(f"overall env-steps/s (with learning)  {steps / total:8.1f}")
    print(f"seconds per update                   {total / args.updates:8.2f}")
    for name, t in (("simulation (env.step, rendering)", sim), ("policy inference (chains)", pol),
                    ("learning (PPO epochs)", learn), ("other (resets, bookkeeping)", total - sim - pol - learn)):
        print(f"{name:<37}{100 * t / total:7.1f}%")


if __name__ == "__main__":
    main()
