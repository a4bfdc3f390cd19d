"""i2r.acoustics.analyze and friends: analytic decays, invariances, honesty checks, shapes."""

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2r.acoustics import (AcousticParameters, AnalysisConfig, analyze, band_centres, band_edges,
                           decay_time, validate_ir)
from i2r.acoustics.bands import G, FilterBank, band_magnitude, exact_centres
from i2r.acoustics.parameters import FFT_LANES, _chunks
from i2r.acoustics.decay import (EnergySums, LundebySettings, _Frames, decay_curve_db, lundeby,
                                onset_index)
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


# --- analytic decays -----------------------------------------------------------------------------


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
    Lundeby intersection time (0.555 s), noise energy and compensated EDC."""
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


def test_lundeby_shortcuts_are_exact():
    """Frames computed only up to ``until`` and sums of a subset of the batch read exactly what
    the whole computation reads."""
    rng = np.random.default_rng(21)
    energy = (rng.standard_normal((5, 6000)) * np.exp(-np.arange(6000) / 900.0)) ** 2
    sums = EnergySums(energy, 8)
    frames = _Frames(sums, onset_index(energy), 8000, LundebySettings())
    window = np.array([40.0, 80.0, 160.0, 8.0, 400.0])
    every = frames.levels(window)
    until = np.array([0, 3, 50, 2400, 10**6])
    some = frames.levels(window, until)
    for b, end in enumerate(until):
        np.testing.assert_array_equal(some[b, :end], every[b, :end])
        assert np.isnan(some[b, end:]).all()
    rows = np.array([4, 1])
    part = sums.subset(rows)
    index = np.array([[0, 17], [5999, 6000]])
    np.testing.assert_array_equal(part.before(index), EnergySums(energy[rows], 8).before(index))
    np.testing.assert_array_equal(part.total, sums.total[rows])
    np.testing.assert_array_equal(frames.subset(rows).levels(window[rows]), every[rows])
    np.testing.assert_array_equal(frames.subset(rows).levels(window[rows], until[rows]), some[rows])


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


def test_workers_must_be_zero_or_a_thread_count():
    with pytest.raises(UserError, match="workers"):
        AnalysisConfig(workers=-1)


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
