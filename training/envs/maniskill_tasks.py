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


class TaskUnavailableError(ValueError):
    pass


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
    import mani_skill.envs  # noqa: F401  (registers the tasks)
    from mani_skill.utils.registration import REGISTERED_ENVS

    return [t for t in INSTRUCTIONS if t in REGISTERED_ENVS and not _missing_assets(t)]


def check_task(task: str) -> None:
    """Raise a clear error, never a download prompt, for a task that cannot run here."""
    import mani_skill.envs  # noqa: F401
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
