"""Cost of one PairedDataset item: decode image + IR, STFT, crop/resize -- raw files vs prepared.

Builds two tiny data sets in a temporary folder from ../shared/data: "raw" (the original photos,
up to 2014 px, and IRs at 44.1-96 kHz, stereo/B-format) and the same after `i2r prepare`
(256 px PNGs, 22,050 Hz mono WAVs). Prints the median CPU time per item (one torch thread) for
each, at both presets' resolutions, and their ratio; plus the construction-time file check.

    .venv/bin/python benchmarks/bench_dataset.py [--repeats N]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from i2r.data.datasets import PairedDataset
from i2r.data.prepare import PrepareConfig, prepare_dataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def raw_manifest(folder: Path) -> Path:
    images = sorted((DATA / "images").glob("*.jpg"))
    irs = sorted(p for p in (DATA / "irs").glob("*.wav"))[: len(images)]
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "ir", "split", "scene"])
        for image, ir in zip(images, irs):
            writer.writerow([image, ir, "train", image.stem])
    return path


def per_item(dataset: PairedDataset, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        for index in range(len(dataset)):
            start = time.process_time()
            dataset[index]
            times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; CPU time, one torch thread")
    with tempfile.TemporaryDirectory() as tmp:
        raw = raw_manifest(Path(tmp))
        start = time.process_time()
        prepare_dataset(PrepareConfig(raw=str(raw), out=f"{tmp}/ready", image_size=256, allow_outside=True), progress=False)
        print(f"i2r prepare: {time.process_time() - start:.2f} s for 5 pairs")
        for resolution, image_size in ((512, 224), (128, 128)):
            start = time.process_time()
            raw_set = PairedDataset(raw, "train", resolution, image_size, allow_outside=True)
            check = time.process_time() - start
            ready_set = PairedDataset(f"{tmp}/ready", "train", resolution, image_size)
            t_raw, t_ready = per_item(raw_set, args.repeats), per_item(ready_set, args.repeats)
            print(f"R={resolution} S={image_size}: raw {t_raw * 1e3:.1f} ms/item, prepared {t_ready * 1e3:.1f} ms/item "
                  f"(x{t_raw / t_ready:.1f}); file check at construction {check / len(raw_set) * 1e3:.1f} ms/pair (raw)")


if __name__ == "__main__":
    main()
