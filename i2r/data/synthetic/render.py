"""Ray-cast views of synthetic scenes: an RGB image and its true depth map, in NumPy.

A pinhole camera sends one ray per pixel. Rays hit the room box (six planes, or the ground
and sky outdoors) and axis-aligned boxes (furniture, people, columns, trees, buildings); the hit
surface and its metric (u, v) coordinates select a procedural texture (planks, tiles, brick
courses, curtain folds, panels, ...), and a Lambertian term from a ceiling light, darkening near
edges (a cheap ambient occlusion) and a distance haze shade it. All textures have metric sizes,
so a plank, a tile, a 2 m door or a 1.75 m person tell the scale of the room.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from i2r.data.synthetic.scene import SURFACES, Scene

DEPTH_MAX_M = 65.535
"""Depth maps hold z-depth in millimetres as 16-bit PNG; 65535 (= 65.535 m) means this far or
further (the sky). depth / DEPTH_MAX_M = png / 65535 is the depth normalised to [0, 1]."""


@dataclass(frozen=True)
class RenderConfig:
    """Image side in pixels and the camera's horizontal field of view in degrees."""

    size: int = 256
    fov_deg: float = 70.0


# --- procedural noise, filtered by the pixel footprint -------------------------------------------
# Every texture gets fp, the pixel's footprint in metres. Detail finer than a pixel is replaced
# by its average (analytic box filtering), so that distant brick or tile does not alias into
# moiré or speckle: a cheap stand-in for supersampling.


def _hash(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) per integer lattice cell (i, j): an integer hash, so textures need no RNG."""
    h = i.astype(np.uint32) * np.uint32(374761393) + j.astype(np.uint32) * np.uint32(668265263)
    h = h + np.uint32(seed * 2654435761 % 2**32)
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    h = h ^ (h >> np.uint32(16))
    return h.astype(np.float32) / np.float32(2**32)


def _cells(u, v, su, sv, seed=0):
    """Per-cell random value of a (su x sv) m grid, and the position inside the cell in [0, 1)."""
    fu, fv = u / su, v / sv
    iu, iv = np.floor(fu), np.floor(fv)
    return _hash(iu.astype(np.int64), iv.astype(np.int64), seed), fu - iu, fv - iv


def _grain(u, v, cell: float, seed: int, fp) -> np.ndarray:
    """Zero-mean white noise on a ``cell``-metre lattice, its amplitude reduced as a pixel
    averages (fp / cell)^2 cells: the standard deviation of the average."""
    noise = _hash(np.floor(u / cell).astype(np.int64), np.floor(v / cell).astype(np.int64), seed) - 0.5
    return noise * np.minimum(1.0, cell / np.maximum(fp, 1e-6))


def _value_noise(u, v, scale: float, seed: int = 0, fp=None) -> np.ndarray:
    """Smooth noise, mean 0.5, with features of ``scale`` metres (bilinear value noise)."""
    fu, fv = u / scale, v / scale
    iu, iv = np.floor(fu).astype(np.int64), np.floor(fv).astype(np.int64)
    a, b = fu - iu, fv - iv
    a, b = a * a * (3 - 2 * a), b * b * (3 - 2 * b)
    n00, n10 = _hash(iu, iv, seed), _hash(iu + 1, iv, seed)
    n01, n11 = _hash(iu, iv + 1, seed), _hash(iu + 1, iv + 1, seed)
    noise = (n00 * (1 - a) + n10 * a) * (1 - b) + (n01 * (1 - a) + n11 * a) * b
    return noise if fp is None else 0.5 + (noise - 0.5) * _detail(fp, scale)


def _detail(fp, size: float):
    """1 while features of ``size`` metres span several pixels, falling to 0 when one pixel covers them."""
    return np.clip(1.5 - fp / size, 0.0, 1.0)


def _line_coverage(frac, half_width: float, fp_cells):
    """Fraction of a pixel (width ``fp_cells`` in cell units, centred at ``frac``) covered by the
    joint lines of ``half_width`` on each side of the cell boundaries; tends to the area
    fraction 2 half_width when pixels grow larger than a cell."""
    dist = np.minimum(frac, 1.0 - frac)
    h = np.clip(fp_cells / 2.0, 1e-4, 0.5)
    overlap = np.minimum(dist + h, half_width) - np.maximum(dist - h, -half_width)
    return np.clip(overlap / (2.0 * h), 0.0, 1.0)


def _grout(frac_u, frac_v, width_u, width_v, fp_u, fp_v):
    """Coverage in [0, 1] of a grid's joint lines (half-widths in cell units, footprints likewise)."""
    cu = _line_coverage(frac_u, width_u, fp_u)
    cv = _line_coverage(frac_v, width_v, fp_v)
    return 1.0 - (1.0 - cu) * (1.0 - cv)


