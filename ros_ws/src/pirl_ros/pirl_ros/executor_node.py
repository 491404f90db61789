"""Executor node: policy chunks -> safety filter and watchdog -> the arm, at the control rate.

Subscribes policy/chunk (JointTrajectory) and joint_states; every 1 / control_hz it asks the arm controller
(`deploy.robot.arm_control`) for the command and sends it through the chosen interface, and publishes
policy/request (std_msgs/Float64: the expected latency in s) when the executor needs the next chunk (from its measured
latency), on which the policy node infers:
    position_topic            std_msgs/Float64MultiArray on arm/command (ros2_control's forward position
                              controller, or the sim arm)
    follow_joint_trajectory   control_msgs/FollowJointTrajectory goals to a joint_trajectory_controller: each
                              chunk as one goal with a point per control period (the safety-filtered commands
                              still to run), replacing the controller's trajectory; a hold as a one-point goal
Services ~/start, ~/stop, ~/hold (std_srvs/Trigger). Publishes executor/state (std_msgs/String). On any fault
(stale joint state, the policy silent, a chunk for other joints, a NaN) the arm holds until ~/start.
"""

from __future__ import annotations

from control_msgs.action import FollowJointTrajectory
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from deploy.robot.arm_control import ArmController, Command, TrajectoryStreamer
from deploy.robot.executor import ChunkExecutor
from deploy.robot.safety import SafetyFilter, SafetyLimits
from pirl_ros.convert import fill_duration, joint_state_from_msg, trajectory_from_msg
from pirl_ros.params import declare
from pirl_ros.spin import now_s, spin

INTERFACES = ("position_topic", "follow_joint_trajectory")


class ExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__("pirl_executor")
        self.control_hz = declare(self, "control_hz", 20.0)
        action_joints: list[str] = declare(self, "action_joints", [""])
        safety_file = declare(self, "safety_limits", "")
        self.interface = declare(self, "interface", "position_topic")
        controller = declare(self, "controller", "joint_trajectory_controller")
        autostart = declare(self, "autostart", False)
        if self.interface not in INTERFACES:
            raise ValueError(f"interface {self.interface!r} is not one of {INTERFACES}")
        if not safety_file:
            raise ValueError("no safety limits: set 'safety_limits' to a YAML file (see pirl_bringup/config)")
        limits = SafetyLimits.load(safety_file)
        if self.interface == "follow_joint_trajectory" and not limits.absolute:
            raise ValueError(f"the engine's actions are {limits.kind} deltas; a joint trajectory controller needs "
                             "joint positions: export a joint-position engine, or use interface position_topic "
                             "with an arm driver that takes deltas (the sim arm does)")
        executor = ChunkExecutor(SafetyFilter(limits, self.control_hz), control_hz=self.control_hz,
                                 num_executed=declare(self, "num_executed", 5),
                                 ensemble=declare(self, "ensemble", False), latency_s=declare(self, "latency_s", 0.1))
        self.arm = ArmController(executor, action_joints,
                                 joint_state_timeout_s=declare(self, "joint_state_timeout_s", 0.25),
                                 chunk_timeout_s=declare(self, "chunk_timeout_s", 1.0))
        self.autostart = autostart
        self.create_subscription(JointTrajectory, "policy/chunk", self._on_chunk, 10)
        self.create_subscription(JointState, "joint_states", self._on_joints, qos_profile_sensor_data)
        self.command_pub = self.create_publisher(Float64MultiArray, "arm/command", 10)
        self.request_pub = self.create_publisher(Float64, "policy/request", 10)
        self.state_pub = self.create_publisher(String, "executor/state", 10)
        self.action_client = None
        self.streamer = TrajectoryStreamer(self.arm)
        if self.interface == "follow_joint_trajectory":
            self.action_client = ActionClient(self, FollowJointTrajectory,
                                              f"{controller}/follow_joint_trajectory")
        for name, handler in (("~/start", self._start), ("~/stop", self._stop), ("~/hold", self._hold)):
            self.create_service(Trigger, name, handler)
        self.timer = self.create_timer(1.0 / self.control_hz, self._tick)
        self._last_state = ""
        self.get_logger().info(f"executor: {limits.kind} via {self.interface} at {self.control_hz} Hz; "
                               f"{'starting on the first joint state' if autostart else 'call ~/start to move'}")

    def _on_joints(self, msg: JointState) -> None:
        names, pos, stamp = joint_state_from_msg(msg)
        self.arm.on_joint_state(names, pos, stamp)
        if self.autostart:
            ok, _ = self.arm.start(now_s(self))
            self.autostart = not ok

    def _on_chunk(self, msg: JointTrajectory) -> None:
        try:
            names, positions, _, stamp = trajectory_from_msg(msg)
        except ValueError as e:
            self.get_logger().error(f"bad chunk: {e}")
            return
        self.arm.on_chunk(names, positions, stamp, now_s(self))

    def _trigger(self, result: tuple[bool, str], response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = result
        self.get_logger().info(f"service: {result[1]}")
        return response

    def _start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(self.arm.start(now_s(self)), response)

    def _stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(self.arm.stop(), response)

    def _hold(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(self.arm.hold(), response)

    def _tick(self) -> None:
        now = now_s(self)
        if self.arm.wants_chunk(now):
            request = Float64()
            request.data = self.arm.executor.expected_latency()  # real-time chunking's frozen span
            self.request_pub.publish(request)
        command = self.arm.tick(now)
        self._send(command, now)
        state = self.arm.state.value + (f": {self.arm.fault_reason}" if self.arm.fault_reason else "")
        if state != self._last_state:
            msg = String()
            msg.data = state
            self.state_pub.publish(msg)
            self._last_state = state

    def _send(self, command: Command, now: float) -> None:
        if command.values is None:
            return  # nothing known to hold at yet: the driver keeps its own target
        if self.action_client is None:
            msg = Float64MultiArray()
            msg.data = [float(x) for x in command.values]
            self.command_pub.publish(msg)
            return
        goal_points = self.streamer.update(now, command)
        if goal_points is None:
            return  # the controller is running the last goal's trajectory
        if not self.action_client.server_is_ready():
            self.get_logger().error("the joint trajectory controller's action server is not up",
                                    throttle_duration_sec=5.0)
            return
        goal = FollowJointTrajectory.Goal()
        goal.trajectory.joint_names = list(self.arm.action_joints)
        # header.stamp left at zero: the controller starts the trajectory on receipt, replacing the current one
        points = []
        for positions, t in zip(goal_points.positions, goal_points.times_from_start, strict=True):
            point = JointTrajectoryPoint()
            point.positions = [float(x) for x in positions]
            fill_duration(point.time_from_start, float(t))
            points.append(point)
        goal.trajectory.points = points
        self.action_client.send_goal_async(goal)


def main(args: list[str] | None = None) -> None:
    spin(ExecutorNode, "pirl_executor", args)
