"""Launch and configuration for pirl on an arm: `ros2 launch pirl_bringup arm.launch.py`."""
