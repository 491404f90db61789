"""Task names -> simulators: the errors a user meets before any simulator starts."""

import pytest

from training.envs.factory import EnvSpec, libero_task, make_vec_env


def test_libero_task_names_parse_and_bad_ones_say_the_format():
    assert libero_task("libero_spatial/3") == ("libero_spatial", 3)
    with pytest.raises(ValueError, match="SUITE/INDEX"):
        libero_task("libero_spatial")


@pytest.mark.parametrize("spec, message", [
    (EnvSpec(tasks=("PushCube-v1", "libero_spatial/0")), "one simulator per run"),
    (EnvSpec(tasks=("libero_spatial/0", "libero_object/1"), camera_names=("agentview",)), "one suite per run"),
    (EnvSpec(tasks=("libero_spatial/0",), camera_names=("agentview",), reward_mode="normalized_dense"),
     "only its success reward"),
    (EnvSpec(tasks=("PushCube-v1",), camera_names=("base_camera", "wrist")), "one camera"),
    (EnvSpec(tasks=()), "no tasks"),
])
def test_inconsistent_env_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        make_vec_env(spec)