def _mix(a, b, w):
    w = np.asarray(w, dtype=np.float32)[..., None]
    return a * (1 - w) + np.asarray(b, dtype=np.float32) * w


def _rgb(colour, n):
    return np.broadcast_to(np.asarray(colour, dtype=np.float32), (n, 3)).copy()


def _shaded(colour, shade):
    return _rgb(colour, shade.shape[0]) * shade[:, None]


# --- materials' appearance: f(u, v, seed, fp) -> (n, 3) RGB in [0, 1] ----------------------------


def _carpet(u, v, seed, fp):
    base = [(0.45, 0.2, 0.2), (0.3, 0.33, 0.45), (0.55, 0.48, 0.38), (0.28, 0.38, 0.3)][seed % 4]
    shade = 0.95 + 0.4 * _grain(u, v, 0.006, seed, fp) + 0.25 * (_value_noise(u, v, 0.6, seed, fp) - 0.5)
    return _shaded(base, shade)


def _thin_carpet(u, v, seed, fp):
    cell, fu, fv = _cells(u, v, 0.5, 0.5, seed)
    shade = 0.9 + 0.12 * (cell - 0.5) * _detail(fp, 0.5) + 0.4 * _grain(u, v, 0.008, seed + 1, fp)
    shade -= 0.15 * _grout(fu, fv, 0.01, 0.01, fp / 0.5, fp / 0.5)
    return _shaded((0.42, 0.44, 0.48), shade)


def _planks(u, v, seed, fp, width=0.15, length=1.4, base=(0.62, 0.42, 0.24)):
    """Planks of ``width`` across v, staggered ends along u, grain streaks along u."""
    row = np.floor(v / width)
    offset = _hash(row.astype(np.int64), np.zeros_like(row, dtype=np.int64), seed) * length
    along = (u + offset) / length
    plank = _hash(row.astype(np.int64), np.floor(along).astype(np.int64), seed + 7) - 0.5
    fv, fu = v / width - row, along - np.floor(along)
    streaks = _value_noise(u * 0.05, v, 0.02, seed + 3) - 0.5  # long along u, ~2 cm across
    shade = 0.88 + 0.3 * plank * _detail(fp, width) + 0.16 * streaks * _detail(fp, 0.02)
    shade -= 0.45 * _grout(fu, fv, 0.004, 0.03, fp / length, fp / width)
    return _shaded(base, shade)


def _wood_floor(u, v, seed, fp):
    return _planks(u, v, seed, fp)


def _wood_panel(u, v, seed, fp):
    # Vertical boards on walls (u and v swapped so that the boards run along v).
    return _planks(v, u, seed, fp, width=0.12, length=2.4, base=(0.55, 0.36, 0.2))


def _linoleum(u, v, seed, fp):
    speck = _hash(np.floor(u / 0.01).astype(np.int64), np.floor(v / 0.01).astype(np.int64), seed) > 0.93
    shade = 0.95 + 0.05 * _value_noise(u, v, 1.0, seed) - 0.25 * (speck - 0.07) * np.minimum(1.0, 0.01 / np.maximum(fp, 1e-6)) - 0.018
    return _shaded((0.7, 0.66, 0.55), shade)


