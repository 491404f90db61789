"""TensorRT: build a serialized engine from the exported ONNX graph, and run it.

Written against the TensorRT 10 Python API (`tensorrt`) and cuda-python's runtime bindings; neither can be
installed on our CI machines, so this module is imported only when asked for (`pirl-export --tensorrt`,
`load_engine` finding `policy.engine`) and its tests run where `tensorrt` imports (a CUDA machine).
Only the one-graph layout is compiled (the prefix cache stays inside the engine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    import tensorrt as trt
except ImportError as e:  # the message users see when they ask for TensorRT without it
    raise ImportError("TensorRT is not installed: `pip install tensorrt cuda-python` on a machine with a CUDA "
                      "GPU (CPU machines run the ONNX engine with onnxruntime)") from e

ENGINE_FILE = "policy.engine"
TIMING_CACHE = "timing.cache"
_DTYPES = {"uint8": np.uint8, "float32": np.float32, "int64": np.int64, "bool": np.bool_}


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


def build_engine(directory: Path, spec: dict, precision: str = "fp16", max_batch: int = 8,
                 workspace_gib: float = 2.0) -> dict:
    """policy.onnx -> policy.engine (+ timing cache, reused by later builds). Returns engine.json's entry."""
    if spec["graph"] != "one":
        raise ValueError("TensorRT builds the one-graph export; export with --graph one")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(directory / "policy.onnx")):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse policy.onnx: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    elif precision != "fp32":
        raise ValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")
    cache_path = directory / TIMING_CACHE
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for name, entry in spec["inputs"].items():
        rest = tuple(entry["shape"][1:])
        profile.set_shape(name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    (directory / ENGINE_FILE).write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"file": ENGINE_FILE, "precision": precision, "max_batch": max_batch, "tensorrt": trt.__version__}


class TensorRTBackend:
    """Runs policy.engine: host arrays in, actions out (one CUDA stream, buffers sized per call)."""

    def __init__(self, directory: Path, spec: dict):
        self.cudart = _cudart()
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine((Path(directory) / ENGINE_FILE).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"could not load {directory / ENGINE_FILE} (built by another TensorRT version or "
                               "GPU?); rebuild with pirl-export --tensorrt")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.spec = spec

    def run(self, x, noise: np.ndarray, guide_actions: np.ndarray, guide_weights: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        host = {"images": x.images, "state": x.state, "tokens": x.tokens, "token_mask": x.token_mask,
                "noise": noise, "guide_actions": guide_actions, "guide_weights": guide_weights}
        host = {k: v for k, v in host.items() if k in self.spec["inputs"]}  # engines from before guidance
        out = np.empty(noise.shape, np.float32)
        buffers = []
        try:
            for name, arr in host.items():
                arr = np.ascontiguousarray(arr, _DTYPES[self.spec["inputs"][name]["dtype"]])
                self.context.set_input_shape(name, arr.shape)
                ptr = _check(cudart.cudaMalloc(arr.nbytes))
                buffers.append(ptr)
                _check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes,
                                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
                self.context.set_tensor_address(name, ptr)
            out_ptr = _check(cudart.cudaMalloc(out.nbytes))
            buffers.append(out_ptr)
            self.context.set_tensor_address("actions", out_ptr)
            if not self.context.execute_async_v3(self.stream):
                raise RuntimeError("TensorRT execution failed")
            _check(cudart.cudaMemcpyAsync(out.ctypes.data, out_ptr, out.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
            _check(cudart.cudaStreamSynchronize(self.stream))
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
        return out
