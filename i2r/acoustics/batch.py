"""Measuring many impulse-response files: decode, batch, analyse, stream the results out.

``i2r analyze`` runs on anything from one file to tens of thousands. Files are taken a chunk at a
time (in input order); each chunk is decoded, reduced to one channel, grouped by sample rate and
length, and every group goes through :func:`i2r.acoustics.analyze` as ONE batch, so a thousand
equal-length IRs cost a handful of vectorised calls, not a thousand. With ``jobs > 1`` chunks are
decoded and analysed in worker processes; at most ``2 * jobs`` chunks are in flight, so memory is
bounded whatever the number of files. Results come back in input order and are written as they
arrive: CSV rows are flushed after every chunk, so an interrupted run keeps what it measured, and
``resume`` skips the files a previous run already finished.

Groups hold equal-length IRs only (no zero padding): trailing zeros would enter the noise-floor
estimate of the late decay (ISO 3382-1 noise handling) and change the result.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

import numpy as np

from i2r.acoustics.parameters import BAND_KEYS, FILTER_ORDERS, AnalysisConfig, analyze, validate_ir
from i2r.audio import find_audio_files, load_audio, to_mono
from i2r.errors import UserError
from i2r.files import atomic_write_text

FORMATS = ("table", "csv", "json")
CSV_COLUMNS = ("file", "fs", "channels", "band", *BAND_KEYS, "drr_db", "warnings")
BROADBAND = "broadband"
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class AnalyzeConfig:
    """How ``i2r analyze`` runs. The measurement settings it implies (:meth:`analysis`) are saved
    with every result (the ``config`` key of each JSON object).

    ``bands``: ``"octave"`` or ``"third"`` (IEC 61260-1 band edges, as far as ``fs`` allows).
    ``filter_order``: poles per band side of the band filters (see
    :class:`i2r.acoustics.AnalysisConfig`).
    ``jobs``: worker processes for decoding and analysis (1 = in this process).
    ``chunk_size``: files decoded and analysed together; bounds memory to about
    ``2 * jobs * chunk_size`` decoded files.
    ``plot_dir``: write one decay-curve PNG per file there (None = no plots).
    """

    bands: str = "octave"
    filter_order: int = 3
    format: str = "table"
    jobs: int = 1
    chunk_size: int = 32
    plot_dir: str | None = None
    out: str | None = None
    resume: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.bands not in ("octave", "third"):
            raise UserError(f"--bands must be 'octave' or 'third', got {self.bands!r}")
        if self.format not in FORMATS:
            raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        # checked here too, so that the message names the option, before any file is decoded
        if self.filter_order not in FILTER_ORDERS:
            raise UserError(f"--filter-order must be from {FILTER_ORDERS[0]} to {FILTER_ORDERS[-1]} poles, "
                            f"got {self.filter_order}")
        if self.jobs < 1 or self.chunk_size < 1:
            raise UserError("--jobs and --batch-size must be at least 1")
        if self.resume and (self.format != "csv" or not self.out):
            raise UserError("--resume needs --format csv and --out FILE (the CSV to continue)")

    def analysis(self) -> AnalysisConfig:
        """The :class:`i2r.acoustics.AnalysisConfig` every file is measured with: one thread per
        worker process when there are several (they share the cores), else all cores."""
        return AnalysisConfig(bands=self.bands, filter_order=self.filter_order, workers=1 if self.jobs > 1 else 0)


@dataclass(frozen=True)
class FileResult:
    """One file's outcome: ``record`` (the JSON object of DESIGN.md) or ``error`` (one line)."""

    file: str
    record: dict | None = None
    error: str | None = None


@dataclass
class RunSummary:
    """What a run did: files analysed, files that failed, files skipped by ``resume``."""

    analysed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


# --- decoding and analysis (runs in worker processes when jobs > 1) ----------------------------


def decode_ir(path: str | os.PathLike) -> tuple[np.ndarray, int, str]:
    """Read one IR file as ``(samples (n_samples,), fs in Hz, channel handling)``.

    Mono is kept, stereo/binaural is averaged, 4-channel B-format uses W (see
    :func:`i2r.audio.to_mono`). Raises :class:`UserError` naming the file for input that cannot be
    an IR: missing, not audio, empty, NaN/inf, all zeros, or shorter than 10 ms.
    """
    audio = load_audio(path)
    mono, channels = to_mono(audio.samples)
    return validate_ir(mono, audio.fs, name=str(path)), audio.fs, channels


