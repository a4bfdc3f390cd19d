"""Octave and one-third-octave filter banks (IEC 61260-1:2014), zero-phase, in the frequency domain.

Band mid-frequencies and edges follow IEC 61260-1 base-10 exactly: with the octave frequency ratio
``G = 10**(3/10)`` and the reference ``f_r = 1000 Hz``, the mid-band frequency of band ``x`` of a
``1/b``-octave bank (``b`` odd) is ``f_m = f_r * G**(x/b)`` and its edges are
``f_m * G**(-1/(2b))`` and ``f_m * G**(+1/(2b))``. Bands are *labelled* with the nominal
frequencies of IEC 61260-1 Annex E (125, 250, ... Hz) but filtered at the exact ones.

Filtering is zero-phase (ISO 3382-1 asks for zero-phase or time-reversed filtering so that the
filter's own decay does not add to the room's): one real FFT of the whole batch is multiplied by
a real, non-negative magnitude response and transformed back. The magnitude is that of an analog
Butterworth band-pass of order ``2*order`` (``order`` poles per band side) with its -3 dB points on
the exact band edges, applied *once*. (``sosfiltfilt`` with the same design would apply the
magnitude squared, putting the edges at -6 dB and narrowing the band; designing directly in the
frequency domain avoids that.) Adjacent bands cross at -3 dB, so their energies add up to the
broadband energy to first order.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue

import numpy as np
from scipy import fft as sp_fft

from i2r.errors import UserError

G = 10.0 ** (3.0 / 10.0)
"""IEC 61260-1 base-10 octave frequency ratio."""
REFERENCE_HZ = 1000.0

# IEC 61260-1 Annex E nominal mid-band frequencies of one-third-octave bands, 25 Hz .. 20 kHz
# (band numbers x = -16 .. 13 relative to 1 kHz). Octave bands are every third of them.
_NOMINAL_THIRD = (25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
                  1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500,
                  16000, 20000)
_FIRST_THIRD_X = -16

BANDS_PER_OCTAVE = {"octave": 1, "third": 3}
LOWEST_BAND_HZ = {"octave": 125.0, "third": 100.0}
"""ISO 3382-1 frequency range: octaves from 125 Hz, one-third octaves from 100 Hz."""
NYQUIST_FRACTION = 0.9
"""A band is kept while its upper edge lies below this fraction of the Nyquist frequency."""


def _bands_per_octave(bands: str) -> int:
    try:
        return BANDS_PER_OCTAVE[bands]
    except KeyError:
        raise UserError(f"bands: {bands!r} is not one of {sorted(BANDS_PER_OCTAVE)}") from None


def _all_bands(bands: str) -> tuple[np.ndarray, np.ndarray]:
    """Nominal and exact mid-band frequencies (Hz) of every band from 25 Hz to 20 kHz."""
    b = _bands_per_octave(bands)
    x = np.arange(_FIRST_THIRD_X, _FIRST_THIRD_X + len(_NOMINAL_THIRD))
    nominal = np.asarray(_NOMINAL_THIRD, dtype=float)
    if b == 1:
        keep = x % 3 == 0
        return nominal[keep], REFERENCE_HZ * G ** (x[keep] / 3.0)
    return nominal, REFERENCE_HZ * G ** (x / 3.0)


def band_centres(bands: str, fs: float, lowest_hz: float | None = None) -> np.ndarray:
    """Nominal mid-band frequencies (Hz) of the bands that sample rate ``fs`` supports.

    Rule: from ``lowest_hz`` (default: ISO 3382-1's range, 125 Hz for octaves, 100 Hz for
    one-third octaves) up to the last band whose exact upper edge (IEC 61260-1) lies below
    ``0.9 * fs / 2``. The 10 % margin keeps bands out of the anti-aliasing filter's transition
    band, where converters roll off. At 22.05 kHz: octaves 125 Hz .. 4 kHz (the 8 kHz octave's
    upper edge, 11.2 kHz, is above Nyquist), one-third octaves 100 Hz .. 8 kHz; at 44.1 or 48 kHz
    the octaves reach 8 kHz.

    Returns an array of shape ``(n_bands,)``.
    """
    nominal, exact = _all_bands(bands)
    lowest = LOWEST_BAND_HZ[bands] if lowest_hz is None else float(lowest_hz)
    upper = exact * G ** (1.0 / (2 * _bands_per_octave(bands)))
    keep = (nominal >= lowest) & (upper < NYQUIST_FRACTION * fs / 2.0)
    return nominal[keep]


def exact_centres(bands: str, nominal_hz) -> np.ndarray:
    """Exact IEC 61260-1 mid-band frequencies (Hz) for nominal ones, same shape."""
    all_nominal, all_exact = _all_bands(bands)
    nominal_hz = np.asarray(nominal_hz, dtype=float)
    index = np.searchsorted(all_nominal, nominal_hz)
    if np.any(index >= len(all_nominal)) or np.any(all_nominal[np.minimum(index, len(all_nominal) - 1)] != nominal_hz):
        raise UserError(f"bands: {nominal_hz.tolist()} are not all nominal {bands} frequencies")
    return all_exact[index]


def band_edges(bands: str, nominal_hz) -> tuple[np.ndarray, np.ndarray]:
    """Exact lower and upper band-edge frequencies (Hz), IEC 61260-1: ``f_m * G**(-+1/(2b))``."""
    exact = exact_centres(bands, nominal_hz)
    half = G ** (1.0 / (2 * _bands_per_octave(bands)))
    return exact / half, exact * half


def band_magnitude(freqs_hz: np.ndarray, lower_hz: float, upper_hz: float, order: int) -> np.ndarray:
    """Magnitude response of the analog Butterworth band-pass with -3 dB points at the edges.

    ``|H|^2 = 1 / (1 + ((f^2 - f1*f2) / (f * (f2 - f1)))**(2*order))`` (low-pass prototype of
    ``order`` poles through the band-pass transformation). Returns ``|H|`` on ``freqs_hz``.
    """
    f = np.asarray(freqs_hz, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (f * f - lower_hz * upper_hz) / (f * (upper_hz - lower_hz))
    u = np.where(f > 0, u, np.inf)
    return 1.0 / np.sqrt(1.0 + np.abs(u) ** (2 * order))


def padding_samples(fs: float, lower_hz: float, upper_hz: float, order: int) -> int:
    """Zero padding (samples) that keeps the circular FFT filter's ringing from wrapping around.

    The slowest pole of the ``order``-pole prototype has damping ``sin(pi / (2 order))``; mapped
    to the band-pass it decays at ``sigma = pi * B * sin(pi / (2 order))`` (``B`` = bandwidth in
    Hz). Padding by 28 / sigma seconds leaves the kernel more than 120 dB down before it wraps
    (amplitude e**-14; doubled for the zero-phase kernel's two sides).
    """
    sigma = np.pi * (upper_hz - lower_hz) * np.sin(np.pi / (2 * order))
    return int(np.ceil(28.0 / sigma * fs))


def ringing_time(lower_hz, upper_hz, order: int):
    """The band filter's own decay time (s, 60 dB) -- what a band holding only a click reads.

    The kernel's energy decays at ``2 sigma`` (see :func:`padding_samples`), so
    ``T_f = 60 dB / (10 log10(e) * 2 sigma) = 6.91 / sigma``: about ``4.4 / B`` for order 3
    (``B`` = bandwidth in Hz). Accepts arrays.
    """
    sigma = np.pi * (np.asarray(upper_hz) - np.asarray(lower_hz)) * np.sin(np.pi / (2 * order))
    return 3.0 * np.log(10.0) / sigma


def highpass_ringing_time(cutoff_hz: float, order: int) -> float:
    """Decay time (s, 60 dB) of the broadband high-pass itself: slowest pole damping
    ``sigma = 2 pi f_c sin(pi / (2 order))``, ``T_f = 6.91 / sigma`` (25 ms at 88 Hz, order 3)."""
    return 3.0 * np.log(10.0) / (2.0 * np.pi * cutoff_hz * np.sin(np.pi / (2 * order)))


@functools.cache
def _keep_freed_memory_in_heap() -> None:
    """Once per process: allocate and free one 31 MiB block, so that the chunks' temporaries
    (0.3-4.4 MB each: cell sums, decay curves, Lundeby's frames, the forward spectrum) stay in
    the heap between chunks instead of being faulted in anew.

    glibc starts with a 128 KiB threshold above which it maps each block on its own, and
    trims the heap whenever more than twice that lies free at its top; the threshold follows
    the largest mapped block freed so far, up to 32 MiB (mallopt(3), "dynamic mmap threshold").
    In a process that has never freed a large array, every chunk grew the heap by about 9 MB
    and gave it back: 285-360 page faults and 0.6-1.0 ms of system time per IR (one thread,
    5.94 s IRs), against none once the threshold has risen; a process that has freed a large
    array before (most numerical programs) is already there. The cost: up to 62 MiB of freed
    memory stays with the process. The block is never touched, so no page of it is faulted in;
    with other allocators (macOS, Windows, musl) it is just an allocation and a free."""
    block = np.empty((31 << 20) // 8)
    del block


class Workspace:
    """Chunk-sized arrays kept from one chunk to the next, and from one call to the next.

    A fresh array of a whole chunk is page-faulted in anew whenever the allocator has returned
    the previous one to the system (glibc maps arrays over 32 MB freshly every time), which
    costs about as much as the arithmetic on it, and more when several threads allocate at
    once; reused arrays cost nothing after the first chunk. :meth:`borrowed` hands out the
    workspaces that earlier chunks gave back: one per thread at work, at most one per core kept
    between calls (about 45 MB each at the default chunk size).
    """

    _spare: queue.SimpleQueue = queue.SimpleQueue()

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}
        _keep_freed_memory_in_heap()

    @classmethod
    @contextlib.contextmanager
    def borrowed(cls):
        """A spare workspace (or a new one) for the duration of the ``with`` block."""
        try:
            workspace = cls._spare.get_nowait()
        except queue.Empty:
            workspace = cls()
        try:
            yield workspace
        finally:
            if cls._spare.qsize() < (os.cpu_count() or 1):
                cls._spare.put(workspace)

    def array(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised array of ``shape``: the first rows of the one kept under ``name``
        (allocated again when a row's shape or the dtype changes, or more rows are needed)."""
        kept = self._arrays.get(name)
        if kept is None or kept.shape[1:] != tuple(shape[1:]) or kept.dtype != dtype or len(kept) < shape[0]:
            kept = self._arrays[name] = np.empty(shape, dtype=dtype)
        return kept[: shape[0]]


class FilterBank:
    """Zero-phase band filtering of a batch of IRs with one forward FFT.

    ``FilterBank(x, fs, lower_hz, upper_hz, order)`` takes ``x`` of shape ``(batch, n_samples)``;
    ``bank.band(k)`` returns band ``k`` filtered, shape ``(batch, n_samples)``, float32, computed
    on demand (into a slot of :meth:`output_buffer` if given one). With ``device`` (a torch
    device name) the FFTs run in torch there and the bands are tensors on that device. With a
    :class:`Workspace` the FFT buffers are reused from the previous bank built with it.
    """

    def __init__(self, x: np.ndarray, fs: float, lower_hz, upper_hz, order: int, device: str | None = None,
                 workspace: Workspace | None = None):
        self.n = x.shape[-1]
        self.fs = float(fs)
        self.lower = np.atleast_1d(np.asarray(lower_hz, dtype=float))
        self.upper = np.atleast_1d(np.asarray(upper_hz, dtype=float))
        self.order = int(order)
        pad = max((padding_samples(fs, lo, hi, order) for lo, hi in zip(self.lower, self.upper)), default=0)
        self.n_fft = sp_fft.next_fast_len(self.n + pad, real=True)
        self.device = device
        self.workspace = workspace or Workspace()
        if device is None:
            # float32: half the memory traffic; its rounding noise (~-140 dB re the peak) lies far
            # below any measurable noise floor, and all energy sums are accumulated in float64.
            # The input is converted straight into the zero-padded FFT buffer: rfft's own
            # padding (``n=``) would copy it once more.
            padded = self.workspace.array("padded", (x.shape[0], self.n_fft), np.float32)
            padded[:, : self.n] = x
            padded[:, self.n:] = 0.0
            self.spectrum = sp_fft.rfft(padded, axis=-1)
            self._weighted = self.workspace.array("weighted", self.spectrum.shape, self.spectrum.dtype)
        else:
            import torch

            x = torch.from_numpy(np.asarray(x, dtype=np.float32)).to(device)
            self.spectrum = torch.fft.rfft(x, n=self.n_fft, dim=-1)

    def __len__(self) -> int:
        return len(self.lower)

    def output_buffer(self, count: int) -> np.ndarray:
        """``count`` slots for :meth:`band`'s and :meth:`highpass`'s ``out``:
        ``(count, batch, n_fft)`` float32, from the workspace."""
        return self.workspace.array("output", (count, self.spectrum.shape[0], self.n_fft), np.float32)

    def band(self, k: int, out: np.ndarray | None = None):
        """Band ``k`` of the batch; written into ``out`` (from :meth:`output_buffer`) when given,
        so that a loop over the bands reuses one array instead of page-faulting a new one."""
        return self._apply(_interleaved_magnitude(self.n_fft, self.fs, "band", self.order,
                                                  self.lower[k], self.upper[k]), out)

    def highpass(self, cutoff_hz: float, out: np.ndarray | None = None):
        """The batch zero-phase high-passed at ``cutoff_hz`` (Butterworth magnitude of ``order``
        poles, -3 dB at the cut-off): the broadband signal without DC offset or rumble. ``out``
        as for :meth:`band`."""
        return self._apply(_interleaved_magnitude(self.n_fft, self.fs, "highpass", self.order,
                                                  float(cutoff_hz)), out)

    def _apply(self, interleaved: np.ndarray, out: np.ndarray | None):
        if self.device is None:
            # the complex spectrum seen as (re, im) float32 pairs times the magnitude repeated
            # per pair: a float32 product, twice as fast as complex64 times float32
            np.multiply(self.spectrum.view(np.float32), interleaved, out=self._weighted.view(np.float32))
            # NumPy's inverse FFT (the same pocketfft as SciPy's, same numbers) takes ``out``
            out = np.fft.irfft(self._weighted, n=self.n_fft, axis=-1, out=out)
            return out[..., : self.n]
        import torch

        magnitude = torch.from_numpy(np.ascontiguousarray(interleaved[::2])).to(self.device)
        return torch.fft.irfft(self.spectrum * magnitude, n=self.n_fft, dim=-1)[..., : self.n]


@functools.lru_cache(maxsize=32)
def _interleaved_magnitude(n_fft: int, fs: float, kind: str, order: int, *edges_hz: float) -> np.ndarray:
    """The float32 magnitude of a band-pass (``edges_hz`` = lower, upper) or high-pass
    (``edges_hz`` = cut-off) on the ``n_fft``-point rfft bins, each value twice (for the real and
    imaginary parts), ``(2 * (n_fft // 2 + 1),)``, read-only. Cached: every chunk of a batch (and
    every batch of equal-length IRs) uses the same responses; 32 hold a one-third-octave bank
    (0.55 MB each for 5.94 s at 22.05 kHz)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    if kind == "band":
        magnitude = band_magnitude(freqs, *edges_hz, order)
    else:
        with np.errstate(divide="ignore"):
            magnitude = 1.0 / np.sqrt(1.0 + (edges_hz[0] / freqs) ** (2 * order))
    interleaved = np.repeat(magnitude.astype(np.float32), 2)
    interleaved.flags.writeable = False
    return interleaved
