"""Checkpoints: exact round trip, atomic replacement, no unpickling, and failures that name the file."""

import json
import pickle

import numpy as np
import pytest
import torch

import training.policy.checkpoint as ckpt_mod
from core.action_space import ActionSpace
from tests.conftest import micro_config
from training.policy.checkpoint import CheckpointError, checkpoint_hash, load_checkpoint, save_checkpoint
from training.policy.policy import Policy, fake_obs


def _policy(seed=0, **overrides):
    cfg = micro_config(**overrides)
    rng = np.random.default_rng(seed)
    return Policy.create(cfg, ["pick up the cube"], rng.standard_normal((20, 4)).astype(np.float32),
                         rng.standard_normal((20, cfg.action_horizon, 3)).astype(np.float32), seed=seed,
                         action_space=ARM)


ARM = ActionSpace(kind="joint_position", names=("shoulder", "elbow", "gripper"), units="rad",
                  gripper="last dim, 0 = open, 1 = closed", control_hz=15.0)


def test_round_trip_gives_identical_actions(tmp_path):
    policy = _policy()
    path = save_checkpoint(tmp_path / "ckpt", policy, metadata={"step": 7})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "norm_stats.json",
                                                      "tokenizer.json"]
    loaded = load_checkpoint(path, expect_config=policy.cfg)
    obs = fake_obs(policy.cfg, 2, state_dim=4)
    noise = np.random.default_rng(0).standard_normal((2, policy.cfg.action_horizon, policy.cfg.action_dim))
    noise = noise.astype(np.float32)
    np.testing.assert_array_equal(loaded.infer(obs, noise), policy.infer(obs, noise))
    for k, v in policy.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k
    assert json.loads((path / "config.json").read_text())["metadata"] == {"step": 7}
    assert len(checkpoint_hash(path)) == 64
    assert loaded.action_space == ARM


def test_action_space_must_fit_the_actions(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt", _policy())
    cfg = json.loads((path / "config.json").read_text())
    cfg["action_space"]["names"] = ["only", "two"]
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"action space joint_position has 2 dims.*norm stats have 3"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="unknown action kind"):
        ActionSpace(kind="torque", names=("a",))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ckpt", _policy())

    def refuse(*a, **k):
        raise AssertionError("unpickling during checkpoint load")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_checkpoint(path)


def test_save_replaces_atomically_and_a_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    first, second = _policy(seed=0), _policy(seed=1)
    path = save_checkpoint(tmp_path / "ckpt", first)
    old_hash = checkpoint_hash(path)
    save_checkpoint(tmp_path / "ckpt", second)
    assert checkpoint_hash(path) != old_hash
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "no temporary or backup directories left behind"

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.NormStats, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ckpt", first)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert checkpoint_hash(path) != old_hash  # still the second, complete checkpoint
    load_checkpoint(path)


def test_truncated_weights_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt", _policy())
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    message = r"model\.safetensors is \d+ bytes but config\.json recorded \d+.*truncated"
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_weights_from_another_config_are_refused(tmp_path):
    a = save_checkpoint(tmp_path / "a", _policy())
    b = save_checkpoint(tmp_path / "b", _policy(action_dim=7))
    (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="truncated or from another checkpoint"):
        load_checkpoint(a)
    # Even with the manifest doctored to match, the tensors' shapes give it away.
    cfg = json.loads((a / "config.json").read_text())
    cfg["files"] = json.loads((b / "config.json").read_text())["files"]
    (a / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"does not match the config.*shape mismatches"):
        load_checkpoint(a)


def test_expected_config_mismatch_lists_the_differences(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt", _policy())
    with pytest.raises(CheckpointError, match=r"action_horizon: checkpoint 5 vs expected 9"):
        load_checkpoint(path, expect_config=micro_config(action_horizon=9))


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "config.json").write_text('{"format": "pirl-chec'), r"config\.json is not valid JSON"),
    (lambda p: (p / "config.json").unlink(), r"config\.json is missing"),
    (lambda p: (p / "norm_stats.json").write_text("{}"), r"norm_stats\.json"),
    (lambda p: (p / "tokenizer.json").unlink(), r"no tokenizer in"),
    (lambda p: (p / "model.safetensors").unlink(), r"model\.safetensors is missing"),
])
def test_damaged_checkpoints_fail_with_the_file_named(tmp_path, damage, message):
    path = save_checkpoint(tmp_path / "ckpt", _policy())
    damage(path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
