"""Rectilinear (pinhole) views cut out of 360-degree equirectangular panoramas.

The paper (Singh et al. 2021, Fig. 7) feeds crops of 360-degree images of a space to the model.
A view is the gnomonic projection of the sphere onto a plane tangent at (yaw, pitch): each
output pixel's ray is rotated into the panorama's frame and the panorama is sampled bilinearly
at that ray's longitude and latitude.

Conventions: the panorama's centre column looks at yaw 0; yaw grows to the right (east, towards
higher columns) and pitch grows upwards; the top row is latitude +90 degrees. Longitude wraps
around; latitude is clamped at the poles.
"""

from __future__ import annotations

import numpy as np


def view_rays(size: int, fov_deg: float, yaw_deg: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (radians, each ``(size, size)``) seen by a square pinhole view.

    ``fov_deg`` is the horizontal (= vertical) field of view; the view looks at
    (``yaw_deg``, ``pitch_deg``) with no roll.
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"a rectilinear view needs 0 < fov < 180 degrees, got {fov_deg}")
    focal = (size / 2) / np.tan(np.radians(fov_deg) / 2)
    offsets = np.arange(size) - (size - 1) / 2
    x, y = np.meshgrid(offsets, -offsets)  # camera frame: x right, y up, z forward
    z = np.full_like(x, focal)
    pitch, yaw = np.radians(pitch_deg), np.radians(yaw_deg)
    # Tilt up by the pitch (about x), then turn right by the yaw (about the vertical axis).
    y, z = y * np.cos(pitch) + z * np.sin(pitch), -y * np.sin(pitch) + z * np.cos(pitch)
    x, z = x * np.cos(yaw) + z * np.sin(yaw), -x * np.sin(yaw) + z * np.cos(yaw)
    longitude = np.arctan2(x, z)
    latitude = np.arctan2(y, np.hypot(x, z))
    return longitude, latitude


def sample_bilinear(panorama: np.ndarray, longitude: np.ndarray, latitude: np.ndarray) -> np.ndarray:
    """Bilinear samples of an equirectangular ``(H, W, ...)`` array at the given angles (radians).

    Pixel centres sit at longitude ``-pi + (c + 0.5) 2 pi / W`` and latitude ``pi/2 - (r + 0.5) pi / H``.
    """
    height, width = panorama.shape[:2]
    col = (longitude / (2 * np.pi) + 0.5) * width - 0.5
    row = (0.5 - latitude / np.pi) * height - 0.5
    row = np.clip(row, 0.0, height - 1.0)
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    fc, fr = col - c0, row - r0
    c1, r1 = (c0 + 1) % width, np.minimum(r0 + 1, height - 1)
    c0 %= width
    if panorama.ndim == 3:
        fc, fr = fc[..., None], fr[..., None]
    # Gather first, convert after: a 8192 x 4096 panorama is never copied to float64 whole.
    def at(r, c):
        return panorama[r, c].astype(np.float64)

    top = at(r0, c0) * (1 - fc) + at(r0, c1) * fc
    bottom = at(r1, c0) * (1 - fc) + at(r1, c1) * fc
    return top * (1 - fr) + bottom * fr


def rectilinear_view(panorama: np.ndarray, yaw_deg: float, pitch_deg: float = 0.0, fov_deg: float = 90.0, size: int = 256) -> np.ndarray:
    """A square ``(size, size, ...)`` pinhole view of an equirectangular panorama ``(H, W, ...)``.

    Returns float64 in the panorama's value range (round and cast for uint8 output).
    """
    longitude, latitude = view_rays(size, fov_deg, yaw_deg, pitch_deg)
    return sample_bilinear(panorama, longitude, latitude)


def view_yaws(n_views: int) -> list[float]:
    """``n_views`` yaws (degrees) evenly around the horizon, starting at 0."""
    return [360.0 * k / n_views for k in range(n_views)]
