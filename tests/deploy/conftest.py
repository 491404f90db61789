"""One micro checkpoint and its engines, exported once per test session (an export takes tens of seconds)."""

import numpy as np
import pytest

from tests.conftest import micro_config
from training.policy.action_space import ActionSpace
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
    from deploy.export import export

    cache = {}

    def get(graph: str):
        if graph not in cache:
            cache[graph] = tmp_path_factory.mktemp(f"engine_{graph}") / "engine"
            export(checkpoint, cache[graph], graph=graph)
        return cache[graph]

    return get
