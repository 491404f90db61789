"""`select: best_val`: mid-run evaluations on validation seeds choose the policy the test seeds then judge."""

import json

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")

import training.ppo.run as ppo_run  # noqa: E402
from tests.training.ppo.test_ppo_resume import init_ckpt  # noqa: E402, F401 - the fixture
from training.envs.base import EVAL_SEED_BASE, VAL_SEED_BASE  # noqa: E402
from training.ppo.run import PPORunConfig, run_ppo  # noqa: E402
from training.ppo.train import PPOConfig  # noqa: E402

# Scripted validation scores per update, so that the choice is known: update 1 (critic warm-up, the SFT
# actor) scores highest but may not be chosen; update 2 beats the last one.
VAL_SCORES = {0: 0.5, 1: 0.9, 2: 0.8, 3: 0.4}


def test_best_validation_policy_is_the_one_judged_on_test_seeds(tmp_path, init_ckpt, monkeypatch):  # noqa: F811
    calls = []

    def scored_evaluate(policy, env, episodes_per_env, *args, seed, **kwargs):
        summary = real_evaluate(policy, env, episodes_per_env, *args, seed=seed, **kwargs)  # the real episodes
        update = learner_updates()
        calls.append({"seed": seed, "update": update, "episodes": summary["episodes"],
                      "weights": {k: v.clone() for k, v in policy.model.state_dict().items()}})
        if seed == VAL_SEED_BASE:
            summary["overall"]["success"] = VAL_SCORES[update]
        return summary

    real_evaluate = ppo_run.evaluate
    monkeypatch.setattr(ppo_run, "evaluate", scored_evaluate)
    out = tmp_path / "run"
    learner_updates = lambda: len((out / "metrics.jsonl").read_text().splitlines()) if (  # noqa: E731
        out / "metrics.jsonl").exists() else 0

    run = PPORunConfig(init=str(init_ckpt), out=str(out), num_envs=2, max_episode_steps=10, eval_episodes_per_env=1,
                       eval_every=1, val_episodes_per_env=1, select="best_val", save_every=1, wandb=False)
    cfg = PPOConfig(method="flow_noise", num_executed=3, rollout_steps=3, updates=3, epochs=1, minibatch_size=3,
                    critic_warmup_updates=1, target_kl=None, lr=1e-3)
    results = run_ppo(run, cfg, progress=False)

    evals = json.loads((out / "evals.json").read_text())
    assert {k: v["seeds"] for k, v in evals.items() if k != "best"} == {
        "sft": "test", "val_update_0": "validation", "val_update_1": "validation", "val_update_2": "validation",
        "val_update_3": "validation", "final": "test"}
    assert evals["best"]["updates"] == 2 and evals["best"]["success"] == 0.8
    assert results["policy_updates"] == 2 and results["policy"] == str(out / "best") and results["val_success"] == 0.8
    for call in calls:  # validation episodes never play a test seed, nor test episodes a validation seed
        low = VAL_SEED_BASE if call["seed"] == VAL_SEED_BASE else EVAL_SEED_BASE
        assert all(low <= e["seed"] < low + EVAL_SEED_BASE for e in call["episodes"])

    best = load_file(str(out / "best" / "model.safetensors"))
    last = load_file(str(out / "checkpoint" / "model.safetensors"))
    at_update_2 = next(c["weights"] for c in calls if c["seed"] == VAL_SEED_BASE and c["update"] == 2)
    judged = calls[-1]
    assert judged["seed"] == EVAL_SEED_BASE  # the final evaluation, on the test seeds ...
    for k in best:  # ... of update 2's policy, not the last one
        assert torch.equal(best[k], at_update_2[k]) and torch.equal(judged["weights"][k], best[k])
    assert any(not torch.equal(best[k], last[k]) for k in best)


def test_best_val_needs_validation_evaluations():
    with pytest.raises(ValueError, match="eval_every > 0 and val_episodes_per_env > 0"):
        PPORunConfig(select="best_val", eval_every=10)
    with pytest.raises(ValueError, match="select must be"):
        PPORunConfig(select="best")
