"""pirl-serve's memory under its limits: resident memory of the server process idle, after a request at
--max-batch, and after a ~49 MB request (which the client refuses first, and the server closes on unread).

    python benchmarks/serve_memory.py [--preset tiny] [--port 8799]

An untrained policy of the preset is exported to a temporary engine; the server runs as its own process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deploy.export.onnx import export
from deploy.robot.server import DEFAULT_MAX_BATCH, RemoteEngine, RemoteError, pack
from training.policy.checkpoint import save_checkpoint
from training.policy.policy import Policy
from training.policy.presets import get_preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--port", type=int, default=8799)
    a = ap.parse_args()
    cfg = get_preset(a.preset)
    rng = np.random.default_rng(0)
    state_dim, action_dim = min(cfg.state_dim, 8), min(cfg.action_dim, 4)
    policy = Policy.create(cfg, ["push the cube"], rng.standard_normal((64, state_dim)),
                           rng.uniform(-1, 1, (64, cfg.action_horizon, action_dim)), seed=0)
    d = Path(tempfile.mkdtemp())
    export(save_checkpoint(d / "checkpoint", policy), d / "engine")
    server = subprocess.Popen([sys.executable, "-m", "deploy.robot.server", str(d / "engine"), "--port", str(a.port)])

    def rss_mib() -> int:
        return int(Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]) // 1024

    def obs(n: int) -> dict:
        s = cfg.vision.image_size
        return {"images": {c: rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8) for c in cfg.camera_names},
                "state": rng.standard_normal((n, state_dim)).astype(np.float32), "instruction": ["push the cube"] * n}

    try:
        for _ in range(100):
            try:
                client = RemoteEngine(f"ws://127.0.0.1:{a.port}")
                break
            except OSError:
                time.sleep(0.2)
        print(f"| {a.preset} engine, pirl-serve defaults | resident memory |\n| --- | --- |")
        print(f"| idle | {rss_mib()} MiB |")
        t0 = time.perf_counter()
        client.infer(obs(DEFAULT_MAX_BATCH))
        print(f"| after a batch of {DEFAULT_MAX_BATCH} ({len(pack({'obs': obs(DEFAULT_MAX_BATCH)})) / 1e6:.1f} MB, "
              f"{time.perf_counter() - t0:.2f} s) | {rss_mib()} MiB |")
        big = obs(4000)
        size = len(pack({"obs": big}))
        try:
            client.infer(big)
        except RemoteError as e:
            refused = e.code
        client.ws.send(pack({"obs": big}))  # past the client's own check: the server must not read it
        try:
            client.ws.recv(timeout=10)
        except Exception as e:  # noqa: BLE001 - the close is what we expect
            closed = type(e).__name__
        time.sleep(0.5)
        print(f"| after a {size / 1e6:.0f} MB request (client: {refused}; server: {closed}) | {rss_mib()} MiB |")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
