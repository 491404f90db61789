"""The README's main job (`pirl-train pipeline`) as a tiny-budget run of the real thing: scripted demos in
ManiSkill, SFT, PPO, evaluation of both on the same seeds, report and plots."""

import json

import pytest

pytestmark = pytest.mark.slow  # a whole run or several processes (docs: pytest -m 'not slow')

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")

from pipeline.cli import main  # noqa: E402


def test_pipeline_end_to_end_on_a_tiny_budget(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("""
tasks: [PushCube-v1]
demo_episodes: 2
workers: 1
image_size: 32
methods: [flow_noise, flow_sde]
seed: 2
sft: {preset: tiny, steps: 3, batch_size: 4, val_episodes: 0, seed: 1}
ppo:
  num_envs: 2
  max_episode_steps: 10
  eval_episodes_per_env: 2
  save_every: 1
  wandb: false
  eval_every: 1
  val_episodes_per_env: 1
  select: best_val
  algo: {updates: 1, rollout_steps: 2, minibatch_size: 4, epochs: 1, critic_warmup_updates: 0, num_executed: 5,
         bc_coef: 1.0, bc_batch_size: 2}
engine_eval: {episodes: 2}
""")
    out = tmp_path / "run"
    assert main(["pipeline", "--config", str(cfg), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for method in ("flow_noise", "flow_sde"):  # both piRL methods from the same SFT checkpoint
        r = results["results"][method]
        assert r["sft"]["n"] == 4 and r["rl"]["n"] == 4 and r["env_steps"] > 0
    report = (out / "report.md").read_text()
    assert "| SFT |" in report and "| PPO flow_noise |" in report and "| PPO flow_sde |" in report
    assert (out / "curves.png").stat().st_size > 10_000
    assert (out / "sft" / "checkpoint" / "model.safetensors").exists()
    # the pipeline's seed moves the demo seeds and is added to each stage's own seed
    demos = [json.loads(line) for line in (out / "demos" / "PushCube-v1" / "index.jsonl").read_text().splitlines()]
    assert [d["seed"] for d in demos] == [2000, 2001]
    assert json.loads((out / "sft" / "checkpoint" / "config.json").read_text())["metadata"]["sft"]["seed"] == 3
    ppo_saved = json.loads((out / "ppo_flow_sde" / "config.json").read_text())["run"]
    assert ppo_saved["algo"]["seed"] == 2 and ppo_saved["algo"]["sampler"]["method"] == "flow_sde"
    # the resolved tree, defaults included, not the raw file
    import yaml

    resolved = yaml.safe_load((out / "pipeline_config.yaml").read_text())
    assert resolved["ppo"]["algo"]["bc_coef"] == 1.0 and resolved["ppo"]["algo"]["gamma"] == 0.99
    # PPO's behaviour-cloning term trained on the pipeline's own demos
    metrics = json.loads((out / "ppo_flow_noise" / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["bc_loss"] > 0
    # the first method's policy exported and run closed loop as an engine, next to PyTorch on the first
    # engine_eval_episodes of the same held-out episodes
    assert results["engine"]["engine"]["n"] == 2 and results["engine"]["pytorch"]["n"] == 2
    assert results["engine"]["disagreements"] == 0 and "On those 2 episodes the PyTorch policy" in report
    assert results["engine"]["parity"] <= 1e-4 and "| engine of PPO flow_noise" in report
    # ... the policy PPO chose on its validation seeds (here the only candidate, update 1)
    spec = json.loads((out / "engine" / "engine.json").read_text())
    assert spec["source_checkpoint"]["path"] == str((out / "ppo_flow_noise" / "best").resolve())
    assert "The PPO policy is update 1's, the best of the run's validation evaluations" in report
    # A second call finds every stage complete and only rewrites the report.
    assert main(["pipeline", "--config", str(cfg), "--out", str(out)]) == 0
    # A rerun with another first method exports and evaluates that method's policy; the old engine is kept aside.
    assert main(["pipeline", "--config", str(cfg), "--out", str(out), "--methods", "[flow_sde]"]) == 0
    spec = json.loads((out / "engine" / "engine.json").read_text())
    assert spec["source_checkpoint"]["path"] == str((out / "ppo_flow_sde" / "best").resolve())
    report = (out / "report.md").read_text()
    assert "| engine of PPO flow_sde" in report and "| PPO flow_noise |" not in report
    (aside,) = out.glob("engine.stale-*")
    assert json.loads((aside / "engine.json").read_text())["source_checkpoint"]["path"].endswith("ppo_flow_noise/best")
    assert (aside / "engine_eval.json").exists()
