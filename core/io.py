"""Atomic file writes: a crash leaves a file either old or new, never torn."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a hidden sibling, then rename it over `path` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """`data` as indented JSON, atomically (evals.json, results.json, config.json)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str))
