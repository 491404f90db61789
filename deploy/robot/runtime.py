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

from core.hashing import sha256_file
from core.normalize import NormStats, normalize, unnormalize
from core.observation import ObservationError, pad_last, validate_observation
from core.tokenizer import load_tokenizer, tokenize

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


# Keys the runtime reads, with the type each must have (a spec that lacks one is refused by name, not with a
# KeyError deep inside inference).
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str, "graph": str, "cameras": list, "image_size": int, "state_dim": int, "state_dim_padded": int,
    "action_dim": int, "action_dim_padded": int, "action_horizon": int, "num_steps": int, "max_token_len": int,
    "normalization": str, "tokenizer": str, "graph_files": list, "files": dict,
}


def _spec_error(path: Path, what: str) -> EngineError:
    return EngineError(f"{path}: {what}; re-export the engine with `pirl-export CHECKPOINT --out DIR`")


def _parse_spec(path: Path) -> dict:
    try:
        spec = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise _spec_error(path, f"is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise _spec_error(path, f"is not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise _spec_error(path, f"must hold a JSON object, found a {type(spec).__name__}")
    if spec.get("format") != ENGINE_FORMAT:
        raise EngineError(f"{path}: format {spec.get('format')!r}, this runtime reads {ENGINE_FORMAT!r}")
    for key, kind in REQUIRED_KEYS.items():
        if key not in spec:
            raise _spec_error(path, f"is missing the key {key!r}")
        value = spec[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _spec_error(path, f"key {key!r} must be a {getattr(kind, '__name__', kind)}, got {value!r}")
    return spec


def files_read(directory: Path, spec: dict) -> list[str]:
    """Every file the runtime reads from an engine directory (relative names): graph(s), normalization,
    tokenizer, and the TensorRT engine if one was built. Each must be hashed in engine.json's `files`."""
    names = [*spec["graph_files"], spec["normalization"]]
    tokenizer = _inside(directory, spec["tokenizer"])
    if tokenizer.is_dir():
        names += sorted(str(f.relative_to(directory.resolve())) for f in tokenizer.rglob("*") if f.is_file())
    trt = spec.get("tensorrt")
    if isinstance(trt, dict) and "file" in trt:
        names.append(trt["file"])
    return names


def _inside(directory: Path, name: str) -> Path:
    """`directory / name`, refusing names that point outside the engine directory."""
    root = directory.resolve()
    f = (directory / name).resolve() if isinstance(name, str) else root
    if not isinstance(name, str) or Path(name).is_absolute() or root not in f.parents:
        raise EngineError(f"{directory}/engine.json names the file {name!r}, which is not a relative path inside the "
                          "engine directory")
    return f


def read_spec(directory: str | Path) -> dict:
    """engine.json, checked: a JSON object with every key the runtime reads, and a SHA-256 in `files` for every
    file the runtime reads (graph, norm_stats.json, tokenizer, TensorRT engine), each matching."""
    directory = Path(directory)
    path = directory / "engine.json"
    if not path.is_file():
        raise EngineError(f"no engine at {directory} (engine.json missing); create one with "
                          "`pirl-export CHECKPOINT --out DIR`")
    spec = _parse_spec(path)
    hashes = spec["files"]
    unlisted = [n for n in files_read(directory, spec) if n not in hashes]
    if unlisted:
        raise _spec_error(path, f"does not list the SHA-256 of {unlisted} (every file the runtime reads must be "
                                "hashed; engines exported before this check was added need a re-export)")
    for name, digest in hashes.items():
        f = _inside(directory, name)
        if not isinstance(digest, str):
            raise _spec_error(path, f"the SHA-256 of {name!r} must be a hex string, got {digest!r}")
        if not f.is_file():
            raise EngineError(f"{directory}: {name} is missing; re-export the engine")
        if sha256_file(f) != digest:
            raise EngineError(f"{directory}: {name} does not match the SHA-256 in engine.json (damaged or "
                              "replaced); re-export the engine")
    return spec


def engine_hash(directory: str | Path) -> str:
    """The engine's name: SHA-256 of its engine.json, after `read_spec` has checked every file the runtime reads
    against the digests listed there - so a change to any of them changes the hash or is refused."""
    read_spec(directory)
    return hashlib.sha256((Path(directory) / "engine.json").read_bytes()).hexdigest()


class NonFiniteActions(EngineError):
    """The graph produced NaN or inf: the chunk is refused (never sent to an arm)."""


def _finite_or_raise(x: np.ndarray, what: str, error: type[Exception]) -> None:
    """Refuse a non-finite array, naming the first bad element (env, then trailing indices)."""
    if not np.isfinite(x).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise error(f"{what} is not finite at index {bad} (value {x[bad]})")


class Engine:
    """Preprocessing + a backend that maps graph inputs and noise to normalized actions.

    Every input is checked before the graph runs and every chunk after: a non-finite value anywhere (the
    observation, the initial noise, the state after normalization, the actions) is an error, never an action.
    """

    def __init__(self, directory: Path, spec: dict, backend: Any, backend_name: str):
        self.directory, self.spec, self._backend, self.backend = directory, spec, backend, backend_name
        try:
            self.norm_stats = NormStats.load(directory, spec["normalization"])
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise EngineError(f"{directory}: cannot read {spec['normalization']}: {e}; re-export the engine") from None
        ns = self.norm_stats
        if ns.state.dim != spec["state_dim"] or ns.actions.dim != spec["action_dim"]:
            raise EngineError(f"{directory}: {spec['normalization']} has state/action dims {ns.state.dim}/"
                              f"{ns.actions.dim}, engine.json says {spec['state_dim']}/{spec['action_dim']}; "
                              "re-export the engine")
        try:
            self.tokenizer = load_tokenizer(directory / spec["tokenizer"])
        except (ValueError, KeyError, TypeError, OSError) as e:  # JSONDecodeError is a ValueError
            raise EngineError(f"{directory}: cannot read the tokenizer in {spec['tokenizer']}: {e}; "
                              "re-export the engine") from None
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
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught just below, by name
            state = normalize(np.asarray(obs["state"]), ns.state, ns.mode)
        if not np.isfinite(state).all():
            env, dim = (int(i) for i in np.argwhere(~np.isfinite(state))[0])
            raise ObservationError(f"state [env {env}, dim {dim}] = {obs['state'][env, dim]!r} overflows "
                                   f"normalization (mean {ns.state.mean[dim]:.4g}, std {ns.state.std[dim]:.4g}): "
                                   "it is far outside anything the policy was trained on; check the joint "
                                   "state source and its units")
        state = pad_last(state, s["state_dim_padded"])
        tokens, mask = tokenize(self.tokenizer, list(obs["instruction"]), s["max_token_len"],
                                state=None if s.get("state_token", True) else state)
        images = np.stack([np.ascontiguousarray(obs["images"][c]) for c in self.cameras], axis=1)
        return GraphInputs(images, state.astype(np.float32), tokens.astype(np.int64), mask.astype(bool))

    def _check_noise(self, noise: Any, batch: int) -> np.ndarray:
        want = (batch, *self.chunk_shape)
        if not isinstance(noise, np.ndarray):
            raise ObservationError(f"noise must be a numpy array of shape {want}, got {type(noise).__name__}")
        if noise.dtype.kind != "f":
            raise ObservationError(f"noise must be floating point (float32), got {noise.dtype}")
        if noise.shape != want:
            raise ObservationError(f"noise must have shape {want} (N, H, padded A), got {noise.shape}")
        noise = noise.astype(np.float32)
        _finite_or_raise(noise, "the initial noise", ObservationError)
        return noise

    @property
    def rtc(self) -> bool:
        """Whether the graph takes real-time chunking's guidance (engines exported since it exists)."""
        return bool(self.spec.get("rtc"))

    def _guide(self, guide: tuple[np.ndarray, np.ndarray] | None, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(committed actions (N, H, A) in env units, weights (N, H)) -> normalized, padded graph inputs."""
        h, a_pad = self.chunk_shape
        if guide is None:
            return np.zeros((batch, h, a_pad), np.float32), np.zeros((batch, h), np.float32)
        if not self.rtc:
            raise EngineError(f"{self.directory} was exported before real-time chunking: re-export it to guide chunks")
        actions, weights = (np.asarray(g, np.float64) for g in guide)
        if actions.shape != (batch, h, self.action_dim) or weights.shape != (batch, h):
            raise ObservationError(f"guidance must be actions {(batch, h, self.action_dim)} and weights {(batch, h)}, "
                                   f"got {actions.shape} and {weights.shape}")
        _finite_or_raise(actions, "the guidance actions", ObservationError)
        if not (np.isfinite(weights).all() and weights.min() >= 0 and weights.max() <= 1):
            raise ObservationError("guidance weights must lie in [0, 1]")
        ns = self.norm_stats
        normalized = pad_last(normalize(actions, ns.actions, ns.mode), a_pad).astype(np.float32)
        return normalized, weights.astype(np.float32)

    def infer_normalized(self, inputs: GraphInputs, noise: np.ndarray, guide_actions: np.ndarray | None = None,
                         guide_weights: np.ndarray | None = None) -> np.ndarray:
        """Graph inputs + initial noise (N, H, A_pad) [+ normalized guidance (N, H, A_pad), weights (N, H)] ->
        normalized, padded actions (N, H, A_pad)."""
        noise = self._check_noise(noise, inputs.batch_size)
        if guide_actions is None or guide_weights is None:
            guide_actions, guide_weights = self._guide(None, inputs.batch_size)
        actions = np.asarray(self._backend.run(inputs, noise, guide_actions, guide_weights))
        _finite_or_raise(actions, "the engine's (normalized) action chunk", NonFiniteActions)
        return actions

    def infer(self, obs: dict[str, Any], noise: np.ndarray | None = None,
              guide: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Observation batch -> action chunk float32 (N, H, A) in the env's units. Raises ObservationError for
        bad input and NonFiniteActions (an EngineError) rather than ever returning a NaN or inf. `guide`:
        real-time chunking's (committed actions (N, H, A) in env units, weights (N, H) in [0, 1])."""
        inputs = self.prepare(obs)
        if noise is None:
            noise = self._rng.standard_normal((inputs.batch_size, *self.chunk_shape)).astype(np.float32)
        actions = self.infer_normalized(inputs, noise, *self._guide(guide, inputs.batch_size))
        ns = self.norm_stats
        with np.errstate(over="ignore", invalid="ignore"):
            chunk = unnormalize(actions[..., : ns.actions.dim], ns.actions, ns.mode).astype(np.float32)
        _finite_or_raise(chunk, "the action chunk (after unnormalization)", NonFiniteActions)
        return chunk


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

    def run(self, x: GraphInputs, noise: np.ndarray, guide_actions: np.ndarray, guide_weights: np.ndarray
            ) -> np.ndarray:
        denoiser = self.sessions[-1]
        guide = {"guide_actions": guide_actions, "guide_weights": guide_weights}
        if not {i.name for i in denoiser.get_inputs()} >= set(guide):
            guide = {}  # an engine exported before real-time chunking (Engine refuses guidance for it)
        if self.graph == "one":
            return denoiser.run(["actions"], {"images": x.images, "state": x.state, "tokens": x.tokens,
                                              "token_mask": x.token_mask, "noise": noise, **guide})[0]
        keys, values, mask = self.sessions[0].run(None, {"images": x.images, "tokens": x.tokens,
                                                         "token_mask": x.token_mask})
        return denoiser.run(["actions"], {"keys": keys, "values": values, "prefix_mask": mask,
                                          "state": x.state, "noise": noise, **guide})[0]


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
                from deploy.robot.tensorrt import TensorRTBackend
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
