"""The survey statistics against independent computations (statsmodels, explicit contrasts, by hand)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.anova import AnovaRM

from i2r.cli import main
from i2r.errors import UserError
from i2r.survey.responses import read_responses
from i2r.survey.simulate import SimulationConfig, simulate_responses, to_csv
from i2r.survey.stats import SurveyStatsConfig, analyze_responses, participant_means, rm_anova, rm_anova2, tost

TOL = 1e-8


def _long(y):
    """(n, a, b) cell means -> long DataFrame for statsmodels."""
    n, a, b = y.shape
    idx = np.indices(y.shape).reshape(3, -1)
    return pd.DataFrame({"subject": idx[0], "A": idx[1], "B": idx[2], "y": y.reshape(-1)})


def _orthonormal_contrasts(k):
    """(k-1, k) rows orthonormal and orthogonal to the constant vector (QR of a difference basis)."""
    basis = np.vstack([np.ones(k), np.eye(k)[:-1] - np.eye(k)[1:]]).T
    q, _ = np.linalg.qr(basis)
    return q[:, 1:].T


def _gg_from_contrasts(z):
    """Greenhouse-Geisser epsilon from the sample covariance of orthonormal contrast scores z (n, df)."""
    s = np.atleast_2d(np.cov(z, rowvar=False))
    eig = np.linalg.eigvalsh(s)
    return eig.sum() ** 2 / (len(eig) * np.sum(eig**2))


@pytest.fixture(params=[0, 1, 2])
def cells(request):
    rng = np.random.default_rng(request.param)
    n, b = 12 + request.param, 3 + request.param
    # Unequal variances and correlations across scenes, so sphericity fails and eps < 1.
    scale = np.linspace(0.5, 2.0, b)
    return rng.normal(size=(n, 2, b)) * scale + rng.normal(size=(n, 1, 1)) + np.arange(b) * 0.3


def test_anova_f_and_p_match_statsmodels(cells):
    ours = rm_anova2(cells, names=("A", "B")).set_index("effect")
    ref = AnovaRM(_long(cells), "y", "subject", within=["A", "B"]).fit().anova_table
    for ours_name, ref_name in (("A", "A"), ("B", "B"), ("A * B", "A:B")):
        assert ours.loc[ours_name, "F"] == pytest.approx(ref.loc[ref_name, "F Value"], rel=TOL, abs=TOL)
        assert ours.loc[ours_name, "p_unc"] == pytest.approx(ref.loc[ref_name, "Pr > F"], rel=TOL, abs=TOL)
        assert ours.loc[ours_name, "ddof1"] == ref.loc[ref_name, "Num DF"]
        assert ours.loc[ours_name, "ddof2"] == ref.loc[ref_name, "Den DF"]


def test_gg_epsilon_matches_orthonormal_contrast_covariance(cells):
    ours = rm_anova2(cells).set_index("effect")
    n, a, b = cells.shape
    c_b = _orthonormal_contrasts(b)
    c_a = _orthonormal_contrasts(a)
    scene_scores = cells.mean(axis=1) @ c_b.T
    interaction_scores = cells.reshape(n, -1) @ np.kron(c_a, c_b).T
    eps_b, eps_ab = _gg_from_contrasts(scene_scores), _gg_from_contrasts(interaction_scores)
    assert eps_b < 1 and eps_ab < 1
    assert ours.loc["scene", "eps"] == pytest.approx(eps_b, rel=TOL)
    assert ours.loc["source * scene", "eps"] == pytest.approx(eps_ab, rel=TOL)
    assert ours.loc["source", "eps"] == 1.0
    df1, df2, f = ours.loc["scene", ["ddof1", "ddof2", "F"]]
    assert ours.loc["scene", "p_gg"] == pytest.approx(sps.f.sf(f, df1 * eps_b, df2 * eps_b), rel=TOL)


def test_interaction_equals_one_way_anova_on_differences(cells):
    ours = rm_anova2(cells).set_index("effect").loc["source * scene"]
    n, _, b = cells.shape
    diff = cells[:, 0, :] - cells[:, 1, :]
    frame = pd.DataFrame({"subject": np.repeat(np.arange(n), b), "B": np.tile(np.arange(b), n), "d": diff.reshape(-1)})
    ref = AnovaRM(frame, "d", "subject", within=["B"]).fit().anova_table.loc["B"]
    assert ours["F"] == pytest.approx(ref["F Value"], rel=TOL)
    assert ours["p_unc"] == pytest.approx(ref["Pr > F"], rel=TOL, abs=TOL)
    assert ours["eps"] == pytest.approx(_gg_from_contrasts(diff @ _orthonormal_contrasts(b).T), rel=TOL)


def test_generalised_eta_squared_by_hand():
    rng = np.random.default_rng(5)
    y = rng.normal(size=(10, 2, 4)) + rng.normal(size=(10, 1, 1))
    table = rm_anova2(y).set_index("effect")
    # All-within design (Olejnik & Algina 2003; Bakeman 2005): eta_G^2 = SS_effect / (SS_effect +
    # SS_total - SS_A - SS_B - SS_AB), each SS from the cell, row and column means of y itself.
    n, a, b = y.shape
    grand, mean_a, mean_b, mean_ab = y.mean(), y.mean(axis=(0, 2)), y.mean(axis=(0, 1)), y.mean(axis=0)
    ss = {"source": n * b * np.sum((mean_a - grand) ** 2),
          "scene": n * a * np.sum((mean_b - grand) ** 2),
          "source * scene": n * np.sum((mean_ab - mean_a[:, None] - mean_b[None, :] + grand) ** 2)}
    ss_total = np.sum((y - grand) ** 2)
    for effect, ss_effect in ss.items():
        assert table.loc[effect, "SS"] == pytest.approx(ss_effect, rel=TOL)
        expected = ss_effect / (ss_effect + ss_total - sum(ss.values()))
        assert table.loc[effect, "ng2"] == pytest.approx(expected, rel=TOL)


def test_paired_tost_by_hand():
    x = np.array([4, 3, 5, 4, 2, 3, 4, 5, 3, 4], float)
    y = np.array([3, 3, 4, 5, 2, 2, 4, 4, 3, 3], float)
    d = x - y
    se = d.std(ddof=1) / np.sqrt(d.size)
    p_expected = max(1 - sps.t.cdf((d.mean() + 1) / se, 9), sps.t.cdf((d.mean() - 1) / se, 9))
    dof, p, diff = tost(x, y, bound=1.0, paired=True)
    assert dof == 9 and diff == pytest.approx(0.4)
    assert p == pytest.approx(p_expected, rel=TOL)


def test_tost_is_symmetric_in_its_two_conditions():
    # Swapping real and generated negates the mean difference and swaps the two one-sided legs, so
    # p must not change. In the by-hand case above the difference is positive and the upper leg
    # decides p; here the lower leg (H0: diff <= -bound) decides it, which pins that leg too.
    x = np.array([4, 3, 5, 4, 2, 3, 4, 5, 3, 4], float)
    y = np.array([3, 3, 4, 5, 2, 2, 4, 4, 3, 3], float)
    for paired in (True, False):
        dof, p, diff = tost(x, y, bound=1.0, paired=paired)
        dof_m, p_m, diff_m = tost(y, x, bound=1.0, paired=paired)
        assert dof_m == dof and diff_m == pytest.approx(-diff) and diff_m == pytest.approx(-0.4)
        assert p_m == pytest.approx(p, rel=TOL)


def test_paired_tost_with_negative_difference_by_hand():
    x = np.array([2, 3, 3, 4, 2, 3, 2, 3], float)
    y = np.array([3, 3, 4, 4, 3, 4, 2, 4], float)
    # d = x - y = five -1s and three 0s: mean -5/8; SS about the mean = 5 (3/8)^2 + 3 (5/8)^2 = 15/8,
    # so s^2 = 15/56 and se = sqrt(15/448). The lower leg t = (-5/8 + 1) / se = 2.049 is the weak
    # one (p = 0.0399 on 7 dof); the upper leg t = (-5/8 - 1) / se = -8.88 is far in its tail.
    se = np.sqrt(15 / 448)
    p_lower = sps.t.sf((-5 / 8 + 1) / se, 7)
    p_upper = sps.t.cdf((-5 / 8 - 1) / se, 7)
    assert p_lower > p_upper and p_lower == pytest.approx(0.0399, abs=5e-4)
    dof, p, diff = tost(x, y, bound=1.0, paired=True)
    assert dof == 7 and diff == pytest.approx(-0.625)
    assert p == pytest.approx(p_lower, rel=TOL)
    # Each leg is a one-sided one-sample t-test of the shifted differences (scipy).
    d = x - y
    p_low = sps.ttest_1samp(d + 1.0, 0, alternative="greater").pvalue
    p_high = sps.ttest_1samp(d - 1.0, 0, alternative="less").pvalue
    assert p == pytest.approx(max(p_low, p_high), rel=TOL)


def test_unpaired_tost_is_student_with_2n_minus_2_dof():
    rng = np.random.default_rng(1)
    x, y = rng.normal(3.5, 1, 29), rng.normal(3.2, 1, 29)
    dof, p, _ = tost(x, y, bound=1.0, paired=False)
    assert dof == 56  # the paper's Table 4
    # Each one-sided test equals a shifted two-sample t-test (scipy, equal variances).
    p_low = sps.ttest_ind(x + 1.0, y, alternative="greater").pvalue
    p_high = sps.ttest_ind(x - 1.0, y, alternative="less").pvalue
    assert p == pytest.approx(max(p_low, p_high), rel=TOL)


def test_tost_zero_spread():
    assert tost(np.full(5, 3.0), np.full(5, 3.0))[1] == 0.0
    assert tost(np.full(5, 5.0), np.full(5, 3.0))[1] == 1.0


def test_example_data_analysis_is_consistent(tmp_path):
    path = tmp_path / "sim.csv"
    path.write_text(to_csv(simulate_responses(SimulationConfig(seed=3))))
    responses = read_responses(path)
    result = analyze_responses(responses)
    doc = result.to_json()
    assert doc["n_participants"] == 31 and len(doc["excluded"]) == 3
    assert doc["simulated"] is True
    interaction = doc["anova"]["quality"][2]
    assert (interaction["ddof1"], interaction["ddof2"]) == (3, 90)  # the paper's F(3, 90)
    assert set(doc["anova"]["match"][0]) == {"effect", "F", "ddof1", "ddof2", "p_unc", "p_gg", "eps", "ng2", "note"}
    assert len(doc["tost"]) == doc["n_tests"] == 8
    # Bonferroni over all 8 tests and per-participant scene means (2 examples averaged).
    y, _ = participant_means(responses.data, "match", result.scenes)
    _, p, _ = tost(y[:, 0, 0], y[:, 1, 0], 1.0, True)
    row = doc["tost"][4]
    assert (row["rating"], row["scene"], row["dof"]) == ("match", "large", 30)
    assert row["p"] == pytest.approx(p, rel=TOL) and row["p_bonf"] == pytest.approx(min(1, 8 * p), rel=TOL)
    unpaired = analyze_responses(responses, SurveyStatsConfig(tost="unpaired")).to_json()
    assert unpaired["tost"][0]["dof"] == 60 and unpaired["tost_kind"] == "unpaired"


def test_normality_per_cell_and_small_n_caveat(tmp_path):
    path = tmp_path / "sim.csv"
    path.write_text(to_csv(simulate_responses(SimulationConfig(n_participants=5, seed=4))))
    norm = analyze_responses(read_responses(path)).normality
    assert norm["n"] == 5 and norm["n_cells"] == 16 and norm["n_tested"] == 0
    assert "n = 5 < 8" in norm["caveat"]
    path.write_text(to_csv(simulate_responses(SimulationConfig(n_participants=25, seed=4))))
    result = analyze_responses(read_responses(path))
    cell = result.normality["cells"][0]
    values = result.means["quality"][:, 0, 0]
    assert cell["p"] == pytest.approx(sps.normaltest(values).pvalue, rel=TOL)


def test_long_dataframe_entry_point_averages_replicates(cells):
    frame = _long(cells)
    doubled = pd.concat([frame.assign(y=frame.y + 0.5), frame.assign(y=frame.y - 0.5)])  # replicates, same means
    ours = rm_anova(doubled, dv="y", within=("A", "B"), subject="subject")
    pd.testing.assert_frame_equal(ours, rm_anova2(cells, names=("A", "B")))
    with pytest.raises(UserError):
        rm_anova(frame.iloc[1:], dv="y", within=("A", "B"), subject="subject")


@pytest.mark.parametrize("bound", [float("inf"), float("-inf"), float("nan"), 0.0, -1.0])
def test_bound_must_be_positive_and_finite(bound):
    with pytest.raises(UserError, match="bound"):
        SurveyStatsConfig(bound=bound)


def test_cli_refuses_infinite_bound(tmp_path, capsys):
    path = tmp_path / "sim.csv"
    path.write_text(to_csv(simulate_responses(SimulationConfig(seed=3))))
    assert main(["survey-stats", str(path), "--bound", "inf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--bound" in err and err.count("\n") == 1


def _constant_csv(tmp_path, n=4, scenes=("a", "b")):
    lines = ["participant,example,scene,source,quality,match"]
    lines += [f"p{p},{scene}1,{scene},{source},3,3" for p in range(n) for scene in scenes for source in ("real", "generated")]
    path = tmp_path / "constant.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_anova_without_residual_variance_is_undefined_not_a_crash(tmp_path):
    result = analyze_responses(read_responses(_constant_csv(tmp_path)))
    for table in result.anova.values():
        assert table[["F", "p_unc", "p_gg", "ng2"]].isna().to_numpy().all()
        assert table["note"].str.contains("zero error variance").all()
    row = result.to_json()["anova"]["quality"][0]
    assert row["F"] is None and row["p_unc"] is None and "zero error variance" in row["note"]


def test_identical_participants_give_undefined_f_not_rounding_noise():
    # Every participant rates the cells alike, so each error term is zero; computed by subtraction,
    # the interaction's error is a rounding residue that must not turn into a huge F.
    y = np.tile(np.array([[1.0, 2.3, 4.1], [2.7, 3.9, 1.3]]), (5, 1, 1))
    table = rm_anova2(y).set_index("effect")
    assert table["F"].isna().all() and table["ng2"].to_numpy() == pytest.approx(1.0)
    assert (table["note"] != "").all()
    normal = rm_anova2(y + np.random.default_rng(0).normal(size=y.shape))
    assert (normal["note"] == "").all() and normal["F"].notna().all()


def test_cli_constant_ratings_report_the_undefined_test(tmp_path, capsys):
    assert main(["survey-stats", str(_constant_csv(tmp_path)), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "zero error variance" in out and "nan" not in out
    assert "zero error variance" in (tmp_path / "out" / "report.md").read_text()
