"""The chunk schedule on the sim arm: how often the arm holds and how large the jump at a chunk boundary is,
for camera rates and injected inference latencies (deploy.sim.dry_run: the robot graph in one process).

    python benchmarks/chunk_schedule.py [--engine DIR] [--seconds 3] [--task PushCube-v1]

Without --engine a small untrained engine shaped for the ManiSkill Panda is exported to a temporary directory
(its actions lean "up", so the arm moves). Holds are counted once the first chunk has arrived (steady state);
the discontinuity is mean |first action of an arriving chunk - the previous chunk's action for that tick|,
without and with real-time chunking (each chunk guided towards the actions committed from the current one).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from core.action_space import ActionSpace
from deploy.robot.runtime import load_engine
from deploy.sim.arm import SimArm, SimArmConfig
from deploy.sim.dry_run import DryRunLoop
from deploy.sim.eval import default_limits

SETTINGS = [  # (control Hz, actions per chunk, camera Hz, latency s)
    (20.0, 5, 5.0, 0.1), (20.0, 5, 15.0, 0.1), (20.0, 5, 30.0, 0.1), (20.0, 2, 30.0, 0.1), (50.0, 5, 30.0, 0.1),
    (20.0, 5, 30.0, 0.2),
]


def untrained_panda_engine(root: Path) -> Path:
    from deploy.export.onnx import export
    from training.policy.checkpoint import save_checkpoint
    from training.policy.config import DecoderConfig, PolicyConfig, VisionConfig
    from training.policy.policy import Policy

    cfg = PolicyConfig(
        name="bench", vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2),
        prefix=DecoderConfig(width=48, depth=2, mlp_dim=96, num_heads=4, num_kv_heads=2, head_dim=16),
        expert=DecoderConfig(width=32, depth=2, mlp_dim=64, num_heads=4, num_kv_heads=2, head_dim=16),
        vocab_size=64, max_token_len=16, camera_names=("base_camera",), state_dim=12, action_dim=4,
        action_horizon=10, value_hidden=32, noise_hidden=16)
    rng = np.random.default_rng(0)
    actions = np.concatenate([rng.uniform(-0.2, 0.2, (64, 10, 2)), rng.uniform(0.5, 1.0, (64, 10, 1)),
                              np.ones((64, 10, 1))], axis=-1)
    policy = Policy.create(cfg, ["push the cube to the goal"], rng.standard_normal((64, 9)), actions, seed=0,
                           action_space=ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper")))
    export(save_checkpoint(root / "checkpoint", policy), root / "engine")
    return root / "engine"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default=None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--task", default="PushCube-v1")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    engine_dir = Path(args.engine) if args.engine else untrained_panda_engine(Path(tempfile.mkdtemp()))
    engine = load_engine(engine_dir, backends=("onnxruntime",))
    size = int(engine.spec["image_size"])
    arm = SimArm(SimArmConfig(task=args.task, image_size=(size, size)))
    print(f"# {engine_dir} (H = {engine.chunk_shape[0]}), {args.task}, {args.seconds} s per episode, "
          f"{args.seeds} seeds")
    print("| control Hz | actions per chunk | camera Hz | latency ms | decisions/s | hold fraction (steady) | "
          "boundary jump | with RTC |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    try:
        for control_hz, num_executed, camera_hz, latency in SETTINGS:
            holds = ticks = chunks = 0
            jumps: dict[bool, list[float]] = {False: [], True: []}
            for rtc in (False, True):
                for seed in range(args.seeds):
                    loop = DryRunLoop(engine, arm, default_limits(engine), control_hz=control_hz,
                                      num_executed=num_executed, camera_hz=camera_hz, latency_s=latency, rtc=rtc)
                    r = loop.episode(seed=seed, max_steps=int(args.seconds * control_hz))
                    jumps[rtc] += r.discontinuities
                    if not rtc:
                        first = round(latency * control_hz)  # ticks before the first chunk can arrive
                        holds, ticks = holds + r.holds_after_first_chunk, ticks + r.steps - first
                        chunks += r.chunks
            off, on = (f"{np.mean(jumps[k]):.3f}" if jumps[k] else "-" for k in (False, True))
            print(f"| {control_hz:g} | {num_executed} | {camera_hz:g} | {1000 * latency:.0f} | "
                  f"{chunks / (args.seeds * args.seconds):.1f} | {holds / ticks:.1%} | {off} | {on} |")
    finally:
        arm.close()


if __name__ == "__main__":
    main()
