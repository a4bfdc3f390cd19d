"""Statistics of the listening study (Singh et al. 2021, Sec. 3.3), written from first principles.

For each rating (quality, match) every participant's ratings are first averaged over a scene's
examples per source, giving an array ``y`` of shape ``(n_participants, 2 sources, k scenes)``.
On it we run

- the D'Agostino-Pearson K^2 normality test (D'Agostino & Pearson 1973; ``scipy.stats.normaltest``)
  on each cell of the design (source x scene), across participants;
- a two-way repeated-measures ANOVA, source x scene, with the Greenhouse-Geisser (1959) correction
  and the generalised eta squared of Olejnik & Algina (2003) / Bakeman (2005);
- two one-sided tests (TOST, Schuirmann 1987) of equivalence of real and generated per scene, with
  a Bonferroni adjustment over every test of the table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from i2r.errors import UserError
from i2r.survey.responses import RATINGS, SOURCES, Responses, read_responses

ANOVA_COLUMNS = ["effect", "SS", "ddof1", "ddof2", "MS", "F", "p_unc", "p_gg", "eps", "ng2", "note"]
TOST_COLUMNS = ["rating", "scene", "bound", "dof", "mean_diff", "p", "p_bonf", "equivalent"]
NORMALTEST_MIN_N = 8
# An error SS this small relative to the total is rounding residue of the sums, not variance.
ZERO_SS_RTOL = 1e-12
NO_ERROR_NOTE = ("F and p undefined: zero error variance (every participant shows this effect identically, "
                 "e.g. all ratings equal)")


@dataclass
class SurveyStatsConfig:
    """Choices of the analysis, saved with its results.

    ``tost``: ``"paired"`` (one-sample t on the real - generated differences, dof n - 1) or
    ``"unpaired"`` (Student's two-sample t, dof 2n - 2: the choice the paper's Table 4 shows).
    ``bound``: the equivalence margin in rating units. ``alpha``: the level for "equivalent".
    """

    tost: str = "paired"
    bound: float = 1.0
    alpha: float = 0.05
    layout: str = "auto"

    def __post_init__(self):
        if self.tost not in ("paired", "unpaired"):
            raise UserError(f"--tost must be paired or unpaired, not {self.tost!r}")
        if not (self.bound > 0 and math.isfinite(self.bound)):
            raise UserError(f"the equivalence bound (--bound) must be a positive, finite number of rating units, "
                            f"not {self.bound}")
        if not 0 < self.alpha < 1:
            raise UserError(f"alpha must lie in (0, 1), not {self.alpha}")


@dataclass
class SurveyResult:
    """Everything the analysis found; :meth:`to_json` gives the DESIGN.md document."""

    config: SurveyStatsConfig
    n_participants: int
    participants: list[str]
    scenes: list[str]
    excluded: list[dict]
    normality: dict
    anova: dict[str, pd.DataFrame]
    tost: pd.DataFrame
    means: dict[str, np.ndarray] = field(repr=False)
    simulated: bool = False
    layout: str = "tidy"
    n_stimuli: int = 0

    def to_json(self) -> dict:
        """The ``survey-stats --format json`` document (DESIGN.md contract, plus extra keys)."""
        anova = {r: [_row(rec, ("effect", "F", "ddof1", "ddof2", "p_unc", "p_gg", "eps", "ng2", "note"))
                     for rec in df.to_dict("records")]
                 for r, df in self.anova.items()}
        tost = [_row(rec, ("rating", "scene", "bound", "dof", "p", "p_bonf", "mean_diff", "equivalent"))
                for rec in self.tost.to_dict("records")]
        return {
            "n_participants": self.n_participants,
            "excluded": self.excluded,
            "normality": self.normality,
            "anova": anova,
            "tost": tost,
            "tost_kind": self.config.tost,
            "n_tests": len(tost),
            "scenes": self.scenes,
            "n_stimuli": self.n_stimuli,
            "simulated": self.simulated,
            "layout": self.layout,
            "config": asdict(self.config),
        }


def _plain(value):
    """NumPy scalars -> Python numbers, NaN -> None (JSON has no NaN)."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    return value


