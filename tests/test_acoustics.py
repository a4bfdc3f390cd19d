"""i2r.acoustics.analyze and friends: analytic decays, invariances, honesty checks, shapes."""

import csv
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2r.acoustics import (AcousticParameters, AnalysisConfig, analyze, band_centres, band_edges,
                           decay_time, validate_ir)
from i2r.acoustics.bands import G, FilterBank, band_magnitude, exact_centres, ringing_time
from i2r.acoustics.parameters import FFT_LANES, _chunks, _energy_parameters
from i2r.acoustics.decay import (EnergySums, _truncation, decay_curve_db,
                                lundeby, onset_index, range_sums)
from i2r.audio import load_audio, to_mono
from i2r.errors import UserError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DESIGN_KEYS = {"fs", "bands_hz", "t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s",
               "drr_db", "broadband", "warnings"}


def band_noise_decay(rng, fs, n, lower, upper, t60, reps, noise_db=-60.0, delay_s=0.02, direct=0.3,
                     fade_s=0.0):
    """``reps`` IRs of noise band-limited to ``[lower, upper]`` Hz decaying 60 dB in ``t60``
    seconds, after ``delay_s`` of silence, with a direct-sound spike at the start and a white
    noise floor ``noise_db`` below the decay's start. ``fade_s``: a raised-cosine fade-in, so
    that the start adds no broadband splatter. Shape ``(reps, n)``."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum = np.fft.rfft(rng.standard_normal((reps, n)), axis=-1)
    spectrum[:, (f < lower) | (f > upper)] = 0.0
    noise = np.fft.irfft(spectrum, n, axis=-1)
    noise /= noise.std(axis=-1, keepdims=True)
    start = int(delay_s * fs)
    t = np.arange(n - start) / fs
    ir = np.zeros((reps, n))
    fade = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / fade_s, 0.0, 1.0)) if fade_s else 1.0
    ir[:, start:] = noise[:, : n - start] * 10.0 ** (-3.0 * t / t60) * fade
    ir[:, start] += direct * math.sqrt(t60 * fs / 13.8)
    return ir + 10.0 ** (noise_db / 20.0) * rng.standard_normal((reps, n))


def white_decay(rng, fs, n, t60, noise_db=-70.0, delay=0):
    """White noise decaying 60 dB in ``t60`` s after ``delay`` samples, a spike at its start,
    and a noise floor ``noise_db`` below the decay's start. Shape ``(n,)``."""
    t = np.arange(n - delay) / fs
    ir = np.zeros(n)
    ir[delay:] = rng.standard_normal(n - delay) * 10.0 ** (-3.0 * t / t60)
    ir[delay] = 3.0
    return ir + 10.0 ** (noise_db / 20.0) * rng.standard_normal(n)


# --- bands ---------------------------------------------------------------------------------------


def test_band_centres_follow_the_sample_rate():
    assert band_centres("octave", 22050).tolist() == [125, 250, 500, 1000, 2000, 4000]
    assert band_centres("octave", 48000).tolist() == [125, 250, 500, 1000, 2000, 4000, 8000]
    third = band_centres("third", 22050)
    assert third[0] == 100 and third[-1] == 8000 and len(third) == 20
    assert band_centres("octave", 22050, lowest_hz=63)[0] == 63
    with pytest.raises(UserError, match="bands"):
        band_centres("sixth", 22050)


def test_band_edges_are_iec_61260_base_ten_exact():
    assert G == pytest.approx(1.99526231, rel=1e-8)
    lower, upper = band_edges("octave", [125, 1000, 4000])
    centres = 1000.0 * G ** np.array([-3, 0, 2])
    np.testing.assert_allclose(np.sqrt(lower * upper), centres, rtol=1e-12)
    np.testing.assert_allclose(upper / lower, G, rtol=1e-12)
    np.testing.assert_allclose(lower[1], 1000 / G ** 0.5, rtol=1e-12)
    lower3, upper3 = band_edges("third", [100, 1000])
    np.testing.assert_allclose(upper3 / lower3, G ** (1 / 3), rtol=1e-12)
    np.testing.assert_allclose(exact_centres("third", [100])[0], 1000 * G ** (-10 / 3), rtol=1e-12)


def test_filter_is_minus_3_db_at_the_edges_and_unity_at_the_centre():
    lower, upper = band_edges("octave", [1000])
    centre = exact_centres("octave", [1000])[0]
    response = band_magnitude(np.array([lower[0], centre, upper[0], 0.0]), lower[0], upper[0], 3)
    np.testing.assert_allclose(20 * np.log10(response[:3]), [-3.0103, 0.0, -3.0103], atol=1e-3)
    assert response[3] == 0.0


