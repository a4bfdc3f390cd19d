"""Decay-curve figures: what ``i2r analyze --plot DIR`` draws for each file.

One panel per band (and one broadband): the band's smoothed energy envelope, its ISO 3382-1
Schroeder decay curve with Lundeby noise handling, the least-squares lines behind T30 and EDT
over their evaluation ranges (ISO 3382-1: T30 -5 to -35 dB, EDT 0 to -10 dB; shaded), the noise
floor Lundeby found and the truncation point (where the decay meets the noise). The curves are
recomputed with the public pieces of :mod:`i2r.acoustics` (the same filter bank, onset rule and
Lundeby settings as :func:`i2r.acoustics.analyze`), and the numbers printed on each panel are
``analyze``'s, so the picture shows exactly what was measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from i2r.acoustics.bands import FilterBank, band_centres, band_edges
from i2r.acoustics.decay import EnergySums, cumulative_energy, decay_curve_db, lundeby, onset_index
from i2r.acoustics.parameters import DECAY_RANGES, AnalysisConfig
from i2r.files import atomic_savefig

ENVELOPE_WINDOW_S = 0.010
"""Smoothing of the plotted energy envelope (Lundeby's first interval, 10 ms)."""
MAX_POINTS = 2000
PLOTTED_FITS = {"t30_s": ("T30", "tab:red"), "edt_s": ("EDT", "tab:orange")}


@dataclass(frozen=True)
class DecayFit:
    """A least-squares decay line: ``level_db = intercept_db + slope_db_s * t`` over the
    evaluation range ``[start_s, stop_s]`` (times from the file start)."""

    start_s: float
    stop_s: float
    intercept_db: float
    slope_db_s: float


@dataclass(frozen=True)
class BandDecay:
    """What one panel shows. ``times_s`` ``(n,)``; ``curve_db`` ``(n,)`` Schroeder decay in dB re
    its value at the onset; ``envelope_db`` ``(n,)`` energy smoothed over 10 ms, dB re its peak;
    ``noise_db`` the noise floor in the envelope's dB; ``onset_s``, ``crosspoint_s`` from the file
    start; ``fits`` keyed like :data:`i2r.acoustics.parameters.DECAY_RANGES` (absent: no fit)."""

    label: str
    times_s: np.ndarray
    curve_db: np.ndarray
    envelope_db: np.ndarray
    noise_db: float
    onset_s: float
    crosspoint_s: float
    fits: dict


def band_decays(ir: np.ndarray, fs: float, config: AnalysisConfig) -> list[BandDecay]:
    """Decay curves of one IR ``(n_samples,)`` per band of ``config`` and broadband (last).

    Same steps as :func:`i2r.acoustics.analyze`: IEC 61260-1 zero-phase bands (broadband:
    high-passed at the lowest band's lower edge), ISO 3382-1 onset
    (``config.onset_threshold_db``), Lundeby truncation with compensation, least-squares lines over
    the ISO evaluation ranges.
    """
    ir = np.asarray(ir, dtype=float)[None, :]
    centres = band_centres(config.bands, fs, config.lowest_band_hz)
    lower, upper = band_edges(config.bands, centres)
    bank = FilterBank(ir, fs, lower, upper, config.filter_order)
    signals = [(_band_label(hz), bank.band(k)) for k, hz in enumerate(centres)]
    # analyze's broadband is high-passed at the lowest band edge (DC and rumble are not decay)
    signals.append(("broadband", bank.highpass(lower[0]) if len(lower) else ir))
    return [_one_decay(label, signal, fs, config) for label, signal in signals]


def _one_decay(label: str, signal: np.ndarray, fs: float, config: AnalysisConfig) -> BandDecay:
    energy = signal * signal
    n = energy.shape[-1]
    onset = onset_index(energy, config.onset_threshold_db)
    cs = cumulative_energy(energy)
    sums = EnergySums.from_prefix(cs)
    trunc = lundeby(sums, onset, fs, config.lundeby)
    curve = decay_curve_db(sums, trunc, onset)[0, :n]
    times = np.arange(n) / fs
    envelope_db, peak_db = _envelope_db(cs[0], fs)
    fits = {key: fit for key, (start_db, end_db) in DECAY_RANGES.items()
            if (fit := fit_decay(times, curve, onset[0], start_db, end_db)) is not None}
    return BandDecay(label=label, times_s=times, curve_db=curve, envelope_db=envelope_db,
                     noise_db=float(trunc.noise_db[0] - peak_db), onset_s=onset[0] / fs,
                     crosspoint_s=trunc.crosspoint[0] / fs, fits=fits)


def fit_decay(times_s: np.ndarray, curve_db: np.ndarray, onset: int, start_db: float,
              end_db: float) -> DecayFit | None:
    """ISO 3382-1 least-squares line through the decay curve ``(n,)`` from where it first falls
    to ``start_db`` (the onset for 0 dB) to where it first falls to ``end_db``; None if that
    range holds fewer than two samples or does not decay."""
    after = np.arange(len(curve_db)) >= onset
    in_range = after & (curve_db <= start_db if start_db < 0 else after) & (curve_db >= end_db)
    if np.count_nonzero(in_range) < 2:
        return None
    t, y = times_s[in_range], curve_db[in_range]
    slope, intercept = np.polyfit(t, y, 1)
    return DecayFit(float(t[0]), float(t[-1]), float(intercept), float(slope)) if slope < 0 else None


def _envelope_db(cs: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """Mean energy over a centred 10 ms window at every sample, dB re its peak; also the peak
    in absolute dB (to put the noise level on the same scale)."""
    n = len(cs) - 1
    half = max(1, int(round(ENVELOPE_WINDOW_S * fs / 2)))
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half, 1, n)
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(np.maximum((cs[hi] - cs[lo]) / (hi - lo), 1e-300))
    peak = float(level.max())
    return level - peak, peak


def _band_label(hz: float) -> str:
    return f"{hz:g} Hz" if hz < 1000 else f"{hz / 1000:g} kHz"


def plot_decays(path: str | os.PathLike, ir: np.ndarray, fs: float, record: dict,
                config: AnalysisConfig, title: str = "") -> None:
    """Write the decay-curve PNG of one IR ``(n_samples,)`` to ``path`` (atomically).

    ``record`` is the file's JSON result (:meth:`AcousticParameters.to_json_dict`); its T30 and
    EDT are printed on each panel ("n/a" where analyze returned null: the line is then drawn
    dotted, to show why the value was rejected).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    decays = band_decays(ir, fs, config)
    values = [{key: record[key][k] for key in PLOTTED_FITS} for k in range(len(decays) - 1)]
    values.append({key: record["broadband"].get(key) for key in PLOTTED_FITS})
    ncols = 2 if len(decays) <= 10 else 4
    nrows = -(-len(decays) // ncols)
    fig = Figure(figsize=(5.0 * ncols, 2.5 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, decay, value in zip(axes, decays, values):
        _draw_band(ax, decay, value)
    for ax in axes[len(decays):]:
        ax.set_axis_off()
    fig.legend(handles=_legend_handles(), loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(title or "Schroeder decay curves", fontsize=11)
    atomic_savefig(fig, path, dpi=80)


def _legend_handles() -> list:
    """One legend for the figure, the same whatever the first panel happens to show."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [Line2D([], [], color="0.75", lw=0.6, label="energy (10 ms)"),
            Line2D([], [], color="tab:blue", lw=1.3, label="Schroeder decay (Lundeby-compensated)"),
            Patch(color="tab:red", alpha=0.15, label="T30 range (-5..-35 dB)"),
            Line2D([], [], color="0.3", ls="--", lw=0.8, label="noise floor"),
            Line2D([], [], color="tab:purple", ls=":", lw=1.0, label="truncation point"),
            Line2D([], [], color="tab:red", lw=2.2, label="T30 fit (dotted: rejected)"),
            Line2D([], [], color="tab:orange", lw=2.2, label="EDT fit (dotted: rejected)"),
            Line2D([], [], color="0.4", lw=0.7, ls="--", label="fit extended to -60 dB")]


