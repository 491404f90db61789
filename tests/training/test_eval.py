"""Evaluation statistics against hand-computed values."""

import pytest

from training.envs.base import EVAL_SEED_BASE, VAL_SEED_BASE, EpisodeStats, episode_seed
from training.eval import summarize, wilson_interval


def test_wilson_interval_matches_hand_computation():
    # k=8, n=10, z=1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71675, half 1.96 * sqrt(0.025604) / 1.38416
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-4) and hi == pytest.approx(0.94333, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_groups_by_task_and_instruction():
    eps = [EpisodeStats("PushCube-v1", "push", 1, 10, 1.0, True),
           EpisodeStats("PushCube-v1", "slide", 2, 50, 0.0, False),
           EpisodeStats("PullCube-v1", "pull", 3, 12, 1.0, True)]
    s = summarize(eps)
    assert s["overall"]["success"] == pytest.approx(2 / 3) and s["overall"]["n"] == 3
    assert s["per_task"]["PushCube-v1"]["success"] == 0.5 and s["per_task"]["PullCube-v1"]["n"] == 1
    assert s["per_instruction"]["PushCube-v1 | slide"]["success"] == 0.0


def test_evaluation_episodes_never_reach_training_or_validation_seeds():
    # an env reset with a seed of one range (training, test, validation) draws every later episode's seed
    # from that range, too
    ranges = {0: 0, 7: 0, EVAL_SEED_BASE: EVAL_SEED_BASE, EVAL_SEED_BASE + 1: EVAL_SEED_BASE,
              VAL_SEED_BASE: VAL_SEED_BASE, VAL_SEED_BASE + 1: VAL_SEED_BASE}
    for base, low in ranges.items():
        seeds = [episode_seed(base, k) for k in range(1, 300)]
        assert all(low <= s < low + EVAL_SEED_BASE for s in seeds), base
        assert len(set(seeds)) > 290  # still a spread of start states, not one repeated


def test_run_episodes_feeds_seeded_noise_and_routes_chunks_through_executors():
    """One evaluator for every runner: the same seed gives two runners the same noise, an executor sees each
    env's chunk and is reset when that env's episode ends, and the env executes what the executor returns."""
    import numpy as np

    from tests.training.ppo.test_ppo_learns import BanditEnv
    from training.eval import run_episodes

    seen: list = []

    def infer(obs, noise):
        seen.append(noise.clone())
        return noise.numpy()[:, :, :2]  # (N, H, A): the noise as actions

    class Recording:  # test double of deploy's ChunkExecutor: commands a fixed action, counts resets
        def __init__(self):
            self.chunks, self.resets = [], 0

        def execute(self, chunk, num_executed):
            self.chunks.append(chunk)
            return np.full((num_executed, chunk.shape[1]), 0.5, np.float32)

        def reset(self):
            self.resets += 1

    env = BanditEnv()
    executors = [Recording() for _ in range(env.num_envs)]
    summary = run_episodes(infer, env, 3, 1, (4, 5), executors=executors, seed=7)
    again = []
    run_episodes(lambda obs, noise: again.append(noise.clone()) or noise.numpy()[:, :, :2], env, 3, 1, (4, 5), seed=7)
    assert len(seen) == 3 and all((a == b).all() for a, b in zip(seen, again, strict=True))
    assert seen[0].shape == (8, 4, 5) and not (seen[0] == seen[1]).all()
    assert all(len(ex.chunks) == 3 and ex.resets == 3 for ex in executors)
    assert summary["overall"]["n"] == 24 and summary["latency_ms"]["p50"] >= 0
    # the bandit pays -|a - TARGET|: every executed action was the executor's 0.5, not the chunk's noise
    from tests.training.ppo.test_ppo_learns import TARGET

    expected = -float(np.abs(0.5 - TARGET).mean())
    assert all(abs(e["ret"] - expected) < 1e-6 for e in summary["episodes"])
