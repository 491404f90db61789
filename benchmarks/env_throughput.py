"""Simulator throughput behind the chunk-env contract on this machine: env-steps/s and decisions/s (chunks)
for ManiSkill3 (state only, RGB at decision points, RGB every step) with N = 1, 2, 4 worker processes, and
LIBERO with images. Prints a table; never run as a test.

    python benchmarks/env_throughput.py [--chunks 20] [--h-exec 5] [--skip-libero]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def measure(make, chunks: int, h_exec: int, seed: int = 0) -> tuple[float, float, float]:
    """(startup s, env-steps/s, decisions/s) over `chunks` chunks of random actions after one warm-up."""
    t0 = time.perf_counter()
    env = make()
    try:
        env.reset(seed=seed)
        startup = time.perf_counter() - t0
        rng = np.random.default_rng(seed)
        chunk = lambda: rng.uniform(-1, 1, (env.num_envs, h_exec, env.action_dim)).astype(np.float32)  # noqa: E731
        env.step(chunk())  # warm-up
        steps, t0 = 0, time.perf_counter()
        for _ in range(chunks):
            steps += int(env.step(chunk()).executed.sum())
        dt = time.perf_counter() - t0
        return startup, steps / dt, env.num_envs * chunks / dt
    finally:
        env.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--h-exec", type=int, default=5)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--skip-libero", action="store_true")
    args = p.parse_args()
    from training.envs.maniskill import ManiSkillConfig, ManiSkillVecEnv

    print(f"# {os.cpu_count()} CPUs; chunks of {args.h_exec} actions; random actions; 64x64 RGB")
    print(f"{'backend / observation':<44}{'N':>3}{'startup s':>11}{'env-steps/s':>13}{'decisions/s':>13}")
    rows = [("ManiSkill PickCube state only", dict(render=False)),
            ("ManiSkill PickCube RGB at decision points", dict()),
            ("ManiSkill PickCube RGB every step", dict(render_every_step=True))]
    for label, extra in rows:
        for n in map(int, args.workers.split(",")):
            cfg = ManiSkillConfig(tasks=("PickCube-v1",), num_envs=n, max_episode_steps=1000, **extra)
            s, sps, dps = measure(lambda cfg=cfg: ManiSkillVecEnv(cfg), args.chunks, args.h_exec)
            print(f"{label:<44}{n:>3}{s:>11.1f}{sps:>13.1f}{dps:>13.2f}", flush=True)
    if args.skip_libero:
        return
    from training.envs.libero import LiberoConfig, LiberoVecEnv

    for label, extra in (("LIBERO spatial/0 2 cams at decision points", dict()),
                         ("LIBERO spatial/0 2 cams every step", dict(render_every_step=True))):
        for n in (1, 2):
            cfg = LiberoConfig(task_ids=(0,), num_envs=n, max_episode_steps=1000, **extra)
            s, sps, dps = measure(lambda cfg=cfg: LiberoVecEnv(cfg), max(args.chunks // 2, 4), args.h_exec)
            print(f"{label:<44}{n:>3}{s:>11.1f}{sps:>13.1f}{dps:>13.2f}", flush=True)


if __name__ == "__main__":
    main()
