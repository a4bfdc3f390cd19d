"""Random scenes: shoebox rooms from a booth to a cathedral, and outdoor places.

A room is the box [0, L] x [0, W] x [0, H] in metres (x along the long axis, z up). It has six
surfaces, each with a material of :mod:`materials`, doors and windows as patches on the walls,
furniture and people as boxes, a sound source, a receiver and a camera. Its ground-truth
reverberation time per octave band is Eyring's (Kuttruff, *Room Acoustics*, 6th ed., Eq. 5.41):

    T60 = 24 ln(10) V / (c (-S ln(1 - mean alpha) + 4 m V))

with the area-weighted mean absorption of all surfaces and the ISO 9613-1 air attenuation m.
Outdoor scenes have only a ground plane; their short diffuse tail (scattering by trees and
facades) is drawn directly as a T60 per band.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from i2r.data.synthetic.materials import SPEED_OF_SOUND, absorption, air_energy_attenuation

CATEGORIES = ("small", "medium", "large", "outdoor")
SURFACES = ("floor", "ceiling", "wall_x0", "wall_x1", "wall_y0", "wall_y1")
"""Room surfaces in this order: z=0, z=H, x=0, x=L, y=0, y=W."""
OUT_OF_VIEW = "wall_x0"
"""The surface the camera never sees: it stands near x = 0 looking along +x (yaw within +-18
degrees, see ``_camera``), so the far wall, both side walls, floor and ceiling are in view."""

T60_RANGE_S = (0.15, 6.0)
"""Rooms are redrawn until every band's T60 lies in this range: below it an octave filter's own
ringing dominates a T30 measurement, above it the 5.94 s IR ends before a 35 dB decay."""

# (length, width, height) ranges in metres per room category; the length is drawn log-uniform.
_SIZES = {
    "small": ((2.0, 5.0), (2.0, 4.0), (2.2, 3.0)),
    "medium": ((5.0, 15.0), (4.0, 12.0), (2.6, 5.0)),
    "large": ((15.0, 60.0), (10.0, 30.0), (5.0, 20.0)),
}
# Candidate materials with relative weights, per room category and surface kind.
_PALETTES = {
    "small": {
        "floor": {"carpet": 3, "thin_carpet": 2, "wood_floor": 3, "tile": 2, "linoleum": 2, "concrete": 1},
        "wall": {"plaster": 5, "brick": 1, "wood_panel": 2, "tile": 2, "curtains": 1, "acoustic_panels": 1, "concrete": 1},
        "ceiling": {"plaster": 5, "acoustic_tiles": 2, "wood_panel": 1, "concrete": 1},
    },
    "medium": {
        "floor": {"carpet": 2, "thin_carpet": 2, "wood_floor": 3, "tile": 2, "linoleum": 2, "concrete": 1},
        "wall": {"plaster": 5, "brick": 2, "wood_panel": 2, "tile": 1, "curtains": 1, "acoustic_panels": 1, "concrete": 1, "glass": 1},
        "ceiling": {"plaster": 4, "acoustic_tiles": 3, "wood_panel": 1, "concrete": 1},
    },
    "large": {
        "floor": {"marble": 2, "wood_floor": 2, "concrete": 1, "seating": 3, "tile": 1, "carpet": 1},
        "wall": {"stone": 3, "brick": 2, "concrete": 1, "plaster": 2, "wood_panel": 2, "curtains": 1, "glass": 1},
        "ceiling": {"plaster": 2, "wood_panel": 2, "concrete": 1, "stone": 2, "acoustic_tiles": 1},
    },
}
_CATEGORY_WEIGHTS = (0.30, 0.30, 0.27, 0.13)
FEATURE_WALL_PROBABILITY = 0.3
"""Each wall has the room's main wall finish, or with this probability a material of its own."""
OUTDOOR_T500_RANGE_S = (0.15, 0.5)
"""Outdoor scenes: T60 at 500 Hz drawn log-uniform in this range (no enclosure to compute it from)."""
OUTDOOR_BAND_RATIOS = (1.15, 1.08, 1.0, 0.93, 0.85, 0.75)
"""Outdoor T60 per octave band relative to 500 Hz: shorter at high frequencies."""


