"""The t-SNE grid of Image2Reverb's supplementary Fig. 24: images laid out by their IRs' decay.

Pipeline: multiband T60 per IR (T30 per octave band, 125 Hz-4 kHz, ISO 3382-1 via
:func:`i2r.acoustics.analyze`) -> log, standardise -> t-SNE to 2-D (van der Maaten & Hinton 2008;
openTSNE: Barnes-Hut below 10,000 points, FFT gradients above, Linderman et al. 2019; or scikit-learn) ->
exact linear assignment onto a near-square grid (:mod:`i2r.analysis.assignment`) -> a mosaic of
the images, a mosaic coloured by broadband T60 and a CSV of the cells.

Inputs (``RESULTS_DIR``): an eval run folder with ``per_example.csv`` (columns ``image`` and
``ir_generated``, written by ``i2r eval --save-wavs``), or any folder of IRs (``.wav``/``.flac``)
whose images share their stem (``room.wav`` + ``room.png``/``.jpg``/``.jpeg``); an IR without an
image is placed on the grid and drawn as a grey cell.

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
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from i2r.analysis.assignment import GridAssignment, snap_to_grid
from i2r.audio import AUDIO_EXTENSIONS, load_audio, to_mono
from i2r.errors import UserError
from i2r.files import atomic_open, atomic_write_text

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
BAND_RANGE_HZ = (125.0, 4000.0)
BROADBAND_HZ = (500.0, 1000.0)
FFT_MIN_POINTS = 10_000
ANALYSIS_BATCH = 128  # IRs per analyze() call: 128 x 5.94 s at 22.05 kHz is 134 MB of float64


@dataclass
class TsneGridConfig:
    """How ``i2r tsne-grid`` runs; saved as ``config.json`` next to its outputs.

    ``perplexity`` is t-SNE's effective neighbour count (clipped to ``(n - 1) / 3`` for small
    sets); ``method`` ``"opentsne"`` (Barnes-Hut below 10,000 points, FFT-interpolated gradients
    above) or ``"sklearn"`` (Barnes-Hut, its own 250 + 750 iterations); ``iterations`` openTSNE's
    optimisation steps after the early-exaggeration phase, which takes half as many (openTSNE's
    defaults are 500 and 250; 250 and 125 halve the time at the same trustworthiness, 0.9965 at
    k = 10 on the benchmark's 4,096 points); ``thumb`` the mosaic cell size in pixels;
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


def _resolve(path: str, base: Path) -> Path:
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return base / candidate


def _items_from_csv(csv_path: Path) -> list[Item]:
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"image", "ir_generated"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{csv_path}: no column {', '.join(sorted(missing))} "
                            "(run `i2r eval ... --save-wavs` to keep the generated IRs)")
        items = []
        for line, row in enumerate(reader, start=2):
            if not row["ir_generated"]:
                raise UserError(f"{csv_path}, line {line}: empty ir_generated")
            image = row["image"] and str(_resolve(row["image"], csv_path.parent))
            items.append(Item(ir=str(_resolve(row["ir_generated"], csv_path.parent)), image=image or None))
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


def read_features_csv(path: str | os.PathLike, base: Path | None = None) -> Features:
    """T30 values from a CSV with columns ``file``, optional ``image``, and ``t30_<Hz>_s`` per band.

    The CSV that ``i2r tsne-grid`` writes (``assignments.csv``) is such a table. Empty cells are NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such features CSV")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in reader.fieldnames or [] if c.startswith("t30_") and c.endswith("_s")]
        if "file" not in (reader.fieldnames or []) or not columns:
            raise UserError(f"{path}: needs a `file` column and t30_<Hz>_s columns")
        bands = np.array([float(c[4:-2]) for c in columns])
        items, values = [], []
        for line, row in enumerate(reader, start=2):
            try:
                values.append([float(row[c]) if row[c] else math.nan for c in columns])
            except ValueError:
                raise UserError(f"{path}, line {line}: a t30 cell is not a number") from None
            image = row.get("image") or None
            items.append(Item(ir=row["file"], image=image and str(_resolve(image, base or path.parent))))
    if not items:
        raise UserError(f"{path}: no rows")
    return Features(items=items, bands_hz=bands, t30_s=np.array(values, dtype=np.float64))


def prepare_features(t30_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """log-T30, NaN bands imputed per IR, z-scored per band.

    Returns ``(features (k, n_bands), kept (n,) bool, n_imputed_values)``: IRs without any finite
    positive band are dropped (``kept`` False). A band constant over all IRs is left at zero.
    """
    logs = np.log(np.where(t30_s > 0, t30_s, np.nan))
    finite = np.isfinite(logs)
    kept = finite.any(axis=1)
    logs, finite = logs[kept], finite[kept]
    row_mean = np.nanmean(logs, axis=1, keepdims=True)
    filled = np.where(finite, logs, row_mean)
    spread = filled.std(axis=0)
    standard = (filled - filled.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return standard, kept, int((~finite).sum())


def embed(features: np.ndarray, config: TsneGridConfig) -> np.ndarray:
    """t-SNE of ``(n, d)`` features to ``(n, 2)`` (PCA initialisation, seeded)."""
    n = len(features)
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


def load_thumbnail(path: str | None, size: int) -> np.ndarray:
    """An image centre-cropped to a square and resized to ``(size, size, 3)`` uint8 (grey if none)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path is None:
        return np.full((size, size, 3), 128, np.uint8)
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced scale, much faster
            thumb = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
            return np.asarray(thumb)
    except (OSError, UnidentifiedImageError):
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
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120, bbox_inches="tight")
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


def compute_grid(features: Features, config: TsneGridConfig) -> TsneGridResult:
    """Features -> t-SNE -> grid (no I/O). ``summary`` holds counts and stage timings (s)."""
    timings = {}
    start = time.perf_counter()
    standard, kept, imputed = prepare_features(features.t30_s)
    if not kept.any():
        raise UserError("no IR had a measurable T30 in any band")
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
    if config.method not in ("opentsne", "sklearn"):
        raise UserError(f"--method must be opentsne or sklearn, not {config.method!r}")
    if config.features_csv:
        features = read_features_csv(config.features_csv)
    else:
        features = measure_features(discover_items(results_dir))
    result = compute_grid(features, config)
    start = time.perf_counter()
    thumbs = np.stack([load_thumbnail(item.image, config.thumb) for item in result.items])
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
