"""What `arm.launch.py` starts, decided from its arguments by plain Python (no launch import), so every
argument check is tested without ROS. The launch file turns the plan into launch_ros Nodes.

Arguments (all strings, as launch gives them):
    engine          exported engine directory (pirl-export); required
    arm             arm config: franka | hobby_arm | sim_panda, or a path to a YAML file like them
    camera          realsense | opencv | sim (the sim arm's camera; needs robot:=sim)
    camera_serial   RealSense serial ('' = the first found);  camera_device: OpenCV index or path
    camera_file     camera.yaml (pirl-calibrate): resolution, K, distortion, pose
    instruction     the initial instruction (later ones: publish std_msgs/String on /instruction)
    robot           sim | forward (Float64MultiArray to a forward position controller) |
                    jtc (FollowJointTrajectory to a joint_trajectory_controller)
    control_hz      control rate of the executor (default: the engine's action space rate)
    num_executed    actions of each chunk executed before the next chunk takes over
    safety_limits   safety limits YAML (default: the arm config's)
    max_age_s       the policy refuses inputs older than this
    autostart       true: move as soon as joint states arrive; false: call /pirl_executor/start
    record_dir      '' or a directory to `ros2 bag record` the graph's topics into
    task            the sim arm's ManiSkill task (robot:=sim)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARGUMENTS: dict[str, tuple[str, str]] = {
    "engine": ("", "exported engine directory (pirl-export); required"),
    "arm": ("sim_panda", "arm config: franka | hobby_arm | sim_panda, or a YAML path"),
    "camera": ("realsense", "camera source: realsense | opencv | sim"),
    "camera_serial": ("", "RealSense serial number ('' = the first camera found)"),
    "camera_device": ("0", "OpenCV camera index, device path or stream URL"),
    "camera_file": ("", "camera.yaml from pirl-calibrate (resolution, K, distortion, T_base_camera)"),
    "instruction": ("", "initial language instruction"),
    "robot": ("sim", "robot interface: sim | forward | jtc"),
    "control_hz": ("", "executor control rate in Hz ('' = the engine's action space rate)"),
    "num_executed": ("5", "actions of each chunk executed before the next chunk"),
    "safety_limits": ("", "safety limits YAML ('' = the arm config's)"),
    "max_age_s": ("0.25", "the policy never runs on inputs older than this (seconds)"),
    "rtc": ("false", "real-time chunking: guide each chunk towards the actions already committed"),
    "autostart": ("", "true: move once joint states arrive; false: call /pirl_executor/start ('' = true for sim)"),
    "record_dir": ("", "directory to record the graph's topics into with ros2 bag ('' = no recording)"),
    "task": ("PushCube-v1", "ManiSkill task of the sim arm (robot:=sim)"),
}
CAMERAS = ("realsense", "opencv", "sim")
ROBOTS = {"sim": "position_topic", "forward": "position_topic", "jtc": "follow_joint_trajectory"}
ARMS = ("franka", "hobby_arm", "sim_panda")
RECORDED_TOPICS = ["/joint_states", "/instruction", "/policy/chunk", "/policy/latency_ms", "/arm/command",
                   "/executor/state"]


class LaunchArgumentError(ValueError):
    """A launch argument with a value that cannot work; the message says which and what to give."""


@dataclass
class NodeSpec:
    executable: str
    name: str
    parameters: dict[str, Any]
    remappings: list[tuple[str, str]] = field(default_factory=list)
    package: str = "pirl_ros"


@dataclass
class Plan:
    nodes: list[NodeSpec]
    record: list[str] | None  # the ros2 bag command, or None


def _choice(args: dict[str, str], name: str, options) -> str:
    value = args.get(name, ARGUMENTS[name][0])
    if value not in options:
        raise LaunchArgumentError(f"{name}:={value!r} is not valid; use one of {', '.join(options)}")
    return value


def _number(args: dict[str, str], name: str, kind=float, positive=True):
    raw = args.get(name, ARGUMENTS[name][0])
    try:
        value = kind(raw)
    except ValueError:
        raise LaunchArgumentError(f"{name}:={raw!r} is not a {kind.__name__}") from None
    if positive and value <= 0:
        raise LaunchArgumentError(f"{name}:={raw!r} must be positive")
    return value


def _bool(raw: str, name: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise LaunchArgumentError(f"{name}:={raw!r} is not true or false")


def load_arm(name_or_path: str, config_dir: Path) -> tuple[dict, Path]:
    import yaml

    path = config_dir / f"{name_or_path}.yaml" if name_or_path in ARMS else Path(name_or_path)
    if not path.exists():
        raise LaunchArgumentError(f"arm:={name_or_path!r}: no such config ({path}); use one of {', '.join(ARMS)} "
                                  "or a YAML path")
    arm = yaml.safe_load(path.read_text())
    missing = [k for k in ("name", "joints", "state_joints", "home", "safety_limits") if k not in arm]
    if missing:
        raise LaunchArgumentError(f"arm config {path} is missing {missing}")
    if len(arm["home"]) != len(arm["joints"]):
        raise LaunchArgumentError(f"arm config {path}: home has {len(arm['home'])} values for "
                                  f"{len(arm['joints'])} joints")
    return arm, path


def read_engine(directory: str) -> dict:
    if not directory:
        raise LaunchArgumentError("engine:= is required: the directory `pirl-export CHECKPOINT --out DIR` wrote")
    path = Path(directory).expanduser() / "engine.json"
    if not path.exists():
        raise LaunchArgumentError(f"engine:={directory!r}: no engine.json there; export one with "
                                  "`pirl-export CHECKPOINT --out DIR`")
    return json.loads(path.read_text())


def plan(args: dict[str, str], config_dir: Path) -> Plan:
    """The nodes to start for these launch arguments; LaunchArgumentError for any that cannot work."""
    unknown = sorted(set(args) - set(ARGUMENTS))
    if unknown:
        raise LaunchArgumentError(f"unknown launch arguments {unknown}; known: {sorted(ARGUMENTS)}")
    camera, robot = _choice(args, "camera", CAMERAS), _choice(args, "robot", tuple(ROBOTS))
    if camera == "sim" and robot != "sim":
        raise LaunchArgumentError("camera:=sim renders the sim arm's camera, so it needs robot:=sim")
    engine = read_engine(args.get("engine", ""))
    arm, arm_path = load_arm(args.get("arm", ARGUMENTS["arm"][0]), config_dir)
    if robot == "sim" and not arm.get("sim"):
        raise LaunchArgumentError(f"robot:=sim needs a simulated arm config (arm:=sim_panda); {arm['name']} is a "
                                  "real arm")
    space = engine.get("action_space") or {}
    if robot != "sim" and space.get("kind") not in ("joint_position", None):
        raise LaunchArgumentError(f"the engine's actions are {space.get('kind')}; a real arm through ros2_control "
                                  "takes joint positions: export an engine trained with joint-position actions, "
                                  "or try this engine with robot:=sim camera:=sim")
    action_joints = list(arm.get("action_joints") or space.get("names") or [])
    if len(action_joints) != engine["action_dim"]:
        raise LaunchArgumentError(f"the engine outputs {engine['action_dim']} action dims {space.get('names')} but "
                                  f"arm {arm['name']} lists {len(action_joints)} action_joints {action_joints}")
    if len(arm["state_joints"]) != engine["state_dim"]:
        raise LaunchArgumentError(f"the engine's state has {engine['state_dim']} values but arm {arm['name']} "
                                  f"lists {len(arm['state_joints'])} state_joints")
    control_hz = _number(args, "control_hz") if args.get("control_hz") else float(space.get("control_hz", 20.0))
    num_executed = _number(args, "num_executed", int)
    if num_executed > engine["action_horizon"]:
        raise LaunchArgumentError(f"num_executed:={num_executed} exceeds the engine's chunk length "
                                  f"{engine['action_horizon']}")
    joint_engine = space.get("kind") == "joint_position"
    # the sim Panda runs a joint-position engine under its joint controller and the Franka's joint limits
    default_safety = "safety_franka.yaml" if robot == "sim" and joint_engine else arm["safety_limits"]
    safety = args.get("safety_limits") or str(arm_path.parent / default_safety)
    if not Path(safety).exists():
        raise LaunchArgumentError(f"safety limits file {safety} not found")
    camera_file = args.get("camera_file", "")
    if camera_file and not Path(camera_file).exists():
        raise LaunchArgumentError(f"camera_file:={camera_file!r} not found; write one with `pirl-calibrate write`")
    autostart_raw = args.get("autostart", "")
    autostart = (robot == "sim") if autostart_raw == "" else _bool(autostart_raw, "autostart")
    cam_name = engine["cameras"][0]
    if len(engine["cameras"]) > 1:
        raise LaunchArgumentError(f"the engine reads cameras {engine['cameras']}; this launch file drives one "
                                  "camera - add a camera node per extra camera")
    nodes = []
    if robot == "sim":
        size = [engine["image_size"]] * 2  # what the policy saw in training: no resize
        nodes.append(NodeSpec("sim_arm_node", "pirl_sim_arm", {
            "task": args.get("task", ARGUMENTS["task"][0]),
            "control_mode": "pd_joint_pos" if joint_engine else arm["sim"]["control_mode"],
            "camera_file": camera_file, "camera_name": cam_name, "image_size": size, "control_hz": control_hz,
            "publish_instruction": not args.get("instruction")}))
    if camera != "sim":
        cam = arm.get("camera", {})
        nodes.append(NodeSpec("camera_node", "pirl_camera", {
            "source": camera, "serial": args.get("camera_serial", ""), "device": args.get("camera_device", "0"),
            "width": int(cam.get("width", 640)), "height": int(cam.get("height", 480)),
            "fps": int(cam.get("fps", 30)), "camera_file": camera_file, "camera_name": cam_name}))
    nodes.append(NodeSpec("policy_node", "pirl_policy", {
        "engine": str(Path(args["engine"]).expanduser()), "state_joints": list(arm["state_joints"]),
        "action_joints": action_joints, "control_hz": control_hz,
        "max_age_s": _number(args, "max_age_s"), "instruction": args.get("instruction", ""),
        "rtc": _bool(args.get("rtc", ARGUMENTS["rtc"][0]), "rtc"),
        # a real camera's frames are undistorted with camera.yaml; the sim arm renders pinhole images already
        "camera_file": camera_file if camera != "sim" else ""}))
    executor_params = {"control_hz": control_hz, "action_joints": action_joints, "safety_limits": safety,
                       "interface": ROBOTS[robot], "num_executed": num_executed, "autostart": autostart,
                       "controller": arm.get("controller", "joint_trajectory_controller")}
    remap = [("arm/command", arm.get("command_topic", "/forward_position_controller/commands"))] \
        if robot == "forward" else []
    nodes.append(NodeSpec("executor_node", "pirl_executor", executor_params, remap))
    record = None
    if args.get("record_dir"):
        cam_topics = [f"/camera/{cam_name}/image_raw", f"/camera/{cam_name}/camera_info"]
        record = ["ros2", "bag", "record", "-o", args["record_dir"], *RECORDED_TOPICS, *cam_topics]
    return Plan(nodes, record)
