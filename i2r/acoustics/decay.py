"""Energy decay: onset detection, Lundeby noise handling and Schroeder backward integration.

Everything works on a batch of squared (band-filtered) impulse responses, ``energy`` of shape
``(batch, n_samples)``, vectorised over the batch: the iterations of Lundeby's procedure are
masked array operations on all items at once.

References:
- ISO 3382-1:2009, Annex A.3 (start of the impulse response, 20 dB below the peak) and 5.3.3
  (Schroeder backward integration; treatment of background noise by truncation + compensation).
- A. Lundeby, T. E. Vigran, H. Bietz, M. Vorlaender, "Uncertainties of measurements in room
  acoustics", Acustica 81 (1995) 344-355: iterative estimate of the noise level and of the point
  where the decay meets it (the "crosspoint"), plus compensation for the energy cut off there.
- M. R. Schroeder, "New method of measuring reverberation time", JASA 37 (1965) 409-412.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np


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
        self._within = within
        self._all_cells = cells
        self.rows = np.arange(cells.shape[0])
        """Row of ``energy`` that each row of ``cells`` sums (all of them, or a :meth:`subset`)."""
        self._whole = True

    @property
    def cells(self) -> np.ndarray:
        """Cell prefix sums of the rows covered ``(rows, n_cells + 1)``: ``cells[:, j]`` sums
        ``energy[:, :j * hop]``."""
        return self._all_cells if self._whole else self._all_cells[self.rows]

    def subset(self, rows: np.ndarray) -> "EnergySums":
        """The sums of batch items ``rows`` only, for :meth:`before` and the cell prefix sums.
        Nothing is copied: Lundeby's later iterations take a subset of a large batch each time."""
        part = copy.copy(self)
        part.rows, part._whole = self.rows[rows], False
        return part

    @classmethod
    def from_prefix(cls, cs: np.ndarray) -> "EnergySums":
        return cls(None, 1, cs)

    @property
    def total(self) -> np.ndarray:
        return self._all_cells[self.rows, -1]

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
        rows = self.rows.reshape((-1,) + (1,) * (index.ndim))
        picked = self.energy[_like(rows, self.energy), _like(np.minimum(samples, self.n - 1), self.energy)]
        values = _numpy(picked).astype(float) * weight(samples)
        return np.where(samples < index[..., None], values, 0.0).sum(axis=-1)

    def before(self, index) -> np.ndarray:
        """Exact ``sum(energy[b, :index[b, ...]])``; ``index`` ``(batch,)`` or ``(batch, k)``, clipped to ``[0, n]``."""
        index = np.clip(np.asarray(index), 0, self.n)
        cell = index // self.hop
        cells = self._all_cells[self.rows if cell.ndim == 1 else self.rows[:, None], cell]
        return cells + self._partial(index, lambda samples: 1.0)

    def moment_between(self, start, stop) -> np.ndarray:
        """Exact ``sum(j * energy[b, j] for start[b] <= j < stop[b])`` ``(batch,)``, for the
        centre time; ``start``, ``stop`` ``(batch,)`` sample indices, ``start <= stop``, clipped
        to ``[0, n]``."""
        start, stop = (np.clip(np.asarray(index), 0, self.n) for index in (start, stop))
        first, last = start // self.hop, stop // self.hop
        # the per-cell moments only as far as the latest cell needed (the crosspoint's)
        width = int(last.max(initial=0))
        starts = self.hop * np.arange(width, dtype=float)
        within = self._within if self._whole else self._within[self.rows]
        per_cell = np.diff(self.cells[:, : width + 1], axis=-1) * starts + within[:, :width]
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


