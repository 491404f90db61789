"""What this repo trains can run on the robots its launch file offers: a joint-space pipeline (demos -> SFT ->
PPO -> engine, all under ManiSkill's pd_joint_pos) makes an engine that the Franka launch paths accept."""

import json
from pathlib import Path

import pytest

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")
pytest.importorskip("onnxscript", reason="exporting the engine needs pirl[export]")

from pirl_bringup.plan import plan  # noqa: E402

from pipeline.cli import main  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "ros_ws" / "src" / "pirl_bringup" / "config"


@pytest.mark.slow
def test_a_joint_space_pipeline_engine_passes_the_franka_launch(tmp_path):
    cfg = tmp_path / "joint.yaml"
    cfg.write_text("""
tasks: [PushCube-v1]
demo_episodes: 2
workers: 1
image_size: 32
control_mode: pd_joint_pos
sft: {preset: tiny, steps: 3, batch_size: 4, val_episodes: 0}
ppo:
  num_envs: 2
  max_episode_steps: 10
  eval_episodes_per_env: 1
  save_every: 1
  wandb: false
  algo: {updates: 1, rollout_steps: 2, minibatch_size: 4, epochs: 1, critic_warmup_updates: 0}
engine_eval: {episodes: 2}
""")
    out = tmp_path / "run"
    assert main(["pipeline", "--config", str(cfg), "--out", str(out)]) == 0
    meta = json.loads((out / "demos" / "PushCube-v1" / "meta.json").read_text())
    assert meta["action_space"]["kind"] == "joint_position"
    spec = json.loads((out / "engine" / "engine.json").read_text())
    assert spec["action_space"]["kind"] == "joint_position" and spec["action_dim"] == 8
    results = json.loads((out / "results.json").read_text())
    assert results["engine"]["engine"]["n"] == 2  # the engine ran closed loop under the joint controller
    franka = plan({"engine": str(out / "engine"), "arm": "franka", "camera": "realsense", "robot": "jtc"}, CONFIG)
    executor = franka.nodes[-1]
    assert executor.parameters["interface"] == "follow_joint_trajectory"
    assert executor.parameters["action_joints"] == spec["action_space"]["names"]
    plan({"engine": str(out / "engine"), "arm": "franka", "camera": "opencv", "robot": "forward"}, CONFIG)
    sim = plan({"engine": str(out / "engine"), "arm": "sim_panda", "camera": "sim", "robot": "sim"}, CONFIG)
    assert sim.nodes[0].parameters["control_mode"] == "pd_joint_pos"
    assert sim.nodes[-1].parameters["safety_limits"].endswith("safety_franka.yaml")
