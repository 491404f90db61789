"""Message <-> numpy conversions for the standard types the graph uses (sensor_msgs, trajectory_msgs,
builtin_interfaces). No rclpy import: functions read fields of any object shaped like the message, and
`fill_*` functions write into a message instance the caller creates, so all of this is tested without ROS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ENCODINGS = {"rgb8": False, "bgr8": True}  # encoding -> channels reversed


def to_stamp(stamp: Any, seconds: float) -> Any:
    """Fill a builtin_interfaces/Time (sec, nanosec) from seconds."""
    ns = int(round(seconds * 1e9))
    stamp.sec, stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    return stamp


def from_stamp(stamp: Any) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def fill_duration(duration: Any, seconds: float) -> Any:
    """builtin_interfaces/Duration has the same fields as Time."""
    return to_stamp(duration, seconds)


def fill_image(msg: Any, rgb: np.ndarray, stamp_s: float, frame_id: str) -> Any:
    """sensor_msgs/Image, encoding rgb8, from an RGB uint8 (H, W, 3) array."""
    rgb = np.ascontiguousarray(rgb, np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got {rgb.shape}")
    to_stamp(msg.header.stamp, stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = rgb.shape[0], rgb.shape[1]
    msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    return msg


def image_from_msg(msg: Any) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a sensor_msgs/Image in rgb8 or bgr8 (rows may be padded: `step`)."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; publish rgb8 or bgr8")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(bytes(msg.data), np.uint8)
    if step < w * 3 or buf.size != h * step:
        raise ValueError(f"image data of {buf.size} bytes does not match {h} rows of step {step} (width {w})")
    img = buf.reshape(h, step)[:, : w * 3].reshape(h, w, 3)
    return np.ascontiguousarray(img[..., ::-1] if ENCODINGS[msg.encoding] else img)


def fill_camera_info(msg: Any, width: int, height: int, K: np.ndarray, distortion: np.ndarray, stamp_s: float,
                     frame_id: str) -> Any:
    """sensor_msgs/CameraInfo of a pinhole camera with OpenCV (plumb_bob) distortion."""
    K = np.asarray(K, float)
    to_stamp(msg.header.stamp, stamp_s)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [float(x) for x in np.asarray(distortion, float).reshape(-1)[:5]]
    msg.k = [float(x) for x in K.reshape(-1)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(x) for x in np.c_[K, np.zeros(3)].reshape(-1)]
    return msg


def joint_state_from_msg(msg: Any) -> tuple[list[str], np.ndarray, float]:
    """(names, positions float64, stamp seconds) of a sensor_msgs/JointState."""
    names, pos = list(msg.name), np.asarray(msg.position, np.float64)
    if len(names) != len(pos):
        raise ValueError(f"JointState has {len(names)} names but {len(pos)} positions")
    return names, pos, from_stamp(msg.header.stamp)


def fill_joint_state(msg: Any, names: Sequence[str], positions: np.ndarray, stamp_s: float) -> Any:
    to_stamp(msg.header.stamp, stamp_s)
    msg.name = list(names)
    msg.position = [float(x) for x in positions]
    return msg


def fill_trajectory(msg: Any, point_type: type, joint_names: Sequence[str], actions: np.ndarray, stamp_s: float,
                    control_hz: float) -> Any:
    """trajectory_msgs/JointTrajectory from a chunk (H, A): point i at time_from_start i / control_hz after
    the stamp (the time of the observation the chunk was computed from)."""
    actions = np.asarray(actions, np.float64)
    if actions.ndim != 2 or actions.shape[1] != len(joint_names):
        raise ValueError(f"a chunk (H, {len(joint_names)}) for joints {list(joint_names)}, got {actions.shape}")
    to_stamp(msg.header.stamp, stamp_s)
    msg.joint_names = list(joint_names)
    points = []
    for i, row in enumerate(actions):
        p = point_type()
        p.positions = [float(x) for x in row]
        fill_duration(p.time_from_start, i / control_hz)
        points.append(p)
    msg.points = points
    return msg


def trajectory_from_msg(msg: Any) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """(joint names, positions (H, A), times from start (H,), stamp seconds) of a JointTrajectory."""
    names = list(msg.joint_names)
    if not msg.points:
        raise ValueError("JointTrajectory without points")
    pos = np.asarray([list(p.positions) for p in msg.points], np.float64)
    if pos.ndim != 2 or pos.shape[1] != len(names):
        raise ValueError(f"JointTrajectory points do not all have {len(names)} positions")
    times = np.asarray([from_stamp(p.time_from_start) for p in msg.points])
    return names, pos, times, from_stamp(msg.header.stamp)
