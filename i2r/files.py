"""Writing results so that nothing a user made is lost: every write is atomic.

A file is written next to its destination under a temporary name, flushed to disk and renamed
over the target (``os.replace`` is atomic on POSIX and Windows), so a crash leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from i2r.errors import UserError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file that replaces it on success.

    ``mode`` is ``"w"`` (text) or ``"wb"`` (binary). On an exception the temporary file is removed
    and the destination is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only, got mode {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        # name the file the caller asked for, not the temporary one beside it
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        # mkstemp makes the file private (0600); results should get the permissions of any new file.
        os.chmod(tmp, 0o666 & ~_umask())
        kwargs = {"encoding": encoding, "newline": ""} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def writable_dir(path: str | os.PathLike) -> Path:
    """Make sure results can be written into folder ``path`` before any work starts, without
    creating it (a run refused later for another reason leaves nothing behind).

    A probe file is written to and removed from the folder, or from its nearest existing parent
    when it does not exist yet: permission bits do not tell (root ignores them, and /proc or a
    read-only mount refuses anyway). Raises :class:`UserError` naming ``path`` when it or a parent
    is a file, or nothing can be written there.
    """
    path = Path(path)
    _check_folder_writable(path, path)
    return path


def writable_file(path: str | os.PathLike) -> Path:
    """Make sure file ``path`` can be written (atomically, beside it) before any work starts:
    it must not be a folder, and its folder must be writable (see :func:`writable_dir`)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a file")
    _check_folder_writable(path.parent, path)
    return path


def _check_folder_writable(folder: Path, named: Path) -> None:
    """See :func:`writable_dir`; messages name the user's ``named`` path."""
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        which = "" if existing == named else f"{existing} "
        raise UserError(f"{named}: {which}is a file, expected a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UserError(f"{named}: cannot write into {existing} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def journal_writer(path: str | os.PathLike, identity: dict) -> Iterator:
    """Start the journal that :func:`read_journal` reads: ``identity`` on the first line, then the
    yielded ``append(*records)`` writes one JSON line per record and has them on disk (flushed and
    synced) when it returns, so an interruption loses at most the unit of work in progress."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(identity) + "\n")

        def append(*records: dict) -> None:
            handle.writelines(json.dumps(record) + "\n" for record in records)
            handle.flush()
            os.fsync(handle.fileno())

        yield append


def read_journal(path: str | os.PathLike, identity: dict) -> list[dict]:
    """The records of a JSON-lines journal that an interrupted run wrote (its first line the run's
    ``identity``, then one object per line), or none when it was written under another identity.
    A line cut off by the interruption is left out: its work is simply done again."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    try:
        if json.loads(lines[0]) != identity:
            return []
    except ValueError:
        return []
    records = []
    for line in lines[1:]:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MB blocks (checkpoints run to hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_savefig(figure, path: str | os.PathLike, format: str = "png", **savefig_options) -> None:
    """Save a matplotlib ``figure`` to ``path`` atomically (``format``: ``"png"`` or ``"pdf"``);
    ``savefig_options`` (``dpi``, ``bbox_inches``) go to ``Figure.savefig``. The figure stays open."""
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format=format, **savefig_options)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints survive a kill mid-write)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
