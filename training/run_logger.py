"""Metrics to a JSONL file beside the checkpoints (always) and to Weights & Biases (when installed).

W&B runs online only when WANDB_API_KEY is set (or WANDB_MODE says so); otherwise offline, into the run
directory, so training never waits on the network. `wandb sync RUN/wandb/offline-run-*` uploads later.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class RunLogger:
    def __init__(self, out: Path, config: dict[str, Any], name: str, use_wandb: bool = True,
                 resume: bool = False):
        self.path = Path(out) / "metrics.jsonl"
        self.wandb = None
        if not use_wandb:
            return
        try:
            import wandb
        except ImportError:
            print("run logger: wandb is not installed (pip install 'pirl[log]'); metrics go to metrics.jsonl only")
            return
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        run_id_file = Path(out) / "wandb_run_id"
        run_id = run_id_file.read_text().strip() if resume and run_id_file.exists() else None
        self.wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "pirl"), name=name, dir=str(out),
                                config=config, mode=mode, id=run_id, resume="allow" if run_id else None)
        run_id_file.write_text(self.wandb.id)

    def log(self, record: dict[str, Any], step: int) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        if self.wandb is not None:
            self.wandb.summary.update(values)

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
