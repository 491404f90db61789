"""pirl-convert against LeRobot: a golden fixture of LeRobot's own small pi0 / pi0.5 (weights in its key layout,
inputs, its velocities and 10-step actions; scripts/make_lerobot_fixture.py) converted and matched, and the
full-size pi0 / pi0.5 key lists mapped with nothing left over."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from training.policy.checkpoint import load_checkpoint, read_config
from training.policy.config import DecoderConfig, VisionConfig
from training.policy.convert import ConversionError, canonical_key, check_mapping, convert, main
from training.policy.model import Observation
from training.policy.presets import get_preset
from training.policy.sampling import sample_ode

DATA = Path(__file__).resolve().parents[2] / "data"
SMALL = DecoderConfig(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=16)
FIXTURE_CONFIG = dict(name="lerobot_fixture", vision=VisionConfig(image_size=56, patch_size=14, width=32, depth=1,
                                                                  mlp_dim=64, num_heads=2).__dict__,
                      prefix=SMALL.__dict__, expert=SMALL.__dict__, vocab_size=64, max_token_len=10,
                      camera_names=("base",), action_horizon=6)


@pytest.fixture(scope="module")
def golden():
    return load_file(str(DATA / "lerobot_parity.safetensors"))


def _source(golden, kind, directory: Path, strip_model_prefix=False, drop=()):
    """The fixture's `kind` weights as a LeRobot checkpoint directory (+ a normalizer processor file)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = {}
    for k, v in golden.items():
        if k.startswith(f"{kind}/model."):
            key = k[len(kind) + 1:]
            key = key[len("model."):] if strip_model_prefix else key
            if not any(d in key for d in drop):
                weights[key] = v
    save_file(weights, str(directory / "model.safetensors"))
    stats = {f"{feature}.{s}": torch.full((dim,), value) for feature, dim in (("observation.state", 8), ("action", 7))
             for s, value in (("mean", 0.0), ("std", 1.0), ("q01", -1.0), ("q99", 1.0))}
    save_file(stats, str(directory / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    return directory


def _tokenizer(tmp_path):
    vocab = ["<pad>", "<unk>", "<bos>", *[f"w{i}" for i in range(61)]]
    (tmp_path / "tok").mkdir(exist_ok=True)
    (tmp_path / "tok" / "tokenizer.json").write_text(json.dumps({"type": "word", "vocab": vocab}))
    return tmp_path / "tok" / "tokenizer.json"


@pytest.mark.parametrize("kind", ["pi0", "pi05"])
def test_converted_fixture_matches_lerobot(golden, kind, tmp_path):
    src = _source(golden, kind, tmp_path / "src")
    convert(src, tmp_path / "ckpt", preset=kind, tokenizer=_tokenizer(tmp_path), config_overrides=FIXTURE_CONFIG)
    policy = load_checkpoint(tmp_path / "ckpt")
    assert policy.cfg.state_token == (kind == "pi0") and policy.cfg.time_conditioning == (
        "mlp" if kind == "pi0" else "adarms")
    assert read_config(tmp_path / "ckpt")["metadata"]["rl_heads"] == "fresh"
    model = policy.model.eval()
    obs = Observation({"base": golden["images"]}, golden["state"], golden["tokens"], golden["token_mask"])
    with torch.no_grad():
        cache = model.encode_prefix(obs)
        for i, t in enumerate(golden["times"]):
            v = model.velocity(cache, golden["state"], golden["noise"], t.expand(2)).velocity
            np.testing.assert_allclose(v.numpy(), golden[f"{kind}/velocity"][i].numpy(), atol=1e-5, rtol=0)
        actions = sample_ode(model, cache, golden["state"], golden["noise"], 10)
    np.testing.assert_allclose(actions.numpy(), golden[f"{kind}/actions"].numpy(), atol=1e-5, rtol=0)
    assert float(golden[f"{kind}/actions"].abs().max()) > 0.1  # the comparison is not between near-zeros


def test_layouts_prefixes_tied_embeddings_and_bfloat16(golden, tmp_path):
    """The older PaliGemma layout, keys without `model.`, embed_tokens only as the tied lm_head: same weights."""
    src = _source(golden, "pi0", tmp_path / "new")
    convert(src, tmp_path / "a", preset="pi0", tokenizer=_tokenizer(tmp_path), config_overrides=FIXTURE_CONFIG)
    old = {}
    for k, v in load_file(str(src / "model.safetensors")).items():
        k = k[len("model."):]
        k = k.replace("paligemma.model.language_model.embed_tokens.", "paligemma.lm_head.")
        k = k.replace("paligemma.model.language_model.", "paligemma.language_model.model.")
        k = k.replace("paligemma.model.", "paligemma.")
        old[k] = v
    (tmp_path / "old").mkdir()
    keys = sorted(old)
    save_file({k: old[k] for k in keys[: len(keys) // 2]}, str(tmp_path / "old" / "part1.safetensors"))
    save_file({k: old[k] for k in keys[len(keys) // 2:]}, str(tmp_path / "old" / "part2.safetensors"))
    (tmp_path / "old" / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: "part1.safetensors" if i < len(keys) // 2 else "part2.safetensors"
                        for i, k in enumerate(keys)}}))
    convert(tmp_path / "old", tmp_path / "b", preset="pi0", tokenizer=_tokenizer(tmp_path),
            norm_stats=src, config_overrides=FIXTURE_CONFIG)
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    convert(src, tmp_path / "c", preset="pi0", dtype="bfloat16", tokenizer=_tokenizer(tmp_path),
            config_overrides=FIXTURE_CONFIG)
    c = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert c["prefix_blocks.0.q_proj.weight"].dtype == torch.bfloat16
    assert torch.equal(c["prefix_blocks.0.q_proj.weight"], a["prefix_blocks.0.q_proj.weight"].bfloat16())
    assert load_checkpoint(tmp_path / "c").cfg.state_token


def test_what_does_not_fit_is_listed(golden, tmp_path):
    src = _source(golden, "pi0", tmp_path / "src", drop=("language_model.layers.1.mlp.up_proj",))
    with pytest.raises(ConversionError, match=r"1 source tensors missing: \['paligemma.model.language_model.layers"):
        convert(src, tmp_path / "x", preset="pi0", tokenizer=_tokenizer(tmp_path), config_overrides=FIXTURE_CONFIG)
    src = _source(golden, "pi05", tmp_path / "pi05")
    with pytest.raises(ConversionError, match="(?s)no place in a lerobot_fixture policy.*--preset pi05"):
        convert(src, tmp_path / "y", preset="pi0", tokenizer=_tokenizer(tmp_path), config_overrides=FIXTURE_CONFIG)
    bigger = {**FIXTURE_CONFIG, "action_horizon": 6, "vocab_size": 65}
    with pytest.raises(ConversionError, match=r"token_embed.weight: .* \(64, 32\), .* needs \(65, 32\)"):
        convert(src, tmp_path / "z", preset="pi05", tokenizer=_tokenizer(tmp_path), config_overrides=bigger)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--tokenizer", "t.model"]) == 2


@pytest.mark.parametrize("kind", ["pi0", "pi05"])
def test_full_size_lerobot_keys_map_with_nothing_left_over(kind):
    shapes = {}
    for line in (DATA / f"lerobot_{kind}_keys.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, _ = line.split()
        shapes[canonical_key("model." + key)] = tuple(int(x) for x in shape.split("x"))
    cfg = get_preset(kind)
    recipes = check_mapping(cfg, shapes)
    used = {s for r in recipes.values() for s in r.sources}
    assert set(shapes) - used == {"paligemma.lm_head.weight", "gemma_expert.lm_head.weight"}
    n = sum(int(np.prod(s)) for k, s in shapes.items() if "lm_head" not in k)
    assert n == {"pi0": 3_238_048_528, "pi05": 3_353_433_872}[kind]
