"""The config tree: files, nested overrides, strict types, typos; bad inputs to the training commands."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import ConfigError, main, parse
from pipeline.config import PipelineConfig
from tests.conftest import micro_config
from training.policy.policy import Policy
from training.ppo.config import PPOConfig, PPORunConfig
from training.ppo.rollout import RolloutCollector
from training.sft.config import SFTConfig
from training.sft.run import run_sft

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_file_values_are_overridden_by_nested_flags(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("algo:\n  lr: 0.002\n  updates: 7\n  sampler:\n    method: flow_sde\n")
    cfg = parse("ppo", ["--config", str(path), "--algo.updates", "9", "--algo.sampler.chain_mode", "joint"])
    assert (cfg.algo.lr, cfg.algo.updates, cfg.algo.sampler.method) == (0.002, 9, "flow_sde")
    assert cfg.algo.sampler.resolved_chain_mode == "joint"  # settable now: it was not before the tree
    assert cfg.algo.epochs == PPOConfig().epochs  # untouched fields keep the dataclass default
    assert parse("ppo", ["--algo.target_kl", "null"]).algo.target_kl is None
    assert parse("ppo", ["--max-episode-steps", "7"]).max_episode_steps == 7  # dashes name fields too


def test_a_bool_that_is_not_a_bool_is_an_error_not_false():
    with pytest.raises(ConfigError, match="resume.*ture"):
        parse("ppo", ["--resume", "ture"])
    assert parse("ppo", ["--resume", "true"]).resume is True


def test_a_typo_names_the_closest_valid_key(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("ppo:\n  algo:\n    rollout_step: 4\n")
    with pytest.raises(ConfigError, match=r"unknown key 'rollout_step' in .*exp.yaml.ppo.algo.*did you mean "
                                          r"'rollout_steps'"):
        parse("pipeline", ["--config", str(path)])
    with pytest.raises(ConfigError, match="config file .* not found"):
        parse("pipeline", ["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(ConfigError, match="stepz.*did you mean --steps"):  # a flag that is no field
        parse("sft", ["--stepz", "3"])


def test_cli_reports_config_errors_and_exits_2(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text("stepz: 3\n")
    assert main(["sft", "--config", str(path)]) == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
    assert main(["sftt"]) == 2
    assert "did you mean 'sft'" in capsys.readouterr().err
    assert main(["ppo", "--algo.ema_decay", "1.5"]) == 2  # the config's own validation, before any work
    assert "ema_decay must be in [0, 1)" in capsys.readouterr().err


def test_help_shows_field_docs(capsys):
    with pytest.raises(SystemExit):
        parse("pipeline", ["--help"])
    text = capsys.readouterr().out
    assert "--ppo.algo.sampler.method" in text and "Scripted demos per task" in text


def test_sft_refuses_a_missing_dataset_and_an_occupied_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no demo dataset at .*pirl-train demos"):
        run_sft(SFTConfig(data=(str(tmp_path / "nothing"),), out=str(tmp_path / "run")))
    (tmp_path / "busy" / "checkpoint").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_sft(SFTConfig(data=(str(tmp_path / "nothing"),), out=str(tmp_path / "busy")))


class _FakeEnvSpec:
    """Test double standing in for an env's declared sizes only (the check happens before any simulation)."""

    num_envs, action_dim, state_dim = 1, 7, 9


def test_a_policy_whose_actions_do_not_fit_the_env_is_refused():
    cfg = micro_config()
    rng = np.random.default_rng(0)
    policy = Policy.create(cfg, ["push"], rng.standard_normal((8, 4)), rng.standard_normal((8, cfg.action_horizon, 3)))
    with pytest.raises(ValueError, match="env actions have 7 dims, the policy's 3"):
        RolloutCollector(_FakeEnvSpec(), policy, PPOConfig().sampler, num_executed=3)
    with pytest.raises(ValueError, match="exceeds the policy's chunk length"):
        RolloutCollector(_FakeEnvSpec(), policy, PPOConfig().sampler, num_executed=99)


def test_a_lone_string_for_a_list_is_one_item_not_its_characters(tmp_path):
    """draccus alone reads `--data data/push` as ('d', 'a', 't', ...): the CLI makes it one item, and a comma
    list several (the pre-draccus spelling), on the command line and in a file."""
    assert parse("sft", ["--data", "data/push"]).data == ("data/push",)
    assert parse("sft", ["--data=data/a,data/b"]).data == ("data/a", "data/b")
    path = tmp_path / "one.yaml"
    path.write_text("tasks: PickCube-v1\nppo:\n  bc_data: demos/a\n")
    cfg = parse("pipeline", ["--config", str(path)])
    assert cfg.tasks == ("PickCube-v1",) and cfg.ppo.bc_data == ("demos/a",)


