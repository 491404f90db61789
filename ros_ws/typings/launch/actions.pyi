from collections.abc import Callable, Iterable
from typing import Any

from launch import LaunchContext, LaunchDescriptionEntity
from launch.action import Action

SomeSubstitutionsType = Any

class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value: SomeSubstitutionsType | None = None,
                 description: str | None = None, choices: list[str] | None = None, **kwargs: Any) -> None: ...

class OpaqueFunction(Action):
    def __init__(self, *, function: Callable[..., list[LaunchDescriptionEntity] | None],
                 args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None, **left: Any) -> None: ...

class ExecuteProcess(Action):
    def __init__(self, *, cmd: Iterable[SomeSubstitutionsType], name: str | None = None, cwd: str | None = None,
                 env: dict[str, str] | None = None, shell: bool = False, output: str = "log",
                 **kwargs: Any) -> None: ...

class TimerAction(Action):
    def __init__(self, *, period: float | str, actions: Iterable[LaunchDescriptionEntity], **kwargs: Any) -> None: ...

class Shutdown(Action):
    def __init__(self, *, reason: str = "reason not given", **kwargs: Any) -> None: ...

def _unused(context: LaunchContext) -> None: ...

class IncludeLaunchDescription(Action):
    def __init__(self, launch_description_source: Any, *,
                 launch_arguments: Iterable[tuple[str, SomeSubstitutionsType]] | None = None,
                 **kwargs: Any) -> None: ...
