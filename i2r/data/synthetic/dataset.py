"""Writing a synthetic paired data set: images, depth maps, IRs and a manifest CSV.

Layout of ``OUT/``::

    images/000000.png   RGB view, size x size
    depth/000000.png    16-bit z-depth in millimetres (65535 = 65.535 m or beyond, the sky)
    irs/000000.wav      mono 16-bit PCM, 22,050 Hz, 5.94 s, peak 0.99
    manifest.csv        one row per scene (columns: MANIFEST_COLUMNS), paths relative to OUT
    synth_config.json   the SynthConfig the set was made with

Scene ``i`` depends only on ``(seed, i)`` (NumPy ``SeedSequence(seed, spawn_key=(i,))``), so the
files are byte-identical whatever ``jobs`` is, and a run that was interrupted resumes where it
stopped: finished rows are appended to ``.manifest.partial.csv`` as they come, and the final
``manifest.csv`` is written atomically at the end.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from i2r.data.synthetic.ir import IRConfig, synthesize_ir
from i2r.data.synthetic.materials import BANDS_HZ
from i2r.data.synthetic.render import DEPTH_MAX_M, RenderConfig, depth_to_png_array, render
from i2r.data.synthetic.scene import SURFACES, Scene, draw_scene
from i2r.errors import UserError
from i2r.files import atomic_open, atomic_write_text, writable_dir
from i2r.seeds import check_seed

_BAND_COLUMNS = [f"t60_{int(f)}_s" for f in BANDS_HZ]
MANIFEST_COLUMNS = (
    ["image", "ir", "depth", "split", "scene", "t60_s", *_BAND_COLUMNS]
    + ["length_m", "width_m", "height_m", "volume_m3", "surface_m2", *SURFACES]
    + [f"{who}_{axis}_m" for who in ("source", "receiver", "camera") for axis in "xyz"]
    + ["distance_m", "seed", "index", "depth_scale_m", "depth_max_m"]
)
"""Manifest columns. ``t60_s`` is the mean of the 500 Hz and 1 kHz bands (as the paper's
single-number T60); room size and materials are empty for outdoor scenes; ``depth_scale_m``
is metres per depth-PNG unit (0.001) and ``depth_max_m`` the value of a saturated pixel."""

_PARTIAL = ".manifest.partial.csv"
_CONFIG = "synth_config.json"


@dataclass(frozen=True)
class SynthConfig:
    """What ``i2r synth`` makes: ``n`` scenes into ``out`` from ``seed``.

    ``split`` gives the train/val/test fractions; ``jobs`` the number of worker processes (it
    changes nothing in the output).
    """

    n: int
    out: str
    seed: int = 0
    image_size: int = 256
    jobs: int = 1
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    render: RenderConfig = field(default_factory=RenderConfig)
    ir: IRConfig = field(default_factory=IRConfig)

    def identity(self) -> dict:
        """The fields that decide the files' content (``n``, ``out`` and ``jobs`` do not), as JSON types."""
        fields = {"seed": self.seed, "image_size": self.image_size, "split": list(self.split),
                  "fov_deg": self.render.fov_deg, "ir": asdict(self.ir)}
        return json.loads(json.dumps(fields))


@dataclass(frozen=True)
class SynthSummary:
    """What a run did: scene counts per split and category, and how many were already there."""

    out: str
    manifest: str
    n: int
    generated: int
    reused: int
    seconds: float
    splits: dict
    categories: dict


