"""The one `main` every pirl node shares: init, build the node, spin until Ctrl-C, shut down - and a node
whose parameters or inputs cannot work exits with its reason on one line instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.node import Node


def now_s(node: Node) -> float:
    """The node's clock (ROS time: simulated when use_sim_time is set) in seconds."""
    return node.get_clock().now().nanoseconds * 1e-9


def spin(make_node: Callable[[], Node], name: str, args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = make_node()
    except (ValueError, RuntimeError, FileNotFoundError) as e:  # bad parameters, engine, camera, config
        print(f"[{name}] cannot start: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
