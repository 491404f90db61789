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


def test_random_shift_moves_each_image_by_at_most_pad_pixels():
    import torch

    from training.sft import random_shift

    images = torch.zeros(64, 16, 16, 3, dtype=torch.uint8)
    images[:, 8, 8] = 255  # one bright pixel in the middle of every image
    shifted = random_shift(images, 3, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    offsets = set()
    for img in shifted:
        ys, xs = torch.nonzero(img[..., 0] == 255, as_tuple=True)
        assert len(ys) == 1  # moved, not blurred or duplicated
        dy, dx = int(ys[0]) - 8, int(xs[0]) - 8
        assert abs(dy) <= 3 and abs(dx) <= 3
        offsets.add((dy, dx))
    assert len(offsets) > 10  # each image gets its own shift
    flat = torch.full((8, 16, 16, 3), 100, dtype=torch.uint8)
    assert (random_shift(flat, 4, torch.Generator().manual_seed(1)) == 100).all()  # edge padding: no black borders