def _window_levels(sums: EnergySums, centres: np.ndarray, width: np.ndarray,
                   items: np.ndarray | None = None) -> np.ndarray:
    """Mean energy (dB) in windows of about ``width[b]`` samples centred on ``centres[b, j]``
    (edges rounded to whole cells) -> ``(batch, F)``; NaN where the window holds no energy at
    all or lies past the end. With ``items``, ``centres`` is any flat selection of frames,
    ``items`` and ``width`` their batch items and widths, and so is the result (same arithmetic)."""
    hop, cells = sums.hop, sums._all_cells
    last = cells.shape[-1] - 1
    half = np.maximum(width, hop) / 2.0
    rows = (sums.rows if items is None else sums.rows[items]) * cells.shape[-1]
    if items is None:
        half, rows = half[:, None], rows[:, None]
    # this runs once per Lundeby iteration on every frame of the batch: every step writes in
    # place. Edges in cells, rounded and clipped, then read from the flattened prefix sums.
    lo = np.subtract(centres, half)
    lo /= hop
    np.rint(lo, out=lo)
    np.clip(lo, 0, last - 1, out=lo)
    hi = np.add(centres, half)
    hi /= hop
    np.rint(hi, out=hi)
    np.clip(hi, 1, last, out=hi)
    np.maximum(hi, lo + 1, out=hi)
    flat = cells.ravel()
    total = np.take(flat, hi.astype(np.intp) + rows)
    total -= np.take(flat, lo.astype(np.intp) + rows)
    hi -= lo
    hi *= hop
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = np.divide(total, hi)
        np.log10(levels, out=levels)
    levels *= 10.0
    np.copyto(levels, np.nan, where=~(total > 0) | (centres >= sums.n))
    return levels


def _first_below(levels: np.ndarray, threshold: np.ndarray, start: np.ndarray) -> np.ndarray:
    """First frame index ``>= start[b]`` with ``levels < threshold[b]``; ``F`` where none.
    Silent frames (NaN level) never count as below, so an exactly silent gap between the
    direct sound and the reverberation (synthetic IRs) does not end the decay early."""
    frames = np.arange(levels.shape[-1])
    hit = (levels < threshold[:, None]) & (frames[None, :] >= start[:, None])
    return np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), levels.shape[-1])


def range_line_fit(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Least-squares line ``y = a + b x`` over columns ``[lo[i], hi[i])`` of each row, leaving
    out NaN points (silent frames).

    ``x``: ``(F,)``; ``y``: ``(batch, F)``. Returns intercepts, slopes ``(batch,)`` (NaN where
    fewer than two points). Closed-form normal equations on masked sums, taken as two matrix
    products (one pass over the mask, one over the masked ``y``) rather than five reductions;
    stacked, one product per row, so that a row's rounding never depends on the batch size.
    """
    cols = np.arange(y.shape[-1])
    mask = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
    mask &= ~np.isnan(y)
    powers = np.stack([np.ones_like(x), x, x * x], axis=-1)
    count, sx, sxx = (mask.astype(float)[:, None, :] @ powers)[:, 0].T
    sy, sxy = (np.where(mask, y, 0.0)[:, None, :] @ powers[:, :2])[:, 0].T
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (count * sxy - sx * sy) / (count * sxx - sx * sx)
        intercept = (sy - slope * sx) / count
    bad = count < 2
    return np.where(bad, np.nan, intercept), np.where(bad, np.nan, slope)


def lundeby(cs, onset: np.ndarray, fs: float,
            settings: LundebySettings = LundebySettings()) -> Truncation:
    """Lundeby et al. (1995) noise level and crosspoint, vectorised over the batch.

    ``cs``: the squared band-filtered IR's running sums, an :class:`EnergySums` or a
    ``(batch, n + 1)`` array from :func:`cumulative_energy`; ``onset``: ``(batch,)`` sample index.

    1. Smooth the energy in ``initial_window_s`` intervals (frames aligned on the onset, so a
       leading delay changes nothing); take the noise from the last 10 %.
    2. Fit a line from the envelope peak down to ``noise_margin_db`` above the noise; its
       intersection with the noise level is the preliminary crosspoint.
    3. Repeat ``iterations`` times: re-smooth with ``intervals_per_10db`` intervals per 10 dB of
       the current decay; average the noise from ``noise_margin_db`` of decay past the
       crosspoint (at least the last 10 %); fit the late decay over ``late_range_db`` ending
       ``late_floor_db`` above the noise; intersect with the noise for a new crosspoint.

    Items whose decay cannot be fitted keep the whole IR (crosspoint = n, no compensation);
    :func:`analyze` reports them through their peak-to-noise ratio.
    """
    sums = _as_sums(cs)
    frames = _Frames(sums, onset, fs, settings)
    levels = frames.levels(np.full(len(onset), settings.initial_window_s * fs))
    peak_frame = np.argmax(np.where(np.isnan(levels), -np.inf, levels), axis=-1)
    peak_db = np.take_along_axis(levels, peak_frame[:, None], axis=-1)[:, 0]
    noise = frames.noise_from(np.full(len(onset), frames.tail_start)).astype(float)
    noise_db = _level_db(noise, peak_db)
    stop = _first_below(levels, noise_db + settings.noise_margin_db, peak_frame)
    intercept, slope = range_line_fit(frames.times, levels, peak_frame, stop)
    crosspoint = _crosspoint_s(intercept, slope, noise_db)
    active = np.ones(len(onset), dtype=bool)
    for _ in range(settings.iterations):
        # Each item stops at its own convergence (so its result never depends on the batch);
        # only the items still moving are refined (most settle after 2-3 iterations), and the
        # loop ends when all have.
        rows = np.flatnonzero(active)
        part = frames if len(rows) == len(onset) else frames.subset(rows)
        refined = _refine(part, intercept[rows], slope[rows], noise_db[rows], peak_frame[rows], peak_db[rows])
        for values, new in zip((intercept, slope, noise, noise_db), refined):
            values[rows] = new
        previous, crosspoint = crosspoint, _crosspoint_s(intercept, slope, noise_db)
        active &= ~np.isclose(crosspoint, previous, rtol=0.0, atol=settings.hop_s, equal_nan=True)
        if not active.any():
            break
    return _truncation(sums.n, onset, fs, intercept, slope, noise, noise_db, peak_db)


def _crosspoint_s(intercept, slope, noise_db) -> np.ndarray:
    """Where the decay line meets the noise level (s after the onset; NaN without a decay)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(slope) & (slope < 0), (noise_db - intercept) / slope, np.nan)


