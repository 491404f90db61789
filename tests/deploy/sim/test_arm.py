"""The ManiSkill sim arm behind the robot's interfaces (real ManiSkill on the CPU)."""

import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="the sim arm needs ManiSkill (pirl[sim])")


def test_sim_arm_moves_on_commands_and_holds_without():
    from deploy.sim.arm import SimArm, SimArmConfig

    arm = SimArm(SimArmConfig(task="PushCube-v1", image_size=(48, 64)))
    try:
        assert arm.reset(seed=1)
        assert arm.joint_names[0] == "panda_joint1" and len(arm.joint_names) == len(arm.joint_positions())
        rgb = arm.render()
        assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8 and rgb.std() > 0
        q0 = arm.joint_positions()
        for _ in range(5):
            arm.apply(None)  # hold: zero delta
        q_hold = arm.joint_positions()
        assert np.abs(q_hold[:7] - q0[:7]).max() < 0.02
        for _ in range(5):
            arm.apply(np.array([0.0, 0.0, 1.0, 1.0]))  # up
        assert np.abs(arm.joint_positions()[:7] - q_hold[:7]).max() > 0.05
        with pytest.raises(ValueError, match=r"takes commands of shape \(4,\)"):
            arm.apply(np.zeros(7))
    finally:
        arm.close()
