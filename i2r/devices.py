"""Which torch device a command runs on: one function, so every command accepts the same names
and refuses the same mistakes (a misspelt device, or CUDA on a machine without it) up front."""

from __future__ import annotations

import torch

from i2r.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> the CUDA device when present, else the CPU; ``"cpu"``, ``"cuda"`` and
    ``"cuda:N"`` as named. Raises :class:`UserError` for any other name and for a CUDA device
    this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} was asked for, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