def analyze_chunk(paths: Sequence[str], config: AnalyzeConfig) -> list[FileResult]:
    """Decode and analyse ``paths`` together, one :func:`i2r.acoustics.analyze` call per group of
    equal sample rate and length. Returns one :class:`FileResult` per path, in order."""
    results: dict[str, FileResult] = {}
    groups: dict[tuple[int, int], list[tuple[str, np.ndarray, str]]] = collections.defaultdict(list)
    for path in paths:
        try:
            mono, fs, channels = decode_ir(path)
        except UserError as exc:
            results[path] = FileResult(path, error=_name_file(path, exc))
            continue
        groups[(fs, mono.shape[-1])].append((path, mono, channels))
    for (fs, _), members in groups.items():
        results.update(_analyze_group(members, fs, config))
    return [results[path] for path in paths]


def _analyze_group(members, fs: int, config: AnalyzeConfig) -> dict[str, FileResult]:
    analysis = config.analysis()
    params = analyze(np.stack([mono for _, mono, _ in members]), fs, config=analysis)
    out = {}
    for index, (path, mono, channels) in enumerate(members):
        record = {"file": path, **params.to_json_dict(index), "channels": channels,
                  "config": analysis.to_dict()}
        if config.plot_dir:
            from i2r.acoustics.plot import plot_decays

            plot_decays(Path(config.plot_dir) / f"{plot_stem(path)}.png", mono, fs, record,
                        analysis, title=f"{Path(path).name} ({channels})")
        out[path] = FileResult(path, record=record)
    return out


def _name_file(path: str, exc: Exception) -> str:
    message = str(exc)
    return message if message.startswith(str(path)) else f"{path}: {message}"


def plot_stem(path: str) -> str:
    """The PNG name (without ``.png``) of an input file: its last folders and stem joined by
    ``__``, so files of the same name in different folders do not overwrite each other."""
    parts = Path(path).with_suffix("").parts[-3:]
    return "__".join(p for p in parts if p not in ("/", "..", "."))


# --- streaming over many files -----------------------------------------------------------------


def iter_results(paths: Sequence[str], config: AnalyzeConfig) -> Iterator[FileResult]:
    """Yield one :class:`FileResult` per path, in order, analysing ``config.chunk_size`` files at
    a time (in ``config.jobs`` worker processes when more than one), with a tqdm bar on stderr."""
    from tqdm import tqdm

    chunks = [list(paths[i:i + config.chunk_size]) for i in range(0, len(paths), config.chunk_size)]
    with tqdm(total=len(paths), unit="file", file=sys.stderr, disable=not config.progress,
              desc="analyze") as bar:
        for chunk_results in _map_chunks(chunks, config):
            bar.update(len(chunk_results))
            yield from chunk_results


