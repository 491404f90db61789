"""Size presets. `tiny` trains on a 2-core CPU; `pi0` / `pi05` carry the real pi0 shapes so that released
checkpoints can be mapped onto this implementation (PaliGemma = SigLIP So400m/14 + gemma_2b prefix,
gemma_300m action expert, 32-dim padded actions, horizon 50)."""

from __future__ import annotations

from training.policy.config import DecoderConfig, PolicyConfig, VisionConfig

# SigLIP So400m/14 at 224x224 -> 16x16 = 256 tokens per camera.
_SIGLIP_SO400M = VisionConfig(image_size=224, patch_size=14, width=1152, depth=27, mlp_dim=4304, num_heads=16)
# Gemma 2B and the 300M action expert: same depth / heads / head_dim, one shared KV head (MQA).
_GEMMA_2B = DecoderConfig(width=2048, depth=18, mlp_dim=16_384, num_heads=8, num_kv_heads=1, head_dim=256)
_GEMMA_300M = DecoderConfig(width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1, head_dim=256)
_PI0_CAMERAS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
_PALIGEMMA_VOCAB = 257_152


def tiny() -> PolicyConfig:
    """About 3M parameters; 64x64 images; trains on a laptop CPU in minutes."""
    return PolicyConfig(
        name="tiny",
        vision=VisionConfig(image_size=64, patch_size=8, width=128, depth=3, mlp_dim=384, num_heads=4,
                            pos_embed="sincos2d"),
        prefix=DecoderConfig(width=192, depth=4, mlp_dim=512, num_heads=4, num_kv_heads=1, head_dim=48),
        expert=DecoderConfig(width=128, depth=4, mlp_dim=384, num_heads=4, num_kv_heads=1, head_dim=48),
        vocab_size=512, max_token_len=16, state_dim=8, action_dim=8, action_horizon=8,
        value_hidden=128, noise_hidden=64,
    )


def small() -> PolicyConfig:
    """About 40M parameters; 96x96 images; a single-GPU model for quick experiments."""
    return PolicyConfig(
        name="small",
        vision=VisionConfig(image_size=96, patch_size=8, width=256, depth=6, mlp_dim=1024, num_heads=4,
                            pos_embed="sincos2d"),
        prefix=DecoderConfig(width=512, depth=8, mlp_dim=2048, num_heads=8, num_kv_heads=1, head_dim=64),
        expert=DecoderConfig(width=256, depth=8, mlp_dim=1024, num_heads=8, num_kv_heads=1, head_dim=64),
        vocab_size=4096, max_token_len=32, state_dim=32, action_dim=32, action_horizon=16,
        value_hidden=256, noise_hidden=128,
    )


def pi0() -> PolicyConfig:
    """pi0 shapes (openpi `Pi0Config`): about 3.3B parameters."""
    return PolicyConfig(
        name="pi0", vision=_SIGLIP_SO400M, prefix=_GEMMA_2B, expert=_GEMMA_300M,
        vocab_size=_PALIGEMMA_VOCAB, max_token_len=48, camera_names=_PI0_CAMERAS,
        state_dim=32, action_dim=32, action_horizon=50, time_conditioning="mlp", value_source="expert",
        value_hidden=1024, noise_hidden=1024,
    )


def pi05() -> PolicyConfig:
    """pi0.5 shapes: as pi0, with adaptive-RMSNorm time conditioning, no state token (the discretised state is
    in the prompt, hence the longer prompts) and the value head on the prefix output (pi0.5-style critic)."""
    return PolicyConfig(
        name="pi05", vision=_SIGLIP_SO400M, prefix=_GEMMA_2B, expert=_GEMMA_300M,
        vocab_size=_PALIGEMMA_VOCAB, max_token_len=200, camera_names=_PI0_CAMERAS,
        state_dim=32, action_dim=32, action_horizon=50, time_conditioning="adarms", value_source="prefix",
        value_hidden=1024, noise_hidden=1024, state_token=False,
    )


PRESETS = {"tiny": tiny, "small": small, "pi0": pi0, "pi05": pi05}


def get_preset(name: str) -> PolicyConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
