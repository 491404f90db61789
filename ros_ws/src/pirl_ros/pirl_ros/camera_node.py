"""Camera node: a RealSense (pyrealsense2) or OpenCV camera -> sensor_msgs/Image + CameraInfo.

Parameters: source (realsense | opencv), serial, device, width, height, fps, depth, camera_file (camera.yaml:
its K, distortion and resolution), camera_name, frame_id, playback (a RealSense .db3 to play instead of a
live camera). Survives an unplug: it logs the loss, keeps retrying, and logs the return.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from core.camera import CameraSpec
from deploy.robot.camera_io import CameraError, OpenCVReader, RealSenseReader, ReconnectingCamera, check_resolution
from pirl_ros.convert import fill_camera_info, fill_image
from pirl_ros.params import declare
from pirl_ros.spin import now_s, spin


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("pirl_camera")
        p = {
            "source": declare(self, "source", "realsense"), "serial": declare(self, "serial", ""),
            "device": declare(self, "device", "0"), "camera_file": declare(self, "camera_file", ""),
            "camera_name": declare(self, "camera_name", "base_camera"), "playback": declare(self, "playback", ""),
        }
        self.width, self.height = declare(self, "width", 640), declare(self, "height", 480)
        self.fps, self.depth = declare(self, "fps", 30), declare(self, "depth", False)
        self.frame_id = declare(self, "frame_id", "camera_color_optical_frame")
        if p["source"] not in ("realsense", "opencv"):
            raise ValueError(f"camera source {p['source']!r} is not one of realsense, opencv")
        self.spec = CameraSpec.load(p["camera_file"]) if p["camera_file"] else None
        if self.spec is not None and (self.spec.width, self.spec.height) != (self.width, self.height):
            raise ValueError(f"camera.yaml {p['camera_file']} describes {self.spec.width}x{self.spec.height} but "
                             f"the camera is set to {self.width}x{self.height}: set width/height to match, or "
                             "recalibrate")
        self.params = p
        self.camera = ReconnectingCamera(self._open, retry_s=1.0, timeout_s=1.0)
        ns = f"camera/{p['camera_name']}"
        self.image_pub = self.create_publisher(Image, f"{ns}/image_raw", qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, f"{ns}/camera_info", qos_profile_sensor_data)
        self.timer = self.create_timer(1.0 / self.fps, self._poll)
        self.get_logger().info(f"camera node: {p['source']} {p['serial'] or p['device']} "
                               f"{self.width}x{self.height}@{self.fps} -> {ns}/image_raw")

    def _open(self):
        p = self.params
        if p["source"] == "realsense":
            return RealSenseReader(serial=p["serial"] or None, width=self.width, height=self.height, fps=self.fps,
                                   depth=self.depth, playback=p["playback"] or None)
        return OpenCVReader(p["device"], self.width, self.height, self.fps)

    def _poll(self) -> None:
        frame = self.camera.read()
        if frame is None:
            return
        if self.spec is not None:
            try:
                check_resolution((self.spec.width, self.spec.height), frame)
            except CameraError as e:
                self.get_logger().error(str(e), throttle_duration_sec=5.0)
                return
        stamp = now_s(self)
        self.image_pub.publish(fill_image(Image(), frame.rgb, stamp, self.frame_id))
        if self.spec is not None:
            info = fill_camera_info(CameraInfo(), self.spec.width, self.spec.height, self.spec.K,
                                    self.spec.distortion, stamp, self.frame_id)
            self.info_pub.publish(info)

    def destroy_node(self) -> None:
        self.camera.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin(CameraNode, "pirl_camera", args)
