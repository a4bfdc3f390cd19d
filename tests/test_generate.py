"""`i2r generate` and the inference pipeline, end to end on a tiny randomly initialised checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from i2r.audio import IR_SAMPLES, SAMPLE_RATE, SpectrogramNorm
from i2r.checkpoint import save_checkpoint
from i2r.cli import main
from i2r.inference import Image2ReverbPipeline, apply_ir, load_image
from i2r.models import Image2Reverb, ModelConfig


pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = ModelConfig(name="tiny", resolution=32, encoder_arch="resnet18", image_size=64,
                   g_fmap_base=256, g_fmap_max=16, d_fmap_base=256, d_fmap_max=16)
NORM = SpectrogramNorm(low=-11.5, high=2.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint({"config": {"preset": "tiny"}, "model_config": TINY.to_dict(), "spec_norm": NORM.to_dict(),
                     "model": Image2Reverb(TINY).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, size in (("hall.png", (90, 60)), ("room.jpg", (64, 64))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def _generate(*args):
    return main(["generate", *map(str, args), "--griffin-lim-iters", "4", "--batch-size", "2"])


def test_generate_writes_wav_pngs_and_wet_signal(tmp_path, checkpoint, images, capsys):
    dry = tmp_path / "click.wav"
    sf.write(dry, np.r_[0.5, np.zeros(4409)], 44100)
    out = tmp_path / "out"
    # the unreadable image is skipped, the others written, and the exit status tells a script
    assert _generate(images, "--checkpoint", checkpoint, "--out", out, "--apply", dry) == 2
    captured = capsys.readouterr()
    assert "2 IRs written" in captured.out and "1 images skipped" in captured.out
    assert [line for line in captured.err.splitlines() if line.startswith("error:")] == [
        f"error: {images / 'broken.jpg'}: not a readable image (cannot identify image file '{images / 'broken.jpg'}')"]
    for stem in ("hall", "room"):
        ir, fs = sf.read(out / f"{stem}.wav")
        assert (fs, ir.shape) == (SAMPLE_RATE, (IR_SAMPLES,))
        assert np.max(np.abs(ir)) == pytest.approx(1.0, rel=1e-6)
        for png in (f"{stem}_spectrogram.png", f"{stem}_depth.png"):
            assert Image.open(out / png).size[0] > 100
        wet, fs = sf.read(out / f"{stem}_click_wet.wav")
        assert fs == SAMPLE_RATE and len(wet) == 2205 + IR_SAMPLES - 1
        assert np.max(np.abs(wet)) <= 0.5 + 1e-6
    record = json.loads((out / "generate.json").read_text())
    assert sorted(Path(p).name for p in record["written"]) == ["hall.wav", "room.wav"]
    assert [Path(p).name for p, _ in record["skipped"]] == ["broken.jpg"]
    assert record["config"]["seed"] == 0


def test_generate_reports_bad_inputs_as_errors(tmp_path, checkpoint, images, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"nope")
    assert _generate(images, "--checkpoint", junk, "--out", tmp_path / "o") == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert _generate(images, "--checkpoint", checkpoint, "--out", tmp_path / "o", "--depth", "far") == 2
    assert "depth mode 'far'" in capsys.readouterr().err
    assert main(["generate", str(images), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
                 "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err
    twice = tmp_path / "twice"
    assert _generate(images / "room.jpg", images / "room.jpg", "--checkpoint", checkpoint, "--out", twice) == 0
    assert (twice / "room.wav").is_file() and (twice / "room_2.wav").is_file()
    assert _generate(tmp_path / "none.jpg", "--checkpoint", checkpoint, "--out", tmp_path / "o") == 2
    captured = capsys.readouterr()
    assert "0 IRs written" in captured.out and f"error: {tmp_path / 'none.jpg'}: no such image file\n" in captured.err
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(4410), 44100)
    assert _generate(images, "--checkpoint", checkpoint, "--out", tmp_path / "o", "--apply", silent) == 2
    assert capsys.readouterr().err == f"error: {silent}: the dry signal is silent (all samples zero)\n"
    assert _generate(tmp_path / "o", "--checkpoint", checkpoint, "--out", tmp_path / "o") == 2
    assert "no images found" in capsys.readouterr().err


def test_an_interrupted_run_resumes_and_writes_the_same_files(tmp_path, checkpoint, images, monkeypatch, capsys):
    """Batches of two over broken.jpg, hall.png and room.jpg (sorted); Ctrl-C while generating the
    second batch. The rerun generates only that one, repeats broken.jpg's error line, and every wav
    equals an uninterrupted run's."""
    assert _generate(images, "--checkpoint", checkpoint, "--out", tmp_path / "whole") == 2
    real, calls = Image2ReverbPipeline.generate, []

    def interrupted_in_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Image2ReverbPipeline, "generate", interrupted_in_the_second_batch)
    resumed = tmp_path / "resumed"
    assert _generate(images, "--checkpoint", checkpoint, "--out", resumed) == 130
    assert not (resumed / "generate.json").exists() and (resumed / "hall.wav").is_file()
    calls.clear()
    monkeypatch.setattr(Image2ReverbPipeline, "generate", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    capsys.readouterr()
    assert _generate(images, "--checkpoint", checkpoint, "--out", resumed) == 2
    err = capsys.readouterr().err
    assert len(calls) == 1 and "resuming: 1 of 2 batches already written" in err and "broken.jpg" in err
    assert not (resumed / ".generate-partial.jsonl").exists()
    whole, again = (json.loads((folder / "generate.json").read_text()) for folder in (tmp_path / "whole", resumed))
    assert [Path(p).name for p in again["written"]] == [Path(p).name for p in whole["written"]] == ["hall.wav", "room.wav"]
    for name in ("hall.wav", "room.wav"):
        assert sf.read(resumed / name)[0].tobytes() == sf.read(tmp_path / "whole" / name)[0].tobytes()


@pytest.mark.skipif(not (DATA / "images").is_dir(), reason="needs ../shared/data/images")
def test_pipeline_is_seeded_and_steerable(checkpoint):
    pipeline = Image2ReverbPipeline.from_checkpoint(checkpoint, precision="fp32", griffin_lim_iters=2)
    photo = Image.open(DATA / "images" / "interior_clinic_waiting_room.jpg")
    a = pipeline.generate([photo, photo], seed=1)
    b = pipeline.generate([photo], seed=1)
    assert a.irs.shape == (2, IR_SAMPLES) and a.logspecs.shape == (2, 32, 32) and a.depth.shape == (2, 64, 64)
    np.testing.assert_allclose(a.logspecs[0], b.logspecs[0], atol=1e-4)
    np.testing.assert_allclose(a.irs[0], b.irs[0], atol=1e-4)
    assert not np.allclose(pipeline.generate([photo], seed=2).logspecs, b.logspecs, atol=1e-3)  # the seed is used
    stages = {"load", "depth", "encoder", "generator", "griffin_lim"}
    assert set(a.seconds) == stages | {f"cpu_{stage}" for stage in stages}
    half = pipeline.generate([photo], depth_mode="0.5", seed=1)
    assert np.all(half.depth == 0.5) and not np.allclose(half.features, b.features)


def test_bf16_pipeline_stays_close_to_fp32(checkpoint):
    image = torch.rand(1, 3, 64, 64)
    fp32 = Image2ReverbPipeline.from_checkpoint(checkpoint, precision="fp32", griffin_lim_iters=1).generate(image)
    bf16 = Image2ReverbPipeline.from_checkpoint(checkpoint, precision="bf16", griffin_lim_iters=1).generate(image)
    spread = NORM.high - NORM.low
    assert np.max(np.abs(bf16.logspecs - fp32.logspecs)) < 0.05 * spread


def test_load_image_crops_the_centre_square():
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, 20:60] = 255  # the centre square is white, the sides black
    out = load_image(Image.fromarray(image), 32)
    assert out.shape == (3, 32, 32) and float(out.min()) > 0.9


def test_apply_ir_never_clips():
    dry = np.ones(1000) * 0.9
    wet = apply_ir(dry, np.ones(500, dtype=np.float32))
    assert np.max(np.abs(wet)) == pytest.approx(0.9)
