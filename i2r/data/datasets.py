"""``PairedDataset``: the torch data set of (image, IR) pairs in either on-disk format.

Formats (detected from ``source``):
- a folder holding ``manifest.csv``, or a ``.csv`` file -> the manifest format (:mod:`.manifest`);
- a folder holding ``train_A/`` (or ``val_A/``, ``test_A/``) -> the pix2pix layout (:mod:`.pix2pix`).

Every file of the split is opened once when the data set is built: corrupt or missing images
and audio, tiny images and silent IRs are reported on stderr, listed in ``skipped`` as
``(path, reason)`` and left out, so a long run never stops on one bad file.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

from i2r.audio import FULL_RESOLUTION, ir_to_logspec, load_ir
from i2r.data.images import LOG_DEPTH_NEAR_M, depth_array, load_depth, load_image, open_image
from i2r.data.manifest import MANIFEST_NAME, SPLITS, PairRecord, read_manifest
from i2r.data.pix2pix import is_pix2pix, read_pix2pix
from i2r.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 224  # the ResNet-50 input size of the paper's encoder
CACHE_BYTES = 512 * 2**20
"""Decoded items of a split are kept in memory when all of them fit in this many bytes.

Decoding one pair (PNG image and depth map, WAV, STFT) costs 50-100 ms on a CPU core, as much as
a training step of the small preset at batch 8 spends on the network: at the demo's sizes
(64 px images, 128x128 spectrograms: 0.13 MB a pair) a thousand pairs fit easily, while the
paper's sizes (224 px, 512x512: 1.9 MB a pair) on a real data set do not, and stay uncached.
"""


def discover_pairs(source: str | os.PathLike, split: str, allow_outside: bool = False) -> list[PairRecord]:
    """The pairs of ``split`` in ``source`` (manifest CSV, folder with one, or pix2pix folder).

    Raises :class:`UserError` when ``source`` is neither format or a manifest cell is invalid.
    """
    source = Path(source)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if source.is_file() and source.suffix.lower() == ".csv":
        records = read_manifest(source, allow_outside)
    elif (source / MANIFEST_NAME).is_file():
        records = read_manifest(source / MANIFEST_NAME, allow_outside)
    elif source.is_dir() and is_pix2pix(source):
        return read_pix2pix(source, split)
    elif not source.exists():
        raise UserError(f"{source}: no such data set")
    else:
        raise UserError(f"{source}: not a data set (expected a {MANIFEST_NAME} or pix2pix train_A/ + train_B/ folders)")
    return [r for r in records if r.split == split]


def _check_files(records: list[PairRecord], image_size: int) -> tuple[list[PairRecord], list[tuple[str, str]]]:
    """Open every image, depth map and IR once; split records into usable ones and (path, reason)."""
    from tqdm import tqdm

    # keyed by role too: a file that opens as an image is no IR (a manifest may cross the columns)
    verdict: dict[tuple[str, Path], str] = {}

    def problem(role: str, path: Path, check) -> str:
        if (role, path) not in verdict:
            try:
                check(path)
                verdict[role, path] = ""
            except UserError as exc:
                verdict[role, path] = str(exc).removeprefix(f"{path}: ") or "unreadable"
        return verdict[role, path]

    usable, skipped = [], {}
    for record in tqdm(records, desc="checking files", unit="pair", leave=False, disable=len(records) < 200):
        checks = [("image", record.image_path, lambda p: open_image(p, draft_size=image_size)),
                  ("ir", record.ir_path, load_ir)]
        if record.depth_path is not None:
            checks.append(("depth", record.depth_path, lambda p: depth_array(open_image(p), p)))
        bad = {str(path): reason for role, path, check in checks if (reason := problem(role, path, check))}
        if bad:
            skipped.update(bad)  # a file shared by many pairs is listed once
        else:
            usable.append(record)
    return usable, list(skipped.items())


class PairedDataset(torch.utils.data.Dataset):
    """A torch map-style data set of (image, IR) pairs; see the module docstring for formats.

    ``dataset[i]`` is a dict:
    ``image`` float32 ``(3, S, S)`` in [0, 1] (centre-cropped, bicubic-resized to ``image_size``);
    ``logspec`` float32 ``(1, R, R)``, the raw log|X| of :func:`i2r.audio.ir_to_logspec` at
    ``resolution`` (not normalised: the trainer applies its :class:`i2r.audio.SpectrogramNorm`);
    ``ir`` float32 ``(130977,)`` (22,050 Hz mono, 5.94 s, peak 1); ``depth`` float32
    ``(1, S, S)`` in [0, 1] when the data set has depth maps (normalised log-depth when the
    manifest has ``depth_scale_m`` and ``depth_max_m`` columns, see
    :func:`i2r.data.images.metric_depth_to_unit`; else the PNG value / 255 or / 65535); ``t60_s`` when it has them;
    ``scene``, ``image_path``, ``ir_path`` as strings.

    ``skipped`` lists ``(path, reason)`` for every bad file left out (a pair is left out when
    any of its files is bad); ``records`` the usable pairs. With ``check_files=False`` the
    files are not opened up front (faster start; a bad file then raises in ``__getitem__``).
    ``limit`` > 0 keeps only the split's first ``limit`` pairs (in manifest order), checked or not.

    ``cache``: keep each decoded image, depth map and spectrogram in memory after its first use
    (the IR itself is re-read: 0.5 MB a pair, and cheap to decode); ``None`` (default) caches
    when the whole split fits in :data:`CACHE_BYTES`. Only the main process caches: DataLoader
    workers are recreated every epoch, so what they cached would be thrown away.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        split: str = "train",
        resolution: int = FULL_RESOLUTION,
        image_size: int = DEFAULT_IMAGE_SIZE,
        *,
        allow_outside: bool = False,
        check_files: bool = True,
        cache: bool | None = None,
        limit: int = 0,
    ):
        super().__init__()
        self.source = Path(source)
        self.split = split
        self.resolution = resolution
        self.image_size = image_size
        if resolution <= 0 or FULL_RESOLUTION % resolution:
            raise ValueError(f"resolution must divide {FULL_RESOLUTION}, got {resolution}")
        if limit < 0:
            raise ValueError(f"limit must be 0 (all pairs) or more, got {limit}")
        records = discover_pairs(source, split, allow_outside)
        if limit:
            records = records[:limit]
        self.skipped: list[tuple[str, str]] = []
        if check_files:
            records, self.skipped = _check_files(records, image_size)
            if self.skipped:
                log.warning("%s (%s): skipped %d bad file(s):\n%s", source, split, len(self.skipped),
                            "\n".join(f"  {path}: {reason}" for path, reason in self.skipped))
        for record in records:
            if record.depth_path is not None:
                _depth_units(record)  # a bad unit cell fails here, not mid-training
        self.records = records
        if cache is None:
            cache = len(records) * _pair_bytes(resolution, image_size) <= CACHE_BYTES
        self._cache: dict[int, dict] | None = {} if cache else None

    def iter_logspecs(self):
        """Yield the raw ``(1, R, R)`` log-spectrogram of each distinct IR once: what
        :func:`i2r.audio.fit_spectrogram_norm` reads (every IR weighs the same, however many
        photos it is paired with). Images are decoded only when the data set caches them (they
        will be needed anyway)."""
        seen = set()
        for index, record in enumerate(self.records):
            if record.ir_path not in seen:
                seen.add(record.ir_path)
                if self._cache is not None:
                    yield self._decoded(index, None)["logspec"]
                else:
                    yield ir_to_logspec(load_ir(record.ir_path), self.resolution).unsqueeze(0)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        if not -len(self.records) <= index < len(self.records):
            raise IndexError(f"index {index} out of range for {len(self.records)} pairs")
        index %= len(self.records)
        record = self.records[index]
        ir = torch.from_numpy(load_ir(record.ir_path))
        item = {name: tensor.clone() for name, tensor in self._decoded(index, ir).items()}
        item |= {"ir": ir, "scene": record.scene, "image_path": str(record.image_path),
                 "ir_path": str(record.ir_path)}
        if record.t60_s is not None:
            item["t60_s"] = record.t60_s
        return item

    def image(self, index: int) -> torch.Tensor:
        """The image of pair ``index`` alone (no IR or spectrogram decoded): ``(3, S, S)`` float32
        in [0, 1] as in ``__getitem__``."""
        return load_image(self.records[index].image_path, self.image_size)

    def depth(self, index: int) -> torch.Tensor | None:
        """The true depth map of pair ``index`` alone (no image, IR or spectrogram decoded):
        ``(1, S, S)`` float32 in [0, 1] as in ``__getitem__``, or None without depth maps."""
        record = self.records[index]
        if record.depth_path is None:
            return None
        return load_depth(record.depth_path, self.image_size, *_depth_units(record))

    def _decoded(self, index: int, ir) -> dict:
        """``image``, ``logspec`` (and ``depth``) of pair ``index``, from the cache when there
        (``ir``: the decoded IR when the caller has it, else ``None``)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        record = self.records[index]
        ir = torch.from_numpy(load_ir(record.ir_path)) if ir is None else ir
        decoded = {"image": self.image(index),
                   "logspec": ir_to_logspec(ir, self.resolution).unsqueeze(0)}
        if record.depth_path is not None:
            decoded["depth"] = self.depth(index)
        if self._cache is not None and torch.utils.data.get_worker_info() is None:
            self._cache[index] = decoded
        return decoded


def _depth_units(record: PairRecord) -> tuple[float | None, float | None]:
    """``(metres per PNG unit, depth of the largest value in metres)`` from a manifest row's
    ``depth_scale_m`` and ``depth_max_m`` cells, or ``(None, None)`` when it has no such cells."""
    cells = (record.extra.get("depth_scale_m"), record.extra.get("depth_max_m"))
    if not all(cell and cell.strip() for cell in cells):
        return None, None
    try:
        scale, maximum = (float(cell) for cell in cells)
    except ValueError:
        raise UserError(f"{record.depth_path}: depth_scale_m / depth_max_m {cells} are not numbers") from None
    if not (math.isfinite(scale) and math.isfinite(maximum) and scale > 0 and maximum > LOG_DEPTH_NEAR_M):
        raise UserError(f"{record.depth_path}: need depth_scale_m > 0 and depth_max_m > {LOG_DEPTH_NEAR_M} m, "
                        f"got {cells}")
    return scale, maximum


def _pair_bytes(resolution: int, image_size: int) -> int:
    """Bytes of one decoded pair in memory: float32 image (3 channels), depth map and spectrogram."""
    return 4 * (4 * image_size**2 + resolution**2)
