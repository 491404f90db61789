"""`pirl-eval-engine`: the exported engine, through the runtime and the chunk executor, closed loop in the
real ManiSkill simulator, episode for episode like the PyTorch policy it came from."""

import json

import pytest

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")
pytest.importorskip("onnxscript", reason="ONNX export needs the export extra (`make test` installs it)")

from deploy.export.onnx import export  # noqa: E402
from deploy.sim.eval import disagreements, main  # noqa: E402
from tests.training.ppo.test_ppo_resume import _Spec  # noqa: E402
from tests.training.ppo.test_ppo_run import _policy  # noqa: E402
from training.policy.checkpoint import save_checkpoint  # noqa: E402


@pytest.mark.slow
def test_engine_in_the_loop_matches_the_pytorch_policy(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "ckpt", _policy(_Spec()), metadata={"tasks": ["PushCube-v1"]})
    export(ckpt, tmp_path / "engine")
    out = tmp_path / "eval.json"
    assert main([str(tmp_path / "engine"), "--task", "PushCube-v1", "--episodes", "4", "--num-envs", "2",
                 "--num-executed", "3", "--max-episode-steps", "9", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    eng, ref = result["engine"], result["pytorch"]
    assert eng["overall"]["n"] == ref["overall"]["n"] == 4
    # same seeds, same noise, same (to 1e-4) actions: the same episodes
    assert [(e["seed"], e["length"]) for e in eng["episodes"]] == [(e["seed"], e["length"]) for e in ref["episodes"]]
    assert [round(e["ret"], 3) for e in eng["episodes"]] == pytest.approx([round(e["ret"], 3) for e in ref["episodes"]],
                                                                          abs=1e-2)
    assert result["disagreements"] == [] and eng["safety"]["commands"] == 4 * 9
    assert eng["latency_ms"]["p50"] > 0
    printed = capsys.readouterr().out
    assert "| engine | all |" in printed and "| pytorch | PushCube-v1 |" in printed
    assert main([str(tmp_path / "nothing"), "--task", "PushCube-v1"]) == 1


def test_disagreements_match_episodes_by_task_and_seed_not_by_order():
    def ep(task, seed, success):
        return {"task": task, "seed": seed, "success": success}

    engine = [ep("Push", 1, True), ep("Pull", 2, False), ep("Push", 3, True), ep("Pull", 4, True)]
    # the PyTorch runner finished the same episodes in another order; only seed 4 ends differently
    torch = [ep("Pull", 2, False), ep("Push", 1, True), ep("Pull", 4, False), ep("Push", 3, True)]
    assert disagreements(engine, torch) == [4]
