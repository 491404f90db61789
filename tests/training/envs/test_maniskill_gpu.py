"""The batched GPU backend (physx_cuda). Runs where CUDA and ManiSkill's GPU simulation exist (a GPU training
machine); skipped, with the reason, on CPU-only machines such as CI."""

import numpy as np
import pytest
import torch

pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="physx_cuda needs a CUDA GPU; this machine has none")

from training.envs.maniskill import ManiSkillConfig, ManiSkillGPUVecEnv, make_maniskill_vec_env  # noqa: E402


def test_gpu_batch_has_the_cpu_pool_contract():
    cfg = ManiSkillConfig(tasks=("PickCube-v1", "PushCube-v1"), num_envs=8, image_size=(64, 64),
                          max_episode_steps=12, sim_backend="physx_cuda")
    env = make_maniskill_vec_env(cfg)
    assert isinstance(env, ManiSkillGPUVecEnv)
    try:
        obs = env.reset(seed=5)
        assert obs["images"]["base_camera"].shape == (8, 64, 64, 3) and obs["state"].shape == (8, env.state_dim)
        assert len(obs["instruction"]) == 8
        chunk = np.zeros((8, 5, env.action_dim), np.float32)
        env.step(chunk)
        env.step(chunk)
        last = env.step(chunk)  # the 12-step limit ends every episode 2 actions in
        assert last.executed.tolist() == [2] * 8 and last.truncated.all()
        assert all(e is not None and e.length == 12 for e in last.episodes)
        assert all(f is not None for f in last.final_obs)
    finally:
        env.close()
