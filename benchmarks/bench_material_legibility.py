"""Which material decides the demo's T60 error, and can the small preset's 64 px images show it?
(issue 4's "find out why")

In the synthetic rooms (:mod:`i2r.data.synthetic`) the ceiling is plaster (mid-band absorption
0.04-0.06) or acoustic tiles (0.53-0.75) in two thirds of the indoor rooms: with the floor it is the largest
surface, so which of the two it is moves the T60 most. The renderer draws both near-white; only
the tiles' 0.6 m grid and grain tell them apart, detail that falls below a pixel as the image
shrinks. This script measures both halves of that:

1. **Legibility.** For each pair of :data:`PAIRS` (a surface and two materials it can have), the
   rooms whose surface has one of them, their image resized to each ``--sizes`` px (box filter,
   as the dataset loader does). From the surface's own pixels (the renderer's true mask, so
   finding the surface is free) a few statistics: mean RGB, the RMS of the high-pass (grey minus
   its 3x3 mean) and the grey SD. A logistic regression's 5-fold cross-validated accuracy at
   telling the two materials apart: how well a reader that sees only that surface can do.
2. **Cost of misreading.** The best learner of
   :func:`~i2r.data.synthetic.predictability.information_ceiling` that sees only the view
   (gradient-boosted trees on the exact dimensions and the materials of the floor, the ceiling
   and the walls in view) refitted with the ceiling's plaster and acoustic tiles swapped in a
   random share of all rooms (training and test alike, as a reader's mistakes would be): at each
   size's measured error rate (1 - accuracy), median over ``--draws`` draws, and blind (acoustic
   tiles always read as plaster).

    .venv/bin/python benchmarks/bench_material_legibility.py --data ~/.cache/i2r/synth-n1000-seed0

A minute or two: every image is read at each size and every scene re-rendered for its masks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from i2r.data.synthetic.predictability import (GEOMETRY, VISIBLE, fit_and_score, scene_features,
                                               single_number_t60)

PAIRS = (("ceiling", "plaster", "acoustic_tiles"),
         ("wall_x1", "plaster", "acoustic_panels"),
         ("floor", "thin_carpet", "linoleum"))
"""(surface, material, material): the decisive pair first (it alone is swapped in part 2); a wall
and a floor pair beside it, told apart by colour."""


def surface_statistics(data: Path, manifest: pd.DataFrame, surface: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each manifest row whose ``surface`` covers at least 4 pixels of its image at ``size``
    px: the mean RGB, the high-pass RMS and the grey SD of those pixels (RGB in [0, 1]).
    Returns the statistics ``(n_kept, 5)`` and the kept rows' positions ``(n_kept,)``."""
    from PIL import Image
    from scipy.ndimage import uniform_filter

    from i2r.data.synthetic.dataset import draw_example_scene
    from i2r.data.synthetic.render import RenderConfig, surface_ids
    from i2r.data.synthetic.scene import SURFACES

    statistics, kept = [], []
    for position, (image, seed, index) in enumerate(zip(manifest["image"], manifest["seed"], manifest["index"])):
        scene = draw_example_scene(int(seed), int(index))
        mask = surface_ids(scene, RenderConfig(size=size)) == SURFACES.index(surface)
        if mask.sum() < 4:
            continue
        rgb = np.asarray(Image.open(data / image).convert("RGB").resize((size, size), Image.BOX), dtype=float) / 255.0
        grey = rgb.mean(axis=2)
        high_pass = grey - uniform_filter(grey, 3)
        statistics.append([*rgb[mask].mean(axis=0), np.sqrt(np.mean(high_pass[mask] ** 2)), grey[mask].std()])
        kept.append(position)
    return np.asarray(statistics), np.asarray(kept)


