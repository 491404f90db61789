"""Policy node: camera images + joint state + instruction -> the engine -> one JointTrajectory per chunk.

Subscribes camera/<name>/image_raw for each of the engine's cameras, joint_states and instruction (latched:
transient-local QoS, so a late joiner gets the current one). Publishes policy/chunk (JointTrajectory, points
at i / control_hz after the observation stamp, joint names = the arm config's action_joints) and
policy/latency_ms. Never runs on inputs older than max_age_s: it logs why and publishes nothing, and the
executor holds the arm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from core.camera import CameraSpec
from deploy.robot.camera_io import Undistorter
from deploy.robot.executor import rtc_guide
from deploy.robot.policy_loop import Chunk, InputError, NoChunk, PolicyRunner
from deploy.robot.runtime import EngineError, load_engine
from pirl_ros.convert import fill_trajectory, from_stamp, image_from_msg, joint_state_from_msg
from pirl_ros.params import declare
from pirl_ros.spin import now_s, spin

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("pirl_policy")
        engine_dir = declare(self, "engine", "")
        state_joints: list[str] = declare(self, "state_joints", [""])
        self.action_joints: list[str] = declare(self, "action_joints", [""])
        self.control_hz = declare(self, "control_hz", 20.0)
        max_age_s = declare(self, "max_age_s", 0.25)
        instruction = declare(self, "instruction", "")
        camera_file = declare(self, "camera_file", "")
        self.rtc = declare(self, "rtc", False)
        if not engine_dir:
            raise EngineError("no engine given: set the 'engine' parameter (launch argument engine:=DIR)")
        engine = load_engine(engine_dir)
        if len(self.action_joints) != engine.action_dim:
            raise InputError(f"the engine outputs {engine.action_dim} action dims "
                             f"{(engine.spec.get('action_space') or {}).get('names')} but action_joints has "
                             f"{len(self.action_joints)} names {self.action_joints}")
        # a real camera's frames are undistorted to camera.yaml's pinhole K, what the sim camera rendered
        undistort = {engine.cameras[0]: Undistorter.from_spec(CameraSpec.load(camera_file))} if camera_file else None
        self.runner = PolicyRunner(engine, state_joints, max_age_s=max_age_s, undistort=undistort)
        if self.rtc and not engine.rtc:
            raise EngineError(f"rtc:=true needs an engine exported with real-time chunking; re-export {engine_dir}")
        self._last: Chunk | None = None
        if instruction:
            self.runner.set_instruction(instruction)
        for cam in engine.cameras:
            self.create_subscription(Image, f"camera/{cam}/image_raw", self._image_callback(cam),
                                     qos_profile_sensor_data)
        self.create_subscription(JointState, "joint_states", self._on_joints, qos_profile_sensor_data)
        self.create_subscription(String, "instruction", self._on_instruction, LATCHED)
        self.chunk_pub = self.create_publisher(JointTrajectory, "policy/chunk", 10)
        self.latency_pub = self.create_publisher(Float64, "policy/latency_ms", 10)
        # One chunk schedule: the executor asks (policy/request) when it needs the next chunk, from its measured
        # latency; the policy infers on the latest inputs at once.
        self.create_subscription(Float64, "policy/request", self._on_request, 10)
        self.get_logger().info(f"policy node: engine {engine_dir} on {engine.backend}, cameras "
                               f"{list(engine.cameras)}, a chunk on each request from the executor")

    def _image_callback(self, camera: str) -> Callable[[Image], None]:
        return lambda msg: self._on_image(camera, msg)

    def _on_image(self, camera: str, msg: Image) -> None:
        try:
            self.runner.on_image(camera, image_from_msg(msg), from_stamp(msg.header.stamp))
        except (InputError, ValueError) as e:
            self.get_logger().error(f"camera {camera}: {e}", throttle_duration_sec=5.0)

    def _on_joints(self, msg: JointState) -> None:
        try:
            names, pos, stamp = joint_state_from_msg(msg)
            self.runner.on_joint_state(names, pos, stamp)
        except (InputError, ValueError) as e:
            self.get_logger().error(str(e), throttle_duration_sec=5.0)

    def _on_instruction(self, msg: String) -> None:
        try:
            self.runner.set_instruction(str(msg.data))
            self.get_logger().info(f"instruction: {msg.data!r}")
        except InputError as e:
            self.get_logger().error(str(e))

    def _on_request(self, msg: Any) -> None:  # std_msgs/Float64 (Any: its stubs type data as a numpy scalar)
        self._infer(latency_s=float(msg.data))

    def _infer(self, latency_s: float) -> None:
        now = now_s(self)
        guide = None
        if self.rtc and self._last is not None:  # guided towards what the executor is playing from our last chunk
            guide = rtc_guide(self._last.actions, self._last.stamp, now, self.control_hz, latency_s,
                              self.runner.engine.action_horizon)
        try:
            chunk = self.runner.step(now, guide)
        except NoChunk as e:
            self.get_logger().warning(f"no chunk (the arm holds): {e}", throttle_duration_sec=2.0)
            return
        msg = fill_trajectory(JointTrajectory(), JointTrajectoryPoint, self.action_joints, chunk.actions,
                              chunk.stamp, self.control_hz)
        self.chunk_pub.publish(msg)
        self._last = chunk
        latency = Float64()
        latency.data = chunk.latency_s * 1e3
        self.latency_pub.publish(latency)


def main(args: list[str] | None = None) -> None:
    spin(PolicyNode, "pirl_policy", args)
