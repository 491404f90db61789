"""Rollouts over the two-layer MDP: one outer step = one executed chunk; the denoising chain that produced it
is the inner MDP, its log-likelihood the action's (docs/algorithms.md).

Shapes: T outer steps per env, N envs, K denoising steps, H horizon, A padded action dim.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.envs.base import EpisodeStats, VecEnv
from training.policy.config import SamplerConfig
from training.policy.model import Observation
from training.policy.policy import Policy
from training.policy.sampling import element_mask, reduce_log_prob, sample_chain
from training.ppo.critic import PrivilegedCritic


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

    def sample_tasks(self) -> Tensor | None:
        """long (T * N,): the task index of each flattened (t-major) sample."""
        return None if self.env_task is None else self.env_task.repeat(self.rewards.shape[0])

    @property
    def size(self) -> int:
        return self.rewards.numel()


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
                 critic: PrivilegedCritic | None = None):
        """With `critic`, values come from it and the env's privileged state instead of the policy's head."""
        cfg = policy.cfg
        if num_executed > cfg.action_horizon:
            raise ValueError(f"num_executed={num_executed} exceeds the policy's chunk length {cfg.action_horizon}")
        if env.action_dim != policy.norm_stats.actions.dim:
            raise ValueError(f"env actions have {env.action_dim} dims, the policy's {policy.norm_stats.actions.dim}")
        if critic is not None and not getattr(env, "privileged_dim", 0):
            raise ValueError("a privileged critic needs an env that returns privileged state (ManiSkill on the "
                             "CPU backend); use critic: policy")
        self.env, self.policy, self.sampler, self.num_executed = env, policy, sampler, num_executed
        self.critic = critic
        self.device = policy.device
        self.elem_mask = element_mask(cfg.action_horizon, cfg.action_dim, num_executed, env.action_dim,
                                      device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        names = sorted(set(env.tasks))
        self.env_task = torch.tensor([names.index(t) for t in env.tasks], device=self.device)
        self.obs = env.reset(seed=seed)

    @torch.no_grad()
    def collect(self, steps: int, noise_level: float) -> Rollout:
        model = self.policy.model
        model.eval()
        obs_list, chains, masks, hybrid, logps, values, rewards, dones = [], [], [], [], [], [], [], []
        privileged: list[Tensor] = []
        episodes: list[EpisodeStats] = []
        env_steps = 0
        sim_s = policy_s = 0.0
        for _ in range(steps):
            t0 = time.perf_counter()
            inputs = self.policy.prepare(self.obs)
            cache = model.encode_prefix(inputs)
            s = sample_chain(model, cache, inputs.state, self.sampler, noise_level=noise_level,
                             generator=self.generator)
            chunk = self.policy.unnormalize_actions(s.actions.cpu().numpy())[:, : self.num_executed]
            t1 = time.perf_counter()
            out = self.env.step(chunk)
            sim_s += time.perf_counter() - t1
            policy_s += t1 - t0
            obs_list.append(inputs)
            chains.append(s.chain)
            masks.append(s.term_mask)
            hybrid.append(s.hybrid_step)
            logps.append(reduce_log_prob(s.term_log_probs, s.term_mask, self.elem_mask,
                                         self.sampler.log_prob_reduction))
            if self.critic is not None:
                privileged.append(torch.as_tensor(self.obs["privileged"], device=self.device))
                values.append(self.critic(privileged[-1]))
            else:
                values.append(s.value)
            rewards.append(torch.as_tensor(out.reward, device=self.device))
            dones.append(torch.as_tensor(out.done, device=self.device))
            episodes += [e for e in out.episodes if e is not None]
            env_steps += int(out.executed.sum())
            self.obs = out.obs
        if self.critic is not None:
            last = self.critic(torch.as_tensor(self.obs["privileged"], device=self.device))
        else:
            inputs = self.policy.prepare(self.obs)
            last = sample_chain(model, model.encode_prefix(inputs), inputs.state, self.sampler,
                                noise_level=noise_level, generator=self.generator).value
        return Rollout(cat_obs(obs_list), torch.stack(chains), torch.stack(masks),
                       torch.stack(hybrid) if hybrid[0] is not None else None, torch.stack(logps),
                       torch.stack(values), torch.stack(rewards).float(), torch.stack(dones), last, episodes,
                       env_steps, torch.cat(privileged) if privileged else None, sim_s, policy_s,
                       self.env_task)


def success_rate(episodes: list[EpisodeStats]) -> float:
    return float(np.mean([e.success for e in episodes])) if episodes else float("nan")


def success_by_task(episodes: list[EpisodeStats]) -> dict[str, float]:
    """{"train_success/TASK": rate} for a multi-task batch ({} for one task): a gain on one task can hide a
    loss on another in the overall rate."""
    tasks = sorted({e.task for e in episodes})
    if len(tasks) < 2:
        return {}
    return {f"train_success/{t}": success_rate([e for e in episodes if e.task == t]) for t in tasks}
