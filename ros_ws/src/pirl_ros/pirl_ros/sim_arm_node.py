"""Sim arm node: a ManiSkill arm behind the robot's topics, so the graph runs without hardware
(`camera:=sim robot:=sim`).

Subscribes arm/command (Float64MultiArray, the executor's commands); every 1 / control_hz steps the
simulation with the latest command (a hold when none is fresh) and publishes joint_states; every
1 / camera_hz renders the task camera to camera/<name>/image_raw (+ camera_info). Publishes sim_arm/success
(std_msgs/Bool) and, on ~/reset (std_srvs/Trigger), starts a new episode and publishes its instruction.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger

from deploy.sim.arm import SimArm, SimArmConfig
from pirl_ros.convert import fill_camera_info, fill_image, fill_joint_state
from pirl_ros.params import declare
from pirl_ros.spin import now_s, spin

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


class SimArmNode(Node):
    def __init__(self) -> None:
        super().__init__("pirl_sim_arm")
        task = declare(self, "task", "PushCube-v1")
        control_mode = declare(self, "control_mode", "pd_ee_delta_pos")
        camera_file = declare(self, "camera_file", "")
        self.camera_name = declare(self, "camera_name", "base_camera")
        size: list[int] = declare(self, "image_size", [128, 128])
        self.control_hz = declare(self, "control_hz", 20.0)
        camera_hz = declare(self, "camera_hz", 5.0)
        self.seed = declare(self, "seed", 0)
        self.publish_instruction = declare(self, "publish_instruction", True)
        self.arm = SimArm(SimArmConfig(task=task, control_mode=control_mode, image_size=(int(size[0]), int(size[1])),
                                       camera_file=camera_file or None, camera_name=self.camera_name))
        self._command: np.ndarray | None = None
        self._command_time = -np.inf
        self.create_subscription(Float64MultiArray, "arm/command", self._on_command, 10)
        self.joint_pub = self.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
        ns = f"camera/{self.camera_name}"
        self.image_pub = self.create_publisher(Image, f"{ns}/image_raw", qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, f"{ns}/camera_info", qos_profile_sensor_data)
        self.success_pub = self.create_publisher(Bool, "sim_arm/success", 10)
        self.instruction_pub = self.create_publisher(String, "instruction", LATCHED)
        self.create_service(Trigger, "~/reset", self._reset)
        self._new_episode()
        self.create_timer(1.0 / self.control_hz, self._step)
        self.create_timer(1.0 / camera_hz, self._render)
        self.get_logger().info(f"sim arm: {task} ({control_mode}), joints {list(self.arm.joint_names)}")

    def _new_episode(self) -> str:
        instruction = self.arm.reset(self.seed)
        self.seed += 1
        self._command = None
        if self.publish_instruction:
            msg = String()
            msg.data = instruction
            self.instruction_pub.publish(msg)
        return instruction

    def _reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, self._new_episode()
        return response

    def _on_command(self, msg: Float64MultiArray) -> None:
        cmd = np.asarray(msg.data, np.float64)
        if cmd.shape != (self.arm.action_dim,):
            self.get_logger().error(f"command of {cmd.size} values; this arm takes {self.arm.action_dim}",
                                    throttle_duration_sec=5.0)
            return
        self._command, self._command_time = cmd, now_s(self)

    def _step(self) -> None:
        fresh = now_s(self) - self._command_time < 2.0 / self.control_hz
        success = self.arm.apply(self._command if fresh else None)
        self.joint_pub.publish(fill_joint_state(JointState(), self.arm.joint_names, self.arm.joint_positions(),
                                                now_s(self)))
        msg = Bool()
        msg.data = bool(success or self.arm.success)
        self.success_pub.publish(msg)

    def _render(self) -> None:
        rgb, stamp = self.arm.render(), now_s(self)
        frame = f"{self.camera_name}_optical_frame"
        self.image_pub.publish(fill_image(Image(), rgb, stamp, frame))
        cam = self.arm.env.camera_spec
        if cam is not None:
            self.info_pub.publish(fill_camera_info(CameraInfo(), cam.width, cam.height, cam.K, cam.distortion,
                                                   stamp, frame))

    def destroy_node(self) -> None:
        self.arm.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin(SimArmNode, "pirl_sim_arm", args)
