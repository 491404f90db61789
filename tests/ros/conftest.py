"""The ROS packages' plain-Python parts, imported from the workspace sources (no ROS needed)."""

import sys
from pathlib import Path

WS = Path(__file__).resolve().parents[2] / "ros_ws" / "src"
for pkg in ("pirl_ros", "pirl_bringup"):
    if str(WS / pkg) not in sys.path:
        sys.path.insert(0, str(WS / pkg))
