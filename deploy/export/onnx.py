"""`pirl-export CHECKPOINT --out DIR`: the deterministic ODE policy of a checkpoint as an ONNX engine.

What goes into the graph is the policy the robot runs: prefix (vision + language) once, then K unrolled Euler
steps of the action expert from the given initial noise. The noise network and the value head are not in it.
The initial noise is an input, so an engine run is reproducible and comparable with PyTorch; batch is dynamic.

    graph "one": policy.onnx   images, state, tokens, token_mask, noise -> actions
    graph "two": prefix.onnx   images, tokens, token_mask -> keys, values, prefix_mask   (the KV cache)
                 denoise.onnx  keys, values, prefix_mask, state, noise -> actions

Shapes: images uint8 (B, C, S, S, 3) in engine.json's camera order; state float32 (B, S_pad) normalized;
tokens int64 / token_mask bool (B, L); noise and actions float32 (B, H, A_pad) in normalized units; keys and
values (layers, B, kv_heads, Lp, head_dim). The runtime (deploy/robot/runtime.py) does the normalization, padding
and tokenization around the graph, exactly as training's `Policy.prepare` does.

The export checks itself: onnxruntime runs the graph on sample observations (two batch sizes) and the export
fails if the max abs difference to the PyTorch deterministic policy exceeds 1e-4 (fp32).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deploy.export.config import ExportConfig
from deploy.robot.runtime import files_read
from training.policy.checkpoint import checkpoint_hash, load_checkpoint, sha256_file
from training.policy.model import FlowVLA, Observation, PrefixCache
from training.policy.policy import Policy, fake_obs
from training.policy.sampling import sample_ode

ENGINE_FORMAT = "pirl-engine/1"
PARITY_TOLERANCE = 1e-4
OPSET = 18


class ExportError(RuntimeError):
    """The export could not produce an engine that matches its checkpoint."""


def _observation(model: FlowVLA, images: torch.Tensor, state: torch.Tensor, tokens: torch.Tensor,
                 token_mask: torch.Tensor) -> Observation:
    cams = model.cfg.camera_names
    return Observation({c: images[:, i] for i, c in enumerate(cams)}, state, tokens, token_mask)


class DeterministicPolicy(nn.Module):
    """Graph "one": prefix + K unrolled Euler steps."""

    def __init__(self, model: FlowVLA, num_steps: int):
        super().__init__()
        self.model, self.num_steps = model, num_steps

    def forward(self, images, state, tokens, token_mask, noise, guide_actions, guide_weights):
        obs = _observation(self.model, images, state, tokens, token_mask)
        return sample_ode(self.model, self.model.encode_prefix(obs), state, noise, self.num_steps, guide_actions,
                          guide_weights)


class PrefixEncoder(nn.Module):
    """Graph "two", part 1: the prefix's per-layer keys and values, stacked (layers, B, kv_heads, Lp, Dh)."""

    def __init__(self, model: FlowVLA):
        super().__init__()
        self.model = model

    def forward(self, images, tokens, token_mask):
        b = images.shape[0]
        state = torch.zeros(b, self.model.cfg.state_dim, device=images.device)  # the prefix does not read it
        cache = self.model.encode_prefix(_observation(self.model, images, state, tokens, token_mask))
        return torch.stack(cache.keys), torch.stack(cache.values), cache.mask


class Denoiser(nn.Module):
    """Graph "two", part 2: K unrolled Euler steps over a given prefix cache."""

    def __init__(self, model: FlowVLA, num_steps: int):
        super().__init__()
        self.model, self.num_steps = model, num_steps

    def forward(self, keys, values, prefix_mask, state, noise, guide_actions, guide_weights):
        pooled = torch.zeros(state.shape[0], self.model.cfg.prefix.width, device=state.device)  # unused here
        cache = PrefixCache(list(keys.unbind(0)), list(values.unbind(0)), prefix_mask, pooled)
        return sample_ode(self.model, cache, state, noise, self.num_steps, guide_actions, guide_weights)


