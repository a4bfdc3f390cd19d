"""IR <-> log-spectrogram representation: shapes, STFT fidelity, inversion, normalisation."""

import math

import numpy as np
import pytest
import torch

from i2r.audio import (
    HOP,
    IR_SAMPLES,
    LOG_FLOOR,
    N_FFT,
    SAMPLE_RATE,
    SpectrogramNorm,
    fit_spectrogram_norm,
    ir_to_logspec,
    logspec_to_ir,
    prepare_ir,
)
from i2r.audio import _fast_griffin_lim, _istft, _random_phase, _stft
from i2r.errors import UserError


def test_constants_match_the_paper():
    assert IR_SAMPLES == 130977 == round(22050 * 5.94)
    assert (SAMPLE_RATE, N_FFT, HOP) == (22050, 1024, 256)


def test_stft_and_fast_istft_match_torch():
    x = torch.randn(2, IR_SAMPLES, generator=torch.Generator().manual_seed(1))
    window = torch.hann_window(N_FFT)
    spec = _stft(x)
    assert spec.shape == (2, 513, 512)
    assert torch.allclose(_istft(spec), x, atol=1e-4)
    altered = spec * torch.exp(1j * torch.rand(spec.shape, generator=torch.Generator().manual_seed(2)))
    expected = torch.istft(altered, N_FFT, HOP, window=window, center=True, length=IR_SAMPLES)
    assert torch.allclose(_istft(altered), expected, atol=1e-4)


