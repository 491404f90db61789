"""The robot graph's logic end to end without ROS: an exported engine drives the ManiSkill sim arm through
PolicyRunner, ArmController, executor and safety filter, as `arm.launch.py camera:=sim robot:=sim` does."""

import numpy as np
import pytest

from tests.conftest import micro_config

pytest.importorskip("mani_skill", reason="the sim arm needs ManiSkill (pirl[sim])")
pytest.importorskip("onnxscript", reason="exporting the test engine needs pirl[export]")

SIZE = 32


@pytest.fixture(scope="module")
def panda_engine(tmp_path_factory):
    """A tiny untrained engine shaped for the ManiSkill Panda: camera base_camera, 9 joint values, 4 ee deltas."""
    from deploy.export import export
    from deploy.runtime import load_engine
    from training.policy.action_space import ActionSpace
    from training.policy.checkpoint import save_checkpoint
    from training.policy.policy import Policy

    cfg = micro_config(camera_names=("base_camera",), state_dim=12, action_dim=4, action_horizon=10,
                       max_token_len=16)
    rng = np.random.default_rng(0)
    # actions mostly "up" (dz > 0): an untrained policy then still moves the arm visibly
    actions = np.concatenate([rng.uniform(-0.2, 0.2, (64, 10, 2)), rng.uniform(0.5, 1.0, (64, 10, 1)),
                              np.ones((64, 10, 1))], axis=-1)
    policy = Policy.create(cfg, ["push the cube to the goal"], rng.standard_normal((64, 9)), actions, seed=0,
                           action_space=ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper")))
    root = tmp_path_factory.mktemp("panda")
    export(save_checkpoint(root / "checkpoint", policy), root / "engine")
    return load_engine(root / "engine", backends=("onnxruntime",))


def test_engine_drives_the_sim_arm_through_executor_and_safety(panda_engine):
    from deploy.dry_run import DryRunLoop
    from deploy.safety import SafetyLimits
    from deploy.sim_arm import SimArm, SimArmConfig

    arm = SimArm(SimArmConfig(task="PushCube-v1", image_size=(SIZE, SIZE)))
    limits = SafetyLimits("ee_delta_pose", lower=(-1.0,) * 4, upper=(1.0,) * 4, gripper_index=3)
    try:
        loop = DryRunLoop(panda_engine, arm, limits, control_hz=20.0, num_executed=5)
        result = loop.episode(seed=3, max_steps=30)
    finally:
        arm.close()
    assert result.steps == 30 and result.faults == 0
    assert result.chunks >= 6  # a chunk every 5 ticks
    assert result.holds <= 1  # at most the first tick, before the first chunk
    cmds = np.stack(result.actions[1:])
    assert (cmds[:, 2] > 0.3).mean() > 0.8 and np.abs(cmds).max() <= 1.0  # "up", inside the safety box
    assert len(result.frames) == 6 and result.frames[0].shape == (SIZE, SIZE, 3)
    assert np.abs(result.joints[-1][:7] - result.joints[0][:7]).max() > 0.05  # the arm moved
