"""The evaluation's metric functions against analytic cases."""

import numpy as np
import pytest
import torch

from i2r.evaluate import (EvalConfig, error_stats, log_spectral_distance_db, mfcc, mfcc_spearman,
                          percent_error, single_number_t60)
from i2r.errors import UserError

FS = 22050


def decaying_noise(t60_s: float, seed: int, n: int = 130977) -> np.ndarray:
    """White noise with an exponential envelope reaching -60 dB at ``t60_s``, plus a -100 dB floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    ir = rng.standard_normal(n) * 10.0 ** (-3.0 * t / t60_s)
    return ir + 1e-5 * rng.standard_normal(n)


def test_percent_error_is_signed_and_relative():
    np.testing.assert_allclose(percent_error([1.5, 0.5], [1.0, 1.0]), [50.0, -50.0])
    assert np.isnan(percent_error(np.nan, 1.0))


def test_error_stats_drop_non_finite_and_match_numpy():
    values = [10.0, -20.0, 30.0, np.nan, 5.0]
    stats = error_stats(values)
    finite = np.array([10.0, -20.0, 30.0, 5.0])
    assert stats["n"] == 4
    assert stats["mean"] == pytest.approx(finite.mean())
    assert stats["sd"] == pytest.approx(finite.std(ddof=1))
    assert stats["median"] == pytest.approx(7.5)
    assert stats["median_abs"] == pytest.approx(np.median(np.abs(finite)))
    assert error_stats([np.nan])["mean"] is None


def test_log_spectral_distance_of_a_constant_gain_is_that_gain_in_db():
    a = torch.randn(2, 16, 20)
    b = a + np.log(10.0 ** (6.0 / 20.0))  # +6 dB everywhere
    np.testing.assert_allclose(log_spectral_distance_db(b, a).numpy(), [6.0, 6.0], rtol=1e-5)


def test_log_spectral_distance_is_rms_over_frequency_then_mean_over_time():
    """Differences of 3 and 4 dB in the two bins of frame 0, none in frame 1: Gray & Markel's
    ``mean_t sqrt(mean_f d^2)`` = sqrt(12.5) / 2 = 1.768 dB; the axes swapped give 2.475 dB and the
    mean |d| 1.75 dB."""
    difference_db = torch.tensor([[3.0, 0.0], [4.0, 0.0]], dtype=torch.float64)  # (F, T)
    a = torch.zeros(2, 2, dtype=torch.float64)
    b = a + difference_db * (np.log(10.0) / 20.0)
    assert float(log_spectral_distance_db(b, a)) == pytest.approx(np.sqrt(12.5) / 2.0, rel=1e-12)


def test_mfcc_of_an_impulse_matches_librosa_defaults_analytically():
    """An impulse has a flat power spectrum in every frame that sees it, scaled by the Hann
    window's square at its position. Slaney's area-normalised mel filters sum to ``n_fft / fs``
    on the FFT bins whatever their width, so the mel levels are flat: c1..c19 vanish and, with the
    orthonormal DCT, ``c0 = sqrt(128) * 10 log10(n_fft / fs)`` in the frame centred on the impulse
    (Hann = 1 there), and ``sqrt(128) * 10 log10(1 / 4)`` less a hop away (periodic Hann = 1/2).
    Frames without it sit at the floor, 80 dB below the loudest mel level. Peak-normalised (HTK)
    filters, magnitudes, 20 log10 or a symmetric window each break one of these."""
    n_fft, hop, n_mels = 2048, 512, 128
    x = np.zeros(FS)
    x[20 * hop] = 1.0
    coeffs = mfcc(x[None], FS, n_fft=n_fft, hop=hop, n_mels=n_mels)[0]
    assert coeffs.shape == (20, 1 + len(x) // hop)
    assert coeffs[0, 20] == pytest.approx(np.sqrt(n_mels) * 10.0 * np.log10(n_fft / FS), abs=0.1)
    assert np.abs(coeffs[1:, 19:22]).max() < 0.05
    for neighbour in (19, 21):
        assert coeffs[0, neighbour] - coeffs[0, 20] == pytest.approx(np.sqrt(n_mels) * 10.0 * np.log10(0.25), abs=1e-3)
    assert coeffs[0, 0] / np.sqrt(n_mels) == pytest.approx(coeffs[0, 20] / np.sqrt(n_mels) - 80.0, abs=0.5)


def test_mfcc_spearman_of_a_signal_with_itself_is_one():
    irs = np.stack([decaying_noise(0.5, 0), decaying_noise(2.0, 1)])
    np.testing.assert_allclose(mfcc_spearman(irs, irs), [1.0, 1.0])
    # A short and a long decay are less alike than a decay and itself.
    assert mfcc_spearman(irs[:1], irs[1:])[0] < 0.99


@pytest.mark.parametrize("definition", ["t30", "irstats", "t60p"])
def test_single_number_t60_recovers_known_decays(definition):
    truth = np.array([0.4, 1.2])
    irs = np.stack([decaying_noise(t, seed) for seed, t in enumerate(truth)])
    values, reasons = single_number_t60(irs, definition)
    assert reasons == ["", ""]
    np.testing.assert_allclose(values, truth, rtol=0.1)


def test_single_number_t60_explains_an_unmeasurable_truth():
    rng = np.random.default_rng(3)
    noise_only = rng.standard_normal((1, 130977))  # no decay at all: no dynamic range
    values, reasons = single_number_t60(noise_only, "t30")
    assert np.isnan(values[0])
    assert reasons[0]


def test_config_rejects_unknown_choices():
    with pytest.raises(UserError, match="T60 definition"):
        EvalConfig(checkpoint="c.pt", data="d", t60_definition="t99")
    with pytest.raises(UserError, match="baseline"):
        EvalConfig(checkpoint="c.pt", data="d", baseline="oracle")
    with pytest.raises(UserError, match="--device 'gpu': expected auto, cpu, cuda or cuda:N"):
        EvalConfig(checkpoint="c.pt", data="d", device="gpu")
    with pytest.raises(UserError, match="--baseline nn"):
        EvalConfig(checkpoint="c.pt", data="d", places_weights="w.pth.tar")


@pytest.mark.parametrize("limits_s", [(0.17, 7.3), (0.15, 1.3), (0.22, 0.95)])
def test_the_t60_scatter_labels_its_log_axes_in_plain_seconds_without_overprinting(limits_s):
    """matplotlib's default labels minor ticks of a log range of a decade or so ("2x10^-1",
    "3x10^-1", ...), and below a decade falls back to linear ticks; both overprinted one another
    on the report's 3-inch T60 panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from i2r.evaluate import _log_axes_in_seconds

    figure = Figure(figsize=(3.2, 3.0))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.scatter(limits_s, limits_s)
    lo, hi = _log_axes_in_seconds(ax, *limits_s)
    assert lo <= limits_s[0] and hi >= limits_s[1] and hi >= 9.999 * lo
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for axis in (ax.xaxis, ax.yaxis):
        shown = [label for label in axis.get_ticklabels(which="both") if label.get_text()]
        assert len(shown) >= 2
        assert all(float(label.get_text()) > 0 for label in shown)  # "0.5", not "$5\\times10^{-1}$"
        boxes = sorted((label.get_window_extent(renderer) for label in shown),
                       key=lambda box: box.x0 if axis is ax.xaxis else box.y0)
        for a, b in zip(boxes, boxes[1:]):
            assert not a.overlaps(b), [label.get_text() for label in shown]
