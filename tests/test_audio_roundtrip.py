"""IR -> log-spectrogram -> Griffin-Lim -> IR keeps each octave band's T30 (ISO 3382-1) within 5 %."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfiltfilt

from i2r.acoustics import analyze
from i2r.audio import IR_SAMPLES, SAMPLE_RATE, ir_to_logspec, load_ir, logspec_to_ir, prepare_ir
from i2r.audio import _full_magnitude, _stft

IRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "irs"
OCTAVES_HZ = (125, 250, 500, 1000, 2000, 4000)
T60_S = (2.0, 1.8, 1.5, 1.2, 1.0, 0.8)


def _decaying_noise_ir(seed: int = 0) -> np.ndarray:
    """Octave bands of Gaussian noise, each decaying exponentially with its own T60 (60 dB in T60 s)."""
    rng = np.random.default_rng(seed)
    t = np.arange(IR_SAMPLES) / SAMPLE_RATE
    ir = np.zeros(IR_SAMPLES)
    for centre, t60 in zip(OCTAVES_HZ, T60_S):
        sos = butter(4, [centre / np.sqrt(2), centre * np.sqrt(2)], btype="band", fs=SAMPLE_RATE, output="sos")
        ir += sosfiltfilt(sos, rng.standard_normal(IR_SAMPLES)) * 10 ** (-3 * t / t60)
    return prepare_ir(ir, SAMPLE_RATE)


def _t30(ir) -> np.ndarray:
    params = analyze(np.asarray(ir, dtype=np.float64), SAMPLE_RATE, bands="octave")
    assert tuple(np.asarray(params.bands_hz)) == OCTAVES_HZ
    return np.asarray(params.t30_s)


def _round_trip_error_pct(ir, resolution: int, method: str) -> np.ndarray:
    reference = _t30(ir)
    restored = logspec_to_ir(ir_to_logspec(ir, resolution), method=method).numpy()
    return 100 * np.abs(_t30(restored) / reference - 1)


@pytest.fixture(scope="module")
def synthetic_ir():
    return _decaying_noise_ir()


def test_synthetic_ir_has_the_designed_decay(synthetic_ir):
    # Sanity of the test signal itself: band filters overlap, so allow 12 % at the band edges' mixing.
    assert np.allclose(_t30(synthetic_ir), T60_S, rtol=0.12)


@pytest.mark.parametrize("resolution", [512, 128])
def test_griffin_lim_keeps_t30_of_decaying_noise(synthetic_ir, resolution):
    assert _round_trip_error_pct(synthetic_ir, resolution, "griffin-lim").max() < 5.0


@pytest.mark.parametrize(
    "name",
    [
        "openair_spokane_womans_club_stereo.wav",  # hall, T30 1.6-2.6 s
        "openair_domestic_living_room_mono.wav",  # short decay (0.2 s), direct sound at sample 6
    ],
)
@pytest.mark.skipif(not IRS.is_dir(), reason="needs ../shared/data/irs")
def test_griffin_lim_keeps_t30_of_real_irs_and_beats_random_phase(name):
    ir = load_ir(IRS / name)
    griffin_lim = _round_trip_error_pct(ir, 512, "griffin-lim")
    random_phase = _round_trip_error_pct(ir, 512, "random-phase")
    assert griffin_lim.max() < 5.0
    assert random_phase.max() > 2 * griffin_lim.max()


def test_inverse_recovers_the_stft_magnitude_the_log_floor_removed():
    """``exp(log(|X| + 1e-5)) - 1e-5`` is ``|X|`` again: the magnitude the inversion starts from
    equals ``|STFT(x)|`` bin for bin (float32 rounding: 1e-5 relative, 1e-7 absolute), with a
    zero Nyquist row. Keeping the floor would add 1e-5 to every bin, most of which lie far
    below it in this decaying noise."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(IR_SAMPLES, generator=generator) * torch.exp(-torch.arange(IR_SAMPLES) / 4000.0)
    expected = _stft(x[None]).abs()
    expected[:, -1] = 0.0
    assert float((expected < 1e-5).float().mean()) > 0.3
    torch.testing.assert_close(_full_magnitude(ir_to_logspec(x)[None]), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", ["griffin-lim", "random-phase"])
def test_silent_spectrogram_inverts_to_silence(method):
    """A spectrogram at the floor everywhere is silence: its magnitude is zero (up to the
    float32 rounding of exp(log(1e-5)), ~1e-12), and so is the IR."""
    silent = ir_to_logspec(torch.zeros(IR_SAMPLES), resolution=128)
    assert float(_full_magnitude(silent[None]).max()) < 1e-10
    assert float(logspec_to_ir(silent, method=method, n_iter=2).abs().max()) < 1e-10
