"""Gnomonic views of equirectangular panoramas: markers land where geometry says they must."""

import numpy as np
import pytest

from i2r.data.panorama import rectilinear_view, view_rays, view_yaws


def _panorama_with_marker(yaw_deg: float, pitch_deg: float, height=180, width=360) -> np.ndarray:
    """A black RGB panorama (1 px per degree) with a red 5x5 px square at (yaw, pitch)."""
    pano = np.zeros((height, width, 3), dtype=np.uint8)
    col = int(round((yaw_deg / 360 + 0.5) * width - 0.5)) % width
    row = int(round((0.5 - pitch_deg / 180) * height - 0.5))
    pano[row - 2 : row + 3, [(col + d) % width for d in range(-2, 3)], 0] = 255
    return pano


def _red_centroid(view: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(view[..., 0] > 128)
    assert rows.size, "the marker is not in the view"
    return rows.mean(), cols.mean()


@pytest.mark.parametrize("yaw, pitch", [(60.0, 0.0), (-150.0, 0.0), (175.0, 0.0), (30.0, 35.0)])
def test_marker_lands_at_the_view_centre(yaw, pitch):
    view = rectilinear_view(_panorama_with_marker(yaw, pitch), yaw, pitch, fov_deg=60, size=65)
    row, col = _red_centroid(view)
    assert abs(row - 32) <= 1.0 and abs(col - 32) <= 1.0


def test_marker_off_centre_lands_where_the_pinhole_model_puts_it():
    # A marker 20 degrees right of the view's axis appears at f * tan(20 deg) px right of centre.
    size, fov = 101, 90.0
    view = rectilinear_view(_panorama_with_marker(20.0, 0.0), 0.0, 0.0, fov_deg=fov, size=size)
    row, col = _red_centroid(view)
    focal = (size / 2) / np.tan(np.radians(fov / 2))
    assert col - 50 == pytest.approx(focal * np.tan(np.radians(20.0)), abs=1.0)
    assert row == pytest.approx(50, abs=1.0)
    left = rectilinear_view(_panorama_with_marker(-20.0, 0.0), 0.0, 0.0, fov_deg=fov, size=size)
    assert 50 - _red_centroid(left)[1] == pytest.approx(focal * np.tan(np.radians(20.0)), abs=1.0)


def test_pixel_centres_follow_the_pinhole_model():
    """200 px over 90 degrees: focal length 100 px, pixel centres at x = col + 0.5 - 100. The edge
    pixel's ray is atan(99.5 / 100) from the axis (not half a pixel's share of the angle: a pinhole
    view's pixels are equal steps on the image plane), and the top row's latitude counts the
    centre column's half-pixel offset."""
    longitude, latitude = view_rays(size=200, fov_deg=90, yaw_deg=0, pitch_deg=0)
    assert longitude[100, 0] == pytest.approx(-np.arctan(99.5 / 100.0), abs=1e-12)
    assert longitude[100, 100] == pytest.approx(np.arctan(0.5 / 100.0), abs=1e-12)
    assert latitude[0, 100] == pytest.approx(np.arctan2(99.5, np.hypot(0.5, 100.0)), abs=1e-12)


def test_bilinear_sampling_of_a_smooth_panorama_is_exact_for_linear_ramps():
    pano = np.tile(np.linspace(0, 1, 180)[:, None], (1, 360))  # value = row position, linear in latitude
    view = rectilinear_view(pano, yaw_deg=10, pitch_deg=0, fov_deg=40, size=21)
    _, latitude = view_rays(21, 40, 10, 0)
    expected = ((0.5 - latitude / np.pi) * 180 - 0.5) / 179
    assert np.allclose(view, expected, atol=1e-9)
    assert view_yaws(4) == [0.0, 90.0, 180.0, 270.0]
    with pytest.raises(ValueError, match="fov"):
        view_rays(8, 180, 0, 0)