def test_fft_filter_is_zero_phase_and_does_not_wrap_around():
    fs, n = 8000, 4000
    x = np.zeros((1, n))
    x[0, 10] = 1.0
    lower, upper = band_edges("octave", [125])
    y = FilterBank(x, fs, lower, upper, 3).band(0)[0]
    assert np.argmax(np.abs(y)) == 10
    tail = np.sum(y[n // 2:] ** 2) / np.sum(y ** 2)
    assert tail < 1e-12


def _response_db(kernel, at, fs, freqs_hz):
    """Gain (dB) at ``freqs_hz`` of a zero-phase filter from its response ``kernel`` to a unit
    impulse at sample ``at``: the magnitude of the kernel's discrete-time Fourier transform."""
    lags = np.arange(len(kernel)) - at
    spectrum = np.exp(-2j * np.pi * np.outer(freqs_hz, lags) / fs) @ kernel.astype(np.float64)
    return 20.0 * np.log10(np.abs(spectrum))


def test_filter_bank_applies_the_default_order_3_butterworth_band_pass_once():
    """Through :class:`FilterBank`, as :func:`analyze` builds it (``AnalysisConfig().filter_order``):
    the 1 kHz octave's impulse response has gain 0 dB at the mid-band frequency, -3.01 dB at
    both edges f1, f2, and one octave outside them (f1/2 and 2 f2, where
    ``u = (f^2 - f1 f2) / (f (f2 - f1))`` is the same) the order-3 Butterworth value
    ``-10 log10(1 + u**6)`` = -32.7 dB (u = (4G - 1) / (2 (G - 1)) = 3.51). Order 2 or 4 would
    read -21.8 or -43.6 dB there, the magnitude applied twice -6.02 dB at the edges."""
    fs, n = 8000, 2 * 8000
    order = AnalysisConfig().filter_order
    assert order == 3
    impulse = np.zeros((1, n))
    impulse[0, n // 2] = 1.0
    (f1,), (f2,) = band_edges("octave", [1000])
    centre = exact_centres("octave", [1000])[0]
    kernel = FilterBank(impulse, fs, [f1], [f2], order).band(0)[0]
    freqs = np.array([f1, centre, f2, f1 / 2.0, 2.0 * f2])
    u = (freqs ** 2 - f1 * f2) / (freqs * (f2 - f1))
    expected = -10.0 * np.log10(1.0 + u ** 6)
    np.testing.assert_allclose(expected[:3], [-10 * np.log10(2.0), 0.0, -10 * np.log10(2.0)], atol=1e-9)
    np.testing.assert_allclose(_response_db(kernel, n // 2, fs, freqs), expected, atol=0.01)


def test_broadband_high_pass_is_butterworth_of_the_band_order():
    """:meth:`FilterBank.highpass` (the broadband signal of :func:`analyze`) is the order-3
    Butterworth magnitude ``|H|^2 = 1 / (1 + (fc / f)**(2 order))`` at the 125 Hz octave's lower
    edge fc: -3.01 dB at fc, ``-10 log10(1 + 2**6)`` = -18.1 dB one octave below, and
    ``-10 log10(1 + 2**-6)`` = -0.07 dB one octave above (half the order: -9.5 dB below)."""
    fs, n = 8000, 2 * 8000
    impulse = np.zeros((1, n))
    impulse[0, n // 2] = 1.0
    lower, upper = band_edges("octave", band_centres("octave", fs))
    cutoff = lower[0]
    kernel = FilterBank(impulse, fs, lower, upper, 3).highpass(cutoff)[0]
    expected = [-10 * np.log10(2.0), -10 * np.log10(1.0 + 2.0 ** 6), -10 * np.log10(1.0 + 2.0 ** -6)]
    np.testing.assert_allclose(_response_db(kernel, n // 2, fs, [cutoff, cutoff / 2, 2 * cutoff]),
                               expected, atol=0.01)


def test_analyze_defaults_to_order_3_filters_in_its_ringing_limits():
    """``analyze`` without a config measures with the 6th-order band-pass (order 3): its report
    of a click's 125 Hz T20 names twice the order-3 ringing time ``6.91 / (pi B sin(pi/6))``
    (0.099 s; order 2 or 4 would give 0.070 or 0.130 s)."""
    fs = 8000
    click = np.zeros(fs)
    click[800] = 1.0
    params = analyze(click, fs)
    assert params.config.filter_order == 3
    lower, upper = band_edges("octave", [125])
    limit = 2.0 * ringing_time(lower[0], upper[0], 3)
    assert any(w.startswith("125 Hz: T20 is NaN:") and w.endswith(f"shorter than {limit:.3f} s, "
                                                                   "2x the filter's own ringing")
               for w in params.warnings), params.warnings


# --- analytic decays -----------------------------------------------------------------------------


def test_steeper_filters_keep_a_slower_neighbours_decay_out_of_a_band():
    """The filter order's trade-off, one side of it: noise in 3.3-5 kHz decaying in 0.8 s next
    to as much noise in 1.5-2.2 kHz decaying in 1.6 s. Through the order-3 skirts enough of the
    slower decay reaches the 4 kHz octave to lengthen its T30 by about 10 %; at order 6 it reads
    the 0.8 s of its own content (the 2 kHz octave reads its 1.6 s at either order). The other
    side, longer ringing, is what the ringing limits check."""
    fs, n = 22050, 3 * 22050
    rng = np.random.default_rng(3)
    ir = (band_noise_decay(rng, fs, n, 1500.0, 2200.0, 1.6, 4, noise_db=-90.0, direct=0.0)
          + band_noise_decay(rng, fs, n, 3300.0, 5000.0, 0.8, 4, noise_db=-90.0, direct=0.0))
    t30 = {order: analyze(ir, fs, config=AnalysisConfig(filter_order=order)).t30_s for order in (3, 6)}
    k = list(band_centres("octave", fs)).index(4000)
    assert np.all(t30[3][:, k] > 1.07 * 0.8)
    np.testing.assert_allclose(t30[6][:, k], 0.8, rtol=0.03)
    for order in (3, 6):
        np.testing.assert_allclose(t30[order][:, k - 1], 1.6, rtol=0.03)


def test_recovers_known_per_band_t30_from_0_2_to_8_s():
    fs, n, reps = 4000, 36000, 8
    rng = np.random.default_rng(3)
    centres = band_centres("octave", fs)
    lower, upper = band_edges("octave", centres)
    cases = [(125, 8.0), (250, 4.0), (500, 2.0), (1000, 1.0), (500, 0.5), (1000, 0.2)]
    irs = np.stack([band_noise_decay(rng, fs, n, lower[list(centres).index(hz)],
                                     upper[list(centres).index(hz)], t60, reps) for hz, t60 in cases])
    params = analyze(irs, fs)
    assert params.t30_s.shape == (len(cases), reps, len(centres))
    for i, (hz, t60) in enumerate(cases):
        k = list(centres).index(hz)
        # ISO 3382-2's spread of one noise decay, 0.55 T / sqrt(B T), is up to 5 %: average reps.
        assert np.mean(params.t30_s[i, :, k]) == pytest.approx(t60, rel=0.04), (hz, t60)
        assert np.mean(params.t20_s[i, :, k]) == pytest.approx(t60, rel=0.05), (hz, t60)


def test_energy_parameters_match_an_exponential_decay():
    fs, t60 = 8000, 1.0
    rng = np.random.default_rng(5)
    ir = rng.standard_normal((16, 3 * fs)) * 10.0 ** (-3.0 * np.arange(3 * fs) / fs / t60)
    ir[:, 0] = 0.0
    params = analyze(ir, fs)
    k = 13.8155 / t60
    expected_c50 = 10 * np.log10(np.exp(k * 0.05) - 1.0)
    expected_c80 = 10 * np.log10(np.exp(k * 0.08) - 1.0)
    bb = params.broadband
    assert np.mean(bb["c50_db"]) == pytest.approx(expected_c50, abs=0.3)
    assert np.mean(bb["c80_db"]) == pytest.approx(expected_c80, abs=0.3)
    assert np.mean(bb["d50"]) == pytest.approx(1.0 - np.exp(-k * 0.05), abs=0.02)
    assert np.mean(bb["ts_s"]) == pytest.approx(1.0 / k, rel=0.05)
    assert np.mean(bb["t30_s"]) == pytest.approx(t60, rel=0.02)


def _least_squares_decay_time(times_s, curve_db, start_db, end_db):
    """ISO 3382-1 decay time of a decay curve sampled at ``times_s``: the least-squares line
    over the points from the first one at or below ``start_db`` (the first point for 0 dB) up to
    the first one at or below ``end_db``, extrapolated to 60 dB of decay."""
    start = int(np.argmax(curve_db <= start_db)) if start_db < 0 else 0
    end = int(np.argmax(curve_db <= end_db))
    slope = np.polyfit(times_s[start:end], curve_db[start:end], 1)[0]
    return -60.0 / slope


def test_edt_t20_t30_use_the_iso_ranges_on_a_two_slope_decay():
    """On a single exponential every fit range gives the same decay time, so only a decay that
    bends tells the ISO 3382-1 ranges apart: energy ``exp(-k1 t) + b exp(-k2 t)``, a fast slope
    (T = 0.25 s) whose Schroeder integral holds all but the last 12 dB and a slow one (T = 1 s).
    Its Schroeder curve is analytic, ``exp(-k1 t) / k1 + b exp(-k2 t) / k2``, so EDT (0 to
    -10 dB), T20 (-5 to -25 dB) and T30 (-5 to -35 dB) are computed here by fitting lines to it
    on the library's 1 ms grid. The energy is carried by a 1 kHz tone (amplitude sqrt(2 E)), which
    the 1 kHz octave and the broadband high-pass pass at unity gain, and which leaves no noise
    realisation to average. Ranges 0/-15, -5/-20 or -5/-30 dB would read 12 %, 27 % and 9 % off."""
    fs, n = 8000, 3 * 8000
    k1, k2 = 6.0 * math.log(10.0) / 0.25, 6.0 * math.log(10.0) / 1.0  # energy decay rates, 1/s
    late_share = 10.0 ** (-12.0 / 10.0)  # the slow term's share of the Schroeder integral at t = 0
    b = late_share / (1.0 - late_share) * k2 / k1
    t = np.arange(n) / fs
    ir = np.sqrt(2.0 * (np.exp(-k1 * t) + b * np.exp(-k2 * t))) * np.sin(2.0 * np.pi * 1000.0 * t + 0.3)
    grid = np.arange(0.0, 2.0, 0.001)
    schroeder = np.exp(-k1 * grid) / k1 + b * np.exp(-k2 * grid) / k2
    curve_db = 10.0 * np.log10(schroeder / schroeder[0])
    expected = {key: _least_squares_decay_time(grid, curve_db, start, end)
                for key, (start, end) in {"edt_s": (0.0, -10.0), "t20_s": (-5.0, -25.0),
                                          "t30_s": (-5.0, -35.0)}.items()}
    # the curve bends between the ranges: each one's value is distinct
    assert expected["edt_s"] < 0.8 * expected["t20_s"] < 0.8 * expected["t30_s"]
    params = analyze(ir, fs)
    k = list(params.bands_hz).index(1000)
    for key, value in expected.items():
        assert params[key][k] == pytest.approx(value, rel=0.01), key
        assert float(params.broadband[key]) == pytest.approx(value, rel=0.01), key


def test_noise_compensation_keeps_t30_unbiased_where_plain_schroeder_is_not():
    fs = 8000
    rng = np.random.default_rng(11)
    irs = np.stack([white_decay(rng, fs, 4 * fs, 1.0, noise_db=-50.0) for _ in range(4)])
    _, _, compensated = decay_time(irs, fs)
    _, _, plain = decay_time(irs, fs, noise_handling=False, check_range=False)
    assert np.mean(compensated) == pytest.approx(1.0, rel=0.03)
    assert np.mean(plain) > 1.15


def test_drr_of_spike_plus_decay():
    fs = 8000
    rng = np.random.default_rng(2)
    n = 2 * fs
    late = rng.standard_normal(n) * 10.0 ** (-3.0 * np.arange(n) / fs / 0.5)
    late[:100] = 0.0
    ir = late.copy()
    ir[10] = 8.0
    direct = 64.0
    reverberant = np.sum(late[10 + 21:] ** 2)
    assert analyze(ir, fs).drr_db == pytest.approx(10 * np.log10(direct / reverberant), abs=0.1)


def test_drr_direct_window_is_plus_minus_2_5_ms_around_the_peak():
    """DRR = energy within +-2.5 ms of the broadband peak (round(0.0025 fs) = 20 samples each
    side at 8 kHz, both ends included) over all the energy after it. The reverberation here
    starts on the sample after the direct sound, so the window's edges decide the number: a
    5 ms window reads 2.4 dB higher, an upper edge one sample early or late about 0.25 dB off.
    The broadband signal is the IR zero-phase high-passed at the lowest band's lower edge
    (order 3); the expected DRR is summed by hand on that signal, from :class:`FilterBank`."""
    fs, n, spike_at = 8000, 8000, 400
    rng = np.random.default_rng(6)
    ir = np.zeros(n)
    tail = n - spike_at - 1
    ir[spike_at + 1:] = rng.standard_normal(tail) * 10.0 ** (-3.0 * np.arange(tail) / fs / 0.1)
    ir[spike_at] = 3.0
    lower, upper = band_edges("octave", band_centres("octave", fs))
    broadband = FilterBank(ir[None], fs, lower, upper, 3).highpass(lower[0])[0].astype(np.float64)
    energy = broadband ** 2
    peak = int(np.argmax(energy))
    half = round(0.0025 * fs)
    assert (peak, half) == (spike_at, 20)
    direct = energy[peak - half: peak + half + 1].sum()
    reverberant = energy[peak + half + 1:].sum()
    assert float(analyze(ir, fs).drr_db) == pytest.approx(10 * np.log10(direct / reverberant), abs=0.01)


def test_irstats_definition_0_to_minus_60_db():
    fs = 8000
    rng = np.random.default_rng(4)
    ir = white_decay(rng, fs, 3 * fs, 0.8, noise_db=-200.0)
    bands, per_band, broadband = decay_time(ir, fs, start_db=0.0, end_db=-60.0,
                                            noise_handling=False, check_range=False)
    assert per_band.shape == (len(bands),)
    assert float(broadband) == pytest.approx(0.8, rel=0.05)


@pytest.mark.skipif(not (DATA / "reference" / "pyrato").exists(), reason="../shared/data not available")
def test_lundeby_and_compensated_edc_agree_with_pyrato_reference_data():
    """pyrato's own test data: an analytic room IR with noise at 50 dB PSNR, fs 3 kHz, and its
    Lundeby intersection time (0.555 s), noise energy and compensated EDC.

    The curves are compared only down to -20 dB: the smoothed envelope's peak-to-noise ratio is
    33 dB, so ISO 3382-1 (range ending 10 dB above the noise) trusts no decay curve below about
    -23 dB. Below it the two Lundeby variants part (ours is 1.4 dB higher at -30 dB, its
    crosspoint 0.580 s), and both read the decay late against the noise-subtracted Schroeder
    curve (T20 1.11 and 1.09 s against 1.03 s), which is why :func:`analyze` reports no T20 or
    T30 for this IR (checked last)."""
    folder = DATA / "reference" / "pyrato"
    ir = np.loadtxt(folder / "analytic_rir_psnr50_1D.csv")[None, :]
    crossing_s, _, noise = np.loadtxt(folder / "intersection_time_1D.csv")
    reference_db = 10 * np.log10(np.loadtxt(folder / "edc_lundeby_1D.csv"))
    fs, energy = 3000, ir ** 2
    onset = onset_index(energy)
    sums = EnergySums(energy, 1)
    trunc = lundeby(sums, onset, fs)
    assert trunc.noise[0] == pytest.approx(noise, rel=0.01)
    assert trunc.crosspoint[0] / fs == pytest.approx(crossing_s, rel=0.1)
    curve = decay_curve_db(sums, trunc, onset)[0, onset[0]:]
    upper = reference_db > -20
    np.testing.assert_allclose(curve[: len(reference_db)][upper], reference_db[upper], atol=0.5)
    measured = analyze(ir[0], fs)
    assert np.isnan(measured.broadband["t20_s"]) and np.isnan(measured.broadband["t30_s"])
    assert any("broadband: T20 is NaN: peak-to-noise ratio 33." in warning for warning in measured.warnings)


def test_lundeby_finds_the_noise_level_and_crosspoint_of_an_exact_decay():
    """A noise-free exponential (T = 0.5 s at 8 kHz, after a 100-sample delay) on a constant
    floor 40 dB below its start, ``E_j = exp(-k j) + N``, as 1 ms cells. Lundeby's procedure
    must find the floor (averaged from where the decay is 10 dB below it, so the decay adds at
    most 10 % of N there and little on average) and its late line: the least-squares line of
    the exact level ``10 log10(exp(-k j) + N)`` from 25 dB to 5 dB above the floor (the floor
    bends it there, so the slope is -113 dB/s, not the decay's -120), which meets the floor
    0.35 s after the onset. The same rows measured one by one give the same numbers (each row
    is fitted on its own)."""
    fs, n, delay, t = 8000, 3 * 8000, 100, 0.5
    k = 6.0 * math.log(10.0) / (t * fs)
    floor = 1e-4
    energy = np.full((3, n), floor)
    energy[:, delay:] += np.exp(-k * np.arange(n - delay))
    energy[1] *= 1e3  # gain changes nothing but the levels
    energy[2, : delay + 4000] = floor  # an item whose decay starts later
    energy[2, delay + 4000:] = floor + np.exp(-k * np.arange(n - delay - 4000))
    onset = onset_index(energy)
    assert onset.tolist() == [delay, delay, delay + 4000]
    trunc = lundeby(EnergySums(energy, 8), onset, fs)
    np.testing.assert_allclose(trunc.noise / np.array([1.0, 1e3, 1.0]), floor, rtol=0.01)
    seconds = np.arange(n) / fs
    level = 10.0 * np.log10(np.exp(-k * fs * seconds) / floor + 1.0)  # dB above the floor
    late = (level < 25.0) & (level > 5.0)
    slope, intercept = np.polyfit(seconds[late], level[late], 1)
    assert slope == pytest.approx(-113.0, abs=1.0)
    np.testing.assert_allclose(trunc.slope_db_s, slope, rtol=0.02)
    np.testing.assert_allclose((trunc.crosspoint - onset) / fs, -intercept / slope, atol=0.005)
    one_by_one = [lundeby(EnergySums(energy[i:i + 1], 8), onset[i:i + 1], fs) for i in range(3)]
    for key in ("crosspoint", "noise", "slope_db_s", "tail"):
        np.testing.assert_array_equal(getattr(trunc, key), [getattr(one, key)[0] for one in one_by_one])


def test_decay_fits_are_least_squares_lines_on_the_whole_decay_curve():
    """:func:`analyze` reads the decay curve only as far as its deepest evaluation level; its
    EDT, T20 and T30 must be what a least-squares line (``np.polyfit``) over the whole curve
    (:func:`decay_curve_db`) gives between the ISO 3382-1 crossings, for decays of every
    length, with and without noise compensation."""
    from i2r.acoustics.decay import curve_terms
    from i2r.acoustics.parameters import DECAY_RANGES, _fit_decay_times

    fs, n = 8000, 2 * 8000
    rng = np.random.default_rng(8)
    energy = np.stack([white_decay(rng, fs, n, t60, noise_db=-55.0, delay=37 * i) ** 2
                       for i, t60 in enumerate([0.15, 0.4, 0.9, 1.6])])
    sums = EnergySums(energy, 8)
    onset = onset_index(energy)
    trunc = lundeby(sums, onset, fs)
    curve = decay_curve_db(sums, trunc, onset)
    reach_limit = -(-trunc.crosspoint // 8)
    values, reached_db = _fit_decay_times(sums, curve_terms(sums, trunc, onset), DECAY_RANGES, reach_limit, fs)
    np.testing.assert_array_equal(reached_db, curve[np.arange(4), reach_limit - 1])
    for key, (start_db, end_db) in DECAY_RANGES.items():
        for i, row in enumerate(curve):
            start = np.sum(row > start_db) if start_db < 0 else np.sum(row >= start_db)
            end = np.sum(row > end_db)
            slope = np.polyfit(np.arange(start, end) * 8 / fs, row[start:end], 1)[0]
            assert values[key][i] == pytest.approx(-60.0 / slope, rel=1e-9), (key, i)
            assert values[key + ":reached"][i] == (end < reach_limit[i])


def test_range_sums_and_moments_match_direct_sums_at_every_edge():
    """``range_sums`` (one ``reduceat`` over the flattened rows) against a loop of sums, with
    the ranges that its index tricks must get right: empty ranges (anywhere, and at the very end
    of the last row), a range ending at the end of a middle row and of the last row, and whole
    rows. ``moment_between`` (cell moments plus the partial cells at both ends) against the
    first moment summed sample by sample, for edges on and off the 8-sample cells."""
    rng = np.random.default_rng(5)
    values = rng.random((6, 40))
    start = np.array([0, 7, 40, 13, 0, 40])
    stop = np.array([40, 7, 40, 39, 40, 40])
    expected = [values[b, a:z].sum() for b, (a, z) in enumerate(zip(start, stop))]
    np.testing.assert_allclose(range_sums(values, start, stop), expected, rtol=1e-14)
    last_row_ends = np.array([3, 3, 3, 3, 3, 5])
    np.testing.assert_allclose(range_sums(values, np.zeros(6, int), last_row_ends),
                               values[:, :3].sum(-1) + np.r_[0, 0, 0, 0, 0, values[5, 3:5].sum()], rtol=1e-14)
    assert range_sums(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, int)).shape == (0,)

    energy = rng.random((4, 203))
    sums = EnergySums(energy, 8)
    lo, hi = np.array([0, 5, 16, 100]), np.array([203, 5, 61, 200])
    j = np.arange(203)
    direct = [(j * energy[b])[a:z].sum() for b, (a, z) in enumerate(zip(lo, hi))]
    np.testing.assert_allclose(sums.moment_between(lo, hi), direct, rtol=1e-12)


def test_compensation_continues_the_decay_line_exactly_and_ts_counts_the_tail_moment():
    """Lundeby's compensation on a noise-free exponential ``E_j = exp(-k j)`` (T = 1 s at 8 kHz,
    after a 200-sample delay), truncated where its exact line (0 dB at the onset, -60 dB/s)
    meets a noise level equal to the energy 0.3 s in: the crosspoint is 0.3 s after the onset,
    the energy time constant is ``tau = 10 / (ln 10 * 60) s = 1/k`` samples, and the tail
    added back is ``noise * tau``, the integral of the exponential from the crosspoint on.
    The compensated Schroeder curve must then be the straight -60 dB/s line before, through and
    after the crosspoint (a missing, doubled or unadded tail bends it there), and the centre
    time must be the exponential's own discrete mean ``sum(j E_j) / sum(E_j) / fs`` (the tail's
    first moment about the onset is ``tail * (crosspoint - onset + tau)``). Continuous tail vs
    discrete sums differ by half a sample: < 0.005 dB and 5e-5 relative here."""
    fs, n, delay = 8000, 3 * 8000, 200
    k = 6.0 * math.log(10.0) / fs  # per sample: 60 dB in 1 s
    j = np.arange(n - delay)
    energy = np.zeros((1, n))
    energy[0, delay:] = np.exp(-k * j)
    sums = EnergySums(energy, 8)  # 1 ms cells, as analyze uses
    onset = np.array([delay])
    noise = math.exp(-k * 0.3 * fs)
    trunc = _truncation(n, onset, fs, intercept=np.array([0.0]), slope=np.array([-60.0]),
                        noise=np.array([noise]), noise_db=np.array([10.0 * math.log10(noise)]),
                        peak_db=np.array([0.0]))
    assert trunc.crosspoint[0] == delay + round(0.3 * fs)
    assert trunc.tau[0] == pytest.approx(1.0 / k, rel=1e-12)
    assert trunc.tail[0] == pytest.approx(noise / k, rel=1e-12)
    curve = decay_curve_db(sums, trunc, onset)[0]
    samples = 8 * np.arange(curve.size)
    line = samples >= delay
    expected_db = -60.0 * (samples - delay) / fs
    np.testing.assert_allclose(curve[line], expected_db[line], atol=0.01)
    assert np.all(curve[~line] == 0.0)
    ts = _energy_parameters(sums, trunc, onset, fs)["ts_s"][0]
    expected_ts = np.sum(j * energy[0, delay:]) / np.sum(energy[0, delay:]) / fs
    assert ts == pytest.approx(expected_ts, rel=1e-4)


# --- invariances ---------------------------------------------------------------------------------

_FS = 8000
# 20 ms of noise before the direct sound, as in a measured IR: the zero-phase filters spread the
# direct sound a little backwards in time, which must stay inside the file.
_BASE = white_decay(np.random.default_rng(7), _FS, _FS, 0.4, noise_db=-65.0, delay=160)
_REFERENCE = analyze(_BASE, _FS)


@settings(max_examples=12, deadline=None)
@given(gain_db=st.floats(-80.0, 60.0))
def test_results_ignore_gain(gain_db):
    params = analyze(_BASE * 10.0 ** (gain_db / 20.0), _FS)
    for key in ("t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s", "drr_db"):
        # float32 filtering: rounding differs with the gain at the 1e-6 level
        np.testing.assert_allclose(params[key], _REFERENCE[key], rtol=1e-4, equal_nan=True, err_msg=key)


@settings(max_examples=8, deadline=None)
@given(delay=st.integers(1, 2000))
def test_results_ignore_a_leading_delay(delay):
    delayed = np.concatenate([np.zeros(delay), _BASE])
    params = analyze(delayed, _FS)
    # Energy sums are sample-exact; the decay curve is fitted on a 1 ms grid, so a delay can move
    # the ends of an evaluation range by up to one grid step (< 1 % of these decay times).
    for key in ("c50_db", "c80_db", "d50", "ts_s", "drr_db"):
        np.testing.assert_allclose(params[key], _REFERENCE[key], rtol=1e-5, equal_nan=True, err_msg=key)
    for key in ("t20_s", "t30_s", "edt_s"):
        np.testing.assert_allclose(params[key], _REFERENCE[key], rtol=0.01, equal_nan=True, err_msg=key)


def test_onset_is_the_first_sample_within_20_db_of_the_peak_early_or_late():
    """ISO 3382-1 A.3.3, for onsets inside and far beyond the first block searched."""
    energy = np.random.default_rng(3).random((3, 20000)) * 1e-4
    energy[0, 50], energy[0, 60] = 0.5, 1.0  # -3 dB, then the peak
    energy[1, 9000], energy[1, 12000] = 0.02, 1.0  # -17 dB long before the peak
    energy[2, 15000] = 1.0
    expected = [int(np.flatnonzero(e >= e.max() / 100.0)[0]) for e in energy]
    assert onset_index(energy).tolist() == expected == [50, 9000, 15000]


# --- honesty: NaN with a reason --------------------------------------------------------------------


def test_too_noisy_ir_gives_nan_and_a_warning_naming_band_quantity_and_inr():
    fs = 8000
    ir = white_decay(np.random.default_rng(8), fs, fs, 0.5, noise_db=-30.0)
    params = analyze(ir, fs)
    assert np.all(np.isnan(params.t30_s)) and np.isnan(params.broadband["t30_s"])
    assert np.all(params.inr_db < 45)
    text = "\n".join(params.warnings)
    assert "1 kHz: T30 is NaN: peak-to-noise ratio" in text and "45 dB needed" in text
    finite_edt = np.isfinite(params.edt_s)
    assert np.all(finite_edt == (params.inr_db >= 20))


def test_silent_band_is_nan_with_warning():
    fs = 8000
    rng = np.random.default_rng(9)
    # No energy above 250 Hz: the 2 kHz octave's filter skirt passes less than -60 dB of it.
    lowpassed = band_noise_decay(rng, fs, fs, 0.0, 250.0, 0.5, reps=1, noise_db=-200.0, direct=0.0,
                                 fade_s=0.01)[0]
    params = analyze(lowpassed, fs)
    assert params.bands_hz[-1] == 2000
    for key in ("t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s"):
        assert np.isnan(params[key][-1]), key
        assert np.isfinite(params[key][0]), key
    assert any(w.startswith("2 kHz: silent band") for w in params.warnings)


def test_a_band_holding_only_a_click_or_a_dc_step_gives_no_decay_times():
    fs = 8000
    click = np.zeros(fs)
    click[800] = 1.0
    dc = np.ones(fs)
    params = analyze(np.stack([click, dc]), fs)
    for key in ("t20_s", "t30_s", "edt_s"):
        assert np.all(np.isnan(params[key])), key
        assert np.all(np.isnan(params.broadband[key])), key
    assert np.all(np.isnan(params.c50_db[1]))
    assert any("the filter's own ringing" in w for w in params.warnings[0])


def test_all_zero_item_in_a_batch_is_nan_and_the_rest_is_measured():
    fs = 8000
    irs = np.stack([white_decay(np.random.default_rng(1), fs, fs, 0.5), np.zeros(fs)])
    params = analyze(irs, fs)
    assert np.all(np.isfinite(params.t20_s[0])) and np.all(np.isnan(params.t20_s[1]))
    assert np.isnan(params.drr_db[1])
    assert params.warnings[0] == [] and "all zeros" in params.warnings[1][0]


@pytest.mark.parametrize("bad, message", [
    (np.zeros(0), "empty"), (np.zeros(1000), "all zeros"), (np.r_[1.0, np.nan, np.zeros(998)], "NaN"),
    (np.r_[1.0, np.inf, np.zeros(998)], "NaN or infinite"), (np.r_[1.0, np.zeros(50)], "too short"),
])
def test_validate_ir_rejects_bad_input_with_a_named_message(bad, message):
    with pytest.raises(UserError, match=message) as info:
        validate_ir(bad, 8000, name="room.wav")
    assert str(info.value).startswith("room.wav:")


def test_analyze_rejects_non_finite_input():
    with pytest.raises(UserError, match="NaN"):
        analyze(np.r_[1.0, np.nan, np.zeros(998)], 8000)


# --- shapes and the JSON contract ------------------------------------------------------------------


def test_batch_shape_mapping_and_json_contract():
    fs = 8000
    rng = np.random.default_rng(12)
    irs = np.stack([np.stack([white_decay(rng, fs, fs // 2, t60) for t60 in (0.2, 0.3, 0.4)])
                    for _ in range(2)])
    params = analyze(irs, fs, bands="third", config=None)
    n_bands = len(band_centres("third", fs))
    assert isinstance(params, AcousticParameters)
    assert params.bands_hz.shape == (n_bands,)
    for key in ("t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s", "inr_db", "noise_floor_db"):
        assert params[key].shape == (2, 3, n_bands), key
        assert getattr(params, key) is params[key]
    assert params.drr_db.shape == (2, 3)
    assert set(params.broadband) == {"t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s", "drr_db"}
    assert all(v.shape == (2, 3) for v in params.broadband.values())
    assert len(params.warnings) == 2 and len(params.warnings[1]) == 3
    record = params.to_json_dict((1, 2))
    assert set(record) == DESIGN_KEYS
    assert set(record["broadband"]) == set(params.broadband)
    json.dumps(record, allow_nan=False)
    assert record["t30_s"] == [None if math.isnan(v) else v for v in params.t30_s[1, 2].tolist()]
    single = analyze(irs[1, 2], fs, bands="third")
    np.testing.assert_allclose(single.t30_s, params.t30_s[1, 2], rtol=1e-9, equal_nan=True)
    assert single.warnings == params.warnings[1][2]


@pytest.mark.parametrize("chunk_irs, workers", [(2, 1), (1, 1), (7, 2), (1, 3)])
def test_chunks_and_threads_change_nothing(chunk_irs, workers):
    """Bit for bit: an IR's numbers never depend on the other IRs of its chunk, nor on the
    thread that measured it."""
    fs = 8000
    rng = np.random.default_rng(13)
    irs = np.stack([white_decay(rng, fs, fs, t60, delay=80 + 37 * i)
                    for i, t60 in enumerate((0.2, 0.5, 0.9, 1.3, 0.05, 0.7, 2.0))])
    whole = analyze(irs, fs, config=AnalysisConfig(workers=1))
    rows_per_ir = 1 + len(whole.bands_hz)  # broadband and the bands are filtered together
    split = analyze(irs, fs, config=AnalysisConfig(chunk_samples=chunk_irs * rows_per_ir * fs, workers=workers))
    for key in ("t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s", "drr_db", "inr_db",
                "crosspoint_s"):
        np.testing.assert_array_equal(split[key], whole[key], err_msg=key)
    assert split.warnings == whole.warnings and any(whole.warnings)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), largest=st.integers(1, 40), workers=st.integers(1, 4))
def test_chunks_are_whole_fft_lane_groups_spread_over_the_threads(n, largest, workers):
    parts = _chunks(np.arange(n)[:, None], largest, workers)
    np.testing.assert_array_equal(np.concatenate(parts)[:, 0], np.arange(n))
    sizes = [len(part) for part in parts]
    group = FFT_LANES if largest >= FFT_LANES else 1
    groups = -(-n // group)
    assert max(sizes) <= largest and min(sizes) > 0
    assert all(size % group == 0 for size in sizes[:-1])
    assert len(parts) % workers == 0 or len(parts) == groups
    assert max(sizes[:-1], default=0) - min(sizes[:-1], default=0) <= group  # balanced threads


def test_workers_must_be_zero_or_a_thread_count_and_the_order_a_number_of_poles():
    with pytest.raises(UserError, match="workers"):
        AnalysisConfig(workers=-1)
    for order in (0, 13, 2.5):
        with pytest.raises(UserError, match="filter_order"):
            AnalysisConfig(filter_order=order)


def test_torch_device_path_agrees_with_numpy():
    fs = 8000
    rng = np.random.default_rng(14)
    irs = np.stack([white_decay(rng, fs, fs, t60, delay=80) for t60 in (0.2, 0.6, 0.05)])
    numpy_path = analyze(irs, fs)
    torch_path = analyze(irs, fs, config=AnalysisConfig(device="cpu"))
    for key in ("t20_s", "t30_s", "edt_s", "c50_db", "c80_db", "d50", "ts_s", "drr_db", "inr_db"):
        np.testing.assert_allclose(torch_path[key], numpy_path[key], rtol=1e-4, equal_nan=True, err_msg=key)
    assert torch_path.warnings == numpy_path.warnings


def test_config_is_a_saveable_dataclass():
    config = AnalysisConfig(bands="third", filter_order=4)
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["bands"] == "third" and saved["lundeby"]["initial_window_s"] == 0.01


# --- real impulse responses ------------------------------------------------------------------------

# Approximate decay times stated in ../shared/data/MANIFEST.csv (notes column), broadband.
STATED_DECAY_S = {"openair_arthur_sykes_rymer_s1r4_w_mono": 0.3, "openair_genesis6_studio_live_room_bformat": 0.25,
                  "openair_jack_lyons_lp4_w_mono": 1.9, "openair_elveden_hall_marble_hall_stereo": 3.9,
                  "openair_elveden_hall_smoking_room_stereo": 0.8, "openair_terrys_typing_room_stereo": 2.2,
                  "openair_tyndall_bruce_monument_stereo": 1.5, "openair_spokane_womans_club_stereo": 2.2}


def _manifest_irs():
    manifest = DATA / "MANIFEST.csv"
    if not manifest.exists():
        return []
    with manifest.open(newline="") as handle:
        return [row["path"] for row in csv.DictReader(handle) if row["kind"] == "ir"]


@pytest.mark.skipif(not _manifest_irs(), reason="../shared/data not available")
@pytest.mark.parametrize("relative", _manifest_irs())
def test_real_irs_give_finite_plausible_values(relative):
    audio = load_audio(DATA / relative)
    mono, _ = to_mono(audio.samples)
    params = analyze(mono, audio.fs)
    t30, t20 = params.t30_s, params.t20_s
    mid = np.isin(params.bands_hz, [1000, 2000])
    assert np.all(np.isfinite(t30[mid]) | np.isfinite(t20[mid])), params.warnings
    finite = np.isfinite(t30)
    assert np.all((t30[finite] > 0.1) & (t30[finite] < 12.0))
    # Where the decay is exponential T20 ~ T30; a direct-sound-dominated small room (C80 > 20 dB)
    # bends its decay and T20 reads up to 60 % lower (python-acoustics agrees on that file).
    both = finite & np.isfinite(t20)
    ratio = t20[both] / t30[both]
    reverberant = params.c80_db[both] < 20
    assert np.all(np.abs(ratio[reverberant] - 1.0) < 0.25)
    assert np.all((ratio > 0.3) & (ratio < 1.3))
    for key, low, high in (("c50_db", -20, 45), ("c80_db", -15, 45), ("d50", 0, 1), ("ts_s", 0, 1)):
        values = params[key][np.isfinite(params[key])]
        assert np.all((values >= low) & (values <= high)), key
    assert -30 < float(params.drr_db) < 20
    nan_count = sum(int(np.isnan(params[key]).sum()) for key in ("t20_s", "t30_s", "edt_s", "c50_db"))
    assert len(params.warnings) >= nan_count
    stated = STATED_DECAY_S.get(Path(relative).stem)
    if stated is not None:
        assert float(params.broadband["t30_s"]) == pytest.approx(stated, rel=0.3)


def test_all_cores_default_respects_omp_num_threads(monkeypatch):
    """Under torchrun (OMP_NUM_THREADS=1 per process) the default must not start a thread per core."""
    from i2r.acoustics.parameters import _thread_count

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _thread_count(AnalysisConfig()) == 1
    assert _thread_count(AnalysisConfig(workers=3)) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _thread_count(AnalysisConfig()) == len(os.sched_getaffinity(0))


_FAULTS_PROBE = """
import resource, sys
import numpy as np
import i2r.acoustics.bands as bands
if sys.argv[1] == "unprimed":
    bands._keep_freed_memory_in_heap = lambda: None
from i2r.acoustics import AnalysisConfig, analyze
rng = np.random.default_rng(0)
fs, n = 22050, 131_000
envelope = np.exp(-np.arange(n) / (0.15 * fs))
irs = np.stack([rng.standard_normal(n) * envelope for _ in range(8)])
analyze(irs, fs, config=AnalysisConfig(workers=1))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
analyze(irs, fs, config=AnalysisConfig(workers=1))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc's dynamic mmap threshold")
def test_chunk_temporaries_are_not_faulted_in_again_on_every_call():
    """In a fresh process (eight 5.94 s IRs made one by one, as files are read), a second
    ``analyze`` call page-faults thousands of times unless the first workspace has raised glibc's
    mmap threshold (6,200-6,800 faults measured without, 1 with)."""
    def faults(mode: str) -> int:
        run = subprocess.run([sys.executable, "-c", _FAULTS_PROBE, mode], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return int(run.stdout)

    without, with_priming = faults("unprimed"), faults("primed")
    assert without > 1000
    assert with_priming < 100


def test_compiled_loops_work_where_numba_can_cache_nowhere(monkeypatch):
    """A read-only installation with an unwritable home leaves numba no place for its cache:
    ``numba.njit(cache=True)`` then raises at import; :func:`compiled` compiles without a cache."""
    import numba
    from numba.core import caching

    from i2r.acoustics.decay import compiled

    def add_one(x):
        return x + 1.0

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    with pytest.raises(RuntimeError, match="no locator available"):
        numba.njit(cache=True)(add_one)
    assert compiled(add_one)(1.5) == 2.5
