"""ISO 3382-1 room-acoustic parameters of a batch of impulse responses: :func:`analyze`.

Per band (octave or one-third octave, :mod:`i2r.acoustics.bands`) and broadband (the IR
high-passed below the lowest band): EDT, T20, T30 (line fits to the Schroeder decay curve), C50, C80, D50, centre time Ts, and
the broadband direct-to-reverberant ratio DRR. The batch is vectorised: one FFT for the whole
batch, then one pass per band over all IRs at once.

Honesty rules: a value that needs more dynamic range than the IR has (ISO 3382-1 5.3.3: the
evaluation range must end at least 10 dB above the background noise, so T20 needs a 35 dB and
T30 a 45 dB peak-to-noise ratio; and, since a strong direct sound inflates the peak, the decay
curve itself must fall 10 dB below the end of the range before it meets the noise), a band
without energy, or an IR that is all zeros gives NaN and
a warning that names the band, the quantity and the reason. No value is ever a silent guess.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from i2r.acoustics.bands import (FilterBank, Workspace, band_centres, band_edges,
                                 highpass_ringing_time, ringing_time)
from i2r.acoustics.decay import (EnergySums, LundebySettings, Truncation, compiled, is_tensor,
                                 curve_point_db, curve_terms, first_index_of_max, lundeby, onset_index,
                                 remaining_energy)
from i2r.errors import UserError

BAND_KEYS = ("t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s")
"""Per-band quantities, in the order of the JSON contract (DESIGN.md)."""
DECAY_RANGES = {"edt_s": (0.0, -10.0), "t20_s": (-5.0, -25.0), "t30_s": (-5.0, -35.0)}
"""ISO 3382-1 evaluation ranges (dB re the decay curve's start)."""
FILTER_ORDERS = range(1, 13)
"""Poles per band side that :class:`AnalysisConfig` accepts for its Butterworth band filters."""
_LABELS = {"edt_s": "EDT", "t20_s": "T20", "t30_s": "T30", "c50_db": "C50", "c80_db": "C80",
           "d50": "D50", "ts_s": "Ts", "drr_db": "DRR"}


@dataclass(frozen=True)
class AnalysisConfig:
    """How :func:`analyze` measures; saved (``asdict``) with results.

    - ``bands``: ``"octave"`` or ``"third"`` (IEC 61260-1 base-10 exact edges).
    - ``lowest_band_hz``: lowest nominal band; None = ISO 3382-1's range (125 Hz octave, 100 Hz
      third). The highest band is the last one the sample rate supports (see ``band_centres``).
    - ``filter_order``: poles per band side of the zero-phase Butterworth magnitude (3 = a
      6th-order band-pass, the usual room-acoustics choice; ISO 3382-1 asks for zero-phase or
      time-reversed filtering, which this is).
    - ``onset_threshold_db``: ISO 3382-1 A.3.3, the IR starts at the first sample within 20 dB
      of its peak (per band, on the filtered response).
    - ``lundeby``: noise handling (Lundeby et al. 1995), see :class:`LundebySettings`.
    - ``range_margin_db``: ISO 3382-1 5.3.3: the evaluation range must end this far above the
      noise, so a fit to ``end_db`` needs a peak-to-noise ratio of ``-end_db + margin`` and a
      decay curve that is still measured (before the Lundeby crosspoint) at ``end_db - margin``.
    - ``min_inr_energy_db``: peak-to-noise ratio below which C50, C80, D50 and Ts are NaN; the
      crosspoint, and so the noise compensation of the late energy, is unreliable below it.
    - ``min_ringing_ratio``: a T20/T30 shorter than this many times the band filter's own
      ringing (:func:`i2r.acoustics.bands.ringing_time`, about 4.4/B s) is NaN: a band holding
      only a click reads 0.7-1 times the ringing, so shorter values cannot be told from the
      filter's response (cf. the B*T > 8..16 rules of thumb around ISO 3382).
    - ``min_ringing_ratio_edt``: the same for EDT, stricter: a click reads 1.6-3.4 times the
      ringing, and decays of noise read 10-40 % high below 3 times it (measured, 16 realisations).
    - ``silent_band_db``: a band whose energy is this far below the broadband energy is silent.
    - ``direct_window_s``: DRR's direct sound is the energy within +-2.5 ms of the broadband peak
      (the IoSR toolbox ``irStats`` convention); the rest after that window is reverberant.
    - ``device``: a torch device (``"cuda"``, ``"cpu"``) for the per-sample work (FFT filtering,
      energies, running sums); None = NumPy/SciPy. Lundeby and the fits run on the per-cell sums
      in compiled loops on the CPU either way; results agree with the NumPy path to float32 rounding.
    - ``chunk_samples``: band samples held at a time: a chunk of at most
      ``chunk_samples // ((n_bands + 1) * n_samples)`` IRs (at least one) is filtered into all
      its bands at once (float32, about 4 bytes x this: 35 MB per thread at 2**23) and the rows
      of all its bands are measured in one vectorised pass. Bounds memory whatever the IR length
      and the number of bands. Chunks are made of whole groups of four IRs, which the FFTs
      transform side by side (:data:`FFT_LANES`). 2**23 (8 IRs of 5.94 s at 22.05 kHz in
      octaves, 56 rows): 2**21 is about 40 % slower on 2 threads (more Python calls per IR),
      2**24 and 2**25 are no faster (measured).
    - ``workers``: threads measuring chunks side by side; 0 = all cores this process may use
      (``os.sched_getaffinity``), or ``OMP_NUM_THREADS`` when that is set: torchrun sets it to 1
      for each of its processes, which then do not start a thread per core each.
      The FFTs, NumPy's array loops and the compiled loops release the GIL, so chunks overlap
      (2 threads on 2 shared cores: 1.47x faster than one; measured). A batch is split
      into equal chunks, a multiple of ``workers`` of them, so that no thread waits for a short
      last chunk. Results do not depend on it: every IR is measured independently of the others
      in its chunk, so any split gives the same numbers, bit for bit. With ``device`` the chunks
      run one after another (the device does the parallel work).
    """

    bands: str = "octave"
    lowest_band_hz: float | None = None
    filter_order: int = 3
    onset_threshold_db: float = -20.0
    lundeby: LundebySettings = field(default_factory=LundebySettings)
    range_margin_db: float = 10.0
    min_inr_energy_db: float = 20.0
    min_ringing_ratio: float = 2.0
    min_ringing_ratio_edt: float = 4.0
    silent_band_db: float = -60.0
    direct_window_s: float = 0.0025
    device: str | None = None
    chunk_samples: int = 2**23
    workers: int = 0

    def __post_init__(self):
        if not isinstance(self.filter_order, int) or self.filter_order not in FILTER_ORDERS:
            raise UserError(f"filter_order: {self.filter_order!r} is not a number of poles from "
                            f"{FILTER_ORDERS[0]} to {FILTER_ORDERS[-1]}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise UserError(f"workers: {self.workers!r} is neither 0 (all cores) nor a number of threads")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(eq=False)
class AcousticParameters(Mapping):
    """Result of :func:`analyze`: attributes, and a read-only mapping with the same keys.

    With batch shape ``S`` (the input's leading dimensions) and ``n_bands`` bands:
    ``bands_hz`` ``(n_bands,)`` nominal mid-band frequencies; ``t20_s``, ``t30_s``, ``edt_s``
    (seconds), ``c50_db``, ``c80_db`` (dB), ``d50`` (ratio 0..1), ``ts_s`` (seconds) each
    ``S + (n_bands,)``; ``drr_db`` ``S`` (broadband); ``broadband`` a dict of the same keys plus
    ``drr_db``, each ``S``; ``inr_db`` and ``noise_floor_db`` ``S + (n_bands,)`` (peak-to-noise
    ratio in dB, noise level in dB re full scale of the band) and ``crosspoint_s`` (where the
    decay meets the noise, re the onset); ``warnings``: nested lists of strings shaped like the
    batch (``warnings[i][j]`` belongs to item ``(i, j)``; a plain list for a single IR).
    NaN marks a value that could not be measured honestly; the reason is in ``warnings``.
    """

    fs: float
    bands_hz: np.ndarray
    t20_s: np.ndarray
    t30_s: np.ndarray
    edt_s: np.ndarray
    c50_db: np.ndarray
    c80_db: np.ndarray
    d50: np.ndarray
    ts_s: np.ndarray
    drr_db: np.ndarray
    broadband: dict
    inr_db: np.ndarray
    noise_floor_db: np.ndarray
    crosspoint_s: np.ndarray
    warnings: list
    config: AnalysisConfig

    _KEYS = ("fs", "bands_hz", *BAND_KEYS, "drr_db", "broadband", "inr_db", "noise_floor_db",
             "crosspoint_s", "warnings")

    def __getitem__(self, key):
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._KEYS)

    def __len__(self):
        return len(self._KEYS)

    @property
    def batch_shape(self) -> tuple:
        return np.shape(self.drr_db)

    def item_warnings(self, index=()) -> list[str]:
        """Warnings of batch item ``index`` (an int or a tuple into the batch shape)."""
        found = self.warnings
        for i in _batch_index(index):
            found = found[i]
        return list(found)

    def to_json_dict(self, index=()) -> dict:
        """The DESIGN.md JSON object of batch item ``index`` (an int or a tuple into the batch
        shape; ``()`` for a single IR), without ``"file"``, NaN -> None:
        ``{"fs", "bands_hz", "t20_s", ..., "ts_s", "drr_db", "broadband": {...}, "warnings"}``."""
        index = _batch_index(index)
        record = {"fs": _json_number(self.fs), "bands_hz": [_json_number(f) for f in self.bands_hz]}
        for key in BAND_KEYS:
            record[key] = [_json_number(v) for v in np.asarray(getattr(self, key))[index]]
        record["drr_db"] = _json_number(np.asarray(self.drr_db)[index])
        record["broadband"] = {key: _json_number(np.asarray(value)[index])
                               for key, value in self.broadband.items()}
        record["warnings"] = self.item_warnings(index)
        return record


def _batch_index(index) -> tuple:
    return tuple(int(i) for i in index) if isinstance(index, (tuple, list)) else (int(index),)


def _json_number(value):
    value = float(value)
    if not np.isfinite(value):
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def validate_ir(ir, fs: float, name: str = "IR", min_duration_s: float = 0.010,
                allow_silent: bool = False) -> np.ndarray:
    """Check an impulse response before analysis; return it as float64.

    ``ir``: array of shape ``(..., n_samples)``; ``name`` goes into the message (a file name).
    Raises :class:`UserError` if it is empty, holds NaN or infinite values, is all zeros (unless
    ``allow_silent``), or is shorter than ``min_duration_s`` (10 ms: less cannot hold a decay to
    measure), or if ``fs`` is not a positive number.
    """
    x = np.asarray(ir, dtype=np.float64)
    if not np.isfinite(fs) or fs <= 0:
        raise UserError(f"{name}: sample rate {fs!r} Hz is not a positive number")
    if x.ndim == 0 or x.shape[-1] == 0 or x.size == 0:
        raise UserError(f"{name}: the impulse response is empty")
    # two reductions instead of a boolean array of the whole batch: NaN propagates into both,
    # an infinite sample is the maximum or the minimum, and all zeros means both are zero
    lowest, highest = x.min(), x.max()
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        raise UserError(f"{name}: the impulse response holds NaN or infinite samples")
    if x.shape[-1] < min_duration_s * fs:
        raise UserError(f"{name}: the impulse response is too short "
                        f"({1e3 * x.shape[-1] / fs:.1f} ms < {1e3 * min_duration_s:.0f} ms)")
    if not allow_silent and lowest == highest == 0.0:
        raise UserError(f"{name}: the impulse response is all zeros")
    return x


# --- one band, whole batch ---------------------------------------------------------------------


@dataclass
class _BandResult:
    """Everything measured on one band (or broadband) for every item, arrays ``(batch,)``."""

    values: dict
    inr_db: np.ndarray
    noise_floor_db: np.ndarray
    crosspoint_s: np.ndarray
    reached_db: np.ndarray
    energy: np.ndarray

    def rows(self, part: slice) -> "_BandResult":
        """The result of the rows ``part`` only (one band of a stack of bands)."""
        return _BandResult(values={key: value[part] for key, value in self.values.items()},
                           inr_db=self.inr_db[part], noise_floor_db=self.noise_floor_db[part],
                           crosspoint_s=self.crosspoint_s[part], reached_db=self.reached_db[part],
                           energy=self.energy[part])


def _curve_hop(fs: float) -> int:
    """Decay-curve grid step and energy-sum cell: 1 ms (the Lundeby frame hop)."""
    return max(1, int(round(fs * 0.001)))


def _fit_decay_times(sums: EnergySums, terms: tuple, ranges: dict, reach_limit: np.ndarray,
                     fs: float) -> tuple[dict, np.ndarray]:
    """Per range ``key: (start_db, end_db)``: the decay time (s) of the least-squares line fitted
    to the decay curve (:func:`i2r.acoustics.decay.curve_point_db`; ``terms`` from
    :func:`~i2r.acoustics.decay.curve_terms`) from its first point below ``start_db`` (0 dB: the
    first after the onset) to its first at or below ``end_db``, extrapolated to 60 dB, under
    ``key``; under ``key + ":reached"``, whether the measured decay (before the crosspoint,
    grid index ``reach_limit``) got to ``end_db``. Also returns the curve's level at the last
    measured grid point ``(batch,)``."""
    levels = np.array(list(ranges.values()), dtype=float).reshape(-1, 2)
    slopes = np.empty((len(levels), len(reach_limit)))
    ends = np.empty((len(levels), len(reach_limit)), dtype=np.int64)
    reached_db = np.empty(len(reach_limit))
    _fit_rows(sums.cells, float(sums.hop), *terms, levels, reach_limit.astype(np.int64), slopes, ends,
              reached_db)
    values = {}
    for key, slope, end in zip(ranges, slopes * (fs / sums.hop), ends):
        with np.errstate(divide="ignore", invalid="ignore"):
            values[key] = np.where(slope < 0, -60.0 / slope, np.nan)
        values[key + ":reached"] = end < reach_limit
    return values, reached_db


@compiled
def _fit_rows(cells, hop, onset, crosspoint, before_crosspoint, tail, tau, start_db, levels, reach_limit,
              slopes, ends, reached_db):
    """Each row's decay curve as far as its deepest evaluation level, and per range
    ``levels[k] = (start_db, end_db)`` the slope of its least-squares line (dB per grid point;
    NaN with fewer than two points) into ``slopes[k]`` and the range's end into ``ends[k]``
    (the curve's length where it never gets there); the curve at grid point
    ``reach_limit - 1`` into ``reached_db``. Sums of ``j`` and ``j**2`` in closed form."""
    length = cells.shape[1]
    deepest = levels[:, 1].min()
    curve = np.empty(length)
    for i in range(cells.shape[0]):
        row = cells[i]
        terms = (onset[i], crosspoint[i], before_crosspoint[i], tail[i], tau[i], start_db[i])
        computed = 0
        while computed < length:
            curve[computed] = curve_point_db(row, computed, hop, *terms)
            computed += 1
            if curve[computed - 1] <= deepest:
                break
        for k in range(levels.shape[0]):
            first, end = levels[k, 0], levels[k, 1]
            # from a level below 0 dB: its first point at or below it; from 0 dB (EDT): the
            # first point after the onset's 0 dB ones
            start = 0
            while start < computed and (curve[start] > first if first < 0.0 else curve[start] >= first):
                start += 1
            stop = start
            while stop < computed and curve[stop] > end:
                stop += 1
            ends[k, i] = stop if stop < computed else length
            sy, sjy = 0.0, 0.0
            for j in range(start, stop):
                sy += curve[j]
                sjy += j * curve[j]
            m, a = float(stop - start), float(start)
            sj = m * (2.0 * a + m - 1.0) / 2.0
            sjj = ((a + m - 1.0) * (a + m) * (2.0 * a + 2.0 * m - 1.0) - (a - 1.0) * a * (2.0 * a - 1.0)) / 6.0
            slopes[k, i] = (m * sjy - sj * sy) / (m * sjj - sj * sj) if m >= 2.0 else np.nan
        last = min(max(reach_limit[i] - 1, 0), length - 1)
        reached_db[i] = curve_point_db(row, last, hop, *terms)


def _squared(signal):
    """``signal ** 2`` in place: a band signal (a slot of the filter bank's output buffer, or a
    tensor) is used only for its energy, and a new array of a whole chunk would cost more in
    page faults than the squaring itself."""
    if is_tensor(signal):
        return signal.square_()
    return np.square(signal, out=signal)


def _measure_band(sums: EnergySums, onset: np.ndarray, peak: np.ndarray, fs: float, config: AnalysisConfig,
                  ranges: dict, noise_handling: bool = True) -> _BandResult:
    """All quantities of one band for the whole batch, from the running sums of its squared
    signal ``(batch, n)`` and its onsets ``(batch,)`` (the rows may be IRs of several bands:
    each row is measured on its own).

    The DRR (``values["drr_db"]``) is measured on the first ``len(peak)`` rows (broadband),
    ``peak`` being the first index of each one's maximum."""
    batch, n, hop = len(onset), sums.n, sums.hop
    trunc = lundeby(sums, onset, fs, config.lundeby)
    if not noise_handling:
        trunc = Truncation(np.full(batch, n), trunc.noise, trunc.slope_db_s, trunc.peak_db,
                           trunc.noise_db, np.zeros(batch), trunc.tau)
    reach_limit = -(-trunc.crosspoint // hop)
    values, reached_db = _fit_decay_times(sums, curve_terms(sums, trunc, onset), ranges, reach_limit, fs)
    values.update(_energy_parameters(sums, trunc, onset, fs))
    if len(peak):
        peaks = np.zeros(batch, dtype=np.intp)
        peaks[: len(peak)] = peak
        values["drr_db"] = _direct_to_reverberant(peaks, sums, trunc, fs, config.direct_window_s)[: len(peak)]
    with np.errstate(divide="ignore"):
        noise_floor_db = 10.0 * np.log10(trunc.noise)
    return _BandResult(values=values, inr_db=trunc.inr_db, noise_floor_db=noise_floor_db,
                       crosspoint_s=(trunc.crosspoint - onset) / fs, reached_db=reached_db,
                       energy=sums.total)


def _energy_parameters(sums: EnergySums, trunc, onset, fs) -> dict:
    """C50, C80 (dB), D50 and centre time Ts (s) from the noise-compensated energies (ISO 3382-1
    A.2): the energies after 50 ms, 80 ms and the onset are Schroeder integrals, and Ts's first
    moment counts the compensation's exponential tail (mean time ``crosspoint + tau``)."""
    # the three Schroeder integrals and the two pairs of sums in one call each: (batch, k) indices
    boundaries = onset[:, None] + np.array([0, round(0.050 * fs), round(0.080 * fs)])
    total, late50, late80 = remaining_energy(sums, trunc, boundaries).T
    cp = trunc.crosspoint
    first = sums.moment_between(onset, cp)
    measured = np.subtract(*sums.before(np.stack([cp, onset], axis=-1)).T)
    moment = first - onset * measured + trunc.tail * (cp - onset + trunc.tau)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"c50_db": 10.0 * np.log10((total - late50) / late50),
                "c80_db": 10.0 * np.log10((total - late80) / late80),
                "d50": (total - late50) / total,
                "ts_s": moment / total / fs}


def _direct_to_reverberant(peak: np.ndarray, sums: EnergySums, trunc, fs: float, window_s: float) -> np.ndarray:
    """DRR (dB): energy within +-``window_s`` of the peak (``peak``: first index of each item's
    maximum, ``(batch,)``) over the noise-compensated energy after that window -> ``(batch,)``."""
    n = sums.n
    half = int(round(window_s * fs))
    lo, hi = np.maximum(peak - half, 0), np.minimum(peak + half + 1, n)
    direct = sums.before(hi) - sums.before(lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(direct / remaining_energy(sums, trunc, hi))


# --- checks and warnings -----------------------------------------------------------------------


def _apply_checks(result: _BandResult, broadband_energy: np.ndarray, config: AnalysisConfig,
                  ranges: dict, labels: np.ndarray, notes: list, ringing_s: np.ndarray) -> dict:
    """NaN out what cannot be measured honestly; append ``(row, message)`` to ``notes``.

    Per row of ``result`` (any stack of bands and IRs): ``broadband_energy`` of its IR,
    ``labels`` (the band's name, for the messages) and ``ringing_s``, the decay time of its
    band's own filter (:func:`ringing_time`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        relative_db = 10.0 * np.log10(result.energy / broadband_energy)
    silent = ~(result.energy > 0) | (relative_db < config.silent_band_db) | ~(broadband_energy > 0)
    for i in np.flatnonzero(silent & (broadband_energy > 0)):
        notes.append((i, f"{labels[i]}: silent band (energy {relative_db[i]:.1f} dB re broadband, "
                         f"threshold {config.silent_band_db:.0f} dB); all its values are NaN"))
    out = {key: _checked_decay_time(result, key, end_db, silent, config, labels, notes, ringing_s)
           for key, (_, end_db) in ranges.items()}
    out.update(_checked_energy_parameters(result, silent, config, labels, notes))
    return out


def _checked_decay_time(result: _BandResult, key: str, end_db: float, silent: np.ndarray,
                        config: AnalysisConfig, labels: np.ndarray, notes: list, ringing_s: np.ndarray) -> np.ndarray:
    """One decay time with ISO 3382-1's dynamic-range rule and the filter-ringing limit."""
    name, inr, value = _LABELS.get(key, key), result.inr_db, result.values[key]
    needed = -end_db + config.range_margin_db
    low = ~silent & ~(inr >= needed)
    short = ~silent & ~low & ~(result.values[key + ":reached"]
                               & (result.reached_db <= end_db - config.range_margin_db))
    ratio = config.min_ringing_ratio_edt if key == "edt_s" else config.min_ringing_ratio
    shortest = ratio * ringing_s
    too_fast = ~silent & ~low & ~short & (value < shortest)
    no_fit = ~silent & ~low & ~short & ~too_fast & ~np.isfinite(value)
    rule = f"(ISO 3382-1: the evaluation range must end {config.range_margin_db:.0f} dB above the noise)"
    for i in np.flatnonzero(low):
        notes.append((i, f"{labels[i]}: {name} is NaN: peak-to-noise ratio {inr[i]:.1f} dB < {needed:.0f} dB "
                         f"needed {rule}"))
    for i in np.flatnonzero(short):
        notes.append((i, f"{labels[i]}: {name} is NaN: the decay curve meets the noise at {result.reached_db[i]:.1f} "
                         f"dB, above the {end_db - config.range_margin_db:.0f} dB needed {rule}"))
    for i in np.flatnonzero(too_fast):
        notes.append((i, f"{labels[i]}: {name} is NaN: {value[i]:.3f} s is shorter than {shortest[i]:.3f} s, "
                         f"{ratio:g}x the filter's own ringing"))
    for i in np.flatnonzero(no_fit):
        notes.append((i, f"{labels[i]}: {name} is NaN: fewer than two decay-curve points (1 ms apart) in "
                         f"the evaluation range, or no decay there"))
    return np.where(silent | low | short | too_fast, np.nan, value)


def _checked_energy_parameters(result: _BandResult, silent: np.ndarray, config: AnalysisConfig,
                               labels: np.ndarray, notes: list) -> dict:
    """C50, C80, D50, Ts: NaN where the peak-to-noise ratio is too low, where the late energy
    after the 50/80 ms boundary would be all modelled (the decay meets the noise before it), or
    where the IR ends too soon."""
    inr = result.inr_db
    weak = ~silent & ~(inr >= config.min_inr_energy_db)
    for i in np.flatnonzero(weak):
        notes.append((i, f"{labels[i]}: C50, C80, D50 and Ts are NaN: peak-to-noise ratio {inr[i]:.1f} dB "
                         f"< {config.min_inr_energy_db:.0f} dB, too little to separate decay from noise"))
    out = {}
    for key, boundary_s in (("c50_db", 0.050), ("c80_db", 0.080), ("d50", 0.050), ("ts_s", 0.0)):
        value = result.values[key]
        modelled = ~silent & ~weak & (result.crosspoint_s <= boundary_s)
        undefined = ~silent & ~weak & ~modelled & ~np.isfinite(value)
        for i in np.flatnonzero(modelled):
            notes.append((i, f"{labels[i]}: {_LABELS[key]} is NaN: the decay meets the noise "
                             f"{1e3 * result.crosspoint_s[i]:.0f} ms after the onset, before "
                             f"{1e3 * boundary_s:.0f} ms: its late energy would be modelled, not measured"))
        for i in np.flatnonzero(undefined):
            notes.append((i, f"{labels[i]}: {_LABELS[key]} is NaN: the impulse response is too short after its onset"))
        out[key] = np.where(silent | weak | modelled | undefined, np.nan, value)
    return out


def _nested_warnings(notes: list, batch_shape: tuple) -> list:
    flat = [[] for _ in range(int(np.prod(batch_shape, dtype=int)))]
    for i, message in notes:
        flat[i].append(message)
    if not batch_shape:
        return flat[0]
    nested = np.empty(len(flat), dtype=object)
    nested[:] = flat
    return nested.reshape(batch_shape).tolist()


# --- public entry points -----------------------------------------------------------------------


def _band_label(hz: float) -> str:
    return f"{hz:g} Hz" if hz < 1000 else f"{hz / 1000:g} kHz"


@dataclass
class _Chunk:
    """Everything measured on a chunk of IRs: per band the checked values and the raw result,
    the same for broadband, and the ``(index in chunk, message)`` warnings."""

    centres: np.ndarray
    bands: list
    broadband: dict
    broadband_result: _BandResult
    notes: list

    def per_band(self, pick) -> np.ndarray:
        """``pick(values, result) -> (batch,)`` for each band, stacked to ``(batch, n_bands)``."""
        batch = len(self.broadband_result.energy)
        return np.stack([pick(v, r) for v, r in self.bands], axis=-1) if self.bands else np.zeros((batch, 0))


def _measure_all(x: np.ndarray, fs: float, config: AnalysisConfig, ranges: dict,
                 noise_handling: bool = True, workspace: Workspace | None = None) -> _Chunk:
    """Filter a ``(batch, n)`` chunk and measure and check every band and broadband."""
    centres = band_centres(config.bands, fs, config.lowest_band_hz)
    lower, upper = band_edges(config.bands, centres)
    ringing = ringing_time(lower, upper, config.filter_order)
    bank = FilterBank(x, fs, lower, upper, config.filter_order, config.device, workspace)
    batch = len(x)
    # all bands of the chunk measured and checked in one stack: a seventh of the Python calls
    stacked = _measure_band(*_band_rows(bank, x, _curve_hop(fs), config.onset_threshold_db), fs, config,
                            ranges, noise_handling)
    total = stacked.energy[:batch]
    broadband_ringing = highpass_ringing_time(lower[0], config.filter_order) if len(lower) else 0.0
    labels = np.repeat(["broadband", *(_band_label(hz) for hz in centres)], batch)
    ringing_rows = np.repeat(np.concatenate([[broadband_ringing], ringing]), batch)
    row_notes = []
    checked = _apply_checks(stacked, np.tile(total, len(centres) + 1), config, ranges, labels, row_notes,
                            ringing_rows)
    notes = [(i, "the impulse response is all zeros; every value is NaN") for i in np.flatnonzero(~(total > 0))]
    notes += [(row % batch, message) for row, message in row_notes]
    parts = [slice(k * batch, (k + 1) * batch) for k in range(len(centres) + 1)]
    broadband_result = stacked.rows(parts[0])
    broadband = {key: value[parts[0]] for key, value in checked.items()}
    broadband["drr_db"] = np.where(total > 0, broadband_result.values["drr_db"], np.nan)
    bands = [({key: value[part] for key, value in checked.items()}, stacked.rows(part)) for part in parts[1:]]
    return _Chunk(centres, bands, broadband, broadband_result, notes)


def _band_rows(bank: FilterBank, x: np.ndarray, hop: int, threshold_db: float):
    """Filter a chunk ``x`` ``(batch, n)`` into broadband (high-passed at the lowest band's
    lower edge) and its bands, and square each: ``(1 + n_bands) * batch`` rows, broadband first
    (just ``x**2`` when the sample rate supports no band). Each band's per-sample passes (onset,
    running sums) run as soon as it is filtered, while it is still in cache.

    Returns the :class:`EnergySums` of all rows, their ISO 3382-1 onsets, and the first index
    of the maximum of the broadband rows ``(batch,)`` (for the DRR)."""
    if not len(bank):
        energy = x * x
        return EnergySums(energy, hop), onset_index(energy, threshold_db), first_index_of_max(energy)
    slots = bank.output_buffer(1 + len(bank)) if bank.device is None else [None] * (1 + len(bank))
    batch = len(x)
    # the sums of every band written straight into the rows of the stack
    cells, within = EnergySums.empty_cells(len(slots) * batch, bank.n, hop)
    energies, onsets = [], []
    for k, slot in enumerate(slots):
        energy = _squared(bank.highpass(bank.lower[0], slot) if k == 0 else bank.band(k - 1, slot))
        energies.append(energy)
        rows = slice(k * batch, (k + 1) * batch)
        EnergySums.write_cells(energy, hop, cells[rows], within[rows])
        onsets.append(onset_index(energy, threshold_db))
    if bank.device is None:
        stacked = slots[..., : bank.n].reshape(-1, bank.n)
    else:
        import torch

        stacked = torch.cat(energies)
    return EnergySums(stacked, hop, cells, within), np.concatenate(onsets), first_index_of_max(energies[0])


def analyze(ir, fs: float, bands: str = "octave", config: AnalysisConfig | None = None) -> AcousticParameters:
    """ISO 3382-1 parameters of impulse responses ``ir`` of shape ``(..., n_samples)`` at ``fs`` Hz.

    Per band (IEC 61260-1 octave or one-third-octave, zero-phase) and broadband (the IR
    high-passed at the lowest band's lower edge, zero-phase, so that a DC offset or rumble below
    the analysed range counts neither as reverberation nor as noise):
    EDT (fit 0 to -10 dB), T20 (-5 to -25 dB), T30 (-5 to -35 dB), each a least-squares line on
    the Schroeder decay curve extrapolated to 60 dB; C50, C80 (dB), D50 and centre time Ts (s).
    Broadband only: DRR (dB) with the direct sound = +-2.5 ms around the peak.

    The decay curve starts at the ISO 3382-1 onset (first sample within 20 dB of the peak) and
    handles noise by Lundeby et al. (1995): it is truncated where the decay meets the noise and
    the truncated energy is added back from the late decay's exponential. Early/late energies
    of C50/C80/D50/Ts are taken from the same compensated curve, so noise does not inflate them.

    ``bands`` is used when ``config`` is None; otherwise ``config.bands`` rules. Returns
    :class:`AcousticParameters` (arrays with the batch shape in front; NaN + warning where a
    value cannot be measured honestly). Raises :class:`UserError` for empty, non-finite or too
    short input.
    """
    config = config or AnalysisConfig(bands=bands)
    x = validate_ir(ir, fs, allow_silent=True)
    batch_shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    return _assemble(_measure_chunks(flat, fs, config, DECAY_RANGES), fs, config, batch_shape)


def _measure_chunks(flat: np.ndarray, fs: float, config: AnalysisConfig, ranges: dict,
                    noise_handling: bool = True) -> list[_Chunk]:
    """:func:`_measure_all` on every chunk of ``flat`` ``(batch, n)``, in ``config.workers``
    threads; the chunks come back in order."""
    workers = _thread_count(config)
    rows_per_ir = 1 + len(band_centres(config.bands, fs, config.lowest_band_hz))
    parts = _chunks(flat, config.chunk_samples // rows_per_ir, workers)
    if workers == 1 or len(parts) == 1:
        with Workspace.borrowed() as workspace:
            return [_measure_all(part, fs, config, ranges, noise_handling, workspace) for part in parts]

    def measure(part: np.ndarray) -> _Chunk:
        with Workspace.borrowed() as workspace:
            return _measure_all(part, fs, config, ranges, noise_handling, workspace)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(measure, parts))


def _thread_count(config: AnalysisConfig) -> int:
    if config.device is not None:
        return 1
    if config.workers:
        return config.workers
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


FFT_LANES = 4
"""pocketfft (NumPy's and SciPy's FFT) transforms the rows of a batch four at a time in SIMD
lanes and the rest one by one at about 2.5 times the cost per row (138,240-point inverse
transforms, this machine: 0.30 ms per row for 8 or 12 rows, 0.42 for 9, 0.75 for one)."""


def _chunks(flat: np.ndarray, chunk_samples: int, workers: int) -> list[np.ndarray]:
    """``flat`` split into chunks of at most ``chunk_samples // n`` IRs (at least one): whole
    groups of :data:`FFT_LANES` IRs spread as evenly as possible over a multiple of ``workers``
    chunks (or one per group, if fewer), the last chunk taking the incomplete group."""
    largest = max(1, chunk_samples // flat.shape[-1])
    group = FFT_LANES if largest >= FFT_LANES else 1
    groups = -(-len(flat) // group)
    count = -(-groups // (largest // group))
    count = min(groups, -(-count // workers) * workers)
    per_chunk = np.full(count, groups // count)
    per_chunk[: groups % count] += 1
    return np.split(flat, np.cumsum(per_chunk * group)[:-1])


def _assemble(chunks: list[_Chunk], fs, config, batch_shape) -> AcousticParameters:
    """Concatenate the chunks and give everything the batch shape."""
    n_bands = len(chunks[0].centres)
    offsets = np.cumsum([0] + [len(chunk.broadband_result.energy) for chunk in chunks])
    notes = sorted((int(i + offset), message) for chunk, offset in zip(chunks, offsets)
                   for i, message in chunk.notes)

    def per_band(pick) -> np.ndarray:
        return np.concatenate([chunk.per_band(pick) for chunk in chunks]).reshape(batch_shape + (n_bands,))

    broadband = {key: np.concatenate([chunk.broadband[key] for chunk in chunks]).reshape(batch_shape)
                 for key in (*BAND_KEYS, "drr_db")}
    return AcousticParameters(
        fs=fs, bands_hz=chunks[0].centres,
        **{key: per_band(lambda values, result, key=key: values[key]) for key in BAND_KEYS},
        drr_db=broadband["drr_db"], broadband=broadband,
        inr_db=per_band(lambda values, result: result.inr_db),
        noise_floor_db=per_band(lambda values, result: result.noise_floor_db),
        crosspoint_s=per_band(lambda values, result: result.crosspoint_s),
        warnings=_nested_warnings(notes, batch_shape), config=config)


def decay_time(ir, fs: float, bands: str = "octave", start_db: float = -5.0, end_db: float = -35.0,
               noise_handling: bool = True, check_range: bool = True,
               config: AnalysisConfig | None = None):
    """Decay time (s) from a line fitted to the Schroeder curve between ``start_db`` and
    ``end_db`` (dB re its start) and extrapolated to 60 dB; per band and broadband.

    ``ir``: ``(..., n_samples)``. Returns ``(bands_hz (n_bands,), per_band S + (n_bands,),
    broadband S)``. With the defaults this is T30 as in :func:`analyze`.

    The IoSR MATLAB toolbox ``irStats`` definition that the Image2Reverb evaluation used is
    ``start_db=0, end_db=-60, noise_handling=False, check_range=False``: plain Schroeder
    integration over the whole file and a fit over everything from 0 to -60 dB. Its limitations:
    the fit includes the early decay (EDT-like, sensitive to the direct sound), and without noise
    handling the curve bends near the end (noise raises it, truncation drops it), so the number
    depends on the file length and the noise, and extrapolates where the IR has < 60 dB of range.
    With ``check_range`` the ISO 3382-1 dynamic-range rule applies (NaN where it fails).
    """
    config = config or AnalysisConfig(bands=bands)
    x = validate_ir(ir, fs, allow_silent=True)
    batch_shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    ranges = {"decay_s": (float(start_db), float(end_db))}
    chunks = _measure_chunks(flat, fs, config, ranges, noise_handling)
    if check_range:
        per_band = [chunk.per_band(lambda values, result: values["decay_s"]) for chunk in chunks]
        broadband = [chunk.broadband["decay_s"] for chunk in chunks]
    else:
        per_band = [chunk.per_band(lambda values, result: result.values["decay_s"]) for chunk in chunks]
        broadband = [chunk.broadband_result.values["decay_s"] for chunk in chunks]
    centres = chunks[0].centres
    return (centres, np.concatenate(per_band).reshape(batch_shape + (len(centres),)),
            np.concatenate(broadband).reshape(batch_shape))
