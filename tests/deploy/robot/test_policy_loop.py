"""The policy node's logic: inputs mapped to the engine, staleness, bad inputs; chunks equal the engine's own."""

import numpy as np
import pytest

from deploy.robot.policy_loop import InputError, NoChunk, PolicyRunner, RefusedChunk, StaleInput
from deploy.robot.runtime import load_engine

JOINTS = ("j1", "j2", "j3", "j4", "j5")


@pytest.fixture(scope="module")
def engine(exported):
    return load_engine(exported("one"), backends=("onnxruntime",))


def _fed(engine, now=10.0) -> PolicyRunner:
    runner = PolicyRunner(engine, JOINTS, max_age_s=0.2)
    runner.set_instruction("push the cube")
    rng = np.random.default_rng(0)
    for cam in ("base", "wrist"):
        runner.on_image(cam, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), now)  # resized to 32x32
    # JointState order differs from the engine's and carries an extra joint
    runner.on_joint_state(["gripper", "j5", "j4", "j3", "j2", "j1"], [9.0, 0.5, 0.4, 0.3, 0.2, 0.1], now - 0.05)
    return runner


def test_chunk_is_the_engines_answer_for_the_mapped_observation(engine):
    runner = _fed(engine)
    obs = runner.observation()
    np.testing.assert_allclose(obs["state"], [[0.1, 0.2, 0.3, 0.4, 0.5]], rtol=1e-6)
    assert obs["images"]["base"].shape == (1, 32, 32, 3)
    engine._rng = np.random.default_rng(5)
    chunk = runner.step(now=10.1)
    engine._rng = np.random.default_rng(5)
    want = engine.infer(obs)[0]
    np.testing.assert_allclose(chunk.actions, want, atol=1e-6)
    # stamped with the observation's newest input (images at 10.0, joints at 9.95)
    assert chunk.actions.shape == (5, 4) and chunk.stamp == pytest.approx(10.0) and chunk.latency_s > 0


def test_stale_or_missing_inputs_give_no_chunk(engine):
    runner = PolicyRunner(engine, JOINTS, max_age_s=0.2)
    with pytest.raises(StaleInput, match="no instruction"):
        runner.step(0.0)
    runner = _fed(engine, now=10.0)
    with pytest.raises(StaleInput, match=r"older than 0.2 s: .*joint state"):
        runner.step(now=10.2)  # joints are 0.25 s old, images 0.2 s
    runner.on_joint_state(JOINTS, np.zeros(5), 10.5)
    with pytest.raises(StaleInput, match="camera base"):
        runner.step(now=10.5)


def test_bad_inputs_are_named(engine):
    runner = _fed(engine)
    with pytest.raises(InputError, match=r"lacks the engine's state joints \['j3'\]"):
        runner.on_joint_state(["j1", "j2", "j4", "j5"], np.zeros(4), 0.0)
    with pytest.raises(InputError, match="tokens, the engine takes at most 8"):
        runner.set_instruction("push the cube push the cube push the cube to the goal")
    assert runner.instruction == "push the cube"  # the previous instruction stays
    with pytest.raises(InputError, match="not one of the engine's cameras"):
        runner.on_image("top", np.zeros((32, 32, 3), np.uint8), 0.0)
    with pytest.raises(InputError, match="state joints are configured"):
        PolicyRunner(engine, JOINTS[:3])


def test_a_nan_joint_reading_gives_no_chunk_and_the_runner_recovers(engine):
    runner = _fed(engine, now=10.0)
    runner.on_joint_state(JOINTS, [0.1, float("nan"), 0.3, 0.4, 0.5], 10.0)  # a glitching encoder
    with pytest.raises(RefusedChunk, match=r"ObservationError: state has a non-finite value .*dim 1") as e:
        runner.step(now=10.05)
    assert isinstance(e.value, NoChunk)  # the nodes catch NoChunk: the arm holds
    dim = int(np.argmin(engine.norm_stats.state.std))
    assert engine.norm_stats.state.std[dim] < 1
    absurd = [0.1, 0.2, 0.3, 0.4, 0.5]
    absurd[dim] = float(np.finfo(np.float32).max)  # finite, but overflows normalization
    runner.on_joint_state(JOINTS, absurd, 10.0)
    with pytest.raises(RefusedChunk, match="overflows normalization"):
        runner.step(now=10.05)
    runner.on_joint_state(JOINTS, [0.1, 0.2, 0.3, 0.4, 0.5], 10.0)
    assert np.isfinite(runner.step(now=10.05).actions).all()


def test_frames_are_undistorted_before_the_resize(engine):
    """With camera.yaml's lens, the runner feeds the policy the undistorted frame (what the sim camera renders)."""
    import cv2

    from deploy.robot.camera_io import Undistorter
    from tests.deploy.robot.test_camera_io import _distorted_pair

    K, dist, pinhole, distorted = _distorted_pair()
    undistort = {"base": Undistorter(320, 240, K, dist)}
    runner = PolicyRunner(engine, JOINTS, max_age_s=0.2, undistort=undistort)
    runner.on_image("base", distorted, 1.0)
    want = cv2.resize(undistort["base"](distorted), (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(runner._images["base"][0], want)
    raw = cv2.resize(distorted, (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(want.astype(int) - raw).mean() > 1  # the lens changed what the policy sees
    with pytest.raises(InputError, match="camera 'base'.*camera.yaml describes 320x240"):
        runner.on_image("base", distorted[:100], 1.0)
