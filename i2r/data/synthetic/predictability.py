"""How well the single-number T60 of synthetic rooms can be predicted from what their camera sees.

Every room's T60 follows from its size and the materials of all six surfaces (Eyring), but its
photo shows only five of them: the camera stands with its back to one wall
(:data:`~i2r.data.synthetic.scene.OUT_OF_VIEW`). Two kinds of reader bound what an image-to-IR
model can reach on this data, scored on the test rooms with the statistics ``i2r eval`` reports:

- :func:`perfect_reader_t60`: the information limit of the photo. It knows the exact room size,
  every visible material, door and window, Eyring's formula and the generator's own priors, and
  averages over what the wall behind the camera may be. No image-to-IR model can be expected to
  do better from the view (up to the windows on the hidden wall, which it takes as none, and its
  choice of a single guess: the geometric mean).
- :func:`information_ceiling`'s tree rows: a generic regressor of log T60 fitted on the training
  rooms' exact scene parameters, knowing more and more of them: what learning the law from the
  training rooms alone, with the parameters read perfectly, gets.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from i2r.data.synthetic.scene import (FEATURE_WALL_PROBABILITY, OUT_OF_VIEW, OUTDOOR_BAND_RATIOS,
                                      OUTDOOR_T500_RANGE_S, SURFACES, T60_RANGE_S, Scene, eyring_t60,
                                      surface_absorption, wall_palette)
from i2r.errors import UserError

log = logging.getLogger(__name__)
MID_BANDS = ("t60_500_s", "t60_1000_s")
"""The single-number T60 is the mean of these manifest columns, as in ``i2r eval``."""
GEOMETRY = ("length_m", "width_m", "height_m", "volume_m3", "surface_m2")
VISIBLE = tuple(surface for surface in SURFACES if surface != OUT_OF_VIEW)
PREDICTORS = {
    "constant (geometric mean)": None,
    "trees: room category + exact dimensions": (GEOMETRY, ()),
    "trees: + floor and ceiling materials": (GEOMETRY, ("floor", "ceiling")),
    "trees: + the walls in view (what the camera sees)": (GEOMETRY, VISIBLE),
    "trees: + the wall behind the camera (everything)": (GEOMETRY, SURFACES),
}
PERFECT_READER = "perfect reader of the view (Eyring, the generator's priors)"
_MID = (2, 3)
"""Indices of the 500 Hz and 1 kHz octaves in a scene's ``t60_s``."""


def error_stats(predicted_s: np.ndarray, true_s: np.ndarray) -> dict:
    """Signed relative error ``100 (predicted - true) / true`` (%) of T60s ``(n,)``: the statistics
    ``i2r eval`` reports (:func:`i2r.evaluate.error_stats`) plus the SD of the log ratio."""
    from i2r.evaluate import error_stats as eval_error_stats

    return {**eval_error_stats(100.0 * (predicted_s - true_s) / true_s),
            "log_sd": float(np.std(np.log(predicted_s / true_s), ddof=1))}


def scene_features(manifest: pd.DataFrame, numeric=(), materials=()) -> np.ndarray:
    """Category one-hot, the ``numeric`` columns (outdoor scenes have none: 0) and one-hot
    ``materials`` columns (absent: a level of its own) -> ``(n_scenes, n_features)``."""
    parts = [pd.get_dummies(manifest["scene"])]
    if numeric:
        parts.append(manifest[list(numeric)].fillna(0.0))
    parts += [pd.get_dummies(manifest[column].fillna("none"), prefix=column) for column in materials]
    return pd.concat(parts, axis=1).to_numpy(dtype=float)


def single_number_t60(manifest: pd.DataFrame) -> np.ndarray:
    """Ground-truth single-number T60 (s) per manifest row, ``(n_scenes,)``."""
    return manifest[list(MID_BANDS)].mean(axis=1).to_numpy()


def fit_and_score(features: np.ndarray | None, t60_s: np.ndarray, train: np.ndarray, test: np.ndarray,
                  seed: int = 0) -> dict:
    """Fit gradient-boosted trees (scikit-learn) of log T60 on the ``train`` rows of ``features``
    ``(n, k)`` (None: the training geometric mean) and return :func:`error_stats` on ``test``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if features is None:
        predicted = np.full(int(test.sum()), np.exp(np.log(t60_s[train]).mean()))
    else:
        model = HistGradientBoostingRegressor(max_iter=400, random_state=seed)
        predicted = np.exp(model.fit(features[train], np.log(t60_s[train])).predict(features[test]))
    return error_stats(predicted, t60_s[test])


def hidden_wall_posterior(category: str, visible_walls) -> dict[str, float]:
    """Probability of each material for the wall behind the camera, given the materials of the
    three walls in view (``visible_walls``), under the generator's prior: every wall has the
    room's main finish, or with :data:`~i2r.data.synthetic.scene.FEATURE_WALL_PROBABILITY` a
    material drawn from the palette. Bayes over the unseen main finish; ``category`` is small,
    medium or large. Returns ``{material: probability}`` over the category's wall palette."""
    prior = wall_palette(category)
    feature = FEATURE_WALL_PROBABILITY

    def wall_given_main(wall: str, main: str) -> float:
        return (1.0 - feature) * (wall == main) + feature * prior.get(wall, 0.0)

    main = {m: p * np.prod([wall_given_main(wall, m) for wall in visible_walls]) for m, p in prior.items()}
    total = sum(main.values())
    return {wall: sum(p / total * wall_given_main(wall, m) for m, p in main.items()) for wall in prior}


