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
  truncation and compensation, band-dependent smoothing, each band normalised on its own) and
  ``reverberation_time_linear_regression`` for T30 only -- less work than the others do.

i2r runs twice on every block: on one thread (``workers=1``) and with its default, a thread
per core (``workers=0``); both give the same numbers, bit for bit (checked). acoustic-toolbox and
pyrato are single-threaded libraries, so the one-thread ratio compares like with like and the
all-core ratio is what a user of each library gets on this machine; the CPU-time ratio (process
CPU seconds per IR) shows the work saved rather than the cores added.

Also timed, on one thread: i2r's zero-phase filter bank alone (the forward FFT and the weighted
inverse FFTs, nothing measured), the floor of any implementation of that bank. And, after the
blocks, i2r on all ``--n`` IRs in one call, as a user with a thousand IRs would run it (five
rounds, one thread and default alternating, each followed by both competitors on four of their
IRs; the one-call ratios are medians of each round's ratio, as the machine's speed drifts).
A block of 50 ends in chunks of two IRs (one thread) or of four and two (two threads), which
the FFTs transform at a higher cost per row.

Printed: per-IR median wall and CPU times, the ratios, the median absolute T30 error (%) per
band against the ground truth for each tool on the same subset (and for i2r on all IRs), and
i2r against each tool IR by IR (paired differences of |error|, Wilcoxon signed-rank test).

Run it in the reference environment (it needs all three packages)::

    .venv-reference/bin/python benchmarks/bench_acoustics.py            # 1,000 IRs
    .venv-reference/bin/python benchmarks/bench_acoustics.py --profile  # where i2r spends time (one thread)
    .venv/bin/python benchmarks/bench_acoustics.py --scaling 20         # why two threads give less than 2x
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field

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


def run_i2r(irs: np.ndarray, fs: int, workers: int = 0):
    """The full parameter set in one vectorised call on ``workers`` threads (0: one per core);
    returns T30 ``(k, n_bands)`` and bands."""
    import i2r.acoustics

    config = i2r.acoustics.AnalysisConfig(bands="octave", workers=workers)
    params = i2r.acoustics.analyze(irs, fs, config=config)
    return np.asarray(params.t30_s), np.asarray(params.bands_hz)


