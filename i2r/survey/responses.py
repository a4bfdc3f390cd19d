"""Reading and validating listening-test responses (tidy or wide CSV), and deciding who is analysed.

The tidy layout (DESIGN.md) has one row per participant x stimulus with the columns
``participant, scene, source, quality, match`` and optionally ``example, screening_passed,
attention_passed, simulated``. A stimulus is the pair (example, source); without an ``example``
column each scene is its own single example.

The wide layout has one row per participant: ``participant`` (plus the optional flag columns) and
one column per rating of each stimulus, named ``<rating>:<scene>:<example>:<source>``, e.g.
``quality:large:albi_cathedral:real`` (see survey/README.md for the mapping).

Every cell is untrusted text: it is stripped and validated, never evaluated. A mistake in the
file raises :class:`UserError` naming the file, CSV line and column; an unanswered rating (empty
cell) is not a mistake but a missing stimulus, which excludes that participant with a reason.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from i2r.errors import UserError

RATINGS = ("quality", "match")
SOURCES = ("real", "generated")
SOURCE_ALIASES = {"real": "real", "generated": "generated", "fake": "generated"}
REQUIRED_TIDY = ("participant", "scene", "source", "quality", "match")
FLAG_COLUMNS = ("screening_passed", "attention_passed")
TRUE_WORDS = {"true", "1", "yes", "y", "pass", "passed"}
FALSE_WORDS = {"false", "0", "no", "n", "fail", "failed"}
WIDE_SEPARATOR = ":"
MAX_CELL_CHARS = 200
_RATING_RE = re.compile(r"^\+?(\d+)(\.0*)?$")


@dataclass
class Responses:
    """Validated responses, split into the analysed participants and the excluded ones.

    ``data`` is a tidy DataFrame of the included participants only, with columns
    ``participant, example, scene, source, quality, match`` (ratings as int, source normalised to
    ``real``/``generated``). ``excluded`` lists ``{"participant", "reason"}`` for everyone left out.
    """

    data: pd.DataFrame
    excluded: list[dict] = field(default_factory=list)
    stimuli: list[tuple[str, str]] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    layout: str = "tidy"
    simulated: bool = False
    ignored_columns: list[str] = field(default_factory=list)
    flags_checked: list[str] = field(default_factory=list)


@dataclass
class _Parsed:
    """What a layout parser found: rating rows, flag failures per participant, and who was seen."""

    rows: list
    failed: dict
    checked: list
    participants: set
    ignored: list


@dataclass
class _Row:
    """One validated rating pair with where it came from (for messages)."""

    participant: str
    example: str
    scene: str
    source: str
    quality: int | None
    match: int | None
    line: int
    file: str


def read_responses(paths, layout: str = "auto") -> Responses:
    """Read one or more tidy or wide responses CSVs, validate them and apply the exclusion rules.

    ``paths``: a path or a list of paths (e.g. one downloaded file per participant); their rows
    are pooled. ``layout`` is ``"tidy"``, ``"wide"`` or ``"auto"`` (per file: wide when there is
    no ``source`` column and some column is named ``<rating>:<scene>:<example>:<source>``).
    Raises :class:`UserError` (with the file and CSV line) for missing columns, ratings that are
    not integers in 1-5, duplicated participant x stimulus rows and unknown sources.
    """
    if layout not in ("auto", "tidy", "wide"):
        raise UserError(f"unknown CSV layout {layout!r}: use tidy, wide or auto")
    paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not paths:
        raise UserError("no responses file given")
    pooled = _Parsed([], {}, [], set(), [])
    layouts, simulated = set(), False
    for path in paths:
        header, records = _read_csv(path)
        kind = layout
        if kind == "auto":
            kind = "wide" if "source" not in header and any(WIDE_SEPARATOR in h for h in header) else "tidy"
        parsed = (_parse_tidy if kind == "tidy" else _parse_wide)(path, header, records)
        layouts.add(kind)
        pooled.rows += parsed.rows
        for participant, failed in parsed.failed.items():
            pooled.failed.setdefault(participant, set()).update(failed)
        pooled.checked += [c for c in parsed.checked if c not in pooled.checked]
        pooled.participants |= parsed.participants
        pooled.ignored += [c for c in parsed.ignored if c not in pooled.ignored]
        simulated |= "simulated" in header and any(
            _flag(path, line, "simulated", rec.get("simulated", "")) for line, rec in records
        )
    name = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files"
    return _apply_exclusions(name, pooled, "/".join(sorted(layouts)), simulated)


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Return the stripped header and ``(line number, {column: stripped cell})`` per data row."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise UserError(f"{path}: the file is empty") from None
    except csv.Error as exc:
        raise UserError(f"{path}: line 1: not a readable CSV header ({exc})") from None
    _check_header(path, header)
    records = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            line = reader.line_num
            if len(cells) > len(header):
                raise UserError(f"{path}: line {line}: {len(cells)} cells but the header has {len(header)} columns")
            cells = cells + [""] * (len(header) - len(cells))
            records.append((line, {h: _cell(path, line, h, c) for h, c in zip(header, cells)}))
    except csv.Error as exc:
        raise UserError(f"{path}: line {reader.line_num}: not readable as CSV ({exc})") from None
    if not records:
        raise UserError(f"{path}: the file has a header but no responses")
    return header, records


def _check_header(path: Path, header: list[str]) -> None:
    seen = set()
    for name in header:
        if not name:
            raise UserError(f"{path}: line 1: a column has no name")
        if name in seen:
            raise UserError(f"{path}: line 1: column {name!r} appears twice")
        seen.add(name)


def _cell(path: Path, line: int, column: str, raw: str) -> str:
    """Strip a cell and refuse what no rating file should hold (control characters, huge cells)."""
    value = raw.strip()
    if len(value) > MAX_CELL_CHARS:
        raise UserError(f"{path}: line {line}: column {column!r}: cell longer than {MAX_CELL_CHARS} characters")
    if any(ord(ch) < 32 for ch in value):
        raise UserError(f"{path}: line {line}: column {column!r}: control characters in the cell")
    return value


def _rating(path: Path, line: int, column: str, value: str) -> int | None:
    """Parse a 1-5 integer rating; an empty cell means unanswered (``None``)."""
    if value == "":
        return None
    found = _RATING_RE.match(value)
    if not found:
        raise UserError(f"{path}: line {line}: column {column!r}: rating {value!r} is not an integer 1-5")
    rating = int(found.group(1))
    if not 1 <= rating <= 5:
        raise UserError(f"{path}: line {line}: column {column!r}: rating {rating} is outside 1-5")
    return rating


def _source(path: Path, line: int, column: str, value: str) -> str:
    source = SOURCE_ALIASES.get(value.lower())
    if source is None:
        raise UserError(
            f"{path}: line {line}: column {column!r}: unknown source {value!r} (use real or generated; fake is accepted)"
        )
    return source


def _flag(path: Path, line: int, column: str, value: str) -> bool | None:
    """A pass/fail cell: ``True``/``False``, or ``None`` when empty (not recorded)."""
    word = value.lower()
    if word == "":
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UserError(f"{path}: line {line}: column {column!r}: {value!r} is not true/false")


def _text(path: Path, line: int, column: str, value: str) -> str:
    if value == "":
        raise UserError(f"{path}: line {line}: column {column!r} is empty")
    return value


def _read_flags(path: Path, line: int, rec: dict, parsed: _Parsed, participant: str) -> None:
    """Record a participant's screening/attention failures: any ``false`` cell counts."""
    parsed.participants.add(participant)
    for column in FLAG_COLUMNS:
        if column in rec and _flag(path, line, column, rec[column]) is False:
            parsed.failed.setdefault(participant, set()).add(column)


