"""Demonstration datasets: the on-disk format, a streaming writer, and a reader that makes SFT samples.

A dataset is a directory:

    meta.json            format, backend, tasks, cameras, image size, state/action dims, action space
    index.jsonl          one JSON line per finished episode, appended and flushed as it completes:
                         {"episode": 3, "file": "episodes/000003.npz", "task": ..., "instruction": ...,
                          "seed": ..., "length": T, "success": true}
    episodes/000003.npz  one file per episode (numpy, no pickles), written atomically:
                         images_<camera> uint8 (T, H, W, 3)   observation before each action
                         state           float32 (T, S)
                         actions         float32 (T, A)       in the env's action units
    norm_stats.json      state/action statistics over all episodes (written by `finalize`)

Episodes stream to disk one by one (never all in memory). A crash loses at most the episode in progress;
`DemoWriter(resume=True)` continues after the last indexed episode (a half-written index line is dropped).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "pirl-demos"
VERSION = 1


@dataclass
class Episode:
    task: str
    instruction: str
    seed: int
    success: bool
    images: dict[str, np.ndarray]  # camera -> uint8 (T, H, W, 3)
    state: np.ndarray  # float32 (T, S)
    actions: np.ndarray  # float32 (T, A)

    def __post_init__(self) -> None:
        t = len(self.actions)
        if self.state.shape[0] != t or any(v.shape[0] != t for v in self.images.values()):
            raise ValueError(f"episode arrays disagree on length: actions {t}, state {self.state.shape[0]}, "
                             f"images { {k: v.shape[0] for k, v in self.images.items()} }")

    @property
    def length(self) -> int:
        return len(self.actions)


def _read_index(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a crash mid-write: the episode in progress is lost, nothing else
                warnings.warn(f"{path}: dropping a truncated last line (episode in progress at a crash)",
                              stacklevel=2)
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON and is not the last line; the index is "
                             "damaged") from None
    return records


class DemoWriter:
    """Streams episodes into a dataset directory."""

    def __init__(self, root: str | Path, meta: dict[str, Any], resume: bool = False):
        self.root = Path(root)
        self.index_path = self.root / "index.jsonl"
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)
        meta_path = self.root / "meta.json"
        existing = _read_index(self.index_path)
        if existing and not resume:
            raise FileExistsError(f"{self.root} already holds {len(existing)} episodes; pass resume=True "
                                  "(--resume) to continue it or choose another --out")
        meta = json.loads(json.dumps({"format": FORMAT, "version": VERSION, **meta}))  # as it reads back
        if resume and meta_path.exists():
            old = json.loads(meta_path.read_text())
            keys = [k for k in meta if k in old and old[k] != meta[k] and k not in ("episodes", "steps")]
            if keys:
                raise ValueError(f"cannot resume {self.root}: its meta.json differs in {keys}")
        _atomic_write_text(meta_path, json.dumps(meta, indent=2))
        # Rewrite the index without a torn last line before appending to it.
        _atomic_write_text(self.index_path, "".join(json.dumps(r) + "\n" for r in existing))
        self.records = existing

    @property
    def num_episodes(self) -> int:
        return len(self.records)

    def done_seeds(self) -> set[int]:
        return {int(r["seed"]) for r in self.records}

    def write(self, ep: Episode) -> dict[str, Any]:
        idx = self.num_episodes
        rel = f"episodes/{idx:06d}.npz"
        tmp = self.root / f"episodes/.{idx:06d}.tmp.npz"
        arrays = {f"images_{k}": v for k, v in ep.images.items()}
        np.savez(tmp, state=ep.state.astype(np.float32), actions=ep.actions.astype(np.float32), **arrays)
        os.replace(tmp, self.root / rel)
        record = {"episode": idx, "file": rel, "task": ep.task, "instruction": ep.instruction, "seed": ep.seed,
                  "length": ep.length, "success": bool(ep.success)}
        with open(self.index_path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)
        return record

    def finalize(self) -> None:
        """Write norm_stats.json over every episode's state and actions (small arrays; images untouched)."""
        from core.normalize import NormStats, Stats

        data = DemoDataset(self.root)
        if not len(data):
            raise ValueError(f"{self.root}: no episodes to compute statistics from")
        states, actions = data.all_state_actions()
        NormStats(Stats.from_data(states), Stats.from_data(actions)).save(self.root)
        meta = json.loads((self.root / "meta.json").read_text())
        meta.update(episodes=len(data), steps=int(len(actions)))
        _atomic_write_text(self.root / "meta.json", json.dumps(meta, indent=2))


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class DemoDataset:
    """Reads a dataset written by DemoWriter. Episodes load lazily, one at a time."""

    def __init__(self, root: str | Path, successful_only: bool = False):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.root} is not a pirl demo dataset (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: format {self.meta.get('format')!r} is not {FORMAT!r}")
        self.records = [r for r in _read_index(self.root / "index.jsonl") if r["success"] or not successful_only]

    def __len__(self) -> int:
        return len(self.records)

    def episode(self, i: int) -> Episode:
        r = self.records[i]
        with np.load(self.root / r["file"], allow_pickle=False) as z:
            images = {k.removeprefix("images_"): z[k] for k in z.files if k.startswith("images_")}
            return Episode(r["task"], r["instruction"], int(r["seed"]), bool(r["success"]), images, z["state"],
                           z["actions"])

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.episode(i)

    def all_state_actions(self) -> tuple[np.ndarray, np.ndarray]:
        states, actions = [], []
        for r in self.records:
            with np.load(self.root / r["file"], allow_pickle=False) as z:
                states.append(z["state"])
                actions.append(z["actions"])
        return np.concatenate(states), np.concatenate(actions)

    def chunk_samples(self, horizon: int) -> dict[str, Any]:
        """Every step of every episode as an SFT sample: the observation at t and actions t .. t+H-1 (past the
        episode's end the last action repeats and `action_valid` is False). Loads the dataset into memory:
        meant for few-shot sets (tens of demos)."""
        images: dict[str, list] = {}
        state, chunks, valid, instr = [], [], [], []
        for ep in self:
            t = ep.length
            idx = np.arange(t)[:, None] + np.arange(horizon)[None, :]  # (T, H)
            valid.append(idx < t)
            chunks.append(ep.actions[np.minimum(idx, t - 1)])
            state.append(ep.state)
            instr += [ep.instruction] * t
            for k, v in ep.images.items():
                images.setdefault(k, []).append(v)
        return {"images": {k: np.concatenate(v) for k, v in images.items()}, "state": np.concatenate(state),
                "instruction": instr, "actions": np.concatenate(chunks), "action_valid": np.concatenate(valid)}
