"""`i2r eval` end to end on the tiny data set and checkpoint of conftest.py."""

import contextlib
import csv
import io
import json
import os
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from conftest import TINY_PAIRS, UNMEASURABLE_STEM
from i2r.audio import load_ir
from i2r.cli import main
from i2r.evaluate import EvalConfig, error_stats, nearest_neighbour_baseline, nn_embedder, single_number_t60

DESIGN_COLUMNS = ["image", "ir_true", "t60_true_s", "t60_generated_s", "t60_error_pct"]


def run_cli(*argv) -> tuple[int, str, str]:
    """``i2r`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def read_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def eval_process(checkpoint, data, out, launcher=(), env=None) -> subprocess.CompletedProcess:
    """A real `python -m i2r eval CHECKPOINT --data DATA --out OUT --save-wavs --baseline nn --format json`."""
    result = subprocess.run([sys.executable, *launcher, "-m", "i2r", "eval", str(checkpoint), "--data", str(data),
                             "--out", str(out), "--save-wavs", "--baseline", "nn", "--format", "json"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def eval_run(tiny_checkpoint, tiny_dataset, tmp_path_factory):
    """(OUT, stdout, stderr) of one :func:`eval_process` on the tiny test split."""
    out = tmp_path_factory.mktemp("eval")
    result = eval_process(tiny_checkpoint, tiny_dataset, out)
    return out, result.stdout, result.stderr


def test_metrics_json_has_the_design_keys(eval_run):
    out, _, _ = eval_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"n", "excluded", "t60_definition", "t60_error_pct", "per_band"} <= set(metrics)
    assert {"mean", "sd", "median", "iqr"} <= set(metrics["t60_error_pct"])
    assert metrics["t60_definition"] == "t30"
    assert metrics["per_band"]["bands_hz"] == [125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0]
    assert len(metrics["per_band"]["t30_error_pct"]["mean"]) == 6
    assert metrics["config"]["checkpoint"].endswith("last.pt")


def test_json_stdout_is_exactly_the_metrics(eval_run):
    out, stdout, stderr = eval_run
    assert json.loads(stdout) == json.loads((out / "metrics.json").read_text())
    assert stdout.count("\n") == 1  # one document; progress and logs went to stderr


def test_per_example_csv_has_the_design_columns_and_saved_wavs(eval_run, tiny_dataset):
    out, _, _ = eval_run
    rows = read_rows(out / "per_example.csv")
    assert list(rows[0])[:6] == DESIGN_COLUMNS + ["ir_generated"]
    test_stems = sorted(f"pair{i:02d}" for i, (split, _) in enumerate(TINY_PAIRS) if split == "test")
    assert sorted(r["scene"] for r in rows) == test_stems
    for row in rows:
        audio, fs = sf.read(row["ir_generated"])
        assert fs == 22050 and audio.shape == (130977,)
        assert np.abs(audio).max() > 0


def test_unmeasurable_truth_is_excluded_with_a_reason_not_averaged(eval_run):
    out, _, _ = eval_run
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_rows(out / "per_example.csv")
    assert metrics["n_total"] == 4 and metrics["n"] == 3
    assert [e["image"].rsplit("/", 1)[-1] for e in metrics["excluded"]] == [f"{UNMEASURABLE_STEM}.png"]
    assert "dB" in metrics["excluded"][0]["reason"]  # says how little dynamic range there was
    noise_row = next(r for r in rows if r["scene"] == UNMEASURABLE_STEM)
    assert noise_row["t60_true_s"] == "" and noise_row["excluded_reason"]
    # The statistics are those of the kept rows' finite errors, and nothing else.
    kept = [float(r["t60_error_pct"]) for r in rows if not r["excluded_reason"] and r["t60_error_pct"]]
    assert metrics["t60_error_pct"] == pytest.approx(error_stats(kept))
    assert metrics["t60_error_pct"]["n"] == 3 - len(metrics["generated_unmeasurable"])


def test_true_t60_of_the_decays_is_measured(eval_run):
    out, _, _ = eval_run
    truth = {f"pair{i:02d}": t60 for i, (_, t60) in enumerate(TINY_PAIRS)}
    for row in read_rows(out / "per_example.csv"):
        if row["scene"] != UNMEASURABLE_STEM:
            assert float(row["t60_true_s"]) == pytest.approx(truth[row["scene"]], rel=0.1)


def test_nn_baseline_picks_training_irs(eval_run, tiny_dataset):
    out, _, _ = eval_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert "encoder" in metrics["baseline_nn"]["embedding"]
    train_irs = {str(tiny_dataset / "irs" / f"pair{i:02d}.wav") for i, (s, _) in enumerate(TINY_PAIRS) if s == "train"}
    rows = read_rows(out / "per_example.csv")
    assert {r["ir_nn"] for r in rows} <= train_irs
    kept = [float(r["t60_nn_error_pct"]) for r in rows if not r["excluded_reason"]]
    assert metrics["baseline_nn"]["t60_error_pct"]["mean"] == pytest.approx(np.mean(kept))


def test_plots_are_written(eval_run):
    out, _, _ = eval_run
    for name in ("t60_error.png", "t60_scatter.png"):
        with Image.open(out / name) as image:
            assert image.size[0] > 300 and image.size[1] > 300


@pytest.mark.parametrize("definition", ["irstats", "t60p"])
def test_t60_definition_is_used_and_recorded(definition, tiny_checkpoint, tiny_dataset, tmp_path):
    status, stdout, _ = run_cli("eval", tiny_checkpoint, "--data", tiny_dataset, "--out", tmp_path,
                                "--split", "val", "--t60", definition)
    assert status == 0
    assert stdout.startswith(f"T60 error ({definition}:")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["t60_definition"] == definition and metrics["config"]["t60_definition"] == definition
    rows = read_rows(tmp_path / "per_example.csv")
    expected, _ = single_number_t60(np.stack([load_ir(r["ir_true"]) for r in rows]), definition)
    np.testing.assert_allclose([float(r["t60_true_s"]) for r in rows], expected, rtol=1e-9)


def test_a_second_run_gives_identical_results(eval_run, tiny_checkpoint, tiny_dataset, tmp_path):
    """Two processes with the same arguments write the same numbers, bit for bit."""
    out, _, _ = eval_run
    eval_process(tiny_checkpoint, tiny_dataset, tmp_path)
    first, second = read_rows(out / "per_example.csv"), read_rows(tmp_path / "per_example.csv")
    assert list(first[0]) == list(second[0])
    same = [c for c in first[0] if c != "ir_generated"]  # the wav paths name the two output folders
    assert [[r[c] for c in same] for r in first] == [[r[c] for c in same] for r in second]
    for a, b in zip(first, second):
        assert sf.read(a["ir_generated"])[0].tobytes() == sf.read(b["ir_generated"])[0].tobytes()


def test_an_interrupted_run_resumes_with_the_examples_it_had_measured(tiny_checkpoint, tiny_dataset, tmp_path,
                                                                       monkeypatch):
    """Ctrl-C after the first batch of 2 (of 4 test examples); the next run measures only the other
    two, and its results equal an uninterrupted run's, bit for bit."""
    import i2r.evaluate

    args = ["eval", tiny_checkpoint, "--data", tiny_dataset, "--save-wavs", "--baseline", "nn", "--batch-size", "2"]
    assert run_cli(*args, "--out", tmp_path / "whole")[0] == 0
    args += ["--out", tmp_path / "resumed"]
    real_measure, real_generate, generated = i2r.evaluate.mfcc_spearman, i2r.evaluate.generate_examples, []

    def interrupted_in_the_second_batch(*a):
        generated.append(1)
        if len(generated) == 2:
            raise KeyboardInterrupt
        return real_measure(*a)

    monkeypatch.setattr(i2r.evaluate, "mfcc_spearman", interrupted_in_the_second_batch)
    assert run_cli(*args)[0] == 130
    assert not (tmp_path / "resumed" / "per_example.csv").exists()
    assert len(list((tmp_path / "resumed").glob(".eval-partial-*"))) == 1

    def counted(model, norm, images, indices, *rest):
        generated.extend(indices)
        return real_generate(model, norm, images, indices, *rest)

    monkeypatch.setattr(i2r.evaluate, "mfcc_spearman", real_measure)
    monkeypatch.setattr(i2r.evaluate, "generate_examples", counted)
    generated.clear()
    status, _, err = run_cli(*args)
    assert status == 0 and "resuming: 2 of 4 examples already measured" in err
    assert generated == [2, 3] and not list((tmp_path / "resumed").glob(".eval-partial-*"))
    whole, resumed = read_rows(tmp_path / "whole" / "per_example.csv"), read_rows(tmp_path / "resumed" / "per_example.csv")
    same = [c for c in whole[0] if c != "ir_generated"]
    assert [[r[c] for c in same] for r in whole] == [[r[c] for c in same] for r in resumed]


