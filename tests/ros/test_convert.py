"""Message <-> numpy conversions of pirl_ros, on message-shaped test doubles."""

import numpy as np
import pytest
from pirl_ros.convert import (
    fill_camera_info,
    fill_image,
    fill_joint_state,
    fill_trajectory,
    from_stamp,
    image_from_msg,
    joint_state_from_msg,
    to_stamp,
    trajectory_from_msg,
)

from tests.ros import msgs


def test_stamps_round_trip_to_the_nanosecond():
    t = to_stamp(msgs.Time(), 1732441234.123456789)
    assert t.sec == 1732441234 and abs(t.nanosec - 123456789) <= 256  # float64 resolution at this epoch
    assert from_stamp(to_stamp(msgs.Time(), 12.5)) == 12.5


def test_image_round_trip_and_bgr_and_row_padding():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    msg = fill_image(msgs.Image(), rgb, 3.25, "cam")
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.header.frame_id) == (6, 5, 15, "rgb8", "cam")
    np.testing.assert_array_equal(image_from_msg(msg), rgb)
    bgr = msgs.Image(height=6, width=5, encoding="bgr8", step=16,  # one padding byte per row
                     data=np.c_[rgb[..., ::-1].reshape(6, 15), np.zeros(6, np.uint8)].tobytes())
    np.testing.assert_array_equal(image_from_msg(bgr), rgb)
    with pytest.raises(ValueError, match="encoding 'mono16' is not supported"):
        image_from_msg(msgs.Image(encoding="mono16"))
    with pytest.raises(ValueError, match="does not match"):
        image_from_msg(msgs.Image(height=6, width=5, encoding="rgb8", step=15, data=b"\0" * 10))


def test_camera_info_carries_K_and_distortion():
    K = np.array([[600.0, 0, 319.5], [0, 601.0, 239.5], [0, 0, 1]])
    info = fill_camera_info(msgs.CameraInfo(), 640, 480, K, np.array([0.1, -0.2, 0, 0, 0.05]), 1.0, "cam")
    assert info.k == K.reshape(-1).tolist() and info.d == [0.1, -0.2, 0.0, 0.0, 0.05]
    assert info.p[:3] == [600.0, 0.0, 319.5] and info.p[3] == 0.0 and info.distortion_model == "plumb_bob"


def test_joint_state_and_trajectory_round_trip():
    js = fill_joint_state(msgs.JointState(), ["a", "b"], np.array([0.1, 0.2]), 7.0)
    names, pos, stamp = joint_state_from_msg(js)
    assert names == ["a", "b"] and pos.tolist() == [0.1, 0.2] and stamp == 7.0
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        joint_state_from_msg(msgs.JointState(name=["a", "b"], position=[0.0]))
    chunk = np.arange(10, dtype=float).reshape(5, 2)
    traj = fill_trajectory(msgs.JointTrajectory(), msgs.JointTrajectoryPoint, ["a", "b"], chunk, 2.0, 20.0)
    names, positions, times, stamp = trajectory_from_msg(traj)
    np.testing.assert_array_equal(positions, chunk)
    np.testing.assert_allclose(times, np.arange(5) / 20.0)
    assert names == ["a", "b"] and stamp == 2.0
    with pytest.raises(ValueError, match=r"a chunk \(H, 3\)"):
        fill_trajectory(msgs.JointTrajectory(), msgs.JointTrajectoryPoint, ["a", "b", "c"], chunk, 0.0, 20.0)
    with pytest.raises(ValueError, match="without points"):
        trajectory_from_msg(msgs.JointTrajectory(joint_names=["a"]))
