"""The original Image2Reverb folder layout (pix2pix style): ``<split>_A/`` images, ``<split>_B/`` IRs.

Both folders are sorted by file name and paired by position, as the original code did, so the
two folders must hold the same number of files. Names like ``<space>_<n>_label.jpg`` /
``<space>_<n>_img.wav`` were used; the scene of a pair is the image name up to its first
underscore (the whole stem when it has none).
"""

from __future__ import annotations

import os
from pathlib import Path

from i2r.audio import AUDIO_EXTENSIONS
from i2r.data.images import IMAGE_EXTENSIONS
from i2r.data.manifest import SPLITS, PairRecord
from i2r.errors import UserError


def is_pix2pix(root: Path) -> bool:
    """True when ``root`` holds at least one ``<split>_A`` folder."""
    return any((root / f"{split}_A").is_dir() for split in SPLITS)


def _files(folder: Path, extensions) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def read_pix2pix(root: str | os.PathLike, split: str) -> list[PairRecord]:
    """The pairs of ``split`` in a pix2pix layout under ``root``, paired by sorted position.

    Raises :class:`UserError` when a folder of the split is missing or the counts differ.
    """
    root = Path(root)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    images_dir, irs_dir = root / f"{split}_A", root / f"{split}_B"
    for folder in (images_dir, irs_dir):
        if not folder.is_dir():
            raise UserError(f"{root}: pix2pix layout without a {folder.name}/ folder")
    images, irs = _files(images_dir, IMAGE_EXTENSIONS), _files(irs_dir, AUDIO_EXTENSIONS)
    if len(images) != len(irs):
        raise UserError(
            f"{root}: {images_dir.name}/ holds {len(images)} images but {irs_dir.name}/ holds {len(irs)} "
            "audio files; pix2pix pairs them by sorted position, so the counts must match"
        )
    return [
        PairRecord(image_path=image, ir_path=ir, split=split, scene=image.stem.split("_")[0])
        for image, ir in zip(images, irs)
    ]
