"""`pirl-eval-engine DIR --task ... --episodes N`: the compiled engine, through the numpy runtime and the
chunk executor (with the safety limits), closed loop in the simulator - next to the PyTorch policy it came
from, on the same held-out seeds and the same initial noise.

Both runs go through training's evaluator (`training.eval.run_episodes`) and draw the initial noise of every
decision from one torch generator seeded like training's evaluation, so they meet the same episodes and the
same noise. Parity (<= 1e-4 per chunk) does not make them agree episode for episode: closed loop amplifies
float-level action differences over an episode (measured: docs/deploy.md), so the report lists the episodes
whose outcome differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from deploy.robot.executor import ChunkExecutor
from deploy.robot.runtime import Engine, engine_hash, load_engine
from deploy.robot.safety import SafetyFilter, SafetyLimits
from training.envs.base import EVAL_SEED_BASE, VecEnv
from training.envs.factory import EnvSpec, control_mode_for, make_vec_env
from training.eval import evaluate, run_episodes


def default_limits(engine: Engine) -> SafetyLimits:
    """Sim limits from the action space: the range it declares (joint-position actions: the joint limits), else
    [-1, 1] per dim, where ManiSkill's and LIBERO's normalized delta actions live."""
    space = engine.spec.get("action_space") or {"kind": "ee_delta_pose"}
    n = engine.action_dim
    lower, upper = space.get("lower") or (-1.0,) * n, space.get("upper") or (1.0,) * n
    return SafetyLimits(space["kind"], lower=tuple(lower), upper=tuple(upper))


class SimClockExecutor:
    """deploy's ChunkExecutor and safety filter for one env, on a virtual clock at `control_hz`: each chunk is
    stamped at the decision's time and the env executes what the executor emits tick by tick."""

    def __init__(self, limits: SafetyLimits, control_hz: float, num_executed: int):
        self.executor = ChunkExecutor(SafetyFilter(limits, control_hz), control_hz, num_executed=num_executed)
        self.control_hz, self.clock = control_hz, 0.0

    def execute(self, chunk: np.ndarray, num_executed: int) -> np.ndarray:
        self.executor.submit(chunk, stamp=self.clock)
        commands = np.stack([self.executor.tick(self.clock + k / self.control_hz) for k in range(num_executed)])
        self.clock += num_executed / self.control_hz
        return commands.astype(np.float32)

    def reset(self) -> None:
        self.executor.clear()
        self.executor.safety.reset()


def evaluate_engine(engine: Engine, env: VecEnv, episodes_per_env: int, num_executed: int,
                    limits: SafetyLimits, control_hz: float = 20.0, seed: int = EVAL_SEED_BASE) -> dict:
    """The engine on `run_episodes`; every action passes one ChunkExecutor per env (virtual clock)."""
    executors = [SimClockExecutor(limits, control_hz, num_executed) for _ in range(env.num_envs)]
    summary = run_episodes(lambda obs, noise: engine.infer(obs, noise=noise.numpy()), env, episodes_per_env,
                           num_executed, engine.chunk_shape, executors=executors, seed=seed)
    summary["safety"] = dict(sum((ex.executor.safety.counts for ex in executors), start=Counter()))
    return summary


def disagreements(engine_episodes: list[dict], torch_episodes: list[dict]) -> list[int]:
    """Seeds whose outcome differs between the two runners, matched by (task, seed): the lists' orders differ
    as soon as one runner's episode lasts a step longer than the other's."""
    torch_success = {(p["task"], p["seed"]): p["success"] for p in torch_episodes}
    return [e["seed"] for e in engine_episodes if (e["task"], e["seed"]) in torch_success
            and torch_success[(e["task"], e["seed"])] != e["success"]]


def run(engine_dir: str, tasks: list[str], episodes: int, num_envs: int, num_executed: int,
        max_episode_steps: int, checkpoint: str | None, out: str | None) -> dict:
    engine = load_engine(engine_dir)
    print(f"pirl-eval-engine: {engine_dir} on {engine.backend}; tasks {tasks}")
    env = make_vec_env(EnvSpec(tasks=tuple(tasks), num_envs=num_envs, image_size=engine.spec["image_size"],
                               camera_names=engine.cameras, max_episode_steps=max_episode_steps,
                               camera=engine.spec.get("sim_camera"),
                               control_mode=control_mode_for(engine.spec.get("action_space"))))
    per_env = max(1, -(-episodes // num_envs))
    try:
        result = {"engine": evaluate_engine(engine, env, per_env, num_executed, default_limits(engine)),
                  "backend": engine.backend, "engine_dir": str(engine_dir), "engine_sha256": engine_hash(engine_dir),
                  "control_hz": float((engine.spec.get("action_space") or {}).get("control_hz", 20.0)),
                  "source_checkpoint": engine.spec["source_checkpoint"]}
        ckpt = checkpoint or engine.spec["source_checkpoint"]["path"]
        if ckpt and Path(ckpt).exists():
            from training.policy.checkpoint import load_checkpoint

            policy = load_checkpoint(ckpt)
            result["pytorch"] = evaluate(policy, env, per_env, num_executed, engine.spec["num_steps"])
            result["disagreements"] = disagreements(result["engine"]["episodes"], result["pytorch"]["episodes"])
    finally:
        env.close()
    _print_table(result)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(out).with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        tmp.replace(out)
    return result


def _print_table(result: dict) -> None:
    print("| runner | task / instruction | success | 95% CI | n |\n| --- | --- | --- | --- | --- |")
    for who in ("engine", "pytorch"):
        if who not in result:
            continue
        s = result[who]
        rows = [("all", s["overall"])] + list(s["per_task"].items()) + list(s["per_instruction"].items())
        for name, b in rows:
            print(f"| {who} | {name} | {b['success']:.1%} | {b['ci95'][0]:.1%}-{b['ci95'][1]:.1%} | {b['n']} |")
    lat = result["engine"]["latency_ms"]
    print(f"engine latency per decision (all envs at once): p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms; "
          f"safety filter counts {result['engine']['safety']}")
    if "disagreements" in result:
        print(f"episodes where engine and PyTorch outcomes differ: {len(result['disagreements'])}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pirl-eval-engine", description=__doc__.splitlines()[0])
    p.add_argument("engine", help="an engine directory from pirl-export")
    p.add_argument("--task", action="append", required=True, help="ManiSkill id or LIBERO SUITE/INDEX (repeat)")
    p.add_argument("--episodes", type=int, default=20, help="episodes in all (spread over the envs)")
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--num-executed", type=int, default=5)
    p.add_argument("--max-episode-steps", type=int, default=0, help="0: the simulator's default")
    p.add_argument("--checkpoint", default=None, help="PyTorch policy to compare (default: the engine's source)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    try:
        run(args.engine, args.task, args.episodes, args.num_envs, args.num_executed, args.max_episode_steps,
            args.checkpoint, args.out)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"pirl-eval-engine: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
