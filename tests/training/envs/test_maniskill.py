"""ManiSkill3 behind the chunk-env contract, on the real simulator (CPU physics, lavapipe rendering)."""

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")

from core.camera import look_at  # noqa: E402
from training.envs.base import EnvError, episode_seed  # noqa: E402
from training.envs.maniskill import ManiSkillChunkEnv, ManiSkillConfig, ManiSkillVecEnv  # noqa: E402
from training.envs.maniskill_tasks import INSTRUCTIONS, TaskUnavailableError, available_tasks, check_task  # noqa: E402

CFG = ManiSkillConfig(tasks=("PickCube-v1", "PushCube-v1"), num_envs=2, image_size=(64, 64), max_episode_steps=12)


@pytest.fixture(scope="module")
def pool():
    with ManiSkillVecEnv(CFG) as env:
        yield env


def test_reset_gives_a_batch_in_the_contract(pool):
    obs = pool.reset(seed=7)
    assert pool.tasks == ["PickCube-v1", "PushCube-v1"] and pool.camera_names == ("base_camera",)
    img = obs["images"]["base_camera"]
    assert img.shape == (2, 64, 64, 3) and img.dtype == np.uint8 and img.std() > 10
    assert obs["state"].shape == (2, pool.state_dim) and obs["state"].dtype == np.float32
    assert obs["instruction"][0] in INSTRUCTIONS["PickCube-v1"]
    assert obs["instruction"][1] in INSTRUCTIONS["PushCube-v1"]
    again = pool.reset(seed=7)
    np.testing.assert_array_equal(again["images"]["base_camera"], img)
    np.testing.assert_array_equal(again["state"], obs["state"])
    other = pool.reset(seed=8)
    assert not np.array_equal(other["images"]["base_camera"], img), "another seed, another scene"


def test_chunks_stop_at_episode_end_and_auto_reset(pool):
    pool.reset(seed=11)
    rng = np.random.default_rng(0)
    chunk = lambda: rng.uniform(-1, 1, (2, 5, pool.action_dim)).astype(np.float32)  # noqa: E731
    first, second = pool.step(chunk()), pool.step(chunk())
    assert first.executed.tolist() == [5, 5] and not first.done.any() and first.episodes == [None, None]
    last = pool.step(chunk())  # the 12-step limit ends both episodes 2 actions into this chunk
    assert last.executed.tolist() == [2, 2] and last.truncated.all()
    for i in range(2):
        ep = last.episodes[i]
        assert ep.length == 12 and ep.seed == 11 + i and ep.task == pool.tasks[i]
        final = last.final_obs[i]
        # The returned observation is the new episode's first; the finished one's last is kept apart.
        assert not np.allclose(final["state"], last.obs["state"][i])
        assert final["images"]["base_camera"].shape == (64, 64, 3)
    assert second.obs["state"].shape == (2, pool.state_dim)
    # The new episode is reproducible from its derived seed.
    solo = ManiSkillChunkEnv("PickCube-v1", CFG)
    try:
        solo.reset(seed=11)
        solo._start_episode(episode_seed(11, 1))
        np.testing.assert_allclose(solo.observe()["state"], last.obs["state"][0], atol=1e-6)
    finally:
        solo.close()


def test_bad_chunks_are_refused_before_reaching_the_simulator(pool):
    obs = pool.reset(seed=3)
    bad = np.zeros((2, 4, pool.action_dim), np.float32)
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value at \[env 1, step 2, dim 0\]"):
        pool.step(bad)
    with pytest.raises(ValueError, match=r"action chunk must be \(N=2, H_exec>=1, A=\d+\)"):
        pool.step(np.zeros((2, pool.action_dim), np.float32))
    with pytest.raises(ValueError, match="floating point"):
        pool.step(np.zeros((2, 3, pool.action_dim), np.int64))
    out = pool.step(np.zeros((2, 3, pool.action_dim), np.float32))  # the env is intact
    assert out.executed.tolist() == [3, 3]
    assert out.obs["instruction"] == obs["instruction"]


