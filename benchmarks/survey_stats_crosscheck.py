"""Cross-check and time i2r's two-way RM ANOVA against statsmodels' AnovaRM (paper's 31 x 2 x 4 design).

Prints the largest disagreement in F and uncorrected p over many random data sets (separately for
effects whose F is ~0, where p = F.sf(F) has an infinite slope, so rounding at 1e-15 in F moves p by
~1e-8), and the median
time of one ANOVA for each, side by side in this run, with their ratio. statsmodels has no
Greenhouse-Geisser correction; ours also computes it (included in our time).

    python benchmarks/survey_stats_crosscheck.py [--sets 50] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from statsmodels.stats.anova import AnovaRM

from i2r.survey.stats import rm_anova2


def _long(y: np.ndarray) -> pd.DataFrame:
    idx = np.indices(y.shape).reshape(3, -1)
    return pd.DataFrame({"subject": idx[0], "A": idx[1], "B": idx[2], "y": y.reshape(-1)})


def _ratings(rng: np.random.Generator, n: int = 31, scenes: int = 4) -> np.ndarray:
    """Per-participant means of two 1-5 ratings, as in the study."""
    raw = rng.normal(3.3, 1.0, size=(n, 2, scenes, 2)) + rng.normal(0, 0.5, size=(n, 1, 1, 1))
    return np.clip(np.rint(raw), 1, 5).mean(axis=-1)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    worst = {"regular": [0.0, 0.0, 0], "F below 1e-9": [0.0, 0.0, 0]}
    for _ in range(args.sets):
        y = _ratings(rng)
        ours = rm_anova2(y, names=("A", "B")).set_index("effect")
        ref = AnovaRM(_long(y), "y", "subject", within=["A", "B"]).fit().anova_table
        for a, b in (("A", "A"), ("B", "B"), ("A * B", "A:B")):
            entry = worst["regular" if ref.loc[b, "F Value"] > 1e-9 else "F below 1e-9"]
            entry[0] = max(entry[0], abs(ours.loc[a, "F"] - ref.loc[b, "F Value"]) / max(1.0, ref.loc[b, "F Value"]))
            entry[1] = max(entry[1], abs(ours.loc[a, "p_unc"] - ref.loc[b, "Pr > F"]))
            entry[2] += 1
    y = _ratings(rng)
    frame = _long(y)
    t_ours = _median_time(lambda: rm_anova2(y), args.repeats)
    t_ref = _median_time(lambda: AnovaRM(frame, "y", "subject", within=["A", "B"]).fit(), args.repeats)
    print(f"data sets: {args.sets} (31 participants x 2 sources x 4 scenes, 1-5 ratings averaged over 2 examples)")
    for kind, (d_f, d_p, count) in worst.items():
        print(f"{kind} effects ({count}): max |F - F_sm| / max(1, F_sm) = {d_f:.1e}, max |p_unc - p_sm| = {d_p:.1e}")
    print(f"median time per ANOVA: i2r {t_ours * 1e3:.2f} ms (with GG), statsmodels {t_ref * 1e3:.2f} ms "
          f"(no GG); ratio statsmodels/i2r = {t_ref / t_ours:.1f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")


if __name__ == "__main__":
    main()
