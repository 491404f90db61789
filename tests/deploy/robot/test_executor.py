"""Chunk execution: timing, early requests, temporal ensembling, the watchdog."""

import numpy as np

from deploy.robot.executor import ChunkExecutor
from deploy.robot.safety import SafetyFilter, SafetyLimits

HZ = 10.0
LIMITS = SafetyLimits("joint_position", lower=(-10.0,), upper=(10.0,), max_chunk_age_s=1.0)


def _executor(**kw) -> ChunkExecutor:
    return ChunkExecutor(SafetyFilter(LIMITS, HZ), control_hz=HZ, **kw)


def test_actions_play_at_the_control_rate_and_only_the_executed_head():
    ex = _executor(num_executed=3, latency_s=0.15)
    chunk = np.arange(8, dtype=float)[:, None]  # action i = i
    ex.submit(chunk, stamp=0.0)
    got = [ex.tick(t / HZ, current=np.zeros(1))[0] for t in range(5)]
    assert got[:3] == [0.0, 1.0, 2.0]
    assert got[3:] == [0.0, 0.0] and ex.counts["hold_no_chunk"] == 2  # actions 3.. are not executed: hold


def test_next_chunk_is_asked_for_early_enough_to_hide_latency():
    ex = _executor(num_executed=5, latency_s=0.2)
    assert ex.needs_chunk(0.0)
    ex.submit(np.zeros((8, 1)), stamp=0.0)
    assert not ex.needs_chunk(0.0) and not ex.needs_chunk(0.25)  # 3 and 2.5 ticks left
    assert ex.needs_chunk(0.3)  # 2 actions (0.2 s) left


def test_temporal_ensembling_averages_overlapping_chunks():
    ex = _executor(num_executed=5, ensemble=True, ensemble_decay=0.0)
    ex.submit(np.full((5, 1), 1.0), stamp=0.0)
    ex.submit(np.full((5, 1), 3.0), stamp=0.2)
    np.testing.assert_allclose(ex.tick(0.2, np.zeros(1)), [2.0])  # equal weights: the mean
    ex2 = _executor(num_executed=5, ensemble=True, ensemble_decay=1.0)
    ex2.submit(np.full((5, 1), 1.0), stamp=0.0)
    ex2.submit(np.full((5, 1), 3.0), stamp=0.2)
    w = np.exp(-np.arange(2.0))
    np.testing.assert_allclose(ex2.tick(0.2, np.zeros(1)), [(w[0] * 1 + w[1] * 3) / w.sum()])
    # the direction the docstring states: m = 1 leans towards the older chunk (1.0) where m = 0 gave the mean
    assert ex2.tick(0.25, np.zeros(1))[0] < 2.0


def test_a_stale_chunk_is_dropped_and_the_arm_holds():
    ex = _executor(num_executed=5)
    ex.submit(np.full((5, 1), 4.0), stamp=0.0)
    current = np.array([0.7])
    np.testing.assert_allclose(ex.tick(1.5, current), current)  # 1.5 s old > 1.0 s watchdog
    assert ex.counts["stale_dropped"] == 1 and ex.counts["hold_no_chunk"] == 1
    ex.submit(np.full((5, 1), np.nan), stamp=2.0)  # a NaN chunk: held, never sent
    np.testing.assert_allclose(ex.tick(2.0, current), current)
    assert ex.safety.counts["non_finite"] == 1
