"""Audio input/output, channel handling and the model's IR <-> log-spectrogram representation.

I/O works on float64 NumPy arrays of shape ``(n_channels, n_samples)`` or
``(n_samples,)`` with the sample rate in Hz alongside. The model's representation
(IR <-> log-magnitude spectrogram, Griffin-Lim) lives here too, next to the I/O it builds on.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from i2r.errors import UserError
from i2r.files import atomic_write_bytes

if TYPE_CHECKING:  # torch is imported lazily so that audio I/O starts fast
    import torch

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
    missing = _wav_bytes_missing(path)
    if missing:
        # libsndfile reads a cut-off WAV without complaint; an IR without its tail would be
        # measured as if it had decayed
        raise UserError(f"{path}: truncated WAV: its header promises {missing:,} bytes of samples more than the file holds")
    return Audio(samples=np.ascontiguousarray(data.T), fs=int(fs), path=str(path))


def _wav_bytes_missing(path: Path) -> int:
    """How many bytes of the ``data`` chunk a RIFF/WAVE file's header declares beyond the end
    of the file (0 for other formats, whole files, and the sizes 0 and 0xFFFFFFFF that streaming
    writers leave when they cannot seek back)."""
    with open(path, "rb") as handle:
        if handle.read(12)[8:12] != b"WAVE":
            return 0
        size = os.fstat(handle.fileno()).st_size
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return 0
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, handle.tell() + chunk_size - size)
            handle.seek(chunk_size + chunk_size % 2, os.SEEK_CUR)  # chunks are word-aligned


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


# --- the model's representation: IR <-> log-magnitude spectrogram ----------------------------
# Singh et al. (2021), Sec. 3 "Audio representation": 22,050 Hz, 5.94 s, STFT with a 1024-sample
# window and hop 256, Nyquist bin dropped (512 x 512), log|X|.

SAMPLE_RATE = 22050
IR_SECONDS = 5.94
IR_SAMPLES = round(SAMPLE_RATE * IR_SECONDS)  # 130,977 samples -> exactly 512 STFT frames
N_FFT = 1024
HOP = 256
FULL_RESOLUTION = N_FFT // 2  # 512 frequency bins (Nyquist dropped) x 512 frames
LOG_FLOOR = 1e-5
"""Added to |X| before the log, so silence maps to log(1e-5) = -11.5 instead of -inf.

