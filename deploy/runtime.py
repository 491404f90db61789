"""The robot-side runtime: an exported engine behind `infer(observation) -> chunk`, with numpy and
onnxruntime (or TensorRT) only - never torch, never a simulator.

    engine = load_engine("engines/pushcube")          # TensorRT engine if built and importable, else ONNX
    print(engine.backend)                             # e.g. "onnxruntime (CPUExecutionProvider)"
    chunk = engine.infer(obs)                         # float32 (N, H, A) in the env's / robot's units

Preprocessing is training's own (numpy-only modules of `training.policy`): the same observation checks,
state normalization, padding and tokenization as `Policy.prepare`, driven by engine.json instead of a
checkpoint. A wrong camera set, image size or dtype, state size or a NaN is refused with what to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.policy.normalize import NormStats, normalize, unnormalize
from training.policy.observation import pad_last, validate_observation
from training.policy.tokenizer import load_tokenizer, tokenize

ENGINE_FORMAT = "pirl-engine/1"
ORT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class EngineError(RuntimeError):
    """An engine directory that is missing, damaged or does not match what it is fed."""


@dataclass(frozen=True)
class GraphInputs:
    """One-graph inputs: images uint8 (N, C, S, S, 3), state float32 (N, S_pad), tokens int64 (N, L),
    token_mask bool (N, L)."""

    images: np.ndarray
    state: np.ndarray
    tokens: np.ndarray
    token_mask: np.ndarray

    @property
    def batch_size(self) -> int:
        return self.state.shape[0]


def read_spec(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / "engine.json"
    if not path.exists():
        raise EngineError(f"no engine at {directory} (engine.json missing); create one with "
                          "`pirl-export CHECKPOINT --out DIR`")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EngineError(f"{path} is not valid JSON ({e}); re-export the engine") from e
    if spec.get("format") != ENGINE_FORMAT:
        raise EngineError(f"{path}: format {spec.get('format')!r}, this runtime reads {ENGINE_FORMAT!r}")
    for name, digest in spec.get("files", {}).items():
        f = directory / name
        if not f.exists():
            raise EngineError(f"{directory}: {name} is missing; re-export the engine")
        if hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise EngineError(f"{directory}: {name} does not match the SHA-256 in engine.json (damaged or "
                              "replaced); re-export the engine")
    return spec


def engine_hash(directory: str | Path) -> str:
    """SHA-256 of an engine's engine.json - which lists every graph file's own hash, so it names the engine."""
    path = Path(directory) / "engine.json"
    if not path.exists():
        raise EngineError(f"no engine at {directory} (engine.json missing)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Engine:
    """Preprocessing + a backend that maps graph inputs and noise to normalized actions."""

    def __init__(self, directory: Path, spec: dict, backend: Any, backend_name: str):
        self.directory, self.spec, self._backend, self.backend = directory, spec, backend, backend_name
        self.norm_stats = NormStats.load(directory)
        self.tokenizer = load_tokenizer(directory / spec["tokenizer"])
        self.cameras = tuple(spec["cameras"])
        self.chunk_shape = (spec["action_horizon"], spec["action_dim_padded"])
        self._rng = np.random.default_rng(0)

    @property
    def action_horizon(self) -> int:
        return int(self.spec["action_horizon"])

    @property
    def action_dim(self) -> int:
        return int(self.spec["action_dim"])

    def prepare(self, obs: dict[str, Any]) -> GraphInputs:
        s = self.spec
        validate_observation(obs, self.cameras, s["image_size"], s["state_dim"])
        ns = self.norm_stats
        state = pad_last(normalize(np.asarray(obs["state"]), ns.state, ns.mode), s["state_dim_padded"])
        tokens, mask = tokenize(self.tokenizer, list(obs["instruction"]), s["max_token_len"])
        images = np.stack([np.ascontiguousarray(obs["images"][c]) for c in self.cameras], axis=1)
        return GraphInputs(images, state.astype(np.float32), tokens.astype(np.int64), mask.astype(bool))

    def infer_normalized(self, inputs: GraphInputs, noise: np.ndarray) -> np.ndarray:
        """Graph inputs + initial noise (N, H, A_pad) -> normalized, padded actions (N, H, A_pad)."""
        want = (inputs.batch_size, *self.chunk_shape)
        if noise.shape != want:
            raise EngineError(f"noise must have shape {want}, got {noise.shape}")
        return self._backend.run(inputs, noise.astype(np.float32))

    def infer(self, obs: dict[str, Any], noise: np.ndarray | None = None) -> np.ndarray:
        """Observation batch -> action chunk float32 (N, H, A) in the env's units."""
        inputs = self.prepare(obs)
        if noise is None:
            noise = self._rng.standard_normal((inputs.batch_size, *self.chunk_shape)).astype(np.float32)
        actions = self.infer_normalized(inputs, noise)
        ns = self.norm_stats
        return unnormalize(actions[..., : ns.actions.dim], ns.actions, ns.mode).astype(np.float32)