class _Frames:
    """Lundeby's smoothing frames: every ``hop_s`` from each item's onset."""

    def __init__(self, sums: EnergySums, onset: np.ndarray, fs: float, settings: LundebySettings):
        self.sums, self.onset, self.fs, self.settings = sums, onset, fs, settings
        self.hop = max(1, int(round(settings.hop_s * fs)))
        offsets = np.arange(self.hop / 2.0, sums.n, self.hop)
        self.times = offsets / fs
        self.centres = onset[:, None] + offsets[None, :]
        self.tail_start = sums.n - max(1, int(round(settings.noise_tail_fraction * sums.n)))

    def subset(self, rows: np.ndarray) -> "_Frames":
        """The frames of batch items ``rows`` only."""
        return _Frames(self.sums.subset(rows), self.onset[rows], self.fs, self.settings)

    def levels(self, window: np.ndarray, until: np.ndarray | None = None) -> np.ndarray:
        """Levels (dB) of every frame ``(batch, F)`` smoothed over ``window`` samples per item;
        with ``until`` only the first ``until[b]`` frames of item ``b``, the others NaN."""
        if until is None:
            return _window_levels(self.sums, self.centres, window)
        keep = np.arange(self.centres.shape[-1]) < until[:, None]
        items = np.nonzero(keep)[0]
        levels = np.full(self.centres.shape, np.nan)
        levels[keep] = _window_levels(self.sums, self.centres[keep], window[items], items)
        return levels

    def noise_from(self, start: np.ndarray) -> np.ndarray:
        """Mean energy per sample from ``start`` to the end."""
        return (self.sums.total - self.sums.before(start)) / (self.sums.n - start)


def _level_db(energy: np.ndarray, peak_db: np.ndarray) -> np.ndarray:
    """dB of a noise energy, floored 300 dB below the peak (an exactly silent tail)."""
    return 10.0 * np.log10(np.maximum(energy, 10.0 ** (peak_db / 10.0) * 1e-30))


