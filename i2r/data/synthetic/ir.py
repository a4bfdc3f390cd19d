"""Room impulse responses of synthetic scenes: image sources, then an Eyring-decaying tail.

The IR is built per octave band and summed through a complementary zero-phase filter bank:

1. direct sound and early reflections from the image-source method for a shoebox (Allen &
   Berkley, JASA 65(4), 1979), with per-band pressure reflection factors sqrt(1 - alpha),
   spherical spreading 1/r, ISO 9613-1 air absorption, delays rounded to the nearest sample;
2. a late tail per band: Gaussian noise under an exponential envelope that falls 60 dB in the
   band's T60, with the diffuse-field energy 16 pi / A relative to a direct sound of amplitude
   1/r (Kuttruff, *Room Acoustics*, Sec. 5.5), faded in around the mixing time sqrt(V) ms
   while the image sources fade out;
3. each band's signal is weighted in the frequency domain by an octave weight; the weights are
   raised-cosine crossovers in log-frequency that sum to one, so the bands add back to a flat
   response and each band decays at its own rate.

Outdoor scenes have the direct sound, one ground reflection and a short, weak diffuse tail.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from i2r.audio import IR_SAMPLES, SAMPLE_RATE
from i2r.data.synthetic.materials import BANDS_HZ, SPEED_OF_SOUND, absorption, air_energy_attenuation
from i2r.data.synthetic.scene import Scene, equivalent_absorption_area, surface_absorption

_DECAY_DB = 100.0
"""The tail is computed until the slowest band has fallen this far; later samples are zero."""
_WRAP_PAD = 4096
"""Extra FFT length (186 ms at 22,050 Hz) that keeps the zero-phase filters' ringing from wrapping."""


@dataclass(frozen=True)
class IRConfig:
    """Settings of :func:`synthesize_ir`.

    ``max_order``: image-source reflection order; ``crossover_width_oct``: half-width of each
    crossover in octaves; ``outdoor_drr_db``: range of the outdoor direct-to-diffuse ratio.
    """

    fs: int = SAMPLE_RATE
    n_samples: int = IR_SAMPLES
    max_order: int = 3
    crossover_width_oct: float = 0.25
    outdoor_drr_db: tuple[float, float] = (3.0, 9.0)


@lru_cache(maxsize=64)
def band_weights(n_fft: int, fs: float, width_oct: float = 0.25) -> np.ndarray:
    """Complementary octave weights on the ``rfft`` bins of an ``n_fft``-point FFT.

    Returns shape ``(6, n_fft // 2 + 1)``, float32, each in [0, 1], summing to one on every bin
    (cached: treat as read-only).
    Band b covers :data:`BANDS_HZ` [b] with crossovers at the geometric midpoints fc·sqrt(2); the
    125 Hz band reaches down to DC and the 4 kHz band up to Nyquist.
    """
    f = np.maximum(np.fft.rfftfreq(n_fft, 1.0 / fs), 1e-3)
    crossovers = np.asarray(BANDS_HZ[:-1]) * np.sqrt(2.0)
    x = np.clip(np.log2(f[None, :] / crossovers[:, None]) / width_oct, -1.0, 1.0)
    below = 0.5 * (1.0 - np.sin(0.5 * np.pi * x))  # 1 below crossover k, 0 above, raised cosine between
    edges = np.vstack([np.zeros_like(f), below, np.ones_like(f)])
    return np.diff(edges, axis=0).astype(np.float32)


def image_sources(dims, source, receiver, max_order: int) -> tuple[np.ndarray, np.ndarray]:
    """Image sources of a shoebox up to ``max_order`` reflections (Allen & Berkley 1979).

    Returns distances to ``receiver`` in m, shape ``(n,)``, and how often each image's path hits
    each surface (floor, ceiling, x=0, x=L, y=0, y=W), shape ``(n, 6)``. Image 0 is the source.
    """
    per_axis = []
    for axis, (size, s) in enumerate(zip(dims, source)):
        m = np.arange(-max_order, max_order + 1)
        p = np.array([0, 1])
        mm, pp = np.meshgrid(m, p, indexing="ij")
        coord = (1 - 2 * pp) * s + 2 * mm * size
        hits_lo, hits_hi = np.abs(mm - pp), np.abs(mm)
        per_axis.append((coord.ravel(), hits_lo.ravel(), hits_hi.ravel()))
    (cx, xlo, xhi), (cy, ylo, yhi), (cz, zlo, zhi) = per_axis
    ix, iy, iz = np.meshgrid(np.arange(cx.size), np.arange(cy.size), np.arange(cz.size), indexing="ij")
    ix, iy, iz = ix.ravel(), iy.ravel(), iz.ravel()
    hits = np.stack([zlo[iz], zhi[iz], xlo[ix], xhi[ix], ylo[iy], yhi[iy]], axis=1)
    keep = hits.sum(1) <= max_order
    hits, ix, iy, iz = hits[keep], ix[keep], iy[keep], iz[keep]
    order = np.argsort(hits.sum(1), kind="stable")
    hits, ix, iy, iz = hits[order], ix[order], iy[order], iz[order]
    offsets = np.stack([cx[ix], cy[iy], cz[iz]], axis=1) - np.asarray(receiver, dtype=np.float64)
    return np.linalg.norm(offsets, axis=1), hits


