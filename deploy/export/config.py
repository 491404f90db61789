"""What `pirl-export` and the pipeline's `export:` section choose (kept apart from deploy/export/onnx.py, which needs
torch, so that a config can be read without it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportConfig:
    enabled: bool = True
    """The pipeline exports its chosen PPO policy (false: stop after PPO)."""
    graph: str = "one"
    """"one": one graph, images..noise -> actions (measured faster on CPU: benchmarks/export_latency.py).
    "two": prefix.onnx (the KV cache) + denoise.onnx, for a runtime that reuses one prefix over several
    denoising passes."""
    num_steps: int = 0
    """K Euler steps unrolled in the graph; 0: the checkpoint's."""
    tensorrt: bool = False
    """Also build a TensorRT engine (needs tensorrt; the docker/gpu image has it)."""
    precision: str = "fp32"
    """TensorRT precision: fp32, fp16 or bf16."""

    def __post_init__(self) -> None:
        if self.graph not in ("one", "two"):
            raise ValueError(f"export.graph must be 'one' or 'two', got {self.graph!r}")
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"export.precision must be fp32, fp16 or bf16, got {self.precision!r}")
        if self.num_steps < 0:
            raise ValueError(f"export.num_steps must be >= 0 (0: the checkpoint's), got {self.num_steps}")
