"""`pirl-train ppo` end to end on the real simulator: a run interrupted after one update and resumed ends
bit for bit where an uninterrupted run does."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # a whole run or several processes (docs: pytest -m 'not slow')
pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")

from tests.training.ppo.test_ppo_run import _policy  # noqa: E402
from training.policy.checkpoint import CheckpointError, save_checkpoint  # noqa: E402
from training.policy.config import SamplerConfig  # noqa: E402
from training.ppo.config import PPOConfig, PPORunConfig  # noqa: E402
from training.ppo.run import run_ppo  # noqa: E402


class _Spec:  # what _policy needs from an env
    camera_names = ("base_camera",)
    state_dim = 9
    action_dim = 4


@pytest.fixture(scope="module")
def init_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("sft") / "checkpoint"
    save_checkpoint(path, _policy(_Spec()), metadata={"tasks": ["PushCube-v1"]})
    return path


def _run(out, init, updates, resume=False, critic="policy"):
    cfg = PPOConfig(sampler=SamplerConfig(method="flow_sde"), num_executed=3, rollout_steps=3, updates=updates,
                    epochs=1, minibatch_size=3, critic_warmup_updates=1, target_kl=None, critic=critic,
                    critic_hidden=16)
    run = PPORunConfig(init=str(init), out=str(out), num_envs=2, max_episode_steps=10, eval_episodes_per_env=1,
                       save_every=1, resume=resume, algo=cfg)
    return run_ppo(run, progress=False)


@pytest.mark.parametrize("critic", ["policy", "privileged"])
def test_resume_restores_the_exact_state(tmp_path, init_ckpt, critic):
    _run(tmp_path / "straight", init_ckpt, updates=2, critic=critic)
    _run(tmp_path / "split", init_ckpt, updates=1, critic=critic)
    with pytest.raises(FileExistsError, match="already holds a run"):
        _run(tmp_path / "split", init_ckpt, updates=2, critic=critic)
    other = "privileged" if critic == "policy" else "policy"
    with pytest.raises(ValueError, match=f"algo.critic differs .*saved '{critic}', now '{other}'"):
        _run(tmp_path / "split", init_ckpt, updates=2, resume=True, critic=other)  # only updates may change
    results = _run(tmp_path / "split", init_ckpt, updates=2, resume=True, critic=critic)
    a = load_file(str(tmp_path / "straight" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [m["update"] for m in mb] == [1, 2]
    for x, y in zip(ma, mb, strict=True):
        assert x["policy_loss"] == y["policy_loss"] and x["env_steps"] == y["env_steps"]
    assert np.isfinite(results["rl"]["success"]) and results["env_steps"] == ma[-1]["env_steps"]
    videos = [p for p in (tmp_path / "straight" / "videos").rglob("*") if p.suffix in (".mp4", ".gif")]
    assert videos and all(p.stat().st_size > 1000 for p in videos), "evaluation videos are written"
    if critic == "policy":  # a finished run extended by --updates is judged again, not by its old final eval
        extended = _run(tmp_path / "split", init_ckpt, updates=3, resume=True, critic=critic)
        evals = json.loads((tmp_path / "split" / "evals.json").read_text())
        assert evals["final"]["updates"] == 3 and evals["final"]["env_steps"] == extended["env_steps"]
        assert extended["env_steps"] > results["env_steps"]
    if importlib.util.find_spec("wandb"):  # offline W&B run beside the metrics, resumed under the same id
        assert list((tmp_path / "split" / "wandb").glob("offline-run-*"))
        assert (tmp_path / "split" / "wandb_run_id").read_text().strip()


def test_bad_ppo_inputs_are_named(tmp_path, init_ckpt):
    with pytest.raises(CheckpointError, match="does not exist"):
        _run(tmp_path / "x", tmp_path / "no_such_checkpoint", updates=1)
    with pytest.raises(FileNotFoundError, match="no checkpoint with learner state"):
        _run(tmp_path / "y", init_ckpt, updates=1, resume=True)
    with pytest.raises(ValueError, match="unknown sampler method 'flow_magic'"):
        PPOConfig(sampler=SamplerConfig(method="flow_magic"))
    with pytest.raises(ValueError, match="sampler.method must be 'flow_noise', 'flow_sde' or 'fpo'"):
        PPOConfig(sampler=SamplerConfig(method="ode"))  # a sampler, but not one PPO can train
