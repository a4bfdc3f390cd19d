"""Training checkpoints: one self-describing file that restores a run exactly and loads safely.

A checkpoint is a plain dict written atomically with :func:`i2r.files.atomic_torch_save`::

    {"format": "i2r-checkpoint", "version": 1,
     "config": TrainConfig as a dict, "model_config": ModelConfig as a dict,
     "spec_norm": SpectrogramNorm.to_dict(), "model": state_dict,
     "optimizers": {name: state_dict}, "scaler": state_dict or None,
     "step": int, "epoch": int, "batch_in_epoch": int, "world_size": int,
     "rng": [per-rank {"torch", "numpy", "python", "cuda"}],
     "ema": partial state_dict (only with TrainConfig.ema_beta > 0)}

Everything in it is a tensor, number, string, list or dict, so :func:`torch.load` opens it with
``weights_only=True``: a checkpoint cannot run code when it is loaded, and a file that holds
pickled objects is refused with a :class:`UserError` rather than executed.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from i2r.errors import UserError
from i2r.files import atomic_torch_save

FORMAT = "i2r-checkpoint"
VERSION = 1


def save_checkpoint(state: Mapping, path: str | os.PathLike) -> None:
    """Stamp ``state`` with the format name and version and write it to ``path`` atomically."""
    atomic_torch_save({"format": FORMAT, "version": VERSION, **state}, path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read an i2r checkpoint with ``torch.load(weights_only=True)`` and check its format.

    Raises :class:`UserError` naming ``path`` when the file is missing, is not a PyTorch file,
    holds objects that safe loading refuses (pickled classes or code), is not an i2r checkpoint,
    or was written by another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a readable PyTorch checkpoint (not a torch.save zip archive)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path}: refused: the file holds objects that safe loading (weights_only=True) does not "
            f"allow, so it could run code; only checkpoints written by `i2r train` load ({_culprit(exc)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise UserError(f"{path}: not an i2r checkpoint (no 'format': {FORMAT!r} entry)")
    if checkpoint.get("version") != VERSION:
        raise UserError(
            f"{path}: checkpoint format version {checkpoint.get('version')!r}; this i2r reads version {VERSION}"
        )
    return checkpoint


def _culprit(exc: Exception) -> str:
    """The line of torch's weights_only message that names the refused object."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "Unsupported" in line or "GLOBAL" in line]
    return (named or lines or [type(exc).__name__])[0]


def check_same(saved: Mapping, current: Mapping, what: str, path, ignore=()) -> None:
    """Raise :class:`UserError` naming every field where ``saved`` and ``current`` differ.

    ``what`` names the mapping in the message (``"model config"``); keys in ``ignore`` may differ.
    """
    keys = sorted((set(saved) | set(current)) - set(ignore))
    differ = [k for k in keys if _plain(saved.get(k)) != _plain(current.get(k))]
    if differ:
        detail = "; ".join(f"{k}: checkpoint has {saved.get(k)!r}, this run {current.get(k)!r}" for k in differ)
        raise UserError(f"{path}: {what} differs from the checkpoint's ({detail})")


def _plain(value):
    """Tuples and lists compare equal (a config saved through a dict turns tuples into lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_model(path: str | os.PathLike, device="cpu", preset: str | None = None):
    """Load a trained model for inference: ``(Image2Reverb in eval mode, SpectrogramNorm, checkpoint)``.

    When the run kept a weight average (``"ema"``, see :class:`i2r.train.WeightAverage`), its
    averaged encoder, depth and generator weights replace the last step's: they are the ones to
    infer with. ``preset``, when given, must match the preset the checkpoint was trained with. A state dict
    that does not fit the saved model config (missing, unexpected or mis-shaped weights) is a
    :class:`UserError` naming the first offending entries.
    """
    from i2r.audio import SpectrogramNorm
    from i2r.models import Image2Reverb, ModelConfig
    from i2r.models.weights import load_strict

    checkpoint = load_checkpoint(path, map_location="cpu")
    missing = [key for key in ("model_config", "model", "spec_norm") if key not in checkpoint]
    if missing:
        raise UserError(f"{path}: the checkpoint lacks {', '.join(missing)}, so no model can be built from it")
    saved_preset = checkpoint.get("config", {}).get("preset")
    if preset is not None and saved_preset != preset:
        raise UserError(f"{path}: checkpoint was trained with preset {saved_preset!r}, expected {preset!r}")
    model = Image2Reverb(ModelConfig.from_dict(checkpoint["model_config"], source=str(path)))
    state = checkpoint["model"] | checkpoint.get("ema", {})
    load_strict(model, state, str(path))
    # weights of a diverged run would generate NaN audio that looks like a result
    poisoned = [key for key, value in state.items()
                if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]
    if poisoned:
        raise UserError(f"{path}: {len(poisoned)} weight tensors hold NaN or infinite values (first: {poisoned[0]}); "
                        f"the run that wrote it diverged")
    norm = SpectrogramNorm.from_dict(checkpoint["spec_norm"])
    return model.to(device).eval(), norm, checkpoint


# --- random number generators as weights_only-safe values ---------------------------------------


def capture_rng_state() -> dict:
    """This process's torch, NumPy, Python and (when present) CUDA RNG states as tensors and numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: Mapping) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"].tolist()), python_state["gauss_next"]))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