def legibility(data: Path, manifest: pd.DataFrame, surface: str, materials: tuple[str, str], size: int,
               seed: int = 0) -> tuple[float, int]:
    """5-fold cross-validated accuracy (fraction) of a logistic regression on
    :func:`surface_statistics` at telling ``materials[0]`` from ``materials[1]`` on ``surface``,
    and the number of rooms it was measured on."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rooms = manifest[manifest[surface].isin(materials)].reset_index(drop=True)
    statistics, kept = surface_statistics(data, rooms, surface, size)
    is_second = (rooms[surface].to_numpy()[kept] == materials[1])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(model, statistics, is_second, cv=folds).mean()), len(kept)


def misread_ceiling_score(manifest: pd.DataFrame, error_rate: float, draws: int, seed: int = 0) -> list[dict]:
    """:func:`~i2r.data.synthetic.predictability.fit_and_score` of the trees on the dimensions and
    the materials in view, with the ceiling's plaster and acoustic tiles swapped in each room
    with probability ``error_rate`` (one draw per seed ``seed .. seed + draws - 1``; ``error_rate``
    1 means blind: tiles read as plaster, plaster stays). One stats dict per draw."""
    t60 = single_number_t60(manifest)
    train, test = (manifest["split"] == "train").to_numpy(), (manifest["split"] == "test").to_numpy()
    surface, *pair = PAIRS[0]
    swap_to = {pair[0]: pair[1], pair[1]: pair[0]}
    scores = []
    for draw in range(1 if error_rate in (0.0, 1.0) else draws):
        misread = manifest.copy()
        on_pair = misread[surface].isin(pair).to_numpy()
        if error_rate == 1.0:
            misread.loc[on_pair, surface] = pair[0]
        else:
            swap = on_pair & (np.random.default_rng(seed + draw).random(len(misread)) < error_rate)
            misread.loc[swap, surface] = misread.loc[swap, surface].map(swap_to)
        scores.append(fit_and_score(scene_features(misread, GEOMETRY, VISIBLE), t60, train, test, seed))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an `i2r synth` folder (manifest.csv with train/test splits)")
    parser.add_argument("--sizes", default="64,128,256", help="image sides in px to test (default: %(default)s)")
    parser.add_argument("--draws", type=int, default=5, help="random misreadings per error rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be whole numbers of pixels separated by commas, got {args.sizes!r}")
    if args.draws < 1 or min(sizes) < 8:
        parser.error("--draws must be at least 1 and every size at least 8 px")
    data = Path(args.data).expanduser()
    manifest = pd.read_csv(data / "manifest.csv")

    print("1. legibility: cross-validated accuracy of telling the two materials apart from the surface's pixels")
    accuracy = {}
    for surface, *materials in PAIRS:
        for size in sizes:
            accuracy[surface, size], n = legibility(data, manifest, surface, tuple(materials), size, args.seed)
            pair = f"{surface}: {materials[0]} vs {materials[1]}"
            print(f"   {pair:44s} {size:4d} px: "
                  f"{100 * accuracy[surface, size]:5.1f} % of {n} rooms", flush=True)

    print("2. the trees on the exact dimensions and materials in view, the ceiling misread "
          f"(median over {args.draws} draws; range)")
    print(f"   {'ceiling plaster/acoustic tiles read':44s} {'error %':>8s} {'SD %':>7s} {'range':>12s} "
          f"{'median|e| %':>12s}")
    rates = [("exactly", 0.0)]
    rates += [(f"as at {size} px", 1.0 - accuracy[PAIRS[0][0], size]) for size in sizes]
    rates += [("blind (tiles read as plaster)", 1.0)]
    for name, rate in rates:
        scores = misread_ceiling_score(manifest, rate, args.draws, args.seed)
        sd = [score["sd"] for score in scores]
        print(f"   {name:44s} {100 * rate:8.1f} {np.median(sd):7.1f} {min(sd):5.1f}-{max(sd):5.1f} "
              f"{np.median([score['median_abs'] for score in scores]):12.1f}", flush=True)


if __name__ == "__main__":
    main()