def _marble(u, v, seed, fp):
    cell, fu, fv = _cells(u, v, 0.8, 0.8, seed)
    # Veins: dark where a noise-warped sine crosses zero; clouds: large soft grey patches.
    vein = 1.0 - np.abs(np.sin((u + 0.6 * v) * 4.0 + 6.0 * _value_noise(u, v, 0.4, seed))) ** 0.3
    clouds = _value_noise(u, v, 0.35, seed + 1, fp) - 0.5
    shade = 0.95 + 0.1 * (cell - 0.5) * _detail(fp, 0.8) - 0.35 * (vein - 0.2) * _detail(fp, 0.05) + 0.15 * clouds
    shade -= 0.2 * _grout(fu, fv, 0.004, 0.004, fp / 0.8, fp / 0.8)
    return _shaded((0.9, 0.88, 0.84), shade)


def _seating(u, v, seed, fp):
    """Rows of upholstered seats seen from above: rows every 0.9 m along u, seats 0.55 m wide."""
    fu = u / 0.9 - np.floor(u / 0.9)
    fv = v / 0.55 - np.floor(v / 0.55)
    aisle = (np.abs(v - np.round(v / 12.0) * 12.0) < 0.6).astype(np.float32)
    back = (fu > 0.75).astype(np.float32)
    seat = (fv > 0.08).astype(np.float32) * (fu > 0.2).astype(np.float32)
    colour = _mix(_rgb((0.22, 0.18, 0.16), u.size), (0.6, 0.1, 0.12), seat)
    colour = _mix(colour, (0.42, 0.06, 0.08), back * seat)
    colour = _mix(colour, (0.47, 0.1, 0.11), 1.0 - _detail(fp, 0.3))  # far rows: their mean colour
    return _mix(colour, (0.45, 0.35, 0.25), aisle)


def _tile(u, v, seed, fp, size=0.3):
    cell, fu, fv = _cells(u, v, size, size, seed)
    base = [(0.92, 0.92, 0.9), (0.85, 0.88, 0.9), (0.8, 0.75, 0.65)][seed % 3]
    colour = _shaded(base, 0.98 + 0.06 * (cell - 0.5) * _detail(fp, size))
    return _mix(colour, (0.55, 0.55, 0.52), _grout(fu, fv, 0.015, 0.015, fp / size, fp / size))


def _concrete(u, v, seed, fp):
    cell, fu, fv = _cells(u, v, 2.4, 1.2, seed)
    mottle = (_value_noise(u, v, 0.3, seed, fp) - 0.5) * 0.6 + (_value_noise(u, v, 0.05, seed + 3, fp) - 0.5) * 0.4
    tie = ((np.abs(fu * 2.4 % 0.6 - 0.3) < 0.02) & (np.abs(fv * 1.2 - 0.6) < 0.02)) * _detail(fp, 0.04)
    shade = 0.85 + 0.2 * mottle + 0.05 * (cell - 0.5) - 0.2 * _grout(fu, fv, 0.002, 0.004, fp / 2.4, fp / 1.2) - 0.4 * tie
    return _shaded((0.62, 0.61, 0.58), shade)


def _plaster(u, v, seed, fp):
    base = [(0.93, 0.92, 0.88), (0.9, 0.84, 0.72), (0.82, 0.86, 0.84), (0.86, 0.82, 0.86), (0.95, 0.9, 0.78)][seed % 5]
    return _shaded(base, 0.95 + 0.05 * _value_noise(u, v, 0.8, seed))


def _brick(u, v, seed, fp):
    course = np.floor(v / 0.075)
    along = (u + (course % 2) * 0.1125) / 0.225
    brick = _hash(np.floor(along).astype(np.int64), course.astype(np.int64), seed) - 0.5
    fu, fv = along - np.floor(along), v / 0.075 - course
    shade = 0.92 + 0.45 * brick * _detail(fp, 0.075) + 0.2 * _grain(u, v, 0.02, seed, fp)
    colour = _shaded((0.6, 0.28, 0.2), shade)
    return _mix(colour, (0.75, 0.72, 0.66), _grout(fu, fv, 0.022, 0.07, fp / 0.225, fp / 0.075))


