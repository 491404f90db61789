"""arm.launch.py's argument handling (pirl_bringup.plan): what starts for each setup, and clear errors."""

import json
from pathlib import Path

import pytest
from pirl_bringup.plan import LaunchArgumentError, plan

CONFIG = Path(__file__).resolve().parents[2] / "ros_ws" / "src" / "pirl_bringup" / "config"


def _engine(tmp_path, kind="ee_delta_pose", names=("dx", "dy", "dz", "gripper"), state_dim=9) -> str:
    d = tmp_path / f"engine_{kind}_{len(names)}"
    d.mkdir()
    (d / "engine.json").write_text(json.dumps({
        "format": "pirl-engine/1", "cameras": ["base_camera"], "image_size": 64, "state_dim": state_dim,
        "action_dim": len(names), "action_horizon": 10,
        "action_space": {"kind": kind, "names": list(names), "control_hz": 20.0}}))
    return str(d)


def test_sim_graph(tmp_path):
    p = plan({"engine": _engine(tmp_path), "camera": "sim", "robot": "sim", "arm": "sim_panda"}, CONFIG)
    names = [n.executable for n in p.nodes]
    assert names == ["sim_arm_node", "policy_node", "executor_node"] and p.record is None
    sim, policy, executor = p.nodes
    assert sim.parameters["image_size"] == [64, 64] and sim.parameters["control_mode"] == "pd_ee_delta_pos"
    assert policy.parameters["action_joints"] == ["dx", "dy", "dz", "gripper"]
    assert policy.parameters["camera_file"] == ""  # the sim arm renders pinhole images: nothing to undistort
    assert policy.parameters["rtc"] is False
    engine = p.nodes[1].parameters["engine"]
    assert plan({"engine": engine, "camera": "sim", "robot": "sim", "arm": "sim_panda", "rtc": "true"},
                CONFIG).nodes[1].parameters["rtc"] is True
    with pytest.raises(LaunchArgumentError, match="rtc:='maybe' is not true or false"):
        plan({"engine": engine, "camera": "sim", "robot": "sim", "arm": "sim_panda", "rtc": "maybe"}, CONFIG)
    assert len(policy.parameters["state_joints"]) == 9
    assert executor.parameters["interface"] == "position_topic" and executor.parameters["autostart"] is True
    assert executor.parameters["safety_limits"].endswith("safety_sim_ee_delta.yaml")
    assert executor.parameters["control_hz"] == 20.0


def test_real_franka_with_realsense_and_recording(tmp_path):
    joints = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1"]
    engine = _engine(tmp_path, "joint_position", joints)
    p = plan({"engine": engine, "arm": "franka", "camera": "realsense", "camera_serial": "123", "robot": "jtc",
              "control_hz": "15", "record_dir": str(tmp_path / "bag")}, CONFIG)
    camera, policy, executor = p.nodes
    assert camera.parameters["source"] == "realsense" and camera.parameters["serial"] == "123"
    assert policy.parameters["camera_file"] == ""  # none given: frames pass as they are
    assert executor.parameters["interface"] == "follow_joint_trajectory"
    assert executor.parameters["autostart"] is False and executor.parameters["control_hz"] == 15.0
    assert p.record is not None and p.record[:4] == ["ros2", "bag", "record", "-o"]
    with pytest.raises(LaunchArgumentError, match="engine outputs 3 action dims"):
        plan({"engine": _engine(tmp_path, "joint_position", ["j1", "j2", "j3"]), "arm": "franka",
              "camera": "opencv", "robot": "jtc"}, CONFIG)
    forward = plan({"engine": engine, "arm": "franka", "camera": "opencv", "robot": "forward"}, CONFIG)
    assert forward.nodes[-1].remappings == [("arm/command", "/forward_position_controller/commands")]


@pytest.mark.parametrize("args, message", [
    ({"camera": "webcam"}, r"camera:='webcam' is not valid; use one of realsense, opencv, sim"),
    ({"robot": "ur5"}, "robot:='ur5' is not valid"),
    ({"camera": "sim", "robot": "jtc"}, "camera:=sim .* needs robot:=sim"),
    ({"engine": "/nonexistent"}, "no engine.json there"),
    ({"engine": ""}, "engine:= is required"),
    ({"arm": "kuka"}, "arm:='kuka': no such config"),
    ({"arm": "franka", "robot": "sim"}, "robot:=sim needs a simulated arm config"),
    ({"arm": "franka", "robot": "jtc", "camera": "opencv"}, "ee_delta_pose; a real arm .* takes joint pos"),
    ({"num_executed": "20"}, "exceeds the engine's chunk length 10"),
    ({"control_hz": "-5"}, "control_hz:='-5' must be positive"),
    ({"max_age_s": "soon"}, "max_age_s:='soon' is not a float"),
    ({"autostart": "maybe"}, "autostart:='maybe' is not true or false"),
    ({"camera_file": "/nope/camera.yaml"}, "camera_file:='/nope/camera.yaml' not found"),
    ({"cameras": "x"}, r"unknown launch arguments \['cameras'\]"),
])
def test_bad_arguments_are_named(tmp_path, args, message):
    full = {"engine": _engine(tmp_path), "camera": "sim", "robot": "sim", **args}
    with pytest.raises(LaunchArgumentError, match=message):
        plan(full, CONFIG)


def test_delta_engine_is_refused_for_a_real_arm(tmp_path):
    with pytest.raises(LaunchArgumentError, match="takes joint positions"):
        plan({"engine": _engine(tmp_path, state_dim=6), "arm": "hobby_arm", "camera": "opencv",
              "robot": "forward"}, CONFIG)


def test_arm_configs_agree_with_their_safety_limits():
    import yaml

    from deploy.robot.safety import SafetyLimits

    for name in ("franka", "hobby_arm", "sim_panda"):
        arm = yaml.safe_load((CONFIG / f"{name}.yaml").read_text())
        limits = SafetyLimits.load(CONFIG / arm["safety_limits"])
        if "action_joints" in arm:
            assert len(arm["action_joints"]) == len(limits.lower), name
        assert len(arm["home"]) == len(arm["joints"]), name


def test_a_real_camera_is_undistorted_with_camera_yaml(tmp_path):
    joints = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1"]
    camera_file = tmp_path / "camera.yaml"
    camera_file.write_text("calibrated")  # plan only checks that it exists; the nodes read it
    p = plan({"engine": _engine(tmp_path, "joint_position", joints), "arm": "franka", "camera": "realsense",
              "robot": "jtc", "camera_file": str(camera_file)}, CONFIG)
    camera, policy, _ = p.nodes
    assert camera.parameters["camera_file"] == policy.parameters["camera_file"] == str(camera_file)