def run_filter_bank(irs: np.ndarray, fs: int) -> None:
    """Only the filtering that :func:`run_i2r` does on one thread: per chunk, the forward FFT and
    the weighted inverse FFTs of broadband and every octave band into reused buffers. No
    implementation of this zero-phase bank can measure faster than this takes."""
    from i2r.acoustics import AnalysisConfig, band_centres, band_edges
    from i2r.acoustics.bands import FilterBank, Workspace
    from i2r.acoustics.parameters import _chunks

    config = AnalysisConfig(bands="octave", workers=1)
    centres = band_centres(config.bands, fs)
    lower, upper = band_edges(config.bands, centres)
    with Workspace.borrowed() as workspace:
        for part in _chunks(irs, config.chunk_samples // (1 + len(centres)), 1):
            bank = FilterBank(part, fs, lower, upper, config.filter_order, workspace=workspace)
            slots = bank.output_buffer(1 + len(bank))
            bank.highpass(lower[0], slots[0])
            for k in range(len(bank)):
                bank.band(k, slots[k + 1])


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
    # channel_independent: each band starts at its own onset and 0 dB (pyrato's default normalises
    # all bands by the loudest one, which moves the -5..-35 dB range of the quieter bands)
    edc = pyrato.edc.energy_decay_curve_lundeby(bands, smoothing_parameter=OCTAVES_HZ,
                                                channel_independent=True)
    return np.ravel(pyrato.parameters.reverberation_time_linear_regression(edc, "T30"))


def timed(fn, *args):
    """``fn(*args)``, its wall-clock seconds and the process's CPU seconds (all threads)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return value, time.perf_counter() - start, time.process_time() - cpu


# --- the benchmark -----------------------------------------------------------------------------


ONE_CALL_ROUNDS = 5
ROUND_IRS = 4
"""Competitor IRs timed in each round of the one-call timings, beside i2r's calls: the ratios of
a round compare times taken within seconds of each other."""


@dataclass
class Measurements:
    """Per-IR wall and CPU seconds and T30 ``(k, n_bands)`` of each tool, with the ground truth;
    i2r on one thread (``i2r1``) and on all cores (``i2r``), and its filter bank alone (``bank``),
    per block; i2r on all IRs in one call (``whole1``, ``whole``), per round, with the median
    times of the competitors on :data:`ROUND_IRS` of their IRs in the same round (``round_*``)."""

    i2r_s: list = field(default_factory=list)
    i2r_cpu_s: list = field(default_factory=list)
    i2r1_s: list = field(default_factory=list)
    i2r1_cpu_s: list = field(default_factory=list)
    bank_s: list = field(default_factory=list)
    bank_cpu_s: list = field(default_factory=list)
    whole1_s: list = field(default_factory=list)
    whole1_cpu_s: list = field(default_factory=list)
    whole_s: list = field(default_factory=list)
    whole_cpu_s: list = field(default_factory=list)
    i2r_t30: list = field(default_factory=list)
    truth: list = field(default_factory=list)
    sub_index: list = field(default_factory=list)
    toolbox_s: list = field(default_factory=list)
    toolbox_cpu_s: list = field(default_factory=list)
    toolbox_t30: list = field(default_factory=list)
    pyrato_s: list = field(default_factory=list)
    pyrato_cpu_s: list = field(default_factory=list)
    pyrato_t30: list = field(default_factory=list)
    round_toolbox_s: list = field(default_factory=list)
    round_toolbox_cpu_s: list = field(default_factory=list)
    round_pyrato_s: list = field(default_factory=list)
    round_pyrato_cpu_s: list = field(default_factory=list)


def bench(config: SynthConfig, block: int, n_competitors: int, folder: str) -> Measurements:
    """Block by block (generation not timed): i2r on the whole block, on one thread and on all
    cores (per-IR time = block time / block size), then acoustic-toolbox and pyrato IR by IR on
    the block's first few IRs, so the three tools share the machine's load as it changes."""
    import soundfile
    from scipy.io.wavfile import WavFileWarning

    # soundfile's float WAVs carry a PEAK chunk that scipy's reader (used by acoustic-toolbox)
    # warns about and skips
    warnings.simplefilter("ignore", WavFileWarning)
    n_blocks = -(-config.n // block)
    per_block = -(-n_competitors // n_blocks)
    m = Measurements()
    warm_up = synth_set(config, 0, 2)[0]  # imports and caches are not part of the timings
    run_i2r(warm_up, config.fs)
    run_i2r(warm_up, config.fs, 1)
    run_filter_bank(warm_up, config.fs)
    run_pyrato(warm_up[0], config.fs)
    warm_path = os.path.join(folder, "warm_up.wav")
    soundfile.write(warm_path, warm_up[0].astype(np.float32), config.fs, subtype="FLOAT")
    run_acoustic_toolbox(warm_path)
    blocks, competitor_inputs = [], []
    for start in range(0, config.n, block):
        irs, t60 = synth_set(config, start, min(start + block, config.n))
        blocks.append(irs)
        (t30_one, _), seconds, cpu = timed(run_i2r, irs, config.fs, 1)
        m.i2r1_s.append(seconds / len(irs))
        m.i2r1_cpu_s.append(cpu / len(irs))
        (t30, bands), seconds, cpu = timed(run_i2r, irs, config.fs)
        if not np.allclose(bands, OCTAVES_HZ):
            raise SystemExit(f"i2r returned bands {bands}, expected the octaves {OCTAVES_HZ}")
        if not np.array_equal(t30, t30_one, equal_nan=True):
            raise SystemExit("i2r on one thread and on all cores disagree")
        m.i2r_s.append(seconds / len(irs))
        m.i2r_cpu_s.append(cpu / len(irs))
        _, seconds, cpu = timed(run_filter_bank, irs, config.fs)
        m.bank_s.append(seconds / len(irs))
        m.bank_cpu_s.append(cpu / len(irs))
        m.i2r_t30.append(t30)
        m.truth.append(t60)
        for j in range(min(per_block, n_competitors - len(m.sub_index), len(irs))):
            path = os.path.join(folder, f"ir{start + j:05d}.wav")
            soundfile.write(path, irs[j].astype(np.float32), config.fs, subtype="FLOAT")
            t30_at, seconds, cpu = timed(run_acoustic_toolbox, path)
            m.toolbox_s.append(seconds)
            m.toolbox_cpu_s.append(cpu)
            m.toolbox_t30.append(t30_at)
            t30_pr, seconds, cpu = timed(run_pyrato, irs[j], config.fs)
            m.pyrato_s.append(seconds)
            m.pyrato_cpu_s.append(cpu)
            m.pyrato_t30.append(t30_pr)
            m.sub_index.append(start + j)
            competitor_inputs.append((path, irs[j]))
    everything = np.concatenate(blocks)
    del blocks
    block_t30 = np.concatenate(m.i2r_t30)
    for round_index in range(ONE_CALL_ROUNDS):
        for workers, wall, cpu_time in ((1, m.whole1_s, m.whole1_cpu_s), (0, m.whole_s, m.whole_cpu_s)):
            (t30, _), seconds, cpu = timed(run_i2r, everything, config.fs, workers)
            if not np.array_equal(t30, block_t30, equal_nan=True):
                raise SystemExit("i2r on all IRs in one call and block by block disagree")
            wall.append(seconds / len(everything))
            cpu_time.append(cpu / len(everything))
        # the machine's speed drifts over a run: the competitors again, within seconds of i2r
        round_times = {"toolbox": [], "pyrato": []}
        for i in range(min(ROUND_IRS, len(competitor_inputs))):
            path, ir = competitor_inputs[(round_index * ROUND_IRS + i) % len(competitor_inputs)]
            round_times["toolbox"].append(timed(run_acoustic_toolbox, path)[1:])
            round_times["pyrato"].append(timed(run_pyrato, ir, config.fs)[1:])
        for key, pairs in round_times.items():
            walls, cpus = zip(*pairs)
            getattr(m, f"round_{key}_s").append(statistics.median(walls))
            getattr(m, f"round_{key}_cpu_s").append(statistics.median(cpus))
    return m


def abs_errors_pct(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|estimate - truth| / truth in %, per IR and band (NaN where the estimate is)."""
    return np.abs(estimate - truth) / truth * 100.0


def abs_pct_error(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Median over IRs of :func:`abs_errors_pct`, per band; NaN estimates are left out and
    counted separately (see :func:`nan_count`)."""
    return np.nanmedian(abs_errors_pct(estimate, truth), axis=0)


def nan_count(estimate: np.ndarray) -> np.ndarray:
    return np.sum(~np.isfinite(estimate), axis=0)


def print_accuracy(rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    header = "".join(f"{f:>9.0f}" for f in OCTAVES_HZ)
    print("\nT30 median |error| vs ground-truth T60, % per octave band (NaN count in brackets)")
    print(f"{'tool':<28}{header}")
    for name, (estimate, truth) in rows.items():
        errors = abs_pct_error(estimate, truth)
        nans = nan_count(estimate)
        cells = "".join(f"{e:>6.2f}[{k}]" if k else f"{e:>9.2f}" for e, k in zip(errors, nans))
        print(f"{name:<28}{cells}")


def print_paired_accuracy(i2r: np.ndarray, others: dict[str, np.ndarray], truth: np.ndarray) -> None:
    """"Equal or better accuracy", IR by IR: per band, on how many of the shared IRs i2r's T30
    is closer to the truth than the other tool's, the median of the paired differences of
    |error| (i2r minus the other, percentage points: negative = i2r closer), and the two-sided
    Wilcoxon signed-rank p-value of those differences (IRs where either tool gives NaN left out)."""
    from scipy.stats import wilcoxon

    mine = abs_errors_pct(i2r, truth)
    print("\nT30 |error|, i2r against each tool on the same IRs, per octave band: i2r closer on k of n IRs, "
          "median paired difference (points), Wilcoxon p")
    for name, estimate in others.items():
        theirs = abs_errors_pct(estimate, truth)
        cells = []
        for band in range(truth.shape[-1]):
            difference = mine[:, band] - theirs[:, band]
            difference = difference[np.isfinite(difference)]
            p = wilcoxon(difference).pvalue if np.any(difference) else 1.0
            cells.append(f"{OCTAVES_HZ[band]:.0f} Hz {np.sum(difference < 0)}/{difference.size} "
                         f"{np.median(difference):+.2f} p={p:.3f}")
        print(f"  vs {name}: " + "; ".join(cells))


def print_times(m: Measurements, n: int, block: int, n_sub: int) -> None:
    """Median per-IR wall and CPU times of the three tools and i2r's ratios to the others."""
    ms = {name: 1e3 * np.median(values) for name, values in asdict(m).items() if name.endswith("_s")}
    threads = os.cpu_count()
    print("\nper-IR time (median over blocks / IRs), full parameter set unless noted:")
    print(f"{'':30}{'wall ms':>9}{'CPU ms':>9}")
    rows = [("i2r, 1 thread", "i2r1"), (f"i2r, default ({threads} threads)", "i2r"),
            (f"i2r, 1 thread, {n} in 1 call", "whole1"), (f"i2r, default, {n} in 1 call", "whole"),
            ("i2r's filter bank alone, 1 th", "bank"),
            (f"acoustic-toolbox ({n_sub} IRs)", "toolbox"), (f"pyrato, T30 only ({n_sub} IRs)", "pyrato")]
    for label, key in rows:
        print(f"  {label:28}{ms[key + '_s']:9.2f}{ms[key + '_cpu_s']:9.2f}")
    print(f"  (i2r: {n} IRs in blocks of {block}, medians over blocks, and in one call, medians of "
          f"{len(m.whole_s)} rounds; acoustic-toolbox: T30+EDT+C50+C80; both competitors are "
          f"single-threaded libraries)")
    print(f"  (in the one-call rounds, beside i2r: acoustic-toolbox {1e3 * np.median(m.round_toolbox_s):.2f} ms, "
          f"pyrato {1e3 * np.median(m.round_pyrato_s):.2f} ms, medians of {ROUND_IRS} IRs per round)")

    def per_round(competitor: list, i2r: list) -> float:
        return statistics.median(c / i for c, i in zip(competitor, i2r))

    print(f"\n{'ratio of per-IR times':42}{'1 thread':>10}{'default':>10}{'CPU time':>10}{'target':>9}")
    for label, key, target in (("acoustic-toolbox / i2r", "toolbox", 20), ("pyrato / i2r", "pyrato", 10)):
        blocks = (ms[key + "_s"] / ms["i2r1_s"], ms[key + "_s"] / ms["i2r_s"], ms[key + "_cpu_s"] / ms["i2r_cpu_s"])
        rounds = (per_round(getattr(m, f"round_{key}_s"), m.whole1_s), per_round(getattr(m, f"round_{key}_s"), m.whole_s),
                  per_round(getattr(m, f"round_{key}_cpu_s"), m.whole_cpu_s))
        for how, ratios in ((f"blocks of {block}", blocks), ("one call", rounds)):
            print(f"  {label + ', ' + how:40}" + "".join(f"{r:9.1f}x" for r in ratios) + f"{f'>= {target}x':>9}")
    print("  (one call: the median over rounds of each round's ratio)")
    print(f"\nthe filter bank alone is {100 * ms['bank_s'] / ms['i2r1_s']:.0f} % of i2r's one-thread time: "
          f"were everything else free, the one-thread ratios would be {ms['toolbox_s'] / ms['bank_s']:.1f}x "
          f"(acoustic-toolbox) and {ms['pyrato_s'] / ms['bank_s']:.1f}x (pyrato)")


# --- how i2r's threads scale ------------------------------------------------------------------

SCALING_IRS = 48
"""IRs per call in :func:`scaling`: six chunks of eight, so two threads get equal shares."""


def per_ir_ms(irs: np.ndarray, fs: int, workers: int, seconds: float) -> float:
    """Median wall time per IR (ms) of :func:`run_i2r` on ``irs``, called again and again for
    about ``seconds``."""
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        _, elapsed, _ = timed(run_i2r, irs, fs, workers)
        times.append(elapsed / len(irs))
    return 1e3 * statistics.median(times)


def _alone_in_process(seconds: float, barrier, results) -> None:
    """One single-thread i2r, in a process of its own, started with its twin by ``barrier``."""
    config = SynthConfig()
    irs, _ = synth_set(config, 0, SCALING_IRS)
    run_i2r(irs[:2], config.fs, 1)
    barrier.wait()
    results.put(per_ir_ms(irs, config.fs, 1, seconds))


def scaling(seconds: float, rounds: int = 3) -> None:
    """Print what two cores give i2r: one thread alone; two threads in one process (what
    ``workers=0`` does here); two single-thread processes at once, which share the cores, caches
    and memory bandwidth but not Python's global interpreter lock (GIL). Medians of ``rounds``
    side-by-side rounds of ``seconds`` each."""
    config = SynthConfig()
    irs, _ = synth_set(config, 0, SCALING_IRS)
    run_i2r(irs[:2], config.fs, 1)
    run_i2r(irs[:2], config.fs, 2)
    context = multiprocessing.get_context("spawn")
    alone, threads, paired = [], [], []
    for _ in range(rounds):
        alone.append(per_ir_ms(irs, config.fs, 1, seconds))
        threads.append(per_ir_ms(irs, config.fs, 2, seconds))
        barrier, results = context.Barrier(2), context.Queue()
        twins = [context.Process(target=_alone_in_process, args=(seconds, barrier, results)) for _ in range(2)]
        for twin in twins:
            twin.start()
        # generous: each twin builds its IRs and imports i2r first; a twin that died must not hang the run
        paired.append(statistics.mean(results.get(timeout=seconds + 600) for _ in twins))
        for twin in twins:
            twin.join()
    one, two, each = (statistics.median(v) for v in (alone, threads, paired))
    print(f"i2r on {os.cpu_count()} cores, {SCALING_IRS} IRs per call, medians of {rounds} rounds of {seconds:g} s:")
    print(f"  one thread, alone                       {one:6.2f} ms per IR")
    print(f"  two threads in one process (workers=2)  {two:6.2f} ms per IR: each thread {2 * two:.2f} "
          f"({100 * (2 * two / one - 1):+.0f} %), {one / two:.2f}x one thread")
    print(f"  two one-thread processes at once        {each:6.2f} ms per IR each ({100 * (each / one - 1):+.0f} %): "
          f"{each / 2:.2f} together, {2 * one / each:.2f}x one thread")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="IRs for i2r (default 1000)")
    parser.add_argument("--n-competitors", type=int, default=50, help="IRs for the other tools")
    parser.add_argument("--block", type=int, default=50, help="IRs per i2r call (default 50)")
    parser.add_argument("--profile", action="store_true", help="profile one i2r block and exit")
    parser.add_argument("--scaling", type=float, metavar="SECONDS",
                        help="only time i2r on one thread, two threads and two processes (SECONDS per "
                             "measurement, three rounds) and exit; needs neither competitor")
    args = parser.parse_args(argv)
    if args.scaling:
        scaling(args.scaling)
        return
    config = SynthConfig(n=args.n)
    if args.profile:
        irs, _ = synth_set(config, 0, args.block)
        run_i2r(irs[:2], config.fs, 1)
        # one thread: cProfile sees only the thread that starts it
        cProfile.runctx("run_i2r(irs, config.fs, 1)", globals(), {"irs": irs, "config": config},
                        "/tmp/bench_acoustics.prof")
        pstats.Stats("/tmp/bench_acoustics.prof").sort_stats("cumulative").print_stats(25)
        return
    print(f"config: {asdict(config)}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        m = bench(config, args.block, args.n_competitors, folder)
    i2r_t30, truth = np.concatenate(m.i2r_t30), np.concatenate(m.truth)
    sub = np.array(m.sub_index)
    n_sub = len(sub)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print_times(m, config.n, args.block, n_sub)
    print_accuracy({
        f"i2r ({config.n} IRs)": (i2r_t30, truth),
        f"i2r ({n_sub} IRs)": (i2r_t30[sub], truth[sub]),
        f"acoustic-toolbox ({n_sub})": (np.stack(m.toolbox_t30), truth[sub]),
        f"pyrato Lundeby ({n_sub})": (np.stack(m.pyrato_t30), truth[sub]),
    })
    print_paired_accuracy(i2r_t30[sub], {"acoustic-toolbox": np.stack(m.toolbox_t30),
                                         "pyrato": np.stack(m.pyrato_t30)}, truth[sub])


if __name__ == "__main__":
    main()
