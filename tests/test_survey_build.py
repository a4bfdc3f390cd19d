"""survey-build: BS.1770 loudness, stimulus rendering and the folder it writes."""

import json

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
    (lambda t: t.replace("irs/gen1.wav", "irs/absent.wav"), "line 3: column 'generated_ir': no such file"),
    (lambda t: t.replace("small_room", "small room!"), "line 3: column 'example'"),
    (lambda t: t.replace("small_room", "large_room"), "line 3: example 'large_room' already on line 2"),
    (lambda t: t.replace(",small,", ",sm:all,"), "line 3: column 'scene'"),
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
