"""File hashing shared by checkpoints (training) and engines (the numpy-only robot runtime)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 in chunks, so a pi0's 13 GB of weights is hashed without being held in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
