"""What has a demo run learned to read? (issue 4: why the 10-minute demo misses its target)

Given a checkpoint of ``i2r demo`` / ``i2r train`` and the ``i2r synth`` set it was trained on,
this script reports, on the training rooms and on the test rooms:

- **the generated T60 within each scene class** (small, medium, large, outdoor), read from the
  ``per_example.csv`` of ``i2r eval CK --data DATA --split train`` and ``--split test``: the
  correlation of generated with true log T60 inside the class, the log-SD of both, and the largest
  generated T60. A model that has learned only the class makes one decay per class: log-SD near 0
  and no correlation inside it. Also how much of the variance of the true log T60 the class alone
  explains (R^2 of the class means).
- **the best linear read-out of the encoder's features**: ridge regression (scikit-learn,
  regularisation by leave-one-out over ``--alphas``) of the manifest's log T60 on the 365 features
  the checkpoint's encoder gives each training room (with its own depth estimate, as at
  inference), scored on the test rooms with ``i2r eval``'s statistics. If the generator's own
  error is no worse than this, what the encoder reads, not how the generator decodes it, limits
  the run.

The demo's single-number T60 is the mean of the 500 Hz and 1 kHz octaves; the eval CSVs hold it
as measured (T30), the read-out's truth is the manifest's Eyring T60.

    i2r eval RUN/best.pt --data DATA --split train --out EVAL_TRAIN
    i2r eval RUN/best.pt --data DATA --out EVAL_TEST
    .venv/bin/python benchmarks/bench_demo_reading.py RUN/best.pt --data DATA \\
        --eval EVAL_TRAIN/per_example.csv --eval EVAL_TEST/per_example.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from i2r.checkpoint import load_model
from i2r.data.synthetic.predictability import error_stats, single_number_t60
from i2r.errors import UserError
from i2r.inference import load_image

SCENES = ("small", "medium", "large", "outdoor")


def within_class(per_example: pd.DataFrame, manifest: pd.DataFrame, data: Path) -> pd.DataFrame:
    """One row per scene class of an ``i2r eval`` ``per_example.csv`` joined to its manifest:
    rooms, log-SD of true and generated T60, their correlation, the largest generated T60 (s)."""
    rooms = per_example.dropna(subset=["t60_true_s", "t60_generated_s"]).copy()
    rooms["scene"] = _scenes_of(rooms["image"], manifest, data)
    rows = []
    for scene, group in rooms.groupby("scene"):
        true, generated = np.log(group["t60_true_s"]), np.log(group["t60_generated_s"])
        rows.append({"scene": scene, "rooms": len(group), "true_log_sd": true.std(), "generated_log_sd": generated.std(),
                     "correlation": np.corrcoef(true, generated)[0, 1] if len(group) > 2 else np.nan,
                     "largest_generated_s": group["t60_generated_s"].max()})
    return pd.DataFrame(rows).set_index("scene").reindex([s for s in SCENES if s in set(rooms["scene"])])


def _scenes_of(image_paths: pd.Series, manifest: pd.DataFrame, data: Path) -> list[str]:
    """The manifest's ``scene`` of each image path of an eval CSV (the image must be one of ``data``'s)."""
    scene_by_path = {str((data / image).resolve()): scene for image, scene in zip(manifest["image"], manifest["scene"])}
    scenes = []
    for path in image_paths:
        scene = scene_by_path.get(str(Path(path).resolve()))
        if scene is None:
            raise ValueError(f"{path} is not an image of {data}'s manifest: was the CSV made with --data {data}?")
        scenes.append(scene)
    return scenes


def class_share(t60_s: np.ndarray, scenes: np.ndarray) -> float:
    """R^2 of the scene-class means of log T60: ``t60_s`` and ``scenes`` ``(n,)``."""
    log_t60 = pd.Series(np.log(t60_s))
    residual = log_t60 - log_t60.groupby(scenes).transform("mean")
    return float(1.0 - (residual**2).sum() / ((log_t60 - log_t60.mean()) ** 2).sum())


@torch.no_grad()
def encoder_features(checkpoint: str, data: Path, images: list[str], batch: int = 50) -> np.ndarray:
    """The checkpoint's encoder features ``(n, 365)`` of ``images`` (manifest paths), depth estimated."""
    model, _, _ = load_model(checkpoint, "cpu")
    model.eval()
    features = []
    for start in range(0, len(images), batch):
        pixels = torch.stack([load_image(data / path, model.config.image_size) for path in images[start:start + batch]])
        features.append(model.encode(pixels)[0].float().numpy())
    return np.concatenate(features)


