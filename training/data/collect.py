"""Scripted demonstration collection: `pirl-train demos --task ... --episodes N --out DIR`.

Each worker process holds one simulator env and its scripted expert and plays whole episodes (one action and
one camera render per step); the main process streams finished episodes into a `DemoWriter` with a progress
bar. Demo seeds are `seed + i`, in the training range; `--resume` skips the seeds a dataset already holds.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from training.data.demos import DemoWriter, Episode
from training.envs.factory import is_libero, libero_task


@dataclass(frozen=True)
class CollectConfig:
    task: str = "PickCube-v1"
    """A ManiSkill task id (PickCube-v1, PushCube-v1, PullCube-v1, StackCube-v1) or a LIBERO task as
    SUITE/INDEX (libero_spatial/0, /1, /2, /3)."""
    episodes: int = 20
    out: str = "data/demos"
    workers: int = 2
    image_size: int = 64
    max_episode_steps: int = 0
    """0: the task's default (ManiSkill 50, StackCube 100; LIBERO the suite's limit)."""
    seed: int = 0
    resume: bool = False
    expert_speed: float = 1.0
    """ManiSkill experts: their largest step as a fraction of the controller's (< 1: a slower, teleop-like
    demonstrator)."""
    control_mode: str = "pd_ee_delta_pos"
    """ManiSkill: the actions the dataset records. "pd_ee_delta_pos": end-effector deltas; "pd_joint_pos": the
    joint targets the expert's Cartesian steps produce (the controller's IK solution, 7 arm joints in rad) and
    the finger position in m, what a Franka under ros2_control takes (robot:=forward / jtc)."""
    camera_file: str = ""
    """ManiSkill: a camera.yaml placing the camera (e.g. `configs/cameras/workspace.yaml`, or one that
    `pirl-calibrate` wrote); "" keeps the task's default camera. The dataset records it, and SFT, PPO and
    evaluation render through the same camera."""


def make_env_and_expert(cfg: CollectConfig):
    """(ChunkEnv, expert) for a task, in this process."""
    if is_libero(cfg.task):
        from training.data.experts.libero import PickPlaceBowlExpert
        from training.envs.libero import LiberoChunkEnv, LiberoConfig

        suite, idx = libero_task(cfg.task)
        env = LiberoChunkEnv(LiberoConfig(suite=suite, image_size=(cfg.image_size, cfg.image_size),
                                          max_episode_steps=cfg.max_episode_steps or None), idx)
        if suite != "libero_spatial":
            raise ValueError(f"scripted LIBERO experts exist for libero_spatial only, not {suite}")
        return env, PickPlaceBowlExpert(env)
    from training.data.experts.maniskill import EXPERTS
    from training.envs.maniskill import ManiSkillChunkEnv, ManiSkillConfig

    if cfg.task not in EXPERTS:
        raise ValueError(f"no scripted expert for {cfg.task!r}; ManiSkill experts: {sorted(EXPERTS)}, LIBERO: "
                         "libero_spatial/0..3")
    steps = cfg.max_episode_steps or (100 if cfg.task == "StackCube-v1" else 50)
    env = ManiSkillChunkEnv(cfg.task, ManiSkillConfig(tasks=(cfg.task,), num_envs=1, max_episode_steps=steps,
                                                       image_size=(cfg.image_size, cfg.image_size),
                                                       camera_file=_camera(cfg)))
    return env, EXPERTS[cfg.task](env, speed=cfg.expert_speed)


def joint_action(env, action: np.ndarray) -> np.ndarray:
    """What an end-effector step just did, as a joint-position action: the arm's IK targets and the finger
    position the gripper action commands (`CollectConfig.control_mode: pd_joint_pos`)."""
    from training.envs.maniskill import gripper_action_to_finger

    return np.concatenate([env.joint_targets(), [gripper_action_to_finger(action[-1])]]).astype(np.float32)


def run_episode(env, expert, seed: int, joint_actions: bool = False) -> Episode:
    """One scripted episode: observation (images + state) before each action, the action, success. With
    `joint_actions` the expert still acts in end-effector space and the joint targets it produced are recorded."""
    instruction = env.sim_reset(seed)
    expert.reset()
    images: dict[str, list] = {c: [] for c in env.camera_names}
    states, actions = [], []
    success = False
    while True:
        for c, img in env.render_images().items():
            images[c].append(img)
        states.append(env.sim_state())
        action = expert.act()
        _, s, terminated, truncated = env.sim_step(action)
        actions.append(joint_action(env, action) if joint_actions else action)
        success |= s
        if terminated or truncated:
            break
    return Episode(env.task, instruction, seed, success, {c: np.stack(v) for c, v in images.items()},
                   np.stack(states).astype(np.float32), np.stack(actions).astype(np.float32))


_worker: tuple | None = None


def _init_worker(cfg: CollectConfig) -> None:
    global _worker
    from training.envs.pool import limit_threads

    limit_threads()
    _worker = (*make_env_and_expert(cfg), cfg.control_mode == "pd_joint_pos")


def _run_seed(seed: int) -> Episode:
    assert _worker is not None
    env, expert, joint_actions = _worker
    return run_episode(env, expert, seed, joint_actions)


def collect(cfg: CollectConfig, progress: bool = True) -> dict:
    """Collect `cfg.episodes` scripted episodes into `cfg.out`; returns a summary with the success rate."""
    writer = DemoWriter(cfg.out, _dataset_meta(cfg), resume=cfg.resume)
    done = writer.done_seeds()
    seeds = [s for s in range(cfg.seed, cfg.seed + cfg.episodes) if s not in done]
    bar = tqdm(total=cfg.episodes, initial=cfg.episodes - len(seeds), desc=f"demos {cfg.task}",
               disable=not progress, dynamic_ncols=True)
    if seeds:
        ctx = mp.get_context("forkserver")
        with ctx.Pool(min(cfg.workers, len(seeds)), initializer=_init_worker, initargs=(cfg,)) as pool:
            # in seed order (not as finished): the dataset, and the SFT batches drawn from it, repeat run to run
            for ep in pool.imap(_run_seed, seeds):
                writer.write(ep)
                rate = np.mean([r["success"] for r in writer.records])
                bar.update(1)
                bar.set_postfix(success=f"{rate:.0%}", last_len=ep.length)
    bar.close()
    writer.finalize()
    successes = [r["success"] for r in writer.records]
    return {"task": cfg.task, "episodes": len(successes), "success_rate": float(np.mean(successes)),
            "mean_length": float(np.mean([r["length"] for r in writer.records])), "out": str(Path(cfg.out))}


def _camera(cfg: CollectConfig) -> dict | None:
    """The camera.yaml's contents at the dataset's image size (None: the task's default camera)."""
    if not cfg.camera_file:
        return None
    from core.camera import CameraSpec

    return CameraSpec.load(cfg.camera_file).scaled(cfg.image_size, cfg.image_size).to_dict()


def _dataset_meta(cfg: CollectConfig) -> dict:
    """What the dataset holds, known before any episode is played (so resume can check it)."""
    from core.action_space import ActionSpace

    if is_libero(cfg.task):
        space = ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "dax", "day", "daz", "gripper"),
                            units="normalized OSC_POSE deltas in [-1, 1] (xyz 5 cm, rotation 0.5 rad a step)",
                            gripper="last dim, -1 = open, +1 = closed", control_hz=20.0)
        cameras, backend = ["agentview", "wrist"], "libero"
        if cfg.camera_file:
            raise ValueError("LIBERO renders its own agentview and wrist cameras; --camera-file applies to "
                             "ManiSkill tasks only")
        if cfg.control_mode != "pd_ee_delta_pos":
            raise ValueError("LIBERO demos record its end-effector (OSC) actions; control_mode applies to ManiSkill")
    elif cfg.control_mode == "pd_joint_pos":
        from training.envs.maniskill import FINGER_RANGE, PANDA_JOINT_ACTIONS, PANDA_JOINT_LIMITS

        space = ActionSpace("joint_position", PANDA_JOINT_ACTIONS,
                            units="rad (7 arm joints), m (finger position, per finger)",
                            gripper=f"last dim: finger position in m, {FINGER_RANGE[1]} open, {FINGER_RANGE[0]} "
                                    "pressing closed", control_hz=20.0,
                            lower=(*PANDA_JOINT_LIMITS[0], FINGER_RANGE[0]),
                            upper=(*PANDA_JOINT_LIMITS[1], FINGER_RANGE[1]))
        cameras, backend = ["base_camera"], "maniskill"
    elif cfg.control_mode == "pd_ee_delta_pos":
        space = ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper"),
                            units="normalized pd_ee_delta_pos deltas in [-1, 1] (10 cm a step)",
                            gripper="last dim, +1 = open, -1 = closed", control_hz=20.0)
        cameras, backend = ["base_camera"], "maniskill"
    else:
        raise ValueError(f"control_mode must be pd_ee_delta_pos or pd_joint_pos, got {cfg.control_mode!r}")
    return {"backend": backend, "task": cfg.task, "cameras": cameras, "image_size": [cfg.image_size] * 2,
            "expert_speed": cfg.expert_speed, "camera": None if is_libero(cfg.task) else _camera(cfg),
            "action_space": space.to_dict(), "max_episode_steps": cfg.max_episode_steps}
