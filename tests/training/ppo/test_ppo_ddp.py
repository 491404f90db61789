"""Two ranks on CPU (gloo), each with its own ManiSkill env and rollouts: after an update both hold the same
weights, and those weights moved."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.slow  # a whole run or several processes (docs: pytest -m 'not slow')
pytest.importorskip("mani_skill", reason="ManiSkill3 is installed by `make test` (extra: sim)")


def _rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    from tests.training.ppo.test_ppo_resume import _Spec
    from tests.training.ppo.test_ppo_run import _policy
    from training.envs.maniskill import ManiSkillConfig, ManiSkillVecEnv
    from training.ppo.config import PPOConfig
    from training.ppo.distributed import broadcast_parameters
    from training.ppo.rollout import RolloutCollector
    from training.ppo.train import PPOLearner

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        policy = _policy(_Spec())
        if rank == 1:  # a different start on purpose: the broadcast must fix it
            torch.nn.init.normal_(policy.model.action_out_proj.weight)
        broadcast_parameters(policy.model)
        start = {k: v.clone() for k, v in policy.model.state_dict().items()}
        with ManiSkillVecEnv(ManiSkillConfig(tasks=("PushCube-v1",), num_envs=1, image_size=(32, 32),
                                             max_episode_steps=10)) as env:
            cfg = PPOConfig(num_executed=3, rollout_steps=2, epochs=1, minibatch_size=2, critic_warmup_updates=0,
                            target_kl=None, lr=1e-3)
            learner = PPOLearner(policy, cfg)
            ro = RolloutCollector(env, policy, cfg.sampler, cfg.num_executed, seed=100 * rank).collect(2, 0.5)
            learner.update(ro, cfg.sampler.noise_level)
        state = {k: v.contiguous() for k, v in policy.model.state_dict().items()}
        save_file(state, os.path.join(out_dir, f"rank{rank}.safetensors"))
        save_file({k: v.contiguous() for k, v in start.items()}, os.path.join(out_dir, f"start{rank}.safetensors"))
        save_file({"log_probs": ro.log_probs.contiguous()}, os.path.join(out_dir, f"rollout{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def test_two_cpu_ranks_hold_identical_weights_after_an_update(tmp_path):
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "ranks diverged"
    s0, s1 = (load_file(str(tmp_path / f"start{r}.safetensors")) for r in (0, 1))
    assert torch.equal(s0["action_out_proj.weight"], s1["action_out_proj.weight"]), "broadcast failed"
    assert not torch.equal(w0["action_out_proj.weight"], s0["action_out_proj.weight"]), "the update changed nothing"
    r0, r1 = (load_file(str(tmp_path / f"rollout{r}.safetensors"))["log_probs"] for r in (0, 1))
    assert not torch.equal(r0, r1), "each rank must collect its own rollouts"


def _run_rank(rank: int, world: int, port: int, out: str, init: str, updates: int, resume: bool) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from training.ppo.config import PPOConfig, PPORunConfig
    from training.ppo.run import run_ppo

    try:
        algo = PPOConfig(num_executed=3, rollout_steps=2, updates=updates, epochs=1, minibatch_size=2,
                         critic_warmup_updates=0, target_kl=None, lr=1e-3)
        run_ppo(PPORunConfig(init=init, out=out, num_envs=1, max_episode_steps=10, eval_episodes_per_env=1,
                             save_every=1, resume=resume, wandb=False, algo=algo), progress=False)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pirl_train_ppo_under_two_ranks_resumes_bit_for_bit(tmp_path):
    import json

    from tests.training.ppo.test_ppo_resume import _Spec
    from tests.training.ppo.test_ppo_run import _policy
    from training.policy.checkpoint import save_checkpoint

    init = save_checkpoint(tmp_path / "sft", _policy(_Spec()), metadata={"tasks": ["PushCube-v1"]})

    def launch(out, updates, resume=False):
        mp.spawn(_run_rank, args=(2, _free_port(), str(tmp_path / out), str(init), updates, resume), nprocs=2,
                 join=True)

    launch("straight", 2)
    launch("split", 1)
    launch("split", 2, resume=True)
    a = load_file(str(tmp_path / "straight" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed 2-rank run diverged from the straight one"
    metrics = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [m["update"] for m in metrics] == [1, 2] and metrics[-1]["env_steps"] == 2 * 2 * 2 * 3
    results = json.loads((tmp_path / "split" / "results.json").read_text())
    assert results["world_size"] == 2 and set(json.loads((tmp_path / "split" / "evals.json").read_text())) == \
        {"sft", "final"}
