"""The ablation protocol, its statistics and its report."""

import json
from pathlib import Path

import numpy as np
import pytest

from i2r.analysis.ablations import (bootstrap_ci, data_fingerprint, load_protocol, paired_abs_test,
                                    summarize_errors, write_ablation_report)
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


HEAD = '[protocol]\nname = "x"\ndata = "d"\n'
MAIN = '[[variant]]\nname = "main"\ncheckpoint = "a.pt"\n'


@pytest.mark.parametrize("text, message", [
    (HEAD + 'seed = "abc"\n' + MAIN, "[protocol] seed must be a whole number from 0 to 4294967295, not 'abc'"),
    (HEAD + "seed = -1\n" + MAIN, "[protocol] seed must be a whole number"),
    (HEAD + "batch_size = 0\n" + MAIN, "[protocol] batch_size must be a whole number of at least 1"),
    ('protocol = "x"\n', "[protocol] must be a table"),
    (HEAD + '[[variant]]\nname = "main"\ncheckpoint = 5\n', "variant 'main' needs a 'checkpoint' string, not 5"),
    (HEAD + MAIN + 'train = "x"\n', "variant 'main': train must be a table"),
    (HEAD + MAIN + 'description = ["a"]\n', "variant 'main' needs a 'description' string"),
    (HEAD + 'depth_settings = "0.5"\n' + MAIN, "[protocol] depth_settings must be a list"),
    (HEAD + 'depth_settings = ["auto", 2]\n' + MAIN, "[protocol] depth_settings: constant depth 2.0 is outside [0, 1]"),
    (HEAD + 'depth_settings = [true]\n' + MAIN, "[protocol] depth_settings: True is not a depth setting"),
    (HEAD + 'split = "tset"\n' + MAIN, "[protocol] split must be one of train, val, test"),
    (HEAD + 't60_definition = 30\n' + MAIN, "[protocol] needs a 't60_definition' string"),
    (HEAD + 'main = 1\n' + MAIN, "[protocol] needs a 'main' string"),
    (HEAD + 'depth_setting = ["auto"]\n' + MAIN, "[protocol] has unknown key(s) ['depth_setting']"),
    (HEAD + MAIN + 'chekpoint = "b.pt"\n', "variant 'main' has unknown key(s) ['chekpoint']"),
    (HEAD + 'train = "x"\n' + MAIN, "[protocol] has unknown key(s) ['train']"),
    ('train = "x"\n' + HEAD + MAIN, "[train] must be a table"),
    (HEAD + 'variant = "x"\n', "[protocol] has unknown key(s) ['variant']"),
    ('variant = "x"\n' + HEAD, "variants must be [[variant]] tables"),
    ('[variant]\nname = "main"\n' + HEAD, "variants must be [[variant]] tables"),
])
def test_protocol_values_of_the_wrong_type_or_range_are_user_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as error:
        load_protocol(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value), str(error.value)


