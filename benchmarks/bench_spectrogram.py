"""IR <-> log-spectrogram: Griffin-Lim speed and how well T30 survives the round trip.

Prints (1) the CPU time per IR (one torch thread by default, so the figure is what an idle core
takes) of spectrogram inversion -- fast Griffin-Lim at several iteration counts against the
original's single random-phase inverse, with the spectral convergence each reaches, and our
ISTFT against torch.istft -- as medians of repeats, with ratios; (2) per octave band T30 errors
(i2r.acoustics.analyze, ISO 3382-1) after IR -> spectrogram -> IR for every IR in
../shared/data/irs, for both methods and both presets' resolutions.

    .venv/bin/python benchmarks/bench_spectrogram.py [--threads N] [--repeats N] [--skip-t30]

Griffin-Lim runs with its default iteration count in part (2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from i2r.audio import HOP, IR_SAMPLES, LOG_FLOOR, N_FFT, SAMPLE_RATE, ir_to_logspec, load_ir, logspec_to_ir
from i2r.audio import _istft, _stft

IRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "irs"


def median_time(fn, repeats: int, clock=time.process_time) -> float:
    """Median seconds of ``fn()``; the default clock is this process's CPU time, which with one
    torch thread is what an idle core would take, even while other jobs load the machine."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def spectral_convergence(ir, logspec) -> float:
    """|| |STFT(y)| - M || / ||M||: 0 when y has exactly the target magnitudes."""
    target = torch.exp(logspec) - LOG_FLOOR
    return float(torch.linalg.norm(_stft(ir.reshape(1, -1))[0, :-1].abs() - target) / torch.linalg.norm(target))


def timing(repeats: int) -> None:
    ir = torch.as_tensor(load_ir(IRS / "openair_spokane_womans_club_stereo.wav"))
    logspec = ir_to_logspec(ir)
    spec = _stft(ir.reshape(1, -1))
    window = torch.hann_window(N_FFT)
    ours = median_time(lambda: _istft(spec), repeats * 4)
    reference = median_time(lambda: torch.istft(spec, N_FFT, HOP, window=window, center=True, length=IR_SAMPLES), repeats * 4)
    print(f"ISTFT of one IR: irfft+strided overlap-add {ours * 1e3:.2f} ms, torch.istft {reference * 1e3:.2f} ms "
          f"(x{reference / ours:.1f})")
    print(f"ir_to_logspec 512x512: {median_time(lambda: ir_to_logspec(ir), repeats) * 1e3:.1f} ms per IR")
    base = median_time(lambda: logspec_to_ir(logspec, method="random-phase"), repeats)
    sc = spectral_convergence(logspec_to_ir(logspec, method="random-phase"), logspec)
    print(f"random-phase inverse: {base * 1e3:.1f} ms per IR, spectral convergence {sc:.3f}")
    for batch in (1, 8):
        stack = logspec.expand(batch, -1, -1).contiguous()
        for n_iter in (16, 24, 32, 64):
            t = median_time(lambda: logspec_to_ir(stack, n_iter=n_iter), repeats) / batch
            sc = spectral_convergence(logspec_to_ir(logspec, n_iter=n_iter), logspec)
            print(f"fast Griffin-Lim batch {batch} n_iter {n_iter}: {t * 1e3:.1f} ms per IR "
                  f"(x{t / base:.1f} random-phase), spectral convergence {sc:.3f}")


def t30_errors() -> None:
    from i2r.acoustics import analyze

    warnings.simplefilter("ignore")
    print("\nT30 round trip, |error| % per octave band 125 Hz-4 kHz (bands unmeasurable in the original skipped)")
    print(f"{'IR':48s} {'R':>4s} {'GL max':>9s} {'RP max':>8s} {'GL med':>9s} {'RP med':>8s}")
    summary = {}
    for path in sorted(IRS.glob("*.wav")):
        ir = load_ir(path)
        reference = np.asarray(analyze(ir.astype(np.float64), SAMPLE_RATE).t30_s)
        for resolution in (512, 128):
            logspec = ir_to_logspec(ir, resolution)
            errs = {}
            for method in ("griffin-lim", "random-phase"):
                y = logspec_to_ir(logspec, method=method).numpy().astype(np.float64)
                errs[method] = 100 * np.abs(np.asarray(analyze(y, SAMPLE_RATE).t30_s) / reference - 1)
                summary.setdefault((resolution, method), []).extend(errs[method][np.isfinite(errs[method])])
            gl, rp = errs["griffin-lim"], errs["random-phase"]
            print(f"{path.name[:48]:48s} {resolution:4d} {np.nanmax(gl):9.2f} {np.nanmax(rp):8.2f} "
                  f"{np.nanmedian(gl):9.2f} {np.nanmedian(rp):8.2f}")
    for (resolution, method), values in sorted(summary.items()):
        values = np.asarray(values)
        print(f"all bands, R={resolution} {method:12s}: median {np.median(values):.2f} %, 90th pct "
              f"{np.percentile(values, 90):.2f} %, share within 5 %: {np.mean(values < 5) * 100:.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-t30", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs, IR {IR_SAMPLES} samples")
    timing(args.repeats)
    if not args.skip_t30:
        t30_errors()


if __name__ == "__main__":
    main()
