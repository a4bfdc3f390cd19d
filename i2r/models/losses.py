"""Image2Reverb's training objectives (Singh et al. 2021, Sec. 3 "Loss"), with the original's bugs fixed.

Generator (and encoder): LSGAN ``mean((D(fake) - 1)^2)`` (Mao et al., "Least Squares Generative
Adversarial Networks", ICCV 2017) + 100 * L1(fake, real) + 100 * |T60p error|, where the T60p
error is relative, ``|T60p(fake) - T60p(real)| / T60p(real)`` (100 times it is the original's
percent error). Discriminator: ``mean((D(real) - 1)^2) + mean(D(fake)^2)``.

Unlike the original, the adversarial term is computed on the generator's output as is (not on
``fake.detach()``), so G receives the adversarial gradient; and the T60p values passed in must be
differentiable (``i2r.acoustics.t60p``), so the T60p term trains G too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from i2r.audio import FULL_RESOLUTION, HOP, SAMPLE_RATE


@dataclass
class LossWeights:
    """Weights of the generator's terms (paper: 1, 100, 100, and no decay term). ``t60p=0`` is the
    "no T60p" ablation; ``decay`` weighs :func:`decay_curve_error_db` (per dB)."""

    adversarial: float = 1.0
    l1: float = 100.0
    t60p: float = 100.0
    decay: float = 0.0


def generator_loss(d_fake: Tensor, fake: Tensor, real: Tensor, t60p_fake: Tensor | None = None,
                   t60p_real: Tensor | None = None, weights: LossWeights | None = None,
                   decay_fake: Tensor | None = None, decay_real: Tensor | None = None) -> dict[str, Tensor]:
    """Generator objective: a dict of scalar terms ``adversarial``, ``l1``, ``t60p``, ``decay`` and ``total``.

    ``d_fake``: D's scores ``(B, 1, 8, 8)`` for ``fake`` (D run on the undetached output);
    ``fake``/``real``: normalised spectrograms ``(B, 1, R, R)``; ``t60p_fake``/``t60p_real``:
    ``(B,)`` T60 proxies in seconds; ``decay_fake``/``decay_real``: ``(B, R)`` decay curves in dB
    (:func:`spectrogram_decay_db`). A term whose inputs are ``None`` or whose weight is 0 is left
    out of ``total`` and reported as 0.
    ``total = w_adv * adversarial + w_l1 * l1 + w_t60p * t60p + w_decay * decay``.
    """
    weights = weights or LossWeights()
    adversarial = torch.mean((d_fake.float() - 1.0) ** 2)
    l1 = torch.mean(torch.abs(fake.float() - real.float()))
    total = weights.adversarial * adversarial + weights.l1 * l1
    if t60p_fake is not None and t60p_real is not None and weights.t60p != 0:
        t60p = t60p_relative_error(t60p_fake, t60p_real).mean()
        total = total + weights.t60p * t60p
    else:
        t60p = torch.zeros((), device=fake.device)
    if decay_fake is not None and decay_real is not None and weights.decay != 0:
        decay = decay_curve_error_db(decay_fake, decay_real).mean()
        total = total + weights.decay * decay
    else:
        decay = torch.zeros((), device=fake.device)
    return {"adversarial": adversarial, "l1": l1, "t60p": t60p, "decay": decay, "total": total}


def t60p_relative_error(t60p_fake: Tensor, t60p_real: Tensor) -> Tensor:
    """``|T60p(fake) - T60p(real)| / T60p(real)`` per example ``(B,)``; the target carries no gradient."""
    target = t60p_real.detach().float()
    return torch.abs(t60p_fake.float() - target) / target.clamp_min(1e-3)


def spectrogram_t60p(spectrogram: Tensor, spec_norm) -> Tensor:
    """T60p in seconds ``(B,)`` of normalised spectrograms ``(B, 1, R, R)`` (model space, (-1, 1)).

    De-normalises with the checkpoint's :class:`i2r.audio.SpectrogramNorm` back to raw log|X|
    and applies :func:`i2r.acoustics.t60p` at the spectrogram's frame rate: 22050 / 256 Hz at
    R = 512, divided by the pooling factor 512 / R in time for smaller R. Differentiable.
    """
    from i2r.acoustics import t60p

    resolution = spectrogram.shape[-1]
    frame_rate_hz = SAMPLE_RATE / (HOP * (FULL_RESOLUTION // resolution))
    log_magnitude = spec_norm.denormalize(spectrogram.float().squeeze(1))
    return t60p(log_magnitude, frame_rate_hz)


DECAY_FLOOR_DB = -60.0
"""Lowest level of the decay curves that :func:`decay_curve_error_db` compares: T60's range."""


def spectrogram_decay_db(spectrogram: Tensor, spec_norm, floor_db: float = DECAY_FLOOR_DB) -> Tensor:
    """Schroeder decay curves ``(B, R)`` in dB re their start, clamped at ``floor_db``, of
    normalised spectrograms ``(B, 1, R, R)`` (de-normalised as in :func:`spectrogram_t60p`).

    Below the floor the curve carries no gradient: how a decay ends under -60 dB is inaudible
    under real reverberation and beyond what T60 measures.
    """
    from i2r.acoustics.proxy import schroeder_db

    return schroeder_db(spec_norm.denormalize(spectrogram.float().squeeze(1))).clamp_min(floor_db)


def decay_curve_error_db(decay_fake: Tensor, decay_real: Tensor) -> Tensor:
    """Mean absolute difference in dB between decay curves ``(B, R)`` per example ``(B,)``; the
    target carries no gradient.

    T60p compares two crossings of the fullband decay (-5 and -25 dB); this compares its whole
    course down to -60 dB, so energy where the true decay has died out (a burst at the end of
    a generated spectrogram: it swamps the tail of the analysed IR and leaves T30 unmeasurable)
    costs as much as a wrong slope, and a burst late enough to put both T60p crossings on
    itself cannot hide.
    """
    return torch.abs(decay_fake.float() - decay_real.detach().float()).mean(dim=-1)


def discriminator_loss(d_real: Tensor, d_fake: Tensor) -> dict[str, Tensor]:
    """LSGAN discriminator objective: dict ``real``, ``fake``, ``total`` (scalars).

    ``d_real``/``d_fake``: scores ``(B, 1, 8, 8)``; ``d_fake`` should come from ``fake.detach()``
    (here detaching is right: D's step must not move G).
    """
    real = torch.mean((d_real.float() - 1.0) ** 2)
    fake = torch.mean(d_fake.float() ** 2)
    return {"real": real, "fake": fake, "total": real + fake}
