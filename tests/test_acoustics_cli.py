"""`i2r analyze`: the JSON contract on real IRs, CSV streaming and resume, folder walking, bad input,
decay plots, worker processes. Real files from ../shared/data/irs (MANIFEST.csv)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from i2r.acoustics import AnalysisConfig, analyze
from i2r.acoustics.batch import BAND_KEYS, CSV_COLUMNS, resume_csv
from i2r.cli import main

IRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "irs"
MONO = IRS / "seminar_room_clap_mono.wav"  # 1.0 s, 44.1 kHz
STEREO = IRS / "openair_genesis6_studio_drum_setup_stereo.wav"  # 0.975 s, 44.1 kHz
BFORMAT = IRS / "openair_arthur_sykes_rymer_bformat.wav"  # 1.5 s, 96 kHz, 4 channels
CONTRACT_KEYS = {"file", "fs", "bands_hz", *BAND_KEYS, "drr_db", "broadband", "warnings", "channels"}

pytestmark = pytest.mark.skipif(not IRS.is_dir(), reason="needs ../shared/data/irs")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["analyze", "--quiet", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_formats_and_exit_status(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for expected in ("--bands", "--filter-order", "--format", "--plot", "--jobs", "--out", "--resume", "Exit status",
                     "2 if any"):
        assert expected in text


def test_json_contract_on_mono_stereo_and_bformat(capsys):
    code, out, err = run_cli(capsys, MONO, STEREO, BFORMAT, "--format", "json")
    assert code == 0, err
    records = json.loads(out)
    assert [Path(r["file"]).name for r in records] == [MONO.name, STEREO.name, BFORMAT.name]
    assert [r["channels"] for r in records] == ["mono", "stereo: mean of channels", "B-format: W channel"]
    for record in records:
        assert CONTRACT_KEYS <= set(record)
        n_bands = len(record["bands_hz"])
        assert record["bands_hz"][:6] == [125, 250, 500, 1000, 2000, 4000]
        assert all(len(record[key]) == n_bands for key in BAND_KEYS)
        assert set(BAND_KEYS) <= set(record["broadband"])
        t30 = [v for v in record["t30_s"] if v is not None]
        assert t30 and all(0.05 < v < 5.0 for v in t30)
        assert 0.05 < record["broadband"]["t30_s"] < 5.0
        nulls = sum(v is None for key in BAND_KEYS for v in record[key])
        assert (nulls > 0) == (len(record["warnings"]) > 0)


def test_json_matches_the_library_on_the_w_channel(capsys):
    code, out, _ = run_cli(capsys, BFORMAT, "--format", "json")
    assert code == 0
    record = json.loads(out)[0]
    samples, fs = sf.read(BFORMAT, always_2d=True)
    params = analyze(samples[:, 0], fs)
    np.testing.assert_allclose(np.array(record["t30_s"], dtype=float), params.t30_s, rtol=1e-9)
    np.testing.assert_allclose(record["drr_db"], params.drr_db, rtol=1e-9)
    assert record["fs"] == fs == 96000


def test_third_octave_bands(capsys):
    code, out, err = run_cli(capsys, MONO, "--bands", "third", "--format", "json")
    assert code == 0, err
    record = json.loads(out)[0]
    assert record["bands_hz"][:4] == [100, 125, 160, 200] and record["bands_hz"][-1] <= 16000
    assert all(len(record[key]) == len(record["bands_hz"]) for key in BAND_KEYS)
    assert record["config"]["bands"] == "third"


def test_filter_order_reaches_the_measurement_and_is_saved(capsys):
    code, out, err = run_cli(capsys, MONO, "--filter-order", "6", "--format", "json")
    assert code == 0, err
    record = json.loads(out)[0]
    assert record["config"]["filter_order"] == 6
    samples, fs = sf.read(MONO)
    steep = analyze(samples, fs, config=AnalysisConfig(filter_order=6))
    np.testing.assert_allclose(np.array(record["edt_s"], dtype=float), steep.edt_s, rtol=1e-9)
    assert not np.allclose(steep.edt_s, analyze(samples, fs).edt_s, rtol=1e-3, equal_nan=True)
    for bad in ("0", "13"):
        code, out, err = run_cli(capsys, MONO, "--filter-order", bad)
        assert code == 2 and out == "" and err == f"error: --filter-order must be from 1 to 12 poles, got {bad}\n"


def test_table_is_the_default_and_lists_warnings(capsys):
    code, out, _ = run_cli(capsys, MONO)
    assert code == 0
    assert str(MONO) in out and "(fs 44100 Hz, mono)" in out
    header = next(line for line in out.splitlines() if "broadband" in line)
    assert header.split()[:3] == ["125", "250", "500"]
    assert any(line.startswith("t30_s") for line in out.splitlines())
    assert "warning: 125 Hz" in out  # the clap has no low-frequency energy: NaN with a reason


def _copy_tree(root: Path, names: list[str]) -> list[Path]:
    """Copies of MONO under nested folders, plus a non-audio file the walk must skip."""
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(MONO, path)
        paths.append(path)
    (root / "notes.txt").write_text("not audio")
    return paths


def _csv_files(path: Path) -> dict[str, list[dict]]:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert all(None not in row and len(row) == len(CSV_COLUMNS) for row in rows)
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
    return by_file


def test_folder_walk_csv_and_resume(tmp_path, capsys):
    first = _copy_tree(tmp_path / "irs", ["a.wav", "sub/b.wav", "sub/deeper/c.WAV"])
    out = tmp_path / "results.csv"
    code, stdout, err = run_cli(capsys, tmp_path / "irs", "--format", "csv", "--out", out)
    assert code == 0, err
    assert stdout == ""
    by_file = _csv_files(out)
    assert set(by_file) == {str(p) for p in first}
    for rows in by_file.values():
        assert [r["band"] for r in rows] == ["125", "250", "500", "1000", "2000", "4000", "8000", "broadband"]
        assert float(rows[-1]["t30_s"]) > 0.1 and rows[-1]["drr_db"] != ""

    added = _copy_tree(tmp_path / "irs", ["sub/d.flac"])
    code, _, err = run_cli(capsys, tmp_path / "irs", "--format", "csv", "--out", out, "--resume")
    assert code == 0, err
    assert "1 analysed, 0 failed, 3 skipped" in err
    by_file = _csv_files(out)
    assert set(by_file) == {str(p) for p in first + added}
    assert all(len(rows) == 8 for rows in by_file.values())


def test_resume_drops_a_cut_line_and_unfinished_files(tmp_path):
    done = ["x.wav", 44100, "mono", "broadband", *["1"] * 7, "0", ""]
    partial = ["y.wav", 44100, "mono", "125", *["1"] * 7, "", ""]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([CSV_COLUMNS, done, partial])
    path = tmp_path / "cut.csv"
    path.write_text(buffer.getvalue() + "y.wav,44100,mo")  # killed in the middle of a row
    assert resume_csv(path) == {"x.wav"}
    rows = list(csv.reader(path.open()))
    assert rows == [list(CSV_COLUMNS), [str(v) for v in done]]


def test_interrupted_run_keeps_a_valid_csv(tmp_path):
    _copy_tree(tmp_path / "irs", [f"ir{i:02d}.wav" for i in range(24)])
    out = tmp_path / "results.csv"
    cmd = [sys.executable, "-m", "i2r", "analyze", str(tmp_path / "irs"), "--format", "csv",
           "--out", str(out), "--batch-size", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count(",broadband,") >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be interrupted"
    kept = _csv_files(out)  # rows already flushed are complete and parse
    assert 2 <= len(kept) < 24
    code = main(["analyze", "--quiet", str(tmp_path / "irs"), "--format", "csv", "--out", str(out), "--resume"])
    assert code == 0
    by_file = _csv_files(out)
    assert len(by_file) == 24 and all(len(rows) == 8 for rows in by_file.values())


def _bad_inputs(root: Path) -> dict[str, tuple[Path, str]]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "text.wav").write_text("this is not audio")
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "zeros.wav", np.zeros(4410), 44100)
    nan = np.random.default_rng(0).standard_normal(4410)
    nan[100] = np.nan
    sf.write(root / "nan.wav", nan, 44100, subtype="FLOAT")
    inf = np.random.default_rng(1).standard_normal(4410)
    inf[7] = np.inf
    sf.write(root / "inf.wav", inf, 44100, subtype="FLOAT")
    sf.write(root / "short.wav", np.random.default_rng(2).standard_normal(300), 44100)
    whole = MONO.read_bytes()
    (root / "cut.wav").write_bytes(whole[: len(whole) // 2])  # a copy that stopped half-way
    return {"missing": (root / "missing.wav", "no such file"),
            "not audio": (root / "text.wav", "not readable as audio"),
            "empty": (root / "empty.wav", "not readable as audio"),
            "all zeros": (root / "zeros.wav", "all zeros"),
            "nan": (root / "nan.wav", "NaN or infinite"),
            "inf": (root / "inf.wav", "NaN or infinite"),
            "too short": (root / "short.wav", "too short"),
            "truncated": (root / "cut.wav", "truncated WAV")}


@pytest.mark.parametrize("case", ["missing", "not audio", "empty", "all zeros", "nan", "inf", "too short", "truncated"])
def test_bad_input_gives_one_error_line_and_the_good_file_is_still_analysed(tmp_path, capsys, case):
    bad, reason = _bad_inputs(tmp_path)[case]
    code, out, err = run_cli(capsys, MONO, bad, "--format", "json")
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert error_lines[0].startswith(f"error: {bad}: ") and reason in error_lines[0]
    assert "Traceback" not in err
    assert [r["file"] for r in json.loads(out)] == [str(MONO)]


def test_empty_folder_and_bad_options_are_user_errors(tmp_path, capsys):
    code, _, err = run_cli(capsys, tmp_path)
    assert code == 2 and err.startswith("error: no .wav or .flac files found")
    code, _, err = run_cli(capsys, MONO, "--resume")
    assert code == 2 and "--resume needs --format csv and --out" in err
    bad_csv = tmp_path / "other.csv"
    bad_csv.write_text("a,b\n1,2\n")
    code, _, err = run_cli(capsys, MONO, "--format", "csv", "--out", bad_csv, "--resume")
    assert code == 2 and "header differs" in err
    assert bad_csv.read_text() == "a,b\n1,2\n"


def test_an_unwritable_output_is_refused_before_any_file_is_measured(tmp_path, capsys):
    folder = tmp_path / "a folder"
    folder.mkdir()
    blocker = tmp_path / "a file"
    blocker.write_text("mine")
    for args, reason in (((MONO, "--out", folder), "is a folder, expected a file"),
                         ((MONO, "--out", blocker / "r.csv"), "a file is a file, expected a folder"),
                         ((MONO, "--plot", blocker), "a file: is a file, expected a folder")):
        with pytest.raises(SystemExit) as exc:  # refused while parsing the arguments
            run_cli(capsys, *args)
        out, err = capsys.readouterr()
        assert exc.value.code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: argument --")
        assert reason in err
    assert blocker.read_text() == "mine"


def test_plot_writes_one_png_per_file(tmp_path, capsys):
    from PIL import Image

    code, out, err = run_cli(capsys, MONO, STEREO, "--plot", tmp_path / "plots", "--format", "json",
                             "--out", tmp_path / "results.json")
    assert code == 0, err
    assert out == "" and len(json.loads((tmp_path / "results.json").read_text())) == 2
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name.split("__")[-1] for p in pngs] == [f"{STEREO.stem}.png", f"{MONO.stem}.png"]
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] >= 600 and image.size[1] >= 600
            # not a blank canvas: the curves, lines and text put many distinct colours in it
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 50


def test_band_decays_match_analyze():
    """The plotted fit line has the slope behind analyze's T30 (analyze fits on a 0.25 ms grid, the
    plot on every sample: within 1 %), so the figure shows what was measured."""
    from i2r.acoustics import AnalysisConfig
    from i2r.acoustics.plot import band_decays

    samples, fs = sf.read(STEREO, always_2d=True)
    ir = samples.mean(axis=1)
    params = analyze(ir, fs)
    decays = band_decays(ir, fs, AnalysisConfig())
    assert [d.label for d in decays][-1] == "broadband" and len(decays) == len(params.bands_hz) + 1
    for decay, t30 in zip(decays, list(params.t30_s) + [params.broadband["t30_s"]]):
        if np.isfinite(t30):
            assert -60.0 / decay.fits["t30_s"].slope_db_s == pytest.approx(t30, rel=0.01)
        assert decay.noise_db < -20.0 and decay.onset_s < decay.crosspoint_s <= decay.times_s[-1] + 1 / fs


def test_two_jobs_give_the_same_results_as_one(tmp_path, capsys):
    files = _copy_tree(tmp_path, ["a.wav", "b.wav"]) + [STEREO]
    code1, out1, _ = run_cli(capsys, *files, "--format", "json", "--batch-size", "1")
    code2, out2, err = run_cli(capsys, *files, "--format", "json", "--batch-size", "1", "--jobs", "2")
    assert code1 == code2 == 0, err
    one, two = json.loads(out1), json.loads(out2)
    # one process uses every core for its threads; worker processes take one thread each
    assert {r["config"].pop("workers") for r in one} == {0}
    assert {r["config"].pop("workers") for r in two} == {1}
    assert one == two
