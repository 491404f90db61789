"""`pirl-train sft` with its periodic success evaluation in the real ManiSkill simulator."""

import json

import numpy as np

from training.data.demos import DemoWriter, Episode
from training.policy.action_space import ActionSpace
from training.sft_run import SFTRunConfig, run_sft


def _tiny_pushcube_demos(root):
    rng = np.random.default_rng(0)
    space = ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper"))
    w = DemoWriter(root, {"task": "PushCube-v1", "action_space": space.to_dict()})
    for seed in range(2):
        w.write(Episode("PushCube-v1", "push the cube to the goal", seed, True,
                        {"base_camera": rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)},
                        rng.standard_normal((6, 9)).astype(np.float32),
                        rng.uniform(-1, 1, (6, 4)).astype(np.float32)))
    w.finalize()


def test_sft_evaluates_in_sim_every_n_steps_and_at_the_end(tmp_path):
    _tiny_pushcube_demos(tmp_path / "demos")
    out = tmp_path / "sft"
    run_sft(SFTRunConfig(data=str(tmp_path / "demos"), out=str(out), steps=5, batch_size=4, val_episodes=0,
                         eval_every=2, eval_episodes_per_env=1, eval_envs=1, eval_max_episode_steps=10),
            progress=False)
    lines = [json.loads(x) for x in (out / "sft_evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 5]  # every 2 steps, and the last one
    for r in lines:
        assert r["n"] == 1 and r["success"] in (0.0, 1.0) and 0 <= r["ci95"][0] <= r["ci95"][1] <= 1
    metrics = json.loads((out / "sft_metrics.json").read_text())
    assert [r["step"] for r in metrics["sim_success"]] == [2, 4, 5]
