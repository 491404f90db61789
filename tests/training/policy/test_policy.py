"""The `infer(obs) -> actions` wrapper: bad inputs get clear errors; normalization mirrors exactly."""

import numpy as np
import pytest

from core.normalize import Stats, normalize, unnormalize
from core.tokenizer import InstructionTooLongError
from tests.conftest import micro_config
from training.policy.policy import ObservationError, Policy, fake_obs

REAL_STATE, REAL_ACTION = 4, 3


@pytest.fixture(scope="module")
def policy():
    cfg = micro_config()
    rng = np.random.default_rng(0)
    return Policy.create(cfg, ["pick up the red cube", "open the drawer"],
                         rng.standard_normal((50, REAL_STATE)),
                         rng.standard_normal((50, cfg.action_horizon, REAL_ACTION)))


def _good(policy, batch=2):
    return fake_obs(policy.cfg, batch, state_dim=REAL_STATE, instruction="pick up the red cube")


def test_infer_returns_an_env_unit_chunk_without_padding(policy):
    obs = _good(policy)
    noise = np.zeros((2, policy.cfg.action_horizon, policy.cfg.action_dim), np.float32)
    out = policy.infer(obs, noise=noise)
    assert out.shape == (2, policy.cfg.action_horizon, REAL_ACTION) and out.dtype == np.float32
    np.testing.assert_array_equal(out, policy.infer(obs, noise=noise))  # deterministic given the noise


@pytest.mark.parametrize("mutate, message", [
    (lambda o, s: o["images"].pop("wrist"), r"camera set mismatch.*'wrist'"),
    (lambda o, s: o["images"].update(top=o["images"]["base"]), r"camera set mismatch"),
    (lambda o, s: o["images"].update(base=np.zeros((2, s + 8, s, 3), np.uint8)), r"camera 'base'.*shape.*resize"),
    (lambda o, s: o["images"].update(base=o["images"]["base"].astype(np.float32)), r"camera 'base'.*uint8.*float32"),
    (lambda o, s: o["images"].update(base=o["images"]["base"][..., :1]), r"camera 'base'.*shape"),
    (lambda o, s: o["state"].__setitem__((1, 2), np.nan), r"non-finite.*env 1, dim 2"),
    (lambda o, s: o.update(state=o["state"][:, :2]), r"state must be \(N, 4\)"),
    (lambda o, s: o.update(state=o["state"].astype(np.float64)), r"float32.*float64"),
    (lambda o, s: o.update(instruction=["only one"]), r"list of 2 strings"),
    (lambda o, s: o.pop("instruction"), r"missing 'instruction'"),
])
def test_bad_observations_are_refused_with_a_clear_message(policy, mutate, message):
    obs = _good(policy)
    mutate(obs, policy.cfg.vision.image_size)
    with pytest.raises(ObservationError, match=message):
        policy.infer(obs)


def test_too_long_instruction_names_the_limit(policy):
    obs = _good(policy)
    obs["instruction"] = ["pick up the red cube and then open the drawer please", "open the drawer"]
    with pytest.raises(InstructionTooLongError, match=r"instruction 0 is \d+ tokens.*max_token_len=8"):
        policy.infer(obs)


def test_noise_of_the_wrong_shape_is_refused(policy):
    with pytest.raises(ValueError, match="noise must have shape"):
        policy.infer(_good(policy), noise=np.zeros((2, 1, 1), np.float32))


@pytest.mark.parametrize("mode", ["zscore", "quantile"])
def test_normalize_and_unnormalize_are_mirrors(mode):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (200, 5)).astype(np.float32)
    stats = Stats.from_data(x)
    z = normalize(x, stats, mode)
    if mode == "zscore":
        np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    else:
        assert np.mean((z >= -1) & (z <= 1)) > 0.95
    np.testing.assert_allclose(unnormalize(z, stats, mode), x, atol=1e-4)


def test_policy_refuses_a_tokenizer_larger_than_the_vocabulary():
    cfg = micro_config(vocab_size=8)
    words = [" ".join(f"w{i}" for i in range(20))]
    with pytest.raises(ValueError, match="tokenizer has .* tokens but the model's vocab_size is 8"):
        from core.normalize import NormStats
        from core.tokenizer import WordTokenizer
        from training.policy.model import FlowVLA

        stats = Stats.from_data(np.zeros((2, 2)))
        Policy(FlowVLA(cfg), WordTokenizer.build(words, 100), NormStats(stats, stats))
