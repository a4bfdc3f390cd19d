"""The t-SNE grid of Image2Reverb's supplementary Fig. 24: images laid out by their IRs' decay.

Pipeline: multiband T60 per IR (T30 per octave band, 125 Hz-4 kHz, ISO 3382-1 via
:func:`i2r.acoustics.analyze`) -> log, standardise -> t-SNE to 2-D (van der Maaten & Hinton 2008;
openTSNE: Barnes-Hut below 10,000 points, FFT gradients above, Linderman et al. 2019; or scikit-learn) ->
exact linear assignment onto a near-square grid (:mod:`i2r.analysis.assignment`) -> a mosaic of
the images, a mosaic coloured by broadband T60 and a CSV of the cells.

Inputs (``RESULTS_DIR``): an eval run folder with ``per_example.csv`` (columns ``image`` and
``ir_generated``, written by ``i2r eval --save-wavs``), or any folder of IRs (``.wav``/``.flac``)
whose images share their stem (``room.wav`` + ``room.png``/``.jpg``/``.jpeg``); an IR without an
image is placed on the grid and drawn as a grey cell, and so is one whose image cannot be read
(counted among the skipped files). Path cells may not point elsewhere on the disk: ``ir_generated``
must lie in the run folder, ``image`` in it or among the images of the data set that the eval read
(its ``metrics.json``); a ``--features`` CSV's images in its own folder or in ``RESULTS_DIR``.

Features: T30 is a ratio-scale quantity spanning 0.1-10 s, and what a listener hears is a relative
change (0.2 s matters at 0.3 s, not at 5 s), so distances are taken on ``log(T30)``; each band is
then standardised (z-score) so that every band weighs the same in t-SNE's distances. A band that
cannot be measured honestly (NaN) is imputed with the mean log-T30 of that IR's measured bands;
an IR with no measured band is dropped and counted.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from i2r.analysis.assignment import GridAssignment, grid_shape, snap_to_grid
from i2r.audio import AUDIO_EXTENSIONS, load_audio, to_mono
from i2r.data.manifest import resolve_cell
from i2r.errors import UserError
from i2r.files import atomic_open, atomic_savefig, atomic_write_text
from i2r.seeds import check_seed

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
BAND_RANGE_HZ = (125.0, 4000.0)
BROADBAND_HZ = (500.0, 1000.0)
FFT_MIN_POINTS = 10_000
ANALYSIS_BATCH = 128  # IRs per analyze() call: 128 x 5.94 s at 22.05 kHz is 134 MB of float64
# A cell is a thumbnail, not a photo: 1024 px is already a megapixel per IR, a 10 x 10 grid of
# them (100 MP) is past Pillow's decompression-bomb limit, and --thumb 100000 would allocate tens
# of gigabytes per cell. The mosaic as a whole is held to that limit too (_check_mosaic_size).
MAX_THUMB_PX = 1024


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class TsneGridConfig:
    """How ``i2r tsne-grid`` runs; saved as ``config.json`` next to its outputs.

    ``perplexity`` is t-SNE's effective neighbour count (clipped to ``(n - 1) / 3`` for small
    sets); ``method`` ``"opentsne"`` (Barnes-Hut below 10,000 points, FFT-interpolated gradients
    above) or ``"sklearn"`` (Barnes-Hut, its own 250 + 750 iterations); ``iterations`` openTSNE's
    optimisation steps after the early-exaggeration phase, which takes half as many (openTSNE's
    defaults are 500 and 250; 250 and 125 halve the time at the same trustworthiness, 0.9965 at
    k = 10 on the benchmark's 4,096 points); ``thumb`` the mosaic cell size in pixels (1-1024);
    ``features_csv`` a table of T30 values that replaces measuring.
    """

    perplexity: float = 30.0
    seed: int = 0
    thumb: int = 32
    method: str = "opentsne"
    # Two threads: on a quiet 2-core machine openTSNE's 4,096-point embedding takes 4.7 s with two
    # and 7.0-7.8 s with one; pass 1 on cores that other work keeps busy (OpenMP threads then wait).
    n_jobs: int = 2
    iterations: int = 250
    features_csv: str | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UserError` for a setting that t-SNE or the renderer would fail on (or run
        for hours with); messages name the ``i2r tsne-grid`` option."""
        if not (isinstance(self.perplexity, numbers.Real) and not isinstance(self.perplexity, bool)
                and math.isfinite(self.perplexity) and self.perplexity > 0):
            raise UserError(f"--perplexity must be a positive number, not {self.perplexity!r}")
        check_seed(self.seed)
        if not (_is_int(self.thumb) and 1 <= self.thumb <= MAX_THUMB_PX):
            raise UserError(f"--thumb must be a whole number of pixels from 1 to {MAX_THUMB_PX}, not {self.thumb!r}")
        if self.method not in ("opentsne", "sklearn"):
            raise UserError(f"--method must be opentsne or sklearn, not {self.method!r}")
        if not (_is_int(self.n_jobs) and self.n_jobs >= 1):
            raise UserError(f"--jobs must be a whole number of at least 1, not {self.n_jobs!r}")
        # openTSNE runs iterations // 2 early-exaggeration steps, and zero of them is an error there.
        if not (_is_int(self.iterations) and self.iterations >= 2):
            raise UserError(f"--iterations must be a whole number of at least 2, not {self.iterations!r}")


@dataclass
class Item:
    """One IR and its image (``image`` is None when the IR has none)."""

    ir: str
    image: str | None


@dataclass
class Features:
    """T30 per band ``t30_s`` ``(n, n_bands)`` (NaN = not measurable) of ``items``."""

    items: list[Item]
    bands_hz: np.ndarray
    t30_s: np.ndarray
    skipped: list[str] = field(default_factory=list)


@dataclass
class TsneGridResult:
    """What a run produced: the kept items, their embedding ``(n, 2)``, grid and T60s."""

    items: list[Item]
    embedding: np.ndarray
    grid: GridAssignment
    t30_s: np.ndarray
    bands_hz: np.ndarray
    t60_s: np.ndarray
    summary: dict


def _cell_path(cell: str, bases: list[Path], roots: list[Path], where: str, column: str,
               also: frozenset = frozenset()) -> str:
    """The file a path cell names, resolved: a relative cell against the first of ``bases`` where
    that file exists (else the first). It must lie inside one of ``roots`` or be one of ``also``
    (resolved paths), so that a CSV from elsewhere cannot put other files of this disk into the
    mosaic. Raises :class:`UserError` naming ``where`` and ``column``."""
    path = Path(cell)
    if "\x00" not in cell and not path.is_absolute():
        path = next((base / path for base in bases if (base / path).exists()), bases[0] / path)
    # Absolute before the containment check, which would otherwise resolve it against each root.
    absolute = str(path.absolute())
    resolved = resolve_cell(absolute, bases[0], True, where, column)  # allow_outside: NUL check only
    if resolved in also:
        return str(resolved)
    for root in roots:
        try:
            return str(resolve_cell(absolute, root, False, where, column))
        except UserError:
            continue
    places = " or ".join(str(root.resolve()) for root in roots)
    raise UserError(f"{where}, column {column}: {cell!r} leads outside {places}"
                    + (" and is not an image of the eval's data set" if also else ""))


def _read_csv_rows(csv_path: Path):
    """``(header, [(line, row)])`` of a UTF-8 CSV; a malformed file or row is a :class:`UserError`."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = []
            for row in reader:
                if None in row or None in row.values():
                    raise UserError(f"{csv_path}, line {reader.line_num}: {len(header)} columns in the header, "
                                    "a different number of cells on this line")
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as exc:
        raise UserError(f"{csv_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise UserError(f"{csv_path}: malformed CSV ({exc})") from None
    return header, rows


def _reject_duplicates(csv_path: Path, keyed: list[tuple[int, str]], column: str) -> None:
    """Each IR once: a repeated one would take two grid cells and weigh twice in t-SNE."""
    first: dict[str, int] = {}
    for line, key in keyed:
        if key in first:
            raise UserError(f"{csv_path}, line {line}: {column} {key!r} repeats line {first[key]}")
        first[key] = line


def _eval_config(run: Path) -> dict:
    """The settings an eval run recorded (``metrics.json``'s ``config``); empty if unreadable."""
    try:
        config = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):  # JSON and UTF-8 errors are ValueErrors
        return {}
    return config if isinstance(config, dict) else {}


def _eval_folder(run: Path, config: dict) -> Path | None:
    """The folder ``i2r eval`` ran in, from its ``--out`` as recorded: it wrote ``ir_generated`` and
    its ``--data`` relative to that folder, which need not be the one tsne-grid runs in."""
    out = config.get("out")
    if not isinstance(out, str) or not out or Path(out).is_absolute() or ".." in Path(out).parts:
        return None
    parts = len(Path(out).parts)
    return run.resolve().parents[parts - 1] if parts else run.resolve()


def _dataset_images(config: dict, bases: list[Path]) -> frozenset:
    """The images of the data set an eval run read, resolved; empty if that data set cannot be
    read. ``i2r eval`` writes these paths, not copies, into per_example.csv, and the data set's own
    reader has already refused manifest paths that leave the data set's folder."""
    from i2r.data.datasets import discover_pairs

    data = config.get("data")
    if not isinstance(data, str) or not data or "\x00" in data:
        return frozenset()
    path = next((base / data for base in bases if (base / data).exists()), None)
    try:
        records = discover_pairs(path, str(config.get("split", "test"))) if path else []
    except (OSError, UserError):
        return frozenset()
    return frozenset(Path(r.image_path).resolve() for r in records)


class _ImageCells:
    """Resolves image cells for a results folder; the eval's data set is read only when a cell
    leads outside ``roots``."""

    def __init__(self, results_dir: Path, bases: list[Path], roots: list[Path]):
        self.results_dir, self.bases, self.roots, self.dataset = results_dir, bases, roots, None

    def __call__(self, cell: str, where: str) -> str:
        try:
            return _cell_path(cell, self.bases, self.roots, where, "image")
        except UserError:
            if self.dataset is None:
                config = _eval_config(self.results_dir)
                folder = _eval_folder(self.results_dir, config)
                self.dataset = _dataset_images(config, [folder, Path(".")] if folder else [Path(".")])
            if not self.dataset:
                raise
        return _cell_path(cell, self.bases, self.roots, where, "image", self.dataset)


def _items_from_csv(csv_path: Path) -> list[Item]:
    header, rows = _read_csv_rows(csv_path)
    missing = {"image", "ir_generated"} - set(header)
    if missing:
        raise UserError(f"{csv_path}: no column {', '.join(sorted(missing))} "
                        "(run `i2r eval ... --save-wavs` to keep the generated IRs)")
    run = csv_path.parent
    folder = _eval_folder(run, _eval_config(run))
    bases = [run] + ([folder] if folder else []) + [Path(".")]
    images = _ImageCells(run, bases, [run])
    items, keyed = [], []
    for line, row in rows:
        where = f"{csv_path}, line {line}"
        if not row["ir_generated"]:
            raise UserError(f"{where}: empty ir_generated")
        ir = _cell_path(row["ir_generated"], bases, [run], where, "ir_generated")
        image = images(row["image"], where) if row["image"] else None
        items.append(Item(ir=ir, image=image))
        keyed.append((line, ir))
    _reject_duplicates(csv_path, keyed, "ir_generated")
    return items


def _items_from_folder(folder: Path) -> list[Item]:
    images = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    irs = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    return [Item(ir=str(p), image=str(images[p.stem]) if p.stem in images else None) for p in irs]


def discover_items(results_dir: str | os.PathLike) -> list[Item]:
    """The (IR, image) pairs of an eval run (``per_example.csv``) or of a folder paired by stem."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (give an eval run or a folder of IRs and images)")
    table = folder / "per_example.csv"
    items = _items_from_csv(table) if table.exists() else _items_from_folder(folder)
    if not items:
        raise UserError(f"{folder}: no IRs found (.wav/.flac, or per_example.csv)")
    return items


def measure_features(items: list[Item], batch: int = ANALYSIS_BATCH) -> Features:
    """T30 per octave band (125 Hz-4 kHz) of each item's IR, ``(n, 6)`` seconds, NaN if unmeasurable.

    IRs are grouped by sample rate and length (read from their headers) and analysed ``batch`` at
    a time, one vectorised :func:`i2r.acoustics.analyze` call each, so memory stays bounded;
    unreadable files are skipped and listed.
    """
    from tqdm import tqdm

    groups, skipped = _group_by_format(items)
    rows: dict[int, np.ndarray] = {}
    bands = None
    chunks = [(fs, members[i:i + batch]) for (fs, _), members in groups.items()
              for i in range(0, len(members), batch)]
    for fs, members in tqdm(chunks, desc="measuring T30", unit="batch", file=sys.stderr, disable=len(chunks) < 2):
        measured = _measure_chunk(items, members, fs, skipped)
        if measured is None:
            continue
        members, centres, values = measured
        bands = centres if bands is None else bands
        if not np.array_equal(centres, bands):
            skipped.extend(f"{items[i].ir}: sample rate {fs} Hz lacks a band of "
                           f"{BAND_RANGE_HZ[0]:g}-{BAND_RANGE_HZ[1]:g} Hz" for i in members)
            continue
        rows.update(zip(members, values))
    kept = sorted(rows)
    if not kept:
        raise UserError("no IR could be analysed: " + "; ".join(skipped[:3]))
    return Features(items=[items[i] for i in kept], bands_hz=np.asarray(bands),
                    t30_s=np.stack([rows[i] for i in kept]), skipped=skipped)


def _group_by_format(items: list[Item]) -> tuple[dict[tuple[int, int], list[int]], list[str]]:
    import soundfile as sf

    groups: dict[tuple[int, int], list[int]] = {}
    skipped = []
    for index, item in enumerate(items):
        try:
            info = sf.info(item.ir)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            skipped.append(f"{item.ir}: not readable as audio ({exc})")
            continue
        groups.setdefault((info.samplerate, info.frames), []).append(index)
    return groups, skipped


def _measure_chunk(items, members, fs, skipped):
    """``(indices read, band centres, T30 (k, n_bands))`` of the octave bands in BAND_RANGE_HZ for
    ``members`` (same rate and length), or None if none could be analysed; failures go to ``skipped``."""
    from i2r.acoustics import analyze

    loaded = {}
    for index in members:
        try:
            loaded[index] = to_mono(load_audio(items[index].ir).samples)[0]
        except UserError as exc:
            skipped.append(str(exc))
    if not loaded:
        return None
    try:
        result = analyze(np.stack(list(loaded.values())), fs, bands="octave")
    except UserError as exc:
        skipped.extend(f"{items[i].ir}: {exc}" for i in loaded)
        return None
    keep = (result.bands_hz >= BAND_RANGE_HZ[0]) & (result.bands_hz <= BAND_RANGE_HZ[1])
    return list(loaded), result.bands_hz[keep], result.t30_s[:, keep]


def _band_hz(column: str, path: Path) -> float:
    try:
        hz = float(column[4:-2])
    except ValueError:
        hz = math.nan
    if not (math.isfinite(hz) and hz > 0):
        raise UserError(f"{path}, line 1: column {column!r} is not t30_<Hz>_s with a frequency in Hz")
    return hz


def _t30_cell(cell: str, where: str, column: str) -> float:
    """Seconds; empty or ``nan`` = not measurable (what ``assignments.csv`` writes for NaN)."""
    if not cell.strip():
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise UserError(f"{where}, column {column}: {cell!r} is not a number") from None
    if not (math.isnan(value) or (math.isfinite(value) and value > 0)):
        raise UserError(f"{where}, column {column}: {cell!r} is not a positive time in seconds")
    return value


def read_features_csv(path: str | os.PathLike, results_dir: str | os.PathLike | None = None) -> Features:
    """T30 values from a CSV with columns ``file``, optional ``image``, and ``t30_<Hz>_s`` per band.

    The CSV that ``i2r tsne-grid`` writes (``assignments.csv``) is such a table. Empty cells are NaN.
    ``image`` cells must lie inside the CSV's folder or ``results_dir`` (or be images of the data set
    that ``results_dir``'s eval run read); each ``file`` may appear once.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such features CSV")
    header, rows = _read_csv_rows(path)
    columns = [c for c in header if c.startswith("t30_") and c.endswith("_s")]
    if "file" not in header or not columns:
        raise UserError(f"{path}: needs a `file` column and t30_<Hz>_s columns")
    bands = np.array([_band_hz(c, path) for c in columns])
    if len(set(bands.tolist())) != len(bands):
        raise UserError(f"{path}, line 1: a band appears in two t30 columns ({', '.join(columns)})")
    roots = [path.parent] + ([Path(results_dir)] if results_dir is not None else [])
    # tsne-grid writes image paths relative to the folder it ran in (or as eval wrote them).
    images = _ImageCells(Path(results_dir) if results_dir is not None else path.parent,
                         [path.parent, Path(".")], roots)
    items, values, keyed = [], [], []
    for line, row in rows:
        where = f"{path}, line {line}"
        if not row["file"].strip():
            raise UserError(f"{where}, column file: empty cell")
        values.append([_t30_cell(row[c], where, c) for c in columns])
        image = images(row["image"], where) if row.get("image") else None
        items.append(Item(ir=row["file"], image=image))
        keyed.append((line, row["file"]))
    if not items:
        raise UserError(f"{path}: no rows")
    _reject_duplicates(path, keyed, "file")
    return Features(items=items, bands_hz=bands, t30_s=np.array(values, dtype=np.float64))


def prepare_features(t30_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """log-T30, NaN bands imputed per IR, z-scored per band.

    Returns ``(features (k, n_bands), kept (n,) bool, n_imputed_values)``: IRs without any finite
    positive band are dropped (``kept`` False). A band constant over all IRs is left at zero.
    """
    logs = np.log(np.where(t30_s > 0, t30_s, np.nan))
    finite = np.isfinite(logs)
    kept = finite.any(axis=1)
    if not kept.any():  # the statistics below of nothing would only spill NumPy warnings
        return np.empty((0, t30_s.shape[1])), kept, 0
    logs, finite = logs[kept], finite[kept]
    row_mean = np.nanmean(logs, axis=1, keepdims=True)
    filled = np.where(finite, logs, row_mean)
    spread = filled.std(axis=0)
    standard = (filled - filled.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return standard, kept, int((~finite).sum())


def embed(features: np.ndarray, config: TsneGridConfig) -> np.ndarray:
    """t-SNE of ``(n, d)`` features to ``(n, 2)`` (PCA initialisation, seeded)."""
    n = len(features)
    if features.shape[1] < 2:
        # Both PCA initialisations ask for two components; a zero column adds no distance.
        features = np.pad(features, ((0, 0), (0, 2 - features.shape[1])))
    if n < 4:
        # t-SNE needs neighbours; with so few points the first principal axes already say it all.
        centred = features - features.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return np.pad(centred @ vt[:2].T, ((0, 0), (0, max(0, 2 - vt.shape[0]))))
    perplexity = min(config.perplexity, (n - 1) / 3)
    if config.method == "sklearn":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        # Its Barnes-Hut gradient takes all OpenMP threads, not n_jobs; on shared, loaded cores
        # threads waiting at barriers made it 30x slower (300 points: 59 s), so cap them.
        with threadpool_limits(limits=config.n_jobs, user_api="openmp"):
            return TSNE(perplexity=perplexity, init="pca", random_state=config.seed,
                        n_jobs=config.n_jobs).fit_transform(features)
    from openTSNE import TSNE as OpenTSNE

    # FFT-interpolated gradients cost a fixed grid per iteration whatever n is: slower than
    # Barnes-Hut below ~10k points (measured on 2 loaded cores: 12 points 3.9 s vs 0.17 s; 4,096
    # points 134 s vs 54 s, benchmarks/bench_tsne_grid.py).
    method = "fft" if n >= FFT_MIN_POINTS else "bh"
    return np.asarray(OpenTSNE(perplexity=perplexity, initialization="pca",
                               negative_gradient_method=method, random_state=config.seed,
                               n_iter=config.iterations, early_exaggeration_iter=config.iterations // 2,
                               n_jobs=config.n_jobs).fit(features))


def broadband_t60(t30_s: np.ndarray, bands_hz: np.ndarray) -> np.ndarray:
    """Single-number T60 ``(n,)``: mean T30 of the 500 Hz and 1 kHz bands (ISO 3382-1 A.1).

    Falls back to the mean of the measured bands among those two, NaN if neither was measured.
    """
    columns = [int(np.argmin(np.abs(bands_hz - hz))) for hz in BROADBAND_HZ]
    pair = t30_s[:, columns]
    counts = np.isfinite(pair).sum(axis=1)
    return np.where(counts > 0, np.nansum(pair, axis=1) / np.maximum(counts, 1), np.nan)


def load_thumbnail(path: str | None, size: int, problems: list[str] | None = None) -> np.ndarray:
    """An image centre-cropped to a square and resized to ``(size, size, 3)`` uint8 (grey if none).

    An image that cannot be read is drawn grey too; why goes to ``problems`` when given.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path is None:
        return np.full((size, size, 3), 128, np.uint8)
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced scale, much faster
            thumb = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
            return np.asarray(thumb)
    # Pillow reports corrupt files as any of these; a decompression bomb is not an OSError.
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if problems is not None:
            reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc)
            problems.append(f"{path}: image not readable, drawn grey ({reason})")
        return np.full((size, size, 3), 128, np.uint8)


def mosaic(thumbnails: np.ndarray, grid: GridAssignment) -> np.ndarray:
    """Tile ``(n, s, s, 3)`` thumbnails at their cells: ``(rows * s, cols * s, 3)`` uint8, white gaps."""
    n, size = thumbnails.shape[:2]
    canvas = np.full((grid.rows, grid.cols, size, size, 3), 255, np.uint8)
    canvas[grid.row, grid.col] = thumbnails
    return canvas.transpose(0, 2, 1, 3, 4).reshape(grid.rows * size, grid.cols * size, 3)


def save_png(array: np.ndarray, path: Path) -> None:
    """Write an RGB uint8 array as PNG, atomically."""
    from PIL import Image

    with atomic_open(path, "wb") as handle:
        Image.fromarray(array).save(handle, format="PNG", compress_level=1)


def save_t60_mosaic(t60_s: np.ndarray, grid: GridAssignment, path: Path) -> None:
    """The grid coloured by broadband T60 (s, viridis) with a colour bar; empty cells white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.full((grid.rows, grid.cols), np.nan)
    values[grid.row, grid.col] = t60_s
    figure, axes = plt.subplots(figsize=(6, 6 * grid.rows / grid.cols + 0.4))
    shown = axes.imshow(values, cmap="viridis", interpolation="nearest")
    axes.set_axis_off()
    axes.set_title("broadband T60 (mean T30 at 500 Hz and 1 kHz)")
    figure.colorbar(shown, ax=axes, label="T60 (s)", shrink=0.8)
    atomic_savefig(figure, path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def write_assignments(result: TsneGridResult, path: Path) -> None:
    """CSV: ``file, image, row, col, x, y, t60_s, t30_<Hz>_s...`` (one row per IR; NaN -> empty)."""
    def cell(value):
        return "" if not np.isfinite(value) else f"{value:.6g}"

    bands = [f"t30_{hz:g}_s" for hz in result.bands_hz]
    with atomic_open(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "image", "row", "col", "x", "y", "t60_s", *bands])
        for i, item in enumerate(result.items):
            writer.writerow([item.ir, item.image or "", int(result.grid.row[i]), int(result.grid.col[i]),
                             cell(result.embedding[i, 0]), cell(result.embedding[i, 1]),
                             cell(result.t60_s[i]), *(cell(v) for v in result.t30_s[i])])


def _check_mosaic_size(n: int, thumb: int) -> None:
    """Raise :class:`UserError` for a mosaic beyond Pillow's decompression-bomb limit: Pillow (and
    what is built on it) warns about or refuses such a file, and building it takes twice its size
    in memory, so it would be a long run for an unusable result."""
    from PIL import Image

    rows, cols = grid_shape(n)
    limit = Image.MAX_IMAGE_PIXELS
    if limit and rows * cols * thumb * thumb > limit:
        largest = math.isqrt(limit // (rows * cols))
        raise UserError(f"--thumb {thumb} makes a {cols * thumb}x{rows * thumb} px mosaic of {n} IRs, more than "
                        f"Pillow's {limit:,} pixels; use --thumb {largest} or less")


def compute_grid(features: Features, config: TsneGridConfig) -> TsneGridResult:
    """Features -> t-SNE -> grid (no I/O). ``summary`` holds counts and stage timings (s)."""
    timings = {}
    start = time.perf_counter()
    standard, kept, imputed = prepare_features(features.t30_s)
    if not kept.any():
        raise UserError("no IR had a measurable T30 in any band")
    # Here, before t-SNE, is the first moment the number of cells is known.
    _check_mosaic_size(int(kept.sum()), config.thumb)
    items = [item for item, keep in zip(features.items, kept) if keep]
    embedding = embed(standard, config)
    timings["tsne_s"] = time.perf_counter() - start
    start = time.perf_counter()
    grid = snap_to_grid(embedding)
    timings["assignment_s"] = time.perf_counter() - start
    t30 = features.t30_s[kept]
    summary = {"n": len(items), "dropped_unmeasurable": int((~kept).sum()), "imputed_bands": imputed,
               "skipped_files": features.skipped, "grid": [grid.rows, grid.cols],
               "assignment_cost": grid.total_cost, "timings": timings}
    return TsneGridResult(items=items, embedding=embedding, grid=grid, t30_s=t30,
                          bands_hz=features.bands_hz, t60_s=broadband_t60(t30, features.bands_hz),
                          summary=summary)


def run_tsne_grid(results_dir: str | os.PathLike, out: str | os.PathLike,
                  config: TsneGridConfig) -> TsneGridResult:
    """``i2r tsne-grid``: write ``mosaic.png``, ``mosaic_t60.png``, ``assignments.csv`` and
    ``config.json`` (config + summary) to ``out``; returns the result."""
    out = Path(out)
    config.validate()  # again: a caller may have changed a field since construction
    if config.features_csv:
        features = read_features_csv(config.features_csv, results_dir)
    else:
        features = measure_features(discover_items(results_dir))
    result = compute_grid(features, config)
    start = time.perf_counter()
    unreadable: list[str] = []
    thumbs = np.stack([load_thumbnail(item.image, config.thumb, unreadable) for item in result.items])
    features.skipped.extend(unreadable)  # the same list as summary["skipped_files"]
    result.summary["unreadable_images"] = len(unreadable)
    save_png(mosaic(thumbs, result.grid), out / "mosaic.png")
    save_t60_mosaic(result.t60_s, result.grid, out / "mosaic_t60.png")
    write_assignments(result, out / "assignments.csv")
    result.summary["timings"]["render_s"] = time.perf_counter() - start
    result.summary["missing_images"] = sum(item.image is None for item in result.items)
    atomic_write_text(out / "config.json", json.dumps({"config": asdict(config), "summary": result.summary},
                                                      indent=2) + "\n")
    for message in features.skipped:
        print(f"skipped: {message}", file=sys.stderr)
    return result
