"""RLinf's PPO plumbing as options (docs/training.md, "RLinf's choices"), each against hand-computed values:
the token-level ratio, time-limit bootstrapping, advantages normalised once over the rollout (across ranks),
AdamW with weight decay, one global gradient clip, the critic on the steps' mean features, and the entropy
over the executed steps' real dims."""

import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import micro_config
from training.envs.base import ChunkStep, EpisodeStats
from training.policy.config import SamplerConfig, VisionConfig
from training.policy.policy import Policy
from training.policy.sampling import chain_log_probs, critic_value, element_mask, reduce_log_prob, sample_chain
from training.ppo.config import PPOConfig
from training.ppo.critic import PrivilegedCritic
from training.ppo.losses import normalize_advantages_across_ranks
from training.ppo.rollout import RolloutCollector
from training.ppo.train import PPOLearner


def _policy(**overrides) -> Policy:
    cfg = micro_config(camera_names=("base",), state_dim=4, action_dim=3, action_horizon=3,
                       vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2),
                       **overrides)
    rng = np.random.default_rng(0)
    # 2 real action dims of the 3 the model carries: the third is padding
    return Policy.create(cfg, ["push it"], rng.standard_normal((32, 4)), rng.uniform(-1, 1, (32, 3, 2)))


def test_token_level_ratio_averages_each_element_over_the_counted_terms():
    lp = torch.arange(1.0, 1 + 3 * 2 * 2).reshape(1, 3, 2, 2)  # (B, K + 1 = 3, H = 2, A = 2): 1..12
    terms = torch.tensor([[True, True, False]])
    mask = element_mask(2, 2, num_executed=1, real_action_dim=1)  # only [step 0, dim 0] counts
    token = reduce_log_prob(lp, terms, mask, "token_level")
    assert token.shape == (1, 2, 2)
    assert token[0, 0, 0] == (1 + 5) / 2 and token.sum() == (1 + 5) / 2  # RLinf: the K + 1 terms averaged
    assert reduce_log_prob(lp, terms, mask, "element")[0, 0, 0] == 1 + 5  # pirl's element: summed
    assert reduce_log_prob(lp, terms, mask, "mean_steps")[0] == (1 + 5) / 2  # chunk_level: one per chunk


class TimeLimitEnv:
    """Test double for a simulator with 3 envs: env 0 hits its time limit, env 1 terminates, env 2 goes on;
    each chunk earns 1.0 and observations carry privileged state."""

    num_envs, action_dim, state_dim, privileged_dim = 3, 2, 4, 5
    tasks = ["push"] * 3
    camera_names = ("base",)

    def _obs(self, fill: float) -> dict:
        return {"images": {"base": np.zeros((3, 32, 32, 3), np.uint8)}, "state": np.zeros((3, 4), np.float32),
                "instruction": ["push it"] * 3, "privileged": np.full((3, 5), fill, np.float32)}

    def reset(self, seed: int = 0) -> dict:
        return self._obs(0.0)

    def step(self, chunk: np.ndarray) -> ChunkStep:
        final = self._obs(7.0)
        finals = [{"images": {"base": final["images"]["base"][i]}, "state": final["state"][i],
                   "instruction": "push it", "privileged": final["privileged"][i]} for i in range(2)] + [None]
        episodes = [EpisodeStats("push", "push it", 0, 5, 1.0, False)] * 2 + [None]
        return ChunkStep(self._obs(0.0), np.ones(3, np.float32), np.array([False, True, False]),
                         np.array([True, False, False]), np.zeros(3, bool), np.full(3, 2), finals, episodes)


def _constant_critic(value: float) -> PrivilegedCritic:
    critic = PrivilegedCritic(5, hidden=8)
    with torch.no_grad():
        critic.net[-1].weight.zero_()
        critic.net[-1].bias.fill_(value)
    return critic


def test_a_time_limit_cut_earns_the_discounted_value_of_its_final_observation():
    policy = _policy()
    collector = RolloutCollector(TimeLimitEnv(), policy, SamplerConfig(method="flow_noise"), num_executed=2,
                                 critic=_constant_critic(2.0))
    cut = collector.collect(1, 0.5, bootstrap_gamma=0.9)
    assert cut.rewards[0].tolist() == pytest.approx([1.0 + 0.9 * 2.0, 1.0, 1.0])  # only the time-limit cut
    assert cut.truncated is not None and cut.truncated[0].tolist() == [True, False, False]
    assert collector.collect(1, 0.5).rewards[0].tolist() == [1.0, 1.0, 1.0]  # off: a cut is an end


def test_a_time_limit_cut_with_the_policy_critic_reads_the_final_observation():
    policy = _policy(value_source="prefix")
    collector = RolloutCollector(TimeLimitEnv(), policy, SamplerConfig(method="flow_noise"), num_executed=2)
    with torch.no_grad():
        final = policy.prepare({"images": {"base": np.zeros((1, 32, 32, 3), np.uint8)},
                                "state": np.zeros((1, 4), np.float32), "instruction": ["push it"]})
        v_final = float(policy.model.value(policy.model.encode_prefix(final), None)[0])
    assert abs(v_final) > 1e-4
    r = collector.collect(1, 0.5, bootstrap_gamma=0.5).rewards[0]
    assert float(r[0]) == pytest.approx(1.0 + 0.5 * v_final, abs=1e-5) and r[1:].tolist() == [1.0, 1.0]


