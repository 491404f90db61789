"""PPO pieces against values computed by hand."""

import pytest
import torch

from training.ppo.losses import (
    clipped_surrogate,
    clipped_value_loss,
    explained_variance,
    gae,
    normalize_advantages,
    normalize_advantages_by_group,
)


def test_gae_on_a_known_reward_sequence():
    r = torch.tensor([[1.0], [0.0], [2.0]])
    v = torch.tensor([[0.5], [0.4], [0.3]])
    last = torch.tensor([0.2])
    adv, ret = gae(r, v, torch.zeros(3, 1), last, gamma=0.9, lam=0.8)
    # delta2 = 2 + .9*.2 - .3 = 1.88; delta1 = .9*.3 - .4 = -.13; delta0 = 1 + .9*.4 - .5 = .86
    # A2 = 1.88; A1 = -.13 + .72*1.88 = 1.2236; A0 = .86 + .72*1.2236 = 1.740992
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.740992, 1.2236, 1.88]))
    torch.testing.assert_close(ret, adv + v)


def test_gae_does_not_bootstrap_across_episode_ends():
    r = torch.tensor([[1.0], [0.0], [2.0]])
    v = torch.tensor([[0.5], [0.4], [0.3]])
    adv, _ = gae(r, v, torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([0.2]), gamma=0.9, lam=0.8)
    # the episode ends in step 1: A1 = 0 - .4 = -.4 (no bootstrap); A0 = .86 + .72*(-.4) = .572
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.572, -0.4, 1.88]))


def test_clipped_surrogate_values_and_gradients():
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0])
    ratio = torch.tensor([1.1, 1.5, 0.5, 1.1, 5.0])
    old = torch.zeros(5)
    logp = torch.log(ratio).requires_grad_(True)
    loss, stats = clipped_surrogate(logp, old, adv, clip=0.2, dual_clip=3.0)
    # per sample: -1.1 (unclipped), -1.2 (clipped), 0.8 (clipped), 1.1 (unclipped), 3.0 (dual clip)
    torch.testing.assert_close(loss, torch.tensor([-1.1, -1.2, 0.8, 1.1, 3.0]).mean())
    loss.backward()
    # d/dlogp of -A*ratio is -A*ratio where unclipped, 0 where clipped or dual-clipped; mean over 5
    torch.testing.assert_close(logp.grad, torch.tensor([-1.1, 0.0, 0.0, 1.1, 0.0]) / 5)
    assert stats["clipfrac"].item() == pytest.approx(3 / 5)


def test_ratio_one_gives_the_plain_policy_gradient_and_zero_kl():
    adv = torch.tensor([0.5, -2.0])
    logp = torch.tensor([-3.0, -1.0], requires_grad=True)
    loss, stats = clipped_surrogate(logp, logp.detach(), adv)
    loss.backward()
    torch.testing.assert_close(logp.grad, -adv / 2)
    assert stats["approx_kl"].item() == 0 and stats["clipfrac"].item() == 0


def test_value_loss_is_clipped_huber():
    returns = torch.tensor([1.0, 0.0])
    old = torch.tensor([0.0, 0.0])
    new = torch.tensor([0.5, 30.0])
    # sample 0: unclipped 0.5*(0.5)^2 = .125, clipped (0.2) 0.5*(0.8)^2 = .32 -> .32
    # sample 1: huber(30) = 10*(30 - 5) = 250; clipped 0.2 -> 0.5*0.04 = .02 -> 250
    torch.testing.assert_close(clipped_value_loss(new, old, returns, clip=0.2, huber_delta=10.0),
                               torch.tensor((0.32 + 250.0) / 2))


def test_advantage_normalization_and_explained_variance():
    a = normalize_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert abs(a.mean().item()) < 1e-6 and abs(a.std().item() - 1) < 1e-5
    t = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(t, t) == 1.0
    assert explained_variance(torch.zeros(3), t) == pytest.approx(0.0)



def test_per_task_normalization_weighs_each_task_alike():
    # task 0's advantages spread 100x wider than task 1's
    adv = torch.tensor([100.0, -100.0, 300.0, 1.0, -1.0, 3.0])
    task = torch.tensor([0, 0, 0, 1, 1, 1])
    a = normalize_advantages_by_group(adv, task)
    # each task: values (x, -x, 3x) -> mean x, deviations (0, -2x, 2x), std 2x -> (0, -1, 1)
    torch.testing.assert_close(a, torch.tensor([0.0, -1.0, 1.0, 0.0, -1.0, 1.0]))
    assert normalize_advantages(adv)[3:].std() < 0.05  # batch-wide: task 1's actions barely told apart
    lone = normalize_advantages_by_group(torch.tensor([5.0, 1.0, 3.0]), torch.tensor([0, 1, 1]))
    torch.testing.assert_close(lone, torch.tensor([0.0, -0.7071, 0.7071]), atol=1e-4, rtol=0)
