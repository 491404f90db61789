"""The SFT config: one frozen dataclass for `pirl-train sft` and the pipeline's `sft:` section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SFTConfig:
    data: tuple[str, ...] = ("data/demos",)
    """Demo dataset directories (`pirl-train demos` writes them); several train one multi-task policy."""
    out: str = "runs/sft"
    preset: str = "tiny"
    """Policy size: tiny (CPU), small, pi0, pi05 (training/policy/presets.py)."""
    max_episodes: int = 0
    """Use at most this many successful episodes per dataset (0: all): the few-shot size."""
    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 32
    lr: float = 1e-3
    """Peak AdamW learning rate (tiny models from scratch like it high; pi0 fine-tuning uses ~2.5e-5)."""
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    train_prefix: bool = True
    """SFT trains the whole VLA (a from-scratch tiny model must learn to see); PPO freezes the prefix."""
    val_episodes: int = 1
    """Episodes per dataset held out for the validation loss (0: none)."""
    val_every: int = 100
    eval_every: int = 0
    """Evaluate the ODE policy in simulation every N steps and at the end (0: never; the pipeline evaluates
    the final checkpoint itself)."""
    eval_episodes_per_env: int = 5
    eval_envs: int = 2
    eval_max_episode_steps: int = 0
    """0: the simulator's default."""
    eval_num_executed: int = 5
    """Actions executed per chunk in the evaluation (PPO's default)."""
    use_state: bool = True
    """Feed the robot state (joint positions) to the policy; False: images and instruction only (see
    PolicyConfig.use_state)."""
    value_source: str = ""
    """Override the preset's critic input: "expert" (pi0 style) or "prefix" (pi0.5 style); "" keeps it."""
    action_horizon: int = 0
    """Override the preset's chunk length H (RLinf's ManiSkill pi0: 8); 0 keeps it."""
    device: str = "auto"
    """"auto" (a GPU when CUDA is available, else the CPU), "cpu" or "cuda"."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"sft.{name} must be >= 1, got {getattr(self, name)}")
        if self.action_horizon < 0:
            raise ValueError(f"sft.action_horizon must be >= 1 (0: the preset's), got {self.action_horizon}")
        if self.value_source not in ("", "expert", "prefix"):
            raise ValueError(f"sft.value_source must be '', 'expert' or 'prefix', got {self.value_source!r}")
