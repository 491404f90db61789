"""The config tree of `pirl-train pipeline`: one frozen dataclass whose sections are the stages' own configs.

    PipelineConfig            tasks, demos, seed, methods
    ├── sft: SFTConfig        few-shot flow-matching SFT
    ├── ppo: PPORunConfig     envs, evaluation, checkpoints
    │   └── algo: PPOConfig   the PPO algorithm
    │       └── sampler: SamplerConfig
    ├── export: ExportConfig  the ONNX engine of the chosen PPO policy
    └── engine_eval: EngineEvalConfig

A YAML file (`--config`) sets any of it; `--section.field value` overrides it (`--ppo.algo.lr 3e-5`). The stage
paths (datasets, checkpoints, run directories), the tasks and the method are the pipeline's to set: it writes
them into each stage's config, and saves the resolved tree as `pipeline_config.yaml` in the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deploy.export.config import ExportConfig
from training.envs.base import EVAL_SEED_BASE
from training.ppo.config import PPO_METHODS, PPORunConfig
from training.sft.config import SFTConfig


@dataclass(frozen=True)
class EngineEvalConfig:
    """The exported engine, closed loop in the simulator next to the PyTorch policy it came from."""

    enabled: bool = True
    episodes: int = 0
    """Held-out episodes (the first of PPO's evaluation episodes; both runners play each); 0: as many as PPO's
    final evaluation."""

    def __post_init__(self) -> None:
        if self.episodes < 0:
            raise ValueError(f"engine_eval.episodes must be >= 0 (0: as many as PPO's evaluation), got "
                             f"{self.episodes}")


@dataclass(frozen=True)
class PipelineConfig:
    out: str = "runs/demo"
    tasks: tuple[str, ...] = ("PushCubeNarrow-v1", "PullCubeNarrow-v1")
    demo_episodes: int = 8
    """Scripted demos per task: few, so that SFT is clearly imperfect (as in the paper)."""
    expert_speed: float = 1.0
    """The scripted experts' top speed as a fraction of the controller's (training/data/experts)."""
    camera_file: str = ""
    """ManiSkill: a camera.yaml for every stage (demos record it; SFT, PPO and evaluation render through it);
    "" keeps each task's default camera."""
    image_size: int = 64
    control_mode: str = "pd_ee_delta_pos"
    """ManiSkill: the action space the whole run trains in. "pd_ee_delta_pos": end-effector deltas (the sim arm
    only); "pd_joint_pos": absolute joint targets + finger position, which the Franka launch paths
    (robot:=forward / jtc) execute."""
    workers: int = 2
    """Processes collecting demos."""
    methods: tuple[str, ...] = ("flow_noise",)
    """PPO methods to run from the same SFT checkpoint (flow_noise, flow_sde, fpo); each overrides
    ppo.algo.sampler.method."""
    seed: int = 0
    """Repeats the run with other randomness: demo seeds start at 1000 * seed, and seed is added to the SFT
    and PPO seeds (held-out evaluation seeds stay the same); docs/results/2026-12-04-cpu-demo.md has seeds 0-8."""
    sft: SFTConfig = field(default_factory=SFTConfig)
    ppo: PPORunConfig = field(default_factory=PPORunConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    """The first method's chosen PPO policy as an ONNX engine (export.enabled false: skip)."""
    engine_eval: EngineEvalConfig = field(default_factory=EngineEvalConfig)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks is empty: name at least one ManiSkill task or LIBERO SUITE/INDEX")
        if not self.methods or set(self.methods) - set(PPO_METHODS):
            raise ValueError(f"methods must be a non-empty list of flow_noise / flow_sde / fpo, "
                             f"got {list(self.methods)}")
        if self.seed < 0 or 1000 * self.seed + self.demo_episodes > EVAL_SEED_BASE:
            raise ValueError(f"seed must be in 0..{(EVAL_SEED_BASE - self.demo_episodes) // 1000} (demo seeds "
                             f"1000 * seed + i stay below the held-out seeds from {EVAL_SEED_BASE}), got {self.seed}")
