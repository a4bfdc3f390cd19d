"""The manifest CSV format of a paired data set, read with every cell checked.

One row per (image, IR) pair, UTF-8, with a header. Columns:

- ``image`` -- the photo (any format Pillow reads);
- ``ir`` -- the impulse response (WAV/FLAC, any rate and channel count);
- ``split`` -- ``train``, ``val`` or ``test``;
- ``scene`` -- a name for the space (pairs of one space share it; used for grouping);
- optional ``depth`` -- a ground-truth depth map PNG (8- or 16-bit greyscale; read as
  value / 255 or value / 65535, so 0..1; with ``depth_scale_m`` (metres per unit) and
  ``depth_max_m`` columns, as ``i2r synth`` writes, as normalised log-depth instead);
- optional ``t60_s`` -- a ground-truth T60 in seconds.

When an optional column is present every row must fill it. Other columns are kept as they are.
Relative paths are resolved against the CSV's folder; a path that leads outside that folder
(``../``, an absolute path elsewhere) is refused unless ``allow_outside`` is set, so a downloaded
manifest cannot point the loader at arbitrary files.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from i2r.errors import UserError

MANIFEST_NAME = "manifest.csv"  # the file a data set folder holds
REQUIRED_COLUMNS = ("image", "ir", "split", "scene")
PATH_COLUMNS = ("image", "ir", "depth")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PairRecord:
    """One (image, IR) pair as found in a data set, before any file is opened."""

    image_path: Path
    ir_path: Path
    split: str
    scene: str
    depth_path: Path | None = None
    t60_s: float | None = None
    extra: dict = field(default_factory=dict, compare=False)


def resolve_cell(cell: str, root: Path, allow_outside: bool, where: str, column: str) -> Path:
    """The absolute, symlink-free path a CSV cell names, relative cells taken from ``root`` (the
    CSV's folder). Unless ``allow_outside``, it must stay inside ``root``: a CSV from elsewhere must
    not make a command read, copy or publish other files of the disk. Raises :class:`UserError`
    naming ``where`` (file and line) and ``column``."""
    if "\x00" in cell:
        raise UserError(f"{where}, column {column}: a path cannot contain a NUL character")
    path = Path(cell)
    resolved = (path if path.is_absolute() else root / path).resolve()
    if not allow_outside and not resolved.is_relative_to(root.resolve()):
        raise UserError(f"{where}, column {column}: {cell!r} leads outside the CSV's folder {root}")
    return resolved


def _t60(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise UserError(f"{where}, column t60_s: {cell!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{where}, column t60_s: {cell!r} is not a positive time in seconds")
    return value


def _record(row: dict, root: Path, allow_outside: bool, where: str) -> PairRecord:
    for column, cell in row.items():
        if column in REQUIRED_COLUMNS or column in ("depth", "t60_s"):
            if cell is None or not cell.strip():
                raise UserError(f"{where}, column {column}: empty cell")
    split = row["split"].strip()
    if split not in SPLITS:
        raise UserError(f"{where}, column split: {split!r} is not one of {', '.join(SPLITS)}")
    paths = {c: resolve_cell(row[c].strip(), root, allow_outside, where, c) for c in PATH_COLUMNS if c in row}
    extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS and k not in ("depth", "t60_s")}
    return PairRecord(
        image_path=paths["image"],
        ir_path=paths["ir"],
        split=split,
        scene=row["scene"].strip(),
        depth_path=paths.get("depth"),
        t60_s=_t60(row["t60_s"].strip(), where) if "t60_s" in row else None,
        extra=extra,
    )


def read_manifest(path: str | os.PathLike, allow_outside: bool = False) -> list[PairRecord]:
    """Read and validate a manifest CSV; returns every row as a :class:`PairRecord` (all splits).

    Raises :class:`UserError` naming the file, line and column for a missing column, an empty
    cell, an unknown split, a bad ``t60_s`` or a path leading outside the CSV's folder, and naming
    both lines for a pair listed twice: in one split it would weigh twice in training and count
    twice in an evaluation; in two, a test pair would be one the model trained on. Whether the
    files exist and decode is checked later, by the data set, which skips bad ones.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such manifest file")
    root = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise UserError(f"{path} line 1: missing column(s) {', '.join(missing)} (has: {', '.join(header)})")
            records, first = [], {}
            for row in reader:
                where = f"{path} line {reader.line_num}"
                if None in row:
                    raise UserError(f"{where}: more cells than the header has columns")
                record = _record(row, root, allow_outside, where)
                pair = (record.image_path, record.ir_path)
                if pair in first:
                    line, split = first[pair]
                    if split == record.split:
                        raise UserError(f"{where}: repeats the pair of line {line} (same image, IR and split)")
                    raise UserError(f"{where}: the pair of line {line} ({split}) again, in {record.split}: the "
                                    f"splits must not share a pair")
                first[pair] = reader.line_num, record.split
                records.append(record)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise UserError(f"{path}: malformed CSV ({exc})") from None
    return records
