"""Speed and accuracy of i2r.acoustics against acoustic-toolbox and pyrato, in one run.

The task (issue 2): the full ISO 3382-1 parameter set (T20, T30, EDT, C50, C80, D50, Ts per
octave band, DRR, broadband) for 1,000 IRs of 5.94 s at 22,050 Hz. The IRs are synthetic with a
known answer: per octave band, pink band-limited noise under an exponential envelope of a chosen
T60 (smooth over frequency, as in real rooms), a direct sound, a pre-delay, and a white noise
floor 55-75 dB below the start of the decay; seeded.

Competitors run on a subset (``--n-competitors``, default 50) of the same IRs:
- acoustic-toolbox (the maintained python-acoustics): ``t60_impulse(file, bands, "t30")``,
  ``t60_impulse(file, bands, "edt")``, ``c50_from_file``, ``c80_from_file``; these read files, so
  the IRs are written as float32 WAVs to a temporary folder (file reading is part of its API and
  costs ~1 ms of the total);
- pyrato: pyfar's IEC 61260-1 octave filter bank, ``energy_decay_curve_lundeby`` (Lundeby
  truncation and compensation, band-dependent smoothing) and ``reverberation_time_linear_regression``
  for T30 only -- less work than the others do.

Printed: per-IR median times, ratios, and the median absolute T30 error (%) per band against the
ground truth for each tool on the same subset (and for i2r on all IRs).

Run it in the reference environment (it needs all three packages)::

    .venv-reference/bin/python benchmarks/bench_acoustics.py            # 1,000 IRs
    .venv-reference/bin/python benchmarks/bench_acoustics.py --profile  # where i2r spends time
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

OCTAVES_HZ = np.array([125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0])


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic IR set: sizes, and the ranges the per-IR parameters are drawn from."""

    n: int = 1000
    fs: int = 22050
    duration_s: float = 5.94
    t60_mid_range_s: tuple[float, float] = (0.3, 2.5)
    t60_tilt_range: tuple[float, float] = (0.0, 0.25)  # T60(f) = T60_mid * 2**(-tilt*log2(f/1k))
    floor_db_range: tuple[float, float] = (55.0, 75.0)  # noise floor below the decay's start
    predelay_s_range: tuple[float, float] = (0.002, 0.02)
    drr_db_range: tuple[float, float] = (-8.0, 2.0)
    seed: int = 0


