"""Image and depth-map decoding with the model's preprocessing: centre-crop to square, resize.

Resizing uses Pillow's bicubic filter, which widens its kernel when shrinking (antialiased).
Images come out as float32 ``(3, S, S)`` in [0, 1]; depth maps as ``(1, S, S)`` in [0, 1]
(8-bit PNG: value / 255, 16-bit PNG: value / 65535), resized bilinearly. A depth map whose unit
is known in metres (a manifest's ``depth_scale_m``) becomes normalised log-depth instead
(:func:`metric_depth_to_unit`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from i2r.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_IMAGE_SIDE = 16  # pixels; anything smaller is not a photo of a space


def open_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """Decode an image file fully (so truncated files fail here, not later).

    ``draft_size`` lets JPEG decoding scale down by 2/4/8 on the fly while keeping at least that
    many pixels on the shorter side: much faster for big photos that are resized anyway.
    Raises :class:`UserError` for a missing, undecodable or tiny image.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    try:
        image = Image.open(path)
        width, height = image.size
        if min(width, height) < MIN_IMAGE_SIDE:
            raise UserError(f"{path}: image is {width}x{height} px, smaller than {MIN_IMAGE_SIDE} px")
        if draft_size and image.format == "JPEG":
            short = min(width, height)
            image.draft("RGB", (draft_size * width // short, draft_size * height // short))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{path}: not a readable image ({exc})") from None
    return image


def center_crop_resize(image: Image.Image, size: int, resample=Image.Resampling.BICUBIC) -> Image.Image:
    """The largest centred square of ``image``, resized to ``size`` x ``size``."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.resize((size, size), resample=resample, box=(left, top, left + side, top + side))


def load_image(path: str | os.PathLike, size: int):
    """An image file -> float32 torch tensor ``(3, size, size)`` in [0, 1] (RGB, centre-cropped)."""
    import torch

    image = center_crop_resize(open_image(path, draft_size=size).convert("RGB"), size)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def depth_array(image: Image.Image, path: Path | str = "") -> np.ndarray:
    """A greyscale depth PNG -> float32 ``(H, W)`` in [0, 1] (value / 255 or value / 65535)."""
    array = np.asarray(image)
    if array.ndim != 2:
        raise UserError(f"{path}: a depth map must be single-channel, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype in (np.uint16, np.int32, np.dtype(">u2"), np.dtype("<u2")):
        return np.clip(array.astype(np.float32) / 65535.0, 0.0, 1.0)
    raise UserError(f"{path}: depth maps are 8- or 16-bit PNGs, got {array.dtype}")


LOG_DEPTH_NEAR_M = 0.5
"""Metric depth maps are mapped to [0, 1] as log-depth from this distance (0) to the map's
maximum (1): nearer than half a metre is rare in a photo of a space, and on a log scale a booth
(2 m: 0.28), a hall (20 m: 0.76) and the sky (65.5 m: 1) are all far apart."""


def metric_depth_to_unit(depth_m: np.ndarray, max_m: float, near_m: float = LOG_DEPTH_NEAR_M) -> np.ndarray:
    """Depth in metres -> normalised log-depth ``log(d / near) / log(max / near)`` clipped to [0, 1].

    Plain ``d / max`` puts every room of a 65.5 m range (the synthetic renderer's 16-bit
    millimetres) below 0.1, a weak target for an L1 depth loss and an unreadable figure; equal
    ratios of distance get equal steps here. Same shape as ``depth_m``, float32.
    """
    if not (0 < near_m < max_m):
        raise ValueError(f"need 0 < near_m < max_m, got {near_m}, {max_m}")
    scaled = np.log(np.maximum(depth_m, near_m) / near_m) / np.log(max_m / near_m)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def load_depth(path: str | os.PathLike, size: int, scale_m: float | None = None, max_m: float | None = None):
    """A depth PNG -> float32 torch tensor ``(1, size, size)`` in [0, 1], cropped like its image.

    Without ``scale_m`` the PNG is read as value / 255 or value / 65535. With ``scale_m`` (metres
    per PNG unit) and ``max_m`` (the depth of the largest value, "this far or further") it is
    converted to metres and mapped by :func:`metric_depth_to_unit`.
    """
    import torch

    image = open_image(path)
    if scale_m is None:
        values = depth_array(image, path)
    else:
        values = metric_depth_to_unit(np.asarray(image, dtype=np.float64) * scale_m, max_m)
    resized = center_crop_resize(Image.fromarray(values), size, Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(resized, dtype=np.float32)).unsqueeze(0)