def _fade_in(t: np.ndarray, t_mix: float) -> np.ndarray:
    """0 before the direct sound, raised-cosine rise to 1 over [0, 2 t_mix] (t relative to it)."""
    x = np.clip(t / (2.0 * t_mix), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _early(scene: Scene, config: IRConfig, n: int, t0: float, t_mix: float) -> np.ndarray:
    """Per-band impulse trains of direct sound and reflections, shape ``(6, n)``."""
    air = air_energy_attenuation()
    if scene.outdoor:
        s, r = np.asarray(scene.source), np.asarray(scene.receiver)
        mirrored = s * np.array([1.0, 1.0, -1.0])
        dist = np.array([np.linalg.norm(s - r), np.linalg.norm(mirrored - r)])
        reflect = np.stack([np.ones(6), np.sqrt(1.0 - absorption(scene.materials["floor"]))])
    else:
        dist, hits = image_sources(scene.dims, scene.source, scene.receiver, config.max_order)
        beta = np.sqrt(1.0 - surface_absorption(scene))  # (6 surfaces, 6 bands)
        reflect = np.exp(hits @ np.log(beta))
    amps = reflect / dist[:, None] * np.exp(-0.5 * air[None, :] * dist[:, None])
    delays = dist / SPEED_OF_SOUND
    # Reflections hand over to the diffuse tail around the mixing time; the direct sound stays.
    amps[1:] *= 1.0 - _fade_in(delays[1:] - t0, t_mix)[:, None]
    idx = np.rint(delays * config.fs).astype(np.int64)
    inside = idx < n
    out = np.empty((6, n), dtype=np.float32)
    for band in range(6):
        out[band] = np.bincount(idx[inside], weights=amps[inside, band], minlength=n)[:n]
    return out


def _tail_energy(scene: Scene, rng: np.random.Generator, config: IRConfig) -> np.ndarray:
    """Energy (sum of squares) of each band's full tail relative to the direct sound's 1/r."""
    if scene.outdoor:
        drr_db = rng.uniform(*config.outdoor_drr_db)
        r = np.linalg.norm(np.subtract(scene.source, scene.receiver))
        return np.full(6, 10.0 ** (-drr_db / 10.0) / r**2)
    return 16.0 * np.pi / equivalent_absorption_area(scene)


def tail_length(t60_s, t0: float, fs: int, n_max: int) -> int:
    """Samples until the slowest band has decayed :data:`_DECAY_DB` dB after ``t0`` s (at most ``n_max``)."""
    return int(min(n_max, np.ceil((t0 + max(t60_s) * _DECAY_DB / 60.0) * fs) + 1))


def _fft_size(n: int) -> int:
    """The smallest 2^k or 3·2^k not below ``n``: fast, and few enough sizes to cache the weights."""
    power = 1 << int(np.ceil(np.log2(n)))
    return 3 * power // 4 if 3 * power // 4 >= n else power


def synthesize_ir(scene: Scene, rng: np.random.Generator, config: IRConfig = IRConfig()) -> np.ndarray:
    """The impulse response of ``scene`` from its source to its receiver.

    Returns float32 of shape ``(config.n_samples,)`` at ``config.fs`` Hz, peak-normalised to 0.99.
    ``rng`` draws the tail's noise (and the outdoor direct-to-diffuse ratio), so the IR is a
    deterministic function of the scene and the generator's state.
    """
    fs = config.fs
    t60 = np.asarray(scene.t60_s, dtype=np.float64)
    t0 = float(np.linalg.norm(np.subtract(scene.source, scene.receiver))) / SPEED_OF_SOUND
    t_mix = 0.010 if scene.outdoor else 1e-3 * np.sqrt(scene.volume)
    n = tail_length(t60, t0, fs, config.n_samples)
    n_fft = _fft_size(n + _WRAP_PAD)

    bands = np.zeros((6, n_fft), dtype=np.float32)
    bands[:, :n] = _early(scene, config, n, t0, t_mix)
    t = np.arange(n, dtype=np.float64) / fs - t0
    decay = 3.0 * np.log(10.0) / t60  # amplitude decay rate: -60 dB after T60
    # Envelope gain so that sum over samples of (g exp(-decay t))^2 equals the band's tail energy.
    gain = np.sqrt(_tail_energy(scene, rng, config) * (1.0 - np.exp(-2.0 * decay / fs)))
    envelope = gain[:, None] * np.exp(-decay[:, None] * np.maximum(t, 0.0)[None, :]) * _fade_in(t, t_mix)[None, :]
    noise = rng.standard_normal(n, dtype=np.float32)
    bands[:, :n] += envelope.astype(np.float32) * noise[None, :]

    spectrum = scipy.fft.rfft(bands, axis=1)
    summed = np.einsum("bf,bf->f", band_weights(n_fft, fs, config.crossover_width_oct), spectrum)
    ir = np.zeros(config.n_samples, dtype=np.float32)
    ir[:n] = scipy.fft.irfft(summed, n_fft)[:n]
    return ir * np.float32(0.99 / np.max(np.abs(ir)))