def _stone(u, v, seed, fp):
    course = np.floor(v / 0.4)
    shift = _hash(course.astype(np.int64), np.zeros_like(course, dtype=np.int64), seed) * 0.7
    along = (u + shift) / 0.7
    block = _hash(np.floor(along).astype(np.int64), course.astype(np.int64), seed + 1) - 0.5
    fu, fv = along - np.floor(along), v / 0.4 - course
    shade = 0.95 + 0.2 * block * _detail(fp, 0.4) + 0.1 * (_value_noise(u, v, 0.1, seed, fp) - 0.5)
    colour = _shaded((0.78, 0.72, 0.6), shade)
    return _mix(colour, (0.5, 0.47, 0.42), _grout(fu, fv, 0.012, 0.02, fp / 0.7, fp / 0.4))


def _glass(u, v, seed, fp):
    cell, fu, fv = _cells(u, v, 1.5, 2.5, seed)
    sky = _mix(_rgb((0.75, 0.85, 0.92), u.size), (0.45, 0.6, 0.75), np.clip(v / 6.0, 0, 1))
    sky *= (0.96 + 0.08 * (cell - 0.5))[:, None]
    return _mix(sky, (0.2, 0.2, 0.22), _grout(fu, fv, 0.02, 0.012, fp / 1.5, fp / 2.5))


def _curtains(u, v, seed, fp):
    base = [(0.55, 0.1, 0.12), (0.2, 0.22, 0.4), (0.65, 0.5, 0.2), (0.4, 0.4, 0.42)][seed % 4]
    folds = np.sin(2 * np.pi * u / 0.16 + 1.5 * _value_noise(u, v, 0.7, seed))
    return _shaded(base, 0.78 + 0.28 * folds * _detail(fp, 0.08))


def _acoustic_panels(u, v, seed, fp):
    cell, fu, fv = _cells(u, v, 0.6, 1.2, seed)
    palette = np.array([(0.35, 0.36, 0.38), (0.22, 0.24, 0.3), (0.3, 0.4, 0.5), (0.5, 0.48, 0.44)], dtype=np.float32)
    colour = _mix(palette[(cell * 4).astype(np.int64)], palette.mean(0), 1.0 - _detail(fp, 0.6))
    colour = colour * (1.0 + 0.3 * _grain(u, v, 0.004, seed, fp))[:, None]
    return _mix(colour, (0.08, 0.08, 0.08), _grout(fu, fv, 0.03, 0.015, fp / 0.6, fp / 1.2))


def _acoustic_tiles(u, v, seed, fp):
    cell, fu, fv = _cells(u, v, 0.6, 0.6, seed)
    colour = _shaded((0.9, 0.9, 0.87), 0.95 + 0.5 * _grain(u, v, 0.012, seed, fp))
    return _mix(colour, (0.7, 0.7, 0.72), _grout(fu, fv, 0.025, 0.025, fp / 0.6, fp / 0.6))


def _paving(u, v, seed, fp):
    cell, fu, fv = _cells(u, v, 0.5, 0.5, seed)
    shade = 0.85 + 0.2 * (cell - 0.5) * _detail(fp, 0.5) + 0.1 * (_value_noise(u, v, 2.0, seed) - 0.5)
    colour = _shaded((0.6, 0.57, 0.52), shade)
    return _mix(colour, (0.38, 0.36, 0.33), _grout(fu, fv, 0.02, 0.02, fp / 0.5, fp / 0.5))


_TEXTURES = {
    "carpet": _carpet, "thin_carpet": _thin_carpet, "wood_floor": _wood_floor, "linoleum": _linoleum,
    "marble": _marble, "seating": _seating, "tile": _tile, "concrete": _concrete, "plaster": _plaster,
    "brick": _brick, "stone": _stone, "wood_panel": _wood_panel, "glass": _glass, "curtains": _curtains,
    "acoustic_panels": _acoustic_panels, "acoustic_tiles": _acoustic_tiles, "paving": _paving,
}


def _door(u, v, rect):
    u0, v0, u1, v1 = rect
    du, dv = (u - u0) / (u1 - u0), (v - v0) / (v1 - v0)
    frame = ((du < 0.06) | (du > 0.94) | (dv > 0.97)).astype(np.float32)
    panel = ((np.abs(du - 0.5) < 0.32) & ((np.abs(dv - 0.3) < 0.18) | (np.abs(dv - 0.72) < 0.18))).astype(np.float32)
    handle = ((np.abs(du - 0.85) < 0.03) & (np.abs(v - v0 - 1.0) < 0.03)).astype(np.float32)
    colour = _mix(_rgb((0.5, 0.33, 0.2), u.size), (0.42, 0.27, 0.16), panel)
    colour = _mix(colour, (0.85, 0.85, 0.82), frame)
    return _mix(colour, (0.8, 0.75, 0.4), handle)


