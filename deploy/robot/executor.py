"""Action-chunk execution at a control rate, shared by the ROS executor node and sim evaluation.

A chunk (H, A) arrives stamped with the time its observation was taken; its action i is meant for time
`stamp + i / control_hz`. Every control tick the executor picks the action for now from the chunks that cover
it - the newest one, or with temporal ensembling (ACT, Zhao et al. 2023) an average over all of them weighted
`exp(-m k)` with k = 0 for the oldest chunk - among the first `num_executed` actions of each chunk only. It
asks for the next chunk early (`needs_chunk`) so that inference latency is hidden, drops a chunk whose
observation is older than the watchdog limit, and holds when it has nothing valid. Every command goes through
the safety filter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from deploy.robot.safety import SafetyFilter


@dataclass
class _Chunk:
    actions: np.ndarray  # (n, A): the executable head of the chunk
    stamp: float


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
    """Expected inference latency: a new chunk is asked for this long before the current one runs out."""
    counts: Counter = field(default_factory=Counter)
    _chunks: list[_Chunk] = field(default_factory=list)

    def submit(self, chunk: np.ndarray, stamp: float) -> None:
        """A policy chunk (H, A) for the observation taken at `stamp` (seconds, the executor's clock)."""
        chunk = np.asarray(chunk, np.float64)
        if chunk.ndim != 2 or chunk.shape[0] < 1:
            raise ValueError(f"a chunk must be (H, A) with H >= 1, got {chunk.shape}")
        self._chunks.append(_Chunk(chunk[: self.num_executed], stamp))
        if not self.ensemble:
            self._chunks = self._chunks[-1:]
        self.counts["chunks"] += 1

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

    def needs_chunk(self, now: float) -> bool:
        """True when the newest chunk's executable actions run out within the expected latency."""
        if not self._chunks:
            return True
        c = self._chunks[-1]
        remaining = len(c.actions) - self._index(c, now)
        return remaining / self.control_hz <= self.latency_s

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