def _parse_tidy(path: Path, header: list[str], records) -> _Parsed:
    missing = [c for c in REQUIRED_TIDY if c not in header]
    if missing:
        raise UserError(f"{path}: line 1: missing column(s) {', '.join(missing)} (a tidy file needs {', '.join(REQUIRED_TIDY)})")
    known = set(REQUIRED_TIDY) | set(FLAG_COLUMNS) | {"example", "simulated"}
    checked = [c for c in FLAG_COLUMNS if c in header]
    parsed = _Parsed([], {}, checked, set(), [h for h in header if h not in known])
    for line, rec in records:
        participant = _text(path, line, "participant", rec["participant"])
        scene = _text(path, line, "scene", rec["scene"])
        example = _text(path, line, "example", rec["example"]) if "example" in rec else scene
        parsed.rows.append(
            _Row(
                participant=participant,
                example=example,
                scene=scene,
                source=_source(path, line, "source", rec["source"]),
                quality=_rating(path, line, "quality", rec["quality"]),
                match=_rating(path, line, "match", rec["match"]),
                line=line,
                file=str(path),
            )
        )
        _read_flags(path, line, rec, parsed, participant)
    return parsed


def wide_column(rating: str, scene: str, example: str, source: str) -> str:
    """The wide-export column name of one rating of one stimulus: ``rating:scene:example:source``."""
    return WIDE_SEPARATOR.join((rating, scene, example, source))


def _wide_columns(path: Path, header: list[str]) -> tuple[dict, list[str]]:
    """Map ``(scene, example, source) -> {rating: column}`` from a wide header."""
    stimuli, ignored = {}, []
    for name in header:
        if WIDE_SEPARATOR not in name:
            if name not in ("participant", "simulated", *FLAG_COLUMNS):
                ignored.append(name)
            continue
        parts = [p.strip() for p in name.split(WIDE_SEPARATOR)]
        if len(parts) != 4 or parts[0] not in RATINGS or not all(parts):
            raise UserError(
                f"{path}: line 1: column {name!r} is not of the form rating:scene:example:source "
                "(rating is quality or match)"
            )
        source = _source(path, 1, name, parts[3])
        stimuli.setdefault((parts[1], parts[2], source), {})[parts[0]] = name
    if "participant" not in header:
        raise UserError(f"{path}: line 1: missing column participant")
    if not stimuli:
        raise UserError(f"{path}: line 1: no rating columns (rating:scene:example:source)")
    for (scene, example, source), cols in stimuli.items():
        for rating in RATINGS:
            if rating not in cols:
                raise UserError(f"{path}: line 1: missing column {wide_column(rating, scene, example, source)}")
    return stimuli, ignored


