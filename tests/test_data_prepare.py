"""`i2r prepare`: raw pairs -> ready data set (resample, mono, pad, crop, 360° views), resumable."""

import csv
import json
import re

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from i2r.audio import IR_SAMPLES, SAMPLE_RATE
from i2r.cli import main
from i2r.data.datasets import PairedDataset
from i2r.data.pix2pix import read_pix2pix
from i2r.data.prepare import PrepareConfig, prepare_dataset
from i2r.errors import UserError


def _raw_set(root):
    """3 photos (non-square), IRs at 48 kHz stereo / 44.1 kHz B-format, a corrupt IR, depth maps."""
    (root / "photos").mkdir(parents=True)
    (root / "irs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(root / "photos" / f"p{i}.jpg")
        Image.fromarray(rng.integers(0, 65535, (30, 50), dtype=np.uint16)).save(root / "photos" / f"p{i}_depth.png")
    decay = np.exp(-np.arange(2400) / 300.0)
    sf.write(root / "irs" / "hall.wav", (rng.standard_normal((2, 2400)) * decay).T * 0.3, 48000)
    sf.write(root / "irs" / "room.wav", (rng.standard_normal((4, 2205)) * decay[:2205]).T * 0.3, 44100)
    (root / "irs" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    rows = [
        ["photos/p0.jpg", "irs/hall.wav", "train", "hall", "photos/p0_depth.png"],
        ["photos/p1.jpg", "irs/room.wav", "test", "room", "photos/p1_depth.png"],
        ["photos/p2.jpg", "irs/broken.wav", "train", "cellar", "photos/p2_depth.png"],
        ["photos/p0.jpg", "irs/broken.wav", "train", "cellar", "photos/p0_depth.png"],
    ]
    with open(root / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "ir", "split", "scene", "depth"])
        writer.writerows(rows)
    return root / "pairs.csv"


def test_prepare_end_to_end_and_resume(tmp_path):
    raw = _raw_set(tmp_path / "raw")
    config = PrepareConfig(raw=str(raw), out=str(tmp_path / "ready"), image_size=24)
    summary = prepare_dataset(config, progress=False)
    assert summary.pairs == 2 and summary.skipped_pairs == 2
    assert [path.endswith("broken.wav") for path, _ in summary.bad] == [True]

    train = PairedDataset(tmp_path / "ready", "train", resolution=64, image_size=24)
    assert len(train) == 1 and train.skipped == [] and train[0]["scene"] == "hall"
    assert train[0]["depth"].shape == (1, 24, 24)
    samples, fs = sf.read(train.records[0].ir_path, always_2d=True)
    assert fs == SAMPLE_RATE and samples.shape == (IR_SAMPLES, 1)
    assert np.max(np.abs(samples)) == pytest.approx(1.0, abs=1e-6)
    with Image.open(train.records[0].image_path) as image:
        assert image.size == (24, 24)
    with Image.open(train.records[0].depth_path) as depth:
        assert depth.size == (24, 24) and np.asarray(depth).dtype == np.uint16

    again = prepare_dataset(config, progress=False)
    assert again.written == 0 and again.reused == summary.written and again.pairs == 2
    with pytest.raises(UserError, match="image_size 24 -> 32"):
        prepare_dataset(PrepareConfig(raw=str(raw), out=str(tmp_path / "ready"), image_size=32), progress=False)


def test_prepare_cuts_panorama_views_into_pix2pix(tmp_path):
    raw = tmp_path / "raw"
    (raw / "train_A").mkdir(parents=True)
    (raw / "train_B").mkdir()
    pano = np.zeros((64, 128, 3), dtype=np.uint8)
    pano[:, 64 - 16 : 64 + 16] = (255, 0, 0)  # red from yaw -45 to +45 degrees: fills the 60-degree view at 0
    Image.fromarray(pano).save(raw / "train_A" / "space_0_label.png")
    sf.write(raw / "train_B" / "space_0_img.wav", np.r_[1.0, np.zeros(999)], 8000)
    config = PrepareConfig(raw=str(raw), out=str(tmp_path / "out"), image_size=16, layout="pix2pix", equirect_views=4, fov_deg=60)
    summary = prepare_dataset(config, progress=False)
    assert summary.pairs == 4
    records = read_pix2pix(tmp_path / "out", "train")
    assert len(records) == 4
    reds = {}
    for record in records:
        assert record.image_path.name[:-4] == record.ir_path.name[:-4]  # A/B names agree
        with Image.open(record.image_path) as image:
            reds[re.search(r"-yaw(\d{3})_", record.image_path.name).group(1)] = np.asarray(image)[..., 0].mean()
        assert record.scene == "space"
    assert reds["000"] > 250 and max(reds["090"], reds["180"], reds["270"]) < 10
    manifest = list(csv.DictReader(open(tmp_path / "out" / "manifest.csv")))
    assert sorted(row["view_yaw_deg"] for row in manifest) == ["0", "180", "270", "90"]
    assert json.loads((tmp_path / "out" / "prepare_config.json").read_text())["settings"]["equirect_views"] == 4


def test_prepare_cli_reports_and_fails_cleanly(tmp_path, capsys):
    raw = _raw_set(tmp_path / "raw")
    assert main(["prepare", str(raw), "--out", str(tmp_path / "o"), "--image-size", "16"]) == 0
    captured = capsys.readouterr()
    assert "2 pairs" in captured.out and "1 bad files, 2 pairs skipped" in captured.out
    assert "broken.wav" in captured.err
    assert main(["prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert capsys.readouterr().err.startswith("error:")


@pytest.mark.parametrize("option, value", [("--pitch", "nan"), ("--pitch", "500"), ("--image-size", "100000"),
                                           ("--equirect-views", "100000")])
def test_prepare_refuses_out_of_range_settings_in_one_line(tmp_path, capsys, option, value):
    raw = _raw_set(tmp_path / "raw")
    assert main(["prepare", str(raw), "--out", str(tmp_path / "o"), option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} must") and err.count("\n") == 1


def test_prepare_with_no_usable_pair_is_an_error_not_an_empty_success(tmp_path, capsys):
    raw = _raw_set(tmp_path / "raw")
    rows = raw.read_text().splitlines()
    raw.write_text("\n".join([rows[0], *(r for r in rows[1:] if "broken" in r)]) + "\n")
    assert main(["prepare", str(raw), "--out", str(tmp_path / "o"), "--image-size", "16"]) == 2
    err = capsys.readouterr().err
    assert "broken.wav" in err and err.splitlines()[-1].startswith(f"error: {raw}: no usable pairs")