@dataclass(frozen=True)
class Patch:
    """A door or window on a wall: ``surface`` index, rectangle (u0, v0, u1, v1) in its (u, v) metres."""

    kind: str
    material: str
    surface: int
    rect: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        u0, v0, u1, v1 = self.rect
        return (u1 - u0) * (v1 - v0)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box (furniture, person, column, tree, building): corners in metres, RGB in [0, 1]."""

    kind: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    rgb: tuple[float, float, float]


@dataclass
class Scene:
    """Everything the renderer and the IR synthesiser need, and the manifest records.

    Lengths in metres, positions ``(x, y, z)`` in metres, ``t60_s`` per band of
    :data:`materials.BANDS_HZ` in seconds. For outdoor scenes ``dims`` bounds the visible area
    and ``materials`` holds only the ground. ``exposure`` is the camera's gain per RGB channel
    (brightness and white balance).
    """

    category: str
    dims: tuple[float, float, float]
    materials: dict[str, str]
    source: tuple[float, float, float]
    receiver: tuple[float, float, float]
    camera: tuple[float, float, float]
    yaw: float
    pitch: float
    t60_s: tuple[float, ...]
    patches: list[Patch] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    tint: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    texture_seed: int = 0
    exposure: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def outdoor(self) -> bool:
        return self.category == "outdoor"

    @property
    def volume(self) -> float:
        length, width, height = self.dims
        return length * width * height

    @property
    def surface_area(self) -> float:
        length, width, height = self.dims
        return 2.0 * (length * width + length * height + width * height)


def surface_areas(dims) -> np.ndarray:
    """Areas in m² of the six :data:`SURFACES` of a box ``dims = (L, W, H)``, shape ``(6,)``."""
    length, width, height = dims
    return np.array([length * width, length * width, width * height, width * height, length * height, length * height])


def surface_absorption(scene: Scene) -> np.ndarray:
    """Area-weighted absorption of each surface including its doors and windows, shape ``(6, 6)``.

    Row i is surface :data:`SURFACES` [i], columns are octave bands.
    """
    areas = surface_areas(scene.dims)
    absorbed = np.stack([absorption(scene.materials[s]) * a for s, a in zip(SURFACES, areas)])
    for patch in scene.patches:
        absorbed[patch.surface] += (absorption(patch.material) - absorption(scene.materials[SURFACES[patch.surface]])) * patch.area
    return absorbed / areas[:, None]


def eyring_t60(dims, alpha_surfaces: np.ndarray, air_m: np.ndarray | None = None) -> np.ndarray:
    """Eyring's reverberation time in s per band for a box ``dims`` (m) with surface absorption
    ``alpha_surfaces`` of shape ``(6, n_bands)`` and air attenuation ``air_m`` (1/m, ``(n_bands,)``).

    T60 = 24 ln(10) V / (c A) with A = -S ln(1 - mean alpha) + 4 m V (Kuttruff, Room Acoustics, 5.41).
    """
    areas = surface_areas(dims)
    volume = float(np.prod(dims))
    mean_alpha = (areas[:, None] * alpha_surfaces).sum(0) / areas.sum()
    air = air_energy_attenuation() if air_m is None else air_m
    absorption_area = -areas.sum() * np.log1p(-mean_alpha) + 4.0 * air * volume
    return 24.0 * np.log(10.0) * volume / (SPEED_OF_SOUND * absorption_area)


def equivalent_absorption_area(scene: Scene) -> np.ndarray:
    """Eyring's equivalent absorption area A in m² per band (the denominator of :func:`eyring_t60`)."""
    return 24.0 * np.log(10.0) * scene.volume / (SPEED_OF_SOUND * np.asarray(scene.t60_s))


def wall_palette(category: str) -> dict[str, float]:
    """Probability of each wall material in a room of ``category`` (small, medium, large)."""
    weights = _PALETTES[category]["wall"]
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _draw_dims(rng, category: str) -> tuple[float, float, float]:
    (l_lo, l_hi), (w_lo, w_hi), (h_lo, h_hi) = _SIZES[category]
    length = float(np.exp(rng.uniform(np.log(l_lo), np.log(l_hi))))
    width = float(np.clip(length * rng.uniform(0.45, 1.0), w_lo, min(w_hi, length)))
    height = float(rng.uniform(h_lo, min(h_hi, max(h_lo, 0.45 * length + 1.0))))
    return round(length, 2), round(width, 2), round(height, 2)


