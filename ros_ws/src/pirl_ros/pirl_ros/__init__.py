"""ROS 2 nodes around pirl's deploy package: camera, policy, executor and a simulated arm.

Each node is a thin rclpy shell: it converts messages (`pirl_ros.convert`, numpy only) and calls a plain
class from `deploy` that holds the logic and is tested without ROS.
"""
