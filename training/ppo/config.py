"""The PPO configs: `PPOConfig` (the algorithm, with its sampler) nested in `PPORunConfig` (the run: envs,
evaluation, checkpoints), which is `pirl-train ppo`'s config and the pipeline's `ppo:` section."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.policy.config import CriticInput, SamplerConfig

PPO_METHODS = ("flow_noise", "flow_sde", "fpo")  # the samplers PPO can train (not the plain ODE)


@dataclass(frozen=True)
class PPOConfig:
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(method="flow_noise"))
    """How the rollouts draw a chunk: method "flow_noise" (learned std, joint chain), "flow_sde"
    (a * sqrt(t / (1 - t)), hybrid chain) or "fpo" (ODE chains, the ratio from flow-matching losses), K,
    noise level, chain mode, log-prob reduction (RLinf's token_level ratio: "token_level")."""
    num_executed: int = 5
    """Actions executed per chunk (an outer step)."""
    rollout_steps: int = 8
    """Outer steps (chunks) per env per update."""
    updates: int = 20
    epochs: int = 4
    minibatch_size: int = 32
    lr: float = 1e-4
    """Actor learning rate (action expert + noise net); tiny CPU models want more than pi0's 7.9e-6."""
    critic_lr: float = 1e-3
    schedule: str = "constant"
    """"constant" or "cosine" (the paper's remedy for a climbing KL)."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    dual_clip: float = 3.0
    value_clip: float | None = 0.2
    """Keep new values within this of the rollout's (None: no clipping; dense returns of ~20 need None)."""
    huber_delta: float = 10.0
    value_coef: float = 0.5
    """Weight of the value loss (RLinf: 1.0)."""
    entropy_coef: float = 0.005
    """Flow-Noise only (the SDE's std is fixed): the noise network's Gaussian entropy over the executed steps'
    real action dims."""
    grad_clip: float = 1.0
    grad_clip_mode: str = "separate"
    """"separate": the actor's and the critic's gradient norms are clipped apart, so the critic's large
    value-loss gradients cannot shrink the actor's step; "global": one norm over both (RLinf's)."""
    optimizer: str = "adam"
    """"adam" or "adamw" (decoupled weight decay, RLinf's); both with betas (0.9, 0.95)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay (RLinf: 0.01); "adam" needs 0."""
    advantage_norm: str = "minibatch"
    """"minibatch": advantages normalised per minibatch (cleanrl); "task": per task over the whole rollout, so
    that in a task mix each task's actions weigh alike, whatever the spread of its returns; "rollout": once over
    the whole rollout, every rank's together (RLinf's)."""
    bootstrap_truncation: bool = False
    """At a time-limit cut (truncated, not terminated) add gamma * V(final observation) to the chunk's reward
    (RLinf's); False: the cut ends the return like a termination."""
    critic_input: CriticInput = "first_step"
    """The policy critic's features (critic: policy, value_source: expert): "first_step", the action expert's
    tokens at the chain's first step, or "steps_mean", the executed tokens' mean over the K steps (RLinf's)."""
    target_kl: float | None = 0.1
    """Stop an update's remaining minibatches once approx KL exceeds this (None: never)."""
    critic_warmup_updates: int = 2
    """Updates that train only the critic before the actor moves; until the critic explains the return, the
    advantages are mostly noise and the first actor steps can undo the SFT policy (the CPU demo uses 10)."""
    critic: str = "policy"
    """"policy": the policy's value head (on its features); "privileged": an MLP over the simulator state
    (asymmetric actor-critic, ManiSkill CPU envs; the policy itself never sees that state)."""
    critic_hidden: int = 256
    critic_epochs: int = 0
    """Privileged critic: extra value-only passes over each rollout before the PPO epochs (an MLP on sim
    state, so they cost little). A critic that explains more of the return leaves the advantages to carry
    what the actions did, not where the cube happened to be."""
    bc_coef: float = 0.0
    """Weight of the flow-matching (SFT) loss on the demonstrations, added to every actor step (0: off; needs
    demos: `bc_data` in the run config). Small-batch policy gradients also push the policy where the rollouts
    carry no signal; the demos' loss holds it near the SFT policy there while the advantages move it where
    they agree (behaviour-cloning regularisation as in DAPG, Rajeswaran et al. 2018)."""
    bc_batch_size: int = 16
    """Demo chunks per actor step for that loss."""
    ema_decay: float = 0.0
    """Polyak average of the policy's weights, updated after every actor update (0: off). Small-batch updates
    move the weights by their signal plus a random walk; the average keeps the drift and damps the walk.
    The run's final evaluation and export judge the averaged policy when the run config's `select` is "ema"."""
    train_prefix: bool = False
    """Train the VLM prefix too (piRL freezes it; its features are then computed without gradients)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampler.method not in PPO_METHODS:
            raise ValueError(f"sampler.method must be 'flow_noise', 'flow_sde' or 'fpo', got {self.sampler.method!r}")
        if self.critic not in ("policy", "privileged"):
            raise ValueError(f"critic must be 'policy' or 'privileged', got {self.critic!r}")
        if self.advantage_norm not in ("minibatch", "task", "rollout"):
            raise ValueError(f"advantage_norm must be 'minibatch', 'task' or 'rollout', got {self.advantage_norm!r}")
        if self.grad_clip_mode not in ("separate", "global"):
            raise ValueError(f"grad_clip_mode must be 'separate' or 'global', got {self.grad_clip_mode!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.weight_decay < 0 or (self.weight_decay > 0 and self.optimizer != "adamw"):
            raise ValueError(f"weight_decay={self.weight_decay} needs optimizer: adamw (decoupled decay) and >= 0")
        if self.critic_input not in ("first_step", "steps_mean"):
            raise ValueError(f"critic_input must be 'first_step' or 'steps_mean', got {self.critic_input!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: off; 0.95 averages about the last 20 updates), "
                             f"got {self.ema_decay}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")


@dataclass(frozen=True)
class PPORunConfig:
    init: str = "runs/sft/checkpoint"
    """SFT checkpoint to start from."""
    out: str = "runs/ppo"
    tasks: tuple[str, ...] = ()
    """ManiSkill tasks or LIBERO SUITE/INDEX tasks; empty: those the checkpoint was trained on."""
    num_envs: int = 2
    max_episode_steps: int = 50
    """0: the simulator's default (LIBERO: the suite's published limit)."""
    reward_mode: str = "sparse"
    """"sparse" (success, as the paper) or ManiSkill's "normalized_dense" shaped reward."""
    sim_backend: str = "cpu"
    """"cpu" (a worker process per env) or "physx_cuda" (all envs batched on the GPU)."""
    eval_episodes_per_env: int = 10
    eval_every: int = 0
    """Evaluate every N updates (0: only before and after)."""
    val_episodes_per_env: int = 0
    """Mid-run evaluations (every `eval_every` updates, and of the SFT policy and the last update) play this many
    episodes per env on validation seeds (VAL_SEED_BASE...) instead of the test seeds; 0: they use the test
    seeds, like the evaluations before and after."""
    select: str = "last"
    """Which policy the final test evaluation judges (and the pipeline exports): "last" (the last update's),
    "ema" (the Polyak average of the weights, saved in ema/; needs the ppo config's ema_decay) or "best_val"
    (the mid-run validation evaluation's best after the critic warm-up, saved in best/; needs eval_every and
    val_episodes_per_env). A single PPO run's held-out success drifts by several points from one
    checkpoint to the next; choosing on validation seeds keeps the test seeds an unbiased judge."""
    save_every: int = 10
    device: str = "auto"
    """"auto" (the rank's GPU when CUDA is available, else the CPU), "cpu" or "cuda": where the policy, critic
    and learner live. Checkpoints are written from the CPU either way, so they load anywhere."""
    bc_data: tuple[str, ...] = ()
    """Demo dataset directories for the algorithm's `bc_coef` loss; the pipeline passes its demos."""
    resume: bool = False
    wandb: bool = True
    """Log to Weights & Biases when installed (offline unless WANDB_API_KEY is set)."""
    algo: PPOConfig = field(default_factory=PPOConfig)
    """The PPO algorithm and its sampler."""

    def __post_init__(self) -> None:
        if self.select == "ema" and self.algo.ema_decay <= 0:
            raise ValueError("select: ema judges the weight-averaged policy: set algo.ema_decay > 0 (e.g. 0.95), "
                             "or select: last")
        if self.select not in ("last", "ema", "best_val"):
            raise ValueError(f"select must be 'last', 'ema' or 'best_val', got {self.select!r}")
        if self.select == "best_val" and not (self.eval_every > 0 and self.val_episodes_per_env > 0):
            raise ValueError("select: best_val chooses among validation evaluations: set eval_every > 0 and "
                             f"val_episodes_per_env > 0 (got {self.eval_every} and {self.val_episodes_per_env})")