def _draw_materials(rng, category: str) -> dict[str, str]:
    palette = _PALETTES[category]
    main_wall = _pick(rng, palette["wall"])
    chosen = {"floor": _pick(rng, palette["floor"]), "ceiling": _pick(rng, palette["ceiling"])}
    for wall in SURFACES[2:]:
        # Most rooms have one wall finish; some have a feature wall (curtains, panels, glass).
        chosen[wall] = _pick(rng, palette["wall"]) if rng.random() < FEATURE_WALL_PROBABILITY else main_wall
    return chosen


def _position(rng, dims, z_range, margin: float = 1.0) -> tuple[float, float, float]:
    """A point at least ``margin`` (or a quarter of the room, if less) from every wall."""
    length, width, height = dims
    mx, my = min(margin, 0.25 * length), min(margin, 0.25 * width)
    z = float(np.clip(rng.uniform(*z_range), 0.5, height - 0.5))
    return (round(float(rng.uniform(mx, length - mx)), 3), round(float(rng.uniform(my, width - my)), 3), round(z, 3))


def _source_receiver(rng, dims):
    for _ in range(50):
        source = _position(rng, dims, (1.2, 1.8))
        receiver = _position(rng, dims, (1.0, 1.7))
        if np.linalg.norm(np.subtract(source, receiver)) >= 0.8:
            return source, receiver
    return source, (source[0], source[1], max(0.5, source[2] - 0.8))


def _exposure(rng) -> tuple[float, float, float]:
    """Camera gain per channel: brightness 0.85-1.1 and a warm or cool white balance."""
    gain, warmth = float(rng.uniform(0.85, 1.1)), float(rng.uniform(-0.06, 0.08))
    return (round(gain * (1 + warmth), 4), round(gain, 4), round(gain * (1 - warmth), 4))


def _tint(rng, materials: dict[str, str]) -> dict[str, tuple[float, float, float]]:
    """A small random colour shift per material, so that two plaster rooms are not identical."""
    return {name: tuple(float(v) for v in rng.uniform(-0.06, 0.06, 3)) for name in sorted(set(materials.values()))}


def _patches(rng, category: str, dims) -> list[Patch]:
    length, width, height = dims
    patches = []
    # A door on the side wall nearest to the camera or on the far wall: 2.0-2.1 m tall.
    door_wall = int(rng.choice([3, 4, 5]))
    span = width if door_wall == 3 else length
    door_w, door_h = float(rng.uniform(0.85, 1.0)), float(rng.uniform(2.0, 2.1))
    if category == "large":
        door_w, door_h = 2.0 * door_w, min(height - 0.5, float(rng.uniform(2.4, 3.5)))
    u0 = float(rng.uniform(0.3, max(0.35, span - door_w - 0.3)))
    patches.append(Patch("door", "door", door_wall, (u0, 0.0, u0 + door_w, door_h)))
    n_windows = int(rng.integers(0, 3 if category == "small" else 6))
    for _ in range(n_windows):
        wall = int(rng.choice([2, 3, 4, 5], p=[0.1, 0.2, 0.35, 0.35]))
        span = width if wall in (2, 3) else length
        if category == "large":
            w, sill = float(rng.uniform(1.5, 3.0)), float(rng.uniform(2.5, 4.0))
            h = float(min(height - sill - 0.5, rng.uniform(3.0, 8.0)))
        else:
            w, sill = float(rng.uniform(0.8, 1.6)), float(rng.uniform(0.8, 1.0))
            h = float(min(height - sill - 0.25, rng.uniform(1.0, 1.5)))
        if h < 0.5 or span < w + 0.6:
            continue
        u0 = float(rng.uniform(0.3, span - w - 0.3))
        overlaps = any(p.surface == wall and u0 < p.rect[2] + 0.2 and p.rect[0] < u0 + w + 0.2 for p in patches)
        if not overlaps:
            patches.append(Patch("window", "glass", wall, (u0, sill, u0 + w, sill + h)))
    return patches


