"""How well the single-number T60 of synthetic rooms can be predicted from what their camera sees.

Every room's T60 follows from its size and the materials of all six surfaces (Eyring), but its
photo shows only five of them: the camera stands with its back to one wall
(:data:`~i2r.data.synthetic.scene.OUT_OF_VIEW`). :func:`information_ceiling` fits a regressor of
log T60 on the training rooms' ground-truth scene parameters, knowing more and more of them, and
scores it on the test rooms with the statistics ``i2r eval`` reports. The row "what the camera
sees" is a ceiling for any image-to-IR model on this data: a model that read the exact room size
and every visible material from the photo would still err by about that much.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from i2r.data.synthetic.scene import OUT_OF_VIEW, SURFACES
from i2r.errors import UserError

MID_BANDS = ("t60_500_s", "t60_1000_s")
"""The single-number T60 is the mean of these manifest columns, as in ``i2r eval``."""
GEOMETRY = ("length_m", "width_m", "height_m", "volume_m3", "surface_m2")
VISIBLE = tuple(surface for surface in SURFACES if surface != OUT_OF_VIEW)
PREDICTORS = {
    "constant (geometric mean)": None,
    "room category + exact dimensions": (GEOMETRY, ()),
    "+ floor and ceiling materials": (GEOMETRY, ("floor", "ceiling")),
    "+ the walls in view: what the camera sees": (GEOMETRY, VISIBLE),
    "+ the wall behind the camera: everything": (GEOMETRY, SURFACES),
}


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


def information_ceiling(manifest: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per predictor of :data:`PREDICTORS`: ``predictor``, ``n_train``, and :func:`error_stats`
    of its T60 error on the test split (``n`` test rooms; ``mean``, ``sd``, ``median``, ``iqr``,
    ``median_abs`` in %; ``log_sd``).

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
    return pd.DataFrame(rows)
