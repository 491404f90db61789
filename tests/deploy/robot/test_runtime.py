"""The numpy runtime: what it refuses, and that a robot process never imports torch."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.observation import ObservationError
from deploy.robot.runtime import EngineError, NonFiniteActions, engine_hash, load_engine, read_spec


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
from deploy.robot.runtime import load_engine
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


def _copy(exported, tmp_path, name="engine"):
    out = tmp_path / name
    shutil.copytree(exported("one"), out)
    return out


def _rehash(engine_dir):
    """Re-sign engine.json's `files` after an edit: an engine whose files are consistent, but hold bad data."""
    spec = json.loads((engine_dir / "engine.json").read_text())
    spec["files"] = {n: hashlib.sha256((engine_dir / n).read_bytes()).hexdigest() for n in spec["files"]}
    (engine_dir / "engine.json").write_text(json.dumps(spec))


def _edit_norm_stats(engine_dir, key, stat, dim, value):
    path = engine_dir / "norm_stats.json"
    stats = json.loads(path.read_text())
    stats[key][stat][dim] = value
    path.write_text(json.dumps(stats))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_noise_is_refused(exported, bad):
    engine = load_engine(exported("one"))
    noise = np.zeros((2, 5, 6), np.float32)
    noise[1, 3, 2] = bad
    with pytest.raises(ObservationError, match=r"initial noise is not finite at index \(1, 3, 2\)"):
        engine.infer(_obs(), noise=noise)


@pytest.mark.parametrize("noise, message", [
    ([[0.0] * 6] * 5, "noise must be a numpy array"),
    (np.zeros((2, 5, 6), np.int64), "floating point"),
    (np.zeros((2, 5, 4), np.float32), r"shape \(2, 5, 6\)"),
])
def test_malformed_noise_is_refused(exported, noise, message):
    with pytest.raises(ObservationError, match=message):
        load_engine(exported("one")).infer(_obs(), noise=noise)


@pytest.mark.parametrize("change, message", [
    (lambda o: None, "must be a dict"),
    (lambda o: {**o, "instruction": None}, "list of 2 strings .* got NoneType"),
    (lambda o: {**o, "instruction": ["push", None]}, "instruction 1 must be a str"),
    (lambda o: {**o, "images": None}, "camera set mismatch"),
    (lambda o: {**o, "state": None}, "state must be"),
])
def test_wrong_types_are_observation_errors_not_crashes(exported, change, message):
    with pytest.raises(ObservationError, match=message):
        load_engine(exported("one")).infer(change(_obs()))


def test_a_state_that_overflows_normalization_is_refused(exported, tmp_path):
    engine_dir = _copy(exported, tmp_path)
    _edit_norm_stats(engine_dir, "state", "std", 2, 0.0)  # a constant state dim in the training data
    _rehash(engine_dir)
    engine = load_engine(engine_dir)
    obs = _obs()
    obs["state"][1, 2] = 1e33  # finite, but / (0 + 1e-6) is beyond float32
    with pytest.raises(ObservationError, match=r"state \[env 1, dim 2\] = .* overflows normalization"):
        engine.infer(obs)
    obs = _obs()
    obs["state"][0, 0] = np.finfo(np.float32).max  # the largest float32, in a dim with std < 1
    assert engine.norm_stats.state.std[0] < 1
    with pytest.raises(ObservationError, match="overflows normalization"):
        engine.infer(obs)


def test_a_non_finite_chunk_is_never_returned(exported, tmp_path):
    engine_dir = _copy(exported, tmp_path)
    _edit_norm_stats(engine_dir, "actions", "std", 1, 1e300)  # unnormalization overflows float32
    _rehash(engine_dir)
    with pytest.raises(NonFiniteActions, match="after unnormalization"):
        load_engine(engine_dir).infer(_obs())

    class NaNGraph:  # test double: a graph that computes NaN (as a broken TensorRT build might)
        def run(self, inputs, noise, guide_actions, guide_weights):
            out = np.zeros_like(noise)
            out[0, 4, 5] = np.nan
            return out

    engine = load_engine(exported("one"))
    engine._backend = NaNGraph()
    with pytest.raises(NonFiniteActions, match=r"normalized\) action chunk is not finite at index \(0, 4, 5\)"):
        engine.infer(_obs())


@pytest.mark.parametrize("name", ["norm_stats.json", "tokenizer/tokenizer.json", "policy.onnx"])
def test_every_file_the_runtime_reads_is_hashed(exported, tmp_path, name):
    engine_dir = _copy(exported, tmp_path)
    before = engine_hash(engine_dir)
    f = engine_dir / name
    data = f.read_bytes()
    i = data.index(b"0.") if name == "norm_stats.json" else len(data) // 2
    f.write_bytes(data[:i] + (b"1" if data[i:i + 1] != b"1" else b"2") + data[i + 1:])  # one character
    with pytest.raises(EngineError, match=f"{name} does not match the SHA-256"):
        load_engine(engine_dir)
    with pytest.raises(EngineError, match="does not match the SHA-256"):
        engine_hash(engine_dir)  # trials cannot record a hash for an engine whose files changed
    f.write_bytes(data)
    assert engine_hash(engine_dir) == before


