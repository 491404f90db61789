"""`pirl-convert SRC --out CKPT`: a LeRobot / openpi PyTorch pi0 or pi0.5 checkpoint as a pirl checkpoint.

    pirl-convert ~/ckpt/pi0_libero --out ckpts/pi0_libero --preset pi0 --tokenizer paligemma_tokenizer.model

SRC is a directory with `model.safetensors` (or shards named by `model.safetensors.index.json`), or one
safetensors file. Keys may carry LeRobot's leading `model.`; both the current transformers layout
(`paligemma_with_expert.paligemma.model.language_model...`) and the older one
(`paligemma_with_expert.paligemma.language_model.model...`) are read. The map onto pirl's `FlowVLA`:

    SigLIP      vision_tower.vision_model.*      -> vision.*  (q/k/v fused into qkv; positions gain a batch axis)
    projector   multi_modal_projector.linear     -> vision.head
    gemma_2b    language_model.{embed_tokens, layers.i.*, norm} -> token_embed, prefix_blocks.i.*, prefix_norm
    gemma_300m  gemma_expert.model.{layers.i.*, norm}            -> expert_blocks.i.*, expert_norm
                (pi0.5: the adaptive norms' `dense` -> `modulation`)
    flow heads  action_in_proj, action_out_proj, state_proj, action_time_mlp_*, time_mlp_*   (same names)

The two `lm_head`s are not used by the policy and are dropped (`embed_tokens` is filled from the tied
PaliGemma `lm_head` when a file lacks it). Any source tensor left unmapped, any pirl tensor left unfilled and
any shape mismatch is an error that lists them all. Conversion streams tensor by tensor from memory-mapped
shards into the output file, so a full pi0 in float32 (13 GB) converts in a fraction of its size in RAM.
The RL heads (noise network, critic) do not exist in these checkpoints: they start fresh, and config.json says
so (`metadata.rl_heads: "fresh"`). Norm stats come from LeRobot's normalizer processor file(s)
(`policy_preprocessor_step_*_normalizer_processor.safetensors`: `observation.state.*`, `action.*`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from core.normalize import NormStats, Stats
from training.policy.config import PolicyConfig, SamplerConfig

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
DROPPED = ("paligemma.lm_head.weight", "gemma_expert.lm_head.weight")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


class ConversionError(ValueError):
    """A source checkpoint that does not map onto the chosen preset; the message lists what does not fit."""


# ---------------------------------------------------------------------------------------------- source files
class Source:
    """Lazily read tensors of one or more safetensors files (memory-mapped), by canonical key."""

    def __init__(self, path: str | Path):
        from safetensors import safe_open

        path = Path(path)
        if path.is_dir():
            if (path / INDEX).is_file():
                index = json.loads((path / INDEX).read_text())
                files = sorted({path / f for f in index.get("weight_map", {}).values()})
            elif (path / WEIGHTS).is_file():
                files = [path / WEIGHTS]
            else:
                raise ConversionError(f"{path} holds neither {WEIGHTS} nor {INDEX}: point at a LeRobot / openpi "
                                      "PyTorch checkpoint directory or a .safetensors file")
        elif path.is_file():
            files = [path]
        else:
            raise ConversionError(f"{path} does not exist")
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ConversionError(f"shards named by {path / INDEX} are missing: {missing}")
        self.handles = [safe_open(str(f), framework="pt") for f in files]
        self.keys: dict[str, tuple[int, str]] = {}  # canonical key -> (handle index, key in file)
        for i, h in enumerate(self.handles):
            for k in h.keys():
                canon = canonical_key(k)
                if canon in self.keys:
                    raise ConversionError(f"{k} appears twice (as {canon}) across the source files")
                self.keys[canon] = (i, k)

    def shape(self, key: str) -> tuple[int, ...]:
        i, k = self.keys[key]
        return tuple(self.handles[i].get_slice(k).get_shape())

    def get(self, key: str) -> torch.Tensor:
        i, k = self.keys[key]
        return self.handles[i].get_tensor(k)


_OLD_LAYOUT = [  # transformers < 4.52 PaliGemma layout -> the current one
    (re.compile(r"^paligemma\.language_model\.model\."), "paligemma.model.language_model."),
    (re.compile(r"^paligemma\.language_model\.lm_head\."), "paligemma.lm_head."),
    (re.compile(r"^paligemma\.vision_tower\."), "paligemma.model.vision_tower."),
    (re.compile(r"^paligemma\.multi_modal_projector\."), "paligemma.model.multi_modal_projector."),
]


def canonical_key(key: str) -> str:
    """Strip LeRobot's `model.` and `paligemma_with_expert.`, and bring the older PaliGemma layout to the current."""
    for prefix in ("model.", "paligemma_with_expert."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    for pattern, repl in _OLD_LAYOUT:
        key = pattern.sub(repl, key)
    return key


# ----------------------------------------------------------------------------------------------------- map
@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one pirl tensor is made: from these source keys, by `build` (default: the one tensor as is)."""

    sources: tuple[str, ...]
    build: Callable[[list[torch.Tensor]], torch.Tensor] | None = None
    shape: Callable[[list[tuple[int, ...]]], tuple[int, ...]] | None = None


def _cat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(ts, dim=0)


def _cat_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    return (sum(s[0] for s in shapes), *shapes[0][1:])


_VISION_LAYER = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.out_proj": "proj", "mlp.fc1": "fc1",
                 "mlp.fc2": "fc2"}
_GEMMA_LAYER = {"self_attn.q_proj": "q_proj", "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj",
                "self_attn.o_proj": "o_proj", "mlp.gate_proj": "gate_proj", "mlp.up_proj": "up_proj",
                "mlp.down_proj": "down_proj", "input_layernorm": "pre_attn_norm",
                "post_attention_layernorm": "pre_mlp_norm"}


def plan(cfg: PolicyConfig, source_keys: set[str]) -> dict[str, Recipe]:
    """pirl tensor name -> Recipe, for every tensor of the deterministic policy (RL heads excluded)."""
    V = "paligemma.model.vision_tower.vision_model."
    L = "paligemma.model.language_model."
    recipes: dict[str, Recipe] = {
        "vision.patch_embed.weight": Recipe((V + "embeddings.patch_embedding.weight",)),
        "vision.patch_embed.bias": Recipe((V + "embeddings.patch_embedding.bias",)),
        "vision.pos_embed": Recipe((V + "embeddings.position_embedding.weight",), lambda t: t[0][None],
                                   lambda s: (1, *s[0])),
        "vision.norm.weight": Recipe((V + "post_layernorm.weight",)),
        "vision.norm.bias": Recipe((V + "post_layernorm.bias",)),
        "vision.head.weight": Recipe(("paligemma.model.multi_modal_projector.linear.weight",)),
        "vision.head.bias": Recipe(("paligemma.model.multi_modal_projector.linear.bias",)),
        "token_embed.weight": Recipe((L + "embed_tokens.weight",) if L + "embed_tokens.weight" in source_keys
                                     else ("paligemma.lm_head.weight",)),  # tied
        "prefix_norm.weight": Recipe((L + "norm.weight",)),
        "action_in_proj.weight": Recipe(("action_in_proj.weight",)),
        "action_in_proj.bias": Recipe(("action_in_proj.bias",)),
        "action_out_proj.weight": Recipe(("action_out_proj.weight",)),
        "action_out_proj.bias": Recipe(("action_out_proj.bias",)),
    }
    for i in range(cfg.vision.depth):
        src = f"{V}encoder.layers.{i}."
        for kind in ("weight", "bias"):
            recipes[f"vision.blocks.{i}.qkv.{kind}"] = Recipe(
                tuple(f"{src}self_attn.{p}_proj.{kind}" for p in "qkv"), _cat, _cat_shape)
            for theirs, ours in _VISION_LAYER.items():
                recipes[f"vision.blocks.{i}.{ours}.{kind}"] = Recipe((f"{src}{theirs}.{kind}",))
    adarms = cfg.time_conditioning == "adarms"
    for i in range(cfg.prefix.depth):
        for theirs, ours in _GEMMA_LAYER.items():
            recipes[f"prefix_blocks.{i}.{ours}.weight"] = Recipe((f"{L}layers.{i}.{theirs}.weight",))
            src = f"gemma_expert.model.layers.{i}.{theirs}"
            if adarms and ours.endswith("norm"):
                recipes[f"expert_blocks.{i}.{ours}.modulation.weight"] = Recipe((f"{src}.dense.weight",))
                recipes[f"expert_blocks.{i}.{ours}.modulation.bias"] = Recipe((f"{src}.dense.bias",))
            else:
                recipes[f"expert_blocks.{i}.{ours}.weight"] = Recipe((f"{src}.weight",))
    if adarms:
        recipes["expert_norm.modulation.weight"] = Recipe(("gemma_expert.model.norm.dense.weight",))
        recipes["expert_norm.modulation.bias"] = Recipe(("gemma_expert.model.norm.dense.bias",))
        heads = ("time_mlp_in", "time_mlp_out")
    else:
        recipes["expert_norm.weight"] = Recipe(("gemma_expert.model.norm.weight",))
        heads = ("action_time_mlp_in", "action_time_mlp_out")
    if cfg.state_token:
        heads += ("state_proj",)
    for head in heads:
        for kind in ("weight", "bias"):
            recipes[f"{head}.{kind}"] = Recipe((f"{head}.{kind}",))
    return recipes


def expected_shapes(cfg: PolicyConfig) -> dict[str, tuple[int, ...]]:
    """pirl's tensors and shapes for `cfg` (built on the meta device: no memory), RL heads excluded."""
    from training.policy.model import FlowVLA

    with torch.device("meta"):
        model = FlowVLA(cfg).drop_rl_heads()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_mapping(cfg: PolicyConfig, source_shapes: dict[str, tuple[int, ...]]) -> dict[str, Recipe]:
    """The plan for these source tensors, or a ConversionError listing every leftover, gap and mismatch."""
    want = expected_shapes(cfg)
    recipes = plan(cfg, set(source_shapes))
    problems = []
    unplanned = sorted(set(want) - set(recipes))
    if unplanned:  # a bug in `plan`, not in the source
        problems.append(f"pirl tensors without a rule: {unplanned}")
    missing = sorted({s for r in recipes.values() for s in r.sources} - set(source_shapes))
    if missing:
        problems.append(f"{len(missing)} source tensors missing: {missing[:20]}")
    used = {s for r in recipes.values() for s in r.sources} | set(DROPPED)
    leftover = sorted(set(source_shapes) - used)
    if leftover:
        problems.append(f"{len(leftover)} source tensors with no place in a {cfg.name} policy: {leftover[:20]}")
    if not missing:
        for name, r in recipes.items():
            shapes = [source_shapes[s] for s in r.sources]
            got = r.shape(shapes) if r.shape else shapes[0]
            if name in want and tuple(got) != want[name]:
                problems.append(f"{name}: from {list(r.sources)} {tuple(got)}, the {cfg.name} preset needs "
                                f"{want[name]}")
    if problems:
        raise ConversionError(f"the source does not map onto the {cfg.name} preset ({cfg.time_conditioning}, "
                              f"state token {cfg.state_token}):\n  " + "\n  ".join(problems)
                              + "\n  (pi0 checkpoints need --preset pi0, pi0.5 ones --preset pi05)")
    return recipes


# ------------------------------------------------------------------------------------------ streaming write
def _fresh_rl_heads(cfg: PolicyConfig, seed: int) -> dict[str, torch.Tensor]:
    """The noise network and critic, initialised as a new pirl policy would be."""
    from training.policy.heads import NoiseNet, ValueHead

    torch.manual_seed(seed)
    ew, pw = cfg.expert.width, cfg.prefix.width
    noise = NoiseNet(ew, cfg.noise_hidden, cfg.action_dim, cfg.noise_std_min, cfg.noise_std_max)
    value = ValueHead(ew if cfg.value_source == "expert" else pw, cfg.value_hidden)
    out = {}
    for prefix, module in (("noise_net.", noise), ("value_head.", value)):
        for m in module.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=0.02)
                torch.nn.init.zeros_(m.bias)
        out.update({prefix + k: v.detach() for k, v in module.state_dict().items()})
    return out


