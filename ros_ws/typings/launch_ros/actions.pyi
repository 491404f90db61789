from collections.abc import Iterable
from typing import Any

from launch.actions import ExecuteProcess

class Node(ExecuteProcess):
    def __init__(self, *, executable: str, package: str | None = None, name: str | None = None,
                 namespace: str | None = None, exec_name: str | None = None,
                 parameters: Iterable[Any] | None = None, remappings: Iterable[tuple[str, str]] | None = None,
                 ros_arguments: Iterable[str] | None = None, arguments: Iterable[str] | None = None,
                 output: str = "log", emulate_tty: bool = False, **kwargs: Any) -> None: ...
