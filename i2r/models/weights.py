"""Loaders for the published pretrained weights (read from local paths; nothing is downloaded).

- Places365 ResNet-50 (Zhou et al., "Places: A 10 Million Image Database for Scene Recognition",
  TPAMI 2017): ``resnet50_places365.pth.tar`` = ``{"state_dict": {"module.conv1.weight": ...}}``
  (saved from ``nn.DataParallel``, hence the ``module.`` prefix), torchvision names, 365 classes.
- Monodepth2 (Godard et al., ICCV 2019): a folder with ``encoder.pth`` (the ResNet-18 encoder's
  ``encoder.*`` tensors plus the training input size ``height``/``width`` and ``use_stereo``) and
  ``depth.pth`` (the decoder's ``decoder.*`` tensors).

Every file is read with ``torch.load(weights_only=True)``; loading is strict: missing, unexpected
and mis-shaped keys are named in a :class:`UserError`.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from i2r.errors import UserError
from i2r.models.monodepth import Monodepth2
from i2r.models.resnet import ResNet, resnet50

MONODEPTH_FILES = ("encoder.pth", "depth.pth")
_LISTED_KEYS = 5  # how many offending key names an error message spells out


def read_weights(path: str | os.PathLike) -> dict:
    """``torch.load(path, weights_only=True)`` on the CPU, with a :class:`UserError` for any failure."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        # the published files predate torch's zip format; on a file that is neither, torch's legacy
        # reader warns about pickle protocols and fails with a bare KeyError
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as exc:
        detail = "not written by torch.save" if isinstance(exc, KeyError) else (str(exc).splitlines() or [""])[0]
        raise UserError(f"{path}: not a readable PyTorch weights file ({detail})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a dict of tensors, found {type(data).__name__}")
    return data


def load_strict(module: nn.Module, state: dict, source: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error that names what differs."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    mis_shaped = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in state.items() if k in expected and (not isinstance(v, Tensor) or v.shape != expected[k].shape)]
    if mis_shaped:
        problems.append(f"wrong shapes {_listing(mis_shaped)}")
    if problems:
        raise UserError(f"{source}: does not fit the model: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def load_places365(path: str | os.PathLike, encoder: ResNet | None = None) -> ResNet:
    """Load the published Places365 ResNet into ``encoder`` (default: a new 3-channel ResNet-50).

    For a 4-channel encoder (RGB + depth) the file's RGB filters of ``conv1`` are copied into
    channels 0-2 and the encoder's own freshly initialised 4th channel is kept. Returns the encoder.
    """
    data = read_weights(path)
    if "state_dict" not in data or not isinstance(data["state_dict"], dict):
        raise UserError(f"{path}: no 'state_dict' entry (expected the resnet50_places365.pth.tar format)")
    state = {_strip_prefix(k, "module."): v for k, v in data["state_dict"].items()}
    encoder = encoder if encoder is not None else resnet50(num_classes=365)
    state = _widen_conv1(state, encoder)
    load_strict(encoder, state, str(path))
    return encoder


def load_monodepth(folder: str | os.PathLike, net: Monodepth2 | None = None) -> tuple[Monodepth2, tuple[int, int]]:
    """Load Monodepth2's ``encoder.pth`` and ``depth.pth`` from ``folder`` into ``net`` (default: new).

    Returns ``(net, (height, width))``, the input size the weights were trained at (e.g. 192x640),
    taken from the entries of ``encoder.pth`` that are not tensors.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (expected Monodepth2's {' and '.join(MONODEPTH_FILES)})")
    net = net if net is not None else Monodepth2()
    encoder_state = read_weights(folder / "encoder.pth")
    size = _pop_training_size(encoder_state, folder / "encoder.pth")
    load_strict(net.encoder, encoder_state, str(folder / "encoder.pth"))
    load_strict(net.decoder, read_weights(folder / "depth.pth"), str(folder / "depth.pth"))
    return net, size


def _pop_training_size(state: dict, source: Path) -> tuple[int, int]:
    try:
        height, width = int(state.pop("height")), int(state.pop("width"))
    except KeyError as exc:
        raise UserError(f"{source}: no {exc} entry (Monodepth2's encoder.pth stores its input size)") from None
    state.pop("use_stereo", None)
    return height, width


def _widen_conv1(state: dict, encoder: ResNet) -> dict:
    """Give a 3-channel ``conv1.weight`` the encoder's extra input channels (kept as initialised)."""
    weight = state.get("conv1.weight")
    target = encoder.conv1.weight
    if not isinstance(weight, Tensor) or weight.ndim != 4 or weight.shape[1] != 3 or target.shape[1] <= 3:
        return state
    if weight.shape[0] != target.shape[0] or weight.shape[2:] != target.shape[2:]:
        return state  # let load_strict report the mismatch
    widened = target.detach().clone()
    widened[:, :3] = weight
    return {**state, "conv1.weight": widened}


def _strip_prefix(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED_KEYS])
    return shown + (f" and {len(items) - _LISTED_KEYS} more" if len(items) > _LISTED_KEYS else "")
