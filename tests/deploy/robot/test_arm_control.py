"""The executor node's state machine: it moves only while running with fresh inputs, and holds on faults."""

import numpy as np
import pytest

from deploy.robot.arm_control import ArmController, ArmState
from deploy.robot.executor import ChunkExecutor
from deploy.robot.safety import SafetyFilter, SafetyLimits

HZ = 10.0
JOINTS = ("a", "b")


def _arm(kind="joint_position") -> ArmController:
    limits = SafetyLimits(kind, lower=(-1.0, -1.0), upper=(1.0, 1.0), max_chunk_age_s=2.0,
                          gripper_index=1 if kind != "joint_position" else None)
    ex = ChunkExecutor(SafetyFilter(limits, HZ), control_hz=HZ, num_executed=5)
    return ArmController(ex, JOINTS, joint_state_timeout_s=0.3, chunk_timeout_s=1.0)


def test_moves_only_when_started_and_plays_the_chunk():
    arm = _arm()
    assert arm.tick(0.0).values is None  # nothing known: send nothing
    arm.on_joint_state(["b", "a", "extra"], [0.2, 0.1, 5.0], 0.0)
    cmd = arm.tick(0.0)
    assert cmd.hold and cmd.state is ArmState.IDLE
    np.testing.assert_allclose(cmd.values, [0.1, 0.2])
    assert not arm.on_chunk(JOINTS, np.ones((5, 2)), 0.0, 0.0)  # not running: ignored
    ok, _ = arm.start(0.05)
    assert ok and arm.state is ArmState.RUNNING
    chunk = np.stack([np.linspace(0.1, 0.5, 5), np.full(5, 0.2)], 1)
    assert arm.on_chunk(JOINTS, chunk, 0.1, 0.1)
    got = []
    for i in range(3):
        arm.on_joint_state(JOINTS, [0.1, 0.2], 0.1 + i / HZ)
        got.append(arm.tick(0.1 + i / HZ))
    np.testing.assert_allclose([c.values[0] for c in got], [0.1, 0.2, 0.3])
    assert not any(c.hold for c in got)


def test_stale_joint_state_faults_and_holds_until_restarted():
    arm = _arm()
    arm.on_joint_state(JOINTS, [0.1, 0.2], 0.0)
    arm.start(0.0)
    arm.on_chunk(JOINTS, np.full((5, 2), 0.9), 0.0, 0.0)
    cmd = arm.tick(0.5)  # joint state 0.5 s old > 0.3
    assert cmd.hold and arm.state is ArmState.FAULT and "joint state is 0.50 s old" in arm.fault_reason
    np.testing.assert_allclose(cmd.values, [0.1, 0.2])
    arm.on_joint_state(JOINTS, [0.1, 0.2], 0.6)
    assert arm.tick(0.6).hold and arm.state is ArmState.FAULT  # fresh inputs do not resume on their own
    assert not arm.on_chunk(JOINTS, np.full((5, 2), 0.9), 0.6, 0.6)
    assert arm.start(0.6)[0] and arm.state is ArmState.RUNNING


def test_policy_silence_and_wrong_joints_fault():
    arm = _arm()
    arm.on_joint_state(JOINTS, [0.0, 0.0], 0.0)
    arm.start(0.0)
    arm.on_joint_state(JOINTS, [0.0, 0.0], 1.1)
    assert arm.tick(1.1).hold and "no chunk from the policy for 1.0 s" in arm.fault_reason
    arm.start(1.1)
    assert not arm.on_chunk(("b", "a"), np.zeros((5, 2)), 1.1, 1.1)
    assert arm.state is ArmState.FAULT and "disagree" in arm.fault_reason
    arm.start(1.1)
    arm.on_joint_state(["a"], [0.0], 1.2)
    assert arm.state is ArmState.FAULT and "lacks the commanded joints ['b']" in arm.fault_reason


def test_hold_and_stop_services_and_delta_hold_keeps_the_gripper():
    arm = _arm("ee_delta_pose")
    arm.on_joint_state(["anything"], [0.0], 0.0)  # deltas need only a sign of life
    assert arm.start(0.0)[0]
    arm.on_chunk(JOINTS, np.array([[0.5, -1.0]] * 5), 0.0, 0.0)
    np.testing.assert_allclose(arm.tick(0.0).values, [0.5, -1.0])
    arm.hold()
    cmd = arm.tick(0.1)
    assert arm.state is ArmState.HELD and cmd.hold
    np.testing.assert_allclose(cmd.values, [0.0, -1.0])  # zero delta, gripper as it was
    arm.stop()
    assert arm.state is ArmState.IDLE and arm.tick(0.2).hold


