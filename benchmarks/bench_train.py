"""Seconds per training step of `i2r train` (the real trainer), small preset by default, on the CPU.

For each batch size and CPU thread count, trains ``--warmup + --steps`` steps on a generated
paired set (noise photos, exponentially decaying noise IRs; what the step costs does not depend on
what the pictures show) and prints the median of the timed steps' wall-clock seconds as the
trainer logs them (``s_per_step`` in RUN/metrics.csv: data loading, both optimiser steps, AMP
off on CPU), plus the load average before and after, since on a shared machine that moves the
numbers more than anything else. Thread counts run side by side so their ratio is comparable.

    .venv/bin/python benchmarks/bench_train.py                        # small preset, batch 4 and 1
    .venv/bin/python benchmarks/bench_train.py --preset paper --batch-sizes 1 --steps 2
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from i2r.audio import SAMPLE_RATE, save_wav
from i2r.train import TrainConfig, train


def make_pairs(root: Path, n: int, side: int) -> None:
    """``n`` training pairs in the manifest format."""
    rng = np.random.default_rng(0)
    rows = ["image,ir,split,scene"]
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"{i}.png")
        save_wav(root / f"{i}.wav", rng.standard_normal(t.size) * np.exp(-6.9 * t / (0.3 + 0.1 * i)), SAMPLE_RATE)
        rows.append(f"{i}.png,{i}.wav,train,room{i}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def seconds_per_step(data: Path, out: Path, preset: str, batch_size: int, warmup: int, steps: int) -> float:
    """Median ``s_per_step`` of the steps after ``warmup``."""
    train(TrainConfig(data=str(data), out=str(out), preset=preset, batch_size=batch_size, max_steps=warmup + steps,
                      log_every=1, checkpoint_every=10**9))
    with open(out / "metrics.csv", newline="") as handle:
        rows = [float(r["s_per_step"]) for r in csv.DictReader(handle) if r["split"] == "train"]
    return statistics.median(rows[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=("small", "paper"))
    parser.add_argument("--batch-sizes", default="4,1", help="comma-separated (default: 4,1)")
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}", help="comma-separated CPU thread counts")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (median reported)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs; torch {torch.__version__}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_pairs(tmp, n=16, side=256)
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            for threads in [int(t) for t in args.threads.split(",")]:
                torch.set_num_threads(threads)
                run = tmp / f"run-b{batch_size}-t{threads}"
                s = seconds_per_step(tmp, run, args.preset, batch_size, args.warmup, args.steps)
                results[batch_size, threads] = s
                print(f"preset {args.preset}, batch {batch_size}, {threads} thread(s): {s:.2f} s/step "
                      f"({batch_size / s:.2f} examples/s)", flush=True)
    for batch_size in sorted({b for b, _ in results}, reverse=True):
        times = {t: s for (b, t), s in results.items() if b == batch_size}
        if len(times) > 1:
            fewest, most = min(times), max(times)
            print(f"batch {batch_size}: {most} threads / {fewest} thread time ratio = {times[most] / times[fewest]:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
