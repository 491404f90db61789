"""Chunk execution: timing, early requests, temporal ensembling, the watchdog."""

import numpy as np

from deploy.robot.executor import ChunkExecutor
from deploy.robot.safety import SafetyFilter, SafetyLimits

HZ = 10.0
LIMITS = SafetyLimits("joint_position", lower=(-10.0,), upper=(10.0,), max_chunk_age_s=1.0)


def _executor(**kw) -> ChunkExecutor:
    return ChunkExecutor(SafetyFilter(LIMITS, HZ), control_hz=HZ, **kw)


def test_actions_play_at_the_control_rate_to_the_chunks_end_then_hold():
    ex = _executor(num_executed=3, latency_s=0.15)
    chunk = np.arange(5, dtype=float)[:, None]  # action i = i
    ex.submit(chunk, stamp=0.0)
    got = [ex.tick(t / HZ, current=np.zeros(1))[0] for t in range(7)]
    # num_executed sets when the next chunk is asked for; without one the chunk plays on to its end
    assert got == [0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0] and ex.counts["hold_no_chunk"] == 2


def test_a_late_chunk_is_aligned_by_skipping_the_actions_whose_time_has_passed():
    ex = _executor(num_executed=3)
    ex.submit(np.arange(8, dtype=float)[:, None], stamp=0.0, now=0.25)  # arrives 2.5 ticks after its observation
    assert ex.counts["late_actions_skipped"] == 2
    assert [ex.tick(t, current=np.zeros(1))[0] for t in (0.3, 0.4)] == [3.0, 4.0]


def test_the_next_chunk_is_asked_for_from_the_measured_latency():
    ex = _executor(num_executed=5, latency_s=0.2)
    assert ex.needs_chunk(0.0) and ex.expected_latency() == 0.2  # nothing yet; the prior
    ex.submit(np.zeros((8, 1)), stamp=0.0)
    # due at 0.5 (5 actions); asked for 0.2 s (the prior) before
    assert not ex.needs_chunk(0.2) and ex.needs_chunk(0.3)
    for k in range(10):  # chunks that arrive 0.1 s after their observation
        ex.submit(np.zeros((8, 1)), stamp=1.0 + k, now=1.1 + k)
    assert abs(ex.expected_latency() - 0.1) < 1e-9
    # the newest arrived at 10.1, so it has run 5 actions at 10.6: asked for 0.1 s before
    assert not ex.needs_chunk(10.4) and ex.needs_chunk(10.5)
    for k in range(10):  # slower now: the estimate follows the 90th percentile
        ex.submit(np.zeros((8, 1)), stamp=20.0 + k, now=20.3 + k)
    assert ex.expected_latency() > 0.25


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


def test_rtc_guidance_freezes_the_latency_span_and_decays_over_the_overlap():
    from deploy.robot.executor import rtc_guide

    chunk = np.arange(10, dtype=float)[:, None]  # action i = i, observed at 0.0
    guide, weights = rtc_guide(chunk, 0.0, now=0.4, control_hz=HZ, latency_s=0.2, horizon=8)
    np.testing.assert_array_equal(guide[:6, 0], [4, 5, 6, 7, 8, 9])  # the new chunk's times: actions 4..9
    assert np.all(weights[:2] == 1.0)  # runs before the new chunk arrives: frozen
    assert np.all(np.diff(weights[2:6]) < 0) and 0 < weights[5] < weights[2] < 1  # decays over the overlap
    assert np.all(weights[6:] == 0.0)  # the current chunk has no action there
    assert rtc_guide(chunk, 0.0, now=1.0, control_hz=HZ, latency_s=0.2, horizon=8) is None  # nothing left
    ex = _executor(num_executed=3, latency_s=0.2)
    assert ex.guide(0.0, 8) is None
    ex.submit(chunk, stamp=0.0)
    got = ex.guide(0.4, 8)
    assert got is not None and np.array_equal(got[1], weights)
