"""The information ceiling of the synthetic rooms: what predicting T60 from scene parameters can reach."""

import numpy as np
import pandas as pd
import pytest

from i2r.data.synthetic.predictability import (GEOMETRY, PERFECT_READER, PREDICTORS, error_stats,
                                               hidden_wall_candidates, hidden_wall_posterior, information_ceiling,
                                               perfect_reader_predictions, perfect_reader_t60)
from i2r.data.synthetic.scene import SURFACES
from i2r.errors import UserError


def test_error_stats_of_a_uniform_doubling():
    true = np.array([0.5, 1.0, 2.0, 4.0])
    stats = error_stats(2.0 * true, true)
    assert stats["mean"] == pytest.approx(100.0) and stats["median_abs"] == pytest.approx(100.0)
    assert stats["sd"] == pytest.approx(0.0, abs=1e-9) and stats["log_sd"] == pytest.approx(0.0, abs=1e-9)


def _manifest(n: int, seed: int = 0) -> pd.DataFrame:
    """Rooms whose log T60 is the sum of per-surface terms: material 'hard' (+0.5) or 'soft'
    (-0.5) on each of the six surfaces, so the hidden wall alone leaves an SD of 0.5 in log T60."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"scene": rng.choice(["small", "large"], n),
                          "split": np.where(np.arange(n) < 0.8 * n, "train", "test")})
    for column in GEOMETRY:
        frame[column] = 1.0
    log_t60 = np.zeros(n)
    for surface in SURFACES:
        hard = rng.random(n) < 0.5
        frame[surface] = np.where(hard, "hard", "soft")
        log_t60 += np.where(hard, 0.5, -0.5)
    frame["t60_500_s"] = frame["t60_1000_s"] = np.exp(log_t60)
    return frame


def test_the_hidden_wall_bounds_what_the_view_can_predict():
    table = information_ceiling(_manifest(600)).set_index("predictor")["log_sd"]
    assert list(table.index) == list(PREDICTORS)  # no seed and index columns: no perfect reader
    everything, in_view = table.iloc[-1], table.iloc[-2]
    assert everything < 0.05  # all six surfaces known: the law is learnt almost exactly
    assert 0.4 < in_view < 0.65  # what stays unknown: the hidden wall's +-0.5
    assert table.iloc[0] > 1.0  # the constant knows nothing: SD sqrt(6) / 2 = 1.22


def test_too_few_rooms_is_a_clean_error():
    with pytest.raises(UserError, match="at least 2"):
        information_ceiling(_manifest(5))


def test_the_out_of_view_wall_is_behind_every_camera():
    """OUT_OF_VIEW is the x = 0 wall: the camera stands in the room's first fifth looking along +x,
    and its view (yaw + half the square image's field of view) never turns 90 degrees away."""
    from i2r.data.synthetic.render import RenderConfig
    from i2r.data.synthetic.scene import OUT_OF_VIEW, draw_room

    assert OUT_OF_VIEW == "wall_x0" and SURFACES[2] == "wall_x0"
    half_diagonal_fov = np.rad2deg(np.arctan(np.sqrt(2) * np.tan(np.deg2rad(RenderConfig().fov_deg) / 2)))
    rng = np.random.default_rng(0)
    for category in ("small", "medium", "large"):
        for _ in range(10):
            scene = draw_room(rng, category)
            assert scene.camera[0] <= 0.2 * scene.dims[0] + 1e-9
            assert abs(np.rad2deg(scene.yaw)) + half_diagonal_fov < 90.0


def test_hidden_wall_posterior_matches_the_generators_draws():
    """Bayes over the unseen main finish agrees with the frequencies of the generator's own draws
    (seeded, 40,000 small rooms' materials) given three plaster walls or three different ones."""
    from i2r.data.synthetic.scene import _draw_materials

    rng = np.random.default_rng(0)
    draws = [_draw_materials(rng, "small") for _ in range(40000)]
    for walls_in_view in (("plaster", "plaster", "plaster"), ("plaster", "tile", "brick")):
        hidden = [d["wall_x0"] for d in draws if (d["wall_x1"], d["wall_y0"], d["wall_y1"]) == walls_in_view]
        posterior = hidden_wall_posterior("small", walls_in_view)
        assert sum(posterior.values()) == pytest.approx(1.0)
        for material, probability in posterior.items():
            frequency = hidden.count(material) / len(hidden)
            assert frequency == pytest.approx(probability, abs=4 * np.sqrt(probability * (1 - probability) / len(hidden)) + 1e-3)
    # the main finish is almost surely plaster, and a wall keeps it 70 % of the time: 0.7 + 0.3 * 5/13
    assert hidden_wall_posterior("small", ("plaster",) * 3)["plaster"] == pytest.approx(0.7 + 0.3 * 5 / 13, abs=0.01)


def _rebuilt_manifest(n: int, seed: int = 3) -> pd.DataFrame:
    """The manifest rows of ``n`` synthetic scenes, without rendering or synthesising anything."""
    from i2r.data.synthetic import SynthConfig
    from i2r.data.synthetic.dataset import draw_example_scene, manifest_row

    config = SynthConfig(n=n, out="unused", seed=seed)
    rows = [manifest_row(draw_example_scene(seed, i), i, config) for i in range(n)]
    frame = pd.DataFrame(rows)
    for column in [c for c in frame.columns if c.startswith("t60_") or c in GEOMETRY or c in ("seed", "index")]:
        frame[column] = pd.to_numeric(frame[column])
    return frame


def test_the_perfect_reader_is_exact_when_the_hidden_wall_is_known_and_close_otherwise():
    from i2r.data.synthetic.dataset import draw_example_scene
    from i2r.data.synthetic.scene import OUT_OF_VIEW

    manifest = _rebuilt_manifest(300)
    predicted = perfect_reader_predictions(manifest)
    true = manifest[["t60_500_s", "t60_1000_s"]].mean(axis=1).to_numpy()
    stats = error_stats(predicted, true)
    assert stats["median_abs"] < 10.0 and abs(stats["mean"]) < 10.0
    assert error_stats(np.full_like(true, np.exp(np.log(true).mean())), true)["median_abs"] > 3 * stats["median_abs"]
    # with the true hidden material, the reader's own Eyring rebuilds the manifest T60 exactly
    # (rooms without a window behind the camera, which it cannot see)
    checked = 0
    for index in range(300):
        scene = draw_example_scene(3, index)
        if scene.outdoor or any(SURFACES[p.surface] == OUT_OF_VIEW for p in scene.patches):
            continue
        candidates = hidden_wall_candidates(scene)
        probability, t60 = candidates[scene.materials[OUT_OF_VIEW]]
        assert probability > 0 and t60 == pytest.approx(np.mean(scene.t60_s[2:4]), rel=1e-3)
        assert sum(p for p, _ in candidates.values()) == pytest.approx(1.0)
        checked += 1
    assert checked > 150


def test_the_ceiling_table_ends_with_the_perfect_reader_and_mismatched_sets_are_refused(caplog):
    manifest = _rebuilt_manifest(120)
    manifest["split"] = np.where(np.arange(len(manifest)) < 90, "train", "test")
    table = information_ceiling(manifest).set_index("predictor")
    assert table.index[-1] == PERFECT_READER and table.loc[PERFECT_READER, "n_train"] == 0
    assert table.loc[PERFECT_READER, "median_abs"] < table.loc["constant (geometric mean)", "median_abs"]
    test_row = manifest.index[manifest["split"] == "test"][0]
    manifest.loc[test_row, "t60_500_s"] *= 2.0
    with pytest.raises(UserError, match="does not rebuild"):
        perfect_reader_predictions(manifest)
    # a set made by another version of the generator: the table goes without the row, and says why
    with caplog.at_level("WARNING"):
        table = information_ceiling(manifest)
    assert PERFECT_READER not in set(table["predictor"]) and "does not rebuild" in caplog.text


def test_a_room_the_generator_would_reject_whatever_the_hidden_wall_keeps_the_posterior():
    """No hidden material brings this stone hall's T60 under 6 s (unseen windows could have): the
    reader falls back on the posterior instead of dividing by zero."""
    from i2r.data.synthetic.scene import Scene

    materials = {surface: "marble" if surface == "floor" else "stone" for surface in SURFACES}
    hall = Scene("large", (60.0, 30.0, 20.0), materials, (0, 0, 0), (0, 0, 0), (1.0, 15.0, 1.6), 0.0, 0.0, ())
    candidates = hidden_wall_candidates(hall)
    posterior = hidden_wall_posterior("large", ["stone"] * 3)
    assert {m: p for m, (p, _) in candidates.items()} == pytest.approx(posterior)
    assert 8.0 < perfect_reader_t60(hall) < 18.0
