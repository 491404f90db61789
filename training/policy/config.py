"""Frozen, validated configs for the flow-matching VLA policy.

`PolicyConfig` describes the network (sizes, cameras, horizon, conditioning style) and travels inside every
checkpoint as config.json. `SamplerConfig` describes how actions are drawn from it (ODE, Flow-SDE,
Flow-Noise) and is a run setting, not part of the weights.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

TimeConditioning = Literal["mlp", "adarms"]
ValueSource = Literal["expert", "prefix"]
SamplerMethod = Literal["ode", "flow_sde", "flow_noise", "fpo"]
ChainMode = Literal["joint", "hybrid"]
LogProbReduction = Literal["element", "token_level", "sum", "mean_steps"]
CriticInput = Literal["first_step", "steps_mean"]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class VisionConfig:
    """SigLIP-style ViT: non-overlapping patches, pre-LN blocks."""

    image_size: int = 64
    """Square input resolution in pixels (images are resized to this before the policy)."""
    patch_size: int = 8
    width: int = 128
    depth: int = 2
    mlp_dim: int = 256
    num_heads: int = 4
    pos_embed: str = "learned"
    """"learned" (SigLIP's, so released weights load) or "sincos2d": fixed 2-D sine-cosine positions (MAE), the
    usual choice for a ViT trained from scratch, which must otherwise learn positions from little data; the
    small presets use them (no better or worse on the full-range CPU tasks: docs/results/2026-12-04-cpu-demo.md)."""

    def __post_init__(self) -> None:
        _check(self.image_size % self.patch_size == 0,
               f"vision.image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        _check(self.width % self.num_heads == 0,
               f"vision.width {self.width} must be divisible by num_heads {self.num_heads}")
        _check(self.pos_embed in ("learned", "sincos2d"),
               f"vision.pos_embed must be 'learned' or 'sincos2d', got {self.pos_embed!r}")
        _check(self.pos_embed != "sincos2d" or self.width % 4 == 0,
               f"vision.width {self.width} must be a multiple of 4 for sincos2d positions")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class DecoderConfig:
    """Gemma-style decoder: RMSNorm, RoPE, grouped-query attention, gated GELU MLP."""

    width: int = 128
    depth: int = 4
    mlp_dim: int = 384
    num_heads: int = 4
    num_kv_heads: int = 1
    head_dim: int = 32

    def __post_init__(self) -> None:
        _check(self.num_heads % self.num_kv_heads == 0,
               f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}")
        _check(self.head_dim % 2 == 0, f"head_dim {self.head_dim} must be even for RoPE")


@dataclass(frozen=True)
class PolicyConfig:
    """A pi0-style flow-matching VLA. Sizes come from a preset (`training.policy.presets`)."""

    name: str = "tiny"
    vision: VisionConfig = field(default_factory=VisionConfig)
    prefix: DecoderConfig = field(default_factory=DecoderConfig)
    """The VLM decoder over image and instruction tokens (PaliGemma's gemma_2b in pi0)."""
    expert: DecoderConfig = field(default_factory=lambda: DecoderConfig(width=96, mlp_dim=256))
    """The action expert over the state and action tokens (gemma_300m in pi0). It shares the
    prefix's attention layout (depth, heads, head_dim) because both attend in the same layers."""
    vocab_size: int = 512
    max_token_len: int = 16
    """Instruction tokens (after tokenization, including BOS); longer instructions are an error."""
    camera_names: tuple[str, ...] = ("base",)
    state_dim: int = 8
    """Model-side state size; a robot's real state is zero-padded up to it."""
    use_state: bool = True
    """False: the state token reads zeros (no proprioception). With a few demos the joint positions predict the
    next action well enough for a policy to lean on them rather than on the image (the "copycat" shortcut);
    without them it must find the object in the image."""
    state_token: bool = True
    """pi0 (True): the state enters the action expert as one token before the action tokens. pi0.5 (False): no
    state token; the state, normalized and discretised into 256 bins, is written into the prompt
    ("Task: ..., State: 12 200 ...;\nAction: ", `tokenizer.state_prompts`) and the actions follow the prefix."""
    action_dim: int = 8
    """Model-side action size; a robot's real action is zero-padded up to it (pi0: 32)."""
    action_horizon: int = 8
    """H: actions per chunk (pi0: 50)."""
    time_conditioning: TimeConditioning = "mlp"
    """"mlp": pi0 (time mixed into action tokens by an MLP); "adarms": pi0.5 (adaptive RMSNorm)."""
    value_source: ValueSource = "expert"
    """Value head input: mean-pooled action-expert output (pi0 style) or prefix output (pi0.5 style)."""
    value_hidden: int = 128
    noise_hidden: int = 64
    noise_std_min: float = 0.08
    noise_std_max: float = 0.16
    """Flow-Noise std range; the noise network's output is squashed into it."""
    rope_max_wavelength: float = 10_000.0

    def __post_init__(self) -> None:
        for attr in ("depth", "num_heads", "num_kv_heads", "head_dim"):
            _check(getattr(self.prefix, attr) == getattr(self.expert, attr),
                   f"prefix.{attr}={getattr(self.prefix, attr)} != expert.{attr}={getattr(self.expert, attr)}: "
                   "the action expert attends jointly with the prefix, layer by layer, so they must match")
        _check(len(self.camera_names) >= 1, "camera_names must name at least one camera")
        _check(len(set(self.camera_names)) == len(self.camera_names), f"duplicate camera names: {self.camera_names}")
        _check(0 < self.noise_std_min < self.noise_std_max,
               f"need 0 < noise_std_min < noise_std_max, got {self.noise_std_min}, {self.noise_std_max}")
        _check(self.time_conditioning in ("mlp", "adarms"),
               f"time_conditioning must be 'mlp' or 'adarms', got {self.time_conditioning!r}")
        _check(self.value_source in ("expert", "prefix"),
               f"value_source must be 'expert' or 'prefix', got {self.value_source!r}")
        _check(self.max_token_len >= 2, "max_token_len must be at least 2 (BOS plus one token)")

    @property
    def num_image_tokens(self) -> int:
        return self.vision.num_patches * len(self.camera_names)

    @property
    def prefix_len(self) -> int:
        return self.num_image_tokens + self.max_token_len

    @property
    def suffix_len(self) -> int:
        return int(self.state_token) + self.action_horizon  # [state token] + H action tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PolicyConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown PolicyConfig fields {unknown}; known fields: {sorted(known)}")
        d = dict(d)
        d["vision"] = VisionConfig(**d.get("vision", {}))
        d["prefix"] = DecoderConfig(**d.get("prefix", {}))
        d["expert"] = DecoderConfig(**d.get("expert", {}))
        if "camera_names" in d:
            d["camera_names"] = tuple(d["camera_names"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


@dataclass(frozen=True)
class SamplerConfig:
    """How an action chunk is drawn (docs/algorithms.md). Defaults follow the piRL paper."""

    num_steps: int = 4
    """K: Euler denoising steps from t=1 (noise) to t=0 (action)."""
    method: SamplerMethod = "ode"
    """"ode" (deterministic; evaluation and export), "flow_sde" or "flow_noise" (RL rollouts with a chain
    likelihood), or "fpo" (Flow Policy Optimization: ODE rollouts from random noise, the ratio from
    flow-matching losses, no chain likelihood)."""
    noise_level: float = 0.5
    """Flow-SDE a in sigma_t = a * sqrt(t / (1 - t)); 0.3..0.5 recommended."""
    noise_level_end: float | None = None
    """If set, a is annealed linearly from noise_level to this over noise_anneal_updates."""
    noise_anneal_updates: int = 400
    chain_mode: ChainMode | None = None
    """"joint" (every step stochastic) or "hybrid" (one random step stochastic). None: the method's
    default (joint for flow_noise, hybrid for flow_sde)."""
    log_prob_reduction: LogProbReduction = "mean_steps"
    """"element" (per action element, summed over steps), "token_level" (per action element, averaged over the
    counted terms: RLinf's `logprob_type: token_level`), "sum" (per chunk, summed over steps) or "mean_steps"
    (per chunk, averaged over the counted terms: piRL's tempered ratio, RLinf's `chunk_level`)."""
    fpo_draws: int = 8
    """FPO: Monte-Carlo (t, eps) draws of the flow-matching loss per chunk (the ratio's estimate)."""
    fpo_weighting: str = "uniform"
    """FPO: "uniform" (the paper's plain loss) or "elbo" (weight (1 - t) / t: the likelihood ratio itself for
    an exact velocity field, with a variance that grows near t = 0)."""

    def __post_init__(self) -> None:
        _check(self.num_steps >= 1, f"num_steps must be >= 1, got {self.num_steps}")
        _check(self.fpo_draws >= 1, f"fpo_draws must be >= 1, got {self.fpo_draws}")
        _check(self.fpo_weighting in ("uniform", "elbo"),
               f"fpo_weighting must be 'uniform' or 'elbo', got {self.fpo_weighting!r}")
        _check(self.method in ("ode", "flow_sde", "flow_noise", "fpo"), f"unknown sampler method {self.method!r}")
        _check(self.noise_level >= 0, f"noise_level must be >= 0, got {self.noise_level}")
        _check(self.chain_mode in (None, "joint", "hybrid"), f"unknown chain_mode {self.chain_mode!r}")
        _check(self.log_prob_reduction in ("element", "token_level", "sum", "mean_steps"),
               f"unknown log_prob_reduction {self.log_prob_reduction!r}; use 'element', 'token_level', 'sum' "
               "or 'mean_steps'")
        if self.method == "flow_sde" and self.num_steps < 2:
            # piRL: K=1 with SDE badly distorts the action distribution (62.6% -> 9.4% train success).
            raise ValueError("flow_sde needs num_steps >= 2 (K=1 distorts the action distribution)")
        if self.method == "flow_noise" and self.chain_mode == "hybrid":
            raise ValueError("hybrid chains are defined for flow_sde; flow_noise uses chain_mode='joint'")

    @property
    def resolved_chain_mode(self) -> ChainMode:
        if self.chain_mode is not None:
            return self.chain_mode
        return "hybrid" if self.method == "flow_sde" else "joint"

    def noise_level_at(self, update: int) -> float:
        """Flow-SDE noise level a after `update` PPO updates (linear anneal when configured)."""
        if self.noise_level_end is None:
            return self.noise_level
        frac = min(max(update / max(self.noise_anneal_updates, 1), 0.0), 1.0)
        return self.noise_level + frac * (self.noise_level_end - self.noise_level)