def _window(u, v, rect):
    u0, v0, u1, v1 = rect
    du, dv = (u - u0) / (u1 - u0), (v - v0) / (v1 - v0)
    sky = _mix(_rgb((0.82, 0.9, 0.97), u.size), (0.5, 0.68, 0.88), dv)
    bars = (np.abs(du - 0.5) * (u1 - u0) < 0.03) | (np.abs(dv - 0.6) * (v1 - v0) < 0.03)
    edge = (du * (u1 - u0) < 0.06) | ((1 - du) * (u1 - u0) < 0.06) | (dv * (v1 - v0) < 0.06) | ((1 - dv) * (v1 - v0) < 0.06)
    return _mix(sky, (0.92, 0.92, 0.9), (bars | edge).astype(np.float32))


# --- geometry ------------------------------------------------------------------------------------


def camera_rays(scene: Scene, config: RenderConfig) -> np.ndarray:
    """Ray directions, shape ``(size, size, 3)``, scaled so that their forward component is 1
    (so a ray parameter t is the hit point's z-depth in metres)."""
    n = config.size
    focal = 0.5 * n / np.tan(np.deg2rad(config.fov_deg) / 2.0)
    cy, sy, cp, sp = np.cos(scene.yaw), np.sin(scene.yaw), np.cos(scene.pitch), np.sin(scene.pitch)
    forward = np.array([cp * cy, cp * sy, sp])
    right = np.array([sy, -cy, 0.0])
    up = np.cross(right, forward)
    coords = (np.arange(n) + 0.5 - n / 2) / focal
    x, y = np.meshgrid(coords.astype(np.float32), -coords.astype(np.float32))
    basis = np.stack([forward, right, up]).astype(np.float32)
    return basis[0] + x[..., None] * basis[1] + y[..., None] * basis[2]


