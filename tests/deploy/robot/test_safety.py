"""Safety limits on every command, checked against hand-computed values."""

import numpy as np
import pytest

from deploy.robot.safety import SafetyFilter, SafetyLimits

JOINTS = SafetyLimits("joint_position", lower=(-1.0, -2.0), upper=(1.0, 2.0), max_velocity=(2.0, 2.0),
                      max_acceleration=(20.0, 20.0))


def test_position_velocity_and_acceleration_are_clamped_per_tick():
    f = SafetyFilter(JOINTS, control_hz=10.0)  # 0.2 rad per tick, 0.2 rad/tick change of step
    q = np.zeros(2)
    np.testing.assert_allclose(f(np.array([0.05, 0.0]), q), [0.05, 0.0])  # within all limits
    # wants +0.95 rad (and beyond the box in dim 1): box -> (1.0, 2.0); velocity -> +0.2; accel from the
    # previous step (+0.05): at most +0.05 + 0.2 = 0.25 -> the velocity limit binds: 0.05 + 0.2 = 0.25
    np.testing.assert_allclose(f(np.array([5.0, 3.0]), q), [0.25, 0.2])
    assert f.counts["position_clamped"] == 1 and f.counts["velocity_clamped"] == 1
    # a full reversal: step wanted -0.25 - 0.25 = -0.5 -> velocity -0.2 -> accel: prev step +0.2, so >= 0.0
    np.testing.assert_allclose(f(np.array([-0.25, 0.2]), q), [0.25, 0.2])
    assert f.counts["acceleration_clamped"] == 1


def test_nan_never_reaches_the_arm_it_holds():
    f = SafetyFilter(JOINTS, control_hz=10.0)
    current = np.array([0.3, -0.4])
    out = f(np.array([np.nan, 0.0]), current)
    np.testing.assert_array_equal(out, current)
    assert f.counts["non_finite"] == 1


def test_workspace_box_turns_an_exit_into_a_hold():
    lim = SafetyLimits("joint_position", lower=(-3.0,), upper=(3.0,), workspace_lower=(-0.5, -1, -1),
                       workspace_upper=(0.5, 1, 1))
    f = SafetyFilter(lim, control_hz=10.0, fk=lambda q: np.array([q[0], 0.0, 0.0]))  # x = joint 0
    np.testing.assert_allclose(f(np.array([0.4]), np.array([0.3])), [0.4])
    np.testing.assert_allclose(f(np.array([0.8]), np.array([0.4])), [0.4])
    assert f.counts["workspace_hold"] == 1
    with pytest.raises(ValueError, match="forward-kinematics"):
        SafetyFilter(lim, control_hz=10.0)


def test_delta_actions_clamp_the_delta_and_hold_with_zero_motion_keeping_the_gripper():
    lim = SafetyLimits("ee_delta_pose", lower=(-0.5, -0.5, -0.5, -1), upper=(0.5, 0.5, 0.5, 1), gripper_index=3,
                       gripper_range=(-1.0, 1.0))
    f = SafetyFilter(lim, control_hz=20.0)
    np.testing.assert_allclose(f(np.array([0.9, -0.1, 0.0, 1.0])), [0.5, -0.1, 0.0, 1.0])
    np.testing.assert_allclose(f(np.array([np.inf, 0, 0, 0])), [0, 0, 0, 1.0])  # hold: no motion, gripper kept


def test_bad_limits_and_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lower <= upper"):
        SafetyLimits("joint_position", lower=(1.0,), upper=(0.0,))
    with pytest.raises(ValueError, match="unknown action kind"):
        SafetyLimits("torque", lower=(0.0,), upper=(1.0,))
    path = tmp_path / "limits.json"
    path.write_text('{"kind": "joint_position", "lower": [0], "upper": [1], "max_speed": [1]}')
    with pytest.raises(ValueError, match="unknown safety fields \\['max_speed'\\]"):
        SafetyLimits.load(path)
    path.write_text('{"kind": "joint_position", "lower": [0], "upper": [1], "max_velocity": [1]}')
    assert SafetyLimits.load(path).max_velocity == (1,)