def band_t60s(rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """Ground-truth T60 per octave band, ``(len(OCTAVES_HZ),)`` in s: a mid-band T60 with a
    downward tilt towards high frequencies (air absorption, absorbent furnishings)."""
    mid = rng.uniform(*config.t60_mid_range_s)
    tilt = rng.uniform(*config.t60_tilt_range)
    return mid * 2.0 ** (-tilt * np.log2(OCTAVES_HZ / 1000.0))


def synth_ir(rng: np.random.Generator, t60: np.ndarray, config: SynthConfig) -> np.ndarray:
    """One IR ``(n_samples,)``: per octave band (brick-wall split of one pink noise at the
    IEC 61260-1 octave edges; the outer bands extend to 0 Hz and Nyquist) an exponential decay
    of energy reaching -60 dB at ``t60[b]``, a direct-sound impulse, a pre-delay and white noise."""
    n = int(round(config.duration_s * config.fs))
    freqs = np.fft.rfftfreq(n, 1.0 / config.fs)
    spectrum = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(freqs, 20.0) / 1000.0)
    edges = np.concatenate([[0.0], np.sqrt(OCTAVES_HZ[:-1] * OCTAVES_HZ[1:]), [np.inf]])
    t = np.arange(n) / config.fs
    decay = np.zeros(n)
    for band, t60_b in enumerate(t60):
        mask = (freqs >= edges[band]) & (freqs < edges[band + 1])
        decay += np.fft.irfft(spectrum * mask, n) * np.exp(-3.0 * np.log(10.0) * t / t60_b)
    decay /= np.sqrt(np.mean(decay[: config.fs // 100] ** 2))
    onset = int(rng.uniform(*config.predelay_s_range) * config.fs)
    ir = np.zeros(n)
    ir[onset:] = decay[: n - onset]
    ir[onset] += np.sqrt(np.sum(decay ** 2) * 10 ** (rng.uniform(*config.drr_db_range) / 10))
    ir += rng.standard_normal(n) * 10 ** (-rng.uniform(*config.floor_db_range) / 20)
    return ir / np.max(np.abs(ir))


def synth_set(config: SynthConfig, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """IRs ``start..stop-1`` of the set: ``(irs (k, n_samples) float64, t60 (k, n_bands) s)``;
    each IR has its own seed, so any slice is reproducible on its own."""
    irs, t60s = [], []
    for index in range(start, stop):
        rng = np.random.default_rng([config.seed, index])
        t60 = band_t60s(rng, config)
        irs.append(synth_ir(rng, t60, config))
        t60s.append(t60)
    return np.stack(irs), np.stack(t60s)


# --- the three tools ---------------------------------------------------------------------------


def run_i2r(irs: np.ndarray, fs: int):
    """The full parameter set in one vectorised call; returns T30 ``(k, n_bands)`` and bands."""
    import i2r.acoustics

    params = i2r.acoustics.analyze(irs, fs, bands="octave")
    return np.asarray(params.t30_s), np.asarray(params.bands_hz)


def run_acoustic_toolbox(path: str) -> np.ndarray:
    """T30, EDT, C50 and C80 per octave band of one WAV file; returns T30 ``(n_bands,)``."""
    from acoustic_toolbox.room import c50_from_file, c80_from_file, t60_impulse

    t30 = t60_impulse(path, OCTAVES_HZ, rt="t30")
    t60_impulse(path, OCTAVES_HZ, rt="edt")
    c50_from_file(path, OCTAVES_HZ)
    c80_from_file(path, OCTAVES_HZ)
    return t30


def run_pyrato(ir: np.ndarray, fs: int) -> np.ndarray:
    """T30 per octave band with Lundeby truncation + compensation; returns ``(n_bands,)``."""
    import pyfar
    import pyrato

    signal = pyfar.Signal(ir, fs)
    bands = pyfar.dsp.filter.fractional_octave_bands(
        signal, num_fractions=1, frequency_range=(OCTAVES_HZ[0], OCTAVES_HZ[-1]))
    edc = pyrato.edc.energy_decay_curve_lundeby(bands, smoothing_parameter=OCTAVES_HZ)
    return np.ravel(pyrato.parameters.reverberation_time_linear_regression(edc, "T30"))


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


# --- the benchmark -----------------------------------------------------------------------------


def bench_i2r(config: SynthConfig, block: int):
    """Time i2r block by block (generation not timed); per-IR time = block time / block size."""
    per_ir, t30s, truths = [], [], []
    run_i2r(*(synth_set(config, 0, 2)[0], config.fs))  # warm-up: imports, filter design caches
    for start in range(0, config.n, block):
        irs, t60 = synth_set(config, start, min(start + block, config.n))
        (t30, bands), seconds = timed(run_i2r, irs, config.fs)
        per_ir.append(seconds / len(irs))
        t30s.append(t30)
        truths.append(t60)
    if not np.allclose(bands, OCTAVES_HZ, rtol=0.03):
        raise SystemExit(f"i2r returned bands {bands}, expected the octaves {OCTAVES_HZ}")
    return np.array(per_ir), np.concatenate(t30s), np.concatenate(truths)


def bench_competitors(config: SynthConfig, n: int):
    """Time acoustic-toolbox and pyrato IR by IR on the first ``n`` IRs."""
    import soundfile
    from scipy.io.wavfile import WavFileWarning

    # soundfile's float WAVs carry a PEAK chunk that scipy's reader (used by acoustic-toolbox)
    # warns about and skips
    warnings.simplefilter("ignore", WavFileWarning)
    irs, truth = synth_set(config, 0, n)
    at_times, at_t30, pr_times, pr_t30 = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for index, ir in enumerate(irs):
            path = os.path.join(folder, f"ir{index:04d}.wav")
            soundfile.write(path, ir.astype(np.float32), config.fs, subtype="FLOAT")
            t30, seconds = timed(run_acoustic_toolbox, path)
            at_times.append(seconds)
            at_t30.append(t30)
            t30, seconds = timed(run_pyrato, ir, config.fs)
            pr_times.append(seconds)
            pr_t30.append(t30)
    return irs, truth, (np.array(at_times), np.stack(at_t30)), (np.array(pr_times), np.stack(pr_t30))


def abs_pct_error(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Median over IRs of |estimate - truth| / truth in %, per band; NaN estimates are left out
    and counted separately (see :func:`nan_count`)."""
    return np.nanmedian(np.abs(estimate - truth) / truth * 100.0, axis=0)


def nan_count(estimate: np.ndarray) -> np.ndarray:
    return np.sum(~np.isfinite(estimate), axis=0)


def print_accuracy(rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    header = "".join(f"{f:>9.0f}" for f in OCTAVES_HZ)
    print(f"\nT30 median |error| vs ground-truth T60, % per octave band (NaN count in brackets)")
    print(f"{'tool':<28}{header}")
    for name, (estimate, truth) in rows.items():
        errors = abs_pct_error(estimate, truth)
        nans = nan_count(estimate)
        cells = "".join(f"{e:>6.2f}[{k}]" if k else f"{e:>9.2f}" for e, k in zip(errors, nans))
        print(f"{name:<28}{cells}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="IRs for i2r (default 1000)")
    parser.add_argument("--n-competitors", type=int, default=50, help="IRs for the other tools")
    parser.add_argument("--block", type=int, default=100, help="IRs per i2r call (default 100)")
    parser.add_argument("--profile", action="store_true", help="profile one i2r block and exit")
    args = parser.parse_args(argv)
    config = SynthConfig(n=args.n)
    if args.profile:
        irs, _ = synth_set(config, 0, args.block)
        run_i2r(irs[:2], config.fs)
        cProfile.runctx("run_i2r(irs, config.fs)", globals(), {"irs": irs, "config": config},
                        "/tmp/bench_acoustics.prof")
        pstats.Stats("/tmp/bench_acoustics.prof").sort_stats("cumulative").print_stats(25)
        return
    print(f"config: {asdict(config)}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    sub_irs, sub_truth, (at_s, at_t30), (pr_s, pr_t30) = bench_competitors(config, args.n_competitors)
    i2r_s, i2r_t30, truth = bench_i2r(config, args.block)
    i2r_sub_t30, _ = run_i2r(sub_irs, config.fs)
    i2r_ms, at_ms, pr_ms = (1e3 * np.median(x) for x in (i2r_s, at_s, pr_s))
    print(f"\nper-IR time (median), full parameter set unless noted:")
    print(f"  i2r.acoustics      {i2r_ms:9.2f} ms  ({config.n} IRs in blocks of {args.block}; "
          f"{1e-3 * i2r_ms * config.n:.1f} s in all)")
    print(f"  acoustic-toolbox   {at_ms:9.2f} ms  (T30+EDT+C50+C80, {args.n_competitors} IRs)"
          f"   ratio {at_ms / i2r_ms:6.1f}x  (target >= 20x)")
    print(f"  pyrato (T30 only)  {pr_ms:9.2f} ms  ({args.n_competitors} IRs)"
          f"   ratio {pr_ms / i2r_ms:6.1f}x  (target >= 10x)")
    print_accuracy({
        f"i2r ({config.n} IRs)": (i2r_t30, truth),
        f"i2r ({args.n_competitors} IRs)": (i2r_sub_t30, sub_truth),
        f"acoustic-toolbox ({args.n_competitors})": (at_t30, sub_truth),
        f"pyrato Lundeby ({args.n_competitors})": (pr_t30, sub_truth),
    })


if __name__ == "__main__":
    main()