class OnnxBackend:
    """onnxruntime sessions for graph "one" (policy.onnx) or "two" (prefix.onnx + denoise.onnx)."""

    def __init__(self, directory: Path, spec: dict, providers: tuple[str, ...]):
        import onnxruntime as ort

        available = ort.get_available_providers()
        chosen = [p for p in providers if p in available]
        if not chosen:
            raise EngineError(f"none of the onnxruntime providers {list(providers)} is available here "
                              f"(available: {available})")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.graph = spec["graph"]
        files = ["policy.onnx"] if self.graph == "one" else ["prefix.onnx", "denoise.onnx"]
        self.sessions = [ort.InferenceSession(str(directory / f), opts, providers=chosen) for f in files]
        self.provider = self.sessions[0].get_providers()[0]

    def run(self, x: GraphInputs, noise: np.ndarray) -> np.ndarray:
        if self.graph == "one":
            return self.sessions[0].run(["actions"], {"images": x.images, "state": x.state, "tokens": x.tokens,
                                                      "token_mask": x.token_mask, "noise": noise})[0]
        keys, values, mask = self.sessions[0].run(None, {"images": x.images, "tokens": x.tokens,
                                                         "token_mask": x.token_mask})
        return self.sessions[1].run(["actions"], {"keys": keys, "values": values, "prefix_mask": mask,
                                                  "state": x.state, "noise": noise})[0]


def load_engine(directory: str | Path, backends: tuple[str, ...] = ("tensorrt", "onnxruntime"),
                providers: tuple[str, ...] = ORT_PROVIDERS) -> Engine:
    """The engine in `directory` on the first backend that works here: a built TensorRT engine when
    `tensorrt` imports, else onnxruntime with the first available of `providers`. `engine.backend` says which."""
    directory = Path(directory)
    spec = read_spec(directory)
    reasons = []
    for name in backends:
        if name == "tensorrt":
            if not spec.get("tensorrt"):
                reasons.append("tensorrt: no TensorRT engine was built (pirl-export --tensorrt)")
                continue
            try:
                from deploy.tensorrt import TensorRTBackend
            except ImportError as e:
                reasons.append(f"tensorrt: {e}")
                continue
            return Engine(directory, spec, TensorRTBackend(directory, spec), "tensorrt")
        if name == "onnxruntime":
            try:
                backend = OnnxBackend(directory, spec, providers)
            except ImportError:
                reasons.append("onnxruntime: not installed (pip install 'pirl[deploy]')")
                continue
            return Engine(directory, spec, backend, f"onnxruntime ({backend.provider})")
        else:
            raise ValueError(f"unknown backend {name!r}; use 'tensorrt' or 'onnxruntime'")
    raise EngineError(f"no backend can run {directory}: " + "; ".join(reasons))
