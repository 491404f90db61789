"""The policy node's logic without ROS: the latest camera images, joint state and instruction in, one action
chunk out - never from stale inputs.

    runner = PolicyRunner(engine, state_joints=("panda_joint1", ...), max_age_s=0.2)
    runner.set_instruction("push the cube to the goal")
    runner.on_image("base_camera", rgb, stamp)         # any resolution; resized to the engine's
    runner.on_joint_state(names, positions, stamp)     # names in any order, mapped to the engine's
    result = runner.step(now)                          # Chunk, or raises NoChunk (StaleInput, RefusedChunk)

Images are undistorted with camera.yaml (`undistort`, deploy.robot.camera_io.Undistorter: the sim camera renders
a pinhole image through the same K), then resized to the engine's square size with INTER_AREA, the same mapping
the simulator's camera got from camera.yaml (K scaled per axis), so what the policy sees on the robot matches
what it saw in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.observation import ObservationError
from core.tokenizer import state_prompts
from deploy.robot.runtime import Engine, EngineError


class NoChunk(RuntimeError):
    """No chunk this tick: the arm holds (its executor runs out its current chunk, then holds position)."""


class StaleInput(NoChunk):
    """An input is missing or older than the allowed age: no chunk is computed and the arm holds."""


class RefusedChunk(NoChunk):
    """The engine refused the inputs (a NaN joint reading, a state far outside training) or produced a
    non-finite chunk: nothing is sent and the arm holds."""


class InputError(ValueError):
    """An input that can never be used as given (unknown joints, an instruction that does not fit)."""


@dataclass(frozen=True)
class Chunk:
    actions: np.ndarray  # float32 (H, A) in the engine's action units
    stamp: float  # the observation's time, its newest input: action i is for stamp + i / control_hz
    latency_s: float  # inference wall time
    instruction: str


class PolicyRunner:
    def __init__(self, engine: Engine, state_joints: Sequence[str], max_age_s: float = 0.25,
                 undistort: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None):
        """undistort: per camera, the map from a raw frame to the pinhole image (Undistorter.from_spec)."""
        if len(state_joints) != int(engine.spec["state_dim"]):
            raise InputError(f"the engine's state has {engine.spec['state_dim']} values but {len(state_joints)} "
                             f"state joints are configured ({list(state_joints)}); list the engine's state "
                             "joints in order in the arm config (state_joints)")
        self.engine, self.state_joints, self.max_age_s = engine, tuple(state_joints), max_age_s
        self.cameras = engine.cameras
        self.size = int(engine.spec["image_size"])
        self._images: dict[str, tuple[np.ndarray, float]] = {}
        self._joints: tuple[np.ndarray, float] | None = None
        self.instruction: str | None = None
        self.undistort = dict(undistort or {})

    def set_instruction(self, text: str) -> None:
        """Keep `text` as the instruction; refuse one the tokenizer would truncate (the previous stays)."""
        text = text.strip()
        if not text:
            raise InputError("the instruction is empty")
        limit = int(self.engine.spec["max_token_len"])
        if self.engine.spec.get("state_token", True):
            n = len(self.engine.tokenizer.encode(text))
        else:  # pi0.5: the prompt also carries the state; with zeros for it this is an estimate (the
            # runtime still refuses a prompt over the limit by name)
            zeros = np.zeros((1, int(self.engine.spec["state_dim_padded"])))
            n = len(self.engine.tokenizer.encode_prompt(state_prompts([text], zeros)[0]))
        if n > limit:
            raise InputError(f"the instruction has {n} tokens, the engine takes at most {limit}: shorten it "
                             f"(kept the previous instruction {self.instruction!r})")
        self.instruction = text

    def on_image(self, camera: str, rgb: np.ndarray, stamp: float) -> None:
        if camera not in self.cameras:
            raise InputError(f"camera {camera!r} is not one of the engine's cameras {list(self.cameras)}")
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"camera {camera!r}: expected RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
        if camera in self.undistort:
            try:
                rgb = self.undistort[camera](rgb)
            except RuntimeError as e:  # CameraError: a frame camera.yaml does not describe
                raise InputError(f"camera {camera!r}: {e}") from e
        if rgb.shape[:2] != (self.size, self.size):
            import cv2

            rgb = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        self._images[camera] = (rgb, stamp)

    def on_joint_state(self, names: Sequence[str], positions: Sequence[float] | np.ndarray, stamp: float) -> None:
        """Positions of named joints; every state joint must be among them (extra joints are ignored)."""
        index = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.state_joints if j not in index]
        if missing:
            raise InputError(f"JointState lacks the engine's state joints {missing} (got {list(names)}); set "
                             "state_joints in the arm config to the robot's joint names")
        pos = np.asarray(positions, np.float32)
        self._joints = (pos[[index[j] for j in self.state_joints]], stamp)

    def check(self, now: float) -> None:
        """Raise StaleInput unless every input is present and younger than max_age_s."""
        if self.instruction is None:
            raise StaleInput("no instruction yet (publish one on the instruction topic)")
        ages = {f"camera {c}": now - self._images[c][1] for c in self.cameras if c in self._images}
        missing = [c for c in self.cameras if c not in self._images]
        if missing:
            raise StaleInput(f"no image yet from camera(s) {missing}")
        if self._joints is None:
            raise StaleInput("no joint state yet")
        ages["joint state"] = now - self._joints[1]
        old = {k: round(v, 3) for k, v in ages.items() if v > self.max_age_s}
        if old:
            raise StaleInput(f"inputs older than {self.max_age_s} s: {old} (seconds)")

    def observation(self) -> dict:
        """The engine's observation batch of one from the latest inputs."""
        assert self._joints is not None and self.instruction is not None
        return {"images": {c: self._images[c][0][None] for c in self.cameras},
                "state": self._joints[0][None], "instruction": [self.instruction]}

    def step(self, now: float, guide: tuple[np.ndarray, np.ndarray] | None = None) -> Chunk:
        """A chunk from the latest inputs; `guide` (committed actions (H, A), weights (H,)) for real-time
        chunking (`ChunkExecutor.guide`)."""
        self.check(now)
        # The observation's time is that of its newest input (the joint state, read at the control rate): action
        # 0 continues from that state, as in training, where images and state are taken at the decision point.
        # Stamping with the oldest input (a camera frame up to max_age_s old) made the executor skip that much of
        # every chunk, and the arm held for part of each cycle with a slow camera.
        stamp = max([self._joints[1], *(self._images[c][1] for c in self.cameras)])  # type: ignore[index]
        t0 = time.perf_counter()
        try:
            batch_guide = None if guide is None else (guide[0][None], guide[1][None])
            actions = self.engine.infer(self.observation(), guide=batch_guide)[0]
        except (ObservationError, EngineError) as e:
            raise RefusedChunk(f"{type(e).__name__}: {e}") from e
        return Chunk(actions, stamp, time.perf_counter() - t0, self.instruction or "")
