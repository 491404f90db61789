"""PPO must actually improve a policy: a one-step contextual bandit whose reward is known in closed form."""

import numpy as np
import pytest
import torch

from tests.conftest import micro_config
from training.envs.base import ChunkStep, EpisodeStats
from training.policy.config import SamplerConfig, VisionConfig
from training.policy.policy import Policy
from training.ppo.config import PPOConfig
from training.ppo.rollout import RolloutCollector
from training.ppo.train import PPOLearner

TARGET = np.array([0.7, -0.3])


class BanditEnv:
    """Test double for a simulator: every chunk is a one-step episode; reward = -mean |action - TARGET|."""

    num_envs, action_dim, state_dim = 8, 2, 4
    tasks = ["bandit"] * 8
    camera_names = ("base",)

    def _obs(self) -> dict:
        return {"images": {"base": np.zeros((8, 32, 32, 3), np.uint8)}, "state": np.zeros((8, 4), np.float32),
                "instruction": ["reach the target"] * 8}

    def reset(self, seed: int = 0) -> dict:
        return self._obs()

    def step(self, chunk: np.ndarray) -> ChunkStep:
        r = -np.abs(chunk[:, 0, :] - TARGET).mean(1).astype(np.float32)
        eps = [EpisodeStats("bandit", "reach the target", 0, 1, float(x), bool(x > -0.1)) for x in r]
        return ChunkStep(self._obs(), r, np.ones(8, bool), np.zeros(8, bool), r > -0.1, np.ones(8, int), [None] * 8,
                         eps)


GPU = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="needs a CUDA device (none visible to torch here)"))


@pytest.mark.parametrize("device", ["cpu", GPU])
@pytest.mark.parametrize("method", ["flow_noise", "flow_sde", "fpo"])
def test_ppo_improves_the_expected_reward(method, device):
    """On the GPU, rollouts (chains drawn with a CUDA generator) and updates both run there."""
    cfg = micro_config(camera_names=("base",), state_dim=4, action_dim=2, action_horizon=3,
                       vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2))
    rng = np.random.default_rng(0)
    policy = Policy.create(cfg, ["reach the target"], rng.standard_normal((32, 4)), rng.uniform(-1, 1, (32, 3, 2)))
    policy.model.to(device)
    ppo = PPOConfig(sampler=SamplerConfig(method=method), num_executed=1, rollout_steps=4, epochs=4, minibatch_size=16,
                    lr=1e-3, critic_warmup_updates=2, target_kl=None, entropy_coef=0.0)
    learner = PPOLearner(policy, ppo)
    collector = RolloutCollector(BanditEnv(), policy, ppo.sampler, num_executed=1)
    rewards = []
    for _ in range(40):
        ro = collector.collect(ppo.rollout_steps, ppo.sampler.noise_level)
        assert ro.chains.device.type == device and ro.rewards.device.type == device
        learner.update(ro, ppo.sampler.noise_level)
        rewards.append(float(ro.rewards.mean()))
    first, last = np.mean(rewards[:5]), np.mean(rewards[-5:])
    assert last > first + 0.1, f"{method}: mean reward {first:.3f} -> {last:.3f}"
