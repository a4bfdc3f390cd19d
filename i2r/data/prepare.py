"""``i2r prepare``: raw paired data (any image size, any IR format) -> a ready data set.

The raw input is either format :class:`~i2r.data.datasets.PairedDataset` reads -- a manifest CSV
(``image, ir, split, scene`` [+ ``depth``, ``t60_s``, anything else]) or a pix2pix folder
(``train_A/`` + ``train_B/`` ...) -- holding original files: photos of any size, 360-degree
equirectangular panoramas, WAV/FLAC IRs at any rate, mono, stereo or B-format.

The output ``OUT`` holds IRs as 22,050 Hz mono float32 WAVs of exactly 5.94 s (peak 1), images as
centre-cropped ``S x S`` PNGs (or, with ``equirect_views`` K, K rectilinear views per panorama at
yaws 0, 360/K, ... -- Fig. 7 of the paper), depth maps as 16-bit PNGs processed like their
images, and ``OUT/manifest.csv`` (also for the pix2pix layout, where it keeps the scene names).
Each file is written atomically and an existing one is kept, so an interrupted run resumes
where it stopped; ``OUT/prepare_config.json`` refuses a resume with different settings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from i2r.audio import SAMPLE_RATE, load_ir
from i2r.data.images import center_crop_resize, depth_array, open_image
from i2r.data.manifest import MANIFEST_NAME, SPLITS, PairRecord, read_manifest
from i2r.data.panorama import rectilinear_view, view_yaws
from i2r.data.pix2pix import is_pix2pix, read_pix2pix
from i2r.errors import UserError
from i2r.files import atomic_open, atomic_write_bytes, atomic_write_text

LAYOUTS = ("manifest", "pix2pix")


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of one ``i2r prepare`` run (saved as ``OUT/prepare_config.json``)."""

    raw: str
    out: str
    image_size: int = 256
    layout: str = "manifest"
    equirect_views: int = 0  # 0: images are ordinary photos; K > 0: cut K views per panorama
    fov_deg: float = 90.0
    pitch_deg: float = 0.0
    allow_outside: bool = False

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        # the paper's model reads 224 px; a side far beyond any preset is a typo that would hang
        if not 16 <= self.image_size <= 4096:
            raise UserError(f"--image-size must be 16 to 4096 px, got {self.image_size}")
        if not 0 <= self.equirect_views <= 360:
            raise UserError(f"--equirect-views must be 0 to 360 (views 1 degree apart), got {self.equirect_views}")
        if not 0.0 < self.fov_deg < 180.0:
            raise UserError(f"--fov must lie between 0 and 180 degrees, got {self.fov_deg}")
        if not -90.0 <= self.pitch_deg <= 90.0:
            raise UserError(f"--pitch must lie between -90 and 90 degrees, got {self.pitch_deg}")

    def settings(self) -> dict:
        """What decides the output files' content (paths excluded)."""
        return {k: v for k, v in asdict(self).items() if k not in ("raw", "out")}


@dataclass
class PrepareSummary:
    """What a run did: pairs in the manifest, files written now vs kept from an earlier run, bad files."""

    manifest: str
    pairs: int = 0
    written: int = 0
    reused: int = 0
    skipped_pairs: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)


def _raw_records(config: PrepareConfig) -> list[PairRecord]:
    raw = Path(config.raw)
    if raw.is_file() and raw.suffix.lower() == ".csv":
        return read_manifest(raw, config.allow_outside)
    if (raw / MANIFEST_NAME).is_file():
        return read_manifest(raw / MANIFEST_NAME, config.allow_outside)
    if raw.is_dir() and is_pix2pix(raw):
        return [r for split in SPLITS if (raw / f"{split}_A").is_dir() for r in read_pix2pix(raw, split)]
    if not raw.exists():
        raise UserError(f"{raw}: no such folder or file")
    raise UserError(f"{raw}: expected a {MANIFEST_NAME} (image, ir, split, scene) or pix2pix train_A/ + train_B/ folders")


def _key(path: Path) -> str:
    """A stable, collision-free file stem for a source file: its stem plus a hash of its full path."""
    return f"{path.stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class _Writer:
    """Writes output files unless they already exist; counts each path once per run as
    written (now) or reused (left by an earlier run)."""

    def __init__(self, summary: PrepareSummary):
        self.summary = summary
        self.seen: set[Path] = set()

    def __call__(self, path: Path, make_bytes=None) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        if path.exists():
            self.summary.reused += 1
            return
        atomic_write_bytes(path, make_bytes())
        self.summary.written += 1


def _views(image: Image.Image, config: PrepareConfig, depth: bool) -> list[tuple[float | None, np.ndarray]]:
    """(yaw or None, array) per output view: K panorama views, or the one centre crop."""
    size = config.image_size
    if not config.equirect_views:
        mode = Image.Resampling.BILINEAR if depth else Image.Resampling.BICUBIC
        return [(None, np.asarray(center_crop_resize(image, size, mode)))]
    array = np.asarray(image)
    return [(yaw, rectilinear_view(array, yaw, config.pitch_deg, config.fov_deg, size)) for yaw in view_yaws(config.equirect_views)]


def _image_views(path: Path, config: PrepareConfig) -> list[tuple[float | None, np.ndarray]]:
    views = _views(open_image(path).convert("RGB"), config, depth=False)
    return [(yaw, np.clip(np.rint(v), 0, 255).astype(np.uint8)) for yaw, v in views]


