"""`pirl-export` on a micro policy: both graph layouts, parity with PyTorch, what the graph leaves out, and
the engine directory the runtime reads."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript", reason="ONNX export needs the export extra (`make test` installs it)")
onnx = pytest.importorskip("onnx")

from deploy.export.onnx import export, main  # noqa: E402
from deploy.robot.runtime import load_engine  # noqa: E402
from training.policy.policy import fake_obs  # noqa: E402


@pytest.fixture(scope="module", params=["one", "two"])
def engine_dir(request, exported):
    return exported(request.param)


def test_engine_matches_the_pytorch_policy_for_any_batch(engine_dir, checkpoint):
    from training.policy.checkpoint import load_checkpoint

    spec = json.loads((engine_dir / "engine.json").read_text())
    assert spec["parity"]["onnxruntime_max_abs_diff"] <= 1e-4
    policy = load_checkpoint(checkpoint)
    engine = load_engine(engine_dir)
    assert engine.backend == "onnxruntime (CPUExecutionProvider)"
    for batch in (1, 4):
        obs = fake_obs(policy.cfg, batch=batch, state_dim=5, instruction="push the cube", seed=batch)
        noise = np.random.default_rng(batch).standard_normal((batch, 5, 6)).astype(np.float32)
        got = engine.infer(obs, noise=noise)
        want = policy.infer(obs, noise=noise)
        assert got.shape == (batch, 5, 4) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-4)
    # same noise, same chunk; fresh noise, another chunk: the initial noise really is an input
    obs = fake_obs(policy.cfg, batch=1, state_dim=5)
    assert not np.allclose(engine.infer(obs), engine.infer(obs))


def test_engine_json_describes_inputs_and_its_source(engine_dir, checkpoint):
    from deploy.robot.runtime import read_spec
    from training.policy.checkpoint import checkpoint_hash

    spec = json.loads((engine_dir / "engine.json").read_text())
    assert read_spec(engine_dir) == spec and load_engine(engine_dir).spec == spec  # the round trip
    assert spec["cameras"] == ["base", "wrist"] and spec["image_size"] == 32
    assert spec["state_dim"] == 5 and spec["action_dim"] == 4 and spec["action_horizon"] == 5
    assert spec["num_steps"] == 4 and spec["inputs"]["noise"]["shape"] == ["batch", 5, 6]
    assert spec["source_checkpoint"]["sha256"] == checkpoint_hash(checkpoint)
    assert spec["action_space"]["kind"] == "ee_delta_pose"
    assert set(spec["files"]) == {*spec["graph_files"], "norm_stats.json", "tokenizer/tokenizer.json"}
    for name in spec["graph_files"]:  # the RL heads are not in the graph
        weights = [init.name for init in onnx.load(str(engine_dir / name)).graph.initializer]
        assert weights and not [w for w in weights if "noise_net" in w or "value_head" in w]


def test_export_refuses_an_occupied_directory_and_a_missing_checkpoint(tmp_path, checkpoint, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    assert main([str(checkpoint), "--out", str(tmp_path / "busy")]) == 1
    assert "is not empty" in capsys.readouterr().err
    from training.policy.checkpoint import CheckpointError

    with pytest.raises(CheckpointError):
        export(tmp_path / "nothing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_parity_failure_leaves_nothing_behind(tmp_path, checkpoint, monkeypatch):
    import deploy.export.onnx as ex

    monkeypatch.setattr(ex, "check_parity", lambda *a, **k: 1.0)  # as if the graph computed something else
    with pytest.raises(ex.ExportError, match="differs from the PyTorch policy by 1.00e\\+00"):
        export(checkpoint, tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.*"))


def test_tensorrt_build_where_tensorrt_is_installed(tmp_path, checkpoint):
    pytest.importorskip("tensorrt", reason="TensorRT is not installable here; runs where tensorrt imports")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    spec = export(checkpoint, tmp_path / "trt", tensorrt=True, precision="fp16")
    assert spec["tensorrt"]["precision"] == "fp16" and spec["parity"]["tensorrt_max_abs_diff"] < 1e-2
    assert load_engine(tmp_path / "trt").backend == "tensorrt"


def test_asking_for_tensorrt_without_it_fails_at_once_with_the_install_hint(tmp_path, checkpoint, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt"):
        pytest.skip("tensorrt is installed here")
    assert main([str(checkpoint), "--out", str(tmp_path / "trt"), "--tensorrt"]) == 1
    assert "TensorRT is not installed" in capsys.readouterr().err and not (tmp_path / "trt").exists()


def test_a_pi05_style_engine_writes_the_state_into_the_prompt_like_training(tmp_path):
    """No state token: the discretised state reaches the model through the prompt, in PyTorch and the runtime."""
    from tests.conftest import micro_config
    from training.policy.checkpoint import save_checkpoint
    from training.policy.policy import Policy

    # (time_conditioning "mlp": an untrained adaRMS expert starts as identity and would not read the prefix yet)
    cfg = micro_config(state_token=False, vocab_size=320, max_token_len=20)
    rng = np.random.default_rng(0)
    words = ["task: push the cube, state: ;\naction:", " ".join(str(i) for i in range(-1, 256))]
    policy = Policy.create(cfg, words, rng.standard_normal((64, 5)), rng.uniform(-1, 1, (64, 5, 4)), seed=0,
                           norm_mode="quantile")
    engine_dir = tmp_path / "engine"
    export(save_checkpoint(tmp_path / "ckpt", policy), engine_dir)
    engine = load_engine(engine_dir)
    assert engine.spec["state_token"] is False
    obs = fake_obs(cfg, batch=2, state_dim=5, instruction="push the cube", seed=3)
    np.testing.assert_array_equal(engine.prepare(obs).tokens, policy.prepare(obs).tokens.numpy())
    moved = {**obs, "state": obs["state"] + np.float32(0.5)}
    assert not np.array_equal(engine.prepare(moved).tokens, engine.prepare(obs).tokens)  # the state is in the prompt
    noise = rng.standard_normal((2, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(engine.infer(obs, noise=noise), policy.infer(obs, noise=noise), atol=1e-4)
    assert not np.allclose(engine.infer(moved, noise=noise), engine.infer(obs, noise=noise))


def test_external_weights_are_written_hashed_and_loaded(tmp_path, checkpoint, monkeypatch):
    """Models over 1 GiB (a pi0: 13 GB) keep their weights in policy.onnx.data (ONNX protobufs stop at 2 GB): the
    same path, forced on the micro policy."""
    import deploy.export.onnx as ex

    monkeypatch.setattr(ex, "EXTERNAL_DATA_BYTES", 0)
    spec = export(checkpoint, tmp_path / "engine")
    data = [f for f in spec["graph_files"] if f.endswith(".data")]
    assert data and set(spec["graph_files"]) <= set(spec["files"]), spec["graph_files"]
    graph = onnx.load(str(tmp_path / "engine" / "policy.onnx"), load_external_data=False)
    external = [t.name for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and (tmp_path / "engine" / data[0]).stat().st_size > 100_000
    engine = load_engine(tmp_path / "engine")
    from training.policy.checkpoint import load_checkpoint

    policy = load_checkpoint(checkpoint)
    obs = fake_obs(policy.cfg, batch=1, state_dim=5, seed=4)
    noise = np.zeros((1, 5, 6), np.float32)
    np.testing.assert_allclose(engine.infer(obs, noise=noise), policy.infer(obs, noise=noise), atol=1e-4)
    with open(tmp_path / "engine" / data[0], "r+b") as f:  # the external weights are hashed like the graph
        f.seek(64)
        f.write(b"\x13\x37")
    from deploy.robot.runtime import EngineError

    with pytest.raises(EngineError, match=f"{data[0]} does not match the SHA-256"):
        load_engine(tmp_path / "engine")
