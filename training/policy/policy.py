"""The policy behind a plain `infer(obs) -> actions`: validation, normalization, padding and tokenization
around the network (openpi style).

Observation batch (docs/design.md): {"images": {camera: uint8 (N, S, S, 3)}, "state": float32 (N, S_real),
"instruction": list[str] of length N}. Actions: float32 (N, H, A_real) in the env's units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.action_space import ActionSpace
from core.normalize import NormMode, NormStats, Stats, normalize, unnormalize
from core.observation import ObservationError, pad_last, validate_observation  # noqa: F401 (re-export)
from core.tokenizer import Tokenizer, WordTokenizer, tokenize
from training.policy.config import PolicyConfig, SamplerConfig
from training.policy.model import FlowVLA, Observation
from training.policy.sampling import sample_ode


def fake_obs(cfg: PolicyConfig, batch: int = 2, state_dim: int | None = None, instruction: str = "pick up the cube",
             seed: int = 0) -> dict[str, Any]:
    """A valid random observation batch (tests, export, benchmarks)."""
    rng = np.random.default_rng(seed)
    s = cfg.vision.image_size
    return {
        "images": {c: rng.integers(0, 256, (batch, s, s, 3), dtype=np.uint8) for c in cfg.camera_names},
        "state": rng.standard_normal((batch, state_dim or cfg.state_dim)).astype(np.float32),
        "instruction": [instruction] * batch,
    }


class Policy:
    """A trained FlowVLA with its tokenizer and norm stats. `infer` is the deterministic ODE policy."""

    def __init__(self, model: FlowVLA, tokenizer: Tokenizer, norm_stats: NormStats,
                 sampler: SamplerConfig = SamplerConfig(), action_space: ActionSpace | None = None):
        cfg = model.cfg
        if action_space is not None and action_space.dim != norm_stats.actions.dim:
            raise ValueError(f"action space {action_space.kind} has {action_space.dim} dims {action_space.names} "
                             f"but the action norm stats have {norm_stats.actions.dim}")
        if tokenizer.vocab_size > cfg.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                             f"{cfg.vocab_size}")
        if norm_stats.state.dim > cfg.state_dim or norm_stats.actions.dim > cfg.action_dim:
            raise ValueError(f"norm stats dims (state {norm_stats.state.dim}, actions {norm_stats.actions.dim}) "
                             f"exceed the model's padded dims ({cfg.state_dim}, {cfg.action_dim})")
        self.model, self.tokenizer, self.norm_stats, self.sampler = model, tokenizer, norm_stats, sampler
        self.action_space = action_space

    @classmethod
    def create(cls, cfg: PolicyConfig, instructions: list[str], states: np.ndarray, actions: np.ndarray,
               norm_mode: NormMode = "zscore", sampler: SamplerConfig = SamplerConfig(), seed: int = 0,
               action_space: ActionSpace | None = None) -> "Policy":
        """A fresh policy for a dataset: word tokenizer from its instructions, norm stats from its states
        (N, S_real) and actions (N, H, A_real), weights initialised with `seed`."""
        tokenizer = WordTokenizer.build(instructions, cfg.vocab_size)
        stats = NormStats(Stats.from_data(states), Stats.from_data(actions), norm_mode)
        torch.manual_seed(seed)
        return cls(FlowVLA(cfg), tokenizer, stats, sampler, action_space)

    @property
    def cfg(self) -> PolicyConfig:
        return self.model.cfg

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prepare(self, obs: dict[str, Any]) -> Observation:
        """Validate, normalize, pad and tokenize a raw observation batch into model inputs."""
        validate_observation(obs, self.cfg.camera_names, self.cfg.vision.image_size, self.norm_stats.state.dim)
        ns = self.norm_stats
        state = pad_last(normalize(np.asarray(obs["state"]), ns.state, ns.mode), self.cfg.state_dim)
        tokens, mask = tokenize(self.tokenizer, list(obs["instruction"]), self.cfg.max_token_len,
                                state=None if self.cfg.state_token else state)
        dev = self.device
        return Observation(
            images={c: torch.as_tensor(np.ascontiguousarray(obs["images"][c]), device=dev)
                    for c in self.cfg.camera_names},
            state=torch.as_tensor(state, device=dev),
            tokens=torch.as_tensor(tokens, device=dev),
            token_mask=torch.as_tensor(mask, device=dev),
        )

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Env-unit actions (..., A_real) -> normalized, padded (..., action_dim)."""
        ns = self.norm_stats
        return pad_last(normalize(actions, ns.actions, ns.mode), self.cfg.action_dim)

    def unnormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Model actions (..., action_dim) -> env units with padding cut (..., A_real)."""
        ns = self.norm_stats
        return unnormalize(actions[..., : ns.actions.dim], ns.actions, ns.mode)

    @torch.no_grad()
    def infer(self, obs: dict[str, Any], noise: np.ndarray | None = None) -> np.ndarray:
        """obs -> action chunk float32 (N, H, A_real). `noise` (N, H, action_dim) fixes the initial draw."""
        self.model.eval()
        inputs = self.prepare(obs)
        n = inputs.batch_size
        shape = (n, self.cfg.action_horizon, self.cfg.action_dim)
        if noise is None:
            x0 = torch.randn(shape, device=self.device)
        else:
            if noise.shape != shape:
                raise ValueError(f"noise must have shape {shape}, got {noise.shape}")
            x0 = torch.as_tensor(noise, dtype=torch.float32, device=self.device)
        cache = self.model.encode_prefix(inputs)
        actions = sample_ode(self.model, cache, inputs.state, x0, self.sampler.num_steps)
        return self.unnormalize_actions(actions.cpu().numpy())
