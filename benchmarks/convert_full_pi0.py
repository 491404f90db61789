"""Conversion time and peak memory of `pirl-convert` on a full-size pi0 (or pi0.5) with random weights in
LeRobot's key layout (from the shipped key list), float32 as released checkpoints are.

    python benchmarks/convert_full_pi0.py --work /tmp/pi0_full [--kind pi0|pi05] [--dtype float32|bfloat16]

Writes the random source (~16 GB with LeRobot's two lm_heads) tensor by tensor, then runs pirl-convert in a child
process and prints its wall time and peak resident memory (getrusage of the child). Needs ~30 GB of disk.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from training.policy.convert import write_streaming

KEYS = Path(__file__).resolve().parents[1] / "tests/data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--kind", choices=("pi0", "pi05"), default="pi0")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--keep", action="store_true", help="keep the source and the converted checkpoint")
    a = ap.parse_args()
    src, out = a.work / "lerobot", a.work / "pirl"
    shutil.rmtree(a.work, ignore_errors=True)
    src.mkdir(parents=True)
    shapes = {}
    for line in (KEYS / f"lerobot_{a.kind}_keys.txt").read_text().splitlines():
        if not line.startswith("#"):
            key, shape, _ = line.split()
            shapes["model." + key] = (tuple(int(x) for x in shape.split("x")), torch.float32)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    write_streaming(src / "model.safetensors",
                    ((k, torch.randn(s, generator=g) * 0.02) for k, (s, _) in shapes.items()), shapes)
    stats = {f"{f}.{s}": torch.ones(d) for f, d in (("observation.state", 8), ("action", 7))
             for s in ("mean", "std", "q01", "q99")}
    from safetensors.torch import save_file

    save_file(stats, str(src / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    vocab = ["<pad>", "<unk>", "<bos>", "push", "the", "cube"]
    (a.work / "tokenizer.json").write_text(json.dumps({"type": "word", "vocab": vocab}))
    size = (src / "model.safetensors").stat().st_size
    print(f"random {a.kind} source: {size / 1e9:.1f} GB in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "training.policy.convert", str(src), "--out", str(out), "--preset",
                          a.kind, "--dtype", a.dtype, "--tokenizer", str(a.work / "tokenizer.json")],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    print(run.stdout.strip(), run.stderr.strip()[-2000:], sep="\n")
    if run.returncode == 0:
        print(f"| {a.kind} {a.dtype} | source {size / 1e9:.1f} GB | checkpoint "
              f"{(out / 'model.safetensors').stat().st_size / 1e9:.1f} GB | {wall:.0f} s | peak RSS {peak:.2f} GiB |")
    if not a.keep:
        shutil.rmtree(a.work, ignore_errors=True)
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
