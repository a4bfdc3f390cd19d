"""The ablation protocol, its statistics and its report."""

from pathlib import Path

import numpy as np
import pytest

from i2r.analysis.ablations import (bootstrap_ci, load_protocol, paired_abs_test, summarize_errors,
                                    write_ablation_report)
from i2r.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["ablations.toml", "ablations_synthetic.toml"])
def test_shipped_protocols_parse(name):
    protocol = load_protocol(REPO / "eval" / name)
    names = [v.name for v in protocol.variants]
    assert names == ["main", "-depth", "-T60p", "-Places365", "NN"]
    assert protocol.depth_settings == ["auto", "0", "0.5"]
    assert Path(protocol.data).is_absolute()
    assert protocol.variant("NN").baseline_of == "main"
    assert protocol.variant("-depth").train["no_depth"] is True


def write(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_protocol_mistakes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such protocol"):
        load_protocol(tmp_path / "missing.toml")
    with pytest.raises(UserError, match="not valid TOML"):
        load_protocol(write(tmp_path, "[protocol\n"))
    with pytest.raises(UserError, match="'data'"):
        load_protocol(write(tmp_path, '[protocol]\nname = "x"\n'))
    with pytest.raises(UserError, match="main variant"):
        load_protocol(write(tmp_path, '[protocol]\nname = "x"\ndata = "d"\n[[variant]]\nname = "a"\ncheckpoint = "a.pt"\n'))
    with pytest.raises(UserError, match="unknown variant"):
        load_protocol(write(tmp_path, '[protocol]\nname = "x"\ndata = "d"\n[[variant]]\nname = "main"\n'
                                      'checkpoint = "a.pt"\n[[variant]]\nname = "NN"\nbaseline_of = "other"\n'))


def test_bootstrap_ci_brackets_the_sample_statistics():
    rng = np.random.default_rng(0)
    errors = rng.normal(5.0, 20.0, size=200)
    ci = bootstrap_ci(errors, seed=1, n=2000)
    assert ci["mean"][0] < errors.mean() < ci["mean"][1]
    assert ci["sd"][0] < errors.std(ddof=1) < ci["sd"][1]
    # The CI of the mean is about +-1.96 standard errors wide.
    assert ci["mean"][1] - ci["mean"][0] == pytest.approx(2 * 1.96 * 20.0 / np.sqrt(200), rel=0.25)


def test_paired_test_uses_only_shared_examples_and_detects_a_worse_variant():
    rng = np.random.default_rng(2)
    keys = [(f"img{i}", f"ir{i}") for i in range(40)]
    main = {k: float(v) for k, v in zip(keys, rng.normal(0, 10, 40))}
    worse = {k: 3 * v + 5 for k, v in main.items()}
    worse[("extra", "only here")] = 0.0
    result = paired_abs_test(worse, main)
    assert result["n_pairs"] == 40
    assert result["p"] < 1e-6
    assert result["median_abs_diff"] > 0
    assert paired_abs_test(main, main)["p"] is None  # identical: no test to run


def test_report_has_tables_figures_and_latex(tmp_path):
    protocol = load_protocol(REPO / "eval" / "ablations_synthetic.toml")
    rng = np.random.default_rng(3)
    keys = [(f"i{i}", f"r{i}") for i in range(30)]
    errors = {v.name: {k: float(x) for k, x in zip(keys, rng.normal(0, 10 + j, 30))}
              for j, v in enumerate(protocol.variants)}
    table3 = {n: summarize_errors(e, None if n == "main" else errors["main"], 0) for n, e in errors.items()}
    depth = {d: errors["main"] for d in protocol.depth_settings}
    table5 = {d: summarize_errors(e, None, 0) for d, e in depth.items()}
    paths = write_ablation_report(protocol, tmp_path, errors, table3, depth, table5)
    markdown = Path(paths["markdown"]).read_text()
    assert "Table 3" in markdown and "Table 5" in markdown and "-T60p" in markdown
    assert "data:image/png;base64," in Path(paths["html"]).read_text()
    assert {p.name for p in paths["latex"]} == {"table3.tex", "table5.tex"}
    assert r"\toprule" in (tmp_path / "table3.tex").read_text()
    for stem in ("fig8_t60_error_by_variant", "fig10_depth_steering"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
        assert (tmp_path / f"{stem}.pdf").stat().st_size > 1000
