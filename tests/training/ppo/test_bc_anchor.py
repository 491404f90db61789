"""The behaviour-cloning term of PPO (`bc_coef`): it trains the actor on the demos, and only when asked."""

import numpy as np
import pytest
import torch

from tests.conftest import micro_config
from tests.training.ppo.test_ppo_learns import BanditEnv
from training.policy.config import VisionConfig
from training.policy.policy import Policy
from training.ppo.config import PPOConfig
from training.ppo.rollout import RolloutCollector
from training.ppo.train import PPOLearner
from training.sft import prepare_demos, validation_loss


def _setup():
    cfg = micro_config(camera_names=("base",), state_dim=4, action_dim=2, action_horizon=3,
                       vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2))
    rng = np.random.default_rng(0)
    policy = Policy.create(cfg, ["reach the target"], rng.standard_normal((32, 4)), rng.uniform(-1, 1, (32, 3, 2)))
    demo_obs = {"images": {"base": rng.integers(0, 255, (24, 32, 32, 3), dtype=np.uint8)},
                "state": rng.standard_normal((24, 4)).astype(np.float32), "instruction": ["reach the target"] * 24}
    demos = prepare_demos(policy, demo_obs, np.tile([0.7, -0.3], (24, 3, 1)).astype(np.float32))
    return policy, demos


def _zero_advantage_update(policy: Policy, cfg: PPOConfig, demos) -> dict:
    """One update on a rollout whose rewards and values are all 0: the advantages vanish, so the policy loss
    has no gradient and only the BC term can move the actor."""
    learner = PPOLearner(policy, cfg, bc_demos=demos)
    ro = RolloutCollector(BanditEnv(), policy, cfg.sampler, num_executed=1).collect(cfg.rollout_steps, 0.5)
    ro.rewards.zero_()
    ro.values.zero_()
    ro.last_value.zero_()
    return learner.update(ro, cfg.sampler.noise_level)


@pytest.mark.parametrize("bc_coef", [0.0, 1.0])
def test_bc_term_alone_moves_the_actor_toward_the_demos(bc_coef):
    policy, demos = _setup()
    before = validation_loss(policy, demos)
    expert = [p.detach().clone() for p in policy.model.expert_blocks.parameters()]
    cfg = PPOConfig(num_executed=1, rollout_steps=4, epochs=4, minibatch_size=8, lr=3e-3, critic_warmup_updates=0,
                    target_kl=None, entropy_coef=0.0, bc_coef=bc_coef, bc_batch_size=8)
    stats = _zero_advantage_update(policy, cfg, demos)
    after = validation_loss(policy, demos)
    moved = any(not torch.equal(a, b) for a, b in zip(expert, policy.model.expert_blocks.parameters(), strict=True))
    if bc_coef:
        assert moved and after < before - 0.05, f"demo loss {before:.3f} -> {after:.3f}"
        assert np.isfinite(stats["bc_loss"]) and stats["actor_grad_norm"] > 0
    else:
        assert not moved and after == before and "bc_loss" not in stats


def test_bc_coef_without_demos_is_a_clear_error():
    policy, _ = _setup()
    with pytest.raises(ValueError, match="bc_data"):
        PPOLearner(policy, PPOConfig(bc_coef=0.5))
