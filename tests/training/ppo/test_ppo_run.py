"""A short real PPO run: micro policy, 2 ManiSkill envs with images, a couple of updates."""

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")

from tests.conftest import micro_config  # noqa: E402
from training.envs.maniskill import ManiSkillConfig, ManiSkillVecEnv  # noqa: E402
from training.policy.config import (
    SamplerConfig,  # noqa: E402
    VisionConfig,  # noqa: E402
)
from training.policy.policy import Policy  # noqa: E402
from training.ppo.config import PPOConfig  # noqa: E402
from training.ppo.rollout import RolloutCollector  # noqa: E402
from training.ppo.train import PPOLearner  # noqa: E402


@pytest.fixture(scope="module")
def env():
    with ManiSkillVecEnv(ManiSkillConfig(tasks=("PushCube-v1", "PullCube-v1"), num_envs=2, image_size=(32, 32),
                                         max_episode_steps=20)) as e:
        yield e


def _policy(env, **overrides) -> Policy:
    cfg = micro_config(camera_names=env.camera_names, state_dim=12, action_dim=6, action_horizon=5,
                       vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2),
                       vocab_size=128, max_token_len=16, **overrides)
    rng = np.random.default_rng(0)
    from training.envs.maniskill_tasks import INSTRUCTIONS

    instructions = [p for t in ("PushCube-v1", "PullCube-v1") for p in INSTRUCTIONS[t]]
    return Policy.create(cfg, instructions, rng.standard_normal((64, env.state_dim)),
                         rng.uniform(-1, 1, (64, cfg.action_horizon, env.action_dim)), seed=0)


def _rlinf_algo(name: str) -> PPOConfig:
    """The algo section of configs/NAME.yaml at this test's size (its RLinf options untouched)."""
    from pipeline.cli import parse

    algo = parse("ppo", ["--config", f"configs/{name}.yaml", "--init", "x"]).algo
    return dataclasses.replace(algo, num_executed=3, rollout_steps=2, epochs=2, minibatch_size=2,
                               critic_warmup_updates=1, lr=1e-3)


@pytest.mark.parametrize("method, reduction", [("flow_noise", "mean_steps"), ("flow_sde", "mean_steps"),
                                               ("flow_noise", "element"), ("fpo", "mean_steps"),
                                               ("rlinf_maniskill", ""), ("rlinf_libero_spatial", "")])
def test_short_ppo_run_trains_the_expert_only(env, method, reduction):
    if method.startswith("rlinf"):  # RLinf's options together: token-level ratio, AdamW, global clip, ...
        policy = _policy(env, value_source="expert")
        cfg = _rlinf_algo(method)
        method, reduction = cfg.sampler.method, cfg.sampler.log_prob_reduction
    else:
        policy = _policy(env)
        cfg = PPOConfig(sampler=SamplerConfig(method=method, log_prob_reduction=reduction), num_executed=3,
                        rollout_steps=2, epochs=2, minibatch_size=2, critic_warmup_updates=1, lr=1e-3,
                        target_kl=None)
    learner = PPOLearner(policy, cfg)
    collector = RolloutCollector(env, policy, cfg.sampler, cfg.num_executed, seed=0, critic_input=cfg.critic_input)
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}

    ro = collector.collect(cfg.rollout_steps, cfg.sampler.noise_level,
                           bootstrap_gamma=cfg.gamma if cfg.bootstrap_truncation else None)
    assert ro.chains.shape[:2] == (2, 2) and ro.env_steps == 12 and torch.isfinite(ro.log_probs).all()
    # Before any update the recomputed log-probs equal the rollout's: ratio = 1 on the first epoch.
    with torch.no_grad():
        lp, value, _ = learner.evaluate(ro, torch.arange(ro.size), cfg.sampler.noise_level)
    torch.testing.assert_close(lp, ro.log_probs.reshape(lp.shape), atol=1e-3, rtol=1e-4)
    if reduction in ("element", "token_level"):  # a log-prob per executed step x real action dim, zero elsewhere
        assert lp.shape == (4, 5, 6) and (lp[:, 3:] == 0).all() and (lp[:, :, 4:] == 0).all()
    torch.testing.assert_close(value, ro.values.flatten(), atol=1e-4, rtol=1e-4)

    warm = learner.update(ro, cfg.sampler.noise_level)
    assert warm["critic_warmup"] == 1.0
    after_warmup = policy.model.state_dict()
    assert not torch.equal(after_warmup["value_head.net.0.weight"], before["value_head.net.0.weight"])
    for k in before:
        if not k.startswith("value_head."):
            assert torch.equal(after_warmup[k], before[k]), f"critic warm-up changed the actor ({k})"

    stats = learner.update(collector.collect(cfg.rollout_steps, cfg.sampler.noise_level), cfg.sampler.noise_level)
    assert all(np.isfinite(v) for v in stats.values()), stats
    state = policy.model.state_dict()
    assert not torch.equal(state["action_out_proj.weight"], before["action_out_proj.weight"])
    for k in before:
        if k.startswith(("vision.", "token_embed.", "prefix_blocks.", "prefix_norm.")):
            assert torch.equal(state[k], before[k]), f"frozen prefix weight {k} changed"
    if method == "flow_noise":
        assert not torch.equal(state["noise_net.net.0.weight"], before["noise_net.net.0.weight"])


