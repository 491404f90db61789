"""Denoising chains: the deterministic ODE policy, and the stochastic chains PPO needs with their exact
log-likelihoods (docs/algorithms.md, "Chain log-likelihood").

A chain of K steps stores its states x_0 (noise, t=1) ... x_K (action, t=0) and one log-prob *term* per
stochastic transition, shape (B, K + 1, H, A): term 0 is the initial draw x_0 ~ N(0, I), term i + 1 the
transition x_i -> x_{i+1}. `term_mask` (B, K + 1) says which terms count:
    joint   every term (the initial draw and all K steps), Flow-Noise's default;
    hybrid  exactly one transition j ~ U{0..K-1} per sample is an SDE step, the rest ODE; only its term.
Only the executed actions and the env's real action dims enter a log-prob (`element_mask`, (H, A)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from training.policy.config import CriticInput, LogProbReduction, SamplerConfig
from training.policy.model import FlowVLA, Observation, PrefixCache
from training.policy.samplers import (
    draw,
    flow_noise_step,
    flow_sde_step,
    gaussian_entropy,
    gaussian_log_prob,
    ode_step,
    time_grid,
)


@dataclass
class ChainSample:
    actions: Tensor  # (B, H, A) = chain[:, -1]
    chain: Tensor  # (B, K + 1, H, A)
    term_log_probs: Tensor  # (B, K + 1, H, A), zero where a term is not stochastic
    term_mask: Tensor  # bool (B, K + 1)
    hybrid_step: Tensor | None  # long (B,): the stochastic step j of a hybrid chain
    value: Tensor | None  # (B,) critic value
    entropy: Tensor | None  # (B,) mean per-element Gaussian entropy of the stochastic steps (Flow-Noise bonus)


def element_mask(horizon: int, action_dim: int, num_executed: int | None, real_action_dim: int | None,
                 device: torch.device | str | None = None) -> Tensor:
    """(H, A) bool: the executed steps of the chunk times the env's real action dims (padding excluded)."""
    m = torch.zeros(horizon, action_dim, dtype=torch.bool, device=device)
    m[: num_executed or horizon, : real_action_dim or action_dim] = True
    return m


def reduce_log_prob(term_log_probs: Tensor, term_mask: Tensor, elem_mask: Tensor,
                    reduction: LogProbReduction) -> Tensor:
    """Combine per-term, per-element log-probs into what PPO's ratio uses.

    element     (B, H, A): summed over counted terms, zero outside `elem_mask`;
    token_level (B, H, A): averaged over counted terms, zero outside `elem_mask` (RLinf's token_level);
    sum         (B,): summed over counted terms and masked elements (the chain's exact log-likelihood);
    mean_steps  (B,): per-term sums averaged over the counted terms (piRL's tempered ratio).
    """
    lp = term_log_probs * term_mask[:, :, None, None] * elem_mask  # (B, K + 1, H, A)
    if reduction == "element":
        return lp.sum(1)
    if reduction == "token_level":
        return lp.sum(1) / term_mask.sum(1).clamp(min=1)[:, None, None]
    per_term = lp.sum((2, 3))  # (B, K + 1)
    if reduction == "sum":
        return per_term.sum(1)
    if reduction == "mean_steps":
        return per_term.sum(1) / term_mask.sum(1).clamp(min=1)
    raise ValueError(f"unknown log_prob_reduction {reduction!r}; use 'element', 'token_level', 'sum' or "
                     "'mean_steps'")


@torch.no_grad()
def sample_ode(model: FlowVLA, cache: PrefixCache, state: Tensor, noise: Tensor, num_steps: int,
               guide_actions: Tensor | None = None, guide_weights: Tensor | None = None) -> Tensor:
    """The deterministic policy: K Euler steps from x_0 = noise (B, H, A) at t=1 to the action at t=0.

    Real-time chunking (optional): `guide_actions` (B, H, A), the actions already committed for the chunk's
    times (normalized), and `guide_weights` (B, H) in [0, 1] inpaint them. After every step the sample moves
    by w towards the point of the straight noise-to-action path at the new time, t' noise + (1 - t') guide, so
    at t = 0 an action with w = 1 is the committed one and w = 0 leaves the policy's own; in between the
    velocity field blends the two (RTC's soft masking, with replacement instead of a vector-Jacobian guidance
    term, so the exported graph stays plain arithmetic). Zero weights give the unguided result exactly."""
    ts = time_grid(num_steps, noise.device)
    x = noise
    for i in range(num_steps):
        t = ts[i].expand(x.shape[0])
        x = ode_step(x, model.velocity(cache, state, x, t).velocity, t, ts[i] - ts[i + 1])
        if guide_actions is not None and guide_weights is not None:
            t_next = ts[i + 1]
            x = x + guide_weights[:, :, None] * (t_next * noise + (1 - t_next) * guide_actions - x)
    return x


