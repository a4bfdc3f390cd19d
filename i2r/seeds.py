"""The seeds every command accepts: one range, checked up front.

NumPy's legacy ``RandomState`` (which scikit-learn and openTSNE seed) takes 0 to 2**32 - 1, and
the evaluation derives per-example seeds as ``seed * 1,000,003 + index``, which stay far inside
torch's 64 bits in that range; a seed outside it crashed deep inside a run.
"""

from __future__ import annotations

from i2r.errors import UserError

MAX_SEED = 2**32 - 1


def check_seed(seed, option: str = "--seed") -> int:
    """``seed`` if it is a whole number from 0 to :data:`MAX_SEED`, else :class:`UserError` naming ``option``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"{option} must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    return seed
