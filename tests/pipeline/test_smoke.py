"""The README's main job (`pirl-train demo`) as a tiny-budget smoke run of the real script."""

import json

from pipeline.cli import main
from training.policy.checkpoint import load_checkpoint


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["smoke", "--out", str(out), "--steps", "3", "--train-samples", "16", "--eval-samples", "8",
                 "--batch-size", "4"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checkpoint_roundtrip_max_abs_diff"] == 0.0
    assert set(metrics["samplers"]) == {"flow_sde/hybrid", "flow_noise/joint"}
    assert (out / "loss_curve.png").stat().st_size > 1000
    load_checkpoint(out / "checkpoint")
    printed = capsys.readouterr().out
    assert "after SFT" in printed and "log-prob (mean_steps)" in printed
