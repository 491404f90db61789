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