def _row(record: dict, keys) -> dict:
    return {k: _plain(record[k]) for k in keys}


def participant_means(data: pd.DataFrame, rating: str, scenes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each participant's mean rating over a scene's examples, per source.

    Returns ``(y, participants)`` with ``y`` of shape ``(n_participants, 2, len(scenes))``; axis 1
    is ``(real, generated)``. ``data`` must be complete (every participant rated every stimulus).
    """
    table = data.pivot_table(index="participant", columns=["source", "scene"], values=rating, aggfunc="mean")
    participants = list(table.index)
    y = np.stack([table[source][scenes].to_numpy(dtype=float) for source in SOURCES], axis=1)
    return y, participants


def _sum_sq(x: np.ndarray) -> float:
    return float(np.sum(x * x))


def gg_epsilon(y: np.ndarray, projector: np.ndarray, df: int) -> float:
    """Greenhouse-Geisser epsilon of a within-subject effect.

    ``y``: ``(n, p)`` per-participant cell means flattened; ``projector``: the ``(p, p)``
    orthogonal projector onto the effect's contrast space (rank ``df``). With ``S`` the sample
    covariance, ``eps = tr(PSP)^2 / (df * tr((PSP)^2))`` (Greenhouse & Geisser 1959; Box 1954), which
    is 1 for a one-degree-of-freedom effect and at least ``1/df`` otherwise.
    """
    if df <= 1:
        return 1.0
    s = projector @ np.cov(y, rowvar=False) @ projector
    denominator = df * np.trace(s @ s)
    return float(np.trace(s) ** 2 / denominator) if denominator > 0 else float("nan")


def _centering(k: int) -> np.ndarray:
    return np.eye(k) - np.full((k, k), 1.0 / k)


def rm_anova2(y: np.ndarray, names: tuple[str, str] = ("source", "scene")) -> pd.DataFrame:
    """Two-way repeated-measures ANOVA (both factors within subjects) with Greenhouse-Geisser.

    ``y``: ``(n_subjects, a, b)`` cell means. Each effect is tested against its own
    effect x subject error term. Returns a pingouin-style DataFrame with the rows
    ``names[0]``, ``names[1]``, ``"names[0] * names[1]"`` and the columns
    ``effect, SS, ddof1, ddof2, MS, F, p_unc, p_gg, eps, ng2``; ``ng2`` is the generalised eta
    squared for an all-within design, ``SS_effect / (SS_effect + SS_subjects + all error SS)``
    (Olejnik & Algina 2003, Table 2; Bakeman 2005). An effect whose error term is zero (e.g. all
    ratings equal) has NaN ``F`` and p-values and says so in ``note``; ``ng2`` is NaN when there
    is no variance at all.
    """
    y = np.asarray(y, dtype=float)
    n, a, b = y.shape
    if n < 2:
        raise UserError(f"the ANOVA needs at least 2 complete participants, got {n}")
    grand = y.mean()
    m_s = y.mean(axis=(1, 2))
    m_a, m_b = y.mean(axis=(0, 2)), y.mean(axis=(0, 1))
    m_sa, m_sb, m_ab = y.mean(axis=2), y.mean(axis=1), y.mean(axis=0)
    ss_s = a * b * _sum_sq(m_s - grand)
    ss = {
        "a": n * b * _sum_sq(m_a - grand),
        "b": n * a * _sum_sq(m_b - grand),
        "ab": n * _sum_sq(m_ab - m_a[:, None] - m_b[None, :] + grand),
    }
    err = {
        "a": b * _sum_sq(m_sa - m_s[:, None] - m_a[None, :] + grand),
        "b": a * _sum_sq(m_sb - m_s[:, None] - m_b[None, :] + grand),
    }
    err["ab"] = _sum_sq(y - grand) - ss_s - sum(ss.values()) - err["a"] - err["b"]
    dfs = {"a": a - 1, "b": b - 1, "ab": (a - 1) * (b - 1)}
    projectors = {
        "a": np.kron(_centering(a), np.full((b, b), 1.0 / b)),
        "b": np.kron(np.full((a, a), 1.0 / a), _centering(b)),
        "ab": np.kron(_centering(a), _centering(b)),
    }
    zero = ZERO_SS_RTOL * _sum_sq(y - grand)
    err = {key: value if value > zero else 0.0 for key, value in err.items()}
    flat = y.reshape(n, a * b)
    error_total = ss_s + sum(err.values())
    rows = []
    for key, effect in (("a", names[0]), ("b", names[1]), ("ab", f"{names[0]} * {names[1]}")):
        df1, df2 = dfs[key], dfs[key] * (n - 1)
        testable = err[key] > 0
        f = (ss[key] / df1) / (err[key] / df2) if testable else float("nan")
        eps = gg_epsilon(flat, projectors[key], df1)
        rows.append({
            "effect": effect, "SS": ss[key], "ddof1": df1, "ddof2": df2, "MS": ss[key] / df1, "F": f,
            "p_unc": float(sps.f.sf(f, df1, df2)),
            "p_gg": float(sps.f.sf(f, df1 * eps, df2 * eps)),
            "eps": eps, "ng2": _ratio(ss[key], ss[key] + error_total),
            "note": "" if testable else NO_ERROR_NOTE,
        })
    return pd.DataFrame(rows, columns=ANOVA_COLUMNS)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def rm_anova(data: pd.DataFrame, dv: str, within: tuple[str, str], subject: str) -> pd.DataFrame:
    """Two-way repeated-measures ANOVA on a long DataFrame (pingouin's ``rm_anova`` call shape).

    ``data`` has one row per observation; replicates within a subject x cell are averaged first.
    Every subject must have every cell (complete cases). Returns :func:`rm_anova2`'s table.
    """
    missing = [c for c in (dv, subject, *within) if c not in data.columns]
    if missing:
        raise UserError(f"rm_anova: no column(s) {', '.join(missing)}")
    table = data.pivot_table(index=subject, columns=list(within), values=dv, aggfunc="mean")
    if table.isna().to_numpy().any():
        raise UserError("rm_anova: some subjects lack a cell of the design (complete cases are required)")
    a_levels, b_levels = table.columns.levels
    y = np.stack([table[level][list(b_levels)].to_numpy(dtype=float) for level in a_levels], axis=1)
    return rm_anova2(y, names=tuple(within))


def tost(x: np.ndarray, y: np.ndarray, bound: float = 1.0, paired: bool = True) -> tuple[float, float, float]:
    """Two one-sided tests (Schuirmann 1987) that ``mean(x) - mean(y)`` lies within ``±bound``.

    ``x``, ``y``: ``(n,)`` ratings. Paired: one-sample t on ``x - y`` with ``n - 1`` dof;
    unpaired: Student's pooled-variance two-sample t with ``n_x + n_y - 2`` dof.
    Returns ``(dof, p, mean difference)``, ``p`` the larger of the two one-sided p-values.
    A zero standard error gives p = 0 inside the bounds and 1 outside.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if paired:
        d = x - y
        dof = d.size - 1
        diff, se = d.mean(), d.std(ddof=1) / np.sqrt(d.size)
    else:
        dof = x.size + y.size - 2
        diff = x.mean() - y.mean()
        pooled = ((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / dof
        se = np.sqrt(pooled * (1 / x.size + 1 / y.size))
    if se == 0:
        return float(dof), (0.0 if abs(diff) < bound else 1.0), float(diff)
    p_lower = sps.t.sf((diff + bound) / se, dof)
    p_upper = sps.t.cdf((diff - bound) / se, dof)
    return float(dof), float(max(p_lower, p_upper)), float(diff)


def tost_table(means: dict[str, np.ndarray], scenes: list[str], config: SurveyStatsConfig) -> pd.DataFrame:
    """Per-scene TOST of real vs generated for each rating, Bonferroni-adjusted over all rows.

    ``means[rating]``: ``(n, 2, k)`` from :func:`participant_means`. ``p_bonf = min(1, m p)`` with
    ``m = len(ratings) * len(scenes)`` tests (8 in the paper's design).
    """
    rows = []
    for rating, y in means.items():
        for j, scene in enumerate(scenes):
            dof, p, diff = tost(y[:, 0, j], y[:, 1, j], config.bound, config.tost == "paired")
            rows.append({"rating": rating, "scene": scene, "bound": config.bound, "dof": dof, "mean_diff": diff, "p": p})
    table = pd.DataFrame(rows)
    table["p_bonf"] = np.minimum(1.0, table["p"] * len(table))
    table["equivalent"] = table["p_bonf"] < config.alpha
    return table[TOST_COLUMNS]


def normality(means: dict[str, np.ndarray], scenes: list[str], alpha: float = 0.05) -> dict:
    """D'Agostino-Pearson K^2 test per design cell (rating x source x scene) across participants.

    Each cell holds ``n`` per-participant means (the values the ANOVA and TOST use). The test needs
    ``n >= 8`` (skewness) and is approximate below ``n = 20`` (kurtosis); ratings are discrete, so a
    small p often reflects ties rather than a non-normal latent variable.
    """
    n = next(iter(means.values())).shape[0]
    cells = []
    for rating, y in means.items():
        for i, source in enumerate(SOURCES):
            for j, scene in enumerate(scenes):
                cells.append({"rating": rating, "source": source, "scene": scene, **_k2(y[:, i, j])})
    tested = [c for c in cells if c["p"] is not None]
    return {
        "test": "D'Agostino-Pearson K^2 omnibus (scipy.stats.normaltest)",
        "on": "each design cell (rating x source x scene): the per-participant mean over the scene's examples",
        "n": n,
        "alpha": alpha,
        "n_cells": len(cells),
        "n_tested": len(tested),
        "n_rejected": sum(c["p"] < alpha for c in tested),
        "caveat": _normality_caveat(n),
        "cells": cells,
    }


def _k2(values: np.ndarray) -> dict:
    if values.size < NORMALTEST_MIN_N or np.ptp(values) == 0:
        why = "constant values" if values.size >= NORMALTEST_MIN_N else f"n < {NORMALTEST_MIN_N}"
        return {"statistic": None, "p": None, "note": f"not tested: {why}"}
    statistic, p = sps.normaltest(values)
    return {"statistic": _plain(statistic), "p": _plain(p), "note": ""}


def _normality_caveat(n: int) -> str:
    text = ("ratings are discrete 1-5 values (means of a few), so ties and the bounded scale can make "
            "the test reject normality for the discreteness alone")
    if n < NORMALTEST_MIN_N:
        return f"n = {n} < {NORMALTEST_MIN_N}: the test cannot run; {text}"
    if n < 20:
        return f"n = {n} < 20: the kurtosis part of the test is only approximate; {text}"
    return text


def analyze_responses(responses: Responses, config: SurveyStatsConfig | None = None) -> SurveyResult:
    """Run the full analysis (normality, RM ANOVA per rating, TOST table) on validated responses."""
    config = config or SurveyStatsConfig()
    scenes = responses.scenes
    if responses.data.empty:
        raise UserError("no participant is left after the exclusions: " + "; ".join(
            f"{e['participant']}: {e['reason']}" for e in responses.excluded[:5]))
    if len(scenes) < 2:
        raise UserError(f"the design needs at least 2 scenes for the source x scene ANOVA, found {scenes}")
    means, participants = {}, []
    for rating in RATINGS:
        means[rating], participants = participant_means(responses.data, rating, scenes)
    if len(participants) < 3:
        raise UserError(f"only {len(participants)} complete participant(s) after the exclusions; at least 3 are needed")
    return SurveyResult(
        config=config,
        n_participants=len(participants),
        participants=participants,
        scenes=scenes,
        excluded=responses.excluded,
        normality=normality(means, scenes, config.alpha),
        anova={rating: rm_anova2(means[rating]) for rating in RATINGS},
        tost=tost_table(means, scenes, config),
        means=means,
        simulated=responses.simulated,
        layout=responses.layout,
        n_stimuli=len(responses.stimuli),
    )


def analyze_csv(paths, config: SurveyStatsConfig | None = None) -> SurveyResult:
    """Read, validate and analyse one or more responses CSVs (tidy or wide; see :func:`read_responses`)."""
    config = config or SurveyStatsConfig()
    return analyze_responses(read_responses(paths, config.layout), config)
