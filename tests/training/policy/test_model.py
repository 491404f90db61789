"""The network: prefix KV cache vs joint pass, block-causal mask, presets, freezing and gradient flow."""

import dataclasses

import pytest
import torch

from tests.conftest import micro_config
from tests.training.policy.test_chains import _obs
from training.policy.config import PolicyConfig, SamplerConfig
from training.policy.model import FlowVLA, Observation
from training.policy.presets import PRESETS, get_preset
from training.policy.sampling import (
    chain_log_probs,
    element_mask,
    reduce_log_prob,
    sample_chain,
    sample_ode,
    sample_ode_uncached,
)


def _randomize_adaptive_norms(model: FlowVLA) -> None:
    """adaRMS starts at zero (identity blocks); give it weights so the test exercises the conditioning."""
    for m in model.modules():
        if getattr(m, "modulation", None) is not None:
            torch.nn.init.normal_(m.modulation.weight, std=0.1)
            torch.nn.init.normal_(m.modulation.bias, std=0.1)


@pytest.mark.parametrize("time_conditioning", ["mlp", "adarms"])
def test_cached_prefix_matches_the_joint_pass(time_conditioning):
    cfg = micro_config(time_conditioning=time_conditioning)
    model = FlowVLA(cfg).eval()
    _randomize_adaptive_norms(model)
    obs = _obs(cfg)
    x_t = torch.randn(3, cfg.action_horizon, cfg.action_dim)
    t = torch.tensor([1.0, 0.5, 0.1])
    with torch.no_grad():
        cached = model.velocity(model.encode_prefix(obs), obs.state, x_t, t)
        joint = model.velocity_uncached(obs, x_t, t)
        torch.testing.assert_close(cached.velocity, joint.velocity, atol=1e-5, rtol=0)
        torch.testing.assert_close(cached.action_features, joint.action_features, atol=1e-5, rtol=0)
        noise = torch.randn_like(x_t)
        torch.testing.assert_close(sample_ode(model, model.encode_prefix(obs), obs.state, noise, 10),
                                   sample_ode_uncached(model, obs, noise, 10), atol=1e-5, rtol=0)


def test_velocity_reads_images_instruction_state_and_time_but_not_padding():
    cfg = micro_config(time_conditioning="adarms")
    model = FlowVLA(cfg).eval()
    _randomize_adaptive_norms(model)
    obs = _obs(cfg)
    x_t, t = torch.randn(3, cfg.action_horizon, cfg.action_dim), torch.full((3,), 0.5)

    def vel(o: Observation, tt=t) -> torch.Tensor:
        with torch.no_grad():
            return model.velocity(model.encode_prefix(o), o.state, x_t, tt).velocity

    base = vel(obs)
    wrist = dict(obs.images, wrist=torch.flip(obs.images["wrist"], dims=[1]))
    assert not torch.allclose(vel(dataclasses.replace(obs, images=wrist)), base)
    tokens = obs.tokens.clone()
    tokens[:, 1] = (tokens[:, 1] + 1) % cfg.vocab_size  # a real token
    assert not torch.allclose(vel(dataclasses.replace(obs, tokens=tokens)), base)
    assert not torch.allclose(vel(dataclasses.replace(obs, state=obs.state + 1)), base)
    assert not torch.allclose(vel(obs, torch.full((3,), 0.9)), base)
    padded = obs.tokens.clone()
    padded[~obs.token_mask] = 7  # only padding positions change
    torch.testing.assert_close(vel(dataclasses.replace(obs, tokens=padded)), base, atol=1e-6, rtol=0)


def test_a_policy_without_state_ignores_it_but_still_sees_the_images():
    cfg = dataclasses.replace(micro_config(), use_state=False)
    model = FlowVLA(cfg).eval()
    obs = _obs(cfg)
    x_t, t = torch.randn(3, cfg.action_horizon, cfg.action_dim), torch.full((3,), 0.5)

    def vel(o: Observation) -> torch.Tensor:
        with torch.no_grad():
            return model.velocity(model.encode_prefix(o), o.state, x_t, t).velocity

    base = vel(obs)
    torch.testing.assert_close(vel(dataclasses.replace(obs, state=torch.randn_like(obs.state) * 5)), base)
    wrist = dict(obs.images, wrist=torch.flip(obs.images["wrist"], dims=[1]))
    assert not torch.allclose(vel(dataclasses.replace(obs, images=wrist)), base)


def test_fixed_2d_positions_tell_every_patch_apart_and_are_not_trained():
    from training.policy.vision import sincos_2d

    pos = sincos_2d(8, 32)  # (64 patches, 32)
    assert pos.shape == (64, 32)
    dist = torch.cdist(pos, pos)
    assert (dist + torch.eye(64) * 1e3).min() > 0.1  # no two patches share a position
    # the row lives in the first half of the channels, the column in the second: patches in one row share it
    torch.testing.assert_close(pos[0, :16], pos[7, :16])
    assert not torch.allclose(pos[0, 16:], pos[7, 16:])
    cfg = micro_config()
    cfg = dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, pos_embed="sincos2d"))
    model = FlowVLA(cfg)
    assert "vision.pos_embed" not in model.state_dict()  # a function of the config: nothing to save or train
    assert all("pos_embed" not in name for name, _ in model.named_parameters())
    with pytest.raises(ValueError, match="pos_embed"):
        dataclasses.replace(cfg.vision, pos_embed="rope")


