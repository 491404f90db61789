"""The numpy runtime: what it refuses, and that a robot process never imports torch."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deploy.runtime import EngineError, load_engine
from training.policy.observation import ObservationError


def _obs(batch=2, state_dim=5, size=32, cams=("base", "wrist")):
    rng = np.random.default_rng(0)
    return {"images": {c: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8) for c in cams},
            "state": rng.standard_normal((batch, state_dim)).astype(np.float32),
            "instruction": ["push the cube"] * batch}


@pytest.mark.parametrize("change, message", [
    (lambda o: o["images"].pop("wrist"), "camera set mismatch"),
    (lambda o: o["images"].update(wrist=np.zeros((2, 64, 64, 3), np.uint8)), "resize to 32x32"),
    (lambda o: o["images"].update(base=o["images"]["base"].astype(np.float32)), "must be uint8"),
    (lambda o: o.update(state=np.zeros((2, 7), np.float32)), r"state must be \(N, 5\)"),
    (lambda o: o.update(state=np.full((2, 5), np.nan, np.float32)), "non-finite"),
    (lambda o: o.update(instruction=["push"]), "list of 2 strings"),
])
def test_bad_observations_are_refused_with_what_to_do(exported, change, message):
    engine = load_engine(exported("one"))
    obs = _obs()
    change(obs)
    with pytest.raises(ObservationError, match=message):
        engine.infer(obs)


def test_damaged_or_foreign_engines_are_refused(exported, tmp_path):
    with pytest.raises(EngineError, match="engine.json missing"):
        load_engine(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(exported("one"), bad)
    with open(bad / "policy.onnx", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(EngineError, match="does not match the SHA-256"):
        load_engine(bad)
    spec = json.loads((bad / "engine.json").read_text())
    spec["format"] = "someone-else/3"
    (bad / "engine.json").write_text(json.dumps(spec))
    with pytest.raises(EngineError, match="format"):
        load_engine(bad)


def test_the_runtime_never_imports_torch(exported):
    script = f"""
import sys, numpy as np
from deploy.runtime import load_engine
e = load_engine({str(exported("one"))!r})
rng = np.random.default_rng(0)
obs = {{"images": {{c: rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8) for c in ("base", "wrist")}},
       "state": np.zeros((1, 5), np.float32), "instruction": ["push the cube"]}}
chunk = e.infer(obs)
assert chunk.shape == (1, 5, 4), chunk.shape
heavy = sorted(m for m in ("torch", "mani_skill", "sapien", "robosuite") if m in sys.modules)
print("imported:", heavy)
sys.exit(1 if heavy else 0)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
