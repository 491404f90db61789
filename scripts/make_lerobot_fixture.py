"""Make the LeRobot parity fixture (tests/data/lerobot_parity.safetensors) and the full-size key
lists (lerobot_{pi0,pi05}_keys.txt) that tests/training/policy/test_convert.py checks pirl-convert against.

Run once, by hand, in an environment with LeRobot's pi0 code; CI only reads what it wrote. The environment:

    pip install --target LR --no-deps lerobot==0.4.4 transformers==4.53.2 "tokenizers>=0.21,<0.22" \\
        "huggingface_hub<1.0" safetensors regex
    # LeRobot's pi0 needs openpi's patched transformers (adaptive RMSNorm, the check module):
    cp -r openpi/src/openpi/models_pytorch/transformers_replace/* LR/transformers/
    PYTHONPATH=LR python scripts/make_lerobot_fixture.py --lerobot LR/lerobot

Only `lerobot/policies/{pi0,pi05}/modeling_*.py` is executed (its PI0Pytorch / PI05Pytorch); the package's other
imports (datasets, robots, processors) are replaced by empty stand-ins, since the model classes never use them.

The small models are LeRobot's own classes with smaller sizes patched in where LeRobot hard-codes them:
gemma variant "pirl_fixture" (width 32, depth 2, mlp 64, 2 heads, 1 KV head, head_dim 16) for both the VLM and
the expert; SigLIP with width 32, one layer, mlp 64, 2 heads, patch 14 on 56 px images; a 64-token vocabulary;
32-dim state/action, chunk 6. Weights are drawn from a seeded N(0, 0.02^2) for every tensor (the norms and the
adaptive norms' dense layers too, which LeRobot initialises to zero), stored in LeRobot's key layout with
its leading `model.` and without the two lm_heads (the converter drops them; they would be most of the file).
The fixture also holds the inputs (uint8
images, tokens, masks, normalized state, noise, times) and LeRobot's outputs: the velocity at three times and
the actions after 10 Euler steps, all float32.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch

OUT = Path(__file__).resolve().parents[1] / "tests/data"
SMALL = dict(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=16)
IMAGE, VOCAB, CHUNK, DIM, TOKENS, BATCH = 56, 64, 6, 32, 10, 2


def load_modeling(lerobot: Path, kind: str) -> types.ModuleType:
    """lerobot/policies/{kind}/modeling_{kind}.py, its package imports replaced by empty stand-ins."""

    class Unused:  # PreTrainedConfig / PreTrainedPolicy / RTCProcessor: not used by the model classes
        pass

    def stub(name: str, **attrs) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        m.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = m
        return m

    for name in ("lerobot", "lerobot.policies", "lerobot.utils", "lerobot.configs", "lerobot.policies.rtc",
                 f"lerobot.policies.{kind}"):
        stub(name)
    stub("lerobot.utils.import_utils", _transformers_available=True)
    stub("lerobot.configs.policies", PreTrainedConfig=Unused)
    stub(f"lerobot.policies.{kind}.configuration_{kind}", DEFAULT_IMAGE_SIZE=224, PI0Config=Unused,
         PI05Config=Unused)
    stub("lerobot.policies.pretrained", PreTrainedPolicy=Unused, T=object)
    stub("lerobot.policies.rtc.modeling_rtc", RTCProcessor=Unused)
    stub("lerobot.utils.constants", ACTION="action", OBS_LANGUAGE_ATTENTION_MASK="mask", OBS_LANGUAGE_TOKENS="tokens",
         OBS_STATE="observation.state", OPENPI_ATTENTION_MASK_VALUE=-2.3819763e38)
    spec = importlib.util.spec_from_file_location(f"lerobot.policies.{kind}.modeling_{kind}",
                                                  lerobot / f"policies/{kind}/modeling_{kind}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lerobot_config(**overrides) -> SimpleNamespace:
    """The fields PI0Pytorch / PI05Pytorch read (LeRobot's PI0Config defaults)."""
    cfg = dict(paligemma_variant="gemma_2b", action_expert_variant="gemma_300m", dtype="float32",
               image_resolution=(224, 224), freeze_vision_encoder=False, train_expert_only=False, max_action_dim=32,
               max_state_dim=32, chunk_size=50, n_action_steps=50, num_inference_steps=10, min_period=4e-3,
               max_period=4.0, compile_model=False, compile_mode=None, gradient_checkpointing=False, rtc_config=None,
               time_sampling_beta_alpha=1.5, time_sampling_beta_beta=1.0, time_sampling_scale=0.999,
               time_sampling_offset=0.001, device="cpu")
    cfg.update(overrides)
    return SimpleNamespace(**cfg)


def shrink(module: types.ModuleType) -> None:
    """Patch the sizes LeRobot hard-codes (gemma variants, SigLIP, vocabulary) to the fixture's."""
    real_gemma_config = module.get_gemma_config

    def get_gemma_config(variant: str):
        return module.GemmaConfig(**SMALL) if variant == "pirl_fixture" else real_gemma_config(variant)

    real_paligemma, real_gemma = module.PaliGemmaForConditionalGeneration, module.GemmaForCausalLM

    def paligemma(config):
        v = config.vision_config
        v.hidden_size, v.intermediate_size, v.num_hidden_layers, v.num_attention_heads = 32, 64, 1, 2
        v.patch_size, v.projection_dim = 14, SMALL["width"]
        config.text_config.vocab_size = VOCAB
        config._vocab_size = VOCAB  # noqa: SLF001
        config.image_token_index = VOCAB - 1
        return real_paligemma(config=config)

    def gemma(config):
        config.vocab_size = VOCAB
        return real_gemma(config=config)

    module.get_gemma_config = get_gemma_config
    module.PaliGemmaForConditionalGeneration = paligemma
    module.GemmaForCausalLM = gemma


def key_lists(lerobot: Path) -> None:
    """Full-size state dict keys, shapes and dtypes of PI0Pytorch / PI05Pytorch, built on the meta device."""
    for kind, cls in (("pi0", "PI0Pytorch"), ("pi05", "PI05Pytorch")):
        module = load_modeling(lerobot, kind)
        with torch.device("meta"):
            model = getattr(module, cls)(lerobot_config())
        lines = [f"# LeRobot 0.4.4 {cls} state_dict on the meta device (float32 build): key, shape, dtype. "
                 "Made by scripts/make_lerobot_fixture.py --key-lists"]
        for k, v in model.state_dict().items():
            lines.append(f"{k} {'x'.join(map(str, v.shape))} {str(v.dtype).removeprefix('torch.')}")
        (OUT / f"lerobot_{kind}_keys.txt").write_text("\n".join(lines) + "\n")
        print(f"{kind}: {len(lines) - 1} tensors")


def fixture(lerobot: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (BATCH, IMAGE, IMAGE, 3), generator=g, dtype=torch.uint8)
    tokens = torch.randint(1, VOCAB - 1, (BATCH, TOKENS), generator=g)
    mask = torch.ones(BATCH, TOKENS, dtype=torch.bool)
    mask[1, 7:] = False  # right padding, as LeRobot's tokenizer step pads
    tokens[~mask] = 0
    state = torch.rand(BATCH, DIM, generator=g) * 2 - 1
    noise = torch.randn(BATCH, CHUNK, DIM, generator=g)
    times = torch.tensor([1.0, 0.55, 0.1])
    out = {"images": images, "tokens": tokens, "token_mask": mask, "state": state, "noise": noise, "times": times}
    pixels = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0  # SigLIP's input, as pirl computes it
    img_masks = [torch.ones(BATCH, dtype=torch.bool)]
    for kind, cls in (("pi0", "PI0Pytorch"), ("pi05", "PI05Pytorch")):
        module = load_modeling(lerobot, kind)
        shrink(module)
        model = getattr(module, cls)(lerobot_config(paligemma_variant="pirl_fixture",
                                                    action_expert_variant="pirl_fixture", chunk_size=CHUNK,
                                                    n_action_steps=CHUNK, image_resolution=(IMAGE, IMAGE))).eval()
        with torch.no_grad():
            weights = torch.Generator().manual_seed(2 if kind == "pi0" else 3)
            for p in model.parameters():  # seeded (transformers' init is not), and no zero-initialised norms
                p.copy_(torch.randn(p.shape, generator=weights) * 0.02)
            if kind == "pi0":
                actions = model.sample_actions([pixels], img_masks, tokens, mask, state, noise=noise.clone(),
                                               num_steps=10)
            else:
                actions = model.sample_actions([pixels], img_masks, tokens, mask, noise=noise.clone(), num_steps=10)
            velocities = [velocity(module, model, kind, pixels, img_masks, tokens, mask, state, noise, t)
                          for t in times]
        for k, v in model.state_dict().items():
            if not k.endswith("lm_head.weight"):
                out[f"{kind}/model.{k}"] = v.contiguous()
        out[f"{kind}/actions"] = actions
        out[f"{kind}/velocity"] = torch.stack(velocities)  # (3, B, H, A)
    save_file(out, str(OUT / "lerobot_parity.safetensors"), metadata={"made_by": "scripts/make_lerobot_fixture.py",
                                                                       "lerobot": "0.4.4", "transformers": "4.53.2"})
    print(f"wrote {OUT / 'lerobot_parity.safetensors'} ({(OUT / 'lerobot_parity.safetensors').stat().st_size} bytes)")


def velocity(module, model, kind, pixels, img_masks, tokens, mask, state, noise, t):
    """LeRobot's velocity at (noise, t): its prefix pass with cache, then one denoise_step."""
    prefix_embs, prefix_pad, prefix_att = model.embed_prefix([pixels], img_masks, tokens, mask)
    att_2d = module.make_att_2d_masks(prefix_pad, prefix_att)
    positions = torch.cumsum(prefix_pad, dim=1) - 1
    model.paligemma_with_expert.paligemma.language_model.config._attn_implementation = "eager"  # noqa: SLF001
    _, cache = model.paligemma_with_expert.forward(attention_mask=model._prepare_attention_masks_4d(att_2d),  # noqa: SLF001
                                                   position_ids=positions, past_key_values=None,
                                                   inputs_embeds=[prefix_embs, None], use_cache=True)
    timestep = t.expand(noise.shape[0])
    if kind == "pi0":
        return model.denoise_step(state, prefix_pad, cache, noise, timestep)
    return model.denoise_step(prefix_pad, cache, noise, timestep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lerobot", type=Path, required=True, help="the lerobot package directory")
    ap.add_argument("--key-lists", action="store_true", help="write the full-size key lists")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if a.key_lists:
        key_lists(a.lerobot)
    fixture(a.lerobot)


if __name__ == "__main__":
    main()