def test_bootstrap_ci_is_95_percent_wide():
    """With 200 errors the percentile bootstrap is close to normal theory on the sample's own
    moments (the plug-in distribution it resamples): +-1.96 standard errors, ``sqrt(m2 / n)`` for
    the mean and ``sqrt(m2) / 2 * sqrt((m4 / m2**2 - 1) / n)`` for the SD (delta method). 20,000
    resamples put the Monte-Carlo error of the width near 1 %; a 90 % or 99 % interval would be
    16 % narrower or 31 % wider."""
    rng = np.random.default_rng(0)
    errors = rng.normal(5.0, 20.0, size=200)
    ci = bootstrap_ci(errors, seed=1, n=20000)
    assert ci["mean"][0] < errors.mean() < ci["mean"][1]
    assert ci["sd"][0] < errors.std(ddof=1) < ci["sd"][1]
    deviation = errors - errors.mean()
    m2, m4 = np.mean(deviation ** 2), np.mean(deviation ** 4)
    se_mean = np.sqrt(m2 / errors.size)
    se_sd = np.sqrt(m2) / 2.0 * np.sqrt((m4 / m2 ** 2 - 1.0) / errors.size)
    assert ci["mean"][1] - ci["mean"][0] == pytest.approx(2 * 1.96 * se_mean, rel=0.04)
    assert ci["sd"][1] - ci["sd"][0] == pytest.approx(2 * 1.96 * se_sd, rel=0.04)


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
    # Each Table 3 row has as many cells as the header, whose "|error|" must not split a cell.
    lines = [l for l in markdown.splitlines() if l.startswith("| ")]
    header_cells = lines[0].replace("\\|", "").count("|")
    assert header_cells == 10 and all(l.replace("\\|", "").count("|") == header_cells for l in lines[:6])
    assert "data:image/png;base64," in Path(paths["html"]).read_text()
    assert {p.name for p in paths["latex"]} == {"table3.tex", "table5.tex"}
    assert r"\toprule" in (tmp_path / "table3.tex").read_text()
    for stem in ("fig8_t60_error_by_variant", "fig10_depth_steering"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
        assert (tmp_path / f"{stem}.pdf").stat().st_size > 1000


# --- `i2r report --ablations` end to end ------------------------------------------------------------

REPORT_FILES = ["report.md", "report.html", "table3.tex", "table5.tex"] + [
    f"{stem}.{ext}" for stem in ("fig8_t60_error_by_variant", "fig10_depth_steering") for ext in ("png", "pdf")]


def run_report(*argv) -> tuple[int, str, str]:
    """``i2r report ...`` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from i2r.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["report", *map(str, argv)])
    return status, out.getvalue(), err.getvalue()


def tiny_protocol(folder: Path, data: Path, variants: str, head: str = "", train: str = "") -> Path:
    path = folder / "tiny.toml"
    path.write_text(f'[protocol]\nname = "tiny"\ndata = "{data}"\nout = "report"\n{head}\n{train}\n{variants}')
    return path


def evaluations(stderr: str) -> tuple[list[str], list[str]]:
    """(evaluations run, evaluations reused) as cached_evaluation reports them."""
    lines = stderr.splitlines()
    return ([l for l in lines if l.startswith("evaluating ")], [l for l in lines if l.startswith("reusing evaluation ")])


def test_report_end_to_end_caches_every_evaluation(tiny_checkpoint, tiny_dataset, tmp_path):
    """main + NN, estimated and constant-0 depth on the 2 val pairs: two evaluations, then none."""
    import shutil

    shutil.copy(tiny_checkpoint, tmp_path / "main.pt")
    protocol = tiny_protocol(tmp_path, tiny_dataset, '[[variant]]\nname = "main"\ncheckpoint = "main.pt"\n'
                             '[[variant]]\nname = "NN"\nbaseline_of = "main"\n',
                             head='split = "val"\ndepth_settings = ["auto", "0"]')
    status, stdout, stderr = run_report("--ablations", protocol)
    assert status == 0, stderr
    report = tmp_path / "report"
    assert stdout == f"report: {report / 'report.md'}\n"
    ran, reused = evaluations(stderr)
    # NN comes with main's evaluation, and main's own depth mode (auto) is Table 5's first row.
    assert len(ran) == 2 and not reused and "(depth 0)" in ran[1]
    for name in REPORT_FILES:
        assert (report / name).stat().st_size > 200, name
    markdown = (report / "report.md").read_text()
    for row in ("| main | ", "| NN | ", "| estimated | ", "| constant 0 | "):
        assert row in markdown
    table3 = json.loads((report / "cache" / ran[0].split()[-1].rsplit("/", 1)[-1] / "metrics.json").read_text())
    stamps = {p: (p / "metrics.json").stat().st_mtime_ns for p in (report / "cache").iterdir()}
    assert len(stamps) == 2 and table3["baseline_nn"]["t60_error_pct"]["n"] == 2

    status, _, stderr = run_report("--ablations", protocol)
    ran, reused = evaluations(stderr)
    assert status == 0 and not ran and len(reused) == 2
    assert {p: (p / "metrics.json").stat().st_mtime_ns for p in stamps} == stamps

    depth0 = reused[1].split()[-1]
    assert "(depth 0)" in reused[1]
    shutil.rmtree(depth0)
    status, _, stderr = run_report("--ablations", protocol)
    ran, reused = evaluations(stderr)
    assert status == 0 and len(ran) == 1 and ran[0].endswith(depth0) and len(reused) == 1


def test_report_refuses_a_protocol_without_its_data(tmp_path):
    protocol = tiny_protocol(tmp_path, tmp_path / "nowhere", '[[variant]]\nname = "main"\ncheckpoint = "m.pt"\n')
    status, stdout, stderr = run_report("--ablations", protocol)
    assert status == 2 and stdout == ""
    assert stderr.startswith("error: ") and "nowhere does not exist" in stderr and stderr.count("\n") == 1


def test_report_names_missing_checkpoints_and_bad_train_settings(tiny_dataset, tmp_path):
    variants = '[[variant]]\nname = "main"\ncheckpoint = "runs/main/last.pt"\n'
    status, _, stderr = run_report("--ablations", tiny_protocol(tmp_path, tiny_dataset, variants))
    assert status == 2 and "no checkpoint for variant(s) ['main']" in stderr
    protocol = tiny_protocol(tmp_path, tiny_dataset, variants, train="[train]\nmax_stepz = 2\n")
    status, _, stderr = run_report("--ablations", protocol, "--train")
    assert status == 2 and "max_stepz" in stderr and "[train]" in stderr and stderr.count("\n") == 1


@pytest.mark.slow
def test_report_trains_the_missing_variants_and_reuses_everything(tiny_dataset, tmp_path):
    """The paper's study in miniature: main, -depth, -T60p, NN trained for 2 steps, 3 depth settings."""
    import shutil

    variants = "".join(f'[[variant]]\nname = "{name}"\ncheckpoint = "runs/{folder}/last.pt"\n{flags}'
                       for name, folder, flags in [("main", "main", ""), ("-depth", "no_depth", "train = { no_depth = true }\n"),
                                                   ("-T60p", "no_t60p", "train = { no_t60p = true }\n")])
    variants += '[[variant]]\nname = "NN"\nbaseline_of = "main"\n'
    train = ('[train]\npreset = "small"\nresolution = 32\nimage_size = 64\nmax_steps = 2\nbatch_size = 2\n')
    protocol = tiny_protocol(tmp_path, tiny_dataset, variants, train=train)
    status, _, stderr = run_report("--ablations", protocol, "--train")
    assert status == 0, stderr[-3000:]
    for folder in ("main", "no_depth", "no_t60p"):
        assert (tmp_path / "runs" / folder / "last.pt").is_file()
    ran, reused = evaluations(stderr)
    assert len(ran) == 5 and not reused  # 3 checkpoints + depth 0 and 0.5 of main
    report = tmp_path / "report"
    for name in REPORT_FILES:
        assert (report / name).stat().st_size > 200, name
    markdown = (report / "report.md").read_text()
    for row in ("| main | ", "| -depth | ", "| -T60p | ", "| NN | ", "| estimated | ", "| constant 0 | ",
                "| constant 0.5 | "):
        assert row in markdown
    assert r"-T60p" in (report / "table3.tex").read_text()

    status, _, stderr = run_report("--ablations", protocol)
    ran, reused = evaluations(stderr)
    assert status == 0 and not ran and len(reused) == 5
    victim = Path(reused[1].split()[-1])
    shutil.rmtree(victim)
    status, _, stderr = run_report("--ablations", protocol)
    ran, reused = evaluations(stderr)
    assert status == 0 and len(ran) == 1 and ran[0].endswith(str(victim)) and len(reused) == 4


def test_data_fingerprint_follows_the_manifest_or_the_files(tmp_path):
    manifest = tmp_path / "manifest_set"
    manifest.mkdir()
    (manifest / "manifest.csv").write_text("image,ir,split,scene\n")
    before = data_fingerprint(str(manifest))
    assert data_fingerprint(str(manifest / "manifest.csv")) == before
    (manifest / "manifest.csv").write_text("image,ir,split,scene\na.png,a.wav,test,a\n")
    assert data_fingerprint(str(manifest)) != before
    pix2pix = tmp_path / "pix2pix"
    (pix2pix / "test_A").mkdir(parents=True)
    (pix2pix / "test_A" / "a.png").write_bytes(b"x")
    before = data_fingerprint(str(pix2pix))
    (pix2pix / "test_A" / "b.png").write_bytes(b"y")
    assert data_fingerprint(str(pix2pix)) != before


def test_the_cache_key_holds_the_batch_size(tiny_checkpoint, tiny_dataset, tmp_path, monkeypatch, capsys):
    """Another batch size rounds the network's sums differently (about 1e-6), so it is another evaluation."""
    import i2r.analysis.ablations as ablations
    from i2r.evaluate import EvalConfig

    def fake_evaluate(config):
        Path(config.out).mkdir(parents=True)
        (Path(config.out) / "metrics.json").write_text("{}")

    monkeypatch.setattr(ablations, "evaluate", fake_evaluate)
    folders = [ablations.cached_evaluation(EvalConfig(checkpoint=str(tiny_checkpoint), data=str(tiny_dataset),
                                                      batch_size=size), tmp_path) for size in (8, 4, 8)]
    ran, reused = evaluations(capsys.readouterr().err)
    assert len(ran) == 2 and len(reused) == 1 and folders[0] == folders[2] != folders[1]