def _refine(frames: _Frames, intercept, slope, noise_db, peak_frame, peak_db):
    """One Lundeby iteration: re-smooth, re-estimate the noise past the crosspoint, re-fit the
    late decay. Items without a usable new fit keep their previous line."""
    settings, fs = frames.settings, frames.fs
    decaying = np.isfinite(slope) & (slope < 0)
    safe_slope = np.where(decaying, slope, -1.0)
    crosspoint_s = (noise_db - intercept) / safe_slope
    window = np.clip(10.0 / -safe_slope / settings.intervals_per_10db * fs, frames.hop, frames.sums.n / 10.0)
    start = frames.onset + np.round((crosspoint_s + settings.noise_margin_db / -safe_slope) * fs)
    start = np.clip(np.nan_to_num(start, nan=frames.tail_start), 0, frames.tail_start).astype(np.intp)
    noise = frames.noise_from(np.where(decaying, start, frames.tail_start))
    noise_db = _level_db(noise, peak_db)
    thresholds = (noise_db + settings.late_floor_db + settings.late_range_db, noise_db + settings.late_floor_db)
    # The late fit ends at the first frame within late_floor_db of the noise, usually a quarter
    # of the way through the IR: levels up to where the current line is another
    # noise_margin_db lower suffice; an item that does not get there within them gets all its
    # frames. The result is the same as with every frame, for a third of the work.
    with np.errstate(invalid="ignore"):
        reach_s = (thresholds[1] - settings.noise_margin_db - intercept) / safe_slope
    until = np.where(decaying & np.isfinite(reach_s), np.searchsorted(frames.times, reach_s) + 1, len(frames.times))
    levels = frames.levels(window, until)
    top, bottom = (_first_below(levels, threshold, peak_frame) for threshold in thresholds)
    missed = np.flatnonzero((bottom == len(frames.times)) & (until < len(frames.times)))
    if len(missed):
        levels[missed] = frames.subset(missed).levels(window[missed])
        top[missed], bottom[missed] = (_first_below(levels[missed], threshold[missed], peak_frame[missed])
                                       for threshold in thresholds)
    new_intercept, new_slope = range_line_fit(frames.times, levels, top, bottom)
    refit = np.isfinite(new_slope) & (new_slope < 0)
    return np.where(refit, new_intercept, intercept), np.where(refit, new_slope, slope), noise, noise_db


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

    Falls monotonically (the energy integral only shrinks), which :func:`level_crossings`
    relies on. Past the crosspoint it is the compensation's exponential (-1000 dB where there is
    none). The curve is an integral, hence smooth: a 1 ms grid loses nothing for line fits
    (35 points over the T30 range of even a 0.1 s decay).
    """
    # sample indices as floats: exact, and the differences below need no integer conversion
    index = sums.hop * np.arange(sums.cells.shape[-1], dtype=float)[None, :]
    cp = trunc.crosspoint[:, None].astype(float)
    # a handful of passes over (batch, n_cells) per band: each step writes in place
    with np.errstate(divide="ignore", invalid="ignore"):
        total_db = 10.0 * np.log10(remaining_energy(sums, trunc, onset))[:, None]
        beyond = index >= cp
        curve = np.subtract(sums.before(trunc.crosspoint)[:, None], sums.cells)
        curve += trunc.tail[:, None]
        # past the crosspoint the model below replaces this difference, which is negative there:
        # log10 of 1 instead (log10 of negative numbers takes three times as long)
        np.copyto(curve, 1.0, where=beyond)
        np.log10(curve, out=curve)
        curve *= 10.0
        # the compensation's exponential, written in dB: a straight line, no exp() per point
        model_db = np.subtract(index, cp)
        model_db *= 10.0 / np.log(10.0)
        model_db /= trunc.tau[:, None]
        np.subtract(10.0 * np.log10(trunc.tail)[:, None], model_db, out=model_db)
        np.copyto(curve, model_db, where=beyond)
        curve -= total_db
    np.copyto(curve, 0.0, where=index <= onset[:, None])
    # NaN (a silent band) and -inf (nothing left) both become -1000 dB
    return np.fmax(curve, -1000.0, out=curve)


def level_crossings(curve_db: np.ndarray, level_db: float) -> np.ndarray:
    """First grid point where the monotone decay curve is at or below ``level_db`` (the 0 dB
    points before the onset count as above); the curve's length where it never gets there."""
    return (curve_db > level_db).sum(axis=-1)
