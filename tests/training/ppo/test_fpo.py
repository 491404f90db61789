"""FPO's ratio estimator against a known answer, and its plumbing through the rollout and the learner (the
bandit learning test is `test_ppo_learns.py`, method fpo)."""

import math

import numpy as np
import pytest
import torch

from tests.conftest import micro_config
from tests.training.ppo.test_ppo_learns import BanditEnv
from training.policy.config import SamplerConfig, VisionConfig
from training.policy.policy import Policy
from training.policy.toy import GaussianMixture
from training.ppo.config import PPOConfig
from training.ppo.fpo import cfm_losses, draw_cfm_pairs, fpo_log_likelihood
from training.ppo.rollout import RolloutCollector
from training.ppo.train import PPOLearner

OLD = GaussianMixture((1.0,), ((0.2, -0.1),), (0.5,))
NEW = GaussianMixture((1.0,), ((0.5, 0.1),), (0.4,))
ACTIONS = torch.tensor([[0.6, 0.2], [-0.3, -0.4], [1.2, 0.6]], dtype=torch.float64)


def _log_pdf(a: torch.Tensor, g: GaussianMixture) -> torch.Tensor:
    m, s = torch.tensor(g.means[0], dtype=a.dtype), g.stds[0]
    return -((a - m) ** 2).sum(-1) / (2 * s * s) - a.shape[-1] * (math.log(s) + 0.5 * math.log(2 * math.pi))


def _fpo_log_ratio(weighting: str, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per action: the estimate of log pi_new(a) - log pi_old(a) from the two exact velocity fields on shared
    draws, and its standard error."""
    gen = torch.Generator().manual_seed(0)
    b = len(ACTIONS)
    t, eps = draw_cfm_pairs(b * draws, 1, 1, 2, gen)  # every (action, draw) pair as a sample: one pass
    t, eps = t.double().clamp(min=1e-6), eps.double()
    a = ACTIONS.repeat_interleave(draws, 0)[:, None]  # (B * M, H=1, A=2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    old = cfm_losses(lambda x, tt: OLD.velocity(x[:, 0], tt)[:, None], a, t, eps, mask, weighting)
    new = cfm_losses(lambda x, tt: NEW.velocity(x[:, 0], tt)[:, None], a, t, eps, mask, weighting)
    diff = (old - new).reshape(b, draws)  # per-draw log-ratio estimates
    assert torch.allclose(fpo_log_likelihood(new.reshape(b, draws)) - fpo_log_likelihood(old.reshape(b, draws)),
                          diff.mean(1))
    return diff.mean(1), diff.std(1) / math.sqrt(draws)


def test_elbo_weighted_fpo_ratio_is_the_gaussian_likelihood_ratio():
    """For a Gaussian policy N(m, s^2 I) the flow's velocity is known exactly (training/policy/toy.py); with the
    ELBO weight (1 - t) / t the mean loss difference is log pi_new(a) - log pi_old(a) (Kingma & Gao 2023),
    here for a change of mean and std, computed in closed form."""
    estimate, stderr = _fpo_log_ratio("elbo", draws=100_000)
    truth = _log_pdf(ACTIONS, NEW) - _log_pdf(ACTIONS, OLD)
    assert truth.abs().min() > 0.5  # the three actions' likelihoods clearly change
    assert ((estimate - truth).abs() < 4 * stderr + 1e-3).all(), (estimate, truth, stderr)


def test_uniform_fpo_ratio_moves_with_the_likelihood_ratio():
    """FPO's plain loss is a differently weighted bound: not the likelihood ratio, but of the same sign where
    the likelihood clearly changes, and the ELBO weight's estimate is the noisier one."""
    uniform, u_err = _fpo_log_ratio("uniform", draws=20_000)
    _, e_err = _fpo_log_ratio("elbo", draws=20_000)
    truth = _log_pdf(ACTIONS, NEW) - _log_pdf(ACTIONS, OLD)
    assert torch.equal(torch.sign(uniform), torch.sign(truth)), (uniform, truth)
    assert (uniform.abs() > 4 * u_err).all()
    assert (e_err > u_err).all()


def test_unknown_weighting_is_refused():
    with pytest.raises(ValueError, match="uniform"):
        cfm_losses(lambda x, t: x, torch.zeros(1, 1, 1), torch.ones(1, 1), torch.zeros(1, 1, 1, 1),
                   torch.ones(1, 1, dtype=torch.bool), "snr")
    with pytest.raises(ValueError, match="fpo_draws"):
        SamplerConfig(method="fpo", fpo_draws=0)


def _bandit_policy() -> Policy:
    cfg = micro_config(camera_names=("base",), state_dim=4, action_dim=2, action_horizon=3,
                       vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2))
    rng = np.random.default_rng(0)
    return Policy.create(cfg, ["reach the target"], rng.standard_normal((32, 4)), rng.uniform(-1, 1, (32, 3, 2)))


def test_fpo_rollouts_play_the_ode_policy_and_the_learner_reproduces_their_losses():
    """Rollout chains are ODE chains from their noise (the deployed sampler); the learner, before any step,
    recomputes exactly the stored stand-in log-probs from the stored draws, so the first ratio is 1."""
    policy = _bandit_policy()
    ppo = PPOConfig(sampler=SamplerConfig(method="fpo", fpo_draws=4), num_executed=2, rollout_steps=2)
    ro = RolloutCollector(BanditEnv(), policy, ppo.sampler, num_executed=2).collect(2, 0.0)
    assert ro.cfm_t is not None and ro.cfm_eps is not None
    assert ro.cfm_t.shape == (2, 8, 4) and ro.cfm_eps.shape == (2, 8, 4, 3, 2)
    assert not ro.term_mask.any()  # no stochastic transition: no chain likelihood
    flat_chain = ro.chains.reshape(16, *ro.chains.shape[2:])
    ode = policy.model.velocity  # the chain's steps are Euler steps of the velocity: check the first one
    inputs = ro.obs
    cache = policy.model.encode_prefix(inputs)
    with torch.no_grad():
        v = ode(cache, inputs.state, flat_chain[:, 0], torch.ones(16)).velocity
    torch.testing.assert_close(flat_chain[:, 1], flat_chain[:, 0] - 0.25 * v, atol=1e-5, rtol=1e-5)
    learner = PPOLearner(policy, ppo)
    with torch.no_grad():
        log_prob, value, entropy = learner.evaluate(ro, torch.arange(16), 0.0)
    torch.testing.assert_close(log_prob, ro.log_probs.reshape(16), atol=1e-5, rtol=1e-5)
    assert (ro.log_probs < 0).all() and value.shape == (16,) and not entropy.any()