def test_prefix_cannot_see_the_suffix_and_state_cannot_see_actions():
    cfg = micro_config()
    model = FlowVLA(cfg)
    mask = model._suffix_mask(torch.tensor([[True, True, False]]))[0]  # (Ls, Lp + Ls)
    assert mask[:, :3].tolist() == [[True, True, False]] * cfg.suffix_len
    suffix = mask[:, 3:]
    assert suffix[0].tolist() == [True] + [False] * cfg.action_horizon  # state token: itself only
    assert suffix[1:].all()  # action tokens: state and every action token


@pytest.mark.parametrize("name, low, high", [("pi0", 3.15e9, 3.35e9), ("pi05", 3.25e9, 3.45e9)])
def test_pi0_presets_build_on_meta_with_the_real_parameter_count(name, low, high):
    cfg = get_preset(name)
    with torch.device("meta"):
        model = FlowVLA(cfg)
    params = list(model.parameters())
    assert all(p.is_meta for p in params), "meta construction must not allocate"
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    policy_params = count(model) - count(model.noise_net) - count(model.value_head)
    assert low < policy_params < high, f"{name}: {policy_params / 1e9:.3f}B"
    # The parts line up with the released models: SigLIP So400m, Gemma 2B (with its 257k embedding), 300M expert.
    assert 0.40e9 < count(model.vision) < 0.43e9
    gemma_2b = count(model.token_embed) + count(model.prefix_blocks) + count(model.prefix_norm)
    assert 2.45e9 < gemma_2b < 2.55e9
    expert = count(model.expert_blocks)
    assert 0.30e9 < expert < (0.32e9 if name == "pi0" else 0.45e9)
    assert (cfg.action_dim, cfg.action_horizon, cfg.num_image_tokens) == (32, 50, 3 * 256)


def test_small_presets_are_sized_as_documented():
    n = sum(p.numel() for p in FlowVLA(get_preset("tiny")).parameters())
    assert 2e6 < n < 6e6, n
    assert set(PRESETS) == {"tiny", "small", "pi0", "pi05"}
    with pytest.raises(ValueError, match="unknown policy preset"):
        get_preset("huge")


def test_config_rejects_experts_that_cannot_attend_jointly():
    base = micro_config()
    with pytest.raises(ValueError, match="head_dim"):
        PolicyConfig(**{**base.__dict__, "expert": dataclasses.replace(base.expert, head_dim=8)})
    assert PolicyConfig.from_dict(base.to_dict()) == base
    with pytest.raises(ValueError, match="unknown PolicyConfig fields"):
        PolicyConfig.from_dict({**base.to_dict(), "colour": "red"})


def _ppo_like_loss(model, obs, method):
    cache = model.encode_prefix(obs)
    sampler = SamplerConfig(method=method, noise_level=0.5)
    with torch.no_grad():
        s = sample_chain(model, cache, obs.state, sampler, generator=torch.Generator().manual_seed(0))
    lp, ent, value = chain_log_probs(model, cache, obs.state, s.chain, s.term_mask, method, 0.5,
                                     hybrid_step=s.hybrid_step)
    if value is None:
        first = model.velocity(cache, obs.state, s.chain[:, 0], torch.ones(obs.batch_size))
        value = model.value(cache, first.action_features)
    emask = element_mask(model.cfg.action_horizon, model.cfg.action_dim, 3, 4)
    return -reduce_log_prob(lp, s.term_mask, emask, "mean_steps").mean() + value.pow(2).mean() - 0.01 * ent.mean()


@pytest.mark.parametrize("value_source", ["expert", "prefix"])
def test_gradients_reach_expert_noise_net_and_value_head_but_not_a_frozen_prefix(value_source):
    cfg = micro_config(value_source=value_source)
    model = FlowVLA(cfg)
    assert model.prefix_trainable
    model.set_prefix_trainable(False)
    obs = _obs(cfg)
    _ppo_like_loss(model, obs, "flow_noise").backward()

    def grads(module):
        return [p.grad for p in module.parameters()]

    assert all(g is not None and g.abs().sum() > 0 for g in grads(model.noise_net))
    assert all(g is not None and g.abs().sum() > 0 for g in grads(model.value_head))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.expert_blocks))
    assert all(p.grad is None for p in model.prefix_parameters())

    model.zero_grad(set_to_none=True)
    model.set_prefix_trainable(True)
    _ppo_like_loss(model, obs, "flow_sde").backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prefix_blocks.parameters())


def test_model_boundaries_check_shapes():
    cfg = micro_config()
    model = FlowVLA(cfg)
    obs = _obs(cfg)
    cache = model.encode_prefix(obs)
    with pytest.raises(ValueError, match=r"expected x_t \(3, 5, 6\)"):
        model.velocity(cache, obs.state, torch.zeros(3, 4, 6), torch.ones(3))
    small = dict(obs.images, base=obs.images["base"][:, :16, :16])
    with pytest.raises(ValueError, match="camera 'base': expected uint8"):
        model.encode_prefix(dataclasses.replace(obs, images=small))