def linear_readout(features: np.ndarray, t60_s: np.ndarray, train: np.ndarray, test: np.ndarray,
                   alphas: np.ndarray) -> tuple[dict, np.ndarray, float]:
    """Ridge of log T60 on ``features`` fitted on ``train`` rows: test-row error statistics,
    the test predictions (s) and the chosen regularisation."""
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=alphas).fit(features[train], np.log(t60_s[train]))
    predicted = np.exp(ridge.predict(features[test]))
    return error_stats(predicted, t60_s[test]), predicted, float(ridge.alpha_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint of i2r demo / i2r train (RUN/best.pt)")
    parser.add_argument("--data", required=True, help="the i2r synth folder it was trained on")
    parser.add_argument("--eval", action="append", default=[], metavar="CSV",
                        help="per_example.csv of `i2r eval` on a split of --data (repeatable)")
    parser.add_argument("--alphas", default="1e-4,1e4,17", metavar="LOW,HIGH,N",
                        help="ridge regularisations tried: N log-spaced from LOW to HIGH (default %(default)s)")
    args = parser.parse_args()
    try:
        low, high, count = (float(v) for v in args.alphas.split(","))
        alphas = np.logspace(np.log10(low), np.log10(high), int(count))
    except ValueError:
        parser.error(f"--alphas needs LOW,HIGH,N, got {args.alphas!r}")
    try:
        report(args.checkpoint, Path(args.data).expanduser(), args.eval, alphas)
    except (UserError, ValueError, OSError) as exc:
        parser.error(str(exc))


def report(checkpoint: str, data: Path, eval_csvs: list[str], alphas: np.ndarray) -> None:
    """Print the class share, the per-class tables of ``eval_csvs`` and the encoder's read-out."""
    manifest = pd.read_csv(data / "manifest.csv")
    train, test = (manifest["split"] == "train").to_numpy(), (manifest["split"] == "test").to_numpy()
    t60_all, scenes_all = single_number_t60(manifest), manifest["scene"].to_numpy()
    print(f"{data}: the scene class explains {100 * class_share(t60_all[train], scenes_all[train]):.0f} % of the variance of "
          f"log T60 over the training rooms")
    for csv in eval_csvs:
        table = within_class(pd.read_csv(csv), manifest, data)
        print(f"\ngenerated T60 within each scene class ({csv}):")
        print(table.to_string(float_format=lambda v: f"{v:.2f}"))

    rows = np.flatnonzero(train | test)
    features = encoder_features(checkpoint, data, manifest["image"].iloc[rows].tolist())
    t60 = t60_all[rows]
    stats, predicted, alpha = linear_readout(features, t60, train[rows], test[rows], alphas)
    print(f"\nridge on the encoder's {features.shape[1]} features (alpha {alpha:g}), test rooms: "
          f"mean {stats['mean']:+.1f} %, SD {stats['sd']:.1f} %, median |e| {stats['median_abs']:.1f} %, "
          f"log-SD {stats['log_sd']:.2f}")
    scenes = scenes_all[test]
    true = np.log(t60_all[test])
    correlations = {scene: np.corrcoef(np.log(predicted[scenes == scene]), true[scenes == scene])[0, 1]
                    for scene in SCENES if (scenes == scene).sum() > 2}
    print("  correlation with the true log T60 within each class: "
          + ", ".join(f"{scene} {value:.2f}" for scene, value in correlations.items()))


if __name__ == "__main__":
    main()
