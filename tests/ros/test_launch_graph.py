"""Runs pirl_bringup's launch test (the whole graph, camera:=sim robot:=sim) where ROS 2 is installed - the
robot docker image - with a tiny engine exported for the ManiSkill Panda. Skipped elsewhere, with the reason."""

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import micro_config

LAUNCH_TEST = Path(__file__).resolve().parents[2] / "ros_ws" / "src" / "pirl_bringup" / "test" / "test_arm_launch.py"


def _missing_ros() -> str | None:
    for module in ("rclpy", "launch_testing", "launch_ros"):
        if importlib.util.find_spec(module) is None:
            return f"ROS 2 is not installed here ({module} missing); run inside docker/robot.Dockerfile"
    if shutil.which("launch_test") is None:
        return "launch_test is not on PATH (source /opt/ros/$ROS_DISTRO/setup.bash and the workspace)"
    if importlib.util.find_spec("mani_skill") is None:
        return "the sim arm needs ManiSkill (pirl[sim])"
    return None


@pytest.mark.skipif(_missing_ros() is not None, reason=str(_missing_ros()))
def test_sim_graph_moves_the_sim_arm(tmp_path):
    pytest.importorskip("onnxscript", reason="exporting the test engine needs pirl[export]")
    from core.action_space import ActionSpace
    from deploy.export.onnx import export
    from training.policy.checkpoint import save_checkpoint
    from training.policy.policy import Policy

    cfg = micro_config(camera_names=("base_camera",), state_dim=12, action_dim=4, action_horizon=10,
                       max_token_len=16)
    rng = np.random.default_rng(0)
    policy = Policy.create(cfg, ["push the cube to the goal"], rng.standard_normal((64, 9)),
                           rng.uniform(-1, 1, (64, 10, 4)), seed=0,
                           action_space=ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper")))
    engine = tmp_path / "engine"
    export(save_checkpoint(tmp_path / "checkpoint", policy), engine)
    env = {**os.environ, "PIRL_TEST_ENGINE": str(engine)}
    proc = subprocess.run(["launch_test", str(LAUNCH_TEST)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