def test_unknown_and_asset_missing_tasks_get_clear_errors():
    works = available_tasks()
    assert {"PickCube-v1", "PushCube-v1", "PullCube-v1", "StackCube-v1"} <= set(works)
    with pytest.raises(TaskUnavailableError, match="unknown ManiSkill task 'PickMoon-v1'.*PickCube-v1"):
        check_task("PickMoon-v1")
    with pytest.raises(TaskUnavailableError, match="needs assets that are not on this machine.*PickCube-v1"):
        check_task("PutCarrotOnPlateInScene-v1")
    with pytest.raises(TaskUnavailableError, match="unknown ManiSkill task"):
        ManiSkillVecEnv(ManiSkillConfig(tasks=("PickMoon-v1",)))


def test_camera_from_yaml_projects_like_its_K(tmp_path):
    spec = look_at("base_camera", eye_base=[1.0, 0.35, 0.55], target_base=[0.6, 0.0, 0.05], width=128,
                   height=96, fov_y_deg=50)
    path = tmp_path / "camera.yaml"
    spec.save(path)
    cfg = ManiSkillConfig(tasks=("PickCube-v1",), num_envs=1, image_size=(96, 128), camera_file=str(path))
    env = ManiSkillChunkEnv("PickCube-v1", cfg)
    try:
        env.reset(seed=0)
        raw = env.raw
        T_world_base = raw.agent.robot.pose.to_transformation_matrix()[0].numpy()
        cam = raw._sensors["base_camera"]
        params = cam.get_params()
        np.testing.assert_allclose(params["intrinsic_cv"][0].numpy(), spec.K, atol=1e-4)
        T_world_cam = T_world_base @ spec.T_base_camera
        np.testing.assert_allclose(params["extrinsic_cv"][0].numpy(), np.linalg.inv(T_world_cam)[:3], atol=1e-5)

        # A known 3-D point: the centre of the cube's top face. Project it with K, then ask the renderer what
        # surface it sees at that pixel.
        top = raw.cube.pose.p[0].numpy() + [0.0, 0.0, raw.cube_half_size]
        top_base = (np.linalg.inv(T_world_base) @ np.r_[top, 1.0])[:3]
        u, v = spec.project(top_base[None])[0]
        images = env.render_images()["base_camera"]
        px = images[int(round(v)), int(round(u))]
        assert px[0] > 150 and px[1] < 80 and px[2] < 80, f"the cube (red) is not at the projected pixel: {px}"
        cam.capture()
        seen = cam.get_obs(rgb=False, depth=False, position=True, segmentation=False)["position"][0].numpy()
        p_gl = seen[int(round(v)), int(round(u)), :3].astype(float) / 1000.0  # OpenGL camera frame, mm
        p_cv = np.array([p_gl[0], -p_gl[1], -p_gl[2]])
        uv_seen = spec.K @ p_cv
        uv_seen = uv_seen[:2] / uv_seen[2]
        # The rendered surface point projects back within a pixel of where K put the known point.
        assert np.abs(uv_seen - [u, v]).max() < 1.0, (uv_seen, (u, v))
        p_base = (spec.T_base_camera @ np.r_[p_cv, 1.0])[:3]
        assert np.linalg.norm(p_base - top_base) < 0.01, (p_base, top_base)
    finally:
        env.close()


@pytest.mark.slow
def test_a_dead_worker_is_reported_by_env_without_a_hang():
    env = ManiSkillVecEnv(ManiSkillConfig(tasks=("PushCube-v1",), num_envs=2, step_timeout_s=60))
    env.reset(seed=0)
    victim = env.processes[1]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=10)
    t0 = time.monotonic()
    with pytest.raises(EnvError, match=r"ManiSkill worker process died during step: env 1 \(PushCube-v1, pid \d+"):
        env.step(np.zeros((2, 2, env.action_dim), np.float32))
    assert time.monotonic() - t0 < 30
    assert all(not p.is_alive() for p in env.processes), "the rest of the pool was shut down"
    with pytest.raises(EnvError, match="closed"):
        env.step(np.zeros((2, 2, env.action_dim), np.float32))


