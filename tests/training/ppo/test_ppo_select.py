"""Which policy a PPO run hands on: `select: best_val` (mid-run evaluations on validation seeds choose the
policy the test seeds then judge) and `select: ema` (the weight average)."""

import json

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")

import training.ppo.run as ppo_run  # noqa: E402
from tests.training.ppo.test_ppo_resume import init_ckpt  # noqa: E402, F401 - the fixture
from training.envs.base import EVAL_SEED_BASE, VAL_SEED_BASE  # noqa: E402
from training.ppo.config import PPOConfig, PPORunConfig  # noqa: E402
from training.ppo.run import run_ppo  # noqa: E402

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

    cfg = PPOConfig(num_executed=3, rollout_steps=3, updates=3, epochs=1, minibatch_size=3, critic_warmup_updates=1,
                    target_kl=None, lr=1e-3)
    run = PPORunConfig(init=str(init_ckpt), out=str(out), num_envs=2, max_episode_steps=10, eval_episodes_per_env=1,
                       eval_every=1, val_episodes_per_env=1, select="best_val", save_every=1, wandb=False, algo=cfg)
    results = run_ppo(run, progress=False)

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


def test_weight_averaged_policy_is_the_one_judged_and_exported(tmp_path, init_ckpt, monkeypatch):  # noqa: F811
    """`select: ema`: ema/ holds the Polyak average of the actor's weights, and the final test evaluation plays
    exactly those weights, not the last update's."""
    judged = []

    def recording_evaluate(policy, *args, **kwargs):
        judged.append({k: v.detach().clone() for k, v in policy.model.state_dict().items()})
        return real_evaluate(policy, *args, **kwargs)

    real_evaluate = ppo_run.evaluate
    monkeypatch.setattr(ppo_run, "evaluate", recording_evaluate)
    out = tmp_path / "run"
    cfg = PPOConfig(num_executed=3, rollout_steps=3, updates=3, epochs=1, minibatch_size=3, critic_warmup_updates=1,
                    target_kl=None, lr=1e-3, ema_decay=0.5)
    run = PPORunConfig(init=str(init_ckpt), out=str(out), num_envs=2, max_episode_steps=10, eval_episodes_per_env=1,
                       select="ema", save_every=1, wandb=False, algo=cfg)
    results = run_ppo(run, progress=False)
    assert results["policy"] == str(out / "ema") and results["select"] == "ema"

    sft = load_file(str(init_ckpt / "model.safetensors"))
    ema = load_file(str(out / "ema" / "model.safetensors"))
    last = load_file(str(out / "checkpoint" / "model.safetensors"))
    learner = torch.load(out / "checkpoint" / ppo_run.LEARNER_FILE, weights_only=True)["learner"]
    averaged = learner["ema"]
    assert averaged and all(torch.equal(ema[k], averaged[k]) for k in averaged)
    trained = [k for k in averaged if not torch.equal(last[k], sft[k])]
    assert trained, "the actor moved"
    # two actor updates after one warm-up update, decay 0.5: strictly between the SFT and the last weights
    assert any(not torch.equal(ema[k], last[k]) and not torch.equal(ema[k], sft[k]) for k in trained)
    frozen = [k for k in ema if k not in averaged]
    assert frozen and all(torch.equal(ema[k], last[k]) for k in frozen)
    assert all(torch.equal(judged[-1][k], ema[k]) for k in ema), "the final evaluation played the average"


def test_ema_selection_needs_an_average():
    with pytest.raises(ValueError, match="set algo.ema_decay > 0"):
        PPORunConfig(select="ema", algo=PPOConfig(ema_decay=0.0))
