"""`i2r demo`: the whole chain (synth -> train -> eval -> report) on a handful of rooms."""

import json
from pathlib import Path

import numpy as np
import pytest

from i2r.checkpoint import load_checkpoint
from i2r.cli import main
from i2r.demo import DemoConfig, dry_signal


def test_dry_signal_is_deterministic_and_normalised():
    a, b = dry_signal(22050, seed=0), dry_signal(22050, seed=0)
    assert np.array_equal(a, b)
    assert np.max(np.abs(a)) == 1.0
    assert a.shape == (3 * 22050,)


def test_demo_runs_end_to_end_and_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    status = main(["demo", "--scenes", "30", "--minutes", "0.02", "--batch-size", "2", "--out", str(out),
                   "--cache", str(tmp_path / "cache"), "--format", "json"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"minutes", "model", "baseline_nn", "checkpoint", "report"}
    for name in ("model", "baseline_nn"):
        assert set(summary[name]["t60_error_pct"]) == {"mean", "sd", "median", "median_abs"}
    # The NN baseline always has a measurable IR (a real training IR), so its statistics exist.
    assert summary["baseline_nn"]["t60_error_pct"]["median_abs"] is not None
    assert Path(summary["checkpoint"]).is_file()
    # The run used the demo's training recipe, not the trainer's (paper) defaults.
    trained = json.loads((out / "run" / "config.json").read_text())["train"]
    recipe = DemoConfig()
    for name in ("lr_generator", "lr_discriminator", "lr_encoder", "beta1", "t60p_weight", "decay_weight",
                 "depth_weight", "threads", "val_every", "val_rooms"):
        assert trained[name] == getattr(recipe, name), name
    assert trained["depth_supervision"] and trained["select_best"] and trained["preset"] == "small"
    report = Path(summary["report"]).read_text()
    assert "paper: main model" in report and "Depth:" in report and "mean depth map" in report
    assert "of the generated IRs had no measurable T60" in report and "every generated IR measurable" in report
    assert "How far one view can go" in report and "the walls in view (what the camera sees)" in report
    assert "perfect reader of the view" in report
    for name in ("report.html", "t60_scatter.png", "t60_error.png", "dry.wav", "eval/metrics.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("example_*_wet_generated.wav")) and list(out.glob("example_*_wet_true.wav"))
    # A second run reuses the cached data set instead of rendering it again, and its training
    # budget is spent: it evaluates the same weights instead of training for --minutes more.
    trained = load_checkpoint(out / "run" / "last.pt")
    assert trained["trained_seconds"] >= 0.02 * 60
    assert main(["demo", "--scenes", "30", "--minutes", "0.02", "--batch-size", "2", "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--format", "json"]) == 0
    err = capsys.readouterr().err
    assert "0 made, 30 reused" in err and "nothing left to train" in err
    assert load_checkpoint(out / "run" / "last.pt")["step"] == trained["step"]


def test_the_report_names_the_validation_pass_that_chose_the_weights(tmp_path):
    from i2r.demo import run_demo

    out = tmp_path / "demo"
    summary = run_demo(DemoConfig(n_scenes=30, minutes=0.02, batch_size=2, out=str(out), cache=str(tmp_path / "cache"),
                                  val_every=1, val_rooms=2))
    trained = json.loads((out / "run" / "config.json").read_text())["train"]
    assert (trained["val_every"], trained["val_rooms"]) == (1, 2)
    report = Path(summary["report"]).read_text()
    assert "evaluated the weights of step 1, the validation pass (every 1 step, 2 other rooms)" in report


def test_the_ceiling_section_says_when_the_perfect_reader_is_missing():
    import pandas as pd

    from i2r.data.synthetic.predictability import PERFECT_READER
    from i2r.demo import _ceiling_blocks

    row = {"predictor": "constant (geometric mean)", "n_train": 8, "n": 2, "mean": 1.0, "sd": 2.0, "median": 0.5,
           "iqr": 1.0, "median_abs": 1.0, "log_sd": 0.1}
    without = str(_ceiling_blocks(pd.DataFrame([row])))
    with_reader = str(_ceiling_blocks(pd.DataFrame([row, {**row, "predictor": PERFECT_READER, "n_train": 0}])))
    assert "perfect reader is missing" in without and "perfect reader is missing" not in with_reader
    assert "Eyring's formula and the generator's priors" in with_reader


def test_demo_mistakes_are_one_error_line(capsys):
    assert main(["demo", "--threads", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --threads must be 0") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--scenes", "29"], "--scenes must be at least 30"), (["--batch-size", "0"], "--batch-size"),
    (["--seed", "-1"], "--seed"), (["--device", "tpu"], "--device 'tpu'"), (["--dry", "missing.wav"], "missing.wav")])
def test_demo_mistakes_are_caught_before_any_rendering_or_training(tmp_path, capsys, args, message):
    cache = tmp_path / "cache"
    assert main(["demo", "--cache", str(cache), "--out", str(tmp_path / "out"), "--scenes", "30", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not cache.exists() and not (tmp_path / "out").exists()
