from typing import Any

from launch_testing import actions as actions
from launch_testing import asserts as asserts

def post_shutdown_test() -> Any: ...
