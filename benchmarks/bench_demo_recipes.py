"""T60 error of `i2r demo` training recipes against training steps: model vs nearest neighbour.

Trains each recipe (small preset, depth supervised by the renderer's maps) on a synthetic set
(``i2r synth``) up to each step milestone in turn, resuming the same run, and evaluates the
checkpoint at every milestone on the held-out split with the NN baseline (``i2r eval``'s
``evaluate``). Prints one line per (recipe, milestone): training seconds so far, the T60 error
statistics of the model and of the baseline, and how many generated IRs had no measurable T30
(those have no error and are not averaged in). The load average is printed too: on shared cores
it moves the seconds more than anything else; the step counts are what compare across recipes.

    .venv/bin/python benchmarks/bench_demo_recipes.py --data ~/.cache/i2r/synth-n1000-seed0 \\
        --recipes demo paper-rates --milestones 150,300,450
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from i2r.evaluate import EvalConfig, evaluate
from i2r.train import TrainConfig, train

RECIPES = {
    # The demo's defaults (i2r.demo.DemoConfig).
    "demo": dict(lr_generator=1e-3, lr_discriminator=5e-4, lr_encoder=1e-3, beta1=0.9, t60p_weight=10.0,
                 decay_weight=0.5, depth_weight=100.0, batch_size=8),
    # The demo's recipe before the decay-curve term (the recipes below were measured without it).
    "demo-no-decay": dict(lr_generator=1e-3, lr_discriminator=5e-4, lr_encoder=1e-3, beta1=0.9, t60p_weight=10.0,
                          depth_weight=100.0, batch_size=8),
    "demo-decay0.17": dict(lr_generator=1e-3, lr_discriminator=5e-4, lr_encoder=1e-3, beta1=0.9, t60p_weight=10.0,
                          decay_weight=1 / 6, depth_weight=100.0, batch_size=8),
    # The paper's optimiser and loss weights (encoder rate raised: it starts from random weights).
    "paper-rates": dict(lr_encoder=1e-4, batch_size=8),
    "paper-rates-enc4e-4": dict(lr_encoder=4e-4, batch_size=8),
    "fast-rates-beta0": dict(lr_generator=4e-3, lr_discriminator=2e-3, lr_encoder=1e-3, depth_weight=100.0, batch_size=8),
    "momentum-t60p100": dict(lr_generator=1e-3, lr_discriminator=5e-4, lr_encoder=1e-3, beta1=0.9,
                             depth_weight=100.0, batch_size=8),
    "demo-batch4": dict(lr_generator=1e-3, lr_discriminator=5e-4, lr_encoder=1e-3, beta1=0.9, t60p_weight=10.0,
                        depth_weight=100.0, batch_size=4),
    # The demo's recipe plus a moving average of the weights (evaluated with the average; the
    # trajectory is the demo's own, so "demo" at the same milestones gives the raw weights).
    "demo-ema99": dict(lr_generator=1e-3, lr_discriminator=5e-4, lr_encoder=1e-3, beta1=0.9, t60p_weight=10.0,
                       depth_weight=100.0, batch_size=8, ema_beta=0.99),
    "demo-2x-rates": dict(lr_generator=2e-3, lr_discriminator=1e-3, lr_encoder=2e-3, beta1=0.9, t60p_weight=10.0,
                          depth_weight=100.0, batch_size=8),
}


def _stats(d: dict) -> str:
    if d["mean"] is None:
        return f"n={d['n']:3d}  (no measurable IR)"
    return f"n={d['n']:3d} mean {d['mean']:+7.1f} SD {d['sd']:6.1f} median|e| {d['median_abs']:5.1f}"


def run_recipe(name: str, data: str, out: Path, milestones: list[int], threads: int) -> None:
    """Train recipe ``name`` to each milestone and print the evaluation at each."""
    run = out / name
    trained_s = 0.0
    for k, steps in enumerate(milestones):
        started = time.perf_counter()
        train(TrainConfig(data=data, out=str(run), preset="small", depth_supervision=True, max_steps=steps,
                          resume=k > 0, val_every=10**9, threads=threads, checkpoint_every=10**9, **RECIPES[name]))
        trained_s += time.perf_counter() - started
        metrics = evaluate(EvalConfig(checkpoint=str(run / "last.pt"), data=data, out=str(run / f"eval{steps}"),
                                      baseline="nn", batch_size=16))
        print(f"{name:22s} step {steps:5d} train {trained_s:6.0f} s load {os.getloadavg()[0]:4.1f} | "
              f"model {_stats(metrics['t60_error_pct'])} unmeasurable {len(metrics['generated_unmeasurable']):3d} | "
              f"NN {_stats(metrics['baseline_nn']['t60_error_pct'])}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a synthetic set from `i2r synth` (or the demo's cache)")
    parser.add_argument("--out", default="runs/bench_demo_recipes")
    parser.add_argument("--recipes", nargs="+", default=["demo"], choices=sorted(RECIPES))
    parser.add_argument("--milestones", default="150,300,450", help="comma-separated step counts")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    milestones = [int(x) for x in args.milestones.split(",")]
    for name in args.recipes:
        run_recipe(name, args.data, Path(args.out), milestones, args.threads)


if __name__ == "__main__":
    main()
