"""The demo dataset format: streaming writes, resume after a crash, SFT samples, and the two foreign readers
(on small files written here in ManiSkill's and LIBERO's layouts)."""

import json

import h5py
import numpy as np
import pytest

from core.normalize import NormStats
from training.data.demos import DemoDataset, DemoWriter, Episode
from training.data.readers import import_demos, read_libero_hdf5, read_maniskill_trajectories


def _episode(seed: int, length: int = 6, success: bool = True) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode("PushCube-v1", "push the cube", seed, success,
                   {"base_camera": rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8)},
                   rng.standard_normal((length, 9)).astype(np.float32),
                   rng.uniform(-1, 1, (length, 4)).astype(np.float32))


def test_write_read_and_norm_stats(tmp_path):
    w = DemoWriter(tmp_path / "d", {"backend": "maniskill", "task": "PushCube-v1"})
    eps = [_episode(s, length=5 + s, success=s != 1) for s in range(3)]
    for ep in eps:
        w.write(ep)
    w.finalize()
    data = DemoDataset(tmp_path / "d")
    assert len(data) == 3 and len(DemoDataset(tmp_path / "d", successful_only=True)) == 2
    back = data.episode(2)
    np.testing.assert_array_equal(back.images["base_camera"], eps[2].images["base_camera"])
    np.testing.assert_array_equal(back.actions, eps[2].actions)
    assert back.instruction == "push the cube" and back.seed == 2
    stats = NormStats.load(tmp_path / "d")
    all_actions = np.concatenate([e.actions for e in eps])
    np.testing.assert_allclose(stats.actions.mean, all_actions.mean(0), atol=1e-6)
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["episodes"] == 3 and meta["steps"] == 18


def test_resume_after_a_crash_drops_only_the_torn_line(tmp_path):
    root = tmp_path / "d"
    w = DemoWriter(root, {"task": "PushCube-v1"})
    w.write(_episode(0))
    w.write(_episode(1))
    with open(root / "index.jsonl", "a") as f:
        f.write('{"episode": 2, "file": "episo')  # the process died mid-line
    with pytest.raises(FileExistsError, match="already holds 2 episodes.*--resume"), pytest.warns(UserWarning):
        DemoWriter(root, {"task": "PushCube-v1"})
    with pytest.warns(UserWarning, match="truncated last line"):
        resumed = DemoWriter(root, {"task": "PushCube-v1"}, resume=True)
    assert resumed.done_seeds() == {0, 1}
    resumed.write(_episode(2))
    assert [r["seed"] for r in DemoDataset(root).records] == [0, 1, 2]
    with pytest.raises(ValueError, match="differs in \\['task'\\]"):
        DemoWriter(root, {"task": "PullCube-v1"}, resume=True)


def test_chunk_samples_pad_past_the_episode_end(tmp_path):
    w = DemoWriter(tmp_path / "d", {})
    ep = _episode(0, length=4)
    w.write(ep)
    s = DemoDataset(tmp_path / "d").chunk_samples(horizon=3)
    assert s["actions"].shape == (4, 3, 4) and s["state"].shape == (4, 9) and len(s["instruction"]) == 4
    np.testing.assert_array_equal(s["actions"][1], ep.actions[1:4])
    np.testing.assert_array_equal(s["actions"][3], np.repeat(ep.actions[3:4], 3, axis=0))
    assert s["action_valid"][3].tolist() == [True, False, False]


def test_mismatched_episode_arrays_are_refused():
    with pytest.raises(ValueError, match="disagree on length"):
        Episode("t", "i", 0, True, {"c": np.zeros((3, 2, 2, 3), np.uint8)}, np.zeros((4, 2)), np.zeros((4, 1)))


def _write_maniskill_file(path, episodes=2, t=5):
    rng = np.random.default_rng(0)
    info = {"env_info": {"env_id": "PickCube-v1", "max_episode_steps": 50,
                         "env_kwargs": {"obs_mode": "rgb", "control_mode": "pd_ee_delta_pos"}},
            "episodes": []}
    with h5py.File(path, "w") as f:
        for i in range(episodes):
            g = f.create_group(f"traj_{i}")
            g["actions"] = rng.uniform(-1, 1, (t, 4)).astype(np.float32)
            g["terminated"] = np.arange(t) == t - 1
            g["truncated"] = np.zeros(t, bool)
            g["success"] = np.arange(t) == t - 1
            g["obs/agent/qpos"] = rng.standard_normal((t + 1, 9)).astype(np.float32)
            g["obs/agent/qvel"] = rng.standard_normal((t + 1, 9)).astype(np.float32)
            g["obs/sensor_data/base_camera/rgb"] = rng.integers(0, 256, (t + 1, 16, 16, 3), dtype=np.uint8)
            info["episodes"].append({"episode_id": i, "episode_seed": 100 + i, "control_mode": "pd_ee_delta_pos",
                                     "elapsed_steps": t, "success": True})
    path.with_suffix(".json").write_text(json.dumps(info))


def test_maniskill_trajectory_reader(tmp_path):
    path = tmp_path / "trajectory.h5"
    _write_maniskill_file(path)
    eps = list(read_maniskill_trajectories(path))
    assert len(eps) == 2
    e = eps[1]
    assert e.task == "PickCube-v1" and e.seed == 101 and e.success and e.length == 5
    assert e.images["base_camera"].shape == (5, 16, 16, 3) and e.state.shape == (5, 9)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(e.images["base_camera"], f["traj_1/obs/sensor_data/base_camera/rgb"][:5])
    n = import_demos(iter(eps), tmp_path / "imported", {"backend": "maniskill", "task": "PickCube-v1"})
    assert n == 2 and len(DemoDataset(tmp_path / "imported")) == 2


def test_maniskill_reader_explains_files_without_images(tmp_path):
    path = tmp_path / "trajectory.h5"
    with h5py.File(path, "w") as f:
        f["traj_0/actions"] = np.zeros((3, 4), np.float32)
    path.with_suffix(".json").write_text(json.dumps({"env_info": {"env_id": "PickCube-v1"},
                                                     "episodes": [{"episode_id": 0}]}))
    with pytest.raises(ValueError, match="no camera observations.*replay_trajectory"):
        list(read_maniskill_trajectories(path))


def test_libero_hdf5_reader_flips_images_upright(tmp_path):
    path = tmp_path / "pick_up_the_black_bowl_demo.hdf5"
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": "pick up the black bowl"})
        data.attrs["bddl_file_name"] = "libero/bddl_files/libero_spatial/pick_up_the_black_bowl.bddl"
        for i in range(2):
            g = data.create_group(f"demo_{i}")
            g["actions"] = rng.uniform(-1, 1, (4, 7)).astype(np.float32)
            g["dones"] = np.array([0, 0, 0, 1], np.uint8)
            g["obs/agentview_rgb"] = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
            g["obs/eye_in_hand_rgb"] = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
            g["obs/joint_states"] = rng.standard_normal((4, 7))
            g["obs/gripper_states"] = rng.standard_normal((4, 2))
    eps = list(read_libero_hdf5(path))
    assert [e.instruction for e in eps] == ["pick up the black bowl"] * 2
    e = eps[0]
    assert e.task == "pick_up_the_black_bowl" and e.state.shape == (4, 9) and e.success
    with h5py.File(path, "r") as f:
        stored = np.asarray(f["data/demo_0/obs/agentview_rgb"])
        np.testing.assert_array_equal(e.images["agentview"], stored[:, ::-1])
        np.testing.assert_array_equal(e.images["wrist"][:, 0], np.asarray(f["data/demo_0/obs/eye_in_hand_rgb"])[:, -1])