@torch.no_grad()
def sample_ode_uncached(model: FlowVLA, obs: Observation, noise: Tensor, num_steps: int) -> Tensor:
    """As `sample_ode` but recomputing the prefix at every step (the reference for the cache, and the
    "without cache" benchmark)."""
    ts = time_grid(num_steps, noise.device)
    x = noise
    for i in range(num_steps):
        t = ts[i].expand(x.shape[0])
        x = ode_step(x, model.velocity_uncached(obs, x, t).velocity, t, ts[i] - ts[i + 1])
    return x


def _step_params(model: FlowVLA, method: str, x: Tensor, v: Tensor, feats: Tensor, t: Tensor, delta: Tensor,
                 noise_level: float, t_first: float) -> tuple[Tensor, Tensor]:
    if method == "flow_sde":
        return flow_sde_step(x, v, t, delta, noise_level, t_first)
    if method == "flow_noise":  # without a noise network (dropped for inference) the step is the ODE step
        std = model.noise_net(feats) if model.noise_net is not None else torch.zeros_like(x)
        return flow_noise_step(x, v, t, delta, std)
    raise ValueError(f"no stochastic step for method {method!r}")


def critic_value(model: FlowVLA, cache: PrefixCache, step_features: list[Tensor], critic_input: CriticInput,
                 critic_tokens: int | None) -> Tensor:
    """The policy critic's value (B,) from the action-expert features of a chain's steps, each (B, H, W):
    "first_step" reads the first step's (pirl), "steps_mean" their mean over the K steps (RLinf); either way
    only the first `critic_tokens` action tokens (the executed ones; None: all H) are pooled. A model whose
    value reads the prefix (pi0.5 style) ignores the features."""
    feats = step_features[0] if critic_input == "first_step" else torch.stack(step_features).mean(0)
    return model.value(cache, feats[:, :critic_tokens] if critic_tokens else feats)


def sample_chain(model: FlowVLA, cache: PrefixCache, state: Tensor, cfg: SamplerConfig, *,
                 noise_level: float | None = None, noise: Tensor | None = None,
                 generator: torch.Generator | None = None, with_value: bool = True,
                 critic_input: CriticInput = "first_step", critic_tokens: int | None = None) -> ChainSample:
    """Roll out one denoising chain per sample with the configured method, recording what PPO needs.

    `noise_level` overrides cfg.noise_level (for annealing). Gradients are not tracked: the learner
    recomputes log-probs with `chain_log_probs`. `critic_input` / `critic_tokens`: see `critic_value`.
    """
    b, h, a, k = state.shape[0], model.cfg.action_horizon, model.cfg.action_dim, cfg.num_steps
    level = cfg.noise_level if noise_level is None else noise_level
    device = state.device
    ts = time_grid(k, device)
    t_first = float(ts[1])
    with torch.no_grad():
        if noise is None:
            noise = torch.randn(b, h, a, generator=generator, device=device)
        chain = [noise]
        term_lp = torch.zeros(b, k + 1, h, a, device=device)
        term_mask = torch.zeros(b, k + 1, dtype=torch.bool, device=device)
        mode = cfg.resolved_chain_mode
        hybrid_step = None
        stochastic = cfg.method not in ("ode", "fpo")  # FPO's only randomness is the initial noise
        if stochastic and mode == "joint":
            term_lp[:, 0] = gaussian_log_prob(noise, torch.zeros_like(noise), torch.ones_like(noise))
            term_mask[:] = True
        elif stochastic:  # hybrid
            hybrid_step = torch.randint(0, k, (b,), generator=generator, device=device)
            term_mask[torch.arange(b, device=device), hybrid_step + 1] = True
        entropies = []
        step_features = []
        x = noise
        for i in range(k):
            t = ts[i].expand(b)
            delta = (ts[i] - ts[i + 1]).expand(b)
            out = model.velocity(cache, state, x, t)
            step_features.append(out.action_features)
            x_ode = ode_step(x, out.velocity, t, delta)
            active = term_mask[:, i + 1]  # (B,)
            if stochastic and bool(active.any()):
                mean, std = _step_params(model, cfg.method, x, out.velocity, out.action_features, t, delta,
                                         level, t_first)
                sel = active[:, None, None]
                if not bool((std > 0).all()):  # a = 0 or no noise network: a deterministic step, no density
                    x = torch.where(sel, mean, x_ode)
                    term_mask[:, i + 1] = False
                else:
                    x_rand, lp = draw(mean, std, generator)
                    x = torch.where(sel, x_rand, x_ode)
                    term_lp[:, i + 1] = torch.where(sel, lp, torch.zeros_like(lp))
                    entropies.append((gaussian_entropy(std).mean((1, 2)), active))
            else:
                x = x_ode
            chain.append(x)
        value = None
        if with_value and model.value_head is not None:
            value = critic_value(model, cache, step_features, critic_input, critic_tokens)
        entropy = None
        if entropies:
            ent_sum = sum(e * m for e, m in entropies)
            entropy = ent_sum / sum(m.float() for _, m in entropies).clamp(min=1)
    return ChainSample(actions=x, chain=torch.stack(chain, 1), term_log_probs=term_lp, term_mask=term_mask,
                       hybrid_step=hybrid_step, value=value, entropy=entropy)


