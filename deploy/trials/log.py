"""Real-world success trials: episodes on the robot (or the sim arm, for a dry run), judged by the operator,
recorded one JSON line per episode.

    session = TrialSession(robot, operator, TrialLog("trials.jsonl"), engine_dir, task, instruction)
    session.run(episodes=20, time_limit_s=60, resume=True)

Per episode the log holds the engine's hash, task, instruction, start time, duration, outcome, note, why it
stopped, and the paths of the camera video and the executed actions (`.npy`, never pickled). The log is
append-only and flushed (fsync) per episode, so a crash loses at most the episode in progress; `resume`
continues a session's count. Robots: `DryRunRobot` (the ManiSkill sim arm through the same runner,
executor and safety code as the ROS graph) and `RosRobot` (pirl_ros.trials_ros: the running `pirl_bringup`
graph, via its executor services and topics). Operators: `KeyboardOperator`, `RosServiceOperator`
(pirl_ros.trials_ros: services) and `ScriptedOperator` (outcomes from a file: non-interactive sessions and
tests).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np

from deploy.robot.runtime import engine_hash

log = logging.getLogger("pirl.trials")
OUTCOMES = ("success", "failure")


class TrialError(RuntimeError):
    """A trials session or log that cannot be used as asked; the message says what to do."""


@dataclass
class TrialRecord:
    engine_sha256: str
    task: str
    instruction: str
    episode: int
    start_time: str  # ISO 8601, UTC
    duration_s: float
    outcome: str  # "success" | "failure"
    note: str
    stop_reason: str  # "time_limit" | "operator" | "task_done"
    video: str | None  # path relative to the log's directory
    actions: str | None
    robot: str  # "real" | "dry-run"
    engine_dir: str = ""
    sim_success: bool | None = None  # the sim arm's own success flag (dry runs only)


def _record(line: bytes) -> TrialRecord:
    """One log line -> TrialRecord; ValueError (incl. JSON and UTF-8 errors) or TypeError if it is not one."""
    data = json.loads(line.decode("utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"a record is a JSON object, got {type(data).__name__}")
    return TrialRecord(**data)


class TrialLog:
    """Append-only JSONL of TrialRecords. The only change ever made to existing bytes is `repair`: a torn last
    line (a crash mid-write) is moved to `<log>.torn` before anything is appended after it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def quarantine(self) -> Path:
        return self.path.with_name(self.path.name + ".torn")

    def repair(self) -> str | None:
        """Make the log end on a whole record. A last line that is not a record (a crash while writing it) is
        appended to `<log>.torn` (fsynced), then cut from the log; a whole record that only lacks its newline
        gets the newline. Returns what was done, or None if the log was sound."""
        if not self.path.exists():
            return None
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n") and _parses(data.rstrip(b"\n").rsplit(b"\n", 1)[-1]):
            return None
        body = data.rstrip(b"\n")
        cut = body.rfind(b"\n") + 1  # start of the last line
        tail = data[cut:]
        if not tail.endswith(b"\n") and _parses(tail):
            with open(self.path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
            return f"{self.path}: the last record lacked its newline (a crash while writing); completed it"
        with open(self.quarantine, "ab") as q:  # keep the bytes first, then cut: a crash in between loses nothing
            q.write(tail if tail.endswith(b"\n") else tail + b"\n")
            q.flush()
            os.fsync(q.fileno())
        with open(self.path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        whole = data[:cut].count(b"\n")
        return (f"{self.path}: its last line ({len(tail)} bytes) was torn by a crash while writing; moved it to "
                f"{self.quarantine} and continued after the {whole} whole records before it")

    def append(self, record: TrialRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        message = self.repair()
        if message:
            log.warning(message)
        with open(self.path, "a") as f:
            f.write(json.dumps(asdict(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[TrialRecord]:
        return read_trials(self.path)


def _parses(line: bytes) -> bool:
    try:
        _record(line)
    except (ValueError, TypeError):
        return False
    return True


def read_trials(path: str | Path) -> list[TrialRecord]:
    """Every complete record; a torn last line (a crash mid-write) is skipped with a warning, a damaged line
    elsewhere is an error (the log was edited)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(_record(line))
        except (ValueError, TypeError) as e:
            if n == len(lines):
                log.warning("%s: the last line (%d) is incomplete (a crash while writing?); read the %d records "
                            "before it", path, n, len(records))
                break
            raise TrialError(f"{path}:{n} is not a trial record ({e}); the log must not be edited by hand") from None
    return records


@dataclass
class EpisodeResult:
    duration_s: float
    stop_reason: str
    frames: list[np.ndarray] = field(default_factory=list)  # RGB camera frames for the video
    actions: np.ndarray | None = None  # (T, A) executed commands
    sim_success: bool | None = None


class Robot(Protocol):
    kind: str
    fps: float

    def run_episode(self, episode: int, instruction: str, time_limit_s: float,
                    stop_requested: threading.Event) -> EpisodeResult: ...

    def close(self) -> None: ...


class Operator(Protocol):
    def ready(self, episode: int, total: int) -> bool:
        """Ask for the scene to be reset; False: end the session."""
        ...

    def watch(self) -> threading.Event:
        """An event the operator sets to stop the running episode."""
        ...

    def judge(self, episode: int, result: EpisodeResult) -> tuple[str, str]:
        """(outcome, note) of the episode just run."""
        ...


class ScriptedOperator:
    """Outcomes from a file, one episode per line: `success` or `failure`, then an optional note
    (e.g. `failure knocked the cube off the table`). For non-interactive sessions and tests."""

    def __init__(self, path: str | Path):
        self.lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
        self._next = 0

    def ready(self, episode: int, total: int) -> bool:
        return True

    def watch(self) -> threading.Event:
        return threading.Event()

    def judge(self, episode: int, result: EpisodeResult) -> tuple[str, str]:
        if self._next >= len(self.lines):
            raise TrialError(f"the outcomes file has {len(self.lines)} lines; episode {episode} needs one more")
        outcome, _, note = self.lines[self._next].partition(" ")
        self._next += 1
        if outcome not in OUTCOMES:
            raise TrialError(f"outcome {outcome!r} in the outcomes file: write 'success' or 'failure'")
        return outcome, note.strip()


class KeyboardOperator:
    """Prompts on the terminal: Enter to start an episode, Enter again to stop it early, then s / f and a note."""

    def __init__(self, stream=sys.stdin):
        self.stream = stream

    def _ask(self, prompt: str) -> str:
        print(prompt, end="", flush=True)
        line = self.stream.readline()
        if not line:
            raise TrialError("stdin closed: run interactively, or give --outcomes FILE")
        return line.strip()

    def ready(self, episode: int, total: int) -> bool:
        answer = self._ask(f"\nepisode {episode + 1}/{total}: reset the scene, then Enter to start (q: quit) ")
        return answer.lower() != "q"

    def watch(self) -> threading.Event:
        stop = threading.Event()

        def wait_for_enter() -> None:
            self.stream.readline()
            stop.set()

        print("running... Enter stops the episode", flush=True)
        threading.Thread(target=wait_for_enter, daemon=True).start()
        return stop

    def judge(self, episode: int, result: EpisodeResult) -> tuple[str, str]:
        while True:
            answer = self._ask(f"episode {episode + 1} stopped ({result.stop_reason}, {result.duration_s:.1f} s): "
                               "success or failure? [s/f] ").lower()
            if answer in ("s", "f", "success", "failure"):
                outcome = "success" if answer.startswith("s") else "failure"
                return outcome, self._ask("note (optional): ")


class DryRunRobot:
    """The ManiSkill sim arm through `deploy.sim.dry_run.DryRunLoop` (same runner, executor and safety code as the
    ROS graph): a trial session without hardware."""

    kind = "dry-run"

    def __init__(self, engine_dir: str | Path, task: str, control_hz: float = 20.0, num_executed: int = 5,
                 seed: int = 0):
        from deploy.robot.runtime import load_engine
        from deploy.sim.arm import SimArm, SimArmConfig
        from deploy.sim.dry_run import DryRunLoop
        from deploy.sim.eval import default_limits
        from training.envs.factory import control_mode_for

        engine = load_engine(engine_dir)
        size = int(engine.spec["image_size"])
        self.arm = SimArm(SimArmConfig(task=task, image_size=(size, size),
                                       control_mode=control_mode_for(engine.spec.get("action_space"))))
        # a 15 Hz camera: the low end of a real one's rate, and a third of the renders of 30 Hz on a CPU
        self.loop = DryRunLoop(engine, self.arm, default_limits(engine), control_hz=control_hz,
                               num_executed=num_executed, camera_hz=15.0)
        self.control_hz, self.seed = control_hz, seed
        self.fps = min(self.loop.camera_hz, control_hz)  # frames come at control ticks

    def run_episode(self, episode: int, instruction: str, time_limit_s: float,
                    stop_requested: threading.Event) -> EpisodeResult:
        steps = max(1, int(round(time_limit_s * self.control_hz)))
        r = self.loop.episode(self.seed + episode, steps, instruction=instruction,
                              stop=lambda _: stop_requested.is_set())
        reason = "task_done" if r.success else "operator" if stop_requested.is_set() else "time_limit"
        return EpisodeResult(r.steps / self.control_hz, reason, r.frames,
                             np.stack(r.actions).astype(np.float32) if r.actions else None, r.success)

    def close(self) -> None:
        self.arm.close()


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path | None:
    """RGB frames -> an .mp4 (OpenCV, mp4v); None when there are no frames."""
    if not frames:
        return None
    import cv2

    h, w = frames[0].shape[:2]
    tmp = path.with_name(f".{path.name}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), max(fps, 1.0), (w, h))
    if not writer.isOpened():
        raise TrialError(f"OpenCV cannot write {path}")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    os.replace(tmp, path)
    return path


class TrialSession:
    def __init__(self, robot: Robot, operator: Operator, trial_log: TrialLog, engine_dir: str | Path, task: str,
                 instruction: str):
        if not instruction.strip():
            raise TrialError("give the instruction the policy is run with (--instruction)")
        self.robot, self.operator, self.log = robot, operator, trial_log
        self.engine_dir, self.engine_sha = str(engine_dir), engine_hash(engine_dir)
        self.task, self.instruction = task, instruction
        self.media = trial_log.path.parent / f"{trial_log.path.stem}_media"

    def completed(self) -> int:
        """Episodes this session (engine, task, instruction) already has in the log."""
        return sum(r.engine_sha256 == self.engine_sha and r.task == self.task and r.instruction == self.instruction
                   for r in self.log.read())

    def run(self, episodes: int, time_limit_s: float, resume: bool = False) -> list[TrialRecord]:
        if resume:
            message = self.log.repair()  # before counting: a torn record is not an episode done
            if message:
                log.warning(message)
        done = self.completed()
        if self.log.read() and not resume:
            raise TrialError(f"{self.log.path} already holds trials: pass --resume to continue this session "
                             f"({done} of its episodes are done), or write to another --out")
        self.media.mkdir(parents=True, exist_ok=True)
        records = []
        for ep in range(done, episodes):
            if not self.operator.ready(ep, episodes):
                break
            start = datetime.now(timezone.utc).isoformat(timespec="seconds")
            result = self.robot.run_episode(ep, self.instruction, time_limit_s, self.operator.watch())
            outcome, note = self.operator.judge(ep, result)
            stem = f"{self.task.replace('/', '_')}_ep{ep:03d}"
            video = write_video(self.media / f"{stem}.mp4", result.frames, self.robot.fps)
            actions = None
            if result.actions is not None:
                actions = self.media / f"{stem}_actions.npy"
                np.save(actions, result.actions, allow_pickle=False)
            rel = lambda p: str(p.relative_to(self.log.path.parent)) if p is not None else None  # noqa: E731
            record = TrialRecord(self.engine_sha, self.task, self.instruction, ep, start, round(result.duration_s, 3),
                                 outcome, note, result.stop_reason, rel(video), rel(actions), self.robot.kind,
                                 self.engine_dir, result.sim_success)
            self.log.append(record)
            records.append(record)
            log.info("episode %d: %s (%s, %.1f s)", ep, outcome, result.stop_reason, result.duration_s)
        return records
