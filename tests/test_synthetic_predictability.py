"""The information ceiling of the synthetic rooms: what predicting T60 from scene parameters can reach."""

import numpy as np
import pandas as pd
import pytest

from i2r.data.synthetic.predictability import GEOMETRY, error_stats, information_ceiling
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
