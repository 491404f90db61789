"""ros2 launch pirl_bringup arm.launch.py engine:=DIR [arm:=franka camera:=realsense robot:=jtc ...]

Starts the camera (or the sim arm), policy and executor nodes for an exported engine. Every argument is
listed by `ros2 launch pirl_bringup arm.launch.py --show-args` and documented in pirl_bringup/plan.py; bad
values stop the launch with a message saying what to give instead. Try it without hardware:

    ros2 launch pirl_bringup arm.launch.py engine:=runs/demo/engine camera:=sim robot:=sim
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription, LaunchDescriptionEntity
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from pirl_bringup.plan import ARGUMENTS, plan


def _launch_nodes(context: LaunchContext) -> list[LaunchDescriptionEntity]:
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config_dir = Path(get_package_share_directory("pirl_bringup")) / "config"
    p = plan(values, config_dir)  # LaunchArgumentError ends the launch with its message
    actions: list[LaunchDescriptionEntity] = [
        Node(package=n.package, executable=n.executable, name=n.name, parameters=[n.parameters],
             remappings=n.remappings, output="screen", emulate_tty=True) for n in p.nodes]
    if p.record:
        actions.append(ExecuteProcess(cmd=p.record, output="screen"))
    return actions


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=default, description=doc)
                 for name, (default, doc) in ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_nodes)])
