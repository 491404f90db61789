"""Rollouts over the two-layer MDP: one outer step = one executed chunk; the denoising chain that produced it
is the inner MDP, its log-likelihood the action's (docs/algorithms.md).

Shapes: T outer steps per env, N envs, K denoising steps, H horizon, A padded action dim.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.envs.base import ChunkStep, EpisodeStats, VecEnv
from training.policy.config import CriticInput, SamplerConfig
from training.policy.model import FlowVLA, Observation, PrefixCache
from training.policy.policy import Policy
from training.policy.sampling import element_mask, reduce_log_prob, sample_chain
from training.ppo.critic import PrivilegedCritic
from training.ppo.fpo import cfm_losses, draw_cfm_pairs, fpo_log_likelihood


@dataclass
class Rollout:
    obs: Observation  # model-ready observations, batch T * N, t-major (index t * N + n)
    chains: Tensor  # (T, N, K + 1, H, A)
    term_mask: Tensor  # bool (T, N, K + 1)
    hybrid_step: Tensor | None  # long (T, N)
    log_probs: Tensor  # (T, N) reduced chain log-prob at rollout time
    values: Tensor  # (T, N)
    rewards: Tensor  # (T, N)
    dones: Tensor  # bool (T, N)
    last_value: Tensor  # (N,)
    episodes: list[EpisodeStats]
    env_steps: int
    privileged: Tensor | None = None  # (T * N, P) sim-only critic inputs, t-major like obs
    sim_s: float = 0.0  # wall time inside env.step (simulation + rendering)
    policy_s: float = 0.0  # wall time in preprocessing and sampling chains
    env_task: Tensor | None = None  # long (N,): the task index of each env (envs keep their task)
    cfm_t: Tensor | None = None  # FPO: (T, N, M) the flow times of the loss draws
    cfm_eps: Tensor | None = None  # FPO: (T, N, M, H, A) their noises
    truncated: Tensor | None = None  # bool (T, N): the episode hit its time limit (without a terminal state)

    def sample_tasks(self) -> Tensor | None:
        """long (T * N,): the task index of each flattened (t-major) sample."""
        return None if self.env_task is None else self.env_task.repeat(self.rewards.shape[0])

    @property
    def size(self) -> int:
        return self.rewards.numel()


def _velocity(model: FlowVLA, cache: PrefixCache, state: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    return model.velocity(cache, state, x_t, t).velocity


def cat_obs(obs: list[Observation]) -> Observation:
    return Observation({c: torch.cat([o.images[c] for o in obs]) for c in obs[0].images},
                       torch.cat([o.state for o in obs]), torch.cat([o.tokens for o in obs]),
                       torch.cat([o.token_mask for o in obs]))


def index_obs(obs: Observation, idx: Tensor) -> Observation:
    return Observation({c: v[idx] for c, v in obs.images.items()}, obs.state[idx], obs.tokens[idx],
                       obs.token_mask[idx])


class RolloutCollector:
    """Plays a policy's stochastic chains in a VecEnv and records what PPO needs."""

    def __init__(self, env: VecEnv, policy: Policy, sampler: SamplerConfig, num_executed: int, seed: int = 0,
                 critic: PrivilegedCritic | None = None, critic_input: CriticInput = "first_step"):
        """With `critic`, values come from it and the env's privileged state instead of the policy's head
        (which reads `critic_input`, see `critic_value`)."""
        cfg = policy.cfg
        if num_executed > cfg.action_horizon:
            raise ValueError(f"num_executed={num_executed} exceeds the policy's chunk length {cfg.action_horizon}")
        if env.action_dim != policy.norm_stats.actions.dim:
            raise ValueError(f"env actions have {env.action_dim} dims, the policy's {policy.norm_stats.actions.dim}")
        if critic is not None and not getattr(env, "privileged_dim", 0):
            raise ValueError("a privileged critic needs an env that returns privileged state (ManiSkill on the "
                             "CPU backend); use critic: policy")
        self.env, self.policy, self.sampler, self.num_executed = env, policy, sampler, num_executed
        self.critic, self.critic_input = critic, critic_input
        self.device = policy.device
        self.elem_mask = element_mask(cfg.action_horizon, cfg.action_dim, num_executed, env.action_dim,
                                      device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        names = sorted(set(env.tasks))
        self.env_task = torch.tensor([names.index(t) for t in env.tasks], device=self.device)
        self.obs = env.reset(seed=seed)

    def _values(self, obs: dict, noise_level: float) -> Tensor:
        """Critic values (N,) of an observation batch: the privileged critic's, or the policy head's (on a
        chain drawn as the rollout's)."""
        if self.critic is not None:
            return self.critic(torch.as_tensor(np.asarray(obs["privileged"]), device=self.device))
        model, inputs = self.policy.model, self.policy.prepare(obs)
        return sample_chain(model, model.encode_prefix(inputs), inputs.state, self.sampler, noise_level=noise_level,
                            generator=self.generator, critic_input=self.critic_input,
                            critic_tokens=self._critic_tokens).value

    @property
    def _critic_tokens(self) -> int | None:
        return self.num_executed if self.critic_input == "steps_mean" else None

    def _truncation_values(self, out: ChunkStep, noise_level: float) -> Tensor:
        """(N,): V(the final observation) of each env whose episode hit its time limit in this chunk, else 0."""
        cut = np.flatnonzero(out.truncated & ~out.terminated)
        values = torch.zeros(len(out.truncated), device=self.device)
        if len(cut):
            finals = [out.final_obs[i] for i in cut]
            batch = {"images": {c: np.stack([f["images"][c] for f in finals]) for c in finals[0]["images"]},
                     "state": np.stack([f["state"] for f in finals]),
                     "instruction": [f["instruction"] for f in finals]}
            if self.critic is not None:
                batch["privileged"] = np.stack([f["privileged"] for f in finals])
            values[torch.as_tensor(cut, device=self.device)] = self._values(batch, noise_level).float()
        return values

    @torch.no_grad()
    def collect(self, steps: int, noise_level: float, bootstrap_gamma: float | None = None) -> Rollout:
        """`bootstrap_gamma`: when set, a chunk whose episode was cut by the time limit (truncated, not
        terminated) earns gamma * V(its final observation) on top of its reward, so GAE treats the cut as a
        pause rather than the end of the task (RLinf's choice; None: a cut is an end, like a termination)."""
        model = self.policy.model
        model.eval()
        obs_list, chains, masks, hybrid, logps, values, rewards, dones = [], [], [], [], [], [], [], []
        privileged: list[Tensor] = []
        cfm_t: list[Tensor] = []
        cfm_eps: list[Tensor] = []
        truncated: list[Tensor] = []
        fpo = self.sampler.method == "fpo"
        episodes: list[EpisodeStats] = []
        env_steps = 0
        sim_s = policy_s = 0.0
        for _ in range(steps):
            t0 = time.perf_counter()
            inputs = self.policy.prepare(self.obs)
            cache = model.encode_prefix(inputs)
            s = sample_chain(model, cache, inputs.state, self.sampler, noise_level=noise_level,
                             generator=self.generator, with_value=self.critic is None,
                             critic_input=self.critic_input, critic_tokens=self._critic_tokens)
            if fpo:  # the chunk's stand-in log-prob: minus its flow-matching losses on fresh (t, eps) draws
                t_draw, eps = draw_cfm_pairs(len(s.actions), self.sampler.fpo_draws, *s.actions.shape[1:],
                                             generator=self.generator, device=self.device)
                velocity = functools.partial(_velocity, model, cache, inputs.state)
                losses = cfm_losses(velocity, s.actions, t_draw, eps, self.elem_mask, self.sampler.fpo_weighting)
                cfm_t.append(t_draw)
                cfm_eps.append(eps)
            chunk = self.policy.unnormalize_actions(s.actions.cpu().numpy())[:, : self.num_executed]
            t1 = time.perf_counter()
            out = self.env.step(chunk)
            sim_s += time.perf_counter() - t1
            policy_s += t1 - t0
            obs_list.append(inputs)
            chains.append(s.chain)
            masks.append(s.term_mask)
            hybrid.append(s.hybrid_step)
            logps.append(fpo_log_likelihood(losses) if fpo else
                         reduce_log_prob(s.term_log_probs, s.term_mask, self.elem_mask,
                                         self.sampler.log_prob_reduction))
            if self.critic is not None:
                privileged.append(torch.as_tensor(self.obs["privileged"], device=self.device))
                values.append(self.critic(privileged[-1]))
            else:
                values.append(s.value)
            reward = torch.as_tensor(out.reward, device=self.device).float()
            if bootstrap_gamma is not None:
                reward = reward + bootstrap_gamma * self._truncation_values(out, noise_level)
            rewards.append(reward)
            truncated.append(torch.as_tensor(out.truncated & ~out.terminated, device=self.device))
            dones.append(torch.as_tensor(out.done, device=self.device))
            episodes += [e for e in out.episodes if e is not None]
            env_steps += int(out.executed.sum())
            self.obs = out.obs
        last = self._values(self.obs, noise_level)
        return Rollout(cat_obs(obs_list), torch.stack(chains), torch.stack(masks),
                       torch.stack(hybrid) if hybrid[0] is not None else None, torch.stack(logps),
                       torch.stack(values), torch.stack(rewards).float(), torch.stack(dones), last, episodes,
                       env_steps, torch.cat(privileged) if privileged else None, sim_s, policy_s,
                       self.env_task, torch.stack(cfm_t) if fpo else None, torch.stack(cfm_eps) if fpo else None,
                       torch.stack(truncated))


def success_rate(episodes: list[EpisodeStats]) -> float:
    return float(np.mean([e.success for e in episodes])) if episodes else float("nan")


def success_by_task(episodes: list[EpisodeStats]) -> dict[str, float]:
    """{"train_success/TASK": rate} for a multi-task batch ({} for one task): a gain on one task can hide a
    loss on another in the overall rate."""
    tasks = sorted({e.task for e in episodes})
    if len(tasks) < 2:
        return {}
    return {f"train_success/{t}": success_rate([e for e in episodes if e.task == t]) for t in tasks}
