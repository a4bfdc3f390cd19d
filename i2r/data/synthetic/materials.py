"""Acoustic materials and air absorption for the synthetic rooms.

Absorption coefficients (random incidence, octave bands 125 Hz - 4 kHz) are read from
``materials.csv`` next to this module. Every row names its source: the annex of M. Vorländer,
*Auralization* (Springer, 2008), as shipped in pyroomacoustics' ``data/materials.json`` (the
``source_key`` column is that file's keyword). Air absorption follows ISO 9613-1:1993.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

BANDS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
"""Nominal octave-band centres (IEC 61260) at which every coefficient is given."""

SPEED_OF_SOUND = 343.0
"""Speed of sound in m/s (dry air at 20 °C)."""

_TABLE = Path(__file__).with_name("materials.csv")
_ALPHA_COLUMNS = ("a125", "a250", "a500", "a1000", "a2000", "a4000")


@dataclass(frozen=True)
class Material:
    """One surface material: ``alpha`` is the energy absorption coefficient per band, shape ``(6,)``."""

    name: str
    surfaces: tuple[str, ...]
    alpha: tuple[float, ...]
    source_key: str
    source: str


@lru_cache(maxsize=1)
def materials() -> dict[str, Material]:
    """All materials of ``materials.csv`` by name (read once)."""
    with _TABLE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["name"]: Material(
            name=row["name"],
            surfaces=tuple(row["surfaces"].split()),
            alpha=tuple(float(row[c]) for c in _ALPHA_COLUMNS),
            source_key=row["source_key"],
            source=row["source"],
        )
        for row in rows
    }


def absorption(name: str) -> np.ndarray:
    """Absorption coefficients of material ``name``, shape ``(6,)`` for :data:`BANDS_HZ`."""
    return np.asarray(materials()[name].alpha, dtype=np.float64)


def exact_band_centres() -> np.ndarray:
    """Exact base-10 octave-band mid-frequencies 1000·10^(0.3k) in Hz (IEC 61260-1), shape ``(6,)``."""
    return 1000.0 * 10.0 ** (0.3 * np.arange(-3, 3))


def air_attenuation_db_per_m(
    f_hz, temperature_c: float = 20.0, humidity_pct: float = 50.0, pressure_kpa: float = 101.325
) -> np.ndarray:
    """Pure-tone atmospheric absorption coefficient in dB/m (ISO 9613-1:1993, Eqs. 3-5 and B.1).

    ``f_hz`` is any array of frequencies in Hz; the result has its shape.
    """
    f = np.asarray(f_hz, dtype=np.float64)
    t = temperature_c + 273.15
    t_rel = t / 293.15
    p_rel = pressure_kpa / 101.325
    # Molar concentration of water vapour (%) from relative humidity (Annex B).
    p_sat_rel = 10.0 ** (-6.8346 * (273.16 / t) ** 1.261 + 4.6151)
    h = humidity_pct * p_sat_rel / p_rel
    fr_o = p_rel * (24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h))
    fr_n = p_rel * t_rel**-0.5 * (9.0 + 280.0 * h * np.exp(-4.170 * (t_rel ** (-1.0 / 3.0) - 1.0)))
    relax_o = 0.01275 * np.exp(-2239.1 / t) / (fr_o + f**2 / fr_o)
    relax_n = 0.1068 * np.exp(-3352.0 / t) / (fr_n + f**2 / fr_n)
    return 8.686 * f**2 * (1.84e-11 / p_rel * t_rel**0.5 + t_rel**-2.5 * (relax_o + relax_n))


def air_energy_attenuation(temperature_c: float = 20.0, humidity_pct: float = 50.0) -> np.ndarray:
    """Energy attenuation constant m in 1/m per octave band, shape ``(6,)`` (ISO 9613-1).

    m = alpha_dB / (10 log10 e), so that energy decays as exp(-m r); this is the m of Eyring's
    and Sabine's 4mV term.
    """
    return air_attenuation_db_per_m(exact_band_centres(), temperature_c, humidity_pct) / (10.0 * np.log10(np.e))
