"""Denoising chains on a real (micro) FlowVLA: joint and hybrid log-likelihoods, recomputation, masking."""

import pytest
import torch
from torch.distributions import Normal

from tests.conftest import micro_config
from training.policy.config import SamplerConfig
from training.policy.model import FlowVLA, Observation
from training.policy.samplers import flow_sde_step, time_grid
from training.policy.sampling import chain_log_probs, element_mask, reduce_log_prob, sample_chain, sample_ode

B = 3


def _obs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = cfg.vision.image_size
    tokens = torch.randint(3, cfg.vocab_size, (B, cfg.max_token_len), generator=g)
    lengths = torch.tensor([3, cfg.max_token_len, 5])
    return Observation({c: torch.randint(0, 256, (B, s, s, 3), dtype=torch.uint8, generator=g)
                        for c in cfg.camera_names},
                       torch.randn(B, cfg.state_dim, generator=g), tokens,
                       torch.arange(cfg.max_token_len)[None, :] < lengths[:, None])


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = micro_config()
    model = FlowVLA(cfg).eval()
    obs = _obs(cfg)
    return model, obs, model.encode_prefix(obs)


def test_joint_flow_noise_log_prob_is_the_sum_of_its_parts(setup):
    model, obs, cache = setup
    cfg = SamplerConfig(method="flow_noise", num_steps=4)
    gen = torch.Generator().manual_seed(5)
    s = sample_chain(model, cache, obs.state, cfg, generator=gen)
    assert s.term_mask.all() and s.chain.shape == (B, 5, model.cfg.action_horizon, model.cfg.action_dim)
    assert torch.equal(s.actions, s.chain[:, -1])
    emask = element_mask(model.cfg.action_horizon, model.cfg.action_dim, num_executed=3, real_action_dim=4)

    # Recompute every term independently with torch.distributions.Normal.
    ts = time_grid(4)
    parts = [(Normal(0.0, 1.0).log_prob(s.chain[:, 0]) * emask).sum((1, 2))]
    with torch.no_grad():
        for i in range(4):
            t = ts[i].expand(B)
            out = model.velocity(cache, obs.state, s.chain[:, i], t)
            mean = s.chain[:, i] - (ts[i] - ts[i + 1]) * out.velocity
            std = model.noise_net(out.action_features)
            assert ((std >= 0.08 - 1e-6) & (std <= 0.16 + 1e-6)).all()
            parts.append((Normal(mean, std).log_prob(s.chain[:, i + 1]) * emask).sum((1, 2)))
    total = torch.stack(parts, 1)
    torch.testing.assert_close(reduce_log_prob(s.term_log_probs, s.term_mask, emask, "sum"), total.sum(1),
                               atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(reduce_log_prob(s.term_log_probs, s.term_mask, emask, "mean_steps"),
                               total.mean(1), atol=1e-3, rtol=1e-5)
    per_elem = reduce_log_prob(s.term_log_probs, s.term_mask, emask, "element")
    assert per_elem.shape == (B, model.cfg.action_horizon, model.cfg.action_dim)
    assert torch.all(per_elem[:, 3:] == 0) and torch.all(per_elem[:, :, 4:] == 0)

    # The learner's recomputation under the same weights gives the same terms.
    lp, entropy, value = chain_log_probs(model, cache, obs.state, s.chain, s.term_mask, "flow_noise", 0.0)
    torch.testing.assert_close(lp, s.term_log_probs, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(value, s.value, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy, s.entropy, atol=1e-5, rtol=1e-5)


def test_hybrid_flow_sde_counts_exactly_one_step(setup):
    model, obs, cache = setup
    k = 4
    cfg = SamplerConfig(method="flow_sde", num_steps=k, noise_level=0.5)
    assert cfg.resolved_chain_mode == "hybrid"
    s = sample_chain(model, cache, obs.state, cfg, generator=torch.Generator().manual_seed(6))
    assert s.term_mask.sum(1).tolist() == [1] * B
    assert torch.equal(s.term_mask.float().argmax(1), s.hybrid_step + 1)
    assert torch.all(s.term_log_probs[~s.term_mask] == 0)

    # Steps before j are ODE steps: the chain agrees with the ODE chain up to x_j.
    ts = time_grid(k)
    x = s.chain[:, 0]
    with torch.no_grad():
        for i in range(k):
            v = model.velocity(cache, obs.state, x, ts[i].expand(B)).velocity
            x_ode = x - (ts[i] - ts[i + 1]) * v
            for b in range(B):
                j = int(s.hybrid_step[b])
                if i < j:
                    torch.testing.assert_close(s.chain[b, i + 1], x_ode[b], atol=1e-6, rtol=0)
                if i == j:  # the one SDE step: its density is what the chain's log-prob is
                    mean, std = flow_sde_step(x[b:b + 1], v[b:b + 1], float(ts[i]), float(ts[i] - ts[i + 1]),
                                              0.5, float(ts[1]))
                    ref = Normal(mean[0], std[0]).log_prob(s.chain[b, i + 1]).sum()
                    emask = torch.ones(model.cfg.action_horizon, model.cfg.action_dim, dtype=torch.bool)
                    got = reduce_log_prob(s.term_log_probs, s.term_mask, emask, "sum")[b]
                    torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-5)
                    assert not torch.allclose(s.chain[b, i + 1], x_ode[b])
            x = s.chain[:, i + 1]

    lp, _, _ = chain_log_probs(model, cache, obs.state, s.chain, s.term_mask, "flow_sde", 0.5,
                               hybrid_step=s.hybrid_step)
    torch.testing.assert_close(lp, s.term_log_probs, atol=1e-4, rtol=1e-5)


def test_zero_noise_and_dropped_noise_net_chains_equal_the_ode_policy(setup):
    model, obs, cache = setup
    noise = torch.randn(B, model.cfg.action_horizon, model.cfg.action_dim)
    ode = sample_ode(model, cache, obs.state, noise, 4)
    for mode in ("joint", "hybrid"):
        sde = sample_chain(model, cache, obs.state, SamplerConfig(method="flow_sde", noise_level=0.0,
                                                                 chain_mode=mode), noise=noise)
        assert torch.equal(sde.actions, ode)
    stripped = FlowVLA(model.cfg)
    stripped.load_state_dict(model.state_dict())
    stripped.drop_rl_heads().eval()
    noiseless = sample_chain(stripped, cache, obs.state, SamplerConfig(method="flow_noise"), noise=noise)
    assert torch.equal(noiseless.actions, ode) and noiseless.value is None


def test_log_prob_ignores_elements_outside_the_executed_real_dims():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(2, 5, 4, 3, generator=g)
    term_mask = torch.ones(2, 5, dtype=torch.bool)
    emask = element_mask(4, 3, num_executed=2, real_action_dim=2)
    poisoned = lp.clone()
    poisoned[:, :, 2:, :] = 1e6  # non-executed steps
    poisoned[:, :, :, 2:] = -1e6  # padded action dims
    for red in ("element", "sum", "mean_steps"):
        torch.testing.assert_close(reduce_log_prob(poisoned, term_mask, emask, red),
                                   reduce_log_prob(lp, term_mask, emask, red))
    assert emask.sum() == 4


def test_sampler_config_guards_the_paper_failure_modes():
    with pytest.raises(ValueError, match="K=1"):
        SamplerConfig(method="flow_sde", num_steps=1)
    with pytest.raises(ValueError, match="hybrid"):
        SamplerConfig(method="flow_noise", chain_mode="hybrid")
    annealed = SamplerConfig(method="flow_sde", noise_level=0.7, noise_level_end=0.3, noise_anneal_updates=400)
    assert annealed.noise_level_at(0) == pytest.approx(0.7)
    assert annealed.noise_level_at(200) == pytest.approx(0.5)
    assert annealed.noise_level_at(10_000) == pytest.approx(0.3)


def test_guided_ode_keeps_unguided_actions_and_pins_fully_weighted_ones(setup):
    """Real-time chunking's inpainting: zero weights change nothing (bit for bit), weight 1 ends exactly on the
    committed action, and a weight in between lands between the free and the committed action."""
    model, obs, cache = setup
    b, h, a = obs.state.shape[0], model.cfg.action_horizon, model.cfg.action_dim
    noise = torch.randn(b, h, a, generator=torch.Generator().manual_seed(3))
    guide = torch.randn(b, h, a, generator=torch.Generator().manual_seed(4))
    free = sample_ode(model, cache, obs.state, noise, 4)
    assert torch.equal(sample_ode(model, cache, obs.state, noise, 4, guide, torch.zeros(b, h)), free)
    weights = torch.zeros(b, h)
    weights[:, :2] = 1.0
    weights[:, 2] = 0.5
    guided = sample_ode(model, cache, obs.state, noise, 4, guide, weights)
    torch.testing.assert_close(guided[:, :2], guide[:, :2])
    between = (guided[:, 2] - free[:, 2]) / (guide[:, 2] - free[:, 2])
    assert ((between > 0) & (between < 1)).float().mean() > 0.9  # pulled part of the way (the field moves too)