For a peak-normalised IR the direct sound reaches |X| ~ 512 (the Hann window's sum), so the
floor sits ~154 dB below it: far under any measured IR's noise floor (60-90 dB down), yet far
enough above float32 rounding (|X| ~ 1e-6) that round-off never shapes the spectrogram.
"""


def prepare_ir(samples: np.ndarray, fs: int, *, normalize: bool = True) -> np.ndarray:
    """Bring any IR to the model's format: mono, 22,050 Hz, 5.94 s, float32, shape ``(130977,)``.

    ``samples`` is ``(n_samples,)`` or ``(n_channels, n_samples)`` at ``fs`` Hz. Mono follows
    :func:`to_mono` (W of B-format, else the mean of the channels); the signal is resampled
    polyphase, then cut or zero-padded at the end. With ``normalize`` (the default, as in the
    original code) the result is scaled to a peak of 1: decay times, clarity and DRR are
    level-independent, and one level makes spectrograms of differently calibrated recordings
    comparable. Raises :class:`UserError` for a silent IR.
    """
    mono, _ = to_mono(np.asarray(samples, dtype=np.float64))
    # Only the first 5.94 s survive: cut before resampling (with a margin for the FIR's tail).
    keep = int(np.ceil(IR_SAMPLES * fs / SAMPLE_RATE)) + 64
    mono = resample(mono[:keep], int(fs), SAMPLE_RATE)[:IR_SAMPLES]
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if not peak > 0.0:
        raise UserError("the IR is silent (all samples are zero)")
    out = np.zeros(IR_SAMPLES, dtype=np.float32)
    out[: mono.size] = mono / peak if normalize else mono
    return out


def load_ir(path: str | os.PathLike, *, normalize: bool = True) -> np.ndarray:
    """:func:`load_audio` then :func:`prepare_ir`: a file -> ``(130977,)`` float32 at 22,050 Hz."""
    audio = load_audio(path)
    try:
        return prepare_ir(audio.samples, audio.fs, normalize=normalize)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def _as_tensor(x) -> torch.Tensor:
    import torch

    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


@lru_cache(maxsize=8)
def _hann(device, dtype):
    import torch

    return torch.hann_window(N_FFT, periodic=True, device=device, dtype=dtype)


def _overlap_add(frames):
    """``(B, F, 1024)`` frames at hop 256 -> ``(B, (F + 3) * 256)`` summed signal.

    The hop is a quarter of the window, so each output block of 256 samples is the sum of four
    frame quarters: four strided additions instead of a generic scatter.
    """
    import torch

    batch, n_frames, _ = frames.shape
    overlap = N_FFT // HOP
    out = torch.zeros(batch, n_frames + overlap - 1, HOP, dtype=frames.dtype, device=frames.device)
    for k in range(overlap):
        out[:, k : k + n_frames] += frames[:, :, k * HOP : (k + 1) * HOP]
    return out.reshape(batch, -1)


@lru_cache(maxsize=8)
def _window_envelope(device, dtype):
    """Overlap-added squared window, the least-squares ISTFT's normaliser (Griffin & Lim 1984)."""
    n_frames = 1 + IR_SAMPLES // HOP
    squared = _hann(device, dtype).square().expand(1, n_frames, N_FFT)
    return _overlap_add(squared)[0, N_FFT // 2 : N_FFT // 2 + IR_SAMPLES]


def _stft(x):
    """``(B, 130977)`` real -> ``(B, 513, 512)`` complex: centred frames, zero padding.

    An IR is silent before its start and after 5.94 s, so the ends are padded with zeros;
    reflect padding would mirror the direct sound of an IR that starts at sample 0 into a
    pre-echo, and Griffin-Lim then stalls (measured: spectral convergence 0.32 vs 0.16 on a
    living-room IR whose peak is at sample 6).
    """
    import torch

    window = _hann(x.device, x.dtype)
    return torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)


def _istft(spec):
    """``(B, 513, 512)`` complex -> ``(B, 130977)`` real: the least-squares inverse of :func:`_stft`.

    Same numbers as ``torch.istft`` (tested), written out because Griffin-Lim calls it every
    iteration and this is 2-10x faster on CPU (irfft + four strided additions).
    """
    import torch

    dtype = spec.real.dtype
    frames = torch.fft.irfft(spec.transpose(-1, -2), n=N_FFT, dim=-1) * _hann(spec.device, dtype)
    signal = _overlap_add(frames)[:, N_FFT // 2 : N_FFT // 2 + IR_SAMPLES]
    return signal / _window_envelope(spec.device, dtype)


def _pool_factor(resolution: int) -> int:
    if resolution <= 0 or FULL_RESOLUTION % resolution:
        raise ValueError(f"resolution must divide {FULL_RESOLUTION}, got {resolution}")
    return FULL_RESOLUTION // resolution


def ir_to_logspec(ir, resolution: int = FULL_RESOLUTION):
    """IR ``(..., 130977)`` -> log-magnitude spectrogram ``(..., R, R)`` as a float32 torch tensor.

    Rows are frequency (bin k = k * 22050 / 1024 Hz, DC first, Nyquist dropped), columns are STFT
    frames (hop 256 = 11.6 ms). The value is ``log(|X| + LOG_FLOOR)`` (natural log) with a
    periodic Hann window and zero padding at both ends (Singh et al. 2021, Sec. 3). For ``resolution`` R < 512 the power
    ``|X|^2`` is averaged over (512/R) x (512/R) blocks before the log, so a coarse spectrogram
    keeps the energy of each block (and thus the energy decay) instead of aliasing it.
    """
    import torch

    x = _as_tensor(ir).to(torch.float32)
    if x.shape[-1] != IR_SAMPLES:
        raise ValueError(f"an IR has {IR_SAMPLES} samples (5.94 s at 22,050 Hz), got {x.shape[-1]}")
    batch = x.shape[:-1]
    magnitude = _stft(x.reshape(-1, IR_SAMPLES))[:, :-1, :].abs()
    factor = _pool_factor(resolution)
    if factor > 1:
        power = torch.nn.functional.avg_pool2d(magnitude.square().unsqueeze(1), factor).squeeze(1)
        magnitude = power.sqrt()
    return torch.log(magnitude + LOG_FLOOR).reshape(*batch, resolution, resolution)


def _full_magnitude(logspec):
    """Raw log-spectrogram ``(B, R, R)`` -> linear magnitude ``(B, 513, 512)`` incl. a zero Nyquist row.

    A pooled spectrogram is upsampled bilinearly in the log domain first: an exponential decay
    is a straight line there, so interpolation keeps decay slopes where block-repeating would
    leave stairs.
    """
    import torch

    resolution = logspec.shape[-1]
    if _pool_factor(resolution) > 1:
        logspec = torch.nn.functional.interpolate(
            logspec.unsqueeze(1), size=(FULL_RESOLUTION, FULL_RESOLUTION), mode="bilinear", align_corners=False
        ).squeeze(1)
    magnitude = (torch.exp(logspec) - LOG_FLOOR).clamp_min(0.0)
    return torch.nn.functional.pad(magnitude, (0, 0, 0, 1))


def _random_phase(shape, generator, device):
    import torch

    phase = torch.rand(shape, generator=generator, device=device) * (2 * torch.pi)
    return torch.polar(torch.ones_like(phase), phase)


def logspec_to_ir(
    logspec,
    method: str = "griffin-lim",
    n_iter: int = 24,
    momentum: float = 0.99,
    seed: int | None = 0,
):
    """Invert a raw (denormalised) log-magnitude spectrogram ``(..., R, R)`` to IRs ``(..., 130977)``.

    ``method="griffin-lim"`` runs the fast Griffin-Lim algorithm (Perraudin, Balazs & Sondergaard,
    "A fast Griffin-Lim algorithm", WASPAA 2013): Griffin & Lim's alternating projections with
    an extrapolation step of weight ``momentum`` (0 gives the classic algorithm), batched in
    torch, starting from uniformly random phase. The default 24 iterations bring the spectral
    convergence || |STFT(y)| - M || / ||M|| of a hall IR from 0.63 (random phase) to 0.10
    (0.13 at 16, 0.08 at 32, 0.04 at 100) for ~0.1 s of one CPU core per IR; see
    ``benchmarks/bench_spectrogram.py``. ``method="random-phase"`` is the original code's single
    inverse STFT with uniformly random phase, kept for comparison. The output
    level follows the spectrogram (no peak normalisation). ``seed`` fixes the initial phase
    (``None`` draws a fresh one). Returns a float32 torch tensor.
    """
    import torch

    if method not in ("griffin-lim", "random-phase"):
        raise ValueError(f"method must be 'griffin-lim' or 'random-phase', got {method!r}")
    spec = _as_tensor(logspec).to(torch.float32)
    batch = spec.shape[:-2]
    magnitude = _full_magnitude(spec.reshape(-1, *spec.shape[-2:]))
    generator = torch.Generator(device=magnitude.device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    estimate = magnitude * _random_phase(magnitude.shape, generator, magnitude.device)
    if method == "griffin-lim":
        estimate = _fast_griffin_lim(magnitude, estimate, n_iter, momentum)
    return _istft(estimate).reshape(*batch, IR_SAMPLES)


def _fast_griffin_lim(magnitude, estimate, n_iter: int, momentum: float):
    """Perraudin et al. (2013), Algorithm 2: c_n = P_C1(P_C2(t_n) + alpha (t_n - t_{n-1}))."""
    import torch

    # Real and imaginary parts are kept as separate planes: torch's complex abs and
    # complex-by-real products cost several times the FFTs here (measured on CPU).
    previous_re, previous_im = torch.zeros_like(magnitude), torch.zeros_like(magnitude)
    for _ in range(n_iter):
        consistent = _stft(_istft(estimate))
        re = torch.lerp(previous_re, consistent.real, 1.0 + momentum)  # t_n + alpha (t_n - t_{n-1})
        im = torch.lerp(previous_im, consistent.imag, 1.0 + momentum)
        previous_re, previous_im = consistent.real, consistent.imag
        ratio = magnitude / torch.hypot(re, im).clamp_min_(1e-30)
        estimate = torch.complex(re.mul_(ratio), im.mul_(ratio))
    return estimate


# --- normalisation into the generator's tanh range ---------------------------------------------


@dataclass(frozen=True)
class SpectrogramNorm:
    """An affine map of raw log|X| into tanh's range, fitted on the training set.

    ``normalize`` sends ``low`` to ``-scale`` and ``high`` to ``+scale`` and clips there; with
    ``scale`` < 1 the targets stay inside (-1, 1), which a tanh output reaches with finite
    pre-activations. One global range (rather than per-frequency statistics) keeps
    ``denormalize`` a single monotone affine map, so ``exp(denormalize(G(z)))`` is a linear
    magnitude whose frequency sums and decay slopes (the T60p proxy, Griffin-Lim) mean the same
    for every bin. ``low``/``high`` are percentiles of the training spectrograms' values rather
    than min/max so that one odd recording cannot stretch the range of all the others.
    The original code min-max scaled each example on its own and inverted with hard-coded
    constants; here the statistics travel with the checkpoint (``to_dict``/``from_dict``).
    """

    low: float
    high: float
    scale: float = 0.9
    low_percentile: float = 0.01
    high_percentile: float = 99.99
    resolution: int = FULL_RESOLUTION
    n_examples: int = 0

    def __post_init__(self):
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise UserError(f"spectrogram norm: need finite low < high, got low={self.low}, high={self.high}")
        if not 0.0 < self.scale <= 1.0:
            raise UserError(f"spectrogram norm: scale must lie in (0, 1], got {self.scale}")

    def normalize(self, x):
        """Raw log|X| (tensor or array, any shape) -> values in [-scale, scale]."""
        unit = 2.0 * (x - self.low) / (self.high - self.low) - 1.0
        clipped = unit.clamp(-1.0, 1.0) if hasattr(unit, "clamp") else np.clip(unit, -1.0, 1.0)
        return clipped * self.scale

    def denormalize(self, y):
        """Inverse of :meth:`normalize` (exact inside the range): tanh output -> raw log|X|."""
        return self.low + (y / self.scale + 1.0) * 0.5 * (self.high - self.low)

    def to_dict(self) -> dict:
        """Plain floats and ints, for checkpoints (``torch.load(weights_only=True)`` safe) and JSON."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict) -> "SpectrogramNorm":
        """Rebuild from :meth:`to_dict`; a missing field is a :class:`UserError` naming it."""
        missing = [name for name in ("low", "high") if name not in data]
        if missing:
            raise UserError(f"spectrogram norm: missing field(s) {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{k: (int(v) if k in ("resolution", "n_examples") else float(v)) for k, v in known.items()})


def _logspec_of(item):
    """A log-spectrogram from what a data set or iterable yields (a mapping with ``logspec`` or an array)."""
    value = item["logspec"] if isinstance(item, dict) else item
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _iter_logspecs(logspecs):
    """The items of what :func:`fit_spectrogram_norm` accepts, in order."""
    if hasattr(logspecs, "iter_logspecs"):
        return logspecs.iter_logspecs()
    if hasattr(logspecs, "__getitem__"):
        return (logspecs[i] for i in range(len(logspecs)))
    return iter(logspecs)


def mean_normalized_spectrogram(logspecs, norm: SpectrogramNorm) -> np.ndarray:
    """The mean over ``logspecs`` of ``norm.normalize(logspec)``: ``(R, R)`` float64, in [-scale, scale].

    ``logspecs`` is what :func:`fit_spectrogram_norm` takes (a data set with ``iter_logspecs()``
    gives each distinct IR once). It is where the small preset's generator starts
    (:class:`i2r.models.generator.Generator`'s ``prior``).
    """
    total, count = None, 0
    for item in _iter_logspecs(logspecs):
        values = norm.normalize(_logspec_of(item).astype(np.float64))
        values = values.reshape(values.shape[-2:])
        total = values if total is None else total + values
        count += 1
    if total is None:
        raise UserError("cannot average the spectrograms: the training set is empty")
    return total / count


def fit_spectrogram_norm(
    logspecs,
    *,
    low_percentile: float = 0.01,
    high_percentile: float = 99.99,
    scale: float = 0.9,
    values_per_example: int = 16384,
    seed: int = 0,
) -> SpectrogramNorm:
    """Fit a :class:`SpectrogramNorm` on raw training log-spectrograms.

    ``logspecs`` is an iterable of ``(..., R, R)`` tensors/arrays, a data set whose items are
    mappings with a ``"logspec"`` entry, or an object with ``iter_logspecs()`` (as
    :class:`i2r.data.datasets.PairedDataset` has: each distinct IR once, no image decoding). Each
    example contributes up to ``values_per_example`` values drawn at random (fixed ``seed``), so
    memory stays bounded on large sets and every example weighs the same.
    """
    rng = np.random.default_rng(seed)
    samples, resolution = [], FULL_RESOLUTION
    for item in _iter_logspecs(logspecs):
        values = _logspec_of(item)
        resolution = values.shape[-1]
        flat = values.reshape(-1).astype(np.float64)
        if flat.size > values_per_example:
            flat = rng.choice(flat, values_per_example, replace=False)
        samples.append(flat)
    if not samples:
        raise UserError("cannot fit spectrogram normalisation: the training set is empty")
    pooled = np.concatenate(samples)
    low, high = np.percentile(pooled, [low_percentile, high_percentile])
    return SpectrogramNorm(
        low=float(low),
        high=float(high),
        scale=scale,
        low_percentile=low_percentile,
        high_percentile=high_percentile,
        resolution=int(resolution),
        n_examples=len(samples),
    )
