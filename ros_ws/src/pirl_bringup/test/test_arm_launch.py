"""launch_testing: the whole graph with camera:=sim robot:=sim, checking that the policy's actions reach the
sim arm and move it. Needs ROS 2 and an engine for the ManiSkill Panda (one camera "base_camera", 9 joint
state values, 4 ee-delta actions): PIRL_TEST_ENGINE=DIR launch_test test/test_arm_launch.py
(tests/ros/test_launch_graph.py exports a tiny one and runs this where ROS 2 is installed).
"""

import os
import time
import unittest
from pathlib import Path

import launch_testing
import launch_testing.actions
import numpy as np
import pytest
import rclpy
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "arm.launch.py"


@pytest.mark.launch_test
def generate_test_description():
    arguments = {"engine": os.environ["PIRL_TEST_ENGINE"], "camera": "sim", "robot": "sim",
                 "instruction": "push the cube to the goal", "max_age_s": "2.0"}
    graph = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH)),
                                     launch_arguments=list(arguments.items()))
    return LaunchDescription([graph, launch_testing.actions.ReadyToTest()])


class TestSimGraph(unittest.TestCase):
    def test_actions_reach_the_sim_arm_and_move_it(self):
        rclpy.init()
        node = rclpy.create_node("pirl_launch_probe")
        chunks: list[JointTrajectory] = []
        commands: list[list[float]] = []
        joints: list[list[float]] = []
        states: list[str] = []

        def on_command(msg: Float64MultiArray) -> None:
            commands.append(np.asarray(msg.data, float).tolist())

        def on_joints(msg: JointState) -> None:
            joints.append(np.asarray(msg.position, float).tolist())

        def on_state(msg: String) -> None:
            states.append(str(msg.data))

        node.create_subscription(JointTrajectory, "policy/chunk", chunks.append, 10)
        node.create_subscription(Float64MultiArray, "arm/command", on_command, 10)
        node.create_subscription(JointState, "joint_states", on_joints, 10)
        node.create_subscription(String, "executor/state", on_state, 10)
        deadline = time.monotonic() + 180.0  # the sim arm loads ManiSkill first
        try:
            while time.monotonic() < deadline and not (len(chunks) >= 3 and len(joints) > 20):
                rclpy.spin_once(node, timeout_sec=0.1)
        finally:
            node.destroy_node()
            rclpy.shutdown()
        self.assertGreaterEqual(len(chunks), 3, f"the policy published {len(chunks)} chunks")
        self.assertEqual(list(chunks[0].joint_names), ["dx", "dy", "dz", "gripper"])
        moving = [c for c in commands if np.abs(np.asarray(c[:3])).max() > 0]
        self.assertTrue(moving, "no non-hold command reached the sim arm")
        self.assertGreater(np.abs(np.asarray(joints[-1]) - np.asarray(joints[0])).max(), 1e-3, "the arm did not move")
        self.assertIn("running", states)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_nodes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