def scene_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for scene ``index`` of a set made from ``seed``: (scene, IR noise)."""
    scene_seq, ir_seq = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(2)
    return np.random.default_rng(scene_seq), np.random.default_rng(ir_seq)


def draw_example_scene(seed: int, index: int) -> Scene:
    """Scene ``index`` of the set made from ``seed``, as :func:`make_example` draws it, without
    rendering or synthesising anything (what a manifest row's ``seed`` and ``index`` rebuild)."""
    return draw_scene(scene_rngs(seed, index)[0])


def split_of(index: int, fractions) -> str:
    """train/val/test for scene ``index``: the golden-ratio sequence frac(i·0.618...) against the
    cumulative fractions, so every prefix of the set is split in the right proportions."""
    position = (index * 0.6180339887498949) % 1.0
    bounds = np.cumsum(fractions) / np.sum(fractions)
    return ("train", "val", "test")[min(int(np.searchsorted(bounds, position, side="right")), 2)]


def make_example(seed: int, index: int, config: SynthConfig) -> tuple[Scene, np.ndarray, np.ndarray, np.ndarray]:
    """Scene ``index`` of the set ``seed``: (scene, RGB uint8 ``(s, s, 3)``, depth m ``(s, s)``,
    IR float32 ``(130977,)``)."""
    scene_rng, ir_rng = scene_rngs(seed, index)
    scene = draw_scene(scene_rng)
    render_config = RenderConfig(size=config.image_size, fov_deg=config.render.fov_deg)
    image, depth = render(scene, render_config)
    return scene, image, depth, synthesize_ir(scene, ir_rng, config.ir)


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # Level 1: 3-4x faster than Pillow's default; these images are noisy and compress little anyway.
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _fmt(value: float, digits: int = 4) -> str:
    return repr(round(float(value), digits))


def manifest_row(scene: Scene, index: int, config: SynthConfig) -> dict:
    """The manifest row of a scene (all values as strings, paths relative to the set's folder)."""
    name = f"{index:06d}"
    t60 = scene.t60_s
    row = {"image": f"images/{name}.png", "ir": f"irs/{name}.wav", "depth": f"depth/{name}.png",
           "split": split_of(index, config.split), "scene": scene.category,
           "t60_s": _fmt((t60[2] + t60[3]) / 2), "seed": str(config.seed), "index": str(index),
           "depth_scale_m": "0.001", "depth_max_m": repr(DEPTH_MAX_M),
           "distance_m": _fmt(np.linalg.norm(np.subtract(scene.source, scene.receiver)), 3)}
    row.update({col: _fmt(v) for col, v in zip(_BAND_COLUMNS, t60)})
    indoor = not scene.outdoor
    for col, value in zip(("length_m", "width_m", "height_m"), scene.dims):
        row[col] = _fmt(value, 2) if indoor else ""
    row["volume_m3"] = _fmt(scene.volume, 2) if indoor else ""
    row["surface_m2"] = _fmt(scene.surface_area, 2) if indoor else ""
    for surface in SURFACES:
        row[surface] = scene.materials.get(surface, "")
    for who in ("source", "receiver", "camera"):
        for axis, value in zip("xyz", getattr(scene, who)):
            row[f"{who}_{axis}_m"] = _fmt(value, 3)
    return row


def _wav_bytes(ir: np.ndarray, fs: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, ir, fs, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _replace(path: Path, data: bytes) -> None:
    """Atomic (temporary file + rename) but not yet durable: :func:`_make_durable` fsyncs later.

    fsync costs ~10 ms per file on these disks, 3 files per scene; done in the worker it would
    stall the CPU work, done by the parent process it overlaps with the workers' rendering.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(data)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise


def _make_durable(out: Path, row: dict) -> None:
    """fsync a scene's three files, so that a manifest row never names a file lost in a crash."""
    for key in ("image", "depth", "ir"):
        fd = os.open(out / row[key], os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_example(index: int, config: SynthConfig) -> dict:
    """Make scene ``index`` and write its three files under ``config.out``; return its manifest row.

    The files are replaced atomically; the caller (:func:`generate`) makes them durable before
    it records the row.
    """
    out = Path(config.out)
    scene, image, depth, ir = make_example(config.seed, index, config)
    row = manifest_row(scene, index, config)
    _replace(out / row["image"], _png_bytes(image))
    _replace(out / row["depth"], _png_bytes(depth_to_png_array(depth)))
    _replace(out / row["ir"], _wav_bytes(ir, config.ir.fs))
    return row


def _check_folder(config: SynthConfig) -> None:
    try:
        out = writable_dir(config.out)
    except UserError as exc:
        raise UserError(f"--out {exc}") from None
    saved = out / _CONFIG
    if saved.exists():
        try:
            previous = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{saved}: unreadable ({exc}); remove it or choose another --out") from None
        for key, value in config.identity().items():
            if previous.get(key) != value:
                raise UserError(f"{out}: holds a synthetic set made with {key}={previous.get(key)!r}, "
                                f"not {value!r}; choose another --out or the same settings")
    elif (out / "manifest.csv").exists():
        raise UserError(f"{out}: has a manifest.csv that i2r synth did not make ({_CONFIG} is missing)")


def _finished_rows(config: SynthConfig) -> dict[int, dict]:
    """Rows of earlier runs into the same folder whose three files all exist, by index."""
    out = Path(config.out)
    rows: dict[int, dict] = {}
    for name in ("manifest.csv", _PARTIAL):
        path = out / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("index", "").isdigit() and all(_nonempty(out / row.get(k, "")) for k in ("image", "ir", "depth")):
                    rows[int(row["index"])] = {c: row.get(c, "") for c in MANIFEST_COLUMNS}
    return rows


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _worker(args) -> dict:
    index, config = args
    return write_example(index, config)


def _pool(jobs: int):
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(jobs)


def _write_manifest(path: Path, rows: list[dict]) -> None:
    with atomic_open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def generate(config: SynthConfig, progress: bool = True) -> SynthSummary:
    """Write ``config.n`` scenes to ``config.out`` (see the module docstring), resuming any
    earlier run into the same folder made with the same settings.

    Raises :class:`UserError` for a bad ``n``, ``jobs``, ``split`` or ``image_size``, or a folder
    that holds something else.
    """
    _validate(config)
    _check_folder(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _CONFIG, json.dumps(config.identity(), indent=2) + "\n")
    start = time.perf_counter()
    rows = {i: r for i, r in _finished_rows(config).items() if i < config.n}
    reused = len(rows)
    _check_free_space(out, config.n - reused, config.image_size)
    todo = [i for i in range(config.n) if i not in rows]
    # A finished set opens no partial manifest: two demos sharing the cache reuse it at once, and
    # one's removing of the partial file stopped the other ("No such file or directory", measured).
    if todo:
        rows.update(_make_rows(todo, config, reused, progress))
    ordered = [rows[i] for i in sorted(rows)]
    _write_manifest(out / "manifest.csv", ordered)
    (out / _PARTIAL).unlink(missing_ok=True)
    return SynthSummary(
        out=str(out), manifest=str(out / "manifest.csv"), n=len(ordered), generated=len(todo), reused=reused,
        seconds=time.perf_counter() - start,
        splits=dict(sorted(Counter(r["split"] for r in ordered).items())),
        categories=dict(sorted(Counter(r["scene"] for r in ordered).items())),
    )


def _make_rows(todo: list[int], config: SynthConfig, reused: int, progress: bool) -> dict[int, dict]:
    """Make the scenes ``todo`` (in ``config.jobs`` processes) and append each finished row to
    the partial manifest, after its files are on disk; returns the rows by index."""
    from tqdm import tqdm

    out = Path(config.out)
    partial = out / _PARTIAL
    fresh = not partial.exists() or partial.stat().st_size == 0
    rows = {}
    with contextlib.ExitStack() as stack:
        # The pool is forked before tqdm starts its monitor thread (fork + threads can deadlock).
        pool = stack.enter_context(_pool(config.jobs)) if config.jobs > 1 and len(todo) > 1 else None
        handle = stack.enter_context(partial.open("a", encoding="utf-8", newline=""))
        bar = stack.enter_context(tqdm(total=config.n, initial=reused, desc="synth", unit="scene",
                                       file=sys.stderr, disable=not progress))
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        if fresh:
            writer.writeheader()
            handle.flush()
        made = pool.imap(_worker, [(i, config) for i in todo], chunksize=4) if pool else (write_example(i, config) for i in todo)
        for row in made:
            _make_durable(out, row)
            writer.writerow(row)
            handle.flush()
            rows[int(row["index"])] = row
            bar.update(1)
    return rows


# A render holds several float64 planes of the image: at 4096 px one scene took 2.0 GB (peak RSS).
_MAX_IMAGE_SIZE = 4096


def _check_free_space(out: Path, scenes: int, image_size: int) -> None:
    """Refuse up front a set that cannot fit on the disk, rather than filling it hours later.
    Measured per scene: the IR's 16-bit WAV 262 KB, the PNGs about 1.2 bytes per pixel."""
    needed = scenes * (270_000 + 1.5 * image_size**2)
    free = shutil.disk_usage(out).free
    if needed > free:
        raise UserError(f"--out {out}: {scenes:,} more scenes need about {needed / 1e9:,.1f} GB, "
                        f"but only {free / 1e9:,.1f} GB are free")


def _validate(config: SynthConfig) -> None:
    if config.n < 1:
        raise UserError(f"--n must be at least 1, got {config.n}")
    if config.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {config.jobs}")
    check_seed(config.seed)
    if not 32 <= config.image_size <= _MAX_IMAGE_SIZE:
        raise UserError(f"--image-size must be 32 to {_MAX_IMAGE_SIZE} pixels, got {config.image_size}")
    split = np.asarray(config.split, dtype=np.float64)
    if split.shape != (3,) or np.any(split < 0) or not split.sum() > 0:
        raise UserError(f"--split needs three non-negative fractions train,val,test, got {config.split}")
