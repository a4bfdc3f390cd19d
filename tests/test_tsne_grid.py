"""i2r tsne-grid end to end on a tiny folder, and the feature preparation it relies on."""

import csv
import json
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from i2r.analysis.tsne_grid import (Features, Item, TsneGridConfig, broadband_t60, compute_grid, prepare_features,
                                    run_tsne_grid)
from i2r.cli import main
from i2r.errors import UserError

FS = 16000


def decaying_noise(t60_s, rng, seconds=1.2):
    t = np.arange(int(seconds * FS)) / FS
    return 0.5 * rng.standard_normal(t.size) * 10 ** (-3 * t / t60_s)


@pytest.fixture()
def ir_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "irs"
    folder.mkdir()
    t60s = np.r_[np.full(6, 0.25), np.full(6, 0.8)]
    for i, t60 in enumerate(t60s):
        # One IR longer than the rest: analysed in its own batch.
        sf.write(folder / f"room{i:02d}.wav", decaying_noise(t60, rng, 1.5 if i == 10 else 1.2), FS)
        shade = (40, 40, 200) if t60 < 0.5 else (220, 60, 30)
        if i != 11:  # one IR without an image: a grey cell
            Image.new("RGB", (20, 14), shade).save(folder / f"room{i:02d}.png")
    (folder / "notes.txt").write_text("not an IR")
    (folder / "broken.wav").write_bytes(b"RIFF but not audio")
    return folder