@pytest.mark.parametrize("absorbing", [True, False])
def test_a_dense_success_pays_for_the_steps_it_leaves(absorbing):
    """With dense rewards, succeeding early must not earn less than hovering near the goal until the limit."""
    from training.data.experts.maniskill import PushCubeExpert

    cfg = ManiSkillConfig(tasks=("PushCube-v1",), num_envs=1, render=False, reward_mode="normalized_dense",
                          max_episode_steps=40, absorbing_success=absorbing)
    env = ManiSkillChunkEnv("PushCube-v1", cfg)
    try:
        env.sim_reset(3)
        expert = PushCubeExpert(env)
        rewards = []
        for _ in range(40):
            r, success, terminated, _ = env.sim_step(expert.act())
            rewards.append(r)
            if terminated:
                break
    finally:
        env.close()
    assert success and terminated and len(rewards) < 30  # the expert succeeds well before the limit
    assert all(0.0 <= r <= 1.0 for r in rewards[:-1])  # normalized dense reward before the success
    left = 40 - len(rewards)
    expected = 1.0 * (1 + left) if absorbing else 1.0
    assert rewards[-1] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("task,base,direction", [("PushCubeNarrow-v1", "PushCube-v1", 1.0),
                                                 ("PullCubeNarrow-v1", "PullCube-v1", -1.0)])
def test_narrow_tasks_shrink_the_start_range_and_keep_the_task(task, base, direction):
    """The CPU demo's tasks: the cube starts within +-4 cm (ManiSkill's: +-10 cm), the goal keeps its offset
    from the cube, and the scripted expert still solves them."""
    from training.data.experts.maniskill import EXPERTS
    from training.envs.maniskill_tasks import MANISKILL_HALF_RANGE, NARROW_HALF_RANGE

    cfg = ManiSkillConfig(tasks=(task,), num_envs=1, render=False, max_episode_steps=50)
    narrow, wide = ManiSkillChunkEnv(task, cfg), ManiSkillChunkEnv(base, ManiSkillConfig(tasks=(base,), render=False))
    try:
        cubes, wide_cubes = [], []
        for seed in range(12):
            narrow.sim_reset(seed)
            wide.sim_reset(seed)
            cube, goal = (narrow.raw.obj.pose.p.numpy()[0], narrow.raw.goal_region.pose.p.numpy()[0])
            w_cube, w_goal = wide.raw.obj.pose.p.numpy()[0], wide.raw.goal_region.pose.p.numpy()[0]
            np.testing.assert_allclose(goal[:2] - cube[:2], w_goal[:2] - w_cube[:2], atol=1e-6)
            assert direction * (goal[0] - cube[0]) > 0.1  # push: goal ahead; pull: goal behind
            cubes.append(cube[:2])
            wide_cubes.append(w_cube[:2])
        assert np.abs(cubes).max() <= NARROW_HALF_RANGE + 1e-6
        assert np.abs(wide_cubes).max() > NARROW_HALF_RANGE  # the base task does spread wider
        np.testing.assert_allclose(np.asarray(cubes), np.asarray(wide_cubes) * NARROW_HALF_RANGE / MANISKILL_HALF_RANGE,
                                   atol=1e-6)

        narrow.sim_reset(5)
        expert = EXPERTS[task](narrow)
        for _ in range(50):
            _, success, terminated, _ = narrow.sim_step(expert.act())
            if terminated:
                break
        assert success
    finally:
        narrow.close()
        wide.close()


def test_consecutive_seeds_cover_every_phrasing():
    """A few-shot demo set (seeds 0..N-1) must show each phrasing the held-out episodes can ask for."""
    from training.envs.maniskill import instruction_for

    for task, phrases in INSTRUCTIONS.items():
        assert {instruction_for(task, s) for s in range(len(phrases))} == set(phrases)
        assert {instruction_for(task, s) for s in range(1_000_000, 1_000_000 + len(phrases))} == set(phrases)


def test_the_finger_dim_converts_between_metres_and_the_gripper_action():
    from training.envs.maniskill import finger_to_gripper_action, gripper_action_to_finger, to_controller

    np.testing.assert_allclose(finger_to_gripper_action(np.array([-0.01, 0.015, 0.04, 0.09])), [-1, 0, 1, 1])
    np.testing.assert_allclose(gripper_action_to_finger(finger_to_gripper_action(np.array([0.0, 0.03]))),
                               [0.0, 0.03], atol=1e-9)
    joints = np.array([[0.1, -0.2, 0.0, -2.0, 0.0, 1.5, 0.7, 0.04]])
    out = to_controller(joints, "pd_joint_pos")
    assert abs(out[0, -1] - 1.0) < 1e-6 and np.array_equal(out[0, :7], joints[0, :7].astype(np.float32))
    assert to_controller(joints, "pd_ee_delta_pos") is joints  # end-effector actions pass unchanged
