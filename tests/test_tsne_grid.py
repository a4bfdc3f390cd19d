"""i2r tsne-grid end to end on a tiny folder, and the feature preparation it relies on."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from i2r.analysis.tsne_grid import broadband_t60, prepare_features
from i2r.cli import main

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


def test_eval_run_folder_is_read_through_per_example_csv(ir_folder, tmp_path, capsys):
    run = tmp_path / "eval_run"
    run.mkdir()
    lines = ["index,image,ir_true,ir_generated,t60_true_s"]
    lines += [f"{i},../irs/room{i:02d}.png,x.wav,../irs/room{i:02d}.wav,1.0" for i in range(0, 10, 2)]
    (run / "per_example.csv").write_text("\n".join(lines) + "\n")
    assert main(["tsne-grid", str(run), "--out", str(tmp_path / "out"), "--thumb", "4"]) == 0
    assert "5 IRs on a 2x3 grid" in capsys.readouterr().out
    with open(tmp_path / "out" / "assignments.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["file"].split("/")[-1] for r in rows) == [f"room{i:02d}.wav" for i in range(0, 10, 2)]
    assert all(r["image"].endswith(".png") for r in rows)
