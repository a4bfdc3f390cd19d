"""T60p (i2r.acoustics.t60p): analytic decays, gradcheck, and gradient descent to a target."""

import math

import pytest
import torch

from i2r.acoustics import t60p
from i2r.acoustics.proxy import schroeder_db

FRAME_RATE = 22050 / 256


def exponential_spectrogram(t60_s, n_freq=8, n_frames=512, frame_rate=FRAME_RATE, dtype=torch.float64):
    """log|X| of a decay whose amplitude falls 60 dB in ``t60_s`` (same rate in every bin)."""
    t = torch.arange(n_frames, dtype=dtype) / frame_rate
    rate = 3.0 * math.log(10.0) / torch.as_tensor(t60_s, dtype=dtype)
    spectral_tilt = torch.linspace(0.0, -2.0, n_freq, dtype=dtype)
    return spectral_tilt[:, None] - rate[..., None, None] * t


@pytest.mark.parametrize("t60", [0.3, 1.0, 2.5])
def test_recovers_known_t60_of_exponential_decay(t60):
    assert float(t60p(exponential_spectrogram(t60), FRAME_RATE)) == pytest.approx(t60, rel=0.01)


def test_batch_shape_and_pooled_frame_rate():
    t60 = torch.tensor([[0.5, 1.0, 2.0], [0.8, 1.5, 2.5]], dtype=torch.float64)
    spec = exponential_spectrogram(t60, n_frames=128, frame_rate=22050 / 1024)
    out = t60p(spec, 22050 / 1024)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, t60, rtol=0.02, atol=0.0)


def test_energy_sum_over_frequency_and_gain_invariance():
    spec = exponential_spectrogram(1.0)
    assert float(t60p(spec + 3.0, FRAME_RATE)) == pytest.approx(float(t60p(spec, FRAME_RATE)), rel=1e-9)
    curve = schroeder_db(spec)
    assert float(curve[0]) == 0.0 and bool(torch.all(curve[1:] < curve[:-1]))


def test_gradcheck_float64():
    torch.manual_seed(0)
    n_frames = 24
    t = torch.arange(n_frames, dtype=torch.float64)
    spec = (-0.4 * t + 0.3 * torch.randn(3, n_frames, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: t60p(s, FRAME_RATE), (spec,), eps=1e-6, atol=1e-5)


def test_gradient_reaches_frames_around_both_crossings():
    spec = exponential_spectrogram(1.0).requires_grad_()
    t60p(spec, FRAME_RATE).backward()
    per_frame = spec.grad.abs().sum(dim=0)
    assert int((per_frame > 0).sum()) >= 4
    assert bool(torch.all(torch.isfinite(spec.grad)))


def test_gradient_descent_on_raw_spectrogram_reaches_target():
    torch.manual_seed(1)
    spec = (exponential_spectrogram(0.6, n_frames=256) + 0.1 * torch.randn(8, 256, dtype=torch.float64))
    spec.requires_grad_()
    target = 1.2
    optimiser = torch.optim.Adam([spec], lr=0.05)
    for _ in range(150):
        optimiser.zero_grad()
        loss = (t60p(spec, FRAME_RATE) - target).abs() / target
        loss.backward()
        optimiser.step()
    assert float(t60p(spec.detach(), FRAME_RATE)) == pytest.approx(target, rel=0.03)


def test_gradient_descent_on_decay_rate_reaches_target():
    log_t60 = torch.tensor(math.log(0.4), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([log_t60], lr=0.05)
    for _ in range(80):
        optimiser.zero_grad()
        spec = exponential_spectrogram(log_t60.exp(), n_freq=4, n_frames=128, frame_rate=22050 / 1024)
        loss = (t60p(spec, 22050 / 1024) - 2.0).abs()
        loss.backward()
        optimiser.step()
    assert float(log_t60.detach().exp()) == pytest.approx(2.0, rel=0.03)