def graph_inputs(policy: Policy, obs: dict, noise: np.ndarray) -> dict[str, np.ndarray]:
    """The one-graph inputs for a raw observation batch (what the runtime computes without torch), unguided."""
    inputs = policy.prepare(obs)
    cams = policy.cfg.camera_names
    return {"images": np.stack([inputs.images[c].numpy() for c in cams], axis=1),
            "state": inputs.state.numpy(), "tokens": inputs.tokens.numpy(),
            "token_mask": inputs.token_mask.numpy(), "noise": noise.astype(np.float32),
            "guide_actions": np.zeros_like(noise, np.float32), "guide_weights": np.zeros(noise.shape[:2], np.float32)}


GUIDE_INPUTS = ("guide_actions", "guide_weights")

# ONNX files are protobufs, limited to 2 GB: above this the weights go to `<graph>.onnx.data` beside the graph.
EXTERNAL_DATA_BYTES = 1 << 30


def _weight_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _export(module: nn.Module, args: tuple, names: list[str], outputs: list[str], path: Path,
            batch_dims: tuple[int, ...] | None = None) -> None:
    """torch.onnx's dynamo exporter with a dynamic batch (dim `batch_dims[i]` of input i, default 0)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    dims = batch_dims or (0,) * len(names)
    large = _weight_bytes(module) > EXTERNAL_DATA_BYTES
    with torch.no_grad():
        # Large graphs skip onnxscript's graph optimizer: on a pi0-size graph (K unrolled steps) its pattern
        # rewriter ran for 25+ CPU minutes without finishing (py-spy: RewriteRuleSet.apply_to_model);
        # onnxruntime optimizes the graph itself when it loads it (ORT_ENABLE_ALL).
        torch.onnx.export(module.eval(), args, str(path), dynamo=True, input_names=names, output_names=outputs,
                          dynamic_shapes=tuple({d: batch} for d in dims), opset_version=OPSET,
                          external_data=large, optimize=not large, verbose=False)


def _graph_files(out: Path) -> list[str]:
    """The graph files written (with their external weights, `*.onnx.data`, for models over 1 GiB)."""
    return sorted(f.name for f in out.iterdir() if ".onnx" in f.name)


def export_onnx(policy: Policy, out: Path, graph: str, num_steps: int) -> list[str]:
    """Write the graph file(s) into `out`; returns their names."""
    model = policy.model.eval()
    cfg = policy.cfg
    example = graph_inputs(policy, fake_obs(cfg, batch=2, state_dim=policy.norm_stats.state.dim),
                           np.zeros((2, cfg.action_horizon, cfg.action_dim), np.float32))
    t = {k: torch.as_tensor(v) for k, v in example.items()}
    if graph == "one":
        _export(DeterministicPolicy(model, num_steps), (t["images"], t["state"], t["tokens"], t["token_mask"],
                                                         t["noise"], t["guide_actions"], t["guide_weights"]),
                ["images", "state", "tokens", "token_mask", "noise", *GUIDE_INPUTS], ["actions"], out / "policy.onnx")
        return _graph_files(out)
    if graph == "two":
        _export(PrefixEncoder(model), (t["images"], t["tokens"], t["token_mask"]),
                ["images", "tokens", "token_mask"], ["keys", "values", "prefix_mask"], out / "prefix.onnx")
        with torch.no_grad():
            keys, values, mask = PrefixEncoder(model)(t["images"], t["tokens"], t["token_mask"])
        _export(Denoiser(model, num_steps), (keys, values, mask, t["state"], t["noise"], t["guide_actions"],
                                             t["guide_weights"]),
                ["keys", "values", "prefix_mask", "state", "noise", *GUIDE_INPUTS], ["actions"], out / "denoise.onnx",
                batch_dims=(1, 1, 0, 0, 0, 0, 0))  # the KV cache's batch is dim 1 (dim 0 is the layer)
        return _graph_files(out)
    raise ValueError(f"graph must be 'one' or 'two', got {graph!r}")


def engine_spec(policy: Policy, checkpoint: Path, graph: str, files: list[str], num_steps: int) -> dict:
    cfg, ns = policy.cfg, policy.norm_stats
    s, c = cfg.vision.image_size, len(cfg.camera_names)
    return {
        "format": ENGINE_FORMAT,
        "graph": graph,
        "inputs": {"images": {"shape": ["batch", c, s, s, 3], "dtype": "uint8"},
                   "state": {"shape": ["batch", cfg.state_dim], "dtype": "float32"},
                   "tokens": {"shape": ["batch", cfg.max_token_len], "dtype": "int64"},
                   "token_mask": {"shape": ["batch", cfg.max_token_len], "dtype": "bool"},
                   "noise": {"shape": ["batch", cfg.action_horizon, cfg.action_dim], "dtype": "float32"},
                   # real-time chunking: committed actions (normalized, padded) and their weights; zeros: none
                   "guide_actions": {"shape": ["batch", cfg.action_horizon, cfg.action_dim], "dtype": "float32"},
                   "guide_weights": {"shape": ["batch", cfg.action_horizon], "dtype": "float32"}},
        "rtc": True,
        "outputs": {"actions": {"shape": ["batch", cfg.action_horizon, cfg.action_dim], "dtype": "float32"}},
        "cameras": list(cfg.camera_names),
        "image_size": s,
        "state_dim": ns.state.dim,
        "state_dim_padded": cfg.state_dim,
        "action_dim": ns.actions.dim,
        "action_dim_padded": cfg.action_dim,
        "action_horizon": cfg.action_horizon,
        "num_steps": num_steps,
        "max_token_len": cfg.max_token_len,
        # pi0.5 (False): no state token; the runtime writes the discretised state into the prompt instead.
        "state_token": cfg.state_token,
        "normalization": "norm_stats.json",
        "tokenizer": "tokenizer/",
        "action_space": policy.action_space.to_dict() if policy.action_space else None,
        "source_checkpoint": {"path": str(checkpoint.resolve()), "sha256": checkpoint_hash(checkpoint)},
        # The simulated camera the policy was trained through (None: the task's default), for sim evaluation.
        "sim_camera": json.loads((checkpoint / "config.json").read_text()).get("metadata", {}).get("camera"),
        "graph_files": files,
    }


def _sha256(path: Path) -> str:
    return sha256_file(path)


def check_parity(policy: Policy, engine_dir: Path, num_steps: int, batches: tuple[int, ...] = (1, 3),
                 release_model: bool = False) -> float:
    """Max abs difference of the normalized actions of the engine (run by the numpy runtime) and the PyTorch
    policy, same observations and initial noise. `release_model`: free the PyTorch weights once the references
    are computed, before onnxruntime loads its copy (a pi0 does not fit in memory twice)."""
    from deploy.robot.runtime import load_engine

    cases = []
    for b in batches:
        obs = fake_obs(policy.cfg, batch=b, state_dim=policy.norm_stats.state.dim, seed=b)
        rng = np.random.default_rng(b)
        shape = (b, policy.cfg.action_horizon, policy.cfg.action_dim)
        noise = rng.standard_normal(shape).astype(np.float32)
        # real-time chunking's inputs too: the first sample unguided, the others with random guidance
        guide = rng.standard_normal(shape).astype(np.float32)
        weights = rng.uniform(0, 1, shape[:2]).astype(np.float32)
        weights[0] = 0.0
        with torch.no_grad():
            inputs = policy.prepare(obs)
            ref = sample_ode(policy.model, policy.model.encode_prefix(inputs), inputs.state,
                             torch.as_tensor(noise), num_steps, torch.as_tensor(guide),
                             torch.as_tensor(weights)).numpy()
        cases.append((obs, noise, guide, weights, ref))
    if release_model:
        policy.model.to("meta")
    engine = load_engine(engine_dir, backends=("onnxruntime",), providers=("CPUExecutionProvider",))
    worst = 0.0
    for obs, noise, guide, weights, ref in cases:
        got = engine.infer_normalized(engine.prepare(obs), noise, guide, weights)
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def export(checkpoint: str | Path, out: str | Path, graph: str = "one", num_steps: int | None = None,
           tensorrt: bool = False, precision: str = "fp32") -> dict:
    """Checkpoint -> engine directory (written to a temporary sibling and renamed: all or nothing)."""
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose another --out or remove it")
    if tensorrt:
        import deploy.robot.tensorrt  # noqa: F401  (fail now, with the install hint, not after the ONNX export)
    t0 = time.time()
    policy = load_checkpoint(checkpoint)
    policy.model.drop_rl_heads()  # the noise network and the critic never reach the robot
    k = num_steps or policy.sampler.num_steps
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = export_onnx(policy, tmp, graph, k)
        policy.norm_stats.save(tmp)
        (tmp / "tokenizer").mkdir()
        policy.tokenizer.save(tmp / "tokenizer")
        spec = engine_spec(policy, checkpoint, graph, files, k)
        spec["files"] = {f: _sha256(tmp / f) for f in files_read(tmp, spec)}  # graph, norm stats, tokenizer
        (tmp / "engine.json").write_text(json.dumps(spec, indent=2))
        large = _weight_bytes(policy.model) > 4 * EXTERNAL_DATA_BYTES and not tensorrt
        diff = check_parity(policy, tmp, k, release_model=large)
        print(f"pirl-export: onnxruntime vs PyTorch max abs diff {diff:.2e} (tolerance {PARITY_TOLERANCE:.0e}, "
              f"graph {graph}, K={k})")
        if not diff <= PARITY_TOLERANCE:
            raise ExportError(f"the ONNX engine differs from the PyTorch policy by {diff:.2e} > "
                              f"{PARITY_TOLERANCE:.0e}; nothing was written to {out}")
        spec["parity"] = {"onnxruntime_max_abs_diff": diff, "tolerance": PARITY_TOLERANCE}
        if tensorrt:
            from deploy.robot.tensorrt import build_engine

            spec["tensorrt"] = build_engine(tmp, spec, precision=precision)
            spec["files"][spec["tensorrt"]["file"]] = _sha256(tmp / spec["tensorrt"]["file"])
            (tmp / "engine.json").write_text(json.dumps(spec, indent=2))
            trt_diff = check_parity_tensorrt(policy, tmp, k)
            print(f"pirl-export: TensorRT ({precision}) vs PyTorch max abs diff {trt_diff:.2e}")
            spec["parity"]["tensorrt_max_abs_diff"] = trt_diff
        spec["export_seconds"] = time.time() - t0
        (tmp / "engine.json").write_text(json.dumps(spec, indent=2))
        if out.exists():
            out.rmdir()
        tmp.chmod(0o755)  # mkdtemp makes it private
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"pirl-export: engine in {out} ({', '.join(files)}, {time.time() - t0:.0f}s)")
    return spec


def check_parity_tensorrt(policy: Policy, engine_dir: Path, num_steps: int) -> float:
    from deploy.robot.runtime import load_engine

    engine = load_engine(engine_dir, backends=("tensorrt",))
    obs = fake_obs(policy.cfg, batch=1, state_dim=policy.norm_stats.state.dim)
    noise = np.zeros((1, policy.cfg.action_horizon, policy.cfg.action_dim), np.float32)
    with torch.no_grad():
        inputs = policy.prepare(obs)
        ref = sample_ode(policy.model, policy.model.encode_prefix(inputs), inputs.state, torch.as_tensor(noise),
                         num_steps).numpy()
    return float(np.abs(engine.infer_normalized(engine.prepare(obs), noise) - ref).max())  # unguided


def export_engine(checkpoint: str | Path, out: str | Path, cfg: ExportConfig) -> dict:
    """`export` with the options of an ExportConfig (the pipeline's `export:` section, pirl-export's flags)."""
    return export(checkpoint, out, cfg.graph, cfg.num_steps or None, cfg.tensorrt, cfg.precision)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pirl-export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a pirl checkpoint directory (SFT or PPO)")
    p.add_argument("--out", required=True, help="engine directory to create")
    p.add_argument("--graph", choices=("one", "two"), default="one",
                   help="one graph (default) or prefix + denoiser")
    p.add_argument("--num-steps", type=int, default=0, help="K Euler steps (0: the checkpoint's)")
    p.add_argument("--tensorrt", action="store_true", help="also build a TensorRT engine (needs tensorrt)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="TensorRT precision")
    args = p.parse_args(argv)
    cfg = ExportConfig(graph=args.graph, num_steps=args.num_steps, tensorrt=args.tensorrt, precision=args.precision)
    try:
        export_engine(args.checkpoint, args.out, cfg)
    except (ExportError, FileExistsError, ImportError) as e:
        print(f"pirl-export: {e}", file=sys.stderr)
        return 1
    return 0
