"""Test doubles for the ROS message classes (rclpy and the generated message types cannot be installed
here): plain dataclasses with exactly the fields of sensor_msgs/Image, CameraInfo, JointState,
trajectory_msgs/JointTrajectory(+Point), builtin_interfaces/Time and Duration (ROS 2 Humble definitions)."""

from dataclasses import dataclass, field


@dataclass
class Time:
    sec: int = 0
    nanosec: int = 0


Duration = Time  # same two fields


@dataclass
class Header:
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class Image:
    header: Header = field(default_factory=Header)
    height: int = 0
    width: int = 0
    encoding: str = ""
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b""


@dataclass
class CameraInfo:
    header: Header = field(default_factory=Header)
    height: int = 0
    width: int = 0
    distortion_model: str = ""
    d: list = field(default_factory=list)
    k: list = field(default_factory=lambda: [0.0] * 9)
    r: list = field(default_factory=lambda: [0.0] * 9)
    p: list = field(default_factory=lambda: [0.0] * 12)


@dataclass
class JointState:
    header: Header = field(default_factory=Header)
    name: list = field(default_factory=list)
    position: list = field(default_factory=list)
    velocity: list = field(default_factory=list)
    effort: list = field(default_factory=list)


@dataclass
class JointTrajectoryPoint:
    positions: list = field(default_factory=list)
    velocities: list = field(default_factory=list)
    accelerations: list = field(default_factory=list)
    effort: list = field(default_factory=list)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
class JointTrajectory:
    header: Header = field(default_factory=Header)
    joint_names: list = field(default_factory=list)
    points: list = field(default_factory=list)
