"""Readers for demonstration files users already have, yielding `Episode`s (training.data.demos):

- ManiSkill trajectories: `trajectory.h5` + `trajectory.json` as written by ManiSkill's RecordEpisode /
  replay_trajectory, with observations recorded in an RGB obs mode.
- LIBERO demos: the robomimic-style HDF5 files of the LIBERO datasets (`data/demo_i/...`).

`import_demos` turns either into a pirl dataset directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from training.data.demos import DemoWriter, Episode


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError("reading HDF5 demos needs h5py: pip install 'pirl[sim]'") from e
    return h5py


def read_maniskill_trajectories(h5_path: str | Path, camera: str | None = None) -> Iterator[Episode]:
    """Episodes of a ManiSkill trajectory file. State = agent qpos; images from `camera` (default: the only
    camera). The observation after the last action is dropped (one observation per action)."""
    from training.envs.maniskill_tasks import INSTRUCTIONS

    h5_path = Path(h5_path)
    json_path = h5_path.with_suffix(".json")
    if not json_path.exists():
        raise FileNotFoundError(f"{json_path} not found: ManiSkill writes it beside {h5_path.name}")
    info = json.loads(json_path.read_text())
    env_id = info["env_info"]["env_id"]
    instruction = INSTRUCTIONS.get(env_id, (env_id,))[0]
    with _h5py().File(h5_path, "r") as f:
        for ep in info["episodes"]:
            key = f"traj_{ep['episode_id']}"
            if key not in f:
                raise ValueError(f"{h5_path}: {key} is listed in {json_path.name} but missing from the file")
            g = f[key]
            if "obs" not in g or "sensor_data" not in g["obs"]:
                raise ValueError(f"{h5_path}: {key} has no camera observations. Replay it with images first: "
                                 f"python -m mani_skill.trajectory.replay_trajectory --traj-path {h5_path} "
                                 "--obs-mode rgb --save-traj")
            sensors = g["obs"]["sensor_data"]
            cams = [camera] if camera else list(sensors.keys())
            actions = np.asarray(g["actions"], np.float32)
            t = len(actions)
            images = {c: np.asarray(sensors[c]["rgb"][:t], np.uint8) for c in cams}
            state = np.asarray(g["obs"]["agent"]["qpos"][:t], np.float32)
            success = bool(np.asarray(g["success"]).any()) if "success" in g else bool(ep.get("success", False))
            seed = ep.get("episode_seed", ep.get("reset_kwargs", {}).get("seed", -1))
            yield Episode(env_id, instruction, int(seed if seed is not None else -1), success, images, state,
                          actions)


LIBERO_CAMERAS = {"agentview": "agentview_rgb", "wrist": "eye_in_hand_rgb"}


def read_libero_hdf5(path: str | Path) -> Iterator[Episode]:
    """Episodes of a LIBERO demo file. State = joint_states (7) + gripper_states (2); images flipped upright."""
    path = Path(path)
    with _h5py().File(path, "r") as f:
        if "data" not in f:
            raise ValueError(f"{path}: no 'data' group; not a LIBERO/robomimic demo file")
        data = f["data"]
        try:
            problem = json.loads(data.attrs["problem_info"])
            instruction = problem["language_instruction"]
        except (KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: data.attrs['problem_info'] must be JSON with a language_instruction") from e
        task = Path(str(data.attrs.get("bddl_file_name", path.stem))).stem
        demos = sorted(data.keys(), key=lambda k: int(k.split("_")[-1]))
        for i, key in enumerate(demos):
            g = data[key]
            obs = g["obs"]
            missing = [k for k in (*LIBERO_CAMERAS.values(), "joint_states", "gripper_states") if k not in obs]
            if missing:
                raise ValueError(f"{path}: {key}/obs lacks {missing}")
            images = {name: np.ascontiguousarray(np.asarray(obs[k], np.uint8)[:, ::-1])
                      for name, k in LIBERO_CAMERAS.items()}
            state = np.concatenate([obs["joint_states"], obs["gripper_states"]], axis=1).astype(np.float32)
            success = bool(np.asarray(g["dones"]).any()) if "dones" in g else True
            yield Episode(task, instruction, i, success, images, state, np.asarray(g["actions"], np.float32))


def import_demos(episodes: Iterator[Episode], out: str | Path, meta: dict) -> int:
    """Stream episodes from a reader into a pirl dataset; returns how many were written."""
    writer = DemoWriter(out, meta)
    for ep in episodes:
        writer.write(ep)
    writer.finalize()
    return writer.num_episodes
