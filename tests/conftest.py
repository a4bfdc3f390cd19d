"""Shared fixtures: a tiny paired data set and a checkpoint trained on it for two steps.

Both are session-scoped and built once (about 10-20 s on 2 loaded cores), so every end-to-end
test of `train`, `eval`, `report`, `generate`... can share them. Tests must not modify them.
"""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

FS = 22050
N_SAMPLES = 130977  # 5.94 s, the model's IR length
IMAGE_SIZE = 64

# (split, T60 in seconds or None for stationary noise). The T60s differ, so a model that copies
# one IR cannot score zero error; the one noise IR has no decay, so its ground truth is unmeasurable.
TINY_PAIRS = [
    ("train", 0.3), ("train", 0.5), ("train", 0.8), ("train", 1.1), ("train", 1.5), ("train", 2.0),
    ("val", 0.6), ("val", 1.3),
    ("test", 0.4), ("test", 0.9), ("test", 1.7), ("test", None),
]
UNMEASURABLE_STEM = "pair11"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: on 2 shared, loaded cores two OpenMP threads wait
    on each other at every barrier (measured 10-20x slower), and these tests check behaviour, not speed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def decaying_noise(t60_s: float | None, seed: int, n: int = N_SAMPLES) -> np.ndarray:
    """White noise decaying 60 dB in ``t60_s`` over a -100 dB floor; ``None``: stationary noise."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n)
    if t60_s is None:
        return 0.5 * noise / np.abs(noise).max()
    envelope = 10.0 ** (-3.0 * (np.arange(n) / FS) / t60_s)
    ir = noise * envelope + 1e-5 * rng.standard_normal(n)
    return 0.9 * ir / np.abs(ir).max()


def _write_pair(root: Path, index: int, t60_s: float | None) -> dict:
    """A random-coloured 64 px image, a 16-bit depth ramp and a float wav for pair ``index``."""
    rng = np.random.default_rng(100 + index)
    stem = f"pair{index:02d}"
    pixels = (rng.random((IMAGE_SIZE, IMAGE_SIZE, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(root / "images" / f"{stem}.png")
    depth = np.tile(np.linspace(1000, 1000 + 4000 * (index + 1), IMAGE_SIZE, dtype=np.uint16), (IMAGE_SIZE, 1))
    Image.fromarray(depth).save(root / "depth" / f"{stem}.png")
    sf.write(root / "irs" / f"{stem}.wav", decaying_noise(t60_s, index), FS, subtype="FLOAT")
    return {"image": f"images/{stem}.png", "ir": f"irs/{stem}.wav", "depth": f"depth/{stem}.png",
            "scene": stem}


def make_tiny_dataset(root: Path) -> Path:
    """Write the manifest data set of :data:`TINY_PAIRS` into ``root``; returns ``root``."""
    for sub in ("images", "depth", "irs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rows = [{**_write_pair(root, i, t60), "split": split} for i, (split, t60) in enumerate(TINY_PAIRS)]
    # No t60_s column: a manifest must fill it in every row, and the noise pair has no T60.
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "ir", "depth", "split", "scene"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A manifest data set: 6 train, 2 val, 4 test pairs; test pair ``pair11`` is pure noise."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset"))


TINY_TRAIN_ARGS = ["--preset", "small", "--resolution", "32", "--image-size", "64", "--max-steps", "2",
                   "--batch-size", "2"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_dataset, tmp_path_factory) -> Path:
    """``RUN/last.pt`` of ``i2r train`` on :func:`tiny_dataset` for 2 steps (small preset, 32x32 spectrograms)."""
    run = tmp_path_factory.mktemp("tiny_run")
    result = subprocess.run([sys.executable, "-m", "i2r", "train", "--data", str(tiny_dataset), "--out", str(run),
                             *TINY_TRAIN_ARGS], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return run / "last.pt"
