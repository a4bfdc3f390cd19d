"""Checkpoint files: safe loading (weights_only), clear errors, RNG round trips, model loading."""

from __future__ import annotations

import os
import random
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from i2r.checkpoint import (
    VERSION,
    capture_rng_state,
    check_same,
    load_checkpoint,
    load_model,
    restore_rng_state,
    save_checkpoint,
)
from i2r.errors import UserError


def test_round_trip_loads_with_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"step": 7, "config": {"betas": [0.0, 0.99]}, "rng": [capture_rng_state()]}, path)
    raw = torch.load(path, weights_only=True)  # the contract: a plain weights_only load works
    assert raw["format"] == "i2r-checkpoint" and raw["version"] == VERSION
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == {"betas": [0.0, 0.99]}


def test_rng_state_restores_every_generator():
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2:] == second[2:]


def test_rng_state_survives_the_file(tmp_path):
    np.random.randn()  # leave a cached Gaussian in NumPy's state
    save_checkpoint({"rng": [capture_rng_state()]}, tmp_path / "c.pt")
    expected = (torch.randn(2), np.random.randn(2), random.random())
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"][0])
    assert torch.equal(expected[0], torch.randn(2))
    np.testing.assert_array_equal(expected[1], np.random.randn(2))
    assert expected[2] == random.random()


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_garbage_file(tmp_path):
    (tmp_path / "g.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "g.pt")


def test_plain_state_dict_is_not_an_i2r_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(UserError, match="not an i2r checkpoint"):
        load_checkpoint(tmp_path / "w.pt")


def test_other_version_is_named(tmp_path):
    torch.save({"format": "i2r-checkpoint", "version": VERSION + 1}, tmp_path / "v.pt")
    with pytest.raises(UserError, match=f"version {VERSION + 1}.*reads version {VERSION}"):
        load_checkpoint(tmp_path / "v.pt")


class _Payload:
    """An object that would run code if unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_tampered_checkpoint_with_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "i2r-checkpoint", "version": VERSION, "model": _Payload(marker)}, path)
    with pytest.raises(UserError, match="refused.*weights_only"):
        load_checkpoint(path)
    assert not marker.exists()


def test_check_same_names_each_difference():
    with pytest.raises(UserError, match=r"preset: checkpoint has 'small', this run 'paper'.*seed"):
        check_same({"preset": "small", "seed": 0, "epochs": 1}, {"preset": "paper", "seed": 1, "epochs": 2},
                   "training config", "run/last.pt", ignore=("epochs",))
    check_same({"betas": [0.0, 0.99]}, {"betas": (0.0, 0.99)}, "training config", "x")  # lists == tuples


def _tiny_checkpoint(path, preset="small"):
    from i2r.audio import fit_spectrogram_norm
    from i2r.models import Image2Reverb, ModelConfig

    config = replace(ModelConfig.preset("small"), resolution=32, image_size=32, depth_mode="none")
    model = Image2Reverb(config)
    norm = fit_spectrogram_norm([torch.randn(32, 32) - 5.0])
    save_checkpoint({"config": {"preset": preset}, "model_config": asdict(config), "spec_norm": norm.to_dict(),
                     "model": model.state_dict()}, path)
    return model, norm


def test_load_model_gives_the_saved_weights(tmp_path):
    model, norm = _tiny_checkpoint(tmp_path / "m.pt")
    loaded, loaded_norm, checkpoint = load_model(tmp_path / "m.pt", "cpu")
    assert not loaded.training
    assert loaded.config == model.config and loaded_norm == norm and checkpoint["config"]["preset"] == "small"
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_load_model_names_a_preset_mismatch(tmp_path):
    _tiny_checkpoint(tmp_path / "m.pt", preset="small")
    with pytest.raises(UserError, match="preset 'small', expected 'paper'"):
        load_model(tmp_path / "m.pt", "cpu", preset="paper")


def test_load_model_names_weights_that_do_not_fit(tmp_path):
    _tiny_checkpoint(tmp_path / "m.pt")
    checkpoint = torch.load(tmp_path / "m.pt", weights_only=True)
    checkpoint["model_config"]["resolution"] = 64  # the weights are for 32x32
    torch.save(checkpoint, tmp_path / "m.pt")
    with pytest.raises(UserError, match="m.pt"):
        load_model(tmp_path / "m.pt", "cpu")


def test_load_model_names_missing_entries(tmp_path):
    save_checkpoint({"step": 1}, tmp_path / "m.pt")
    with pytest.raises(UserError, match="lacks model_config, model, spec_norm"):
        load_model(tmp_path / "m.pt", "cpu")


def test_load_model_refuses_weights_of_a_diverged_run(tmp_path):
    _tiny_checkpoint(tmp_path / "m.pt")
    checkpoint = torch.load(tmp_path / "m.pt", weights_only=True)
    checkpoint["model"]["generator.output.weight"][0] = float("nan")
    torch.save(checkpoint, tmp_path / "m.pt")
    with pytest.raises(UserError, match="1 weight tensors hold NaN .*generator.output.weight"):
        load_model(tmp_path / "m.pt", "cpu")