def test_list_options_take_yaml_lists():
    cfg = parse("pipeline", ["--tasks", "[PickCube-v1]", "--methods", "[flow_noise,flow_sde]"])
    assert cfg.methods == ("flow_noise", "flow_sde") and cfg.tasks == ("PickCube-v1",)
    with pytest.raises(ConfigError, match="methods"):
        parse("pipeline", ["--methods", "[flow_magic]"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_presets_parse_into_the_tree(path):
    cfg = parse("pipeline", ["--config", str(path)])
    assert isinstance(cfg, PipelineConfig) and isinstance(cfg.ppo, PPORunConfig)
    written = yaml.safe_load(path.read_text())
    assert cfg.tasks == tuple(written["tasks"]) and cfg.ppo.algo.updates == written["ppo"]["algo"]["updates"]


def test_the_pipeline_writes_its_paths_and_seed_into_the_stages(tmp_path):
    from pipeline.run import stage_configs

    cfg = parse("pipeline", ["--config", str(CONFIGS / "cpu_demo.yaml"), "--seed", "3", "--sft.seed", "1"])
    sft, ppo = stage_configs(cfg, "flow_sde", ("d/a", "d/b"), tmp_path)
    assert sft.data == ("d/a", "d/b") and sft.out == str(tmp_path / "sft") and sft.seed == 4
    assert ppo.init == str(tmp_path / "sft" / "checkpoint") and ppo.tasks == cfg.tasks
    assert ppo.algo.sampler.method == "flow_sde" and ppo.algo.seed == 3 and ppo.bc_data == ("d/a", "d/b")
    assert ppo.algo.lr == cfg.ppo.algo.lr and ppo.select == "ema"  # the rest is the file's


def test_a_stage_takes_its_section_of_a_pipeline_file():
    """`pirl-train ppo --config configs/maniskill_gpu.yaml` (the cluster recipe) reads the file's `ppo:` section."""
    cfg = parse("ppo", ["--config", str(CONFIGS / "maniskill_gpu.yaml"), "--init", "runs/x/checkpoint"])
    assert isinstance(cfg, PPORunConfig) and cfg.num_envs == 320 and cfg.algo.schedule == "cosine"
    sft = parse("sft", ["--config", str(CONFIGS / "maniskill_gpu.yaml")])
    assert sft.preset == "small" and sft.steps == 20000


def test_the_rlinf_configs_hold_rlinf_published_settings():
    """configs/rlinf_*.yaml parse into RLinf's numbers (the issue's list); each option is tested on its own in
    tests/training/ppo/test_rlinf_options.py and together on ManiSkill in test_ppo_run.py."""
    ms = parse("pipeline", ["--config", str(CONFIGS / "rlinf_maniskill.yaml")])
    algo = ms.ppo.algo
    assert ms.ppo.num_envs == 320 and algo.sampler.num_steps == 4 and ms.sft.action_horizon == 8
    assert algo.num_executed == 5 and algo.epochs == 4 and algo.entropy_coef == 0.005
    assert (algo.lr, algo.critic_lr) == (7.91e-6, 1.55e-4)
    assert ms.ppo.num_envs * algo.rollout_steps == algo.minibatch_size == 5120  # one global batch per epoch
    assert algo.sampler.log_prob_reduction == "token_level" and algo.sampler.method == "flow_noise"
    for cfg in (ms, parse("pipeline", ["--config", str(CONFIGS / "rlinf_libero_spatial.yaml")])):
        a = cfg.ppo.algo
        assert (a.optimizer, a.weight_decay, a.grad_clip_mode, a.value_coef) == ("adamw", 0.01, "global", 1.0)
        assert a.advantage_norm == "rollout" and a.bootstrap_truncation and a.critic_input == "steps_mean"
    lib = cfg.ppo.algo
    assert cfg.ppo.num_envs == 64 and (lib.lr, lib.critic_lr) == (5e-6, 1e-4) and lib.sampler.num_steps == 4
    assert (lib.sampler.method, lib.sampler.noise_level, lib.sampler.resolved_chain_mode) == ("flow_sde", 0.5, "hybrid")
    assert lib.sampler.log_prob_reduction == "mean_steps"  # RLinf's chunk_level