def _depth_views(path: Path, config: PrepareConfig) -> list[np.ndarray]:
    depth = Image.fromarray(depth_array(open_image(path), path))
    return [np.clip(np.rint(np.asarray(v) * 65535), 0, 65535).astype(np.uint16) for _, v in _views(depth, config, depth=True)]


def _out_names(config: PrepareConfig, record: PairRecord, yaw: float | None) -> dict[str, str]:
    """Output paths (relative to OUT), fixed by the sources alone so that a resumed run finds them.

    pix2pix names start with the scene (no underscores inside, as the reader takes the scene up
    to the first one) and carry both sources' keys: an image paired with several IRs gives
    several pairs, and A/B names agree so sorting pairs them.
    """
    suffix = "" if yaw is None else f"-yaw{int(round(yaw)):03d}"
    if config.layout == "pix2pix":
        scene = re.sub(r"[^A-Za-z0-9.-]+", "-", record.scene)
        stem = f"{scene}_{_key(record.image_path)}{suffix}_{_key(record.ir_path)}"
        names = {"image": f"{record.split}_A/{stem}.png", "ir": f"{record.split}_B/{stem}.wav"}
    else:
        stem = f"{_key(record.image_path)}{suffix}"
        names = {"image": f"images/{stem}.png", "ir": f"irs/{_key(record.ir_path)}.wav"}
    if record.depth_path is not None:
        names["depth"] = f"depth/{stem}.png"
    return names


def _row(record: PairRecord, names: dict[str, str], yaw: float | None) -> dict:
    row = {**names, "split": record.split, "scene": record.scene}
    if record.t60_s is not None:
        row["t60_s"] = repr(record.t60_s)
    row.update(record.extra)
    row["source_image"] = str(record.image_path)
    row["view_yaw_deg"] = "" if yaw is None else f"{yaw:g}"
    return row


def _prepare_pair(record: PairRecord, config: PrepareConfig, write: _Writer, irs: dict) -> list[dict]:
    """Write the files of one raw pair; return its manifest rows. Raises UserError for a bad file.

    When every output file exists already (a resumed run) nothing is decoded.
    """
    out = Path(config.out)
    yaws = view_yaws(config.equirect_views) if config.equirect_views else [None]
    names = [_out_names(config, record, yaw) for yaw in yaws]
    if all((out / name).exists() for views in names for name in views.values()):
        for name in (name for views in names for name in views.values()):
            write(out / name)
        return [_row(record, views, yaw) for views, yaw in zip(names, yaws)]
    if record.ir_path not in irs:
        irs[record.ir_path] = load_ir(record.ir_path)
    ir = irs[record.ir_path]
    views = _image_views(record.image_path, config)
    depths = _depth_views(record.depth_path, config) if record.depth_path is not None else [None] * len(views)
    for (_, view), depth, files in zip(views, depths, names):
        write(out / files["image"], lambda: _png_bytes(view))
        write(out / files["ir"], lambda: _wav_bytes(ir))
        if depth is not None:
            write(out / files["depth"], lambda: _png_bytes(depth))
    return [_row(record, views, yaw) for views, yaw in zip(names, yaws)]


def _wav_bytes(ir: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, ir, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _check_settings(config: PrepareConfig) -> None:
    path = Path(config.out) / "prepare_config.json"
    if path.exists():
        before = json.loads(path.read_text()).get("settings", {})
        changed = {k: (before.get(k), v) for k, v in config.settings().items() if before.get(k) != v}
        if changed:
            what = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise UserError(f"{config.out} was prepared with other settings ({what}); use a new --out")
    atomic_write_text(path, json.dumps({"settings": config.settings(), "raw": str(config.raw)}, indent=2) + "\n")


def _write_manifest(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(["image", "ir", "split", "scene", *(k for row in rows for k in row)]))
    with atomic_open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def prepare_dataset(config: PrepareConfig, progress: bool = True) -> PrepareSummary:
    """Turn ``config.raw`` into a ready data set in ``config.out`` (see the module docstring).

    Bad raw files (corrupt or missing image/audio, silent IR, tiny image) are skipped, with the
    pair they belong to, and listed in the summary's ``bad``. Raises :class:`UserError` only for
    mistakes that concern the whole run (no raw data set, bad CSV cell, changed settings).
    """
    from tqdm import tqdm

    records = _raw_records(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(config)
    summary = PrepareSummary(manifest=str(out / MANIFEST_NAME))
    write, irs, bad_files = _Writer(summary), {}, {}
    rows: list[dict] = []
    for record in tqdm(records, desc="prepare", unit="pair", file=sys.stderr, disable=not progress):
        sources = [p for p in (record.image_path, record.ir_path, record.depth_path) if p is not None]
        if any(p in bad_files for p in sources):
            summary.skipped_pairs += 1
            continue
        try:
            rows.extend(_prepare_pair(record, config, write, irs))
        except UserError as exc:
            message = str(exc)
            culprit = next((p for p in sources if message.startswith(f"{p}:")), record.image_path)
            bad_files[culprit] = message.removeprefix(f"{culprit}: ")
            summary.skipped_pairs += 1
        if len(irs) > 64:  # IRs repeat within a space; keep a bounded memo
            irs.pop(next(iter(irs)))
    summary.bad = [(str(p), reason) for p, reason in bad_files.items()]
    summary.pairs = len(rows)
    _write_manifest(out / MANIFEST_NAME, rows)
    return summary