def write_streaming(path: Path, tensors: Iterator[tuple[str, torch.Tensor]],
                    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
    """A safetensors file written one tensor at a time (the format: u64 header length, JSON header, data), so
    that at most one tensor is in memory. `shapes` fixes the header; `tensors` must yield them in that order."""
    header, offset = {}, 0
    for name, (shape, dtype) in shapes.items():
        n = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": _ST_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align the data to 8 bytes, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for (name, t), want in zip(tensors, shapes, strict=True):
            if name != want or tuple(t.shape) != shapes[name][0] or t.dtype != shapes[name][1]:
                raise ConversionError(f"internal: wrote {name} {tuple(t.shape)} {t.dtype}, header says {want}")
            if t.numel():
                f.write(t.contiguous().view(torch.uint8).numpy().data)  # no copy
        f.flush()
        os.fsync(f.fileno())


# ------------------------------------------------------------------------------------------------ norm stats
def read_lerobot_norm_stats(directory: Path, mode: str) -> NormStats:
    """Norm stats from LeRobot's normalizer processor file(s): `observation.state.{mean,std,q01,q99}` and
    `action.{...}`. Without quantiles (pi0 uses mean/std) they are set to the Gaussian's 1% / 99% points."""
    from safetensors.torch import load_file

    files = sorted(directory.glob("*normalizer_processor*.safetensors"))
    if not files:
        raise ConversionError(f"no LeRobot normalizer file (*normalizer_processor*.safetensors) in {directory}: "
                              "pass --norm-stats DIR (the directory holding policy_preprocessor*.safetensors) or a "
                              "pirl norm_stats.json")
    flat: dict[str, np.ndarray] = {}
    for f in files:
        flat.update({k: v.float().numpy().astype(np.float64) for k, v in load_file(str(f)).items()})

    def stats(key: str) -> Stats:
        if f"{key}.mean" not in flat or f"{key}.std" not in flat:
            raise ConversionError(f"{[str(f) for f in files]} lack {key}.mean / {key}.std "
                                  f"(found {sorted(flat)[:12]})")
        mean, std = flat[f"{key}.mean"], flat[f"{key}.std"]
        q01 = flat.get(f"{key}.q01", mean - 2.326 * std)
        q99 = flat.get(f"{key}.q99", mean + 2.326 * std)
        return Stats(mean.reshape(-1), std.reshape(-1), q01.reshape(-1), q99.reshape(-1))

    return NormStats(stats("observation.state"), stats("action"), mode)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------- convert
def convert(src: str | Path, out: str | Path, preset: str = "pi0", dtype: str = "float32",
            tokenizer: str | Path | None = None, norm_stats: str | Path | None = None, seed: int = 0,
            config_overrides: dict | None = None) -> dict:
    """SRC -> pirl checkpoint directory OUT (written to a temporary sibling, then renamed). Returns a summary."""
    from core.tokenizer import SentencePieceTokenizer, WordTokenizer
    from training.policy.checkpoint import CONFIG_FILE, FORMAT, VERSION, WEIGHTS_FILE, sha256_file
    from training.policy.presets import get_preset

    t0 = time.time()
    src, out = Path(src), Path(out)
    if dtype not in _DTYPES:
        raise ConversionError(f"--dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose another --out or remove it")
    if tokenizer is None or not Path(tokenizer).is_file():
        raise ConversionError(f"give the PaliGemma SentencePiece tokenizer as a local file: --tokenizer "
                              f"PATH/tokenizer.model (got {tokenizer})")
    cfg = get_preset(preset)
    if config_overrides:
        cfg = PolicyConfig.from_dict({**cfg.to_dict(), **config_overrides})
    source = Source(src)
    shapes = {k: source.shape(k) for k in source.keys}
    recipes = check_mapping(cfg, shapes)
    want = expected_shapes(cfg)
    target = _DTYPES[dtype]
    heads = _fresh_rl_heads(cfg, seed)
    header = {name: (want[name], target) for name in want}
    header.update({k: (tuple(v.shape), torch.float32) for k, v in heads.items()})  # small: kept in float32

    def tensors() -> Iterator[tuple[str, torch.Tensor]]:
        for name in want:
            r = recipes[name]
            parts = [source.get(s) for s in r.sources]
            t = r.build(parts) if r.build else parts[0]
            yield name, t.to(target)
        yield from heads.items()

    stats_dir = Path(norm_stats) if norm_stats else (src if src.is_dir() else src.parent)
    if stats_dir.is_file() and stats_dir.suffix == ".json":
        stats = NormStats.load(stats_dir.parent, stats_dir.name)
    else:
        stats = read_lerobot_norm_stats(stats_dir, "quantile" if preset == "pi05" else "zscore")
    if stats.state.dim > cfg.state_dim or stats.actions.dim > cfg.action_dim:
        raise ConversionError(f"norm stats have state/action dims {stats.state.dim}/{stats.actions.dim}, over the "
                              f"model's {cfg.state_dim}/{cfg.action_dim}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_streaming(tmp / WEIGHTS_FILE, tensors(), header)
        stats.save(tmp)
        tok = Path(tokenizer)
        if tok.suffix == ".json":  # a pirl word tokenizer (tests, tiny models)
            WordTokenizer.load(tok.parent).save(tmp)
        else:
            SentencePieceTokenizer(tok).save(tmp)
        weights = tmp / WEIGHTS_FILE
        config = {"format": FORMAT, "version": VERSION, "policy": cfg.to_dict(),
                  "sampler": dataclasses.asdict(SamplerConfig(num_steps=10)), "action_space": None,
                  "files": {WEIGHTS_FILE: {"bytes": weights.stat().st_size, "sha256": sha256_file(weights)}},
                  "metadata": {"converted_from": str(src.resolve()), "converter": "pirl-convert",
                               "source_layout": "lerobot/openpi pytorch", "dtype": dtype,
                               "rl_heads": "fresh", "seed": seed}}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        if out.exists():
            out.rmdir()
        tmp.chmod(0o755)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n = sum(int(np.prod(s)) for s in want.values())
    return {"out": str(out), "preset": preset, "tensors": len(want), "parameters": n, "dtype": dtype,
            "seconds": time.time() - t0, "dropped": [k for k in DROPPED if k in shapes]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pirl-convert", description=__doc__.splitlines()[0])
    p.add_argument("src", help="LeRobot / openpi PyTorch checkpoint: a directory or a .safetensors file")
    p.add_argument("--out", required=True, help="pirl checkpoint directory to create")
    p.add_argument("--preset", choices=("pi0", "pi05"), default="pi0")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    p.add_argument("--tokenizer", required=True, help="PaliGemma's SentencePiece tokenizer.model (a local file)")
    p.add_argument("--norm-stats", help="where LeRobot's *normalizer_processor*.safetensors are (default: SRC), or "
                                        "a pirl norm_stats.json")
    args = p.parse_args(argv)
    try:
        summary = convert(args.src, args.out, args.preset, args.dtype, args.tokenizer, args.norm_stats)
    except (ConversionError, FileExistsError, FileNotFoundError) as e:
        print(f"pirl-convert: {e}", file=sys.stderr)
        return 2
    print(f"pirl-convert: {summary['parameters']:,} parameters ({summary['tensors']} tensors, {summary['dtype']}) "
          f"-> {summary['out']} in {summary['seconds']:.0f} s; dropped {summary['dropped']}; RL heads start fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
