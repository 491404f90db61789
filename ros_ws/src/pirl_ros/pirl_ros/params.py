"""Typed node parameters: declared with a default, read back as the default's type, or a clear error."""

from __future__ import annotations

from typing import TypeVar, cast

from rclpy.node import Node

T = TypeVar("T", str, int, float, bool, list)


def declare(node: Node, name: str, default: T) -> T:
    """Declare `name` with `default` and return its value. A list default of [""] stands for "empty" (ROS
    infers an array parameter's type from its default, so it cannot be an empty list)."""
    value = node.declare_parameter(name, default).value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, type(default)):
        raise ValueError(f"{node.get_name()}: parameter {name!r} must be a {type(default).__name__}, got {value!r}")
    if isinstance(value, list):
        value = [v for v in value if v != ""]
    return cast(T, value)