def _furniture(rng, category: str, dims, camera) -> list[Box]:
    """Tables, chairs, people (1.6-1.9 m tall) and, in halls, columns: objects of known size.

    Everything stands at least 1.5 m in front of the camera (people 2 m), so that no object
    fills the view; a booth too short for that gets at most a chair.
    """
    length, width, height = dims
    boxes: list[Box] = []
    free = length - camera[0]

    def spot(margin, near):
        x_lo = camera[0] + near
        m = min(margin, 0.3 * width)
        return float(rng.uniform(x_lo, max(x_lo, length - margin))), float(rng.uniform(m, width - m))

    wood = tuple(float(v) for v in np.clip(np.array([0.45, 0.30, 0.18]) + rng.uniform(-0.08, 0.08, 3), 0, 1))
    fabric = tuple(float(v) for v in rng.uniform(0.1, 0.7, 3))
    if free < 2.5:
        if rng.random() < 0.5:
            x, y = spot(0.3, min(1.2, free - 0.4))
            boxes.extend(_chair(x, y, 1 if rng.random() < 0.5 else -1, fabric))
        return boxes
    for _ in range(int(rng.integers(0, 2 if category == "small" else 4))):
        x, y = spot(1.0, 1.8)
        boxes.append(Box("table_top", (x - 0.6, y - 0.4, 0.72), (x + 0.6, y + 0.4, 0.76), wood))
        boxes.append(Box("table_leg", (x - 0.05, y - 0.05, 0.0), (x + 0.05, y + 0.05, 0.72), wood))
        for side in (-1, 1):
            boxes.extend(_chair(x, y + side * 0.65, side, wood))
    for _ in range(int(rng.integers(0, 3))):
        x, y = spot(0.6, 1.5)
        boxes.extend(_chair(x, y, 1 if rng.random() < 0.5 else -1, fabric))
    if free > 3.0:
        for _ in range(int(rng.integers(1, 3 if category != "large" else 6))):
            boxes.extend(_person(rng, *spot(0.4, 2.0)))
    if category == "large" and width > 12:
        pitch = float(rng.uniform(6.0, 10.0))
        stone = (0.72, 0.68, 0.6)
        for x in np.arange(camera[0] + 4.0, length - 2.0, pitch):
            for y in (0.22 * width, 0.78 * width):
                boxes.append(Box("column", (x - 0.5, y - 0.5, 0.0), (x + 0.5, y + 0.5, height), stone))
    return boxes


def _person(rng, x, y) -> list[Box]:
    """A standing person 1.6-1.9 m tall: legs, torso, head."""
    tall = float(rng.uniform(1.6, 1.9))
    shirt = tuple(float(v) for v in rng.uniform(0.05, 0.6, 3))
    trousers = tuple(float(v) for v in rng.uniform(0.05, 0.3, 3))
    hip, shoulder = 0.47 * tall, tall - 0.25
    return [
        Box("person", (x - 0.15, y - 0.17, 0.0), (x + 0.1, y - 0.03, hip), trousers),
        Box("person", (x - 0.15, y + 0.03, 0.0), (x + 0.1, y + 0.17, hip), trousers),
        Box("person", (x - 0.13, y - 0.22, hip), (x + 0.13, y + 0.22, shoulder), shirt),
        Box("head", (x - 0.1, y - 0.09, shoulder + 0.02), (x + 0.1, y + 0.09, tall), (0.55, 0.4, 0.32)),
    ]


def _chair(x, y, facing, rgb) -> list[Box]:
    seat = Box("chair_seat", (x - 0.22, y - 0.22, 0.0), (x + 0.22, y + 0.22, 0.46), rgb)
    yb = y + facing * 0.2
    back = Box("chair_back", (x - 0.22, min(yb, yb + facing * 0.05), 0.46), (x + 0.22, max(yb, yb + facing * 0.05), 0.9), rgb)
    return [seat, back]


def _camera(rng, dims) -> tuple[tuple[float, float, float], float, float]:
    length, width, height = dims
    x = float(min(rng.uniform(0.4, 1.2), 0.2 * length))
    y = float(rng.uniform(0.35, 0.65) * width)
    z = float(min(1.6, height - 0.4))
    yaw = float(np.deg2rad(rng.uniform(-18.0, 18.0)))
    pitch = float(np.deg2rad(rng.uniform(0.0, 4.0) + (6.0 if height > 8 else 0.0)))
    return (round(x, 3), round(y, 3), round(z, 3)), yaw, pitch


