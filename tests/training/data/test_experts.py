"""Scripted experts on the real simulators, and `pirl-train demos` end to end."""

import json

import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")

from pipeline.cli import main  # noqa: E402
from training.data.collect import CollectConfig, make_env_and_expert, run_episode  # noqa: E402
from training.data.demos import DemoDataset  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("task", ["PickCube-v1", "PushCube-v1", "PullCube-v1", "StackCube-v1"])
def test_maniskill_expert_succeeds(task):
    env, expert = make_env_and_expert(CollectConfig(task=task, image_size=32))
    try:
        episodes = [run_episode(env, expert, seed) for seed in (0, 1, 2)]
    finally:
        env.close()
    assert all(e.success for e in episodes), [(e.seed, e.length) for e in episodes]
    e = episodes[0]
    assert e.images["base_camera"].shape == (e.length, 32, 32, 3) and e.actions.shape == (e.length, 4)
    assert e.images["base_camera"].std() > 5  # real renders, not blank frames
    assert np.abs(e.actions[:, :3]).max() <= 1.0


@pytest.mark.slow
def test_demos_cli_streams_a_dataset_and_resumes(tmp_path, capsys):
    out = tmp_path / "push"
    args = ["demos", "--task", "PushCube-v1", "--episodes", "2", "--out", str(out), "--workers", "2",
            "--image-size", "32"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["success_rate"] == 1.0
    # seed order, whichever worker finishes first: SFT batches (and so the demo's results) repeat run to run
    assert [r["seed"] for r in DemoDataset(out).records] == [0, 1]
    with pytest.raises(FileExistsError, match="--resume"):
        main(args)
    assert main([*args[:4], "3", *args[5:], "--resume", "true"]) == 0
    data = DemoDataset(out)
    assert [r["seed"] for r in data.records] == [0, 1, 2]
    assert (out / "norm_stats.json").exists()
    samples = data.chunk_samples(horizon=4)
    assert samples["images"]["base_camera"].shape[1:] == (32, 32, 3)


def test_unknown_expert_task_is_refused():
    with pytest.raises(ValueError, match="no scripted expert for 'PlaceSphere-v1'"):
        make_env_and_expert(CollectConfig(task="PlaceSphere-v1"))


def test_a_slower_expert_takes_longer_and_still_succeeds():
    lengths = {}
    for speed in (1.0, 0.35):
        env, expert = make_env_and_expert(CollectConfig(task="PushCube-v1", image_size=32, expert_speed=speed))
        try:
            ep = run_episode(env, expert, seed=1000)
        finally:
            env.close()
        assert ep.success
        lengths[speed] = len(ep.actions)
        assert np.abs(ep.actions[:, :3]).max() <= speed + 1e-6  # never steps further than its speed allows
    assert lengths[0.35] > lengths[1.0]
    with pytest.raises(ValueError, match=r"expert speed must be in \(0, 1\]"):
        make_env_and_expert(CollectConfig(task="PushCube-v1", expert_speed=1.5))


@pytest.mark.parametrize("task", ["PushCube-v1", "PullCube-v1"])
def test_joint_position_demos_replay_to_success_under_the_joint_controller(task):
    """control_mode pd_joint_pos: the expert plans in Cartesian space and the dataset records the joint targets it
    produced (+ finger in m); replaying those targets under ManiSkill's pd_joint_pos controller from the same
    seed succeeds too, so the recorded actions mean what a joint-position robot will do with them."""
    from training.envs.maniskill import ManiSkillChunkEnv, ManiSkillConfig

    env, expert = make_env_and_expert(CollectConfig(task=task, image_size=32, control_mode="pd_joint_pos"))
    try:
        demo = run_episode(env, expert, 5, joint_actions=True)
    finally:
        env.close()
    assert demo.success and demo.actions.shape == (demo.length, 8)
    assert np.all(demo.actions[:, 7] >= -0.0101) and np.all(demo.actions[:, 7] <= 0.0401)  # finger in m
    replay = ManiSkillChunkEnv(task, ManiSkillConfig(tasks=(task,), num_envs=1, image_size=(32, 32),
                                                     control_mode="pd_joint_pos", render=False))
    try:
        replay.sim_reset(5)
        np.testing.assert_allclose(replay.sim_state(), demo.state[0], atol=1e-5)  # the same start
        success = False
        for action in demo.actions:
            _, s, term, trunc = replay.sim_step(action)
            success |= s
            if term or trunc:
                break
    finally:
        replay.close()
    assert success


def test_joint_position_datasets_declare_their_action_space(tmp_path):
    from core.action_space import ActionSpace
    from training.data.collect import _dataset_meta

    space = ActionSpace.from_dict(_dataset_meta(CollectConfig(task="PushCube-v1", control_mode="pd_joint_pos"))[
        "action_space"])
    assert space.kind == "joint_position" and space.names[-1] == "panda_finger_joint1" and space.dim == 8
    assert space.lower is not None and space.upper is not None and space.lower[3] < space.upper[3] < 0
    with pytest.raises(ValueError, match="control_mode must be"):
        _dataset_meta(CollectConfig(task="PushCube-v1", control_mode="pd_ee_pose"))
