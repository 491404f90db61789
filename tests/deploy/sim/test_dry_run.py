"""The robot graph's logic end to end without ROS: an exported engine drives the ManiSkill sim arm through
PolicyRunner, ArmController, executor and safety filter, as `arm.launch.py camera:=sim robot:=sim` does."""

import numpy as np
import pytest

from tests.deploy.conftest import PANDA_SIZE

pytest.importorskip("mani_skill", reason="the sim arm needs ManiSkill (pirl[sim])")
pytest.importorskip("onnxscript", reason="exporting the test engine needs pirl[export]")

@pytest.mark.slow
def test_engine_drives_the_sim_arm_through_executor_and_safety(panda_engine_dir):
    from deploy.robot.runtime import load_engine
    from deploy.robot.safety import SafetyLimits
    from deploy.sim.arm import SimArm, SimArmConfig
    from deploy.sim.dry_run import DryRunLoop

    arm = SimArm(SimArmConfig(task="PushCube-v1", image_size=(PANDA_SIZE, PANDA_SIZE)))
    limits = SafetyLimits("ee_delta_pose", lower=(-1.0,) * 4, upper=(1.0,) * 4, gripper_index=3)
    try:
        engine = load_engine(panda_engine_dir, backends=("onnxruntime",))
        loop = DryRunLoop(engine, arm, limits, control_hz=20.0, num_executed=5, camera_hz=4.0)
        result = loop.episode(seed=3, max_steps=30)
    finally:
        arm.close()
    assert result.steps == 30 and result.faults == 0
    assert result.chunks >= 6  # a chunk every 5 ticks
    assert result.holds <= 1  # at most the first tick, before the first chunk
    cmds = np.stack(result.actions[1:])
    assert (cmds[:, 2] > 0.3).mean() > 0.8 and np.abs(cmds).max() <= 1.0  # "up", inside the safety box
    assert len(result.frames) == 6 and result.frames[0].shape == (PANDA_SIZE, PANDA_SIZE, 3)
    assert np.abs(result.joints[-1][:7] - result.joints[0][:7]).max() > 0.05  # the arm moved


@pytest.mark.slow
@pytest.mark.parametrize("control_hz, num_executed", [(50.0, 5), (20.0, 2)])
def test_no_hold_in_steady_state_with_a_30_hz_camera_and_100_ms_latency(panda_engine_dir, control_hz, num_executed):
    """10 Hz decisions, each chunk arriving 100 ms after its observation: the executor asks early enough (from
    the latency it measures) and aligns each late chunk, so once the first chunk is in the arm never holds."""
    from deploy.robot.runtime import load_engine
    from deploy.robot.safety import SafetyLimits
    from deploy.sim.arm import SimArm, SimArmConfig
    from deploy.sim.dry_run import DryRunLoop

    arm = SimArm(SimArmConfig(task="PushCube-v1", image_size=(PANDA_SIZE, PANDA_SIZE)))
    limits = SafetyLimits("ee_delta_pose", lower=(-1.0,) * 4, upper=(1.0,) * 4, gripper_index=3)
    try:
        engine = load_engine(panda_engine_dir, backends=("onnxruntime",))
        loop = DryRunLoop(engine, arm, limits, control_hz=control_hz, num_executed=num_executed, camera_hz=30.0,
                          latency_s=0.1)
        steps = int(1.5 * control_hz)
        result = loop.episode(seed=3, max_steps=steps)
    finally:
        arm.close()
    assert result.steps == steps and result.faults == 0
    assert result.holds_after_first_chunk == 0
    assert result.holds == round(0.1 * control_hz)  # only the wait for the very first chunk
    assert abs(result.chunks - 10 * (1.5 - 0.1)) <= 1  # 10 Hz decisions
    executor = loop.controller.executor
    assert abs(executor.expected_latency() - 0.1) < 1e-6  # measured, not configured
    assert executor.counts["late_actions_skipped"] == result.chunks * round(0.1 * control_hz)
    assert len(result.frames) == pytest.approx(min(30.0, control_hz) * 1.5, abs=2)  # frames wait for a tick
    if num_executed / control_hz + 0.1 < 10 / control_hz:  # chunks overlap: each boundary's jump is measured
        assert len(result.discontinuities) == result.chunks - 1


@pytest.mark.slow
def test_real_time_chunking_shrinks_the_jump_at_chunk_boundaries(panda_engine_dir):
    """With each chunk guided towards the actions already committed from the current one, the first action of
    an arriving chunk is much closer to what the arm was about to do."""
    from deploy.robot.runtime import load_engine
    from deploy.robot.safety import SafetyLimits
    from deploy.sim.arm import SimArm, SimArmConfig
    from deploy.sim.dry_run import DryRunLoop

    arm = SimArm(SimArmConfig(task="PushCube-v1", image_size=(PANDA_SIZE, PANDA_SIZE)))
    limits = SafetyLimits("ee_delta_pose", lower=(-1.0,) * 4, upper=(1.0,) * 4, gripper_index=3)
    jumps = {}
    try:
        engine = load_engine(panda_engine_dir, backends=("onnxruntime",))
        for rtc in (False, True):
            loop = DryRunLoop(engine, arm, limits, control_hz=20.0, num_executed=3, camera_hz=10.0,
                              latency_s=0.1, rtc=rtc)
            result = loop.episode(seed=3, max_steps=40)
            assert result.holds_after_first_chunk == 0 and len(result.discontinuities) >= 8
            jumps[rtc] = float(np.mean(result.discontinuities))
    finally:
        arm.close()
    assert jumps[True] < 0.5 * jumps[False], jumps
