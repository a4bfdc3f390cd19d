"""PairedDataset over the manifest and pix2pix formats, bad-file skipping, manifest validation."""

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import soundfile as sf
import torch
from PIL import Image

from i2r.audio import IR_SAMPLES, fit_spectrogram_norm
from i2r.data.datasets import PairedDataset, discover_pairs
from i2r.data.manifest import read_manifest
from i2r.errors import UserError


def _image(path: Path, colour=(200, 30, 10), size=(30, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _ir(path: Path, fs=16000, channels=2, seconds=0.05, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(fs * seconds)
    noise = np.random.default_rng(seed).standard_normal((n, channels)) * np.exp(-np.arange(n) / (0.01 * fs))[:, None]
    sf.write(path, 0.5 * noise, fs)
    return path


def _manifest(root: Path, rows, header=("image", "ir", "split", "scene")) -> Path:
    path = root / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def manifest_set(tmp_path):
    for i in range(3):
        _image(tmp_path / "images" / f"{i}.png", colour=(80 * i, 0, 0))
        _ir(tmp_path / "irs" / f"{i}.wav", seed=i)
        depth = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)
        Image.fromarray(depth).save(tmp_path / "images" / f"{i}_depth.png")
    rows = [[f"images/{i}.png", f"irs/{i}.wav", split, f"room{i}", f"images/{i}_depth.png", "1.5"]
            for i, split in enumerate(["train", "train", "test"])]
    _manifest(tmp_path, rows, header=("image", "ir", "split", "scene", "depth", "t60_s"))
    return tmp_path


def test_manifest_items_have_the_documented_shapes(manifest_set):
    dataset = PairedDataset(manifest_set, "train", resolution=64, image_size=16)
    assert len(dataset) == 2 and dataset.skipped == []
    item = dataset[1]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["image"][0].mean() == pytest.approx(80 / 255, abs=1e-2)
    assert item["logspec"].shape == (1, 64, 64)
    assert item["ir"].shape == (IR_SAMPLES,) and float(item["ir"].abs().max()) == pytest.approx(1.0)
    assert item["depth"].shape == (1, 16, 16) and 0.0 <= float(item["depth"].min()) < float(item["depth"].max()) <= 1.0
    assert item["t60_s"] == 1.5 and item["scene"] == "room1"
    assert item["image_path"].endswith("images/1.png") and item["ir_path"].endswith("irs/1.wav")
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch["logspec"].shape == (2, 1, 64, 64)


def test_norm_fits_on_each_distinct_ir_once(manifest_set):
    rows = [[f"images/{i}.png", "irs/0.wav", "train", "a"] for i in range(3)] + [["images/0.png", "irs/1.wav", "train", "b"]]
    _manifest(manifest_set, rows)
    dataset = PairedDataset(manifest_set, "train", resolution=64, image_size=16)
    assert len(dataset) == 4 and len(list(dataset.iter_logspecs())) == 2
    norm = fit_spectrogram_norm(dataset, low_percentile=0.0, high_percentile=100.0)
    values = torch.cat([dataset[0]["logspec"], dataset[3]["logspec"]])
    assert norm.n_examples == 2
    assert norm.low == pytest.approx(float(values.min())) and norm.high == pytest.approx(float(values.max()))


def test_split_selection_and_csv_path(manifest_set):
    assert len(PairedDataset(manifest_set / "manifest.csv", "test", 64, 16)) == 1
    assert len(PairedDataset(manifest_set, "val", 64, 16)) == 0


def test_limit_keeps_the_first_pairs_in_manifest_order(manifest_set):
    first = PairedDataset(manifest_set, "train", 64, 16, limit=1)
    assert [r.scene for r in first.records] == ["room0"]
    assert [r.scene for r in PairedDataset(manifest_set, "train", 64, 16, limit=5).records] == ["room0", "room1"]
    # the limit applies before the files are checked: a bad pair beyond it costs nothing
    (manifest_set / "images" / "1.png").write_bytes(b"not a png")
    assert PairedDataset(manifest_set, "train", 64, 16, limit=1).skipped == []
    with pytest.raises(ValueError, match="limit"):
        PairedDataset(manifest_set, "train", 64, 16, limit=-1)


def test_pix2pix_layout_pairs_by_sorted_index(tmp_path):
    for i in range(2):
        _image(tmp_path / "train_A" / f"space{i}_0_label.jpg", colour=(0, 100 * i, 0))
        _ir(tmp_path / "train_B" / f"space{i}_0_img.wav", fs=48000, channels=4, seed=i)
    dataset = PairedDataset(tmp_path, "train", resolution=128, image_size=8)
    assert [Path(r.image_path).name for r in dataset.records] == ["space0_0_label.jpg", "space1_0_label.jpg"]
    assert [Path(r.ir_path).name for r in dataset.records] == ["space0_0_img.wav", "space1_0_img.wav"]
    item = dataset[1]
    assert item["scene"] == "space1" and "depth" not in item
    assert item["logspec"].shape == (1, 128, 128) and item["image"].shape == (3, 8, 8)


def test_pix2pix_count_mismatch_is_a_clear_error(tmp_path):
    _image(tmp_path / "train_A" / "a.png")
    _image(tmp_path / "train_A" / "b.png")
    _ir(tmp_path / "train_B" / "a.wav")
    with pytest.raises(UserError, match="2 images but train_B/ holds 1"):
        PairedDataset(tmp_path, "train")
    with pytest.raises(UserError, match="val_A"):
        PairedDataset(tmp_path, "val")


def test_bad_files_are_skipped_and_counted(manifest_set):
    (manifest_set / "images" / "0.png").write_bytes(b"not a png")  # corrupt image
    sf.write(manifest_set / "irs" / "1.wav", np.zeros(800), 16000)  # silent IR
    _image(manifest_set / "images" / "2.png", size=(4, 4))  # too small
    rows = [[f"images/{i}.png", f"irs/{i}.wav", "train", f"room{i}"] for i in range(3)]
    rows.append(["images/missing.png", "irs/2.wav", "train", "gone"])
    _ir(manifest_set / "irs" / "3.wav")
    rows.append(["images/1.png", "irs/3.wav", "train", "ok"])
    rows.append(["images/0.png", "irs/3.wav", "train", "corrupt image again"])
    # a good image in the IR column: it passed as an image, and must still be checked as audio
    rows.append(["images/1.png", "images/1.png", "train", "columns crossed"])
    _manifest(manifest_set, rows)
    dataset = PairedDataset(manifest_set, "train", resolution=64, image_size=16)
    assert len(dataset) == 1 and dataset[0]["scene"] == "ok"
    reasons = dict(dataset.skipped)
    assert len(dataset.skipped) == 5
    assert "audio" in reasons[str(manifest_set / "images" / "1.png")]
    assert "not a readable image" in reasons[str(manifest_set / "images" / "0.png")]
    assert "silent" in reasons[str(manifest_set / "irs" / "1.wav")]
    assert "smaller than" in reasons[str(manifest_set / "images" / "2.png")]
    assert "no such" in reasons[str(manifest_set / "images" / "missing.png")]


@pytest.mark.parametrize(
    "row, message",
    [
        (["images/0.png", "", "train", "a"], "line 3, column ir: empty cell"),
        (["images/0.png", "irs/0.wav", "training", "a"], "line 3, column split: 'training' is not one of"),
        (["../outside.png", "irs/0.wav", "train", "a"], "line 3, column image: '../outside.png' leads outside"),
        (["/etc/passwd", "irs/0.wav", "train", "a"], "line 3, column image: '/etc/passwd' leads outside"),
        (["images/0.png", "irs/\x00.wav", "train", "a"], "line 3, column ir: a path cannot contain a NUL"),
        (["images/0.png", "./irs/0.wav", "train", "b"], "line 3: repeats the pair of line 2"),
        (["images/0.png", "irs/0.wav", "test", "a"], r"line 3: the pair of line 2 \(train\) again, in test"),
    ],
)
def test_manifest_cell_errors_name_the_line(tmp_path, row, message):
    _manifest(tmp_path, [["images/0.png", "irs/0.wav", "train", "a"], row])
    with pytest.raises(UserError, match=message):
        read_manifest(tmp_path / "manifest.csv")


def test_manifest_header_and_optional_column_errors(tmp_path):
    _manifest(tmp_path, [["images/0.png", "irs/0.wav", "a"]], header=("image", "ir", "scene"))
    with pytest.raises(UserError, match="line 1: missing column.*split"):
        read_manifest(tmp_path / "manifest.csv")
    header = ("image", "ir", "split", "scene", "t60_s")
    _manifest(tmp_path, [["i.png", "r.wav", "train", "a", "-1"]], header=header)
    with pytest.raises(UserError, match="line 2, column t60_s"):
        read_manifest(tmp_path / "manifest.csv")


def test_paths_outside_are_allowed_on_request(tmp_path):
    inner = tmp_path / "set"
    inner.mkdir()
    _manifest(inner, [["../photo.png", "../ir.wav", "train", "a"]])
    records = read_manifest(inner / "manifest.csv", allow_outside=True)
    assert records[0].image_path == (tmp_path / "photo.png").resolve()


def test_unknown_sources_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no such data set"):
        discover_pairs(tmp_path / "nothing", "train")
    with pytest.raises(UserError, match="not a data set"):
        discover_pairs(tmp_path, "train")


def test_colour_depth_map_is_a_bad_file(manifest_set):
    _image(manifest_set / "images" / "0_depth.png")  # RGB, not a greyscale depth map
    dataset = PairedDataset(manifest_set, "train", resolution=64, image_size=16)
    assert len(dataset) == 1
    assert dataset.skipped[0][0].endswith("0_depth.png") and "single-channel" in dataset.skipped[0][1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    paths=st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(["a\x00b", "..", "/x"]),
                   min_size=2, max_size=2),
    split=st.sampled_from(["train", "val", "test", "", "Train"]) | st.text(max_size=5),
    scene=st.text(alphabet="abc", min_size=1, max_size=5),
)
def test_any_manifest_cells_give_records_or_a_user_error(tmp_path, paths, split, scene):
    _manifest(tmp_path, [[*paths, split, scene]])
    try:
        records = read_manifest(tmp_path / "manifest.csv")
    except UserError:
        return
    assert records[0].split in ("train", "val", "test")
    assert records[0].image_path.is_relative_to(tmp_path.resolve())


def test_cached_items_equal_fresh_ones_and_are_copies(manifest_set):
    cached = PairedDataset(manifest_set, "train", resolution=64, image_size=16)
    fresh = PairedDataset(manifest_set, "train", resolution=64, image_size=16, cache=False)
    assert cached._cache is not None and fresh._cache is None
    first = cached[1]
    first["image"].zero_()  # a caller's in-place change must not reach the cache
    again, reference = cached[-1], fresh[1]
    assert list(cached._cache) == [1]
    for key in ("image", "logspec", "depth", "ir"):
        assert torch.equal(again[key], reference[key])
    assert again["image"].abs().sum() > 0
    assert torch.equal(torch.cat(list(cached.iter_logspecs())), torch.cat(list(fresh.iter_logspecs())))


def test_metric_depth_maps_become_log_depth(manifest_set):
    from i2r.data.images import metric_depth_to_unit

    assert metric_depth_to_unit(np.array([0.1, 0.5, 2.0, 65.535, 1e3]), 65.535).tolist() == pytest.approx(
        [0.0, 0.0, np.log(4) / np.log(131.07), 1.0, 1.0])
    rows = list(csv.reader(open(manifest_set / "manifest.csv")))
    _manifest(manifest_set, [row + ["0.001", "65.535"] for row in rows[1:]], header=rows[0] + ["depth_scale_m", "depth_max_m"])
    depth = PairedDataset(manifest_set, "train", resolution=64, image_size=20)[0]["depth"][0]  # 20x30 map: no resize
    raw = np.asarray(Image.open(manifest_set / "images" / "0_depth.png"), dtype=np.float64)[:, 5:25]  # centre crop
    np.testing.assert_allclose(depth.numpy(), metric_depth_to_unit(raw * 0.001, 65.535), atol=1e-4)
    assert float(depth.max()) > 0.95  # 59.3 m in the crop's far corner, on a log scale up to 65.5 m


def test_bad_depth_unit_cell_is_a_user_error(manifest_set):
    rows = list(csv.reader(open(manifest_set / "manifest.csv")))
    _manifest(manifest_set, [row + ["metres"] for row in rows[1:]], header=rows[0] + ["depth_scale_m"])
    # no depth_max_m: the cell is not used, and the 16-bit PNG is read raw, value / 65535
    depth = PairedDataset(manifest_set, "train", resolution=64, image_size=20)[0]["depth"][0]
    raw = np.asarray(Image.open(manifest_set / "images" / "0_depth.png"), dtype=np.float64)[:, 5:25]
    np.testing.assert_allclose(depth.numpy(), raw / 65535.0, atol=1e-6)
    _manifest(manifest_set, [row + ["metres", "65"] for row in rows[1:]], header=rows[0] + ["depth_scale_m", "depth_max_m"])
    with pytest.raises(UserError, match="0_depth.png.*not numbers"):
        PairedDataset(manifest_set, "train", resolution=64, image_size=16)
