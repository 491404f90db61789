"""Polyak averaging of the actor's weights (`ema_decay`): what the average holds after warm-up and actor
updates, that frozen and critic weights stay out of it, and that it survives a save and load."""

import pytest
import torch

from tests.training.ppo.test_bc_anchor import _setup
from tests.training.ppo.test_ppo_learns import BanditEnv
from training.ppo.config import PPOConfig
from training.ppo.rollout import RolloutCollector
from training.ppo.train import PPOLearner


def _cfg(**kw) -> PPOConfig:
    base = dict(num_executed=1, rollout_steps=4, epochs=2, minibatch_size=4, lr=3e-3, critic_warmup_updates=1,
                target_kl=None, ema_decay=0.75, updates=3)
    return PPOConfig(**(base | kw))


def _update(learner: PPOLearner, cfg: PPOConfig) -> None:
    ro = RolloutCollector(BanditEnv(), learner.policy, cfg.sampler, num_executed=1,
                          seed=learner.updates_done).collect(cfg.rollout_steps, cfg.sampler.noise_level)
    learner.update(ro, cfg.sampler.noise_level)


def test_average_follows_the_actor_after_warmup():
    policy, _ = _setup()
    cfg = _cfg()
    learner = PPOLearner(policy, cfg)
    named = dict(policy.model.named_parameters())
    sft = {n: p.detach().clone() for n, p in named.items()}
    assert learner.ema and all(named[n].requires_grad for n in learner.ema)
    assert not any(n.startswith("value_head") for n in learner.ema), "the critic is not averaged"
    assert not any(n in learner.ema for n, p in named.items() if not p.requires_grad), "frozen prefix stays out"

    _update(learner, cfg)  # critic warm-up: the actor does not move, nor does its average
    assert all(torch.equal(learner.ema[n], sft[n]) for n in learner.ema)

    expected = {n: sft[n].clone() for n in learner.ema}
    for _ in range(2):
        _update(learner, cfg)
        for n in expected:  # avg <- 0.75 avg + 0.25 weights, after each actor update
            expected[n] = 0.75 * expected[n] + 0.25 * named[n].detach()
    moved = [n for n in expected if not torch.equal(named[n], sft[n])]
    assert moved, "the actor trained"
    for n in expected:
        torch.testing.assert_close(learner.ema[n], expected[n], rtol=0, atol=1e-6)
    n = moved[0]
    assert not torch.allclose(learner.ema[n], named[n]) and not torch.allclose(learner.ema[n], sft[n])

    averaged = learner.averaged_weights()
    state = policy.model.state_dict()
    assert averaged.keys() == state.keys()
    assert torch.equal(averaged[n], learner.ema[n])
    frozen = next(k for k in state if k not in learner.ema)
    assert torch.equal(averaged[frozen], state[frozen])


def test_average_round_trips_through_learner_state():
    policy, _ = _setup()
    cfg = _cfg(critic_warmup_updates=0)
    learner = PPOLearner(policy, cfg)
    _update(learner, cfg)
    saved = learner.state_dict()
    fresh_policy, _ = _setup()
    fresh = PPOLearner(fresh_policy, cfg)
    assert not all(torch.equal(fresh.ema[k], learner.ema[k]) for k in learner.ema)
    fresh.load_state_dict(saved)
    assert all(torch.equal(fresh.ema[k], learner.ema[k]) for k in learner.ema)


def test_bad_decay_and_missing_average_are_clear_errors():
    with pytest.raises(ValueError, match="ema_decay must be in"):
        PPOConfig(ema_decay=1.0)
    policy, _ = _setup()
    learner = PPOLearner(policy, PPOConfig())
    with pytest.raises(ValueError, match="set ema_decay"):
        learner.averaged_weights()
