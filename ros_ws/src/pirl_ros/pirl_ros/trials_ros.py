"""The ROS 2 side of `pirl-trials run`: `RosRobot` drives the running pirl_bringup graph and `RosServiceOperator`
takes the operator's verdicts over services. rclpy lives here, under ros_ws; deploy.trials imports this module
only when a session asks for ROS (`--operator ros`, or a run without `--dry-run`)."""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from deploy.trials.log import EpisodeResult, TrialError
from pirl_ros.convert import image_from_msg


class RosServiceOperator:
    """The operator judges from anywhere on the ROS network (a teach pendant, a foot switch, a phone app):
    services ~/start, ~/stop, ~/success and ~/failure (std_srvs/Trigger) on node `pirl_trials_operator`, and
    an optional note on ~/note (std_msgs/String) before the verdict. Needs ROS 2 (rclpy)."""

    def __init__(self) -> None:
        if not rclpy.ok():
            rclpy.init()
        self._rclpy, self.node = rclpy, Node("pirl_trials_operator")
        self._events = {name: threading.Event() for name in ("start", "stop", "success", "failure")}
        self._note = ""
        for name, event in self._events.items():
            self.node.create_service(Trigger, f"~/{name}", self._handler(event))
        self.node.create_subscription(String, "~/note", self._on_note, 10)

    def _handler(self, event: threading.Event):
        def handle(request, response):
            event.set()
            response.success, response.message = True, "ok"
            return response

        return handle

    def _on_note(self, msg) -> None:
        self._note = str(msg.data)

    def _wait(self, *names: str) -> str:
        while True:
            self._rclpy.spin_once(self.node, timeout_sec=0.1)
            for name in names:
                if self._events[name].is_set():
                    self._events[name].clear()
                    return name

    def ready(self, episode: int, total: int) -> bool:
        print(f"episode {episode + 1}/{total}: reset the scene, then call ~/start", flush=True)
        return self._wait("start") == "start"

    def watch(self) -> threading.Event:
        stop = self._events["stop"]
        stop.clear()

        def spin() -> None:  # serve ~/stop while the episode runs
            while not stop.is_set():
                self._rclpy.spin_once(self.node, timeout_sec=0.1)

        threading.Thread(target=spin, daemon=True).start()
        return stop

    def judge(self, episode: int, result: EpisodeResult) -> tuple[str, str]:
        self._note = ""
        print(f"episode {episode + 1} stopped ({result.stop_reason}): call ~/success or ~/failure", flush=True)
        return self._wait("success", "failure"), self._note


class RosRobot:
    """The running pirl_bringup graph (`ros2 launch pirl_bringup arm.launch.py ...`): starts the executor,
    records the camera topic and the executed commands, holds the arm at the end. Needs ROS 2 (rclpy)."""

    kind = "real"

    def __init__(self, camera_topic: str = "/camera/base_camera/image_raw", command_topic: str = "/arm/command",
                 executor: str = "/pirl_executor", fps: float = 10.0):
        if not rclpy.ok():
            rclpy.init()
        self._rclpy, self.fps = rclpy, fps
        self.node = Node("pirl_trials")
        self._frames: list[np.ndarray] = []
        self._actions: list[list[float]] = []
        self._recording = False
        self._last_frame = 0.0
        self._string = String
        self.node.create_subscription(Image, camera_topic, self._on_image, 10)
        self.node.create_subscription(Float64MultiArray, command_topic, self._on_command, 10)
        self.instruction_pub = self.node.create_publisher(String, "/instruction", 10)
        self.start_srv = self.node.create_client(Trigger, f"{executor}/start")
        self.hold_srv = self.node.create_client(Trigger, f"{executor}/hold")
        self._trigger = Trigger

    def _on_image(self, msg) -> None:
        now = time.monotonic()
        if self._recording and now - self._last_frame >= 1.0 / self.fps:
            self._frames.append(image_from_msg(msg))
            self._last_frame = now

    def _on_command(self, msg) -> None:
        if self._recording:
            self._actions.append(list(msg.data))

    def _call(self, client, what: str) -> None:
        if not client.wait_for_service(timeout_sec=5.0):
            raise TrialError(f"the executor's {what} service is not up: is `ros2 launch pirl_bringup arm.launch.py` "
                             "running?")
        future = client.call_async(self._trigger.Request())
        self._rclpy.spin_until_future_complete(self.node, future, timeout_sec=5.0)
        response = future.result()
        if response is None or not response.success:
            raise TrialError(f"executor {what} failed: {getattr(response, 'message', 'no answer')}")

    def run_episode(self, episode: int, instruction: str, time_limit_s: float,
                    stop_requested: threading.Event) -> EpisodeResult:
        msg = self._string()
        msg.data = instruction
        self.instruction_pub.publish(msg)
        self._frames, self._actions, self._recording = [], [], True
        t0 = time.monotonic()
        self._call(self.start_srv, "start")
        try:
            while time.monotonic() - t0 < time_limit_s and not stop_requested.is_set():
                self._rclpy.spin_once(self.node, timeout_sec=0.05)
        finally:
            self._call(self.hold_srv, "hold")
            self._recording = False
        reason = "operator" if stop_requested.is_set() else "time_limit"
        actions = np.asarray(self._actions, np.float32) if self._actions else None
        return EpisodeResult(time.monotonic() - t0, reason, self._frames, actions)

    def close(self) -> None:
        self.node.destroy_node()
