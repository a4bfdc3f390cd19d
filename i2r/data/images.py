"""Image and depth-map decoding with the model's preprocessing: centre-crop to square, resize.

Resizing uses Pillow's bicubic filter, which widens its kernel when shrinking (antialiased).
Images come out as float32 ``(3, S, S)`` in [0, 1]; depth maps as ``(1, S, S)`` in [0, 1]
(8-bit PNG: value / 255, 16-bit PNG: value / 65535), resized bilinearly.
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


def load_depth(path: str | os.PathLike, size: int):
    """A depth PNG -> float32 torch tensor ``(1, size, size)`` in [0, 1], cropped like its image."""
    import torch

    values = depth_array(open_image(path), path)
    resized = center_crop_resize(Image.fromarray(values), size, Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(resized, dtype=np.float32)).unsqueeze(0)