def _rank_normalize(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        adv = torch.tensor([[1.0, 2.0], [3.0, 4.0]][rank])
        torch.save(normalize_advantages_across_ranks(adv), os.path.join(out, f"adv{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_rollout_advantages_are_normalised_once_over_every_ranks_samples(tmp_path):
    """Rank 0 holds [1, 2], rank 1 [3, 4]: both normalise with the mean 2.5 and std sqrt(5/3) of all four."""
    mp.spawn(_rank_normalize, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    got = torch.cat([torch.load(tmp_path / f"adv{r}.pt", weights_only=True) for r in (0, 1)])
    std = math.sqrt(5 / 3)
    torch.testing.assert_close(got, torch.tensor([-1.5, -0.5, 0.5, 1.5]) / std)
    torch.testing.assert_close(normalize_advantages_across_ranks(torch.tensor([1.0, 2.0, 3.0, 4.0])), got)


def test_adamw_decays_the_weights_by_lr_times_decay_per_step():
    policy = _policy()
    learner = PPOLearner(policy, PPOConfig(optimizer="adamw", weight_decay=0.01, lr=0.1, critic_lr=0.2))
    assert isinstance(learner.opt, torch.optim.AdamW)
    before = [p.detach().clone() for p in learner.actor_params + learner.critic_params]
    for p in learner.actor_params + learner.critic_params:
        p.grad = torch.zeros_like(p)  # no gradient: AdamW's step is the decay alone
    learner.opt.step()
    after = learner.actor_params + learner.critic_params
    n_actor = len(learner.actor_params)
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        lr = 0.1 if i < n_actor else 0.2
        torch.testing.assert_close(a.detach(), b * (1 - lr * 0.01))
    with pytest.raises(ValueError, match="adamw"):
        PPOConfig(weight_decay=0.01)


@pytest.mark.parametrize("mode", ["separate", "global"])
def test_gradient_clipping_per_part_or_over_both(mode):
    policy = _policy()
    learner = PPOLearner(policy, PPOConfig(grad_clip=1.0, grad_clip_mode=mode))
    for p in learner.actor_params:
        p.grad = torch.full_like(p, 3.0)
    for p in learner.critic_params:
        p.grad = torch.full_like(p, 4.0)
    n_a = sum(p.numel() for p in learner.actor_params)
    n_c = sum(p.numel() for p in learner.critic_params)
    actor_norm = learner.clip_gradients()
    assert float(actor_norm) == pytest.approx(3.0 * math.sqrt(n_a), rel=1e-5)  # reported before clipping
    total = math.sqrt(9 * n_a + 16 * n_c)
    a_grad, c_grad = learner.actor_params[0].grad.flatten()[0], learner.critic_params[0].grad.flatten()[0]
    if mode == "global":  # one scale for both: the actor keeps its 3:4 proportion to the critic
        assert float(a_grad) == pytest.approx(3.0 / total, rel=1e-4)
        assert float(c_grad) == pytest.approx(4.0 / total, rel=1e-4)
    else:
        assert float(a_grad) == pytest.approx(3.0 / (3.0 * math.sqrt(n_a)), rel=1e-4)
        assert float(c_grad) == pytest.approx(4.0 / (4.0 * math.sqrt(n_c)), rel=1e-4)


def test_the_steps_mean_critic_reads_the_executed_tokens_averaged_over_steps():
    policy = _policy(value_source="expert")
    model = policy.model
    w = model.cfg.expert.width
    f0 = torch.zeros(1, 3, w)
    f1 = torch.zeros(1, 3, w)
    f0[0, 0], f1[0, 0], f0[0, 1], f1[0, 1] = 1.0, 3.0, 5.0, 7.0  # token 2 (not executed) stays 0 ...
    f0[0, 2] = f1[0, 2] = 100.0  # ... except here, which the steps_mean critic must not read
    expected = model.value_head(torch.full((1, w), 0.0) + torch.tensor([(2.0 + 6.0) / 2]).expand(1, w))
    got = critic_value(model, None, [f0, f1], "steps_mean", critic_tokens=2)  # type: ignore[arg-type]
    torch.testing.assert_close(got, expected)
    first = critic_value(model, None, [f0, f1], "first_step", critic_tokens=None)  # type: ignore[arg-type]
    torch.testing.assert_close(first, model.value_head(f0.mean(1)))
    with pytest.raises(ValueError, match="critic_input"):
        PPOLearner(_policy(value_source="prefix"), PPOConfig(critic_input="steps_mean"))


def test_the_entropy_bonus_counts_only_the_executed_steps_real_dims():
    policy = _policy()
    model, obs = policy.model, policy.prepare({"images": {"base": np.zeros((2, 32, 32, 3), np.uint8)},
                                               "state": np.zeros((2, 4), np.float32), "instruction": ["push it"] * 2})
    cache = model.encode_prefix(obs)
    s = sample_chain(model, cache, obs.state, SamplerConfig(method="flow_noise"),
                     generator=torch.Generator().manual_seed(0))
    mask = element_mask(3, 3, num_executed=2, real_action_dim=2)
    _, entropy, _ = chain_log_probs(model, cache, obs.state, s.chain, s.term_mask, "flow_noise", 0.5, elem_mask=mask)
    expected = torch.zeros(2)
    for i in range(4):  # the noise network's std at each step, by hand: mean of 0.5 log(2 pi e std^2) over the mask
        out = model.velocity(cache, obs.state, s.chain[:, i], torch.full((2,), 1 - i / 4))
        std = model.noise_net(out.action_features)
        expected += (0.5 * torch.log(2 * math.pi * math.e * std**2))[:, :2, :2].mean((1, 2)) / 4
    torch.testing.assert_close(entropy, expected, atol=1e-5, rtol=1e-5)
    _, all_dims, _ = chain_log_probs(model, cache, obs.state, s.chain, s.term_mask, "flow_noise", 0.5)
    assert not torch.allclose(all_dims, expected)  # the padded dim and the unexecuted step do differ
