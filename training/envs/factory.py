"""One place that turns task names into a VecEnv, so SFT evaluation, PPO and engine checks accept the same
names: ManiSkill ids (`PushCube-v1`) or LIBERO tasks written `SUITE/INDEX` (`libero_spatial/0`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSpec:
    tasks: tuple[str, ...]
    num_envs: int = 2
    image_size: int = 64
    camera_names: tuple[str, ...] = ("base_camera",)
    """The policy's cameras, in its order (ManiSkill tasks have one; LIBERO: agentview and/or wrist)."""
    max_episode_steps: int = 0
    """0: the simulator's default (ManiSkill 50; LIBERO the suite's published limit)."""
    reward_mode: str = "sparse"
    sim_backend: str = "cpu"
    privileged: bool = False
    """Also return sim-only state as obs["privileged"] (ManiSkill CPU backend) for an asymmetric critic."""
    camera: dict | None = None
    """ManiSkill: the camera the policy was trained with (`CameraSpec.to_dict()`, recorded in datasets,
    checkpoints and engines); None: the task's default camera."""
    control_mode: str = "pd_ee_delta_pos"
    """ManiSkill: the controller the policy's actions are for (`control_mode_for` its action space)."""


def control_mode_for(action_space: dict | None) -> str:
    """The ManiSkill controller that executes an action space (a dataset's, checkpoint's or engine's)."""
    kind = (action_space or {}).get("kind", "ee_delta_pose")
    if kind == "joint_position":
        return "pd_joint_pos"
    if kind == "ee_delta_pose":
        return "pd_ee_delta_pos"
    raise ValueError(f"no ManiSkill controller for {kind!r} actions (ee_delta_pose or joint_position)")


def is_libero(task: str) -> bool:
    return task.startswith("libero_")


def libero_task(task: str) -> tuple[str, int]:
    suite, _, idx = task.partition("/")
    if not idx.isdigit():
        raise ValueError(f"LIBERO tasks are written SUITE/INDEX, e.g. libero_spatial/0; got {task!r}")
    return suite, int(idx)


def make_vec_env(spec: EnvSpec):
    """The VecEnv for `spec.tasks` (all ManiSkill, or all from one LIBERO suite)."""
    kinds = {is_libero(t) for t in spec.tasks}
    if not spec.tasks:
        raise ValueError("no tasks given")
    if len(kinds) > 1:
        raise ValueError(f"mix of LIBERO and ManiSkill tasks {list(spec.tasks)}: one simulator per run")
    if kinds == {True}:
        return _make_libero(spec)
    from training.envs.maniskill import ManiSkillConfig, make_maniskill_vec_env

    if len(spec.camera_names) != 1:
        raise ValueError(f"ManiSkill tasks render one camera; the policy expects {list(spec.camera_names)}")
    return make_maniskill_vec_env(ManiSkillConfig(
        tasks=spec.tasks, num_envs=spec.num_envs, image_size=(spec.image_size, spec.image_size),
        max_episode_steps=spec.max_episode_steps or 50, reward_mode=spec.reward_mode,
        camera_name=spec.camera_names[0], sim_backend=spec.sim_backend, privileged=spec.privileged,
        camera_file=spec.camera, control_mode=spec.control_mode))


def _make_libero(spec: EnvSpec):
    from training.envs.libero import LiberoConfig, LiberoVecEnv

    parsed = [libero_task(t) for t in spec.tasks]
    suites = sorted({s for s, _ in parsed})
    if len(suites) > 1:
        raise ValueError(f"LIBERO tasks from several suites {suites}: one suite per run")
    if spec.reward_mode != "sparse":
        raise ValueError(f"LIBERO has only its success reward; reward_mode must be 'sparse', got "
                         f"{spec.reward_mode!r}")
    if spec.sim_backend != "cpu":
        raise ValueError("LIBERO runs on the CPU (MuJoCo); use sim_backend 'cpu'")
    if spec.privileged:
        raise ValueError("LIBERO envs offer no privileged critic state; use critic: policy")
    if spec.camera is not None:
        raise ValueError("LIBERO renders its own agentview and wrist cameras; a camera file applies to ManiSkill only")
    return LiberoVecEnv(LiberoConfig(suite=suites[0], task_ids=tuple(i for _, i in parsed), num_envs=spec.num_envs,
                                     image_size=(spec.image_size, spec.image_size), cameras=spec.camera_names,
                                     max_episode_steps=spec.max_episode_steps or None))
