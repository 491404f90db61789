"""Flow-Noise / Flow-SDE PPO (piRL, arXiv 2510.25889) and FPO for a flow-matching VLA, top to bottom.

    for update in range(updates):
        rollout  <- T chunks per env: denoising chains (stochastic, or ODE for FPO), their log-probs (FPO:
                    minus flow-matching losses on recorded (t, eps) draws) and values
        GAE over chunk steps (optionally bootstrapping time-limit cuts); advantages normalised per
            minibatch, per task or once over the rollout
        for epoch, minibatch: recompute the log-probs (one pass per stochastic step, one for a hybrid chain,
            one per draw for FPO), clipped surrogate + dual clip, clipped Huber value loss, entropy
            (Flow-Noise); gradients clipped per part or globally; Adam or AdamW
        (critic warm-up: value loss only for the first updates; early stop of an update on a KL limit)

Only the action expert, noise network and value head train by default (the VLM prefix is frozen and its
features are computed without gradients).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from training.policy.policy import Policy
from training.policy.sampling import chain_log_probs, chain_value, element_mask, reduce_log_prob
from training.ppo.config import PPOConfig
from training.ppo.critic import PrivilegedCritic
from training.ppo.distributed import average_gradients, mean_across_ranks
from training.ppo.fpo import cfm_losses, fpo_log_likelihood
from training.ppo.losses import (
    clipped_surrogate,
    clipped_value_loss,
    explained_variance,
    gae,
    normalize_advantages,
    normalize_advantages_across_ranks,
    normalize_advantages_by_group,
)
from training.ppo.rollout import Rollout, index_obs
from training.sft.train import DemoTensors, beta_flow_time


class PPOLearner:
    """Holds the optimizer and schedules; `update(rollout)` runs the PPO epochs."""

    def __init__(self, policy: Policy, cfg: PPOConfig, privileged_dim: int = 0, bc_demos: DemoTensors | None = None):
        """bc_demos: the demonstrations for the `bc_coef` loss (model inputs, `prepare_demos`)."""
        if cfg.bc_coef > 0 and (bc_demos is None or not len(bc_demos)):
            raise ValueError(f"bc_coef={cfg.bc_coef} needs demonstrations: set bc_data (the demo dataset "
                             "directories, comma-separated) in the ppo_run config, or bc_coef: 0")
        self.policy, self.cfg = policy, cfg
        self.bc_demos = bc_demos if cfg.bc_coef > 0 else None
        model = policy.model
        model.set_prefix_trainable(cfg.train_prefix)
        self.critic: PrivilegedCritic | None = None
        if cfg.critic == "privileged":
            if not privileged_dim:
                raise ValueError("critic: privileged needs the env's privileged state size (privileged_dim > 0)")
            with torch.random.fork_rng(devices=[]):  # the same initial critic for the same seed, run after run
                torch.manual_seed(cfg.seed)
                self.critic = PrivilegedCritic(privileged_dim, cfg.critic_hidden).to(policy.device)
            model.value_head.requires_grad_(False)  # unused while the privileged critic judges
            critic = list(self.critic.parameters())
        else:
            critic = list(model.value_head.parameters())
        critic_ids = {id(p) for p in model.value_head.parameters()} | {id(p) for p in critic}
        actor = [p for p in model.parameters() if p.requires_grad and id(p) not in critic_ids]
        self.actor_params, self.critic_params = actor, critic
        if cfg.critic_input != "first_step" and (self.critic is not None or policy.cfg.value_source != "expert"):
            raise ValueError(f"critic_input: {cfg.critic_input} chooses the action-expert features of the policy's "
                             f"value head; this run's critic is {cfg.critic!r} with value_source "
                             f"{policy.cfg.value_source!r}: use critic_input: first_step")
        groups = [{"params": actor, "lr": cfg.lr}, {"params": critic, "lr": cfg.critic_lr}]
        self.opt = (torch.optim.AdamW(groups, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
                    if cfg.optimizer == "adamw" else torch.optim.Adam(groups, betas=(0.9, 0.95)))
        self.base_lrs = [cfg.lr, cfg.critic_lr]
        self.updates_done = 0
        # name -> averaged tensor of every actor weight; starts at the SFT weights, moves once the actor does
        names = {id(p): n for n, p in model.named_parameters()}
        self.ema: dict[str, torch.Tensor] = ({names[id(p)]: p.detach().clone() for p in actor}
                                             if cfg.ema_decay > 0 else {})
        self.elem_mask = element_mask(policy.cfg.action_horizon, policy.cfg.action_dim, cfg.num_executed,
                                      policy.norm_stats.actions.dim, device=policy.device)
        self.critic_tokens = cfg.num_executed if cfg.critic_input == "steps_mean" else None

    def _set_lr(self) -> None:
        frac = self.updates_done / max(self.cfg.updates, 1)
        scale = 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) if self.cfg.schedule == "cosine" else 1.0
        for group, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * scale

    def evaluate(self, ro: Rollout, idx: torch.Tensor, noise_level: float):
        """New log-probs (FPO: minus the flow-matching losses), values and entropies of flattened rollout
        samples `idx`."""
        model, sampler = self.policy.model, self.cfg.sampler
        t_n = ro.rewards.shape
        flat = lambda x: x.reshape(t_n[0] * t_n[1], *x.shape[2:])[idx]  # noqa: E731
        obs = index_obs(ro.obs, idx)
        cache = model.encode_prefix(obs)
        chain, term_mask = flat(ro.chains), flat(ro.term_mask)
        if sampler.method == "fpo":
            assert ro.cfm_t is not None and ro.cfm_eps is not None
            losses = cfm_losses(lambda x, t: model.velocity(cache, obs.state, x, t).velocity, chain[:, -1],
                                flat(ro.cfm_t), flat(ro.cfm_eps), self.elem_mask, sampler.fpo_weighting)
            log_prob, value, entropy = fpo_log_likelihood(losses), None, torch.zeros(len(idx), device=chain.device)
        else:
            hybrid = flat(ro.hybrid_step) if ro.hybrid_step is not None else None
            lp, entropy, value = chain_log_probs(model, cache, obs.state, chain, term_mask, sampler.method,
                                                 noise_level, hybrid_step=hybrid, elem_mask=self.elem_mask,
                                                 critic_input=self.cfg.critic_input, critic_tokens=self.critic_tokens)
            log_prob = reduce_log_prob(lp, term_mask, self.elem_mask, sampler.log_prob_reduction)
        if self.critic is not None:
            value = self.critic(ro.privileged[idx])
        elif value is None:  # hybrid and FPO chains recompute no (or one) step: the critic's features anew
            value = chain_value(model, cache, obs.state, chain, self.cfg.critic_input, self.critic_tokens)
        return log_prob, value, entropy

    def update(self, ro: Rollout, noise_level: float) -> dict[str, float]:
        cfg, model = self.cfg, self.policy.model
        self._set_lr()
        model.train()
        adv, ret = gae(ro.rewards, ro.values, ro.dones, ro.last_value, cfg.gamma, cfg.gae_lambda)
        if self.critic is not None:
            self.critic.norm.update(ro.privileged)
        flat_adv, flat_ret = adv.flatten(), ret.flatten()
        per_task = cfg.advantage_norm == "task" and ro.env_task is not None
        if per_task:
            flat_adv = normalize_advantages_by_group(flat_adv, ro.sample_tasks())
        elif cfg.advantage_norm == "rollout":
            flat_adv = normalize_advantages_across_ranks(flat_adv)
        normalized = per_task or cfg.advantage_norm == "rollout"
        if self.critic is not None:
            self._fit_critic(ro.privileged, flat_ret, gen_seed=cfg.seed * 100_003 + self.updates_done)
        # (B,) chain log-probs, or (B, H, A) with the "element" reduction (a ratio per executed action element)
        old_lp, old_v = ro.log_probs.reshape(ro.size, *ro.log_probs.shape[2:]), ro.values.flatten()
        warmup = self.updates_done < cfg.critic_warmup_updates
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + self.updates_done)
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl",
                                                          "clipfrac", "ratio", "actor_grad_norm")}
        if self.bc_demos is not None:
            stats["bc_loss"] = []
        stopped_early = False
        for _ in range(cfg.epochs):
            perm = torch.randperm(ro.size, generator=gen)
            for start in range(0, ro.size, cfg.minibatch_size):
                idx = perm[start: start + cfg.minibatch_size]
                log_prob, value, entropy = self.evaluate(ro, idx, noise_level)
                a = flat_adv[idx] if normalized or len(idx) < 2 else normalize_advantages(flat_adv[idx])
                if log_prob.dim() == 3:  # per element: only executed steps x real dims count
                    keep = self.elem_mask.bool()
                    pg_loss, pg_stats = clipped_surrogate(log_prob[:, keep], old_lp[idx][:, keep], a[:, None],
                                                          cfg.clip, cfg.dual_clip)
                else:
                    pg_loss, pg_stats = clipped_surrogate(log_prob, old_lp[idx], a, cfg.clip, cfg.dual_clip)
                v_loss = clipped_value_loss(value, old_v[idx], flat_ret[idx], cfg.value_clip, cfg.huber_delta)
                ent = entropy.mean()
                if warmup:
                    loss = cfg.value_coef * v_loss
                else:
                    loss = pg_loss + cfg.value_coef * v_loss
                    if cfg.sampler.method == "flow_noise":  # the other methods' noise is fixed
                        loss = loss - cfg.entropy_coef * ent
                    if self.bc_demos is not None:
                        bc_loss = self._bc_loss(gen)
                        loss = loss + cfg.bc_coef * bc_loss
                        stats["bc_loss"].append(float(bc_loss.detach()))
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                average_gradients(self.actor_params + self.critic_params)  # no-op on one process
                actor_norm = self.clip_gradients()
                self.opt.step()
                for k, v in (("policy_loss", pg_loss), ("value_loss", v_loss), ("entropy", ent),
                             ("approx_kl", pg_stats["approx_kl"]), ("clipfrac", pg_stats["clipfrac"]),
                             ("ratio", pg_stats["ratio"]), ("actor_grad_norm", actor_norm)):
                    stats[k].append(float(v.detach()))
                kl = mean_across_ranks(float(pg_stats["approx_kl"]))  # every rank stops together
                if not warmup and cfg.target_kl is not None and kl > cfg.target_kl:
                    stopped_early = True
                    break
            if stopped_early:
                break
        if self.ema and not warmup:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, avg in self.ema.items():
                    avg.lerp_(params[name].detach(), 1 - cfg.ema_decay)
        self.updates_done += 1
        model.eval()
        out = {k: float(np.mean(v)) for k, v in stats.items() if v}  # no bc_loss during critic warm-up
        out.update(explained_variance=explained_variance(old_v, flat_ret), critic_warmup=float(warmup),
                   kl_stop=float(stopped_early), lr=self.opt.param_groups[0]["lr"])
        return out

    def clip_gradients(self) -> torch.Tensor:
        """Clip the step's gradients (`grad_clip_mode`); returns the actor's norm before clipping."""
        cfg = self.cfg
        if cfg.grad_clip_mode == "global":
            actor_norm = torch.nn.utils.get_total_norm([p.grad for p in self.actor_params if p.grad is not None])
            torch.nn.utils.clip_grad_norm_(self.actor_params + self.critic_params, cfg.grad_clip)
            return actor_norm
        # clipped apart: the critic's large value-loss gradients must not shrink the actor's step
        actor_norm = torch.nn.utils.clip_grad_norm_(self.actor_params, cfg.grad_clip)
        torch.nn.utils.clip_grad_norm_(self.critic_params, cfg.grad_clip)
        return actor_norm

    def _bc_loss(self, gen: torch.Generator) -> torch.Tensor:
        """The flow-matching loss on `bc_batch_size` demo chunks drawn with the update's generator."""
        demos = self.bc_demos
        idx = torch.randint(0, len(demos), (self.cfg.bc_batch_size,), generator=gen)
        obs, actions, mask = demos.batch(idx)
        noise = torch.randn(actions.shape, generator=gen).to(actions)
        return self.policy.model.flow_matching_loss(obs, actions, mask, noise=noise,
                                                    time=beta_flow_time(len(idx), gen).to(actions))

    def _fit_critic(self, privileged: torch.Tensor, returns: torch.Tensor, gen_seed: int) -> None:
        """`critic_epochs` value-only minibatch passes of the privileged critic on this rollout's returns."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(gen_seed + 7)
        critic_group = self.opt.param_groups[1]
        self.opt.zero_grad(set_to_none=True)  # Adam skips parameters without a gradient: the actor stays put
        for _ in range(cfg.critic_epochs):
            perm = torch.randperm(len(returns), generator=gen)
            for start in range(0, len(returns), cfg.minibatch_size):
                idx = perm[start: start + cfg.minibatch_size]
                loss = torch.nn.functional.huber_loss(self.critic(privileged[idx]), returns[idx],
                                                      delta=cfg.huber_delta)
                grads = torch.autograd.grad(loss, critic_group["params"])
                for p, g in zip(critic_group["params"], grads, strict=True):
                    p.grad = g
                average_gradients(critic_group["params"])
                torch.nn.utils.clip_grad_norm_(critic_group["params"], cfg.grad_clip)
                self.opt.step()  # the actor's grads are None here, so only the critic moves
                for p in critic_group["params"]:
                    p.grad = None

    def averaged_weights(self) -> dict[str, torch.Tensor]:
        """The policy's state dict with the actor's weights replaced by their Polyak average (needs ema_decay)."""
        if not self.ema:
            raise ValueError("no averaged weights: set ema_decay > 0 in the ppo config")
        return {k: self.ema.get(k, v).clone() for k, v in self.policy.model.state_dict().items()}

    def state_dict(self) -> dict:
        state = {"optimizer": self.opt.state_dict(), "updates_done": self.updates_done}
        if self.critic is not None:
            state["privileged_critic"] = self.critic.state_dict()
        if self.ema:
            state["ema"] = self.ema
        return state

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.updates_done = int(state["updates_done"])
        if self.critic is not None:
            self.critic.load_state_dict(state["privileged_critic"])
        if self.ema:
            for name, avg in self.ema.items():
                avg.copy_(state["ema"][name])