def chain_log_probs(model: FlowVLA, cache: PrefixCache, state: Tensor, chain: Tensor, term_mask: Tensor,
                    method: str, noise_level: float, hybrid_step: Tensor | None = None,
                    elem_mask: Tensor | None = None, critic_input: CriticInput = "first_step",
                    critic_tokens: int | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Recompute a stored chain's per-term log-probs under the current weights (with gradients).

    chain (B, K + 1, H, A); term_mask (B, K + 1). Hybrid chains (`hybrid_step` given) recompute only their
    one transition: a single network pass with per-sample times. Returns (term_log_probs (B, K + 1, H, A),
    entropy (B,): the per-element Gaussian entropy averaged over the counted transitions and the elements of
    `elem_mask` (H, A) (the executed steps' real dims; None: all), value (B,) or None: the critic
    (`critic_value`) when every step is recomputed, i.e. for joint chains; callers of hybrid chains use
    `chain_value` themselves).
    """
    ent_weight = (torch.ones(chain.shape[2:], device=chain.device) if elem_mask is None
                  else elem_mask.to(chain.dtype))
    ent_weight = ent_weight / ent_weight.sum()
    b, k1 = chain.shape[:2]
    k = k1 - 1
    ts = time_grid(k, chain.device)
    t_first = float(ts[1])
    term_lp = torch.zeros_like(chain)
    entropy_terms = torch.zeros(b, k1, device=chain.device)
    if term_mask[:, 0].any():
        x0 = chain[:, 0]
        term_lp[:, 0] = gaussian_log_prob(x0, torch.zeros_like(x0), torch.ones_like(x0))
    value = None
    if hybrid_step is not None:
        idx = torch.arange(b, device=chain.device)
        x, x_next = chain[idx, hybrid_step], chain[idx, hybrid_step + 1]
        t, delta = ts[hybrid_step], ts[hybrid_step] - ts[hybrid_step + 1]
        out = model.velocity(cache, state, x, t)
        mean, std = _step_params(model, method, x, out.velocity, out.action_features, t, delta, noise_level, t_first)
        term_lp = term_lp.index_put((idx, hybrid_step + 1), gaussian_log_prob(x_next, mean, std))
        entropy_terms = entropy_terms.index_put((idx, hybrid_step + 1),
                                                (gaussian_entropy(std) * ent_weight).sum((1, 2)))
    else:
        step_features = []
        for i in range(k):
            t = ts[i].expand(b)
            delta = (ts[i] - ts[i + 1]).expand(b)
            out = model.velocity(cache, state, chain[:, i], t)
            step_features.append(out.action_features)
            if not term_mask[:, i + 1].any():
                continue
            mean, std = _step_params(model, method, chain[:, i], out.velocity, out.action_features, t, delta,
                                     noise_level, t_first)
            term_lp[:, i + 1] = gaussian_log_prob(chain[:, i + 1], mean, std)
            entropy_terms[:, i + 1] = (gaussian_entropy(std) * ent_weight).sum((1, 2))
        if model.value_head is not None:
            value = critic_value(model, cache, step_features, critic_input, critic_tokens)
    trans_mask = term_mask.clone()
    trans_mask[:, 0] = False
    entropy = (entropy_terms * trans_mask).sum(1) / trans_mask.sum(1).clamp(min=1)
    return term_lp * term_mask[:, :, None, None], entropy, value


def chain_value(model: FlowVLA, cache: PrefixCache, state: Tensor, chain: Tensor, critic_input: CriticInput,
                critic_tokens: int | None) -> Tensor:
    """The policy critic's value (B,) of stored chains (B, K + 1, H, A) whose steps were not all recomputed
    (hybrid and FPO chains): the action-expert features are recomputed without gradients (the critic never
    trains them) for the first step, or for every step with "steps_mean"."""
    b, k = chain.shape[0], chain.shape[1] - 1
    ts = time_grid(k, chain.device)
    steps = 1 if critic_input == "first_step" else k
    with torch.no_grad():
        feats = [model.velocity(cache, state, chain[:, i], ts[i].expand(b)).action_features for i in range(steps)]
    return critic_value(model, cache, feats, critic_input, critic_tokens)