def _draw_band(ax, decay: BandDecay, values: dict) -> None:
    end_s = min(decay.times_s[-1], max(1.3 * decay.crosspoint_s, decay.onset_s + 0.05))
    # ~2000 points per line are plenty at 80 dpi and keep rendering fast (the curves are smooth:
    # a Schroeder integral and a 10 ms moving average)
    shown = np.flatnonzero(decay.times_s <= end_s)
    shown = shown[:: max(1, len(shown) // MAX_POINTS)]
    floor = max(-120.0, min(decay.noise_db - 15.0, -70.0))
    ax.plot(decay.times_s[shown], decay.envelope_db[shown], color="0.75", lw=0.6)
    ax.plot(decay.times_s[shown], decay.curve_db[shown], color="tab:blue", lw=1.3)
    ax.axhspan(-35.0, -5.0, color="tab:red", alpha=0.06, lw=0)
    ax.axhline(decay.noise_db, color="0.3", ls="--", lw=0.8)
    ax.axvline(decay.crosspoint_s, color="tab:purple", ls=":", lw=1.0)
    parts = [decay.label]
    for key, (name, colour) in PLOTTED_FITS.items():
        fit = decay.fits.get(key)
        value = values.get(key)
        parts.append(f"{name} {value:.2f} s" if value is not None else f"{name} n/a")
        if fit is None:
            continue
        t = np.array([fit.start_s, fit.stop_s])
        ax.plot(t, fit.intercept_db + fit.slope_db_s * t, color=colour, lw=2.2,
                ls="-" if value is not None else ":")
        reach = np.array([decay.onset_s, (-60.0 - fit.intercept_db) / fit.slope_db_s])
        ax.plot(reach, fit.intercept_db + fit.slope_db_s * reach, color=colour, lw=0.7, ls="--")
    ax.set_title("   ".join(parts), fontsize=9)
    ax.set_xlim(0.0, end_s)
    ax.set_ylim(floor, 5.0)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("level (dB)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