def draw_room(rng: np.random.Generator, category: str) -> Scene:
    """A random room of ``category`` (small, medium or large) whose T60 lies in :data:`T60_RANGE_S`.

    Materials (and, after repeated failures, dimensions) are redrawn until every band's Eyring
    T60 is in range, so the result is still a deterministic function of ``rng``.
    """
    dims = _draw_dims(rng, category)
    for attempt in range(200):
        if attempt and attempt % 20 == 0:
            dims = _draw_dims(rng, category)
        chosen = _draw_materials(rng, category)
        camera, yaw, pitch = _camera(rng, dims)
        patches = _patches(rng, category, dims)
        scene = Scene(category, dims, chosen, (0, 0, 0), (0, 0, 0), camera, yaw, pitch, (), patches)
        t60 = eyring_t60(dims, surface_absorption(scene))
        if T60_RANGE_S[0] <= t60.min() and t60.max() <= T60_RANGE_S[1]:
            break
    else:  # never seen in 900 draws per category; a palette edit that made it possible must fail loudly
        raise RuntimeError(f"no {category} room with T60 in {T60_RANGE_S} s after 200 draws")
    scene.t60_s = tuple(round(float(v), 4) for v in t60)
    scene.source, scene.receiver = _source_receiver(rng, dims)
    scene.boxes = _furniture(rng, category, dims, camera)
    scene.tint = _tint(rng, chosen)
    scene.texture_seed = int(rng.integers(2**31))
    scene.exposure = _exposure(rng)
    return scene


def draw_outdoor(rng: np.random.Generator) -> Scene:
    """An outdoor scene: paved ground, sky, trees and buildings at a distance.

    Its diffuse tail (scattering from facades and trees) gets T60(500 Hz) of 0.15-0.5 s, shorter
    at high frequencies, drawn directly: there is no enclosure for Eyring's formula.
    """
    extent = float(rng.uniform(40.0, 120.0))
    dims = (round(extent, 2), round(extent, 2), 30.0)
    t500 = float(np.exp(rng.uniform(*np.log(OUTDOOR_T500_RANGE_S))))
    t60 = t500 * np.array(OUTDOOR_BAND_RATIOS)
    y0 = extent / 2
    source = (round(float(rng.uniform(4.0, 20.0)), 3), round(y0 + float(rng.uniform(-5, 5)), 3), round(float(rng.uniform(1.2, 1.8)), 3))
    receiver = (2.0, round(y0 + float(rng.uniform(-1, 1)), 3), round(float(rng.uniform(1.0, 1.7)), 3))
    camera = (1.0, round(y0, 3), 1.6)
    boxes = _outdoor_boxes(rng, extent)
    scene = Scene("outdoor", dims, {"floor": "paving"}, source, receiver, camera,
                  float(np.deg2rad(rng.uniform(-15, 15))), float(np.deg2rad(rng.uniform(0, 5))),
                  tuple(round(float(v), 4) for v in t60), [], boxes)
    scene.tint = _tint(rng, scene.materials)
    scene.texture_seed = int(rng.integers(2**31))
    scene.exposure = _exposure(rng)
    return scene


def _outdoor_boxes(rng, extent: float) -> list[Box]:
    boxes = []
    for _ in range(int(rng.integers(2, 6))):
        x = float(rng.uniform(0.5, 0.95) * extent)
        y = float(rng.uniform(0.0, 1.0) * extent)
        w, d, h = (float(v) for v in rng.uniform([8, 8, 6], [25, 20, 25]))
        rgb = tuple(float(v) for v in rng.uniform([0.5, 0.45, 0.4], [0.85, 0.8, 0.75]))
        boxes.append(Box("building", (x, y - w / 2, 0.0), (x + d, y + w / 2, h), rgb))
    for _ in range(int(rng.integers(2, 9))):
        x = float(rng.uniform(6.0, 0.6 * extent))
        y = extent / 2 + float(rng.choice([-1, 1]) * rng.uniform(3.0, 12.0))
        h = float(rng.uniform(4.0, 9.0))
        boxes.append(Box("trunk", (x - 0.15, y - 0.15, 0.0), (x + 0.15, y + 0.15, 0.45 * h), (0.3, 0.22, 0.15)))
        r = float(rng.uniform(1.2, 2.5))
        boxes.append(Box("foliage", (x - r, y - r, 0.4 * h), (x + r, y + r, h), (0.18, 0.38, 0.14)))
    return boxes


def draw_scene(rng: np.random.Generator) -> Scene:
    """A random scene of a random category (weights 30/30/27/13 % small/medium/large/outdoor)."""
    category = CATEGORIES[int(rng.choice(4, p=_CATEGORY_WEIGHTS))]
    return draw_outdoor(rng) if category == "outdoor" else draw_room(rng, category)