def test_stft_pads_with_zeros_not_mirror_images():
    impulse = torch.zeros(1, IR_SAMPLES)
    impulse[0, 3] = 1.0
    first_frame = _stft(impulse)[0, :, 0].abs()
    # One impulse in the frame: a flat spectrum at the window's value; a mirrored copy would ripple.
    assert torch.allclose(first_frame, torch.hann_window(N_FFT)[N_FFT // 2 + 3].expand(513), atol=1e-6)


def test_prepare_ir_resamples_mixes_and_pads():
    fs = 44100
    stereo = np.zeros((2, fs))  # 1 s at 44.1 kHz
    stereo[0, 100], stereo[1, 100] = 0.5, 0.1
    ir = prepare_ir(stereo, fs)
    assert ir.shape == (IR_SAMPLES,) and ir.dtype == np.float32
    assert np.argmax(np.abs(ir)) == 50  # sample 100 at 44.1 kHz is sample 50 at 22.05 kHz
    assert np.max(np.abs(ir)) == pytest.approx(1.0)
    assert np.all(ir[SAMPLE_RATE + 100 :] == 0)  # zero-padded after the 1 s of input


def test_prepare_ir_takes_w_of_b_format_and_cuts_long_files():
    b_format = np.zeros((4, 8 * SAMPLE_RATE))
    b_format[0, 7] = 1.0  # W
    b_format[1:, 3] = 5.0  # X, Y, Z must be ignored
    ir = prepare_ir(b_format, SAMPLE_RATE, normalize=False)
    assert ir.shape == (IR_SAMPLES,)
    assert ir[7] == 1.0 and ir[3] == 0.0


def test_prepare_ir_rejects_silence():
    with pytest.raises(UserError, match="silent"):
        prepare_ir(np.zeros(1000), SAMPLE_RATE)


def test_logspec_shapes_and_floor():
    irs = torch.zeros(2, 3, IR_SAMPLES)
    irs[..., 0] = 1.0
    assert ir_to_logspec(irs).shape == (2, 3, 512, 512)
    assert ir_to_logspec(irs, resolution=128).shape == (2, 3, 128, 128)
    silent = ir_to_logspec(torch.zeros(IR_SAMPLES), resolution=64)
    assert torch.allclose(silent, torch.full((64, 64), float(np.log(LOG_FLOOR))))
    with pytest.raises(ValueError, match="130977"):
        ir_to_logspec(torch.zeros(1000))
    with pytest.raises(ValueError, match="resolution"):
        ir_to_logspec(torch.zeros(IR_SAMPLES), resolution=100)


def test_silence_maps_to_the_papers_floor_log_1e_minus_5():
    """The representation is ``log(|X| + 1e-5)`` (Singh et al. 2021): a silent IR is
    ``log(1e-5) = -5 ln 10 = -11.513`` in every cell, at full and pooled resolution."""
    floor = -5.0 * math.log(10.0)
    for resolution in (512, 64):
        silent = ir_to_logspec(torch.zeros(IR_SAMPLES), resolution=resolution)
        assert torch.allclose(silent, torch.full_like(silent, floor), rtol=0.0, atol=1e-5)


def test_dc_is_row_0_and_the_nyquist_bin_is_the_one_dropped():
    """Rows are bins 0..511 of the 1024-point STFT, DC first. A constant c fills every frame
    that lies wholly inside the IR (frames 2..509) with the periodic Hann window's DFT:
    ``c * 512`` at bin 0 and ``c * 256`` at bin 1, so rows 0 and 1 hold ``log(512 c + 1e-5)``
    and ``log(256 c + 1e-5)``. Dropping the DC bin instead would put bin 1 in row 0."""
    c = 0.25
    logspec = ir_to_logspec(torch.full((IR_SAMPLES,), c))
    inside = logspec[:, 2:510]
    torch.testing.assert_close(inside[0], torch.full_like(inside[0], math.log(512 * c + 1e-5)), rtol=0, atol=1e-5)
    torch.testing.assert_close(inside[1], torch.full_like(inside[1], math.log(256 * c + 1e-5)), rtol=0, atol=1e-5)


def test_each_griffin_lim_iteration_ends_on_the_target_magnitude():
    """Griffin-Lim's magnitude projection scales each complex bin to the target magnitude:
    after any number of iterations (with or without momentum) ``|estimate|`` equals the target
    exactly, to float32 rounding -- the projection divides by the complex modulus
    ``hypot(re, im)``; ``|re| + |im|`` (up to sqrt(2) times larger) would leave it too small."""
    noise = torch.randn(IR_SAMPLES, generator=torch.Generator().manual_seed(3))
    x = noise * torch.exp(-torch.arange(IR_SAMPLES) / 4000.0)
    magnitude = _stft(x[None]).abs()
    start = magnitude * _random_phase(magnitude.shape, torch.Generator().manual_seed(1), magnitude.device)
    for n_iter, momentum in ((1, 0.0), (2, 0.99)):
        estimate = _fast_griffin_lim(magnitude, start, n_iter, momentum)
        torch.testing.assert_close(estimate.abs(), magnitude, rtol=1e-5, atol=1e-6)


def test_pooled_spectrogram_keeps_block_energy():
    ir = torch.randn(IR_SAMPLES, generator=torch.Generator().manual_seed(2))
    full = (torch.exp(ir_to_logspec(ir)) - LOG_FLOOR).square()
    pooled = (torch.exp(ir_to_logspec(ir, resolution=128)) - LOG_FLOOR).square()
    block_sums = full.reshape(128, 4, 128, 4).sum(dim=(1, 3))
    assert torch.allclose(pooled * 16, block_sums, rtol=1e-3)


@pytest.mark.parametrize("resolution", [512, 128])
def test_inversion_shapes(resolution):
    logspec = torch.full((2, resolution, resolution), -3.0)
    for method in ("griffin-lim", "random-phase"):
        out = logspec_to_ir(logspec, method=method, n_iter=2)
        assert out.shape == (2, IR_SAMPLES) and out.dtype == torch.float32
    assert logspec_to_ir(logspec[0], n_iter=1).shape == (IR_SAMPLES,)
    with pytest.raises(ValueError, match="method"):
        logspec_to_ir(logspec, method="magic")


def _spectral_convergence(ir, logspec):
    """|| |STFT(y)| - M || / ||M||: how far a signal is from having the target magnitude."""
    target = torch.exp(logspec) - LOG_FLOOR
    achieved = _stft(ir.reshape(1, -1))[0, :-1].abs()
    return float(torch.linalg.norm(achieved - target) / torch.linalg.norm(target))


def test_griffin_lim_is_more_consistent_than_random_phase():
    ir = torch.as_tensor(prepare_ir(np.random.default_rng(3).standard_normal(IR_SAMPLES) * np.exp(-np.arange(IR_SAMPLES) / 8000), SAMPLE_RATE))
    logspec = ir_to_logspec(ir)
    random_phase = _spectral_convergence(logspec_to_ir(logspec, method="random-phase"), logspec)
    griffin_lim = _spectral_convergence(logspec_to_ir(logspec, n_iter=8), logspec)
    assert griffin_lim < 0.6 * random_phase


def test_inversion_is_seeded():
    logspec = ir_to_logspec(torch.randn(IR_SAMPLES, generator=torch.Generator().manual_seed(4)), resolution=64)
    a, b = logspec_to_ir(logspec, n_iter=2, seed=5), logspec_to_ir(logspec, n_iter=2, seed=5)
    assert torch.equal(a, b)
    assert not torch.equal(a, logspec_to_ir(logspec, n_iter=2, seed=6))


def test_norm_round_trip_and_range():
    generator = torch.Generator().manual_seed(5)
    logspecs = [ir_to_logspec(torch.randn(IR_SAMPLES, generator=generator) * 0.1, resolution=64) for _ in range(3)]
    norm = fit_spectrogram_norm(logspecs)
    assert norm.n_examples == 3 and norm.resolution == 64
    x = torch.cat(logspecs)
    y = norm.normalize(x)
    assert float(y.abs().max()) <= norm.scale + 1e-6 < 1.0
    inside = (x >= norm.low) & (x <= norm.high)
    assert inside.float().mean() > 0.99
    assert torch.allclose(norm.denormalize(y)[inside], x[inside], atol=1e-4)
    restored = SpectrogramNorm.from_dict(norm.to_dict())
    assert restored == norm
    assert np.allclose(restored.normalize(x.numpy()), y.numpy(), atol=1e-6)


def test_norm_fits_on_dataset_items_and_validates():
    items = [{"logspec": torch.linspace(-10, 2, 64 * 64).reshape(1, 64, 64)}]
    norm = fit_spectrogram_norm(items, low_percentile=0.0, high_percentile=100.0)
    assert norm.low == pytest.approx(-10) and norm.high == pytest.approx(2)
    with pytest.raises(UserError, match="empty"):
        fit_spectrogram_norm([])
    with pytest.raises(UserError, match="high"):
        SpectrogramNorm.from_dict({"low": 1.0})
    with pytest.raises(UserError, match="low < high"):
        SpectrogramNorm(low=1.0, high=1.0)