def test_the_hash_list_cannot_be_removed_or_cut_short(exported, tmp_path):
    engine_dir = _copy(exported, tmp_path)
    spec = json.loads((engine_dir / "engine.json").read_text())
    del spec["files"]
    (engine_dir / "engine.json").write_text(json.dumps(spec))
    with pytest.raises(EngineError, match="missing the key 'files'"):
        load_engine(engine_dir)
    spec["files"] = {"policy.onnx": hashlib.sha256((engine_dir / "policy.onnx").read_bytes()).hexdigest()}
    (engine_dir / "engine.json").write_text(json.dumps(spec))
    with pytest.raises(EngineError, match=r"does not list the SHA-256 of \['norm_stats.json', 'tokenizer/"):
        load_engine(engine_dir)
    spec["files"]["../../etc/hostname"] = "0" * 64
    spec["files"].update({n: "0" * 64 for n in ("norm_stats.json", "tokenizer/tokenizer.json")})
    (engine_dir / "engine.json").write_text(json.dumps(spec))
    with pytest.raises(EngineError, match="not a relative path inside the engine directory"):
        read_spec(engine_dir)
    del spec["files"]["../../etc/hostname"]
    spec["tokenizer"] = "../"
    (engine_dir / "engine.json").write_text(json.dumps(spec))
    with pytest.raises(EngineError, match="'../', which is not a relative path inside"):
        read_spec(engine_dir)


@pytest.mark.parametrize("content, message", [
    (b"[1, 2, 3]", "must hold a JSON object, found a list"),
    (b'"pirl-engine/1"', "must hold a JSON object, found a str"),
    (b"\xff\xfe{}", "is not UTF-8"),
    (b'{"format": "pirl-engine/1"', "is not valid JSON"),
])
def test_malformed_engine_json_is_an_engine_error(exported, tmp_path, content, message):
    engine_dir = _copy(exported, tmp_path)
    (engine_dir / "engine.json").write_bytes(content)
    with pytest.raises(EngineError, match=message) as e:
        load_engine(engine_dir)
    assert "engine.json" in str(e.value)


@pytest.mark.parametrize("key", ["action_horizon", "tokenizer", "graph_files", "normalization"])
def test_a_missing_key_is_named(exported, tmp_path, key):
    engine_dir = _copy(exported, tmp_path)
    spec = json.loads((engine_dir / "engine.json").read_text())
    del spec[key]
    (engine_dir / "engine.json").write_text(json.dumps(spec))
    with pytest.raises(EngineError, match=f"engine.json: is missing the key '{key}'"):
        load_engine(engine_dir)


@pytest.mark.parametrize("name, content, message", [
    ("tokenizer/tokenizer.json", b"\x00garbage{", "cannot read the tokenizer"),
    ("tokenizer/tokenizer.json", b'{"type": "word", "vocab": 3}', "cannot read the tokenizer"),
    ("norm_stats.json", b"[]", "cannot read norm_stats.json"),
    ("norm_stats.json", b'{"state": {"mean": [0]}}', "cannot read norm_stats.json"),
])
def test_garbage_in_a_hashed_file_is_an_engine_error(exported, tmp_path, name, content, message):
    engine_dir = _copy(exported, tmp_path)
    (engine_dir / name).write_bytes(content)
    _rehash(engine_dir)
    with pytest.raises(EngineError, match=message):
        load_engine(engine_dir)


def test_real_time_chunking_guidance_reaches_the_graph(exported):
    """The engine takes RTC's guidance in env units: weight 1 returns the committed actions, weight 0 the free
    chunk; malformed guidance is an ObservationError, and guidance for an engine without it an EngineError."""
    engine = load_engine(exported("one"))
    assert engine.rtc
    noise = np.random.default_rng(1).standard_normal((2, *engine.chunk_shape)).astype(np.float32)
    free = engine.infer(_obs(), noise=noise)
    h, a = engine.action_horizon, engine.action_dim
    committed = np.random.default_rng(2).uniform(-1, 1, (2, h, a))
    weights = np.zeros((2, h))
    weights[:, :3] = 1.0
    guided = engine.infer(_obs(), noise=noise, guide=(committed, weights))
    np.testing.assert_allclose(guided[:, :3], committed[:, :3], atol=1e-4)
    assert not np.allclose(guided[:, :3], free[:, :3], atol=1e-2)
    np.testing.assert_allclose(engine.infer(_obs(), noise=noise, guide=(committed, np.zeros((2, h)))), free,
                               atol=1e-6)
    with pytest.raises(ObservationError, match=r"weights must lie in \[0, 1\]"):
        engine.infer(_obs(), noise=noise, guide=(committed, weights * 2))
    with pytest.raises(ObservationError, match="guidance must be actions"):
        engine.infer(_obs(), noise=noise, guide=(committed[:, :, :2], weights))
    engine.spec = {**engine.spec, "rtc": False}  # as an engine exported before guidance existed
    with pytest.raises(EngineError, match="re-export it to guide chunks"):
        engine.infer(_obs(), noise=noise, guide=(committed, weights))