def hidden_wall_candidates(scene: Scene) -> dict[str, tuple[float, float]]:
    """What a perfect reader of an indoor ``scene``'s photo considers: for each material the wall
    behind the camera may have, ``(probability, single-number T60 in s)``.

    It knows the exact size, the materials of the floor, the ceiling and the three walls in view,
    and the doors and windows on them. The probabilities are :func:`hidden_wall_posterior`'s,
    zero for a material the generator would have rejected (a band's T60 outside
    :data:`~i2r.data.synthetic.scene.T60_RANGE_S`), renormalised (all kept should none pass: the
    unseen windows can make the difference); windows on the hidden wall are not seen and taken as
    none, so with the true material the T60 is exact for rooms without them.
    """
    visible = [patch for patch in scene.patches if SURFACES[patch.surface] != OUT_OF_VIEW]
    walls_in_view = [scene.materials[wall] for wall in VISIBLE if wall.startswith("wall")]
    candidates = {}
    for material, probability in hidden_wall_posterior(scene.category, walls_in_view).items():
        guess = Scene(scene.category, scene.dims, {**scene.materials, OUT_OF_VIEW: material}, scene.source,
                      scene.receiver, scene.camera, scene.yaw, scene.pitch, (), visible)
        t60 = eyring_t60(scene.dims, surface_absorption(guess))
        accepted = T60_RANGE_S[0] <= t60.min() and t60.max() <= T60_RANGE_S[1]
        candidates[material] = (probability, accepted, float(np.mean(t60[list(_MID)])))
    if not any(accepted for _, accepted, _ in candidates.values()):
        candidates = {material: (probability, True, t60) for material, (probability, _, t60) in candidates.items()}
    total = sum(probability for probability, accepted, _ in candidates.values() if accepted)
    return {material: (probability * accepted / total, t60)
            for material, (probability, accepted, t60) in candidates.items()}


def perfect_reader_t60(scene: Scene) -> float:
    """The single-number T60 (s) that a perfect reader of ``scene``'s photo predicts: the
    geometric mean over :func:`hidden_wall_candidates` (the best single guess of the log T60, the
    quantity the error's spread grows with). Outdoors the T60 is drawn with nothing in view to
    tell it: the geometric mean of its range."""
    if scene.outdoor:
        t500 = np.exp(np.mean(np.log(OUTDOOR_T500_RANGE_S)))
        return float(t500 * np.mean(np.take(OUTDOOR_BAND_RATIOS, _MID)))
    probabilities, t60s = zip(*hidden_wall_candidates(scene).values())
    return float(np.exp(np.average(np.log(t60s), weights=probabilities)))


def perfect_reader_predictions(manifest: pd.DataFrame) -> np.ndarray:
    """:func:`perfect_reader_t60` of each manifest row's scene, rebuilt from its ``seed`` and
    ``index`` columns (an ``i2r synth`` manifest) -> ``(n_rows,)`` s. Raises :class:`UserError`
    when a rebuilt scene's T60 is not the manifest's (a set made by another generator version)."""
    from i2r.data.synthetic.dataset import draw_example_scene

    if not {"seed", "index"} <= set(manifest.columns):
        raise UserError("the perfect reader needs the manifest's seed and index columns (an i2r synth set)")
    predictions = []
    for seed, index, t60_s in zip(manifest["seed"], manifest["index"], single_number_t60(manifest)):
        scene = draw_example_scene(int(seed), int(index))
        if not np.isclose(np.mean(np.take(scene.t60_s, _MID)), t60_s, rtol=1e-3):
            raise UserError(f"scene {index} of seed {seed} does not rebuild: its T60 is not the manifest's; "
                            "was the set made by another version of i2r synth?")
        predictions.append(perfect_reader_t60(scene))
    return np.asarray(predictions)


def information_ceiling(manifest: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per predictor of :data:`PREDICTORS`, and :data:`PERFECT_READER` when the manifest
    has ``seed`` and ``index`` columns and its scenes rebuild (else a warning says why it is
    missing): ``predictor``, ``n_train`` (0 for the perfect reader: it
    learns nothing), and :func:`error_stats` of its T60 error on the test split (``n`` test rooms;
    ``mean``, ``sd``, ``median``, ``iqr``, ``median_abs`` in %; ``log_sd``).

    ``manifest``: an ``i2r synth`` manifest (its ``split``, ``scene``, geometry, material and
    per-band T60 columns) with at least two training and two test rooms, else :class:`UserError`.
    A few seconds for a thousand rooms.
    """
    t60_s = single_number_t60(manifest)
    train, test = (manifest["split"] == "train").to_numpy(), (manifest["split"] == "test").to_numpy()
    if train.sum() < 2 or test.sum() < 2:
        raise UserError(f"the T60 ceiling needs at least 2 training and 2 test rooms, got {train.sum()} and {test.sum()}")
    rows = []
    for name, columns in PREDICTORS.items():
        features = scene_features(manifest, *columns) if columns else None
        rows.append({"predictor": name, "n_train": int(train.sum()),
                     **fit_and_score(features, t60_s, train, test, seed)})
    if {"seed", "index"} <= set(manifest.columns):
        try:
            predicted = perfect_reader_predictions(manifest[test])
        except UserError as error:
            log.warning("no perfect reader in the T60 ceiling: %s", error)
        else:
            rows.append({"predictor": PERFECT_READER, "n_train": 0, **error_stats(predicted, t60_s[test])})
    return pd.DataFrame(rows)
