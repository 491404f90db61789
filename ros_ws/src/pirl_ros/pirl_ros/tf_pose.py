"""End-effector poses from tf2 for `pirl-calibrate capture --poses-from-tf BASE EE` (rclpy lives under ros_ws;
calibration imports this module only when asked for tf poses)."""

from __future__ import annotations

from typing import Any

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.time import Time
from tf2_ros import Buffer, TransformListener


class RosTfPose:
    """On the robot: T_base_ee from tf2 (e.g. base 'panda_link0', ee 'panda_hand'). Needs ROS 2 (rclpy, tf2_ros)."""

    def __init__(self, base_frame: str, ee_frame: str):
        if not rclpy.ok():
            rclpy.init()
        self._rclpy, self.node = rclpy, Node("pirl_calibrate_capture")
        self.buffer = Buffer()
        self.listener = TransformListener(self.buffer, self.node)
        self.base, self.ee = base_frame, ee_frame

    def __call__(self) -> np.ndarray:
        from scipy.spatial.transform import Rotation

        self._rclpy.spin_once(self.node, timeout_sec=0.2)
        # Any: the message stubs type fields as numpy scalars, which numpy's own stubs do not accept
        tf: Any = self.buffer.lookup_transform(self.base, self.ee, Time()).transform
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat([tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w]).as_matrix()
        T[:3, 3] = [tf.translation.x, tf.translation.y, tf.translation.z]
        return T
