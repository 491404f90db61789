from typing import Any

from launch import LaunchContext

class Substitution:
    def perform(self, context: LaunchContext) -> str: ...

class LaunchConfiguration(Substitution):
    def __init__(self, variable_name: str, *, default: Any | None = None) -> None: ...
