"""Synthetic rooms: physics against analytic values, rendering geometry, and the data set writer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from i2r.cli import main
from i2r.data.synthetic import MANIFEST_COLUMNS, SynthConfig, generate, make_example
from i2r.data.synthetic.dataset import split_of
from i2r.data.synthetic.ir import band_weights, image_sources, synthesize_ir
from i2r.data.synthetic.materials import BANDS_HZ, air_attenuation_db_per_m, exact_band_centres, materials
from i2r.data.synthetic.render import RenderConfig, depth_to_png_array, render
from i2r.data.synthetic.scene import T60_RANGE_S, Scene, draw_outdoor, draw_room, eyring_t60
from i2r.errors import UserError

FS = 22050


# --- materials and air ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "temperature, table_db_per_km",
    [
        # ISO 9613-2:1996 Table 2, 70 % relative humidity, octave bands 125 Hz - 4 kHz.
        (20.0, [0.3, 1.1, 2.8, 5.0, 9.0, 22.9]),
        (10.0, [0.4, 1.0, 1.9, 3.7, 9.7, 32.8]),
    ],
)
def test_air_absorption_reproduces_iso_9613_table(temperature, table_db_per_km):
    computed = air_attenuation_db_per_m(exact_band_centres(), temperature, 70.0) * 1000.0
    np.testing.assert_allclose(computed, table_db_per_km, atol=0.051)


def test_every_material_row_has_a_source_and_valid_coefficients():
    table = materials()
    assert {"carpet", "wood_floor", "plaster", "concrete", "tile", "glass", "curtains", "acoustic_panels",
            "brick", "marble"} <= set(table)
    for material in table.values():
        assert "Vorländer" in material.source and material.source_key
        assert len(material.alpha) == 6 and all(0.0 < a < 1.0 for a in material.alpha)


# --- acoustics -----------------------------------------------------------------------------------


def test_eyring_matches_the_formula_by_hand():
    dims = (10.0, 8.0, 3.0)
    alpha = np.full((6, 6), 0.2)
    volume, area = 240.0, 2 * (80 + 30 + 24)
    expected = 24 * np.log(10) * volume / (343.0 * (-area * np.log(0.8)))
    np.testing.assert_allclose(eyring_t60(dims, alpha, air_m=np.zeros(6)), expected, rtol=1e-12)
    # Air absorption only shortens the decay, most at 4 kHz.
    with_air = eyring_t60(dims, alpha)
    assert np.all(with_air <= expected) and with_air[-1] < with_air[0]


def test_image_sources_of_first_order_are_the_six_mirror_images():
    dims, source, receiver = (4.0, 3.0, 2.5), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0)
    dist, hits = image_sources(dims, source, receiver, max_order=1)
    assert dist.shape == (7,) and hits.sum(1).tolist() == [0] + [1] * 6
    by_surface = {int(np.argmax(h)): d for d, h in zip(dist[1:], hits[1:])}
    np.testing.assert_allclose(dist[0], 1.0)
    np.testing.assert_allclose(by_surface[0], np.hypot(1.0, 2.0))  # floor: z -> -1
    np.testing.assert_allclose(by_surface[1], np.hypot(1.0, 3.0))  # ceiling: z -> 4
    np.testing.assert_allclose(by_surface[2], 3.0)  # wall x=0: x -> -1
    np.testing.assert_allclose(by_surface[3], 5.0)  # wall x=4: x -> 7
    assert image_sources(dims, source, receiver, max_order=3)[0].shape == (63,)


def test_band_weights_sum_to_one_and_pass_their_own_band():
    weights = band_weights(8192, FS)
    freqs = np.fft.rfftfreq(8192, 1 / FS)
    np.testing.assert_allclose(weights.sum(0), 1.0, atol=1e-6)
    assert weights.min() >= 0.0
    for band, fc in enumerate(BANDS_HZ):
        assert weights[band, np.argmin(np.abs(freqs - fc))] > 0.999


def test_booths_are_short_and_halls_long():
    small = [draw_room(np.random.default_rng(i), "small") for i in range(30)]
    large = [draw_room(np.random.default_rng(i), "large") for i in range(30)]
    for scene in small + large:
        assert T60_RANGE_S[0] <= min(scene.t60_s) and max(scene.t60_s) <= T60_RANGE_S[1]
    assert np.median([s.t60_s[3] for s in small]) < 0.8 < 1.2 < np.median([s.t60_s[3] for s in large])
    assert max(s.volume for s in small) < 100 < 1000 < np.median([s.volume for s in large])


def test_category_shares_and_positions_keep_clear_of_the_walls():
    from i2r.data.synthetic.scene import draw_scene

    scenes = [draw_scene(np.random.default_rng(i)) for i in range(300)]
    kinds = [s.category for s in scenes]
    assert 0.08 < kinds.count("outdoor") / 300 < 0.18 and min(kinds.count(k) for k in ("small", "medium", "large")) > 50
    for scene in scenes:
        if scene.outdoor:
            continue
        for point in (scene.source, scene.receiver):
            margin = np.minimum(np.asarray(point), np.subtract(scene.dims, point))[:2]
            assert np.all(margin >= np.minimum(1.0, 0.25 * np.asarray(scene.dims[:2])) - 1e-3)
        assert np.linalg.norm(np.subtract(scene.source, scene.receiver)) >= 0.5


def test_outdoor_ir_is_short_and_starts_with_the_direct_sound():
    rng = np.random.default_rng(3)
    scene = draw_outdoor(rng)
    ir = synthesize_ir(scene, rng)
    energy = np.cumsum(ir.astype(np.float64) ** 2)
    assert ir.shape == (130977,) and ir.dtype == np.float32
    assert energy[int(0.5 * FS)] > 0.999 * energy[-1]
    assert not np.any(ir[int(1.5 * FS):])
    direct = np.linalg.norm(np.subtract(scene.source, scene.receiver)) / 343.0
    assert abs(np.argmax(np.abs(ir)) / FS - direct) < 0.002


def test_room_ir_decay_follows_the_manifest_t60_in_every_band():
    """Ground truth check: i2r.acoustics T30 agrees with the Eyring T60 within 10 % (median per band)."""
    acoustics = pytest.importorskip("i2r.acoustics")
    config = SynthConfig(n=12, out="unused", image_size=32)
    irs, truth = [], []
    for index in range(12):
        scene, _, _, ir = make_example(11, index, config)
        irs.append(ir)
        truth.append(scene.t60_s)
    result = acoustics.analyze(np.stack(irs).astype(np.float64), FS, bands="octave")
    t30 = np.asarray(result.t30_s if hasattr(result, "t30_s") else result["t30_s"], dtype=np.float64)
    error = np.abs(t30 / np.asarray(truth) - 1.0)
    assert np.all(np.nanmedian(error, axis=0) < 0.10), np.nanmedian(error, axis=0)


# --- rendering -----------------------------------------------------------------------------------


def _empty_room(dims=(8.0, 5.0, 3.0), floor="wood_floor") -> Scene:
    chosen = {"floor": floor, "ceiling": "plaster", "wall_x0": "plaster", "wall_x1": "brick",
              "wall_y0": "plaster", "wall_y1": "curtains"}
    return Scene("medium", dims, chosen, (4, 2, 1.5), (5, 3, 1.2), (1.0, 2.5, 1.6), 0.0, 0.0, (0.5,) * 6)


def test_depth_of_an_empty_room_is_the_analytic_z_depth():
    scene = _empty_room()
    image, depth = render(scene, RenderConfig(size=64, fov_deg=70.0))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and depth.shape == (64, 64)
    # The central rays hit the far wall x = 8 m, 7 m in front of the camera.
    np.testing.assert_allclose(depth[31:33, 31:33], 7.0, rtol=1e-5)
    # The bottom row looks down at the floor: z-depth = eye height / tan(angle below the axis).
    focal = 32 / np.tan(np.deg2rad(35))
    below = (63 + 0.5 - 32) / focal
    np.testing.assert_allclose(depth[63, 32], 1.6 / below, rtol=1e-4)
    png = depth_to_png_array(depth)
    assert png.dtype == np.uint16 and png[32, 32] == 7000


def test_materials_look_different():
    means = {}
    for floor in ("carpet", "wood_floor", "tile", "marble"):
        image, _ = render(_empty_room(floor=floor), RenderConfig(size=64))
        means[floor] = image[56:, :].reshape(-1, 3).mean(0)
    names = list(means)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(means[a] - means[b]).max() > 8, (a, b, means[a], means[b])


def test_outdoor_view_has_sky_above_and_ground_below():
    scene = draw_outdoor(np.random.default_rng(0))
    scene.boxes = []
    image, depth = render(scene, RenderConfig(size=64))
    assert np.isinf(depth[0]).all() and np.isfinite(depth[-1]).all()
    assert depth_to_png_array(depth)[0, 0] == 65535
    assert image[0, :, 2].mean() > image[0, :, 0].mean()  # blue sky


# --- the data set writer -------------------------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_whatever_the_jobs(tmp_path):
    one = generate(SynthConfig(n=5, out=str(tmp_path / "a"), seed=4, image_size=48, jobs=1), progress=False)
    generate(SynthConfig(n=5, out=str(tmp_path / "b"), seed=4, image_size=48, jobs=2), progress=False)
    generate(SynthConfig(n=5, out=str(tmp_path / "c"), seed=5, image_size=48), progress=False)
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert one.n == 5 and one.generated == 5 and len(a) == 3 * 5 + 2
    assert a == b
    assert a["manifest.csv"] != c["manifest.csv"] and a["irs/000000.wav"] != c["irs/000000.wav"]


def test_manifest_schema_paths_and_files(tmp_path):
    generate(SynthConfig(n=6, out=str(tmp_path), seed=2, image_size=40), progress=False)
    with (tmp_path / "manifest.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == MANIFEST_COLUMNS and len(rows) == 6
    for row in rows:
        assert row["split"] in ("train", "val", "test") and row["scene"] in ("small", "medium", "large", "outdoor")
        for key in ("image", "ir", "depth"):
            assert not Path(row[key]).is_absolute() and (tmp_path / row[key]).is_file()
        t60 = [float(row[f"t60_{int(f)}_s"]) for f in BANDS_HZ]
        assert float(row["t60_s"]) == pytest.approx((t60[2] + t60[3]) / 2, abs=1e-4)
        with Image.open(tmp_path / row["image"]) as image:
            assert image.size == (40, 40) and image.mode == "RGB"
        with Image.open(tmp_path / row["depth"]) as depth:
            assert depth.size == (40, 40) and np.asarray(depth).max() <= 65535 and "16" in depth.mode
        info = sf.info(str(tmp_path / row["ir"]))
        assert (info.samplerate, info.frames, info.channels) == (22050, 130977, 1)
        if row["scene"] != "outdoor":
            dims = [float(row[k]) for k in ("length_m", "width_m", "height_m")]
            assert float(row["volume_m3"]) == pytest.approx(np.prod(dims), rel=1e-3)


def test_splits_follow_the_fractions_for_every_prefix():
    splits = [split_of(i, (0.8, 0.1, 0.1)) for i in range(1000)]
    assert abs(splits.count("train") - 800) <= 10 and abs(splits.count("test") - 100) <= 10
    assert {split_of(i, (1.0, 0.0, 0.0)) for i in range(50)} == {"train"}


def test_a_larger_n_resumes_and_matches_a_fresh_run(tmp_path):
    first = generate(SynthConfig(n=3, out=str(tmp_path / "r"), image_size=32), progress=False)
    again = generate(SynthConfig(n=5, out=str(tmp_path / "r"), image_size=32), progress=False)
    generate(SynthConfig(n=5, out=str(tmp_path / "f"), image_size=32), progress=False)
    assert (first.generated, again.generated, again.reused) == (3, 2, 3)
    assert _files(tmp_path / "r") == _files(tmp_path / "f")
    assert not (tmp_path / "r" / ".manifest.partial.csv").exists()


def test_an_interrupted_run_keeps_finished_rows(tmp_path, monkeypatch):
    import i2r.data.synthetic.dataset as gen

    real = gen.write_example

    def dies_at_three(index, config):
        if index == 3:
            raise KeyboardInterrupt
        return real(index, config)

    monkeypatch.setattr(gen, "write_example", dies_at_three)
    with pytest.raises(KeyboardInterrupt):
        generate(SynthConfig(n=5, out=str(tmp_path), image_size=32), progress=False)
    monkeypatch.setattr(gen, "write_example", real)
    assert len((tmp_path / ".manifest.partial.csv").read_text().splitlines()) == 1 + 3
    resumed = generate(SynthConfig(n=5, out=str(tmp_path), image_size=32), progress=False)
    assert (resumed.reused, resumed.generated) == (3, 2)


def test_a_run_killed_before_its_first_row_resumes(tmp_path):
    generate(SynthConfig(n=1, out=str(tmp_path), image_size=32), progress=False)
    (tmp_path / ".manifest.partial.csv").write_text("")  # killed right after creating the file
    summary = generate(SynthConfig(n=2, out=str(tmp_path), image_size=32), progress=False)
    assert (summary.reused, summary.generated, summary.n) == (1, 1, 2)


def test_user_mistakes_raise_user_error(tmp_path):
    generate(SynthConfig(n=1, out=str(tmp_path), image_size=32), progress=False)
    with pytest.raises(UserError, match="seed"):
        generate(SynthConfig(n=1, out=str(tmp_path), seed=1, image_size=32), progress=False)
    with pytest.raises(UserError, match="--n"):
        generate(SynthConfig(n=0, out=str(tmp_path / "x")), progress=False)
    with pytest.raises(UserError, match="--split"):
        generate(SynthConfig(n=1, out=str(tmp_path / "x"), split=(0.5, 0.5)), progress=False)
    with pytest.raises(UserError, match="--seed"):
        generate(SynthConfig(n=1, out=str(tmp_path / "x"), seed=-1), progress=False)
    with pytest.raises(UserError, match="--image-size must be 32 to 4096"):
        generate(SynthConfig(n=1, out=str(tmp_path / "x"), image_size=100_000), progress=False)
    # a set that cannot fit on the disk is refused before the first scene, not when the disk is full
    with pytest.raises(UserError, match="10,000,000,000 more scenes need about"):
        generate(SynthConfig(n=10**10, out=str(tmp_path / "x")), progress=False)
    assert not (tmp_path / "x" / "manifest.csv").exists()


def test_cli_writes_a_set_and_reports_mistakes_in_one_line(tmp_path, capsys):
    assert main(["synth", "--n", "2", "--out", str(tmp_path / "s"), "--image-size", "32", "--split", "1,0,0"]) == 0
    assert "2 scenes" in capsys.readouterr().out
    assert main(["synth", "--n", "2", "--out", str(tmp_path / "t"), "--split", "a,b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --split") and len(err.strip().splitlines()) == 1


def test_surface_ids_name_what_each_pixel_shows():
    """Looking along +x from near the x = 0 wall: the far wall (x1) at the centre, floor below,
    ceiling above, a box where it stands; outdoors sky above the horizon and ground below; the
    sky is exactly where the rendered depth is infinite."""
    from i2r.data.synthetic.render import RenderConfig, render, surface_ids
    from i2r.data.synthetic.scene import SURFACES, Box, Scene, draw_outdoor

    config = RenderConfig(size=32)
    room = Scene("medium", (10.0, 6.0, 3.0), {}, (0, 0, 0), (0, 0, 0), (0.5, 3.0, 1.5), 0.0, 0.0, ())
    ids = surface_ids(room, config)
    assert ids[16, 16] == SURFACES.index("wall_x1")
    assert ids[-1, 16] == SURFACES.index("floor") and ids[0, 16] == SURFACES.index("ceiling")
    room.boxes = [Box("table", (4.0, 2.0, 0.0), (6.0, 4.0, 1.5), (0.5, 0.3, 0.2))]
    assert ids.min() >= 0 and (surface_ids(room, config) == 100).any()
    outdoor = draw_outdoor(np.random.default_rng(1))
    ids = surface_ids(outdoor, config)
    assert ids[0, 16] == -1 and ids[-1, 16] == 0
    _, depth = render(outdoor, config)
    assert np.array_equal(ids == -1, ~np.isfinite(depth))


def test_a_finished_set_is_reused_without_a_partial_manifest(tmp_path, monkeypatch):
    # two demos sharing the cache reuse it at once: a partial manifest that one of them opened and
    # removed stopped the other with "No such file or directory"
    from i2r.data.synthetic import dataset

    config = SynthConfig(n=3, out=str(tmp_path), seed=1, image_size=32, jobs=1)
    generate(config, progress=False)
    manifest = (tmp_path / "manifest.csv").read_bytes()
    monkeypatch.setattr(dataset, "_make_rows", lambda *args: pytest.fail("a finished set made rows"))
    summary = generate(config, progress=False)
    assert (summary.reused, summary.generated) == (3, 0)
    assert (tmp_path / "manifest.csv").read_bytes() == manifest
    assert not (tmp_path / ".manifest.partial.csv").exists()
