# tf2_ros (ROS 2 Humble): the names pirl uses, from the tf2_ros Python API docs.
from geometry_msgs.msg import TransformStamped
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

class Buffer:
    def __init__(self, cache_time: Duration | None = ..., node: Node | None = ...) -> None: ...
    def lookup_transform(self, target_frame: str, source_frame: str, time: Time,
                         timeout: Duration | None = ...) -> TransformStamped: ...

class TransformListener:
    def __init__(self, buffer: Buffer, node: Node, *, spin_thread: bool = ...) -> None: ...