def _parse_wide(path: Path, header: list[str], records) -> _Parsed:
    stimuli, ignored = _wide_columns(path, header)
    parsed = _Parsed([], {}, [c for c in FLAG_COLUMNS if c in header], set(), ignored)
    for line, rec in records:
        participant = _text(path, line, "participant", rec["participant"])
        for (scene, example, source), cols in stimuli.items():
            quality = _rating(path, line, cols["quality"], rec[cols["quality"]])
            match = _rating(path, line, cols["match"], rec[cols["match"]])
            if quality is not None or match is not None:
                parsed.rows.append(_Row(participant, example, scene, source, quality, match, line, str(path)))
        _read_flags(path, line, rec, parsed, participant)
    return parsed


def _check_consistency(rows: list[_Row]) -> None:
    """Refuse duplicated participant x stimulus rows and an example filed under two scenes."""
    seen: dict[tuple, _Row] = {}
    scene_of: dict[str, _Row] = {}
    for row in rows:
        key = (row.participant, row.example, row.source)
        if key in seen:
            raise UserError(
                f"{row.file}: line {row.line}: participant {row.participant!r} rated example {row.example!r} "
                f"({row.source}) already on {_where(seen[key], row)}"
            )
        seen[key] = row
        first = scene_of.setdefault(row.example, row)
        if first.scene != row.scene:
            raise UserError(
                f"{row.file}: line {row.line}: example {row.example!r} is in scene {row.scene!r} here "
                f"but in scene {first.scene!r} on {_where(first, row)}"
            )


def _where(earlier: _Row, row: _Row) -> str:
    return f"line {earlier.line}" if earlier.file == row.file else f"{earlier.file} line {earlier.line}"


def _design(path: str, rows: list[_Row]) -> tuple[list[tuple[str, str]], list[str]]:
    """The full stimulus set (every (example, source) anyone rated) and the scenes, sorted."""
    stimuli = sorted({(r.example, r.source) for r in rows})
    scenes = sorted({r.scene for r in rows})
    for scene in scenes:
        present = {r.source for r in rows if r.scene == scene}
        if present != set(SOURCES):
            lacking = ", ".join(sorted(set(SOURCES) - present))
            raise UserError(f"{path}: scene {scene!r} has no {lacking} stimuli: the design needs both sources per scene")
    return stimuli, scenes


def _missing_reason(have: dict, stimuli: list[tuple[str, str]]) -> str | None:
    """Why a participant's ratings are incomplete, or ``None`` when they rated everything."""
    gaps = []
    for stim in stimuli:
        row = have.get(stim)
        if row is None:
            gaps.append(f"{stim[0]}/{stim[1]}")
        else:
            gaps.extend(f"{stim[0]}/{stim[1]} {r}" for r in RATINGS if getattr(row, r) is None)
    if not gaps:
        return None
    shown = ", ".join(gaps[:4]) + (f" and {len(gaps) - 4} more" if len(gaps) > 4 else "")
    return f"incomplete: missing {len(gaps)} rating(s) ({shown}); repeated-measures ANOVA needs complete cases"


def _apply_exclusions(path: str, parsed: _Parsed, layout: str, simulated: bool) -> Responses:
    rows = parsed.rows
    if not rows:
        raise UserError(f"{path}: no ratings in the file")
    _check_consistency(rows)
    stimuli, scenes = _design(path, rows)
    by_participant: dict[str, dict] = {}
    for row in rows:
        by_participant.setdefault(row.participant, {})[(row.example, row.source)] = row
    included, excluded = [], []
    for participant in sorted(parsed.participants):
        failed = [c for c in FLAG_COLUMNS if c in parsed.failed.get(participant, ())]
        if failed:
            words = " and ".join("screening" if f == "screening_passed" else "attention check" for f in failed)
            excluded.append({"participant": participant, "reason": f"failed the {words}"})
            continue
        reason = _missing_reason(by_participant.get(participant, {}), stimuli)
        if reason:
            excluded.append({"participant": participant, "reason": reason})
            continue
        included.extend(by_participant[participant].values())
    data = pd.DataFrame(
        [(r.participant, r.example, r.scene, r.source, r.quality, r.match) for r in included],
        columns=["participant", "example", "scene", "source", "quality", "match"],
    ).astype({"quality": "int64", "match": "int64"})
    return Responses(data, excluded, stimuli, scenes, layout, simulated, parsed.ignored, parsed.checked)