def test_a_journal_of_other_settings_is_not_reused(tiny_checkpoint, tiny_dataset, tmp_path):
    (tmp_path / ".eval-partial-0-old.jsonl").write_text(json.dumps({"seed": 99}) + "\n" + json.dumps({"index": 0}) + "\n")
    status, _, err = run_cli("eval", tiny_checkpoint, "--data", tiny_dataset, "--out", tmp_path)
    assert status == 0 and "resuming" not in err and not list(tmp_path.glob(".eval-partial-*"))


@pytest.mark.slow
def test_torchrun_with_two_processes_matches_one_process(tiny_checkpoint, tiny_dataset, tmp_path):
    """Two gloo processes each take every other example; rank 0 gathers them in data set order.

    torchrun gives each worker one OpenMP thread, so the one-process reference runs with one too:
    a different thread count sums float32 convolutions in another order, and Griffin-Lim's
    iterations amplify that rounding far beyond what sharding itself may change.
    """
    out = tmp_path / "single"
    eval_process(tiny_checkpoint, tiny_dataset, out, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = eval_process(tiny_checkpoint, tiny_dataset, tmp_path / "sharded",
                          launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"))
    assert json.loads(result.stdout)["n_total"] == 4  # only rank 0 printed
    single, sharded = read_rows(out / "per_example.csv"), read_rows(tmp_path / "sharded" / "per_example.csv")
    assert list(single[0]) == list(sharded[0])
    for a, b in zip(single, sharded, strict=True):
        for column, value in a.items():
            if column == "ir_generated":
                # Per-process batches differ in size, so float32 convolutions round differently and
                # Griffin-Lim carries that on: the same IR to 1e-3 of its peak (as the numbers below).
                expected = sf.read(value)[0]
                assert sf.read(b[column])[0] == pytest.approx(expected, abs=1e-3 * np.abs(expected).max())
            elif _is_number(value):
                # Batches of other sizes may round differently in float32 convolutions.
                assert float(b[column]) == pytest.approx(float(value), rel=1e-3, abs=1e-3), column
            else:
                assert b[column] == value, column


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_missing_or_garbage_checkpoint_is_a_user_error(tiny_dataset, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    for checkpoint in (tmp_path / "missing.pt", garbage):
        status, stdout, stderr = run_cli("eval", checkpoint, "--data", tiny_dataset, "--out", tmp_path / "e")
        assert status == 2 and stdout == ""
        assert stderr.startswith("error: ") and stderr.count("\n") == 1 and checkpoint.name in stderr
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_data_folder_without_pairs_is_a_user_error(tiny_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    only_train = tmp_path / "only_train"
    only_train.mkdir()
    (only_train / "manifest.csv").write_text("image,ir,split,scene\n")
    for data in (tmp_path / "empty", only_train):
        status, _, stderr = run_cli("eval", tiny_checkpoint, "--data", data, "--out", tmp_path / "e")
        assert status == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1
        assert str(data) in stderr


def places365_file(path, arch) -> dict:
    """A state dict in the published ``<arch>_places365.pth.tar`` layout (DataParallel prefixes)."""
    torch.manual_seed(0)
    state = arch(in_channels=3, num_classes=365).state_dict()
    torch.save({"epoch": 90, "arch": arch.__name__, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return state


@pytest.mark.parametrize("arch_name, width",
                         [("resnet18", 512), pytest.param("resnet50", 2048, marks=pytest.mark.slow)])
def test_nn_baseline_with_places365_weights_uses_their_features(arch_name, width, tiny_dataset, tmp_path):
    from i2r.data.datasets import PairedDataset
    from i2r.models import resnet

    arch = getattr(resnet, arch_name)
    weights = tmp_path / f"{arch_name}_places365.pth.tar"
    state = places365_file(weights, arch)
    config = EvalConfig(checkpoint="unused.pt", data=str(tiny_dataset), baseline="nn", places_weights=str(weights))
    name, embed = nn_embedder(config, None, torch.device("cpu"))
    assert name == f"Places365 ResNet-{arch_name[6:]} pooled features ({width}-d)"
    train_set = PairedDataset(tiny_dataset, split="train", resolution=32, image_size=64)
    test_set = PairedDataset(tiny_dataset, split="test", resolution=32, image_size=64)
    records = [{"index": i, "t60_true_s": 1.0} for i in range(2)]
    nearest_neighbour_baseline(embed, train_set, test_set, records, config, torch.device("cpu"))
    # The same choice made by hand with the file's weights: cosine-nearest pooled feature.
    reference = arch(in_channels=3, num_classes=365)
    reference.load_state_dict(state)
    reference.fc = torch.nn.Identity()
    reference.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(dataset, n):
        images = torch.stack([dataset[i]["image"] for i in range(n)])
        images = torch.nn.functional.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
        with torch.no_grad():
            pooled = reference((images - mean) / std)
        assert pooled.shape == (n, width)
        return torch.nn.functional.normalize(pooled, dim=1)

    nearest = (features(test_set, 2) @ features(train_set, len(train_set)).T).argmax(dim=1)
    assert [r["ir_nn"] for r in records] == [train_set[int(j)]["ir_path"] for j in nearest]
    assert all(math.isfinite(r["t60_nn_s"]) for r in records)


def test_places365_file_of_the_wrong_format_is_a_user_error(tiny_checkpoint, tiny_dataset, tmp_path):
    torch.save({"model": {}}, tmp_path / "bad.pth.tar")
    status, _, stderr = run_cli("eval", tiny_checkpoint, "--data", tiny_dataset, "--out", tmp_path / "e",
                                "--split", "val", "--baseline", "nn", "--places-weights", tmp_path / "bad.pth.tar")
    assert status == 2 and "state_dict" in stderr and stderr.startswith("error: ")
    assert not (tmp_path / "e").exists()  # refused before any generation


def test_places365_weights_without_the_baseline_are_refused(tiny_checkpoint, tiny_dataset, tmp_path):
    status, _, stderr = run_cli("eval", tiny_checkpoint, "--data", tiny_dataset, "--places-weights", "w.pth.tar")
    assert status == 2 and "--baseline nn" in stderr
