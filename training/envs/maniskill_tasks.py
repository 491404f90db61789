"""ManiSkill3 tasks pirl knows how to talk about: their language instructions, and whether they can run here.

ManiSkill tasks carry no language. Each task gets a few phrasings; an env draws one per episode, so several
tasks can share a batch and the policy must read the instruction to know what to do. All tasks listed with a
Panda arm share state and action spaces and can be mixed.
"""

from __future__ import annotations

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    # Panda tabletop tasks whose assets ship inside the mani_skill wheel.
    "PickCube-v1": ("pick up the cube and lift it to the goal", "grasp the red cube and raise it",
                    "lift the cube to the target"),
    "PushCube-v1": ("push the cube to the goal", "slide the cube onto the target",
                    "push the cube forward to the goal region"),
    "PullCube-v1": ("pull the cube to the goal", "drag the cube back to the target",
                    "pull the cube towards the robot"),
    "StackCube-v1": ("stack the red cube on the green cube", "put the red cube on top of the green one",
                     "place the red block onto the green block"),
    "PlaceSphere-v1": ("place the sphere in the bin", "put the ball into the bin", "drop the sphere in the bin"),
    "PokeCube-v1": ("use the peg to poke the cube to the goal", "push the cube with the peg",
                    "poke the cube with the stick"),
    "LiftPegUpright-v1": ("lift the peg upright", "stand the peg up", "turn the lying peg upright"),
    "PegInsertionSide-v1": ("insert the peg into the hole", "push the peg into the box from the side",
                            "put the peg in the hole"),
    "PlugCharger-v1": ("plug the charger into the socket", "insert the charger into the wall",
                       "connect the charger"),
    "PullCubeTool-v1": ("use the tool to pull the cube closer", "pull the cube with the hook",
                        "grab the tool and pull the cube"),
    "RollBall-v1": ("roll the ball to the goal", "push the ball so it rolls to the target",
                    "roll the ball forward"),
    "StackPyramid-v1": ("stack the cubes into a pyramid", "build a pyramid of three cubes",
                        "make a pyramid with the cubes"),
    # Tasks that need downloaded assets (the Bridge family the piRL paper uses): usable where present.
    "PutCarrotOnPlateInScene-v1": ("put carrot on plate",),
    "PutSpoonOnTableClothInScene-v1": ("put the spoon on the towel",),
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1": ("stack the green block on the yellow block",),
    "PutEggplantInBasketScene-v1": ("put eggplant into yellow basket",),
}


# pirl's variants with a narrower start range (registered below, the CPU demo's tasks) say what their bases say.
INSTRUCTIONS["PushCubeNarrow-v1"] = INSTRUCTIONS["PushCube-v1"]
INSTRUCTIONS["PullCubeNarrow-v1"] = INSTRUCTIONS["PullCube-v1"]


class TaskUnavailableError(ValueError):
    pass


NARROW_HALF_RANGE = 0.04
"""Half-width (m) of the square the *Narrow* tasks place the cube in."""
MANISKILL_HALF_RANGE = 0.1
"""The same for ManiSkill's own PushCube / PullCube (their `_initialize_episode`)."""

_registered = False


def register_pirl_tasks() -> None:
    """Register pirl's ManiSkill task variants (idempotent; every process that makes envs calls it).

    `PushCubeNarrow-v1` / `PullCubeNarrow-v1`: ManiSkill's PushCube / PullCube with the cube's start drawn from
    +-4 cm instead of +-10 cm (the goal keeps its offset from the cube). Same scene, robot, reward and success
    test. A policy still has to see where the cube is - a 4 cm cube anywhere in an 8 cm square - but a few demos
    cover the range, so few-shot SFT gets near and a laptop's worth of RL can show what it adds (the CPU demo).
    """
    global _registered
    if _registered:
        return
    import mani_skill.envs  # noqa: F401  (registers ManiSkill's own tasks first)
    import torch
    from mani_skill.envs.tasks.tabletop.pull_cube import PullCubeEnv
    from mani_skill.envs.tasks.tabletop.push_cube import PushCubeEnv
    from mani_skill.utils.registration import REGISTERED_ENVS, register_env
    from mani_skill.utils.structs.pose import Pose

    def narrowed(base: type) -> type:
        class Narrow(base):
            def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
                super()._initialize_episode(env_idx, options)
                # Shrink the cube's xy offset from the table centre and move the goal with it.
                with torch.device(self.device):
                    cube = self.obj.pose.raw_pose[env_idx].clone()
                    goal = self.goal_region.pose.raw_pose[env_idx].clone()
                    shift = cube[:, :2] * (NARROW_HALF_RANGE / MANISKILL_HALF_RANGE - 1.0)
                    cube[:, :2] += shift
                    goal[:, :2] += shift
                    self.obj.set_pose(Pose.create_from_pq(p=cube[:, :3], q=cube[:, 3:]))
                    self.goal_region.set_pose(Pose.create_from_pq(p=goal[:, :3], q=goal[:, 3:]))

        Narrow.__name__ = Narrow.__qualname__ = base.__name__.replace("Env", "NarrowEnv")
        return Narrow

    for name, base in (("PushCubeNarrow-v1", PushCubeEnv), ("PullCubeNarrow-v1", PullCubeEnv)):
        if name not in REGISTERED_ENVS:
            register_env(name, max_episode_steps=50)(narrowed(base))
    _registered = True


def _missing_assets(task: str) -> list[str]:
    from mani_skill.utils.assets.data import DATA_GROUPS, DATA_SOURCES, is_data_source_downloaded
    from mani_skill.utils.registration import REGISTERED_ENVS

    def have(asset: str) -> bool:
        if asset in DATA_SOURCES:
            return is_data_source_downloaded(asset)
        if asset in DATA_GROUPS:
            return all(have(a) for a in DATA_GROUPS[asset])
        return False

    return [a for a in (REGISTERED_ENVS[task].asset_download_ids or []) if not have(a)]


def available_tasks() -> list[str]:
    """The tasks with instructions whose assets are on this machine."""
    register_pirl_tasks()
    from mani_skill.utils.registration import REGISTERED_ENVS

    return [t for t in INSTRUCTIONS if t in REGISTERED_ENVS and not _missing_assets(t)]


def check_task(task: str) -> None:
    """Raise a clear error, never a download prompt, for a task that cannot run here."""
    register_pirl_tasks()
    from mani_skill.utils.registration import REGISTERED_ENVS

    if task not in REGISTERED_ENVS:
        raise TaskUnavailableError(f"unknown ManiSkill task {task!r}; tasks that run here: {available_tasks()}")
    if task not in INSTRUCTIONS:
        raise TaskUnavailableError(f"ManiSkill task {task!r} has no language instructions in pirl "
                                   f"(training/envs/maniskill_tasks.py); tasks that run here: {available_tasks()}")
    missing = _missing_assets(task)
    if missing:
        raise TaskUnavailableError(
            f"ManiSkill task {task!r} needs assets that are not on this machine: {missing}. Download them where "
            f"there is network (python -m mani_skill.utils.download_asset {' '.join(missing)}) and copy "
            f"~/.maniskill/data here. Tasks that run here without downloads: {available_tasks()}")
