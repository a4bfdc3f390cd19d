"""Building a listening test: stimuli (dry signal * IR, loudness-matched, peak-safe) and the web page.

``build_survey`` reads a CSV of examples (``image, real_ir, generated_ir, scene`` and optionally
``example``; paths relative to the CSV and inside its folder; images that browsers show), convolves
the dry signal with every IR (FFT convolution), matches every stimulus to the same ITU-R BS.1770-4
integrated loudness, applies one common gain so that no stimulus peaks above the limit (the loudness
match survives), and writes into the output folder: ``audio/*.wav`` (16-bit), ``images/*``, the page
(``index.html``, ``survey.js``, ``survey.css`` from the repository's ``survey/`` folder),
``stimuli.js`` (the stimulus list the page reads; a script, not JSON, so the page works from
``file://`` without a server) and ``stimuli.json`` (the same plus the levels, for the record).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from i2r.audio import load_audio, resample, save_wav, to_mono
from i2r.data.images import open_image
from i2r.data.manifest import resolve_cell
from i2r.errors import UserError
from i2r.files import atomic_write_text
from i2r.survey.loudness import integrated_loudness

PAGE_DIR = Path(__file__).resolve().parents[2] / "survey"
PAGE_FILES = ("index.html", "survey.js", "survey.css")
EXAMPLE_COLUMNS = ("image", "real_ir", "generated_ir", "scene")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
WEB_IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF")  # what Pillow calls the formats browsers show
# Below -70 LUFS BS.1770 gates everything out; above 0 LUFS no signal fits under 0 dBFS.
LUFS_RANGE = (-70.0, 0.0)
# A ceiling above 0 dBFS clips the 16-bit files; far below it the stimuli drown in quantisation noise.
PEAK_DBFS_RANGE = (-60.0, 0.0)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")
SCREENING = {
    "question": "Which of these spaces would normally have the longest reverberation time?",
    "options": ["a furnished living room", "a car interior", "a large stone cathedral", "an open field"],
    "answer": 2,
}


@dataclass
class SurveyBuildConfig:
    """What ``i2r survey-build`` does; saved into ``stimuli.json``.

    ``target_lufs``: common integrated loudness (BS.1770-4) of all stimuli. ``peak_dbfs``: the
    sample-peak ceiling; when a stimulus would exceed it, all stimuli get the same extra gain.
    ``attention``: the (quality, match) that each attention check instructs. ``allow_outside``:
    let the CSV's paths lead outside its folder (their files end up in a site meant to be published).
    """

    examples_csv: str
    dry: str
    out: str = "survey_site"
    title: str = "Reverb listening test"
    target_lufs: float = -23.0
    peak_dbfs: float = -1.0
    attention: tuple = ((2, 4), (5, 1))
    screening: dict = field(default_factory=lambda: dict(SCREENING))
    allow_outside: bool = False

    def __post_init__(self):
        check_levels(self.target_lufs, self.peak_dbfs)


def check_levels(target_lufs: float, peak_dbfs: float) -> None:
    """Raise :class:`UserError` unless the loudness target and the peak ceiling lie in their ranges (NaN does not)."""
    if not LUFS_RANGE[0] <= target_lufs <= LUFS_RANGE[1]:
        raise UserError(f"the target loudness (--lufs) must lie in {LUFS_RANGE[0]:g} to {LUFS_RANGE[1]:g} LUFS, "
                        f"not {target_lufs}")
    if not PEAK_DBFS_RANGE[0] <= peak_dbfs <= PEAK_DBFS_RANGE[1]:
        raise UserError(f"the peak ceiling (--peak-dbfs) must lie in {PEAK_DBFS_RANGE[0]:g} to "
                        f"{PEAK_DBFS_RANGE[1]:g} dBFS, not {peak_dbfs}")


@dataclass
class Example:
    """One pictured example of the study: its image, two IRs and scene category."""

    name: str
    scene: str
    image: Path
    irs: dict
    line: int


def _name(where: str, column: str, value: str) -> str:
    if not _NAME_RE.match(value):
        raise UserError(f"{where}, column {column}: {value!r} must be 1-60 letters, digits, "
                        "'_', '.' or '-' (it becomes a CSV cell and a file name)")
    return value


def _existing(path: Path, where: str, column: str, value: str, allow_outside: bool) -> Path:
    if not value:
        raise UserError(f"{where}, column {column} is empty")
    target = resolve_cell(value, path.parent, allow_outside, where, column)
    if not target.is_file():
        raise UserError(f"{where}, column {column}: no such file {target}")
    return target


def _web_image(path: Path, where: str, value: str, allow_outside: bool) -> Path:
    """The image cell's file, checked to decode as a format that the survey page can show."""
    image = _existing(path, where, "image", value, allow_outside)
    if image.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{where}, column image: {image.name} is not one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        with open_image(image) as decoded:
            kind = decoded.format
    except UserError as exc:
        raise UserError(f"{where}, column image: {exc}") from None
    if kind not in WEB_IMAGE_FORMATS:
        raise UserError(f"{where}, column image: {image} holds {kind}, which browsers do not show "
                        f"(use {', '.join(IMAGE_SUFFIXES)})")
    return image


