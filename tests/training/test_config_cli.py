"""Config files and command-line overrides; bad inputs to the training commands."""

import argparse

import numpy as np
import pytest

from tests.conftest import micro_config
from training.cli import add_config_args, build_config, load_config_file, main
from training.policy.policy import Policy
from training.ppo.rollout import RolloutCollector
from training.ppo.train import PPOConfig
from training.sft_run import SFTRunConfig, run_sft


def _parse(argv):
    p = argparse.ArgumentParser()
    add_config_args(p, PPOConfig)
    return p.parse_args(argv)


def test_file_values_are_overridden_by_explicit_flags(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("ppo:\n  lr: 0.002\n  updates: 7\n  method: flow_sde\n")
    cfg = build_config(PPOConfig, "ppo", load_config_file(path), _parse(["--updates", "9"]))
    assert (cfg.lr, cfg.updates, cfg.method) == (0.002, 9, "flow_sde")
    assert cfg.epochs == PPOConfig().epochs  # untouched fields keep the dataclass default
    assert build_config(PPOConfig, "ppo", {}, _parse(["--target-kl", "none"])).target_kl is None


def test_a_typo_names_the_closest_valid_key(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text('{"ppo": {"rollout_step": 4}}')
    with pytest.raises(ValueError, match=r"unknown key 'rollout_step' in section 'ppo'.*did you mean 'rollout_steps'"):
        build_config(PPOConfig, "ppo", load_config_file(path), _parse([]), str(path))
    with pytest.raises(FileNotFoundError, match="config file .* not found"):
        load_config_file(tmp_path / "missing.yaml")


def test_cli_rejects_a_typo_in_the_config_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("sft:\n  stepz: 3\n")
    with pytest.raises(ValueError, match="did you mean 'steps'"):
        main(["sft", "--config", str(path)])


def test_sft_refuses_a_missing_dataset_and_an_occupied_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no demo dataset at .*pirl-train demos"):
        run_sft(SFTRunConfig(data=str(tmp_path / "nothing"), out=str(tmp_path / "run")))
    (tmp_path / "busy" / "checkpoint").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_sft(SFTRunConfig(data=str(tmp_path / "nothing"), out=str(tmp_path / "busy")))


class _FakeEnvSpec:
    """Test double standing in for an env's declared sizes only (the check happens before any simulation)."""

    num_envs, action_dim, state_dim = 1, 7, 9


def test_a_policy_whose_actions_do_not_fit_the_env_is_refused():
    cfg = micro_config()
    rng = np.random.default_rng(0)
    policy = Policy.create(cfg, ["push"], rng.standard_normal((8, 4)), rng.standard_normal((8, cfg.action_horizon, 3)))
    with pytest.raises(ValueError, match="env actions have 7 dims, the policy's 3"):
        RolloutCollector(_FakeEnvSpec(), policy, PPOConfig().sampler(), num_executed=3)
    with pytest.raises(ValueError, match="exceeds the policy's chunk length"):
        RolloutCollector(_FakeEnvSpec(), policy, PPOConfig().sampler(), num_executed=99)


def test_tuple_options_take_comma_separated_values():
    from training.pipeline import PipelineConfig

    p = argparse.ArgumentParser()
    add_config_args(p, PipelineConfig)
    cfg = build_config(PipelineConfig, "pipeline", {"pipeline": {"tasks": ["PickCube-v1"]}},
                       p.parse_args(["--methods", "flow_noise,flow_sde"]))
    assert cfg.methods == ("flow_noise", "flow_sde") and cfg.tasks == ("PickCube-v1",)


def test_shipped_presets_parse_into_their_configs():
    from pathlib import Path

    from training.pipeline import PipelineConfig
    from training.ppo.run import PPORunConfig

    root = Path(__file__).resolve().parents[2] / "configs"
    presets = sorted(root.glob("*.yaml"))
    assert presets, "no presets shipped"
    for path in presets:
        data = load_config_file(path)
        for cls, section in ((PipelineConfig, "pipeline"), (SFTRunConfig, "sft"), (PPORunConfig, "ppo_run"),
                             (PPOConfig, "ppo")):
            build_config(cls, section, data, argparse.Namespace(), str(path))


def test_sft_on_a_tiny_dataset_writes_a_checkpoint_and_a_validation_curve(tmp_path):
    import json

    from training.data.demos import DemoWriter, Episode
    from training.policy.action_space import ActionSpace
    from training.policy.checkpoint import load_checkpoint

    rng = np.random.default_rng(0)
    space = ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper"))
    w = DemoWriter(tmp_path / "demos", {"task": "PushCube-v1", "action_space": space.to_dict()})
    for seed in range(3):
        w.write(Episode("PushCube-v1", "push the cube to the goal", seed, True,
                        {"base_camera": rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)},
                        rng.standard_normal((6, 9)).astype(np.float32), rng.uniform(-1, 1, (6, 4)).astype(np.float32)))
    w.finalize()
    ckpt = run_sft(SFTRunConfig(data=str(tmp_path / "demos"), out=str(tmp_path / "sft"), steps=4, batch_size=4,
                                val_episodes=1, val_every=2, value_source="prefix"), progress=False)
    policy = load_checkpoint(ckpt)
    assert policy.cfg.camera_names == ("base_camera",) and policy.cfg.value_source == "prefix"
    assert policy.action_space == space and policy.norm_stats.actions.dim == 4
    metrics = json.loads((tmp_path / "sft" / "sft_metrics.json").read_text())
    assert [s for s, _ in metrics["val_loss"]] == [2, 4] and metrics["episodes"] == 2
    assert len((tmp_path / "sft" / "sft_losses.jsonl").read_text().splitlines()) == 4


def test_pipeline_refuses_a_typo_in_any_stage_section_before_running(tmp_path):
    from training.pipeline import PipelineConfig, run_pipeline

    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"unknown key 'critic_epoch' in section 'ppo'.*did you mean 'critic_epochs'"):
        run_pipeline(PipelineConfig(out=str(out)), {"ppo": {"critic_epoch": 4}}, progress=False)
    assert not out.exists()  # nothing collected or trained
