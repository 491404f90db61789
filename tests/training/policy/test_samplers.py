"""The denoising steps as pure functions: exact log-probs, the a=0 limit, and the SDE's marginals on a
Gaussian mixture whose velocity is known in closed form."""

import math

import pytest
import torch
from scipy.stats import ks_2samp
from torch.distributions import Normal

from training.policy.samplers import (
    draw,
    flow_noise_step,
    flow_sde_step,
    gaussian_entropy,
    gaussian_log_prob,
    ode_step,
    sde_sigma,
    time_grid,
)
from training.policy.toy import DEFAULT_MIXTURE, integrate


def test_time_grid_runs_from_noise_to_action():
    ts = time_grid(4)
    assert ts.tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_gaussian_log_prob_and_entropy_match_torch_normal():
    g = torch.Generator().manual_seed(1)
    mean, x = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    std = torch.rand(3, 5, 4, generator=g) + 0.05
    ref = Normal(mean, std)
    torch.testing.assert_close(gaussian_log_prob(x, mean, std), ref.log_prob(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gaussian_entropy(std), ref.entropy(), atol=1e-6, rtol=1e-6)
    sample, lp = draw(mean, std, g)
    torch.testing.assert_close(lp, ref.log_prob(sample), atol=1e-5, rtol=1e-5)


def test_flow_sde_step_matches_the_weighted_form_of_the_paper():
    """mu = w0 x0_hat + w1 x1_hat with w1 = t - delta - sigma^2 delta / (2t); std = sqrt(delta) sigma."""
    g = torch.Generator().manual_seed(2)
    x, v = torch.randn(4, 3, 2, generator=g), torch.randn(4, 3, 2, generator=g)
    t, delta, a, t1 = torch.tensor([1.0, 0.75, 0.5, 0.25]), torch.full((4,), 0.25), 0.5, 0.75
    mean, std = flow_sde_step(x, v, t, delta, a, t1)
    tt, dd = t[:, None, None], delta[:, None, None]
    sigma = a * torch.sqrt(tt / (1 - torch.where(tt >= 1, torch.full_like(tt, t1), tt)))
    w0, w1 = 1 - (tt - dd), tt - dd - sigma**2 * dd / (2 * tt)
    torch.testing.assert_close(mean, w0 * (x - v * tt) + w1 * (x + v * (1 - tt)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(std, (dd.sqrt() * sigma).expand_as(x))
    assert math.isfinite(sde_sigma(1.0, a, t1)), "sigma must stay finite at t = 1"


def test_zero_noise_sde_and_noiseless_flow_noise_equal_ode_exactly():
    g = torch.Generator().manual_seed(3)
    x, v = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    for t in (1.0, 0.5, 0.25):
        ode = ode_step(x, v, t, 0.25)
        mean, std = flow_sde_step(x, v, t, 0.25, noise_level=0.0, t_first=0.75)
        assert torch.equal(mean, ode) and torch.all(std == 0)
        sample, _ = draw(mean, std, g)
        assert torch.equal(sample, ode)
        mean_n, _ = flow_noise_step(x, v, t, 0.25, torch.zeros_like(x))
        assert torch.equal(mean_n, ode)


def _run_sampler(num_steps: int, noise_level: float | None, n: int, seed: int) -> torch.Tensor:
    return integrate(DEFAULT_MIXTURE, num_steps, noise_level, n, seed)


def _marginal_gap(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    return {"mean": (a.mean(0) - b.mean(0)).abs().max().item(),
            "std": (a.std(0) - b.std(0)).abs().max().item(),
            "ks_p_min": min(ks_2samp(a[:, j].numpy(), b[:, j].numpy()).pvalue for j in range(a.shape[1]))}


def test_exact_velocity_ode_reproduces_the_mixture():
    ode = _run_sampler(500, None, 20_000, seed=10)
    data = DEFAULT_MIXTURE.sample(20_000, torch.Generator().manual_seed(11))
    gap = _marginal_gap(ode, data)
    assert gap["mean"] < 0.03 and gap["std"] < 0.03 and gap["ks_p_min"] > 1e-3, gap


@pytest.mark.parametrize("noise_level", [0.3, 0.5, 0.8])
def test_flow_sde_with_many_steps_has_the_ode_marginal(noise_level, record_property):
    ode = _run_sampler(500, None, 20_000, seed=20)
    sde = _run_sampler(500, noise_level, 20_000, seed=21)
    gap = _marginal_gap(sde, ode)
    assert gap["mean"] < 0.04 and gap["std"] < 0.04 and gap["ks_p_min"] > 1e-3, gap
    # With few steps the SDE's marginal is visibly off: reported, not asserted away.
    few = _marginal_gap(_run_sampler(4, noise_level, 20_000, seed=22), _run_sampler(4, None, 20_000, seed=23))
    record_property(f"sde_K4_gap_a{noise_level}", few)
    print(f"\nFlow-SDE a={noise_level}: K=500 gap {gap}; K=4 gap {few}")
