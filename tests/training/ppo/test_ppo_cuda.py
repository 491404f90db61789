"""PPO on a GPU: the learner, rollouts and privileged critic run where the policy lives (`device: auto`
picks the rank's GPU). Runs where CUDA is available (the train image, a lent GPU machine), skips elsewhere.
The simulator is the contextual-bandit test double of test_ppo_learns, so no simulator is needed; that file
also runs its learning test on the GPU."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import micro_config
from tests.training.ppo.test_ppo_learns import BanditEnv
from training.device import resolve_device
from training.policy.config import SamplerConfig, VisionConfig
from training.policy.policy import Policy
from training.ppo.config import PPOConfig
from training.ppo.rollout import Rollout, RolloutCollector
from training.ppo.train import PPOLearner

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible to torch here)")


def _policy() -> Policy:
    cfg = micro_config(camera_names=("base",), state_dim=4, action_dim=2, action_horizon=3,
                       vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2))
    rng = np.random.default_rng(0)
    return Policy.create(cfg, ["reach the target"], rng.standard_normal((32, 4)), rng.uniform(-1, 1, (32, 3, 2)))


def _to(ro: Rollout, device: torch.device) -> Rollout:
    """The same rollout with every tensor on `device`."""
    moved = {}
    for f in dataclasses.fields(ro):
        v = getattr(ro, f.name)
        if isinstance(v, torch.Tensor):
            moved[f.name] = v.to(device)
        elif f.name == "obs":
            moved[f.name] = type(v)({c: x.to(device) for c, x in v.images.items()}, v.state.to(device),
                                     v.tokens.to(device), v.token_mask.to(device))
    return dataclasses.replace(ro, **moved)


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


@cuda
@pytest.mark.parametrize("method", ["flow_noise", "flow_sde"])
def test_an_update_on_the_gpu_matches_the_cpu(method):
    """One PPO update of the same rollout from the same weights lands on the same weights on either device
    (up to float reordering), so a GPU run is the CPU run made faster."""
    cfg = PPOConfig(sampler=SamplerConfig(method=method), num_executed=1, rollout_steps=4, epochs=2, minibatch_size=16,
                    lr=1e-3, critic_warmup_updates=0, target_kl=None, entropy_coef=0.01, ema_decay=0.9)
    cpu_policy = _policy()
    gpu_policy = copy.deepcopy(cpu_policy)
    gpu_policy.model.to("cuda")
    ro = RolloutCollector(BanditEnv(), cpu_policy, cfg.sampler, num_executed=1).collect(cfg.rollout_steps, 0.5)
    before = {n: p.detach().clone() for n, p in cpu_policy.model.named_parameters()}
    cpu_stats = PPOLearner(cpu_policy, cfg).update(ro, 0.5)
    gpu_learner = PPOLearner(gpu_policy, cfg)
    gpu_stats = gpu_learner.update(_to(ro, torch.device("cuda")), 0.5)
    assert all(p.is_cuda for p in gpu_policy.model.parameters()) and all(v.is_cuda for v in gpu_learner.ema.values())
    gpu_params = dict(gpu_policy.model.named_parameters())
    moved = 0
    for name, p in cpu_policy.model.named_parameters():
        torch.testing.assert_close(gpu_params[name].detach().cpu(), p.detach(), rtol=1e-4, atol=1e-4)
        moved += int(not torch.equal(p.detach(), before[name]))
    assert moved > 0, "the update moved the actor"
    assert np.isclose(cpu_stats["policy_loss"], gpu_stats["policy_loss"], rtol=1e-3, atol=1e-5)
    assert np.isclose(cpu_stats["value_loss"], gpu_stats["value_loss"], rtol=1e-3, atol=1e-5)