def test_mismatched_config_is_refused():
    limits = SafetyLimits("joint_position", lower=(-1.0,), upper=(1.0,))
    with pytest.raises(ValueError, match="2 action joints"):
        ArmController(ChunkExecutor(SafetyFilter(limits, HZ), control_hz=HZ), JOINTS)


def test_a_chunk_goes_to_a_trajectory_controller_as_one_goal_of_the_ticks_to_come():
    """JTC: each new chunk is one goal whose points are exactly the safety-filtered commands the following ticks
    produce, one per control period; between chunks nothing is sent; a new chunk replaces the goal; a fault
    sends one hold goal."""
    from deploy.robot.arm_control import TrajectoryStreamer

    limits = SafetyLimits("joint_position", lower=(-1.0, -1.0), upper=(1.0, 1.0), max_chunk_age_s=2.0,
                          max_velocity=(1.0, 1.0))
    arm = ArmController(ChunkExecutor(SafetyFilter(limits, HZ), control_hz=HZ, num_executed=5), JOINTS,
                        joint_state_timeout_s=0.3, chunk_timeout_s=1.0)
    streamer = TrajectoryStreamer(arm)
    arm.on_joint_state(JOINTS, [0.0, 0.0], 0.0)
    arm.start(0.0)
    # a fast ramp: the velocity limit clips it, so the preview must go through the safety filter
    chunk = np.stack([np.linspace(0.2, 1.0, 5), np.zeros(5)], 1)
    arm.on_chunk(JOINTS, chunk, 0.0, 0.0)
    first = arm.tick(0.0)
    goal = streamer.update(0.0, first)
    assert goal is not None and not goal.hold and len(goal.positions) == 5
    np.testing.assert_allclose(goal.times_from_start, np.arange(1, 6) / HZ)
    ticks = [first.values]
    for k in range(1, 5):
        arm.on_joint_state(JOINTS, [0.0, 0.0], k / HZ)
        cmd = arm.tick(k / HZ)
        ticks.append(cmd.values)
        assert streamer.update(k / HZ, cmd) is None  # the controller runs the goal already sent
    np.testing.assert_allclose(goal.positions, np.stack(ticks))  # the preview was what the ticks did
    assert not np.allclose(np.stack(ticks), chunk)  # ... which the safety filter changed
    arm.on_chunk(JOINTS, np.full((5, 2), 0.1), 0.5, 0.5)
    arm.on_joint_state(JOINTS, [0.0, 0.0], 0.5)
    replaced = streamer.update(0.5, arm.tick(0.5))
    assert replaced is not None and len(replaced.positions) == 5  # the new chunk replaces the trajectory
    arm.on_joint_state(JOINTS, [0.3, 0.4], 0.6)
    arm._fault("test")
    held = arm.tick(0.6)
    hold = streamer.update(0.6, held)
    assert hold is not None and hold.hold and len(hold.positions) == 1
    np.testing.assert_allclose(hold.positions[0], held.values)  # the hold command (towards the arm's position)
    assert streamer.update(0.7, arm.tick(0.7)) is None  # one hold goal, not one per tick


def test_preview_leaves_the_executor_and_safety_as_they_were():
    arm = _arm()
    arm.on_joint_state(JOINTS, [0.0, 0.0], 0.0)
    arm.start(0.0)
    arm.on_chunk(JOINTS, np.stack([np.linspace(0.2, 1.0, 5), np.zeros(5)], 1), 0.0, 0.0)
    twin = _arm()
    twin.on_joint_state(JOINTS, [0.0, 0.0], 0.0)
    twin.start(0.0)
    twin.on_chunk(JOINTS, np.stack([np.linspace(0.2, 1.0, 5), np.zeros(5)], 1), 0.0, 0.0)
    arm.preview(0.0, 5)
    for k in range(5):
        np.testing.assert_array_equal(arm.tick(k / HZ).values, twin.tick(k / HZ).values)