def _room_hits(origin, d, dims):
    """Nearest room plane per ray: ray parameter t ``(P,)`` and surface index ``(P,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_axes = np.where(d > 0, (np.asarray(dims, dtype=np.float32) - origin) / d, np.where(d < 0, -origin / d, np.inf))
    axis = np.argmin(t_axes, axis=1)
    t = np.take_along_axis(t_axes, axis[:, None], axis=1)[:, 0]
    positive = np.take_along_axis(d, axis[:, None], axis=1)[:, 0] > 0
    # axis 0 -> walls x0/x1 (2, 3), axis 1 -> walls y0/y1 (4, 5), axis 2 -> floor/ceiling (0, 1).
    surface = np.choose(axis, [2, 4, 0]) + positive
    return t.astype(np.float32), surface.astype(np.int16)


def _ground_hits(origin, d):
    with np.errstate(divide="ignore"):
        t = np.where(d[:, 2] < 0, -origin[2] / d[:, 2], np.inf)
    return t.astype(np.float32), np.where(np.isfinite(t), 0, -1).astype(np.int16)


def _screen_rects(boxes, origin, rays2d):
    """Pixel rectangles (rows, cols) that can contain each box: the whole image for a box that
    reaches behind the camera, None for one entirely behind it."""
    n = rays2d.shape[0]
    if not boxes:
        return []
    lo = np.array([b.lo for b in boxes], dtype=np.float64)
    hi = np.array([b.hi for b in boxes], dtype=np.float64)
    pick = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=bool)
    corners = np.where(pick[None], hi[:, None, :], lo[:, None, :]) - origin  # (B, 8, 3)
    centre = rays2d[n // 2, n // 2].astype(np.float64)
    right = rays2d[n // 2, n // 2 + 1] - rays2d[n // 2, n // 2]
    down = rays2d[n // 2 + 1, n // 2] - rays2d[n // 2, n // 2]
    # Forward component of `centre` is 1 (see camera_rays): depth is the projection on it.
    depth = corners @ centre / (centre @ centre)
    safe = np.where(depth > 0.05, depth, 1.0)
    proj = corners / safe[..., None] - centre
    cols = proj @ right / (right @ right) + n / 2 - 0.5
    rows = proj @ down / (down @ down) + n / 2 - 0.5
    rects = []
    for b in range(len(boxes)):
        if np.all(depth[b] <= 0):
            rects.append(None)
        elif np.any(depth[b] <= 0.05):
            rects.append((slice(0, n), slice(0, n)))
        else:
            r0, r1 = (int(np.clip(v, 0, n)) for v in (np.floor(rows[b].min()) - 1, np.ceil(rows[b].max()) + 2))
            c0, c1 = (int(np.clip(v, 0, n)) for v in (np.floor(cols[b].min()) - 1, np.ceil(cols[b].max()) + 2))
            rects.append((slice(r0, r1), slice(c0, c1)) if r1 > r0 and c1 > c0 else None)
    return rects


def _box_hits(scene, origin, rays2d, t2d, sid2d, axis2d):
    """Intersect the boxes (slab method) inside their screen rectangles; update t, id, face axis."""
    for index, (box, rect) in enumerate(zip(scene.boxes, _screen_rects(scene.boxes, origin, rays2d))):
        if rect is None:
            continue
        d = rays2d[rect]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.where(np.abs(d) < 1e-9, np.float32(1e-9), d)
            t1 = (np.asarray(box.lo, dtype=np.float32) - origin) * inv
            t2 = (np.asarray(box.hi, dtype=np.float32) - origin) * inv
        t_min = np.minimum(t1, t2)
        t_near = t_min.max(axis=-1)
        t_far = np.maximum(t1, t2).min(axis=-1)
        hit = (t_near <= t_far) & (t_near > 1e-3) & (t_near < t2d[rect])
        t2d[rect] = np.where(hit, t_near, t2d[rect])
        sid2d[rect] = np.where(hit, 100 + index, sid2d[rect])
        axis2d[rect] = np.where(hit, t_min.argmax(axis=-1), axis2d[rect])


# --- shading -------------------------------------------------------------------------------------
# Every surface is axis-aligned, so a normal is an axis (0, 1, 2 = x, y, z) and a sign.

_NORMAL_AXIS = (2, 2, 0, 0, 1, 1)
_NORMAL_SIGN = (1.0, -1.0, 1.0, -1.0, 1.0, -1.0)
# (u, v) coordinates of each room surface: floor/ceiling (x, y); walls x0/x1 (y, z); walls y0/y1 (x, z).
_UV_AXES = ((0, 1), (0, 1), (1, 2), (1, 2), (0, 2), (0, 2))


def _edge_darkening(p, surface, dims):
    """Ambient-occlusion-like darkening near the room's edges: 1 far away, 0.55 in a corner line."""
    axes = [a for a in range(3) if a != _NORMAL_AXIS[surface]]
    dist = np.minimum.reduce([np.minimum(p[:, a], dims[a] - p[:, a]) for a in axes])
    return 1.0 - 0.45 * np.exp(-np.maximum(dist, 0.0) / 0.3)


def _lambert(p, axis, sign, light, reach):
    """Diffuse light from a point ``light`` for normals along ``axis`` with ``sign`` (per pixel or scalar)."""
    to_light = light - p
    dist = np.sqrt(np.einsum("ij,ij->i", to_light, to_light)) + 1e-6
    along = to_light[:, axis] if np.ndim(axis) == 0 else to_light[np.arange(p.shape[0]), axis]
    cos = np.clip(sign * along / dist, 0.0, 1.0)
    return 0.5 + 0.55 * cos / (1.0 + (dist / reach) ** 2)


def _sky(d, d_norm):
    elevation = np.clip(d[:, 2] / d_norm, 0.0, 1.0)
    return _mix(_rgb((0.86, 0.9, 0.94), d.shape[0]), (0.33, 0.52, 0.85), np.clip(elevation / 0.6, 0, 1) ** 0.7)


