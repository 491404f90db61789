"""The pi0-style flow-matching VLA, readable in one sitting.

    prefix  = [image tokens of each camera | instruction tokens]      -> VLM decoder (prefix weights)
    suffix  = [state token | H noisy action tokens, with flow time t]  -> action expert (its own weights)

Both run in the same layers: every layer computes Q/K/V for each expert with that expert's weights and
attends over the concatenation with pi0's block-causal mask (prefix bidirectional and blind to the suffix;
state token sees prefix + itself; action tokens see prefix, state and each other). Because the prefix never
sees the suffix, its keys/values are computed once per observation (`encode_prefix`) and reused by every
denoising step (`velocity`). `velocity_uncached` runs the joint sequence instead; the two agree.

Flow convention (openpi): t=1 is noise, t=0 is the action; x_t = t*eps + (1-t)*a; v_target = eps - a.
Shapes: B batch, H horizon, A action_dim (padded), Lp prefix tokens, Ls = 1 + H suffix tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.policy.config import PolicyConfig
from training.policy.heads import NoiseNet, ValueHead
from training.policy.layers import DecoderBlock, RMSNorm, attention, posemb_sincos
from training.policy.vision import VisionEncoder


@dataclass
class Observation:
    """Model-ready inputs (already validated, normalized, padded and tokenized; see `policy.Policy`)."""

    images: dict[str, Tensor]  # camera -> uint8 (B, S, S, 3), S = vision.image_size
    state: Tensor  # float32 (B, state_dim)
    tokens: Tensor  # int64 (B, max_token_len)
    token_mask: Tensor  # bool (B, max_token_len), True = real token

    @property
    def batch_size(self) -> int:
        return self.state.shape[0]


@dataclass
class PrefixCache:
    """Per-layer keys/values of the prefix, computed once per observation."""

    keys: list[Tensor]  # per layer (B, Hkv, Lp, Dh), RoPE applied
    values: list[Tensor]  # per layer (B, Hkv, Lp, Dh)
    mask: Tensor  # bool (B, Lp): valid prefix tokens
    pooled: Tensor  # (B, prefix.width): mean of the final-normed prefix output over valid tokens

    def repeat(self, n: int) -> "PrefixCache":
        """The same cache for n samples per observation: batch b -> rows b*n .. b*n+n-1."""
        rep = lambda x: x.repeat_interleave(n, dim=0)  # noqa: E731
        return PrefixCache([rep(k) for k in self.keys], [rep(v) for v in self.values], rep(self.mask),
                           rep(self.pooled))


@dataclass
class VelocityOutput:
    velocity: Tensor  # (B, H, A)
    action_features: Tensor  # (B, H, expert.width): final-normed action-expert output per action token


class FlowVLA(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        pw, ew = cfg.prefix.width, cfg.expert.width
        adarms = cfg.time_conditioning == "adarms"
        cond_dim = ew if adarms else None

        # Prefix: vision + language -> VLM decoder.
        self.vision = VisionEncoder(cfg.vision, out_dim=pw)
        self.token_embed = nn.Embedding(cfg.vocab_size, pw)
        self.prefix_blocks = nn.ModuleList(DecoderBlock(cfg.prefix) for _ in range(cfg.prefix.depth))
        self.prefix_norm = RMSNorm(pw)

        # Suffix: state + noisy actions with time -> action expert.
        self.state_proj = nn.Linear(cfg.state_dim, ew) if cfg.state_token else None  # pi0.5: state in the prompt
        self.action_in_proj = nn.Linear(cfg.action_dim, ew)
        if adarms:  # pi0.5: time -> MLP -> conditioning vector of every adaptive RMSNorm
            self.time_mlp_in = nn.Linear(ew, ew)
            self.time_mlp_out = nn.Linear(ew, ew)
        else:  # pi0: [action token, time embedding] -> MLP -> action token
            self.action_time_mlp_in = nn.Linear(2 * ew, ew)
            self.action_time_mlp_out = nn.Linear(ew, ew)
        self.expert_blocks = nn.ModuleList(DecoderBlock(cfg.expert, cond_dim) for _ in range(cfg.expert.depth))
        self.expert_norm = RMSNorm(ew, cond_dim)
        self.action_out_proj = nn.Linear(ew, cfg.action_dim)

        # RL-only heads; neither is part of the deterministic (exported) policy.
        self.noise_net: NoiseNet | None = NoiseNet(ew, cfg.noise_hidden, cfg.action_dim, cfg.noise_std_min,
                                                   cfg.noise_std_max)
        value_in = ew if cfg.value_source == "expert" else pw
        self.value_head: ValueHead | None = ValueHead(value_in, cfg.value_hidden)

        self.apply(self._init_weights)

    def drop_rl_heads(self) -> "FlowVLA":
        """Remove the noise network and value head (the deterministic policy needs neither)."""
        self.noise_net = None
        self.value_head = None
        return self

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # `apply` visits children before parents, so the adaptive-norm zero init below wins.
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        elif isinstance(m, RMSNorm) and m.modulation is not None:
            nn.init.zeros_(m.modulation.weight)  # adaLN-zero: blocks start as identity
            nn.init.zeros_(m.modulation.bias)

    # ------------------------------------------------------------------ prefix
    def prefix_parameters(self) -> list[nn.Parameter]:
        mods = [self.vision, self.token_embed, self.prefix_blocks, self.prefix_norm]
        return [p for m in mods for p in m.parameters()]

    def set_prefix_trainable(self, trainable: bool) -> None:
        """Freeze (default for RL) or unfreeze the VLM prefix: vision, embeddings, prefix decoder."""
        for p in self.prefix_parameters():
            p.requires_grad_(trainable)

    @property
    def prefix_trainable(self) -> bool:
        return any(p.requires_grad for p in self.prefix_parameters())

    def embed_prefix(self, obs: Observation) -> tuple[Tensor, Tensor]:
        """-> tokens (B, Lp, pw), mask (B, Lp). Image tokens per camera in config order, then language."""
        b, s, cfg = obs.batch_size, self.cfg.vision.image_size, self.cfg
        for name in cfg.camera_names:
            img = obs.images.get(name)
            if img is None or img.shape != (b, s, s, 3) or img.dtype != torch.uint8:
                got = None if img is None else (tuple(img.shape), img.dtype)
                raise ValueError(f"camera {name!r}: expected uint8 ({b}, {s}, {s}, 3), got {got}")
        if obs.tokens.shape != (b, cfg.max_token_len) or obs.token_mask.shape != obs.tokens.shape:
            raise ValueError(f"tokens and token_mask must be ({b}, {cfg.max_token_len}), got "
                             f"{tuple(obs.tokens.shape)} and {tuple(obs.token_mask.shape)}")
        image_tokens = [self.vision(obs.images[name]) for name in self.cfg.camera_names]  # each (B, P, pw)
        # Gemma scales token embeddings by sqrt(width).
        lang = self.token_embed(obs.tokens) * math.sqrt(self.cfg.prefix.width)  # (B, Lt, pw)
        tokens = torch.cat([*image_tokens, lang], dim=1)
        image_mask = torch.ones(b, self.cfg.num_image_tokens, dtype=torch.bool, device=tokens.device)
        return tokens, torch.cat([image_mask, obs.token_mask], dim=1)

    def encode_prefix(self, obs: Observation) -> PrefixCache:
        """Run the prefix once; keep each layer's K/V for the denoising steps."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.prefix_trainable):
            x, mask = self.embed_prefix(obs)
            positions = torch.cumsum(mask.long(), dim=1) - 1  # padding does not advance positions
            attn_mask = mask[:, None, :].expand(-1, mask.shape[1], -1)  # (B, Lp, Lp) bidirectional
            keys, values = [], []
            for block in self.prefix_blocks:
                q, k, v, gate = block.qkv(x, positions, None, self.cfg.rope_max_wavelength)
                x = block.finish(x, attention(q, k, v, attn_mask), gate, None)
                keys.append(k)
                values.append(v)
            out, _ = self.prefix_norm(x)
            pooled = (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return PrefixCache(keys, values, mask, pooled)

    # ------------------------------------------------------------------ suffix
    def embed_suffix(self, state: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor | None]:
        """state (B, S), x_t (B, H, A), t (B,) -> tokens (B, [1 +] H, ew), adaRMS conditioning (B, ew) or None.
        Without a state token (pi0.5) the state reached the model through the prompt and is not read here."""
        b, c = x_t.shape[0], self.cfg
        if x_t.shape != (b, c.action_horizon, c.action_dim) or state.shape != (b, c.state_dim) or t.shape != (b,):
            raise ValueError(f"expected x_t ({b}, {c.action_horizon}, {c.action_dim}), state ({b}, {c.state_dim}), "
                             f"t ({b},); got {tuple(x_t.shape)}, {tuple(state.shape)}, {tuple(t.shape)}")
        ew = self.cfg.expert.width
        action_tok = self.action_in_proj(x_t)  # (B, H, ew)
        time_emb = posemb_sincos(t, ew).to(action_tok.dtype)  # (B, ew)
        if self.cfg.time_conditioning == "adarms":
            cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(time_emb))))
        else:
            time_tok = time_emb[:, None, :].expand_as(action_tok)
            mixed = self.action_time_mlp_in(torch.cat([action_tok, time_tok], dim=-1))  # (B, H, ew)
            action_tok = self.action_time_mlp_out(F.silu(mixed))
            cond = None
        if self.state_proj is None:
            return action_tok, cond
        if not self.cfg.use_state:
            state = torch.zeros_like(state)
        state_tok = self.state_proj(state)[:, None, :]  # (B, 1, ew)
        return torch.cat([state_tok, action_tok], dim=1), cond

    def _suffix_mask(self, prefix_mask: Tensor) -> Tensor:
        """(B, Ls, Lp + Ls): suffix sees valid prefix tokens; state sees itself; actions see state + actions."""
        b, ls = prefix_mask.shape[0], self.cfg.suffix_len
        block = torch.ones(ls, dtype=torch.long, device=prefix_mask.device)
        if self.cfg.state_token:
            block[0] = 0  # state token is block 0, action tokens block 1
        suffix_part = block[None, :] <= block[:, None]  # (Ls, Ls): key block <= query block
        return torch.cat([prefix_mask[:, None, :].expand(-1, ls, -1), suffix_part.expand(b, -1, -1)], dim=2)

    def _suffix_positions(self, prefix_mask: Tensor) -> Tensor:
        start = prefix_mask.long().sum(1, keepdim=True)  # (B, 1)
        return start + torch.arange(self.cfg.suffix_len, device=prefix_mask.device)[None, :]

    def _expert_output(self, x: Tensor, cond: Tensor | None) -> VelocityOutput:
        out, _ = self.expert_norm(x, cond)
        feats = out[:, int(self.cfg.state_token):, :]  # drop the state token -> (B, H, ew)
        return VelocityOutput(self.action_out_proj(feats), feats)

    def velocity(self, cache: PrefixCache, state: Tensor, x_t: Tensor, t: Tensor) -> VelocityOutput:
        """Velocity at (x_t, t), reusing the prefix cache. state (B, S), x_t (B, H, A), t (B,)."""
        x, cond = self.embed_suffix(state, x_t, t)
        positions = self._suffix_positions(cache.mask)
        mask = self._suffix_mask(cache.mask)
        for block, k_prefix, v_prefix in zip(self.expert_blocks, cache.keys, cache.values, strict=True):
            q, k, v, gate = block.qkv(x, positions, cond, self.cfg.rope_max_wavelength)
            out = attention(q, torch.cat([k_prefix, k], dim=2), torch.cat([v_prefix, v], dim=2), mask)
            x = block.finish(x, out, gate, cond)
        return self._expert_output(x, cond)

    def velocity_uncached(self, obs: Observation, x_t: Tensor, t: Tensor) -> VelocityOutput:
        """Velocity from one joint pass over [prefix | suffix] (no cache): the reference the cache must match."""
        xp, pmask = self.embed_prefix(obs)
        xs, cond = self.embed_suffix(obs.state, x_t, t)
        lp = xp.shape[1]
        positions = torch.cat([torch.cumsum(pmask.long(), 1) - 1, self._suffix_positions(pmask)], dim=1)
        prefix_rows = torch.cat([pmask[:, None, :].expand(-1, lp, -1),
                                 torch.zeros(xp.shape[0], lp, self.cfg.suffix_len, dtype=torch.bool,
                                             device=xp.device)], dim=2)
        mask = torch.cat([prefix_rows, self._suffix_mask(pmask)], dim=1)  # (B, Lp + Ls, Lp + Ls)
        rw = self.cfg.rope_max_wavelength
        for pblock, eblock in zip(self.prefix_blocks, self.expert_blocks, strict=True):
            qp, kp, vp, gp = pblock.qkv(xp, positions[:, :lp], None, rw)
            qs, ks, vs, gs = eblock.qkv(xs, positions[:, lp:], cond, rw)
            out = attention(torch.cat([qp, qs], 2), torch.cat([kp, ks], 2), torch.cat([vp, vs], 2), mask)
            xp = pblock.finish(xp, out[:, :, :lp], gp, None)
            xs = eblock.finish(xs, out[:, :, lp:], gs, cond)
        return self._expert_output(xs, cond)

    # ------------------------------------------------------------------ heads
    def value(self, cache: PrefixCache, action_features: Tensor | None) -> Tensor:
        """Critic value (B,): pi0 style on mean-pooled action-expert features (pass the features of the
        chain's first denoising step), pi0.5 style on the pooled prefix output. The critic reads those
        features but its loss never flows back into them: the actor is shaped by the policy loss alone (and
        critic warm-up really trains the critic only)."""
        if self.value_head is None:
            raise ValueError("this model's value head was dropped (drop_rl_heads); load the training checkpoint")
        if self.cfg.value_source == "prefix":
            return self.value_head(cache.pooled.detach())
        if action_features is None:
            raise ValueError("value_source='expert' needs the action-expert features of the first denoising step")
        return self.value_head(action_features.detach().mean(dim=1))

    def flow_matching_loss(self, obs: Observation, actions: Tensor, loss_mask: Tensor,
                           noise: Tensor | None = None, time: Tensor | None = None) -> Tensor:
        """Behaviour-cloning loss. actions (B, H, A) normalized and padded; loss_mask (B, H, A) bool marks
        real action dimensions of real (not past-episode-end) steps. Returns a scalar."""
        b = actions.shape[0]
        if noise is None:
            noise = torch.randn_like(actions)
        if time is None:  # pi0: t ~ Beta(1.5, 1), kept off exactly 0
            time = torch.distributions.Beta(1.5, 1.0).sample((b,)).to(actions) * 0.999 + 0.001
        tt = time[:, None, None]
        x_t = tt * noise + (1 - tt) * actions
        v = self.velocity(self.encode_prefix(obs), obs.state, x_t, time).velocity
        err = (v - (noise - actions)).pow(2)
        m = loss_mask.to(err.dtype)
        return (err * m).sum() / m.sum().clamp(min=1)
