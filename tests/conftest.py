import pytest
import torch

from training.policy.config import DecoderConfig, PolicyConfig, VisionConfig


def micro_config(**overrides) -> PolicyConfig:
    """A policy small enough for unit tests to run in milliseconds (same code paths as the presets)."""
    base = dict(
        name="micro",
        vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2),
        prefix=DecoderConfig(width=48, depth=2, mlp_dim=96, num_heads=4, num_kv_heads=2, head_dim=16),
        expert=DecoderConfig(width=32, depth=2, mlp_dim=64, num_heads=4, num_kv_heads=2, head_dim=16),
        vocab_size=64, max_token_len=8, camera_names=("base", "wrist"), state_dim=6, action_dim=6,
        action_horizon=5, value_hidden=32, noise_hidden=16,
    )
    base.update(overrides)
    return PolicyConfig(**base)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
