"""Energy decay: onset detection, Lundeby noise handling and Schroeder backward integration.

Everything works on a batch of squared (band-filtered) impulse responses, ``energy`` of shape
``(batch, n_samples)``, kept as running sums per 1 ms cell (:class:`EnergySums`). The per-sample
passes are NumPy array operations over the whole batch; Lundeby's iterations and the decay
curve run row by row in loops compiled with numba (no GIL held, so threads overlap), each row
only as far as its own fits need (compiled once per installation and cached, a few seconds).

References:
- ISO 3382-1:2009, Annex A.3 (start of the impulse response, 20 dB below the peak) and 5.3.3
  (Schroeder backward integration; treatment of background noise by truncation + compensation).
- A. Lundeby, T. E. Vigran, H. Bietz, M. Vorlaender, "Uncertainties of measurements in room
  acoustics", Acustica 81 (1995) 344-355: iterative estimate of the noise level and of the point
  where the decay meets it (the "crosspoint"), plus compensation for the energy cut off there.
- M. R. Schroeder, "New method of measuring reverberation time", JASA 37 (1965) 409-412.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


def compiled(function):
    """``function`` compiled by numba to release the GIL, and cached on disk where numba finds
    a writable place for it (next to this file, else the user's cache directory); where it finds
    none (a read-only installation and home), compiled anew in each process instead of failing
    at import."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return numba.njit(nogil=True)(function)


@dataclass(frozen=True)
class LundebySettings:
    """Parameters of Lundeby et al. (1995); defaults inside the ranges the paper recommends."""

    initial_window_s: float = 0.010
    """First smoothing interval (paper: 10-50 ms)."""
    intervals_per_10db: float = 5.0
    """Later smoothing: this many intervals per 10 dB of decay (paper: 3-10)."""
    noise_margin_db: float = 10.0
    """The first regression stops this far above the noise (paper: 5-10 dB); later, the noise is
    averaged from where the decay line is this far *below* the noise onwards."""
    late_range_db: float = 20.0
    """Dynamic range of the late-slope regression (paper: 10-20 dB) ..."""
    late_floor_db: float = 5.0
    """... ending this far above the noise level (paper: 5-10 dB)."""
    iterations: int = 5
    """At most this many refinements; they stop early once no crosspoint in the batch moves by
    more than one frame hop (the paper iterates to convergence, typically fewer than 5)."""
    noise_tail_fraction: float = 0.1
    """The noise estimate uses at least this final fraction of the IR (paper: last 10 %)."""
    hop_s: float = 0.0025
    """Frame hop of the smoothed envelopes (their windows may overlap; edges fall on 1 ms
    cells). 2.5 ms still gives >= 3 frames per 10 dB down to T = 0.1 s."""


def is_tensor(x) -> bool:
    """A torch tensor (the optional device path: ``AnalysisConfig.device``)."""
    return type(x).__module__.split(".")[0] == "torch"


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if is_tensor(x) else x


def _like(array: np.ndarray, reference):
    """``array`` as a tensor on ``reference``'s device and dtype when that is a tensor."""
    if not is_tensor(reference):
        return array
    import torch

    dtype = reference.dtype if np.issubdtype(array.dtype, np.floating) else torch.int64
    return torch.as_tensor(array, dtype=dtype, device=reference.device)


def first_index_of_max(x) -> np.ndarray:
    """``argmax`` along the last axis (first maximum), NumPy array or tensor -> ``(batch,)`` int.

    NumPy's ``argmax`` copies an array whose rows are not contiguous (a band is a view of the
    zero-padded FFT output) before searching it; the maximum and a comparison with it stream
    through the view and find the same index."""
    if is_tensor(x):
        return _numpy(x.argmax(-1))
    return np.argmax(x == x.max(axis=-1, keepdims=True), axis=-1)


def onset_index(energy, threshold_db: float = -20.0) -> np.ndarray:
    """ISO 3382-1 A.3.3 onset: index of the first sample within ``|threshold_db|`` of the peak.

    ``energy``: ``(batch, n)`` squared pressure (NumPy array or torch tensor). Returns
    ``(batch,)`` int.
    """
    if is_tensor(energy):
        peak = energy.amax(dim=-1, keepdim=True)
        return first_index_of_max((energy >= peak * 10.0 ** (threshold_db / 10.0)).to(energy.dtype))
    level = energy.max(axis=-1, keepdims=True) * 10.0 ** (threshold_db / 10.0)
    # IRs start within their first few milliseconds: look there first, and through the whole
    # response only for the items whose onset lies later
    early = energy[:, :_ONSET_SEARCH] >= level
    onset = np.argmax(early, axis=-1)
    late = np.flatnonzero(~early.any(axis=-1))
    if len(late):
        onset[late] = np.argmax(energy[late] >= level[late], axis=-1)
    return onset


_ONSET_SEARCH = 4096
"""Samples searched for the onset before the rest of the IR (0.19 s at 22.05 kHz)."""


@dataclass(frozen=True)
class Truncation:
    """Result of Lundeby's procedure per batch item (all arrays ``(batch,)``).

    ``crosspoint`` (samples, exclusive end of the measured decay), ``noise`` (mean energy per
    sample of the background), ``slope_db_s`` (late decay rate, dB/s, negative), ``peak_db`` and
    ``noise_db`` (dB re 1, energy of the smoothed envelope peak and of the noise), ``tail``
    (energy after the crosspoint predicted by the late decay, the compensation term) and ``tau``
    (energy time constant of that decay, samples).
    """

    crosspoint: np.ndarray
    noise: np.ndarray
    slope_db_s: np.ndarray
    peak_db: np.ndarray
    noise_db: np.ndarray
    tail: np.ndarray
    tau: np.ndarray

    @property
    def inr_db(self) -> np.ndarray:
        """Impulse-to-noise (peak-to-noise) ratio in dB: smoothed envelope peak over noise."""
        return self.peak_db - self.noise_db


def cumulative_energy(energy: np.ndarray) -> np.ndarray:
    """``(batch, n + 1)`` running sum with a leading zero, so ``cs[b] - cs[a]`` sums ``[a, b)``."""
    cs = np.zeros(energy.shape[:-1] + (energy.shape[-1] + 1,))
    np.cumsum(energy, axis=-1, out=cs[..., 1:])
    return cs


class EnergySums:
    """Exact running sums of a batch of energies ``(batch, n)``, stored per cell of ``hop`` samples.

    A running sum is sequential work; keeping it per cell (1 ms) makes it ``hop`` times
    cheaper, and a sum up to any sample is still exact: the cell prefix plus the partial cell,
    read from the energy itself. ``cells[:, j]`` is the sum of ``energy[:, :j * hop]``.
    ``EnergySums.from_prefix(cumulative_energy(e))`` wraps a per-sample running sum (hop 1).
    ``energy`` may be a torch tensor on any device: the per-sample work stays there and only the
    per-cell sums (float64 NumPy) come back.
    """

    def __init__(self, energy: np.ndarray | None, hop: int = 1, cells: np.ndarray | None = None,
                 within: np.ndarray | None = None):
        self.energy, self.hop = energy, int(hop)
        self.n = energy.shape[-1] if energy is not None else cells.shape[-1] - 1
        if cells is None:
            cells, within = self.empty_cells(energy.shape[0], self.n, self.hop)
            self.write_cells(energy, self.hop, cells, within)
        self.cells = cells
        """Cell prefix sums ``(batch, n_cells + 1)``: ``cells[:, j]`` sums ``energy[:, :j * hop]``."""
        self._within = within

    @classmethod
    def from_prefix(cls, cs: np.ndarray) -> "EnergySums":
        return cls(None, 1, cs)

    @property
    def total(self) -> np.ndarray:
        return self.cells[:, -1]

    @staticmethod
    def empty_cells(rows: int, n: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
        """Uninitialised ``cells`` ``(rows, n_cells + 1)`` and ``within`` ``(rows, n_cells)``
        float64 for :meth:`write_cells`, ``n_cells = ceil(n / hop)``."""
        n_cells = -(-n // hop)
        return np.empty((rows, n_cells + 1)), np.empty((rows, n_cells))

    @staticmethod
    def write_cells(energy, hop: int, cells: np.ndarray, within: np.ndarray) -> None:
        """The cell sums of ``energy`` ``(batch, n)`` (NumPy array or tensor) into ``cells``
        ``(batch, n_cells + 1)`` as prefix sums (``cells[:, j]`` sums ``energy[:, :j * hop]``) and
        its within-cell first moments ``sum_r r * energy[cell * hop + r]`` into ``within``
        ``(batch, n_cells)``, both float64, ``n_cells = ceil(n / hop)`` (the last cell may be
        short). One pass over the energy for both: a product with the weights ``[1, r]``.

        Writing into given arrays lets a caller lay the sums of several blocks of rows (the
        bands of a chunk) side by side in one array without copying them there afterwards."""
        batch, n = energy.shape
        full = n // hop
        weights = np.stack([np.ones(hop), np.arange(hop, dtype=float)], axis=-1)
        weights = _like(weights.astype(np.float32 if is_tensor(energy) else energy.dtype), energy)
        dtype = np.float32 if is_tensor(energy) else np.result_type(energy.dtype, np.float32)
        per_cell = np.empty((batch, within.shape[-1], 2), dtype=dtype)
        # stacked products, one BLAS call per item: a single (batch, k) @ (k, 2) call would be
        # blocked by BLAS according to the batch size, and an item's rounding would depend on
        # its neighbours (chunks and threads must not change a bit)
        per_cell[:, :full] = _numpy(energy[:, : full * hop].reshape(batch, full, hop) @ weights)
        if n > full * hop:
            per_cell[:, -1] = _numpy(energy[:, None, full * hop:] @ weights[: n - full * hop])[:, 0]
        cells[:, 0] = 0.0
        # accumulated in float64 whatever the energy's dtype
        np.cumsum(per_cell[..., 0], axis=-1, dtype=np.float64, out=cells[:, 1:])
        within[...] = per_cell[..., 1]

    def _partial(self, index: np.ndarray, weight) -> np.ndarray:
        """Sum of ``weight(sample) * energy`` over the partial cell before each ``index``."""
        if self.hop == 1:
            return np.zeros(index.shape)
        start = (index // self.hop) * self.hop
        offsets = np.arange(self.hop)
        samples = start[..., None] + offsets
        rows = np.arange(len(index)).reshape((-1,) + (1,) * (index.ndim))
        picked = self.energy[_like(rows, self.energy), _like(np.minimum(samples, self.n - 1), self.energy)]
        values = _numpy(picked).astype(float) * weight(samples)
        return np.where(samples < index[..., None], values, 0.0).sum(axis=-1)

    def before(self, index) -> np.ndarray:
        """Exact ``sum(energy[b, :index[b, ...]])``; ``index`` ``(batch,)`` or ``(batch, k)``, clipped to ``[0, n]``."""
        index = np.clip(np.asarray(index), 0, self.n)
        rows = np.arange(len(index)).reshape((-1,) + (1,) * (index.ndim - 1))
        return self.cells[rows, index // self.hop] + self._partial(index, lambda samples: 1.0)

    def moment_between(self, start, stop) -> np.ndarray:
        """Exact ``sum(j * energy[b, j] for start[b] <= j < stop[b])`` ``(batch,)``, for the
        centre time; ``start``, ``stop`` ``(batch,)`` sample indices, ``start <= stop``, clipped
        to ``[0, n]``."""
        start, stop = (np.clip(np.asarray(index), 0, self.n) for index in (start, stop))
        first, last = start // self.hop, stop // self.hop
        # the per-cell moments only as far as the latest cell needed (the crosspoint's)
        width = int(last.max(initial=0))
        starts = self.hop * np.arange(width, dtype=float)
        per_cell = np.diff(self.cells[:, : width + 1], axis=-1) * starts + self._within[:, :width]
        up_to_stop = range_sums(per_cell, first, last) + self._partial(stop, lambda samples: samples)
        return up_to_stop - self._partial(start, lambda samples: samples)


def range_sums(values: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``sum(values[b, start[b]:stop[b]])`` per row -> ``(batch,)``; ``values`` ``(batch, W)``
    float, ``0 <= start <= stop <= W`` integers (an empty range sums to 0).

    One ``reduceat`` over the flattened rows reads only the ranges, with NumPy's pairwise
    summation; running sums (``cumsum``) for a few differences would cost a sequential pass
    over every row, holding the GIL."""
    flat = np.ravel(values)
    if not flat.size:
        return np.zeros(len(values))
    base = np.arange(len(values)) * values.shape[-1]
    bounds = np.stack([base + start, base + stop], axis=-1).ravel()
    # the last range may end at the end of the array, which reduceat's last segment does anyway
    if bounds[-1] == flat.size:
        bounds = bounds[:-1]
    # an empty range at the very end: any valid index, its sum is replaced by 0 below
    np.minimum(bounds, flat.size - 1, out=bounds)
    sums = np.add.reduceat(flat, bounds)[0::2]
    return np.where(stop > start, sums, 0.0)


def _as_sums(cs) -> EnergySums:
    return cs if isinstance(cs, EnergySums) else EnergySums.from_prefix(cs)


def lundeby(cs, onset: np.ndarray, fs: float,
            settings: LundebySettings = LundebySettings()) -> Truncation:
    """Lundeby et al. (1995) noise level and crosspoint of each batch item.

    ``cs``: the squared band-filtered IR's running sums, an :class:`EnergySums` or a
    ``(batch, n + 1)`` array from :func:`cumulative_energy`; ``onset``: ``(batch,)`` sample index.

    1. Smooth the energy in ``initial_window_s`` intervals (frames every ``hop_s`` from the
       onset, so a leading delay changes nothing); take the noise from the last 10 %.
    2. Fit a line from the envelope peak down to ``noise_margin_db`` above the noise; its
       intersection with the noise level is the preliminary crosspoint.
    3. Repeat ``iterations`` times: re-smooth with ``intervals_per_10db`` intervals per 10 dB of
       the current decay; average the noise from ``noise_margin_db`` of decay past the
       crosspoint (at least the last 10 %); fit the late decay over ``late_range_db`` ending
       ``late_floor_db`` above the noise; intersect with the noise for a new crosspoint.

    Smoothing windows and the noise's start are whole cells of the sums (1 ms in
    :func:`analyze`): the noise is averaged from the cell edge at or before the sample the
    procedure names. Items whose decay cannot be fitted keep the whole IR (crosspoint = n, no
    compensation); :func:`analyze` reports them through their peak-to-noise ratio.
    """
    sums = _as_sums(cs)
    onset = np.asarray(onset, dtype=np.int64)
    frame_hop = max(1, int(round(settings.hop_s * fs)))
    tail_start = sums.n - max(1, int(round(settings.noise_tail_fraction * sums.n)))
    fitted = np.empty((5, len(onset)))
    _lundeby_rows(sums.cells, onset, sums.n, sums.hop, float(fs),
                  float(frame_hop), settings.initial_window_s * fs, settings.intervals_per_10db,
                  settings.noise_margin_db, settings.late_range_db, settings.late_floor_db,
                  settings.iterations, tail_start, settings.hop_s, fitted)
    intercept, slope, noise, noise_db, peak_db = fitted
    return _truncation(sums.n, onset, fs, intercept, slope, noise, noise_db, peak_db)


# Lundeby's procedure runs row by row: each row's frames are smoothed only as far as its own
# fit needs them, and each row stops at its own convergence, which array operations over the
# whole batch cannot do (they took a quarter of analyze's time; compiled, about 5 %).


@compiled
def _frame_energy(cells_row, centre, half, cell, n):
    """Mean energy per sample of the whole cells within about ``half`` samples of ``centre``
    (edges rounded to the nearest cell edge, at least one cell); NaN past the end of the IR or
    where the window holds no energy. Levels are compared in energy and converted to dB only
    where a fit needs them."""
    if centre >= n:
        return np.nan
    last = cells_row.shape[0] - 1
    lo = min(max(np.rint((centre - half) / cell), 0.0), last - 1.0)
    hi = max(min(max(np.rint((centre + half) / cell), 1.0), float(last)), lo + 1.0)
    total = cells_row[int(hi)] - cells_row[int(lo)]
    if not total > 0.0:
        return np.nan
    return total / ((hi - lo) * cell)


@compiled
def _noise_from(cells_row, start, cell, n):
    """Mean energy per sample from the cell edge at or before sample ``start`` to the end."""
    first = start // cell
    return (cells_row[cells_row.shape[0] - 1] - cells_row[first]) / (n - first * cell)


@compiled
def _line_fit(times, levels, lo, hi):
    """Least-squares line ``level = intercept + slope * time`` over frames ``[lo, hi)``, NaN
    frames (silent) left out; NaN, NaN with fewer than two points."""
    count = sx = sxx = sy = sxy = 0.0
    for j in range(lo, hi):
        y = levels[j]
        if not np.isnan(y):
            x = times[j]
            count += 1.0
            sx += x
            sxx += x * x
            sy += y
            sxy += x * y
    if count < 2.0:
        return np.nan, np.nan
    slope = (count * sxy - sx * sy) / (count * sxx - sx * sx)
    return (sy - slope * sx) / count, slope


@compiled
def _noise_level_db(noise, peak_db):
    """dB of a noise energy, floored 300 dB below the peak (an exactly silent tail); NaN
    where the peak is (a silent row)."""
    if np.isnan(noise) or np.isnan(peak_db):
        return np.nan
    return 10.0 * np.log10(max(noise, 10.0 ** (peak_db / 10.0) * 1e-30))


@compiled
def _crosspoint(intercept, slope, noise_db):
    """Seconds after the onset where the line meets the noise level; NaN without a decay."""
    if np.isfinite(slope) and slope < 0.0:
        return (noise_db - intercept) / slope
    return np.nan


@compiled
def _lundeby_rows(cells, onset, n, cell, fs, frame_hop, initial_window, per_10db, margin_db,
                  late_range_db, late_floor_db, iterations, tail_start, hop_s, fitted):
    """Lundeby's procedure on each row of the cell prefix sums ``cells``; writes each item's
    intercept (dB), slope (dB/s), noise (energy per sample), noise level and smoothed peak (dB)
    into the columns of ``fitted`` ``(5, batch)``."""
    n_frames = int(np.ceil((n - frame_hop / 2.0) / frame_hop))
    times = (frame_hop / 2.0 + frame_hop * np.arange(n_frames)) / fs
    energies = np.empty(n_frames)
    levels = np.empty(n_frames)
    for i in range(cells.shape[0]):
        row = cells[i]
        start = onset[i] + frame_hop / 2.0
        half = max(initial_window, cell) / 2.0
        peak_frame, peak = 0, -np.inf
        for j in range(n_frames):
            energies[j] = _frame_energy(row, start + frame_hop * j, half, cell, n)
            if energies[j] > peak:
                peak_frame, peak = j, energies[j]
        peak_db = 10.0 * np.log10(energies[peak_frame])
        noise = _noise_from(row, tail_start, cell, n)
        noise_db = _noise_level_db(noise, peak_db)
        stop = peak_frame
        below = 10.0 ** ((noise_db + margin_db) / 10.0)
        while stop < n_frames and not energies[stop] < below:
            levels[stop] = 10.0 * np.log10(energies[stop])
            stop += 1
        intercept, slope = _line_fit(times, levels, peak_frame, stop)
        crosspoint = _crosspoint(intercept, slope, noise_db)
        for _ in range(iterations):
            decaying = np.isfinite(slope) and slope < 0.0
            rate = slope if decaying else -1.0
            window = min(max(10.0 / -rate / per_10db * fs, frame_hop), n / 10.0)
            noise_start = float(tail_start)
            if decaying:
                late = onset[i] + np.rint(((noise_db - intercept) / rate + margin_db / -rate) * fs)
                if not np.isnan(late):
                    noise_start = min(max(late, 0.0), float(tail_start))
            noise = _noise_from(row, int(noise_start), cell, n)
            noise_db = _noise_level_db(noise, peak_db)
            # the late decay: from late_range_db + late_floor_db down to late_floor_db above
            # the noise, each the first smoothed frame from the peak below that level
            top_energy = 10.0 ** ((noise_db + late_floor_db + late_range_db) / 10.0)
            bottom_energy = 10.0 ** ((noise_db + late_floor_db) / 10.0)
            half = max(window, cell) / 2.0
            top, bottom = n_frames, n_frames
            for j in range(peak_frame, n_frames):
                energy = _frame_energy(row, start + frame_hop * j, half, cell, n)
                if energy < bottom_energy:
                    bottom = j
                    break
                if top == n_frames and energy < top_energy:
                    top = j
                if top < n_frames:
                    levels[j] = 10.0 * np.log10(energy)
            new_intercept, new_slope = _line_fit(times, levels, min(top, bottom), bottom)
            if np.isfinite(new_slope) and new_slope < 0.0:
                intercept, slope = new_intercept, new_slope
            previous, crosspoint = crosspoint, _crosspoint(intercept, slope, noise_db)
            if abs(crosspoint - previous) <= hop_s or (np.isnan(crosspoint) and np.isnan(previous)):
                break
        fitted[0, i], fitted[1, i], fitted[2, i], fitted[3, i], fitted[4, i] = (
            intercept, slope, noise, noise_db, peak_db)


def _truncation(n, onset, fs, intercept, slope, noise, noise_db, peak_db) -> Truncation:
    """Crosspoint (where the late decay line meets the noise) and the compensation term: the
    energy the line predicts after it, ``noise * tau`` (the line is at the noise level there)."""
    decaying = np.isfinite(slope) & (slope < 0)
    safe_slope = np.where(decaying, slope, -1.0)
    crosspoint_s = (noise_db - intercept) / safe_slope
    crosspoint = np.clip(onset + np.nan_to_num(np.round(crosspoint_s * fs), nan=n), onset + 1, n).astype(np.intp)
    crosspoint = np.where(decaying, crosspoint, n)
    tau = 10.0 / (np.log(10.0) * -safe_slope) * fs
    tail = np.where(decaying & (crosspoint < n), noise * tau, 0.0)
    return Truncation(crosspoint=crosspoint, noise=noise, slope_db_s=np.where(decaying, slope, np.nan),
                      peak_db=peak_db, noise_db=noise_db, tail=tail, tau=tau)


def remaining_energy(cs, trunc: Truncation, index: np.ndarray) -> np.ndarray:
    """Noise-compensated energy from sample ``index`` to infinity (Schroeder integral).

    Before the crosspoint: the measured energy up to the crosspoint plus the compensation term;
    after it: the compensation's exponential continued. ``cs``: :class:`EnergySums` or
    :func:`cumulative_energy` array; ``index``: ``(batch,)`` or ``(batch, k)``; same shape out.
    """
    sums = _as_sums(cs)
    index = np.asarray(index)
    expand = (slice(None),) + (None,) * (index.ndim - 1)
    cp = trunc.crosspoint[expand]
    measured = sums.before(trunc.crosspoint)[expand] - sums.before(index)
    return _compensated(measured, index, cp, trunc, expand)


def _compensated(measured, index, cp, trunc: Truncation, expand) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        model = trunc.tail[expand] * np.exp(-(index - cp) / trunc.tau[expand])
    return np.where(index < cp, measured + trunc.tail[expand], model)


def decay_curve_db(sums: EnergySums, trunc: Truncation, onset: np.ndarray) -> np.ndarray:
    """Schroeder decay curve in dB re its value at the onset, at every cell boundary
    (``j * sums.hop`` samples), ``(batch, n_cells + 1)``; 0 dB up to the onset.

    Falls monotonically (the energy integral only shrinks), so each level is crossed once.
    Past the crosspoint it is the compensation's exponential (-1000 dB where there is none).
    The curve is an integral, hence smooth: a 1 ms grid loses nothing for line fits (35 points
    over the T30 range of even a 0.1 s decay). :func:`i2r.acoustics.analyze` reads it point by
    point (:func:`curve_point_db`) only as far as its fits need; this is the whole of it.
    """
    curve = np.empty((len(onset), sums.cells.shape[-1]))
    _fill_curves(sums.cells, float(sums.hop), *curve_terms(sums, trunc, onset), curve)
    return curve


def curve_terms(sums: EnergySums, trunc: Truncation, onset: np.ndarray) -> tuple:
    """What :func:`curve_point_db` needs of each row besides its cell sums, each ``(batch,)``
    float: the onset and the crosspoint (samples), the energy measured before the crosspoint,
    the compensation ``tail`` and its time constant ``tau`` (samples), and the level of the
    whole compensated integral (dB), to which the curve is relative."""
    with np.errstate(divide="ignore", invalid="ignore"):
        start_db = 10.0 * np.log10(remaining_energy(sums, trunc, onset))
    return (onset.astype(float), trunc.crosspoint.astype(float), sums.before(trunc.crosspoint),
            trunc.tail, trunc.tau, start_db)


@compiled
def curve_point_db(cells_row, j, hop, onset, crosspoint, before_crosspoint, tail, tau, start_db):
    """The decay curve (dB) at grid point ``j`` (sample ``j * hop``) of one row, from its cell
    sums and its :func:`curve_terms`: before the crosspoint, the energy measured from there to
    the crosspoint plus the tail; after it, the tail's exponential, written in dB as a straight
    line; -1000 dB where nothing is left."""
    index = hop * j
    if index <= onset:
        return 0.0
    if index >= crosspoint:
        value = 10.0 * np.log10(tail) - (index - crosspoint) * (10.0 / np.log(10.0)) / tau
    else:
        value = 10.0 * np.log10(before_crosspoint - cells_row[j] + tail)
    value -= start_db
    # NaN (a silent band) and -inf (nothing left) both become -1000 dB
    return value if value > -1000.0 else -1000.0


@compiled
def _fill_curves(cells, hop, onset, crosspoint, before_crosspoint, tail, tau, start_db, curve):
    for i in range(cells.shape[0]):
        for j in range(cells.shape[1]):
            curve[i, j] = curve_point_db(cells[i], j, hop, onset[i], crosspoint[i], before_crosspoint[i],
                                         tail[i], tau[i], start_db[i])