def test_cli_writes_mosaics_and_a_bijective_assignment(ir_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["tsne-grid", str(ir_folder), "--out", str(out), "--thumb", "8", "--seed", "3"]) == 0
    captured = capsys.readouterr()
    assert "12 IRs on a 3x4 grid" in captured.out and "1 files skipped" in captured.out
    assert "broken.wav" in captured.err
    with open(out / "assignments.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    cells = {(int(r["row"]), int(r["col"])) for r in rows}
    assert len(cells) == 12 and all(0 <= r < 3 and 0 <= c < 4 for r, c in cells)
    t60 = {r["file"].split("/")[-1]: float(r["t60_s"]) for r in rows}
    assert 0.2 < t60["room00.wav"] < 0.3 and 0.7 < t60["room06.wav"] < 0.9
    mosaic = np.asarray(Image.open(out / "mosaic.png"))
    assert mosaic.shape == (24, 32, 3)
    for r in rows:
        tile = mosaic[int(r["row"]) * 8:(int(r["row"]) + 1) * 8, int(r["col"]) * 8:(int(r["col"]) + 1) * 8]
        expected = (128, 128, 128) if r["image"] == "" else ((40, 40, 200) if float(r["t60_s"]) < 0.5 else (220, 60, 30))
        assert np.abs(tile.reshape(-1, 3).mean(0) - expected).max() < 2
    assert Image.open(out / "mosaic_t60.png").size[0] > 100
    summary = json.loads((out / "config.json").read_text())["summary"]
    assert summary["missing_images"] == 1 and summary["dropped_unmeasurable"] == 0


def test_cli_reads_features_csv_and_reports_user_errors(ir_folder, tmp_path, capsys):
    out = tmp_path / "out"
    features = tmp_path / "features.csv"
    lines = ["file,image,t30_500_s,t30_1000_s"] + [f"ir{i}.wav,,{0.3 + i / 10},{0.2 + i / 10}" for i in range(6)]
    features.write_text("\n".join(lines + ["dead.wav,,,"]) + "\n")
    assert main(["tsne-grid", str(ir_folder), "--out", str(out), "--features", str(features)]) == 0
    assert "6 IRs on a 2x3 grid; 1 dropped" in capsys.readouterr().out
    features.write_text("file,t30_500_s\nir.wav,abc\n")
    assert main(["tsne-grid", str(ir_folder), "--out", str(out), "--features", str(features)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["tsne-grid", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_eval_run_without_saved_wavs_is_a_user_error(tmp_path, capsys):
    (tmp_path / "per_example.csv").write_text("image,ir_true,t60_true_s\na.png,a.wav,1.0\n")
    assert main(["tsne-grid", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--save-wavs" in capsys.readouterr().err


def test_prepare_features_imputes_per_ir_mean_and_drops_empty_rows():
    t30 = np.array([[0.5, np.nan, 2.0], [np.nan, np.nan, np.nan], [1.0, 1.0, 1.0], [0.25, 4.0, 1.0]])
    features, kept, imputed = prepare_features(t30)
    assert kept.tolist() == [True, False, True, True] and imputed == 1
    # The imputed band of row 0 is the mean of its log-T30s, i.e. log(1.0) before standardising.
    raw = np.log(np.array([[0.5, 1.0, 2.0], [1.0, 1.0, 1.0], [0.25, 4.0, 1.0]]))
    np.testing.assert_allclose(features, (raw - raw.mean(0)) / raw.std(0))


def test_broadband_t60_is_mean_of_500_and_1000_hz():
    bands = np.array([125, 250, 500, 1000, 2000, 4000.0])
    t30 = np.array([[9, 9, 1.0, 2.0, 9, 9], [9, 9, np.nan, 3.0, 9, 9], [9, 9, np.nan, np.nan, 9, 9]])
    np.testing.assert_allclose(broadband_t60(t30, bands), [1.5, 3.0, np.nan])


def eval_run(tmp_path, ir_folder, cells=None):
    """A folder as `i2r eval --data irs --out eval_run --save-wavs` leaves it, run in ``tmp_path``:
    ir_generated relative to that folder, images as the data set's manifest resolved them."""
    (ir_folder / "manifest.csv").write_text("image,ir,split,scene\n" + "".join(
        f"room{i:02d}.png,room{i:02d}.wav,test,s{i}\n" for i in range(0, 10, 2)))
    run = tmp_path / "eval_run"
    (run / "wavs").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"config": {"data": "irs", "out": "eval_run", "split": "test"}}))
    lines = ["index,image,ir_true,ir_generated,t60_true_s"]
    for i in range(0, 10, 2):
        shutil.copy(ir_folder / f"room{i:02d}.wav", run / "wavs" / f"{i:05d}_room{i:02d}.wav")
        lines.append(f"{i},{ir_folder.resolve()}/room{i:02d}.png,x.wav,eval_run/wavs/{i:05d}_room{i:02d}.wav,1.0")
    for line, (column, cell) in (cells or {}).items():
        row = lines[line - 1].split(",")
        row[{"image": 1, "ir_generated": 3}[column]] = cell
        lines[line - 1] = ",".join(row)
    (run / "per_example.csv").write_text("\n".join(lines) + "\n")
    return run


@pytest.mark.parametrize("where", ["eval's folder", "the run folder"])
def test_eval_run_folder_is_read_through_per_example_csv(ir_folder, tmp_path, capsys, monkeypatch, where):
    run = eval_run(tmp_path, ir_folder)
    # From elsewhere, the eval's folder is found from its --out (metrics.json).
    monkeypatch.chdir(tmp_path if where == "eval's folder" else run)
    assert main(["tsne-grid", str(run), "--out", str(tmp_path / "out"), "--thumb", "4"]) == 0
    assert "5 IRs on a 2x3 grid" in capsys.readouterr().out
    with open(tmp_path / "out" / "assignments.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["file"].split("/")[-1] for r in rows) == [f"{i:05d}_room{i:02d}.wav" for i in range(0, 10, 2)]
    assert all(r["image"].endswith(".png") for r in rows)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["summary"]["unreadable_images"] == 0


def run_cli(*argv) -> tuple[int, str]:
    """Exit status and stderr of ``i2r ARGV`` with every warning an error (so none can spill)."""
    import contextlib
    import io

    err = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(err):
        warnings.simplefilter("error")
        status = main(list(argv))
    return status, err.getvalue()


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "--seed must be a whole number from 0 to 4294967295"),
    ("--seed", str(2**32), "--seed must be"),
    ("--perplexity", "nan", "--perplexity must be a positive number"),
    ("--perplexity", "inf", "--perplexity must be a positive number"),
    ("--thumb", "100000", "--thumb must be a whole number of pixels from 1 to 1024"),
])
def test_cli_rejects_settings_out_of_range_before_any_work(ir_folder, tmp_path, option, value, message):
    status, err = run_cli("tsne-grid", str(ir_folder), "--out", str(tmp_path / "out"), option, value)
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: {message}") and value in err, err


@pytest.mark.parametrize("settings", [dict(seed=-1), dict(seed=2**32), dict(seed=1.5), dict(perplexity=float("nan")),
                                      dict(perplexity=0), dict(perplexity="30"), dict(thumb=0), dict(thumb=1025),
                                      dict(thumb=True), dict(n_jobs=0), dict(iterations=1), dict(method="umap")])
def test_library_config_checks_every_range(settings):
    with pytest.raises(UserError, match="must be"):
        TsneGridConfig(**settings)
    config = TsneGridConfig()
    for key, value in settings.items():
        setattr(config, key, value)
    with pytest.raises(UserError, match="must be"):
        run_tsne_grid("unused", "unused", config)


def test_mosaic_beyond_pillows_pixel_limit_is_refused_before_tsne(monkeypatch):
    import i2r.analysis.tsne_grid as tsne_grid

    monkeypatch.setattr(tsne_grid, "embed", lambda *a: pytest.fail("t-SNE ran"))
    features = Features(items=[Item(ir=f"{i}.wav", image=None) for i in range(100)], bands_hz=np.array([500.0, 1000.0]),
                        t30_s=np.random.default_rng(0).uniform(0.2, 2, (100, 2)))
    with pytest.raises(UserError, match="--thumb 1024 makes a 10240x10240 px mosaic of 100 IRs.*--thumb 945 or less"):
        compute_grid(features, TsneGridConfig(thumb=1024))


def write_features(tmp_path, text, name="features.csv", encoding="utf-8"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


HEADER = "file,image,t30_500_s,t30_1000_s\n"
GOOD_ROWS = "".join(f"ir{i}.wav,,{0.3 + i / 10},{0.2 + i / 10}\n" for i in range(5))


@pytest.mark.parametrize("text, message", [
    ("file,t30_abc_s\na.wav,1\n", "line 1: column 't30_abc_s' is not t30_<Hz>_s"),
    ("file,t30_-5_s\na.wav,1\n", "line 1: column 't30_-5_s' is not t30_<Hz>_s"),
    ("file,t30_500_s,t30_500.0_s\na.wav,1,1\n", "line 1: a band appears in two t30 columns"),
    (HEADER + GOOD_ROWS + "b.wav,,inf,1\n", "line 7, column t30_500_s: 'inf' is not a positive"),
    (HEADER + GOOD_ROWS + "b.wav,,1,-0.5\n", "line 7, column t30_1000_s: '-0.5' is not a positive"),
    ("file,image,t30_500_s,t30_1000_s\na.wav,,,\nb.wav,,nan,\n", "no IR had a measurable T30"),
    ("file,image,t30_500_s,t30_1000_s\n" + GOOD_ROWS + "ir1.wav,,1,1\n", "line 7: file 'ir1.wav' repeats line 3"),
    ("file,image,t30_500_s,t30_1000_s\n" + GOOD_ROWS + "b.wav,,1\n", "line 7: 4 columns in the header, a different"),
    ("file,image,t30_500_s\na.wav,,0.5\n".encode("latin-1") + "é.wav,,1\n".encode("latin-1"), "not UTF-8 text"),
])
def test_features_csv_mistakes_are_one_error_line(ir_folder, tmp_path, text, message):
    path = write_features(tmp_path, text)
    status, err = run_cli("tsne-grid", str(ir_folder), "--out", str(tmp_path / "out"), "--features", path)
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err


def test_features_csv_with_one_band_and_nan_cells_runs(ir_folder, tmp_path, capsys):
    rows = "".join(f"ir{i}.wav,,{0.3 + i / 10}\n" for i in range(5))
    path = write_features(tmp_path, "\ufefffile,image,t30_500_s\n" + rows + "dead.wav,,nan\n")
    assert main(["tsne-grid", str(ir_folder), "--out", str(tmp_path / "out"), "--features", path]) == 0
    assert "5 IRs on a 2x3 grid; 1 dropped" in capsys.readouterr().out


def test_features_csv_images_stay_in_its_folder_or_the_results_folder(ir_folder, tmp_path, capsys):
    outside = tmp_path / "in"
    outside.mkdir()
    shutil.copy(ir_folder / "room00.png", outside / "ok.png")
    head = "file,image,t30_500_s,t30_1000_s\n"
    for name, cell in [("csvs/a.csv", "/etc/passwd"), ("csvs/sub/dir/b.csv", "../../../in/ok.png"),
                       ("csvs/c.csv", str(outside / "ok.png")), ("csvs/d.csv", "x\0.png")]:
        path = write_features(tmp_path, head + GOOD_ROWS + f"b.wav,{cell},1,1\n", name)
        status, err = run_cli("tsne-grid", str(ir_folder), "--out", str(tmp_path / "out"), "--features", path)
        assert status == 2 and err.startswith(f"error: {path}, line 7, column image: ") and len(err.splitlines()) == 1
    # What tsne-grid itself writes, and images next to the CSV or in RESULTS_DIR given relative to it.
    assert main(["tsne-grid", str(ir_folder), "--out", str(tmp_path / "first"), "--thumb", "4"]) == 0
    assert main(["tsne-grid", str(ir_folder), "--out", str(tmp_path / "again"), "--thumb", "4",
                 "--features", str(tmp_path / "first" / "assignments.csv")]) == 0
    path = write_features(tmp_path, head + GOOD_ROWS.replace("ir0.wav,,", "ir0.wav,ok.png,").replace(
        "ir1.wav,,", "ir1.wav,../../irs/room01.png,"), "in/sub/e.csv")
    shutil.copy(ir_folder / "room00.png", outside / "sub" / "ok.png")
    capsys.readouterr()
    assert main(["tsne-grid", str(ir_folder), "--out", str(tmp_path / "out"), "--features", path]) == 0
    assert "0 files skipped" in capsys.readouterr().out


@pytest.mark.parametrize("column, cell, message", [
    ("ir_generated", "../irs/room00.wav", "leads outside"),
    ("ir_generated", "{irs}/room00.wav", "leads outside"),
    ("image", "/etc/passwd", "and is not an image of the eval's data set"),
    ("image", "{irs}/room01.png", "and is not an image of the eval's data set"),  # in the folder, not the test split
    ("image", "../irs/room01.png", "and is not an image of the eval's data set"),
    ("ir_generated", "eval_run/wavs/00000_room00.wav", "ir_generated '{run}/wavs/00000_room00.wav' repeats line 2"),
])
def test_per_example_csv_paths_stay_in_the_run_folder_or_the_data_set(ir_folder, tmp_path, monkeypatch,
                                                                     column, cell, message):
    monkeypatch.chdir(tmp_path)
    run = eval_run(tmp_path, ir_folder, {3: (column, cell.format(irs=ir_folder.resolve()))})
    status, err = run_cli("tsne-grid", str(run), "--out", str(tmp_path / "out"))
    assert status == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {run}/per_example.csv, line 3") and message.format(run=run.resolve()) in err, err


def test_per_example_csv_that_is_not_utf8_is_one_error_line(tmp_path):
    (tmp_path / "per_example.csv").write_bytes("image,ir_generated\nsalle_é.png,a.wav\n".encode("latin-1"))
    status, err = run_cli("tsne-grid", str(tmp_path), "--out", str(tmp_path / "o"))
    assert status == 2 and err.splitlines() == [f"error: {tmp_path}/per_example.csv: not UTF-8 text "
                                                "(invalid continuation byte at byte 25)"]


def test_unreadable_images_are_drawn_grey_and_counted(ir_folder, tmp_path, capsys):
    (ir_folder / "room03.png").write_bytes(b"\x89PNG but not really")
    out = tmp_path / "out"
    assert main(["tsne-grid", str(ir_folder), "--out", str(out), "--thumb", "8"]) == 0
    captured = capsys.readouterr()
    assert "12 IRs on a 3x4 grid" in captured.out and "2 files skipped" in captured.out  # broken.wav + room03.png
    assert "room03.png: image not readable, drawn grey" in captured.err
    summary = json.loads((out / "config.json").read_text())["summary"]
    assert summary["unreadable_images"] == 1 and summary["missing_images"] == 1