def _paint_patches(scene, surface, u, v, tex):
    for patch in scene.patches:
        if patch.surface != surface:
            continue
        u0, v0, u1, v1 = patch.rect
        inside = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
        if inside.any():
            paint = _door if patch.kind == "door" else _window
            tex[inside] = paint(u[inside], v[inside], patch.rect)


def _shade_surfaces(scene, colour, points, d, d_norm, footprint, sid):
    """Texture and shade the room's planes (or the ground) in place.

    Textures are filtered by each pixel's footprint (``footprint``, metres per pixel, widened on
    oblique planes) and looked up at a point jittered within it: what remains of aliasing
    turns into faint noise instead of moiré.
    """
    dims = scene.dims
    light = np.array([dims[0] / 2, dims[1] / 2, dims[2] - 0.05], dtype=np.float32)
    reach = 0.6 * max(dims[0], dims[1], 2 * dims[2])
    for surface in range(6 if not scene.outdoor else 1):
        idx = np.flatnonzero(sid == surface)
        if idx.size == 0:
            continue
        p = points[idx]
        axis, (au, av) = _NORMAL_AXIS[surface], _UV_AXES[surface]
        # Footprint grows as 1/cos(incidence) along the view on oblique planes; the geometric
        # mean of the two axes' footprints is used for both.
        cos = np.abs(d[idx, axis]) / d_norm[idx]
        fp = footprint[idx] / np.sqrt(np.maximum(cos, 0.02))
        u, v = _jitter(p[:, au], p[:, av], 0.5 * fp, idx)
        name = scene.materials[SURFACES[surface]]
        tex = _TEXTURES[name](u, v, _material_seed(scene, name), fp)
        tex += np.asarray(scene.tint.get(name, (0, 0, 0)), dtype=np.float32)
        _paint_patches(scene, surface, u, v, tex)
        if not scene.outdoor:
            tex *= (_lambert(p, axis, _NORMAL_SIGN[surface], light, reach) * _edge_darkening(p, surface, dims))[:, None]
        colour[idx] = tex


def _jitter(u, v, footprint, pixel_index):
    """(u, v) moved by up to half a pixel footprint, by a fixed per-pixel hash (stochastic sampling)."""
    ju = _hash(pixel_index, np.zeros_like(pixel_index), 11) - 0.5
    jv = _hash(pixel_index, np.ones_like(pixel_index), 11) - 0.5
    return u + ju * footprint, v + jv * footprint


def _material_seed(scene: Scene, name: str) -> int:
    """Texture variant of ``name`` in this scene (colour choice, tile offsets, noise phase)."""
    return (scene.texture_seed + zlib.crc32(name.encode())) % 9973


def _shade_boxes(scene, colour, points, sid, axis):
    """Colour and shade every pixel that shows a box, all boxes at once."""
    pixels = np.flatnonzero(sid >= 100)
    if pixels.size == 0:
        return
    which = sid[pixels].astype(np.int64) - 100
    p, ax = points[pixels], axis[pixels]
    rows = np.arange(pixels.size)
    lo = np.array([b.lo for b in scene.boxes], dtype=np.float32)[which, ax]
    hi = np.array([b.hi for b in scene.boxes], dtype=np.float32)[which, ax]
    sign = np.sign(p[rows, ax] - 0.5 * (lo + hi))
    tex = np.array([b.rgb for b in scene.boxes], dtype=np.float32)[which]
    kinds = np.array([b.kind for b in scene.boxes])[which]
    building, foliage = kinds == "building", kinds == "foliage"
    if building.any():
        tex[building] = _facade(p[building], ax[building], tex[building])
    if foliage.any():
        q = p[foliage]
        tex[foliage] *= (0.6 + 0.6 * _value_noise(q[:, 0] + q[:, 1], q[:, 2], 0.35, 5))[:, None]
    dims = scene.dims
    if scene.outdoor:
        sun = np.array([0.3, -0.4, 0.87], dtype=np.float32)
        shade = 0.55 + 0.45 * np.clip(sign * sun[ax], 0.0, 1.0)
    else:
        light = np.array([dims[0] / 2, dims[1] / 2, dims[2] - 0.05], dtype=np.float32)
        shade = _lambert(p, ax, sign, light, 0.6 * max(dims))
    colour[pixels] = tex * shade[:, None]


