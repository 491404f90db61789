"""SFT on the synthetic reach task with the real tiny preset: the loss falls and 8 fixed chunks are learned."""

import numpy as np
import pytest

from training.data.synthetic import make_synthetic_reach, reach_success
from training.policy.policy import Policy
from training.policy.presets import tiny
from training.sft import SFTConfig, prepare_demos, train_sft


@pytest.fixture(scope="module")
def overfit_run():
    cfg = tiny()
    data, camera = make_synthetic_reach(8, cfg.action_horizon, cfg.vision.image_size, cfg.camera_names[0], seed=3)
    obs = {"images": {camera: data.images}, "state": data.state, "instruction": data.instruction}
    policy = Policy.create(cfg, data.instruction, data.state, data.actions, seed=0)
    zero = np.zeros((8, cfg.action_horizon, cfg.action_dim), np.float32)
    before = policy.infer(obs, noise=zero)
    losses = train_sft(policy, prepare_demos(policy, obs, data.actions),
                       SFTConfig(steps=400, batch_size=8, lr=1e-3, seed=0), progress=False)
    return policy, obs, data, before, policy.infer(obs, noise=zero), losses


@pytest.mark.slow
def test_sft_loss_decreases(overfit_run):
    *_, losses = overfit_run
    assert np.isfinite(losses).all()
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:10]), (np.mean(losses[:10]), np.mean(losses[-20:]))


def test_tiny_model_overfits_eight_fixed_chunks(overfit_run):
    policy, obs, data, before, after, _ = overfit_run
    err_before, err_after = np.abs(before - data.actions).mean(), np.abs(after - data.actions).mean()
    assert err_after < 0.06 and err_before > 0.2, (err_before, err_after)
    assert reach_success(after, data.target).all()


def test_demo_actions_must_match_the_policy_horizon():
    cfg = tiny()
    data, camera = make_synthetic_reach(4, cfg.action_horizon, cfg.vision.image_size, cfg.camera_names[0])
    policy = Policy.create(cfg, data.instruction, data.state, data.actions)
    obs = {"images": {camera: data.images}, "state": data.state, "instruction": data.instruction}
    with pytest.raises(ValueError, match=r"demo actions must be \(N, 8, 3\)"):
        prepare_demos(policy, obs, data.actions[:, :5])
