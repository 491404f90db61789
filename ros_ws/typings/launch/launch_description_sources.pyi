from typing import Any

class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path: Any) -> None: ...
