"""Simulated listening-test responses in the paper's design, for examples and tests.

SIMULATED DATA, not the paper's: 31 complete participants x 4 scenes (large, medium, small,
outdoor) x 2 examples x 2 sources (real, generated), rated 1-5 for quality and match, plus a few
participants that the analysis must exclude (failed screening, failed attention check, a missing
stimulus). Ratings are a rounded, clipped normal model: a participant offset, a scene x source
mean loosely shaped after the paper's findings (generated outdoor scenes rated lower; medium
quality lower), and noise.

Run ``python -m i2r.survey.simulate --out survey/example_responses.csv --seed 2021`` to
regenerate ``survey/example_responses.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass

import numpy as np

from i2r.files import atomic_write_text

SCENES = ("large", "medium", "small", "outdoor")
TIDY_COLUMNS = ("participant", "example", "scene", "source", "quality", "match",
                "screening_passed", "attention_passed", "simulated")
# Mean rating per (scene, source) on the 1-5 scale; a hypothetical effect pattern, not measured data.
MEANS = {
    "quality": {"large": (3.6, 3.5), "medium": (3.7, 3.0), "small": (3.4, 3.4), "outdoor": (3.5, 2.6)},
    "match": {"large": (3.8, 3.6), "medium": (3.6, 3.3), "small": (3.5, 3.3), "outdoor": (3.7, 2.5)},
}


@dataclass
class SimulationConfig:
    """Size and seed of a simulated study; the extras are participants the analysis must exclude."""

    n_participants: int = 31
    examples_per_scene: int = 2
    seed: int = 2021
    participant_sd: float = 0.5
    noise_sd: float = 0.8
    extra_failed_screening: int = 1
    extra_failed_attention: int = 1
    extra_incomplete: int = 1


def _ratings(rng: np.random.Generator, config: SimulationConfig, rating: str, scene: str, source: int, offset: float) -> int:
    value = MEANS[rating][scene][source] + offset + rng.normal(0.0, config.noise_sd)
    return int(np.clip(np.rint(value), 1, 5))


def simulate_responses(config: SimulationConfig | None = None) -> list[dict]:
    """Tidy rows (dicts with :data:`TIDY_COLUMNS`) of a simulated study, deterministic per seed."""
    config = config or SimulationConfig()
    rng = np.random.default_rng(config.seed)
    kinds = (["ok"] * config.n_participants + ["screening"] * config.extra_failed_screening
             + ["attention"] * config.extra_failed_attention + ["incomplete"] * config.extra_incomplete)
    rows = []
    for number, kind in enumerate(kinds, start=1):
        participant = f"sim{number:02d}"
        offset = rng.normal(0.0, config.participant_sd)
        stimuli = [(scene, e, s) for scene in SCENES for e in range(1, config.examples_per_scene + 1) for s in (0, 1)]
        if kind == "incomplete":
            stimuli = stimuli[:-1]
        for scene, example, source in stimuli:
            rows.append({
                "participant": participant, "example": f"{scene}_{example}", "scene": scene,
                "source": ("real", "generated")[source],
                "quality": _ratings(rng, config, "quality", scene, source, offset),
                "match": _ratings(rng, config, "match", scene, source, offset),
                "screening_passed": str(kind != "screening").lower(),
                "attention_passed": str(kind != "attention").lower(),
                "simulated": "true",
            })
    return rows


def to_csv(rows: list[dict]) -> str:
    """The tidy CSV text of ``rows``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TIDY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv=None) -> int:
    """Write a simulated responses CSV (``--out``, ``--seed``)."""
    parser = argparse.ArgumentParser(description="Write SIMULATED listening-test responses in the paper's design.")
    parser.add_argument("--out", default="survey/example_responses.csv", help="CSV to write")
    parser.add_argument("--seed", type=int, default=SimulationConfig.seed, help="random seed")
    args = parser.parse_args(argv)
    atomic_write_text(args.out, to_csv(simulate_responses(SimulationConfig(seed=args.seed))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
