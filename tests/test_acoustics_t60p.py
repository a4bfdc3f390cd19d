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


def geometric_schroeder_crossing_s(energy_rates, weights, level_db, n_frames, frame_rate=FRAME_RATE):
    """Time (s) at which the frame-wise Schroeder sum of the energy ``sum_i w_i exp(-k_i t)``
    first falls ``level_db`` below its start. Each term's backward sum is a geometric series,
    ``w r**j / (1 - r)`` with ``r = exp(-k / frame_rate)``, so the curve is known in closed form
    and its crossing is found by bisection (it falls monotonically)."""
    ratios = [math.exp(-k / frame_rate) for k in energy_rates]

    def remaining(frame):
        return sum(w * r ** frame / (1 - r) for w, r in zip(weights, ratios))

    low, high = 0.0, n_frames - 1.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        above = 10.0 * math.log10(remaining(middle) / remaining(0.0)) > level_db
        low, high = (middle, high) if above else (low, middle)
    return low / frame_rate


def test_bins_are_summed_as_energy_not_as_magnitude():
    """Two bins with their own decays (T = 0.5 s, and T = 2 s at -10 dB energy): the fullband
    envelope is the sum of the bins' energies, whose Schroeder curve is the closed form above
    (T60p 1.74 s); summing magnitudes and squaring afterwards, as the original code did, adds a
    cross term and reads 1.50 s."""
    n_frames = 1024
    t = torch.arange(n_frames, dtype=torch.float64) / FRAME_RATE
    rates = [6.0 * math.log(10.0) / 0.5, 6.0 * math.log(10.0) / 2.0]  # energy decay rates, 1/s
    log_magnitude = torch.stack([-0.5 * rates[0] * t, 0.5 * math.log(0.1) - 0.5 * rates[1] * t])
    crossing = [geometric_schroeder_crossing_s(rates, [1.0, 0.1], level, n_frames) for level in (-5.0, -25.0)]
    expected = 3.0 * (crossing[1] - crossing[0])
    assert float(t60p(log_magnitude, FRAME_RATE)) == pytest.approx(expected, rel=1e-3)
    magnitude_sum = 2.0 * torch.logsumexp(log_magnitude, dim=0, keepdim=True)
    assert float(t60p(magnitude_sum, FRAME_RATE)) < 0.9 * expected  # the two sums differ this much


def test_gain_invariance_and_monotone_decay_curve():
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


def test_gradient_is_largest_at_the_frames_around_both_crossings():
    """T = 1 s: the Schroeder curve of a single exponential falls 60 dB per second, so it crosses
    -5 dB between frames 7 and 8 (0.083 s = frame 7.2) and -25 dB between frames 35 and 36
    (frame 35.9). A crossing moves with the energy from its bracketing frames on, so the
    gradient peaks at frames 8 and 36 and is zero before frame 7 (a common gain moves both
    crossings alike, and the difference not at all)."""
    spec = exponential_spectrogram(1.0).requires_grad_()
    t60p(spec, FRAME_RATE).backward()
    per_frame = spec.grad.abs().sum(dim=0)
    assert bool(torch.all(torch.isfinite(spec.grad)))
    assert int(per_frame[:20].argmax()) == 8 and int(per_frame[20:60].argmax()) + 20 == 36
    assert float(per_frame[:7].max()) < 1e-9 * float(per_frame.max()) < float(per_frame[7])


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


def test_default_range_is_minus_5_to_minus_25_db_on_a_two_slope_decay():
    """On a single exponential the proxy's 60 / (start - end) rescaling hides the fit range, so
    the check uses a bending decay: energy ``exp(-k1 t) + b exp(-k2 t)`` in every bin, T = 0.4 s
    until the slow term (T = 1.6 s, 15 dB below in the Schroeder integral) takes over. The
    -5 and -25 dB crossing times come from the closed form
    (:func:`geometric_schroeder_crossing_s`), and the default must equal
    ``3 * (t_-25 - t_-5)`` (the interpolation between frames costs < 1e-4). A -5/-35 dB range
    would read 45 % longer."""
    k1, k2 = 6.0 * math.log(10.0) / 0.4, 6.0 * math.log(10.0) / 1.6  # energy decay rates, 1/s
    late_share = 10.0 ** (-15.0 / 10.0)
    b = late_share / (1.0 - late_share) * k2 / k1
    n_frames = 512
    t = torch.arange(n_frames, dtype=torch.float64) / FRAME_RATE
    energy = torch.exp(-k1 * t) + b * torch.exp(-k2 * t)
    spectral_tilt = torch.linspace(0.0, -2.0, 8, dtype=torch.float64)
    log_magnitude = spectral_tilt[:, None] + 0.5 * torch.log(energy)

    def crossing_s(target_db):
        return geometric_schroeder_crossing_s([k1, k2], [1.0, b], target_db, n_frames)

    expected = 3.0 * (crossing_s(-25.0) - crossing_s(-5.0))
    assert 2.0 * (crossing_s(-35.0) - crossing_s(-5.0)) > 1.3 * expected  # the ranges differ
    assert float(t60p(log_magnitude, FRAME_RATE)) == pytest.approx(expected, rel=1e-3)
