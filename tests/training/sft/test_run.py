"""`pirl-train sft` with its periodic success evaluation in the real ManiSkill simulator."""

import json

import numpy as np
import pytest

from core.action_space import ActionSpace
from training.data.demos import DemoWriter, Episode
from training.sft.config import SFTConfig
from training.sft.run import run_sft


def _tiny_pushcube_demos(root):
    rng = np.random.default_rng(0)
    space = ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper"))
    w = DemoWriter(root, {"task": "PushCube-v1", "action_space": space.to_dict()})
    for seed in range(2):
        w.write(Episode("PushCube-v1", "push the cube to the goal", seed, True,
                        {"base_camera": rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)},
                        rng.standard_normal((6, 9)).astype(np.float32),
                        rng.uniform(-1, 1, (6, 4)).astype(np.float32)))
    w.finalize()


def test_sft_evaluates_in_sim_every_n_steps_and_at_the_end(tmp_path):
    _tiny_pushcube_demos(tmp_path / "demos")
    out = tmp_path / "sft"
    run_sft(SFTConfig(data=(str(tmp_path / "demos"),), out=str(out), steps=5, batch_size=4, val_episodes=0,
                         eval_every=2, eval_episodes_per_env=1, eval_envs=1, eval_max_episode_steps=10),
            progress=False)
    lines = [json.loads(x) for x in (out / "sft_evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 5]  # every 2 steps, and the last one
    for r in lines:
        assert r["n"] == 1 and r["success"] in (0.0, 1.0) and 0 <= r["ci95"][0] <= r["ci95"][1] <= 1
    metrics = json.loads((out / "sft_metrics.json").read_text())
    assert [r["step"] for r in metrics["sim_success"]] == [2, 4, 5]


@pytest.mark.slow
def test_the_demo_camera_travels_with_the_dataset_and_checkpoint(tmp_path):
    """Demos recorded through a camera file: the dataset and the SFT checkpoint record the camera, and PPO's env
    (built from the checkpoint alone) renders the very frames the demos saw."""
    pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")
    from core.camera import CameraSpec, look_at
    from training.data.collect import CollectConfig, collect
    from training.data.demos import DemoDataset
    from training.policy.checkpoint import load_checkpoint
    from training.ppo.config import PPORunConfig
    from training.ppo.run import _tasks_and_env

    cam = look_at("base_camera", np.array([1.1, 0.0, 0.5]), np.array([0.6, 0.0, 0.0]), 64, 64, 50.0)
    cam.save(tmp_path / "camera.yaml")
    collect(CollectConfig(task="PushCube-v1", episodes=1, out=str(tmp_path / "demos"), workers=1, image_size=32,
                          camera_file=str(tmp_path / "camera.yaml")), progress=False)
    data = DemoDataset(tmp_path / "demos")
    recorded = CameraSpec.from_dict(data.meta["camera"])
    assert (recorded.width, recorded.height) == (32, 32)  # scaled to the dataset's image size
    np.testing.assert_allclose(recorded.K[0, 0], cam.K[0, 0] / 2)
    np.testing.assert_allclose(recorded.T_base_camera, cam.T_base_camera)

    out = tmp_path / "sft"
    run_sft(SFTConfig(data=(str(tmp_path / "demos"),), out=str(out), steps=2, batch_size=4, val_episodes=0),
            progress=False)
    meta = json.loads((out / "checkpoint" / "config.json").read_text())["metadata"]
    assert meta["camera"] == data.meta["camera"]

    policy = load_checkpoint(out / "checkpoint")
    tasks, camera, env = _tasks_and_env(PPORunConfig(init=str(out / "checkpoint"), num_envs=1), policy,
                                        str(out / "checkpoint"))
    try:
        first = env.reset(seed=data.records[0]["seed"])["images"]["base_camera"][0]
    finally:
        env.close()
    assert tasks == ("PushCube-v1",) and camera == data.meta["camera"]
    demo_first = data.episode(0).images["base_camera"][0]
    assert np.abs(first.astype(int) - demo_first.astype(int)).mean() < 1.0
    default_view = np.abs(first.astype(int) - _default_camera_frame(data.records[0]["seed"]).astype(int)).mean()
    assert default_view > 10  # and the camera file did move the camera


def _default_camera_frame(seed: int) -> np.ndarray:
    from training.envs.factory import EnvSpec, make_vec_env

    with make_vec_env(EnvSpec(tasks=("PushCube-v1",), num_envs=1, image_size=32)) as env:
        return env.reset(seed=seed)["images"]["base_camera"][0]


def test_sft_on_a_tiny_dataset_writes_a_checkpoint_and_a_validation_curve(tmp_path):
    from training.policy.checkpoint import load_checkpoint

    rng = np.random.default_rng(0)
    space = ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper"))
    w = DemoWriter(tmp_path / "demos", {"task": "PushCube-v1", "action_space": space.to_dict()})
    for seed in range(3):
        w.write(Episode("PushCube-v1", "push the cube to the goal", seed, True,
                        {"base_camera": rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)},
                        rng.standard_normal((6, 9)).astype(np.float32), rng.uniform(-1, 1, (6, 4)).astype(np.float32)))
    w.finalize()
    ckpt = run_sft(SFTConfig(data=(str(tmp_path / "demos"),), out=str(tmp_path / "sft"), steps=4, batch_size=4,
                             val_episodes=1, val_every=2, value_source="prefix"), progress=False)
    policy = load_checkpoint(ckpt)
    assert policy.cfg.camera_names == ("base_camera",) and policy.cfg.value_source == "prefix"
    assert policy.action_space == space and policy.norm_stats.actions.dim == 4
    metrics = json.loads((tmp_path / "sft" / "sft_metrics.json").read_text())
    assert [s for s, _ in metrics["val_loss"]] == [2, 4] and metrics["episodes"] == 2
    assert len((tmp_path / "sft" / "sft_losses.jsonl").read_text().splitlines()) == 4
    saved = json.loads((ckpt / "config.json").read_text())["metadata"]["sft"]
    assert saved["steps"] == 4 and saved["data"] == [str(tmp_path / "demos")]  # the resolved config travels
