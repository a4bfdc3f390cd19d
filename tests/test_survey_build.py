"""survey-build: BS.1770 loudness, stimulus rendering and the folder it writes."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from i2r.cli import main
from i2r.errors import UserError
from i2r.survey.loudness import integrated_loudness, k_weighting_coefficients
from i2r.survey.stimuli import SurveyBuildConfig, build_survey, read_examples, render_stimuli


def _sine(fs, seconds, amplitude=1.0, freq=997.0):
    t = np.arange(int(fs * seconds)) / fs
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_k_weighting_matches_bs1770_tables_at_48k():
    (b1, a1), (b2, a2) = k_weighting_coefficients(48000)
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-13)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-13)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-13)


@pytest.mark.parametrize("fs", [48000, 44100, 16000])
def test_full_scale_997_hz_sine_reads_minus_3_01(fs):
    # BS.1770-4: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS.
    assert integrated_loudness(_sine(fs, 3.0), fs) == pytest.approx(-3.01, abs=0.01)


def test_loudness_scaling_channels_and_gating():
    fs = 48000
    tone = _sine(fs, 2.0)
    assert integrated_loudness(0.5 * tone, fs) == pytest.approx(-3.01 - 6.02, abs=0.01)
    assert integrated_loudness(np.vstack([tone, tone]), fs) == pytest.approx(0.0, abs=0.01)
    # Appended silence is gated out (absolute gate) except the blocks straddling the end: 17 full
    # 400 ms blocks of a 2 s tone plus three at 3/4, 1/2 and 1/4 of its power (100 ms hop).
    expected = -3.0103 + 10 * np.log10((17 + 0.75 + 0.5 + 0.25) / 20)
    assert integrated_loudness(np.concatenate([tone, np.zeros(3 * fs)]), fs) == pytest.approx(expected, abs=0.005)
    # A part 20 dB quieter falls below the relative gate (-10 LU), so it barely lowers the result,
    # where an ungated mean would be 2.97 dB lower.
    gated = integrated_loudness(np.concatenate([tone, 0.1 * tone]), fs)
    assert -3.01 - 0.5 < gated < -3.01
    with pytest.raises(UserError):
        integrated_loudness(np.zeros(fs), fs)


def _ir(fs, t60, seed, seconds=0.5):
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    return rng.normal(size=t.size) * 10 ** (-3 * t / t60)


def test_render_stimuli_equal_loudness_and_peak_safe():
    fs = 16000
    dry = np.random.default_rng(0).normal(size=fs) * np.hanning(fs)
    irs = [_ir(fs, 0.3, 1), 5 * _ir(fs, 1.2, 2), 0.01 * _ir(fs, 0.1, 3)]
    stimuli, levels = render_stimuli(dry, fs, irs, target_lufs=-23.0, peak_dbfs=-1.0)
    direct = np.convolve(dry, irs[0])  # time-domain reference for the FFT convolution
    gain = stimuli[0] @ direct / (direct @ direct)
    np.testing.assert_allclose(stimuli[0], gain * direct, atol=1e-10 * np.max(np.abs(stimuli[0])))
    assert [s.size for s in stimuli] == [fs + ir.size - 1 for ir in irs]
    assert [integrated_loudness(s, fs) for s in stimuli] == pytest.approx([-23.0] * 3, abs=1e-6)
    loud, loud_levels = render_stimuli(dry, fs, irs, target_lufs=-3.0, peak_dbfs=-1.0)
    assert loud_levels["common_gain_db"] < 0
    assert max(np.max(np.abs(s)) for s in loud) == pytest.approx(10 ** (-1 / 20), rel=1e-9)
    louds = [integrated_loudness(s, fs) for s in loud]
    assert max(louds) - min(louds) < 1e-6 and louds[0] == pytest.approx(loud_levels["loudness_lufs"], abs=1e-6)


@pytest.fixture
def study(tmp_path):
    fs = 16000
    sf.write(tmp_path / "dry.wav", np.random.default_rng(0).normal(size=fs // 2) * 0.1, fs)
    (tmp_path / "irs").mkdir()
    (tmp_path / "img").mkdir()
    rows = ["image,real_ir,generated_ir,scene,example"]
    for i, scene in enumerate(("large", "small")):
        sf.write(tmp_path / "irs" / f"real{i}.wav", _ir(22050, 0.5 + i, i), 22050)
        sf.write(tmp_path / "irs" / f"gen{i}.wav", np.vstack([_ir(8000, 0.4, 10 + i)] * 2).T, 8000)
        Image.new("RGB", (32, 24), (40 * i, 90, 160)).save(tmp_path / "img" / f"room{i}.JPG")
        rows.append(f"img/room{i}.JPG,irs/real{i}.wav,irs/gen{i}.wav,{scene},{scene}_room")
    (tmp_path / "examples.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_build_writes_page_stimuli_and_manifest(study):
    out = study / "site"
    manifest = build_survey(SurveyBuildConfig(str(study / "examples.csv"), str(study / "dry.wav"), str(out)))
    assert {p.name for p in out.iterdir()} == {"index.html", "survey.js", "survey.css", "stimuli.js", "stimuli.json", "audio", "images"}
    js = (out / "stimuli.js").read_text()
    page = json.loads(js[js.index("=") + 1:].strip().rstrip(";"))
    assert len(page["stimuli"]) == 4 and "config" not in page and len(page["attention"]) == 2
    for stim in page["stimuli"]:
        assert stim["source"] not in stim["audio"] and stim["example"] not in stim["audio"]
        info = sf.info(out / stim["audio"])
        assert info.samplerate == 16000 and info.subtype == "PCM_16" and info.channels == 1
        assert (out / stim["image"]).is_file() and stim["image"].endswith(".jpg")
    assert json.loads((out / "stimuli.json").read_text())["levels"] == manifest["levels"]
    assert (out / "index.html").stat().st_mode & 0o044 == 0o044  # servable


@pytest.mark.parametrize("edit,words", [
    (lambda t: t.replace("image,", "picture,", 1), "line 1: missing column(s) image"),
    (lambda t: t.replace("irs/gen1.wav", "irs/absent.wav"), "line 3, column generated_ir: no such file"),
    (lambda t: t.replace("small_room", "small room!"), "line 3, column example: 'small room!'"),
    (lambda t: t.replace("small_room", "large_room"), "line 3: example 'large_room' already on line 2"),
    (lambda t: t.replace(",small,", ",sm:all,"), "line 3, column scene: 'sm:all'"),
])
def test_examples_csv_errors(study, edit, words):
    path = study / "examples.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(UserError) as info:
        read_examples(path)
    assert words in str(info.value)


def test_cli_build_and_error(study, capsys):
    assert main(["survey-build", str(study / "examples.csv"), "--dry", str(study / "dry.wav"), "--out", str(study / "o")]) == 0
    assert "4 stimuli at -23.0 LUFS" in capsys.readouterr().out
    assert main(["survey-build", str(study / "examples.csv"), "--dry", str(study / "nothing.wav")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("lufs,peak", [
    (float("-inf"), -1.0), (float("nan"), -1.0), (5.0, -1.0), (-80.0, -1.0),
    (-23.0, float("nan")), (-23.0, 20.0), (-23.0, 0.5), (-23.0, float("-inf")), (-23.0, -100.0),
])
def test_levels_out_of_range_are_refused(study, lufs, peak):
    with pytest.raises(UserError, match="LUFS|dBFS"):
        SurveyBuildConfig(str(study / "examples.csv"), str(study / "dry.wav"), target_lufs=lufs, peak_dbfs=peak)
    with pytest.raises(UserError, match="LUFS|dBFS"):
        render_stimuli(np.ones(100), 16000, [np.ones(10)], target_lufs=lufs, peak_dbfs=peak)


@pytest.mark.parametrize("flag", ["--lufs=-inf", "--lufs=nan", "--peak-dbfs=nan", "--peak-dbfs=20"])
def test_cli_refuses_bad_levels(study, capsys, flag):
    args = ["survey-build", str(study / "examples.csv"), "--dry", str(study / "dry.wav"), "--out", str(study / "o"), flag]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and flag.split("=")[0] in err
    assert not (study / "o" / "audio").exists()


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("peak_dbfs", [0.0, -0.1, -1.0, -3.0])
def test_render_peak_never_above_ceiling(seed, peak_dbfs):
    fs = 16000
    rng = np.random.default_rng(seed)
    dry = rng.normal(size=fs // 4)
    irs = [_ir(fs, 0.2 + 0.3 * i, seed * 10 + i, seconds=0.2) for i in range(3)]
    stimuli, levels = render_stimuli(dry, fs, irs, target_lufs=0.0, peak_dbfs=peak_dbfs)
    ceiling = 10 ** (peak_dbfs / 20)
    assert max(np.max(np.abs(s)) for s in stimuli) <= ceiling
    assert levels["max_peak_dbfs"] <= peak_dbfs + 1e-9 and levels["common_gain_db"] < 0


def test_written_stimuli_do_not_clip(study):
    out = study / "loud"
    build_survey(SurveyBuildConfig(str(study / "examples.csv"), str(study / "dry.wav"), str(out),
                                   target_lufs=0.0, peak_dbfs=0.0))
    for wav in (out / "audio").iterdir():
        samples, _ = sf.read(wav, dtype="int16")
        # A sample at the ceiling of 0 dBFS is stored as 32767; more than one such sample means clipping.
        assert np.sum(np.abs(samples.astype(int)) >= 32767) <= 1


def _replace_cell(study, old, new, name="examples.csv"):
    path = study / name
    path.write_text(path.read_text().replace(old, new, 1))
    return path


def test_image_cell_must_be_a_readable_image(study):
    (study / "img" / "notes.png").write_text("not an image\n")
    path = _replace_cell(study, "img/room1.JPG", "img/notes.png")
    with pytest.raises(UserError, match=r"examples.csv: line 3, column image: .*notes.png.*not a readable image"):
        read_examples(path)


def test_image_cell_must_be_a_format_browsers_show(study):
    Image.new("RGB", (32, 24)).save(study / "img" / "scan.png", format="TIFF")
    path = _replace_cell(study, "img/room1.JPG", "img/scan.png")
    with pytest.raises(UserError, match=r"line 3, column image: .*scan.png holds TIFF"):
        read_examples(path)


def test_cli_reports_unreadable_image(study, capsys):
    (study / "img" / "notes.png").write_text("not an image\n")
    path = _replace_cell(study, "img/room1.JPG", "img/notes.png")
    assert main(["survey-build", str(path), "--dry", str(study / "dry.wav"), "--out", str(study / "o")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path}: line 3, column image: ")
    assert not (study / "o" / "audio").exists()


@pytest.fixture
def flat_study(study):
    """The study with every file and the CSV in one folder, sub/, so that ../ leaves it."""
    sub = study / "sub"
    sub.mkdir()
    lines = (study / "examples.csv").read_text().splitlines()
    for cell in {c for line in lines[1:] for c in line.split(",")[:3]}:
        (sub / Path(cell).name).write_bytes((study / cell).read_bytes())
    (sub / "examples.csv").write_text("\n".join(lines).replace("img/", "").replace("irs/", "") + "\n")
    return sub


@pytest.mark.parametrize("column,old", [("image", "img/room1.JPG"), ("real_ir", "irs/real1.wav"), ("generated_ir", "irs/gen1.wav")])
@pytest.mark.parametrize("absolute", [False, True])
def test_cells_leading_outside_the_csv_folder_are_refused(flat_study, column, old, absolute):
    assert len(read_examples(flat_study / "examples.csv")) == 2
    cell = str(flat_study.parent / old) if absolute else f"../{old}"
    path = _replace_cell(flat_study, Path(old).name, cell)
    with pytest.raises(UserError, match=rf"examples.csv: line 3, column {column}: .* leads outside"):
        read_examples(path)
    assert read_examples(path, allow_outside=True)[1].line == 3  # the explicit opt-in


def test_build_refuses_outside_cells_unless_allowed(flat_study):
    path = _replace_cell(flat_study, "room1.JPG", "../img/room1.JPG")
    config = SurveyBuildConfig(str(path), str(flat_study.parent / "dry.wav"), str(flat_study / "site"))
    with pytest.raises(UserError, match="leads outside"):
        build_survey(config)
    allowed = SurveyBuildConfig(str(path), str(flat_study.parent / "dry.wav"), str(flat_study / "site"), allow_outside=True)
    assert len(build_survey(allowed)["stimuli"]) == 4