def test_privileged_critic_judges_from_sim_state_and_leaves_the_policy_head_alone():
    with ManiSkillVecEnv(ManiSkillConfig(tasks=("PushCube-v1", "PullCube-v1"), num_envs=2, image_size=(32, 32),
                                         max_episode_steps=20, privileged=True)) as env:
        policy = _policy(env)
        cfg = PPOConfig(num_executed=3, rollout_steps=2, epochs=2, minibatch_size=2, critic_warmup_updates=1,
                        lr=1e-3, target_kl=None, critic="privileged", critic_hidden=32, value_clip=None)
        learner = PPOLearner(policy, cfg, privileged_dim=env.privileged_dim)
        collector = RolloutCollector(env, policy, cfg.sampler, cfg.num_executed, seed=0, critic=learner.critic)
        before = {k: v.clone() for k, v in policy.model.state_dict().items()}
        critic_before = {k: v.clone() for k, v in learner.critic.state_dict().items()}
        ro = collector.collect(cfg.rollout_steps, cfg.sampler.noise_level)
        # ManiSkill's state: qpos, qvel, tcp pose, goal and cube positions; zero padding; the elapsed fraction.
        assert ro.privileged.shape == (4, env.privileged_dim) and (ro.privileged[:, :35] != 0).any(1).all()
        assert (ro.privileged[:, 35:-1] == 0).all()
        assert ro.privileged[:, -1].tolist() == pytest.approx([0, 0, 3 / 20, 3 / 20])  # t-major: step 0, then 3
        with torch.no_grad():
            torch.testing.assert_close(learner.critic(ro.privileged), ro.values.flatten())
        learner.update(ro, cfg.sampler.noise_level)  # warm-up: the critic alone learns
        assert not torch.equal(learner.critic.state_dict()["net.0.weight"], critic_before["net.0.weight"])
        assert learner.critic.norm.count > 4 - 1e-3  # the running normalisation saw the batch
        assert all(torch.equal(policy.model.state_dict()[k], before[k]) for k in before)
        learner.update(collector.collect(cfg.rollout_steps, cfg.sampler.noise_level), cfg.sampler.noise_level)
        state = policy.model.state_dict()
        assert not torch.equal(state["action_out_proj.weight"], before["action_out_proj.weight"])
        assert all(torch.equal(state[k], before[k]) for k in before if k.startswith("value_head."))
    with pytest.raises(ValueError, match="privileged state"):
        RolloutCollector(_NoPrivileged(), policy, cfg.sampler, cfg.num_executed, critic=learner.critic)


class _NoPrivileged:  # an env that offers no privileged state (like LIBERO)
    privileged_dim = 0
    action_dim = 4


def test_extra_critic_epochs_fit_the_returns_and_leave_the_actor_alone():
    class _Dims:
        camera_names, state_dim, action_dim = ("base_camera",), 9, 4

    policy = _policy(_Dims())
    cfg = PPOConfig(critic="privileged", critic_hidden=32, critic_epochs=30, minibatch_size=16, critic_lr=3e-3)
    learner = PPOLearner(policy, cfg, privileged_dim=8)
    gen = torch.Generator().manual_seed(0)
    privileged = torch.randn(64, 8, generator=gen)
    returns = 5 * privileged[:, 0] - 3 * privileged[:, 1] + 10
    learner.critic.norm.update(privileged)
    for p in learner.actor_params:  # stale gradients from an earlier PPO step must not move the actor
        p.grad = torch.ones_like(p)
    actor_before = [p.detach().clone() for p in learner.actor_params]
    with torch.no_grad():
        err_before = (learner.critic(privileged) - returns).abs().mean()
    learner._fit_critic(privileged, returns, gen_seed=0)
    with torch.no_grad():
        err_after = (learner.critic(privileged) - returns).abs().mean()
    assert err_after < 0.5 * err_before
    assert all(torch.equal(p, b) for p, b in zip(learner.actor_params, actor_before, strict=True))
