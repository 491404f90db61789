"""One micro checkpoint and its engines, exported once per test session (an export takes tens of seconds)."""

import numpy as np
import pytest

from core.action_space import ActionSpace
from tests.conftest import micro_config
from training.policy.checkpoint import save_checkpoint
from training.policy.policy import Policy


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    cfg = micro_config()  # cameras base + wrist, 32 px, chunk 5, padded action dim 6
    rng = np.random.default_rng(0)
    policy = Policy.create(cfg, ["pick up the cube", "push the cube"], rng.standard_normal((64, 5)),
                           rng.uniform(-1, 1, (64, cfg.action_horizon, 4)), seed=0,
                           action_space=ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper")))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint", policy)


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory):
    """graph ("one" | "two") -> engine directory of `checkpoint`."""
    pytest.importorskip("onnxscript", reason="ONNX export needs the export extra (`make test` installs it)")
    from deploy.export.onnx import export

    cache = {}

    def get(graph: str):
        if graph not in cache:
            cache[graph] = tmp_path_factory.mktemp(f"engine_{graph}") / "engine"
            export(checkpoint, cache[graph], graph=graph)
        return cache[graph]

    return get


PANDA_SIZE = 32


@pytest.fixture(scope="session")
def panda_engine_dir(tmp_path_factory):
    """A tiny untrained engine shaped for the ManiSkill Panda (camera base_camera, 9 joint values, 4 ee deltas),
    whose actions lean "up" (dz > 0) so that even untrained it moves the arm visibly."""
    pytest.importorskip("onnxscript", reason="ONNX export needs the export extra (`make test` installs it)")
    from deploy.export.onnx import export

    cfg = micro_config(camera_names=("base_camera",), state_dim=12, action_dim=4, action_horizon=10,
                       max_token_len=16)  # 32 px images (PANDA_SIZE)
    rng = np.random.default_rng(0)
    actions = np.concatenate([rng.uniform(-0.2, 0.2, (64, 10, 2)), rng.uniform(0.5, 1.0, (64, 10, 1)),
                              np.ones((64, 10, 1))], axis=-1)
    policy = Policy.create(cfg, ["push the cube to the goal"], rng.standard_normal((64, 9)), actions, seed=0,
                           action_space=ActionSpace("ee_delta_pose", ("dx", "dy", "dz", "gripper")))
    root = tmp_path_factory.mktemp("panda")
    export(save_checkpoint(root / "checkpoint", policy), root / "engine")
    return root / "engine"
