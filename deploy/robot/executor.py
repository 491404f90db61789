"""Action-chunk execution at a control rate, shared by the ROS executor node, the dry run and sim evaluation.

A chunk (H, A) arrives stamped with the time of the observation it was computed from; its action i is meant
for time `stamp + i / control_hz`. Every control tick the executor plays the newest chunk's action for now -
or, with temporal ensembling (ACT, Zhao et al. 2023), an average over every chunk that covers now, weighted
`exp(-m k)` with k = 0 for the oldest. A chunk that arrives late is aligned, not replayed: its actions whose
time has passed are skipped.

One chunk schedule: the executor asks for the next chunk (`needs_chunk`) so that it arrives when the current
one has run `num_executed` actions since its arrival, from its own measurement of how late chunks arrive (a
running 90th percentile of arrival time minus observation time: inference, transport and input age together;
`latency_s` until the first measurement). Decisions thus come every num_executed / control_hz whatever the
latency, as long as latency plus that period fits in a chunk (H actions). A chunk that comes later than
expected does not make the arm hold while the previous chunk still has actions: a chunk plays to its end if
nothing replaces it. Chunks older than the watchdog limit are dropped, and the arm holds when nothing valid is
left. Every command goes through the safety filter.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from deploy.robot.safety import SafetyFilter


@dataclass
class _Chunk:
    actions: np.ndarray  # (H, A)
    stamp: float  # observation time: action i is for stamp + i / control_hz
    arrived: float  # when the executor got it (stamp when unknown)


def rtc_guide(actions: np.ndarray, stamp: float, now: float, control_hz: float, latency_s: float,
              horizon: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Real-time chunking's guidance for a chunk observed at `now`, from the chunk being executed (`actions`
    (H, A) observed at `stamp`): its actions for the new chunk's times (horizon, A) and their weights
    (horizon,): 1 for the actions that will run before the new chunk arrives (`latency_s`), then decaying
    exponentially to 0 over the rest of the overlap (RTC's soft mask, Black et al. 2025), 0 where the current
    chunk has no action. None when the current chunk has no action left."""
    start = int(np.floor((now - stamp) * control_hz + 1e-9))
    overlap = max(0, min(horizon, len(actions) - start))
    if overlap == 0 or start < 0:
        return None
    guide = np.repeat(actions[-1:], horizon, axis=0).astype(np.float64)  # past the overlap: weight 0
    guide[:overlap] = actions[start:start + overlap]
    d = min(int(np.ceil(latency_s * control_hz - 1e-9)), overlap)
    weights = np.zeros(horizon)
    weights[:d] = 1.0
    ci = (overlap - np.arange(d, overlap)) / (overlap - d + 1)
    weights[d:overlap] = ci * (np.exp(ci) - 1) / (np.e - 1)
    return guide, weights


@dataclass
class ChunkExecutor:
    safety: SafetyFilter
    control_hz: float
    num_executed: int = 5
    ensemble: bool = False
    ensemble_decay: float = 0.1
    """m in exp(-m k), k = 0 for the oldest chunk: a larger m trusts the older chunks more, a smaller one takes
    in new observations faster (ACT's default is 0.01 at 50 Hz)."""
    latency_s: float = 0.1
    """The expected chunk latency (arrival minus observation time) until the executor has measured it."""
    latency_window: int = 50
    """Chunks the latency percentile is taken over."""
    counts: Counter = field(default_factory=Counter)
    _chunks: list[_Chunk] = field(default_factory=list)
    _latencies: deque = field(default_factory=deque)

    def submit(self, chunk: np.ndarray, stamp: float, now: float | None = None) -> None:
        """A policy chunk (H, A) for the observation taken at `stamp` (seconds, the executor's clock), arriving
        at `now` (its lateness feeds the latency estimate; its actions before `now` are skipped)."""
        chunk = np.asarray(chunk, np.float64)
        if chunk.ndim != 2 or chunk.shape[0] < 1:
            raise ValueError(f"a chunk must be (H, A) with H >= 1, got {chunk.shape}")
        if now is not None:
            late = max(now - stamp, 0.0)
            self._latencies.append(late)
            while len(self._latencies) > self.latency_window:
                self._latencies.popleft()
            self.counts["late_actions_skipped"] += min(self._index(_Chunk(chunk, stamp, now), now), len(chunk))
        self._chunks.append(_Chunk(chunk, stamp, stamp if now is None else now))
        if not self.ensemble:
            self._chunks = self._chunks[-1:]
        self.counts["chunks"] += 1

    def expected_latency(self) -> float:
        """The 90th percentile of measured chunk lateness (latency_s before any chunk arrived)."""
        if not self._latencies:
            return self.latency_s
        return float(np.percentile(np.asarray(self._latencies), 90))

    def _index(self, c: _Chunk, now: float) -> int:
        return int(np.floor((now - c.stamp) * self.control_hz + 1e-9))

    def _live(self, now: float) -> list[_Chunk]:
        """Drop stale (watchdog) and used-up chunks; return those with an action for `now`."""
        fresh = []
        for c in self._chunks:
            if now - c.stamp > self.safety.limits.max_chunk_age_s:
                self.counts["stale_dropped"] += 1
            elif self._index(c, now) < len(c.actions):
                fresh.append(c)
        self._chunks = fresh
        return [c for c in fresh if self._index(c, now) >= 0]

    def remaining(self, now: float) -> int:
        """Executable actions of the newest chunk from `now` on (0 without one)."""
        if not self._chunks:
            return 0
        c = self._chunks[-1]
        return max(0, len(c.actions) - max(self._index(c, now), 0))

    def action_at(self, now: float) -> np.ndarray | None:
        """The newest chunk's raw action for `now` (before ensembling and safety), or None."""
        if not self._chunks:
            return None
        c = self._chunks[-1]
        i = self._index(c, now)
        return c.actions[i].copy() if 0 <= i < len(c.actions) else None

    def guide(self, now: float, horizon: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Real-time chunking's guidance for a chunk observed at `now` (`rtc_guide` of the newest chunk)."""
        if not self._chunks:
            return None
        c = self._chunks[-1]
        return rtc_guide(c.actions, c.stamp, now, self.control_hz, self.expected_latency(), horizon)

    def needs_chunk(self, now: float) -> bool:
        """True from the tick at which a chunk asked for now would arrive (at the expected latency) when the
        newest chunk has run `num_executed` actions since it arrived (or when there is no chunk)."""
        if not self._chunks:
            return True
        due = self._chunks[-1].arrived + self.num_executed / self.control_hz
        return now + self.expected_latency() >= due - 1e-9

    def tick(self, now: float, current: np.ndarray | None = None) -> np.ndarray:
        """The (safety-filtered) command for time `now`; holds when no chunk covers it."""
        live = self._live(now)
        if not live:
            self.counts["hold_no_chunk"] += 1
            return self.safety(self.safety.hold(current), current)
        if self.ensemble and len(live) > 1:
            # oldest chunk first gets weight exp(0), newer ones exp(-m * k) as in ACT
            acts = np.stack([c.actions[self._index(c, now)] for c in live])
            w = np.exp(-self.ensemble_decay * np.arange(len(live)))
            action = (w[:, None] * acts).sum(0) / w.sum()
        else:
            c = live[-1]
            action = c.actions[self._index(c, now)]
        return self.safety(action, current)

    def clear(self) -> None:
        """Drop every chunk (stop / fault): the next ticks hold."""
        self._chunks.clear()
