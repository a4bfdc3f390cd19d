"""Audio input/output and channel handling.

Everything here works on float64 NumPy arrays of shape ``(n_channels, n_samples)`` or
``(n_samples,)`` with the sample rate in Hz alongside. The model's representation
(IR <-> log-magnitude spectrogram, Griffin-Lim) lives here too, next to the I/O it builds on.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from i2r.errors import UserError
from i2r.files import atomic_write_bytes

AUDIO_EXTENSIONS = (".wav", ".flac")


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` of shape ``(n_channels, n_samples)``, float64, rate ``fs`` in Hz."""

    samples: np.ndarray
    fs: int
    path: str = ""


def load_audio(path: str | os.PathLike) -> Audio:
    """Read a WAV or FLAC file of any sample rate and sample format into float64 in [-1, 1].

    Raises :class:`UserError` for a missing, unreadable, empty or non-finite file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an audio file")
    try:
        data, fs = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not readable as audio ({exc})") from None
    if data.size == 0:
        raise UserError(f"{path}: the file holds no samples")
    if not np.all(np.isfinite(data)):
        raise UserError(f"{path}: the file holds NaN or infinite samples")
    return Audio(samples=np.ascontiguousarray(data.T), fs=int(fs), path=str(path))


def to_mono(samples: np.ndarray) -> tuple[np.ndarray, str]:
    """Reduce ``(n_channels, n_samples)`` to ``(n_samples,)`` and say how.

    One channel is kept; four channels are taken as first-order Ambisonic B-format and the
    omnidirectional W channel (channel 0, FuMa/ACN order alike) is used; any other count is
    averaged (stereo, binaural).
    """
    samples = np.atleast_2d(samples)
    n_channels = samples.shape[0]
    if n_channels == 1:
        return samples[0], "mono"
    if n_channels == 4:
        return samples[0], "B-format: W channel"
    label = "stereo" if n_channels == 2 else f"{n_channels} channels"
    return samples.mean(axis=0), f"{label}: mean of channels"


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis (Kaiser-windowed FIR, scipy's ``resample_poly``)."""
    if fs_in == fs_out:
        return x
    g = gcd(int(fs_in), int(fs_out))
    return resample_poly(x, int(fs_out) // g, int(fs_in) // g, axis=-1)


def save_wav(path: str | os.PathLike, samples: np.ndarray, fs: int, subtype: str = "FLOAT") -> None:
    """Write ``samples`` (``(n_samples,)`` or ``(n_channels, n_samples)``) as WAV, atomically.

    32-bit float by default, so nothing clips; pass ``subtype="PCM_16"`` for 16-bit.
    """
    samples = np.asarray(samples)
    frames = samples.T if samples.ndim == 2 else samples
    buffer = io.BytesIO()
    sf.write(buffer, frames, int(fs), format="WAV", subtype=subtype)
    atomic_write_bytes(path, buffer.getvalue())


def find_audio_files(paths) -> list[Path]:
    """Expand files and folders (walked recursively, sorted) into a list of audio files.

    A file given by name is kept whatever its extension, so the loader can report what is wrong
    with it; inside folders only ``.wav`` and ``.flac`` are picked up.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS))
        else:
            found.append(path)
    return found
