"""The losses train the generator through every term (the original's two gradient bugs, fixed)."""

import math

import pytest
import torch

from i2r.audio import SpectrogramNorm
from i2r.models import Image2Reverb, LossWeights, ModelConfig, discriminator_loss, generator_loss, spectrogram_t60p
from i2r.models.losses import decay_curve_error_db, spectrogram_decay_db


pytestmark = pytest.mark.usefixtures("one_torch_thread")

NORM = SpectrogramNorm(low=-11.5, high=2.0, scale=0.9)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = ModelConfig(name="tiny", resolution=32, encoder_arch="resnet18", image_size=64,
                         g_fmap_base=256, g_fmap_max=16, d_fmap_base=256, d_fmap_max=16)
    return Image2Reverb(config)


def _decaying_spectrogram(t60_s, resolution=32):
    """Normalised spectrogram of an exponential energy decay with the given T60."""
    frame_rate = 22050 / (256 * 512 / resolution)
    t = torch.arange(resolution) / frame_rate
    log_magnitude = -3.0 * math.log(10) * t / t60_s  # 60 dB of energy per t60_s, as natural log |X|
    raw = log_magnitude.expand(resolution, resolution).clone()
    return NORM.normalize(raw).expand(1, 1, resolution, resolution)


def _generator_grad_norm(model, weights):
    model.zero_grad(set_to_none=True)
    features = torch.randn(2, 365)
    fake = model.generate(features, generator=torch.Generator().manual_seed(1))
    real = _decaying_spectrogram(1.0).expand(2, 1, 32, 32)
    terms = generator_loss(model.discriminate(fake, features), fake, real,
                           spectrogram_t60p(fake, NORM), spectrogram_t60p(real, NORM), weights)
    terms["total"].backward()
    grads = [p.grad for p in model.generator.parameters()]
    return terms, sum(float(g.abs().sum()) for g in grads if g is not None)


def test_generator_gets_the_adversarial_gradient(model):
    terms, grad = _generator_grad_norm(model, LossWeights(adversarial=1.0, l1=0.0, t60p=0.0))
    assert terms["adversarial"] > 0 and grad > 0


def test_generator_gets_the_t60p_gradient(model):
    terms, grad = _generator_grad_norm(model, LossWeights(adversarial=0.0, l1=0.0, t60p=1.0))
    assert terms["t60p"] > 0 and grad > 0


def test_t60p_of_a_known_decay():
    # 32 frames at 22050/8192 Hz span 11.9 s, enough for a 2 s decay's -25 dB point.
    assert float(spectrogram_t60p(_decaying_spectrogram(2.0), NORM)[0]) == pytest.approx(2.0, rel=0.02)


def test_loss_values_and_ablation():
    d_fake, fake, real = torch.full((2, 1, 8, 8), 0.5), torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.25)
    terms = generator_loss(d_fake, fake, real, torch.tensor([1.5, 1.0]), torch.tensor([1.0, 1.0]))
    assert float(terms["adversarial"]) == pytest.approx(0.25)
    assert float(terms["l1"]) == pytest.approx(0.25)
    assert float(terms["t60p"]) == pytest.approx(0.25)  # mean relative error (0.5 + 0) / 2
    assert float(terms["total"]) == pytest.approx(0.25 + 100 * 0.25 + 100 * 0.25)
    no_t60p = generator_loss(d_fake, fake, real, None, None)
    assert float(no_t60p["total"]) == pytest.approx(0.25 + 25.0) and float(no_t60p["t60p"]) == 0.0
    curve = torch.zeros(2, 4)
    with_decay = generator_loss(d_fake, fake, real, None, None, LossWeights(decay=0.5), curve - 6.0, curve)
    assert float(with_decay["decay"]) == pytest.approx(6.0)
    assert float(with_decay["total"]) == pytest.approx(0.25 + 25.0 + 0.5 * 6.0)
    assert float(no_t60p["decay"]) == 0.0  # weight 0 by default: the paper has no such term
    d = discriminator_loss(torch.ones(2, 1, 8, 8), torch.full((2, 1, 8, 8), 0.5))
    assert (float(d["real"]), float(d["fake"]), float(d["total"])) == pytest.approx((0.0, 0.25, 0.25))


def test_decay_curve_of_a_known_decay_is_a_line_down_to_the_floor():
    curve = spectrogram_decay_db(_decaying_spectrogram(2.0), NORM)[0]
    t = torch.arange(32) / (22050 / 4096)  # 32 frames: a hop of 256 * 512 / 32 samples
    expected = torch.clamp(-30.0 * t, min=-60.0)  # 60 dB per 2 s, clamped at -60 dB
    assert torch.allclose(curve, expected, atol=0.05)


def test_decay_term_sees_a_late_burst_that_l1_and_t60p_hardly_see():
    real = _decaying_spectrogram(1.0)
    fake = real.clone()
    fake[..., :2, -2:] = 0.99  # loud low-frequency pixels at the very end, as a GAN's edge artefact
    fake.requires_grad_(True)
    l1 = torch.mean(torch.abs(fake.detach() - real))
    error_db = decay_curve_error_db(spectrogram_decay_db(fake, NORM), spectrogram_decay_db(real, NORM))
    assert float(l1) < 0.01  # 4 pixels of 1,024
    assert float(error_db[0].detach()) > 20.0  # the burst holds the decay curve up until the end
    assert float(decay_curve_error_db(spectrogram_decay_db(real, NORM), spectrogram_decay_db(real, NORM))[0]) == 0.0
    error_db.sum().backward()
    assert float(fake.grad[..., :2, -2:].min()) > 0  # lowering the burst lowers the error