def _facade(p, ax, tex):
    u = np.where(ax == 0, p[:, 1], p[:, 0])
    fu, fz = u / 3.0 - np.floor(u / 3.0), p[:, 2] / 3.0 - np.floor(p[:, 2] / 3.0)
    window = (np.abs(fu - 0.5) < 0.2) & (np.abs(fz - 0.5) < 0.25) & (p[:, 2] > 1.0) & (ax != 2)
    return _mix(tex, (0.25, 0.3, 0.38), window.astype(np.float32))


def _hits(scene: Scene, config: RenderConfig):
    """What each pixel's ray meets first: flat ray directions ``(size**2, 3)``, then per pixel
    ``(size, size)`` the ray parameter t (z-depth, m), the surface id (see :func:`surface_ids`)
    and the hit face's normal axis."""
    rays = camera_rays(scene, config)
    n = config.size
    origin = np.asarray(scene.camera, dtype=np.float32)
    flat = rays.reshape(-1, 3)
    t, sid = _ground_hits(origin, flat) if scene.outdoor else _room_hits(origin, flat, scene.dims)
    t2d, sid2d = t.reshape(n, n), sid.reshape(n, n)
    axis2d = np.zeros((n, n), dtype=np.int64)
    _box_hits(scene, origin, rays, t2d, sid2d, axis2d)
    return flat, t2d, sid2d, axis2d


def surface_ids(scene: Scene, config: RenderConfig = RenderConfig()) -> np.ndarray:
    """Which surface each pixel of :func:`render`'s image shows, ``(size, size)`` int16: the index
    into :data:`~i2r.data.synthetic.scene.SURFACES` for the room's planes (0, the ground,
    outdoors), ``100 + i`` for ``scene.boxes[i]`` (furniture, people, trees), -1 for the sky.
    Doors and windows count as the wall they are on."""
    return _hits(scene, config)[2]


def render(scene: Scene, config: RenderConfig = RenderConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Render ``scene`` from its camera.

    Returns the image, uint8 ``(size, size, 3)``, and the z-depth in metres, float32
    ``(size, size)`` (``inf`` where a ray meets the sky).
    """
    n = config.size
    origin = np.asarray(scene.camera, dtype=np.float32)
    flat, t2d, sid2d, axis2d = _hits(scene, config)
    t, sid, axis = t2d.ravel(), sid2d.ravel(), axis2d.ravel()
    finite = np.isfinite(t)
    points = origin + np.where(finite, t, 0.0)[:, None] * flat
    colour = np.zeros((n * n, 3), dtype=np.float32)
    d_norm = np.sqrt(np.einsum("ij,ij->i", flat, flat))
    if scene.outdoor:
        colour[~finite] = _sky(flat[~finite], d_norm[~finite])
    pixel_angle = 2.0 * np.tan(np.deg2rad(config.fov_deg) / 2.0) / n
    footprint = np.where(finite, t, 0.0) * d_norm * pixel_angle
    _shade_surfaces(scene, colour, points, flat, d_norm, footprint, sid)
    _shade_boxes(scene, colour, points, sid, axis)
    colour = _haze(scene, colour * np.asarray(scene.exposure, dtype=np.float32), t, finite)
    image = (np.clip(colour, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(n, n, 3)
    return image, t2d.astype(np.float32)


def _haze(scene, colour, t, finite):
    """Aerial perspective: far surfaces fade towards the horizon (outdoors) or a dim haze."""
    scale, tone = (150.0, (0.86, 0.9, 0.94)) if scene.outdoor else (220.0, (0.55, 0.53, 0.5))
    fade = np.where(finite, 1.0 - np.exp(-np.where(finite, t, 0.0) / scale), 0.0)
    return _mix(colour, tone, fade)


def depth_to_png_array(depth_m: np.ndarray) -> np.ndarray:
    """Z-depth in metres -> uint16 millimetres, saturating at 65535 (:data:`DEPTH_MAX_M`, the sky)."""
    mm = np.where(np.isfinite(depth_m), depth_m * 1000.0, np.inf)
    return np.clip(np.rint(np.minimum(mm, 65535.0)), 0, 65535).astype(np.uint16)