def read_examples(path: str | Path, allow_outside: bool = False) -> list[Example]:
    """Read the examples CSV: ``image, real_ir, generated_ir, scene[, example]``, paths relative to it.

    A path leading outside the CSV's folder is refused unless ``allow_outside`` is set: the files
    are copied into a site meant to be published, so a downloaded CSV must not pick them.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in EXAMPLE_COLUMNS if c not in header]
        if missing:
            raise UserError(f"{path}: line 1: missing column(s) {', '.join(missing)} (need {', '.join(EXAMPLE_COLUMNS)})")
        reader.fieldnames = header
        examples, seen = [], {}
        for rec in reader:
            line = reader.line_num
            where = f"{path}: line {line}"
            rec = {k: (v or "").strip() for k, v in rec.items() if k}
            image = _web_image(path, where, rec["image"], allow_outside)
            name = _name(where, "example", rec.get("example") or image.stem)
            if name in seen:
                raise UserError(f"{where}: example {name!r} already on line {seen[name]}")
            seen[name] = line
            irs = {source: _existing(path, where, f"{source}_ir", rec[f"{source}_ir"], allow_outside)
                   for source in ("real", "generated")}
            examples.append(Example(name, _name(where, "scene", rec["scene"]), image, irs, line))
    if not examples:
        raise UserError(f"{path}: no examples")
    return examples


def _mono_at(path: Path, fs: int | None) -> tuple[np.ndarray, int]:
    audio = load_audio(path)
    mono, _ = to_mono(audio.samples)
    return (mono, audio.fs) if fs is None else (resample(mono, audio.fs, fs), fs)


def render_stimuli(dry: np.ndarray, fs: int, irs: list[np.ndarray], target_lufs: float, peak_dbfs: float) -> tuple[list[np.ndarray], dict]:
    """Convolve ``dry`` (``(n,)``) with each IR (``(m_i,)``, same ``fs``), loudness-match, make peak-safe.

    Every stimulus is scaled to ``target_lufs`` (BS.1770-4 integrated loudness); then, if the
    loudest sample of any stimulus exceeds ``peak_dbfs``, one common gain brings it down for all,
    so the stimuli stay equally loud. Returns the stimuli and a record of the levels.
    """
    check_levels(target_lufs, peak_dbfs)
    wet = [fftconvolve(dry, ir) for ir in irs]
    loudness = [integrated_loudness(w, fs) for w in wet]
    matched = [w * 10 ** ((target_lufs - lk) / 20) for w, lk in zip(wet, loudness)]
    ceiling = 10 ** (peak_dbfs / 20)
    gain = _common_gain(max(float(np.max(np.abs(m))) for m in matched), ceiling)
    stimuli = [m * gain for m in matched]
    final_peak = max(float(np.max(np.abs(s))) for s in stimuli)
    if not final_peak <= ceiling:
        raise RuntimeError(f"internal error: the stimuli peak at {final_peak!r}, above the ceiling {ceiling!r}")
    common_db = 20 * np.log10(gain)
    record = {"loudness_before_lufs": loudness, "common_gain_db": common_db,
              "loudness_lufs": target_lufs + common_db, "max_peak_dbfs": 20 * np.log10(final_peak)}
    return stimuli, record


def _common_gain(peak: float, ceiling: float) -> float:
    """The gain (at most 1) that brings ``peak`` to at most ``ceiling``."""
    gain = min(1.0, ceiling / peak)
    # ceiling / peak * peak can round one ulp above the ceiling; step down until it does not.
    while peak * gain > ceiling:
        gain = float(np.nextafter(gain, 0.0))
    return gain


def _stimulus_id(salt: str, example: str, source: str) -> str:
    """An opaque stimulus name, so file names do not tell listeners which source they hear."""
    return "s" + hashlib.sha256(f"{salt}|{example}|{source}".encode()).hexdigest()[:10]


def _copy_page(out: Path) -> None:
    for name in PAGE_FILES:
        source = PAGE_DIR / name
        if not source.is_file():
            raise UserError(f"the survey page {source} is missing: survey-build needs the repository's survey/ folder")
        atomic_write_text(out / name, source.read_text(encoding="utf-8"))


def _make_readable(out: Path, manifest: dict) -> None:
    """Atomic writes create owner-only files; a survey is meant to be served, so open ours for reading."""
    names = [*PAGE_FILES, "stimuli.js", "stimuli.json"]
    names += [s["audio"] for s in manifest["stimuli"]] + [s["image"] for s in manifest["stimuli"]]
    for name in set(names):
        (out / name).chmod(0o644)


def build_survey(config: SurveyBuildConfig) -> dict:
    """Build the stimuli and the page into ``config.out``; return the manifest written there."""
    examples = read_examples(config.examples_csv, config.allow_outside)
    dry, fs = _mono_at(Path(config.dry), None)
    out = Path(config.out)
    pairs = [(ex, source) for ex in examples for source in ("real", "generated")]
    irs = [_mono_at(ex.irs[source], fs)[0] for ex, source in pairs]
    stimuli, levels = render_stimuli(dry, fs, irs, config.target_lufs, config.peak_dbfs)
    salt = hashlib.sha256(json.dumps([str(config.dry)] + [ex.name for ex in examples]).encode()).hexdigest()[:12]
    entries = []
    for (ex, source), signal, before in zip(pairs, stimuli, levels["loudness_before_lufs"]):
        sid = _stimulus_id(salt, ex.name, source)
        save_wav(out / "audio" / f"{sid}.wav", signal, fs, subtype="PCM_16")
        entries.append({"id": sid, "example": ex.name, "scene": ex.scene, "source": source,
                        "audio": f"audio/{sid}.wav", "image": f"images/{ex.name}{ex.image.suffix.lower()}",
                        "loudness_before_lufs": before})
    for ex in examples:
        (out / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ex.image, out / "images" / f"{ex.name}{ex.image.suffix.lower()}")
    page = {"id": salt, "title": config.title, "fs": fs, "stimuli": entries,
            "attention": [{"id": f"attention{i + 1}", "quality": q, "match": m} for i, (q, m) in enumerate(config.attention)],
            "screening": config.screening}
    _copy_page(out)
    atomic_write_text(out / "stimuli.js", "// Written by i2r survey-build: the stimulus list the page reads.\n"
                      f"window.I2R_SURVEY = {json.dumps(page, indent=1)};\n")
    manifest = {**page, "levels": levels, "config": asdict(config)}
    atomic_write_text(out / "stimuli.json", json.dumps(manifest, indent=2) + "\n")
    _make_readable(out, manifest)
    return manifest
