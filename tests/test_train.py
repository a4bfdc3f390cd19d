"""The trainer: exact resume after a kill (one process and 2-process gloo DDP), ablations, errors.

Runs use a tiny model (the small preset at 32x32 spectrograms and 64 px images) on 6 training
pairs built here: a step takes 1-2 s on 2 cores (several times that when they are busy).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from i2r.audio import SAMPLE_RATE, save_wav
from i2r.cli import build_parser, main
from i2r.errors import UserError
from i2r.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """6 train and 2 val pairs: noise images, exponentially decaying noise IRs, depth maps."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    rows = ["image,ir,depth,split,scene"]
    for i in range(8):
        split = "train" if i < 6 else "val"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(root / f"{i}_depth.png")
        t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
        save_wav(root / f"{i}.wav", rng.standard_normal(t.size) * np.exp(-6.9 * t / (0.1 + 0.03 * i)), SAMPLE_RATE)
        rows.append(f"{i}.png,{i}.wav,{i}_depth.png,{split},room{i % 3}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def one_thread():
    """Train in-process on one thread, as torchrun's processes do: on shared cores a second
    OpenMP thread mostly spins, several times slower in total."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_i2r(args, nproc: int = 1) -> subprocess.CompletedProcess:
    """``python -m i2r ...``, or under ``torch.distributed.run`` with ``nproc`` gloo processes."""
    launcher = [sys.executable, "-m", "i2r"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
                    "-m", "i2r"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # what torchrun sets for each of its processes
    return subprocess.run(launcher + [str(a) for a in args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=900)


def run_ok(args, nproc: int = 1) -> None:
    result = run_i2r(args, nproc)
    assert result.returncode == 0, result.stderr[-3000:]


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for name in a["optimizers"]:
        for pid, state in a["optimizers"][name]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, b["optimizers"][name]["state"][pid][key]), (name, pid, key)


def metric_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_defaults_are_train_config_defaults():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    fields = TrainConfig.__dataclass_fields__
    given = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    assert given == TrainConfig(data="d", out="o")


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("max_steps", -1), ("max_minutes", -1.0), ("max_minutes", float("nan")),
    ("lr_generator", -1.0), ("lr_encoder", float("inf")), ("beta1", 2.0), ("threads", -1), ("num_workers", -1),
    ("l1_weight", float("nan")), ("t60p_weight", -1.0), ("seed", -1)])
def test_values_that_cannot_train_are_refused_before_anything_runs(field, value):
    with pytest.raises(UserError, match=field):
        TrainConfig(data="d", out="o", **{field: value})


def test_a_diverged_run_stops_with_an_error_and_keeps_the_last_finite_checkpoint(data, tmp_path, one_thread,
                                                                                  monkeypatch):
    import i2r.train

    real_step = i2r.train._train_step
    calls = []

    def step_that_diverges_on_the_third_call(*args):
        losses = real_step(*args)
        calls.append(1)
        return losses | {"loss_g": float("nan")} if len(calls) == 3 else losses

    monkeypatch.setattr(i2r.train, "_train_step", step_that_diverges_on_the_third_call)
    config = TrainConfig(data=str(data), out=str(tmp_path), resolution=32, image_size=64, batch_size=2, max_steps=4,
                         checkpoint_every=2, no_depth=True)
    with pytest.raises(UserError, match=f"diverged at step 3 .*loss_g nan.*{tmp_path / 'last.pt'}"):
        i2r.train.train(config)
    assert load(tmp_path / "last.pt")["step"] == 2


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(data, tmp_path, one_thread):
    """In-process (fast) version of the kill tests below: stop at step 2, resume to 3, compare."""
    from i2r.train import train

    cfg = dict(data=str(data), resolution=32, image_size=64, batch_size=2, log_every=1, checkpoint_every=100,
               depth_supervision=True, ema_beta=0.5, decay_weight=0.5)
    train(TrainConfig(out=str(tmp_path / "whole"), max_steps=3, **cfg))
    first_call = train(TrainConfig(out=str(tmp_path / "cut"), max_steps=2, **cfg))
    train(TrainConfig(out=str(tmp_path / "cut"), max_steps=3, resume=True, **cfg))
    whole, cut = load(tmp_path / "whole" / "last.pt"), load(tmp_path / "cut" / "last.pt")
    # the wall time trained adds up over the calls (what the demo's time budget counts)
    assert cut["trained_seconds"] > first_call["trained_seconds"] > 0
    assert_same_state(whole, cut)
    # the weight average resumes exactly too, and lags the weights it averages
    assert whole["ema"].keys() == cut["ema"].keys() and all(torch.equal(v, cut["ema"][k]) for k, v in whole["ema"].items())
    assert not torch.equal(whole["ema"]["generator.output.weight"], whole["model"]["generator.output.weight"])
    assert not any(key.startswith("discriminator.") for key in whole["ema"])
    assert whole["model"]["encoder.resnet.conv1.weight"].shape[1] == 4 and whole["epoch"] == 1
    rows = metric_rows(tmp_path / "whole")
    assert [(r["step"], r["split"]) for r in rows] == [("1", "train"), ("2", "train"), ("3", "train"), ("3", "val")]
    assert all(float(r["g_t60p"]) > 0 and float(r["g_decay_db"]) > 0 and float(r["depth_l1"]) > 0 for r in rows[:3])
    assert float(rows[3]["t60_error_pct"]) > 0 and float(rows[3]["l1"]) > 0
    assert [r["loss_g"] for r in metric_rows(tmp_path / "cut")] == [r["loss_g"] for r in rows]
    assert (tmp_path / "whole" / "config.json").is_file() and any((tmp_path / "whole" / "tb").iterdir())


def test_select_best_keeps_the_weights_of_the_lowest_measured_validation_error(data, tmp_path, one_thread,
                                                                                 monkeypatch):
    from i2r import train as trainer
    from i2r.checkpoint import load_model

    cfg = dict(data=str(data), resolution=32, image_size=64, batch_size=2, log_every=1, checkpoint_every=100,
               val_every=1, select_best=True)
    # for real: the validation IRs are generated, inverted and measured, and best.pt loads for inference
    summary = trainer.train(TrainConfig(out=str(tmp_path / "real"), max_steps=1, **cfg))
    row = [r for r in metric_rows(tmp_path / "real") if r["split"] == "val"][0]
    assert row["t60_measurable"] in ("0", "1", "2") and float(row["t60_median_abs_pct"]) >= 0
    assert summary["best"] == {"step": 1, "score": float(row["t60_median_abs_pct"]),
                               "measurable": int(row["t60_measurable"])}
    model, _, state = load_model(summary["best_checkpoint"])
    assert state["step"] == 1 and "optimizers" not in state

    # the choice, with scores set here: the lowest wins (between infinite ones, the most measurable),
    # and a resumed run knows what to beat
    inf = float("inf")
    scores = iter([(inf, 0), (inf, 1), (20.0, 2), (30.0, 2), (25.0, 2), (10.0, 1)])
    monkeypatch.setattr(trainer, "_measured_t60_error", lambda *args: dict(
        zip(("t60_median_abs_pct", "t60_measurable"), next(scores))))
    run = tmp_path / "chosen"
    assert trainer.train(TrainConfig(out=str(run), max_steps=2, **cfg))["best"] == {"step": 2, "score": inf,
                                                                                     "measurable": 1}
    assert trainer.train(TrainConfig(out=str(run), max_steps=4, resume=True, **cfg))["best"]["step"] == 3
    weights_at_3 = load(run / "best.pt")["model"]
    assert not torch.equal(weights_at_3["generator.output.weight"], load(run / "last.pt")["model"]["generator.output.weight"])
    assert trainer.train(TrainConfig(out=str(run), max_steps=5, resume=True, **cfg))["best"]["step"] == 3
    assert torch.equal(load(run / "best.pt")["model"]["generator.output.weight"], weights_at_3["generator.output.weight"])
    assert trainer.train(TrainConfig(out=str(run), max_steps=6, resume=True, **cfg))["best"] == {
        "step": 6, "score": 10.0, "measurable": 1}


def test_val_rooms_validates_on_the_first_pairs_of_the_split(data, tmp_path, one_thread):
    from i2r.train import train

    cfg = dict(data=str(data), resolution=32, image_size=64, batch_size=2, log_every=1, checkpoint_every=100,
               val_every=1)
    full = train(TrainConfig(out=str(tmp_path / "all"), max_steps=1, **cfg))["validation"]
    first = train(TrainConfig(out=str(tmp_path / "first"), max_steps=1, val_rooms=1, **cfg))["validation"]
    assert (full["n"], first["n"]) == (2, 1)
    assert first["l1"] != full["l1"]
    with pytest.raises(UserError, match="val_rooms"):
        TrainConfig(val_rooms=-1)


def test_validation_leaves_the_training_as_it_would_be_without_it(data, tmp_path, one_thread):
    # A validation pass must observe the run, not steer it: iterating a DataLoader draws its seed
    # from torch's global generator, which the training noise comes from, so a pass every 50
    # steps used to train other weights than one every 100 (a demo run, measured).
    from i2r.train import train

    cfg = dict(data=str(data), resolution=32, image_size=64, batch_size=2, log_every=1, checkpoint_every=100,
               max_steps=2)  # 3 steps an epoch: val_every=0 (once an epoch) validates nothing here
    validated = train(TrainConfig(out=str(tmp_path / "validated"), val_every=1, select_best=True, **cfg))
    assert validated["validation"]["n"] == 2
    assert not train(TrainConfig(out=str(tmp_path / "plain"), val_every=0, **cfg))["validation"]
    assert_same_state(load(tmp_path / "validated" / "last.pt"), load(tmp_path / "plain" / "last.pt"))


def test_the_small_presets_generator_starts_at_the_mean_training_spectrogram(data, tmp_path, one_thread):
    from i2r.audio import SpectrogramNorm, ir_to_logspec, load_ir
    from i2r.train import train

    train(TrainConfig(data=str(data), out=str(tmp_path / "run"), resolution=32, image_size=64, batch_size=2,
                      max_steps=1))
    checkpoint = load(tmp_path / "run" / "last.pt")
    norm = SpectrogramNorm.from_dict(checkpoint["spec_norm"])
    spectrograms = [norm.normalize(ir_to_logspec(load_ir(data / f"{i}.wav"), 32)) for i in range(6)]  # the train split
    expected = torch.atanh(torch.stack(spectrograms).mean(0).clamp(-0.99, 0.99)).view(1, 1, 32, 32)
    torch.testing.assert_close(checkpoint["model"]["generator.prior"], expected)


def test_select_best_needs_a_validation_split(data, tmp_path, capsys):
    rows = (data / "manifest.csv").read_text().splitlines()
    (tmp_path / "manifest.csv").write_text("\n".join(row for row in rows if ",val," not in row) + "\n")
    for path in data.iterdir():
        if path.suffix in (".png", ".wav"):
            (tmp_path / path.name).write_bytes(path.read_bytes())
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--select-best"]) == 2
    assert "validation split" in capsys.readouterr().err


def test_weight_average_moves_parameters_by_one_minus_beta_and_copies_buffers():
    from torch import nn

    from i2r.train import WeightAverage

    model = nn.Module()
    model.generator, model.encoder, model.discriminator = nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1)
    average = WeightAverage(model, beta=0.75)
    start = model.generator.weight.detach().clone()
    with torch.no_grad():
        model.generator.weight.add_(4.0)
    model.encoder(torch.randn(8, 2) + 3.0)  # a training-mode pass moves the BatchNorm statistics
    average.update(model)
    assert torch.allclose(average.state["generator.weight"], start + 1.0)  # a quarter of the way
    assert torch.equal(average.state["encoder.running_mean"], model.encoder.running_mean)
    assert not any(name.startswith("discriminator.") for name in average.state)


def test_load_model_infers_with_the_weight_average(tiny_checkpoint, tmp_path):
    from i2r.checkpoint import load_model, save_checkpoint

    state = load(tiny_checkpoint)
    name = "generator.output.weight"
    averaged = state["model"][name] + 1.0
    state["ema"] = {key: value for key, value in state["model"].items() if key.startswith("generator.")}
    state["ema"][name] = averaged
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, tmp_path / "ema.pt")
    model, _, _ = load_model(tmp_path / "ema.pt")
    assert torch.equal(model.state_dict()[name], averaged)
    assert torch.equal(model.state_dict()["discriminator.head2.weight"], state["model"]["discriminator.head2.weight"])


def test_ablation_flags_and_time_budget(data, tmp_path, one_thread, capsys):
    from i2r.train import train

    # A budget spent after the first step: the run stops there, with a checkpoint. (One loader worker.)
    summary = train(TrainConfig(data=str(data), out=str(tmp_path), resolution=32, image_size=64, batch_size=2,
                                max_minutes=1e-9, log_every=1, no_depth=True, no_t60p=True, num_workers=1))
    # its progress bar counts seconds of the budget, not the 200 epochs' steps
    assert "train (time budget)" in capsys.readouterr().err
    state = load(tmp_path / "last.pt")
    assert summary["step"] == state["step"] == 1
    assert state["model"]["encoder.resnet.conv1.weight"].shape[1] == 3  # RGB only
    assert not any(key.startswith("depth.") for key in state["model"])
    assert float(metric_rows(tmp_path)[0]["g_t60p"]) == float(metric_rows(tmp_path)[0]["g_decay_db"]) == 0.0


# The kill tests: 3 steps per epoch; a checkpoint at step 2 (mid-epoch), a kill after step 3 (the
# end of epoch 0, with its validation pass), a resume to step 4 (epoch 1: the sampler's set_epoch
# must match too). The parameters and Adam moments must equal those of an uninterrupted run.
# Each takes ~30 s on 2 idle cores and 2 minutes when they are shared by several jobs: slow.


@pytest.mark.slow
def test_killed_single_process_run_resumes_exactly(data, tmp_path):
    # 6 pairs, batch 2; with depth, depth supervision and T60p.
    common = ["train", "--data", data, "--resolution", "32", "--image-size", "64", "--batch-size", "2",
              "--log-every", "1", "--checkpoint-every", "2", "--max-steps", "4", "--depth-supervision"]
    run_ok([*common, "--out", tmp_path / "whole"])
    killed = run_i2r([*common, "--out", tmp_path / "cut", "--stop-after-step", "3"])
    assert killed.returncode != 0
    assert load(tmp_path / "cut" / "last.pt")["step"] == 2
    run_ok([*common, "--out", tmp_path / "cut", "--resume"])

    whole = load(tmp_path / "whole" / "last.pt")
    assert_same_state(whole, load(tmp_path / "cut" / "last.pt"))
    assert whole["model"]["encoder.resnet.conv1.weight"].shape[1] == 4
    rows, cut_rows = metric_rows(tmp_path / "whole"), metric_rows(tmp_path / "cut")
    assert [(r["step"], r["split"], r["loss_g"]) for r in cut_rows] == [(r["step"], r["split"], r["loss_g"]) for r in rows]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert len(train_rows) == 4 and all(float(r["g_t60p"]) > 0 and float(r["depth_l1"]) > 0 for r in train_rows)
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in val] == ["3"] and float(val[0]["t60_error_pct"]) > 0 and float(val[0]["l1"]) > 0
    assert (tmp_path / "whole" / "config.json").is_file() and any((tmp_path / "whole" / "tb").iterdir())


@pytest.mark.slow
def test_killed_two_process_gloo_run_resumes_exactly(data, tmp_path):
    # 2 ranks x batch 1 over 6 pairs. Ablations --no-depth --no-t60p.
    common = ["train", "--data", data, "--resolution", "32", "--image-size", "64", "--batch-size", "1",
              "--log-every", "1", "--checkpoint-every", "2", "--max-steps", "4", "--no-depth", "--no-t60p"]
    run_ok([*common, "--out", tmp_path / "whole"], nproc=2)
    killed = run_i2r([*common, "--out", tmp_path / "cut", "--stop-after-step", "3"], nproc=2)
    assert killed.returncode != 0
    checkpoint = load(tmp_path / "cut" / "last.pt")
    assert checkpoint["step"] == 2 and checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2
    run_ok([*common, "--out", tmp_path / "cut", "--resume"], nproc=2)

    whole = load(tmp_path / "whole" / "last.pt")
    assert_same_state(whole, load(tmp_path / "cut" / "last.pt"))
    assert whole["model"]["encoder.resnet.conv1.weight"].shape[1] == 3  # --no-depth: RGB only
    assert not any(key.startswith("depth.") for key in whole["model"])
    train_rows = [r for r in metric_rows(tmp_path / "whole") if r["split"] == "train"]
    assert len(train_rows) == 4 and all(float(r["g_t60p"]) == 0.0 for r in train_rows)  # --no-t60p


def _fake_run(out: Path, world_size: int = 1, model_fields_missing=(), **changes) -> None:
    """RUN/last.pt with only what the resume checks read (they run before any model is built);
    ``model_fields_missing``: model config fields left out, as a checkpoint from before them."""
    from dataclasses import asdict

    from i2r.checkpoint import save_checkpoint
    from i2r.train import _model_config

    cfg = TrainConfig(data="d", out=str(out), **changes)
    model_config = {k: v for k, v in asdict(_model_config(cfg)).items() if k not in model_fields_missing}
    out.mkdir()
    save_checkpoint({"config": asdict(cfg), "model_config": model_config, "world_size": world_size}, out / "last.pt")


@pytest.mark.parametrize("changes, args, message", [
    ({}, ["--preset", "paper"], "preset: checkpoint has 'small', this run 'paper'"),
    ({}, ["--no-depth"], "no_depth: checkpoint has False, this run True"),
    ({"resolution": 64}, [], "resolution: checkpoint has 64, this run 0"),
])
def test_resume_of_another_config_names_the_mismatch(data, tmp_path, capsys, changes, args, message):
    _fake_run(tmp_path / "run", **changes)
    status = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--resume", *args])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error:") and message in err


def test_a_run_of_the_small_preset_before_it_changed_is_not_resumed_with_the_new_model(data, tmp_path, capsys):
    _fake_run(tmp_path / "run", model_fields_missing=("feature_norm", "spectrogram_prior"))
    status = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--resume"])
    err = capsys.readouterr().err
    assert status == 2 and "feature_norm: checkpoint has None, this run 'batch'" in err and "a new --out" in err


def test_resume_with_another_world_size_is_refused(data, tmp_path, capsys):
    _fake_run(tmp_path / "run", world_size=2)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--resume"]) == 2
    assert "written by 2 processes, resumed with 1" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_a_clean_error(data, tmp_path, capsys):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_places_weights_start_the_encoder_and_no_places_ignores_them(data, tmp_path, one_thread):
    from i2r.models.resnet import ARCHITECTURES
    from i2r.train import train

    torch.manual_seed(123)
    published = ARCHITECTURES["resnet18"](in_channels=3, num_classes=365).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in published.items()}}, tmp_path / "places.pth.tar")
    key = "layer3.0.conv1.weight"
    for flag in (False, True):
        out = tmp_path / f"no_places_{flag}"
        train(TrainConfig(data=str(data), out=str(out), resolution=32, image_size=64, batch_size=2, max_steps=1,
                          no_depth=True, places_weights=str(tmp_path / "places.pth.tar"), no_places=flag))
        trained = load(out / "last.pt")["model"][f"encoder.resnet.{key}"]
        # One Adam step at lr 1e-5 moves each weight by at most ~1e-5.
        assert torch.allclose(trained, published[key], atol=1e-4) != flag


def test_depth_supervision_without_depth_maps_is_a_clean_error(data, capsys):
    rows = (data / "manifest.csv").read_text().splitlines()
    (data / "no_depth_maps.csv").write_text("\n".join(",".join(r.split(",")[:2] + r.split(",")[3:]) for r in rows))
    status = main(["train", "--data", str(data / "no_depth_maps.csv"), "--out", str(data / "unused"),
                   "--depth-supervision"])
    assert status == 2 and "--depth-supervision needs" in capsys.readouterr().err


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_resume_from_a_tampered_checkpoint_is_refused(data, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    torch.save({"format": "i2r-checkpoint", "version": 1, "config": _Payload(tmp_path / "code-ran")},
               tmp_path / "run" / "last.pt")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--resume"]) == 2
    assert "refused" in capsys.readouterr().err and not (tmp_path / "code-ran").exists()
