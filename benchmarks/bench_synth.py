"""Benchmark of `i2r synth`: scenes per second against the issue's target, and the ground truth check.

1. Throughput: `generate()` of --n scenes (render 256 px + IR + PNG/WAV writes), median of
   --repeats runs, for each --jobs value; printed with the ratio to the target of 20 scenes/s.
   On a machine shared with other work the wall-clock rate says little, so the CPU time of all
   processes is measured too: scenes per CPU second x 2 is the rate two idle cores would give.
2. Where the time goes: render, IR and writing per scene in one process (CPU time, medians).
3. Ground truth: T30 by `i2r.acoustics.analyze` on --check generated IRs against the manifest's
   Eyring T60, per octave band (median signed and absolute error; the issue asks for <= 10 %).

    .venv/bin/python benchmarks/bench_synth.py              # defaults: --n 100 --repeats 3 --jobs 1,2
    .venv/bin/python benchmarks/bench_synth.py --check 200
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time

import numpy as np

from i2r.data.synthetic import SynthConfig, generate, make_example
from i2r.data.synthetic.dataset import write_example
from i2r.data.synthetic.ir import synthesize_ir
from i2r.data.synthetic.materials import BANDS_HZ
from i2r.data.synthetic.render import render
from i2r.data.synthetic.scene import draw_scene

TARGET_SCENES_PER_S = 20.0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def throughput(n: int, jobs: int, repeats: int, seed: int) -> tuple[list[float], list[float]]:
    """Scenes per wall-clock second, and per CPU second (all processes), of each repeat."""
    rates, cpu_rates = [], []
    for repeat in range(repeats):
        folder = tempfile.mkdtemp(prefix="bench_synth_")
        try:
            start, cpu = time.perf_counter(), _cpu_seconds()
            generate(SynthConfig(n=n, out=folder, seed=seed + repeat, jobs=jobs), progress=False)
            rates.append(n / (time.perf_counter() - start))
            cpu_rates.append(n / (_cpu_seconds() - cpu))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rates, cpu_rates


def stages(n: int, seed: int) -> dict[str, float]:
    """Median CPU milliseconds per scene of each stage, in this process."""
    times = {"scene": [], "render": [], "ir": [], "write (all stages + files)": []}
    folder = tempfile.mkdtemp(prefix="bench_synth_")
    config = SynthConfig(n=n, out=folder, seed=seed)
    try:
        for index in range(n):
            rng = np.random.default_rng([seed, index])
            t0 = time.process_time()
            scene = draw_scene(rng)
            t1 = time.process_time()
            render(scene)
            t2 = time.process_time()
            synthesize_ir(scene, rng)
            t3 = time.process_time()
            write_example(index, config)
            t4 = time.process_time()
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[key].append(1000.0 * value)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {key: float(np.median(values)) for key, values in times.items()}


def ground_truth(n: int, seed: int) -> None:
    from i2r.acoustics import analyze

    config = SynthConfig(n=n, out="unused", image_size=32)
    irs, truth, kinds = [], [], []
    for index in range(n):
        scene, _, _, ir = make_example(seed, index, config)
        irs.append(ir.astype(np.float64))
        truth.append(scene.t60_s)
        kinds.append(scene.category)
    t30 = np.concatenate([np.asarray(analyze(np.stack(irs[i:i + 32]), 22050).t30_s) for i in range(0, n, 32)])
    error = 100.0 * (t30 / np.asarray(truth) - 1.0)
    header = "".join(f"{int(f):>8}" for f in BANDS_HZ)
    print(f"\nground truth: T30 (i2r.acoustics) vs Eyring T60, {n} scenes, error in %")
    print(f"  {'band (Hz)':<24}{header}")
    print(f"  {'median signed':<24}" + "".join(f"{v:8.1f}" for v in np.nanmedian(error, 0)))
    print(f"  {'median |error|':<24}" + "".join(f"{v:8.1f}" for v in np.nanmedian(np.abs(error), 0)))
    print(f"  {'90th pct |error|':<24}" + "".join(f"{v:8.1f}" for v in np.nanpercentile(np.abs(error), 90, 0)))
    for kind in sorted(set(kinds)):
        rows = np.array(kinds) == kind
        print(f"  {'median |error| ' + kind:<24}" + "".join(f"{v:8.1f}" for v in np.nanmedian(np.abs(error[rows]), 0))
              + f"   (n={rows.sum()})")
    worst = np.nanmax(np.nanmedian(np.abs(error), 0))
    print(f"  worst band median |error| {worst:.1f} % -> {'meets' if worst <= 10 else 'MISSES'} the 10 % target")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="scenes per throughput run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--check", type=int, default=100, help="scenes for the ground truth check (0: skip)")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start "
          "(other processes share the cores: compare ratios, not absolute rates)")
    for jobs in (int(j) for j in args.jobs.split(",")):
        rates, cpu_rates = throughput(args.n, jobs, args.repeats, args.seed)
        median, per_cpu = float(np.median(rates)), float(np.median(cpu_rates))
        print(f"jobs={jobs}: {median:6.1f} scenes/s (median of {args.repeats} x {args.n}; runs "
              f"{', '.join(f'{r:.1f}' for r in rates)}) = {median / TARGET_SCENES_PER_S:.2f} x the target "
              f"of {TARGET_SCENES_PER_S:.0f}/s; load average now {os.getloadavg()[0]:.1f}")
        print(f"        {per_cpu:6.1f} scenes per CPU second (all processes) -> 2 idle cores: "
              f"{2 * per_cpu:.0f} scenes/s = {2 * per_cpu / TARGET_SCENES_PER_S:.2f} x the target")
    per_stage = stages(min(args.n, 40), args.seed)
    print("CPU ms per scene (median, one process): " + ", ".join(f"{k} {v:.1f}" for k, v in per_stage.items()))
    cpu_rate = 2 * 1000.0 / per_stage["write (all stages + files)"]
    print(f"  -> on 2 idle cores at most {cpu_rate:.0f} scenes/s of CPU work = {cpu_rate / TARGET_SCENES_PER_S:.1f} x the target")
    if args.check:
        ground_truth(args.check, args.seed)


if __name__ == "__main__":
    main()