def _map_chunks(chunks: list[list[str]], config: AnalyzeConfig) -> Iterator[list[FileResult]]:
    if config.jobs == 1 or len(chunks) == 1:
        for chunk in chunks:
            yield analyze_chunk(chunk, config)
        return
    # workers start on demand during submit(), so their environment is set for the whole loop
    with _single_threaded_workers():
        pool = ProcessPoolExecutor(config.jobs, mp_context=get_context("spawn"), initializer=_ignore_sigint)
        try:
            pending: collections.deque = collections.deque()
            for chunk in chunks:
                if len(pending) >= 2 * config.jobs:
                    yield pending.popleft().result()
                pending.append(pool.submit(analyze_chunk, chunk, config))
            while pending:
                yield pending.popleft().result()
        finally:
            # on Ctrl-C (or a closed pipe) drop the queued chunks instead of finishing them
            pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which stops the run and keeps what it wrote
    (otherwise every worker prints its own KeyboardInterrupt traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _single_threaded_workers():
    """Workers inherit the environment: one BLAS/OpenMP thread each, so N jobs use N cores."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- writing the results -----------------------------------------------------------------------


def run_analysis(inputs: Iterable[str | os.PathLike], config: AnalyzeConfig,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> RunSummary:
    """Analyse every IR file in ``inputs`` (folders walked recursively) and write the results in
    ``config.format`` to ``config.out`` or ``stdout``; each failed file gets one
    ``error: <file>: <reason>`` line on ``stderr`` and is counted, the others are still analysed.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    paths = [str(p) for p in find_audio_files(inputs)]
    if not paths:
        raise UserError(f"no .wav or .flac files found in {', '.join(map(str, inputs))}")
    summary = RunSummary()
    if config.resume:
        done = resume_csv(Path(config.out))
        summary.skipped = sum(p in done for p in paths)
        paths = [p for p in paths if p not in done]
    writer = _WRITERS[config.format](config, stdout)
    with writer:
        for result in iter_results(paths, config):
            if result.error:
                summary.failed += 1
                summary.errors.append(result.error)
                _write_line(f"error: {result.error}", stderr)
            else:
                summary.analysed += 1
                writer.add(result.record)
    return summary


def _write_line(line: str, stream: TextIO) -> None:
    """Write a line to stderr without tearing the progress bar (tqdm clears and redraws it)."""
    from tqdm import tqdm

    tqdm.write(line, file=stream)
    stream.flush()


class _TableWriter:
    """Human-readable: per file, quantities as rows and bands as columns, then its warnings."""

    def __init__(self, config: AnalyzeConfig, stdout: TextIO):
        self.config, self.stdout, self.buffer = config, stdout, io.StringIO()

    def __enter__(self):
        return self

    def add(self, record: dict) -> None:
        text = format_table(record) + "\n"
        if self.config.out:
            self.buffer.write(text)
        else:
            self.stdout.write(text)
            self.stdout.flush()

    def __exit__(self, *exc) -> None:
        if self.config.out:
            atomic_write_text(self.config.out, self.buffer.getvalue())


class _JsonWriter(_TableWriter):
    """One JSON document (DESIGN.md): a list with one object per file, NaN as null."""

    def __init__(self, config: AnalyzeConfig, stdout: TextIO):
        super().__init__(config, stdout)
        self.records: list[dict] = []

    def add(self, record: dict) -> None:
        self.records.append(record)

    def __exit__(self, *exc) -> None:
        # one object per line: a valid document that stays readable and greppable
        text = "[\n" + ",\n".join(json.dumps(r, allow_nan=False) for r in self.records) + "\n]\n"
        if self.config.out:
            atomic_write_text(self.config.out, text)
        else:
            self.stdout.write(text)


class _CsvWriter:
    """Tidy CSV, one row per file x band (and a ``broadband`` row last), flushed as it goes."""

    def __init__(self, config: AnalyzeConfig, stdout: TextIO):
        self.config, self.stdout, self.handle = config, stdout, None

    def __enter__(self):
        if self.config.out:
            path = Path(self.config.out)
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not (self.config.resume and path.exists())
            self.handle = open(path, "w" if fresh else "a", encoding="utf-8", newline="")
        else:
            fresh = True
        self.writer = csv.writer(self.handle or self.stdout, lineterminator="\n")
        if fresh:
            self.writer.writerow(CSV_COLUMNS)
        return self

    def add(self, record: dict) -> None:
        self.writer.writerows(csv_rows(record))
        (self.handle or self.stdout).flush()

    def __exit__(self, *exc) -> None:
        if self.handle:
            self.handle.close()


_WRITERS = {"table": _TableWriter, "json": _JsonWriter, "csv": _CsvWriter}


def csv_rows(record: dict) -> list[list]:
    """The CSV rows (:data:`CSV_COLUMNS`) of one file's record; empty cells for null values."""
    def cell(value):
        return "" if value is None else f"{value:.6g}"

    common = [record["file"], record["fs"], record["channels"]]
    rows = []
    for band_index, band in enumerate(record["bands_hz"]):
        rows.append([*common, f"{band:g}", *(cell(record[k][band_index]) for k in BAND_KEYS), "", ""])
    rows.append([*common, BROADBAND, *(cell(record["broadband"].get(k)) for k in BAND_KEYS),
                 cell(record["drr_db"]), " | ".join(record["warnings"])])
    return rows


def resume_csv(path: Path) -> set[str]:
    """Files a previous (possibly interrupted) CSV run finished, i.e. those with their
    ``broadband`` row written. The CSV is rewritten (atomically) without any cut-off last line and
    without the rows of unfinished files, so that appending to it gives a valid CSV."""
    if not path.exists():
        return set()
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise UserError(f"{path}: not a CSV written by `i2r analyze --format csv` (header differs); "
                        "cannot resume it")
    band_col = CSV_COLUMNS.index("band")
    done = {row[0] for row in rows[1:] if len(row) == len(CSV_COLUMNS) and row[band_col] == BROADBAND}
    kept = [rows[0]] + [row for row in rows[1:] if len(row) == len(CSV_COLUMNS) and row[0] in done]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(kept)
    atomic_write_text(path, buffer.getvalue())
    return done


def format_table(record: dict) -> str:
    """One file's results as a fixed-width text table: bands as columns, quantities as rows."""
    bands = [_band_label(f) for f in record["bands_hz"]] + [BROADBAND]
    width = max(9, *(len(b) + 1 for b in bands))
    lines = [f"{record['file']}  (fs {record['fs']} Hz, {record['channels']})",
             f"{'':<10}" + "".join(f"{b:>{width}}" for b in bands)]
    for key in BAND_KEYS:
        values = [*record[key], record["broadband"].get(key)]
        lines.append(f"{key:<10}" + "".join(f"{_fmt(v):>{width}}" for v in values))
    blanks = " " * (width * (len(bands) - 1))  # DRR is broadband only
    lines.append(f"{'drr_db':<10}{blanks}{_fmt(record['drr_db']):>{width}}")
    lines.extend(f"  warning: {w}" for w in record["warnings"])
    return "\n".join(lines) + "\n"


def _band_label(hz: float) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
