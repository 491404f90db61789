"""The asymmetric critic's input normalisation."""

import numpy as np
import torch

from training.ppo.critic import RunningNorm


def test_running_norm_matches_the_statistics_of_all_batches_seen():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 4)), rng.normal(-1, 0.5, (30, 4))
    norm = RunningNorm(4, eps=1e-12)
    norm.update(torch.as_tensor(a))
    norm.update(torch.as_tensor(b))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(norm.mean.numpy(), both.mean(0), rtol=1e-9)
    np.testing.assert_allclose(norm.var.numpy(), both.var(0), rtol=1e-6)
    z = norm(torch.as_tensor(both)).numpy()
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-6)
