"""Architecture tests: torchvision-compatible ResNets, Monodepth2 names, G/D shapes, model wiring."""

from dataclasses import replace

import pytest
import torch

from i2r.errors import UserError
from i2r.models import Image2Reverb, ModelConfig
from i2r.models.discriminator import Discriminator
from i2r.models.generator import Generator
from i2r.models.image2reverb import SceneEncoder
from i2r.models.layers import EqualizedConv2d, stage_channels
from i2r.models.monodepth import Monodepth2
from i2r.models.resnet import resnet18, resnet50


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Names and shapes as torchvision 0.x writes them (``torchvision.models.resnet50().state_dict()``).
RESNET50_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_mean": (64,),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_var": (256,),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.3.bn3.bias": (512,),
    "layer3.5.bn3.weight": (1024,),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}
RESNET18_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.1.conv2.weight": (64, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.weight": (128,),
    "layer3.1.bn1.running_mean": (256,),
    "layer4.1.bn2.running_var": (512,),
    "fc.weight": (1000, 512),
}


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "build, keys, n_entries, n_params",
    [(resnet50, RESNET50_KEYS, 320, 25_557_032), (resnet18, RESNET18_KEYS, 122, 11_689_512)],
)
def test_resnet_matches_torchvision_names_shapes_and_size(build, keys, n_entries, n_params):
    net = build()
    state = net.state_dict()
    assert {k: tuple(state[k].shape) for k in keys} == keys
    assert len(state) == n_entries
    assert _n_params(net) == n_params


def test_resnet_in_channels_and_classes():
    net = resnet18(in_channels=4, num_classes=365)
    assert net.conv1.weight.shape == (64, 4, 7, 7)
    assert net(torch.rand(2, 4, 32, 32)).shape == (2, 365)


def test_monodepth_official_key_names_and_output():
    net = Monodepth2().eval()
    enc, dec = net.encoder.state_dict(), net.decoder.state_dict()
    assert tuple(enc["encoder.conv1.weight"].shape) == (64, 3, 7, 7)
    assert "encoder.layer1.0.conv1.weight" in enc and "encoder.fc.weight" in enc
    assert tuple(dec["decoder.0.conv.conv.weight"].shape) == (256, 512, 3, 3)  # upconv (4, 0)
    assert tuple(dec["decoder.9.conv.conv.weight"].shape) == (16, 16, 3, 3)  # upconv (0, 1)
    assert tuple(dec["decoder.10.conv.weight"].shape) == (1, 16, 3, 3)  # dispconv 0
    assert tuple(dec["decoder.13.conv.weight"].shape) == (1, 128, 3, 3)  # dispconv 3
    assert len(dec) == 28
    with torch.no_grad():
        disp = net(torch.rand(2, 3, 64, 96))
    assert disp.shape == (2, 1, 64, 96)
    assert 0.0 <= disp.min() and disp.max() <= 1.0


def test_monodepth_standardises_its_input_inside():
    net = Monodepth2().eval()
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        inside = net.encoder(images)[-1]
        by_hand = net.encoder.encoder.features((images - 0.45) / 0.225)[-1]
    torch.testing.assert_close(inside, by_hand)


def test_scene_encoder_applies_imagenet_normalisation_then_appends_depth():
    encoder = SceneEncoder("resnet18", 365, with_depth=True).eval()
    images, depth = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = encoder.resnet(torch.cat([(images - mean) / std, depth], 1))
        torch.testing.assert_close(encoder(images, depth), expected)
    assert "mean" not in encoder.state_dict()  # constants, not checkpointed weights


def test_paper_generator_has_the_papers_weight_count():
    # ORIGINAL.md: about 13.7 M weights; exactly 512*256*64 + the 3x3 blocks + 32 (no biases).
    g = Generator(512)
    assert _n_params(g) == 13_687_840
    assert all(m.bias is None for m in g.modules() if hasattr(m, "bias"))


@pytest.mark.parametrize("resolution", [32, 128, 512])
def test_generator_and_discriminator_shapes(resolution):
    # Slim widths keep the 512 case quick; the block count is what the resolution decides.
    g = Generator(resolution, fmap_base=1024, fmap_max=16)
    d = Discriminator(resolution, fmap_base=1024, fmap_max=16)
    assert len(g.blocks) == {32: 3, 128: 5, 512: 7}[resolution]
    with torch.no_grad():
        spec = g(torch.randn(2, 512) * 10)
        scores = d(spec, torch.randn(2, 365))
    assert spec.shape == (2, 1, resolution, resolution)
    assert -1 < spec.min() and spec.max() < 1 and spec.std() > 0
    assert scores.shape == (2, 1, 8, 8)


def test_upsampling_folded_into_the_conv_is_exact():
    conv = EqualizedConv2d(5, 3, 3, padding=1, bias=False).double()
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    naive = conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
    torch.testing.assert_close(conv.forward_upsampled(x), naive, rtol=0, atol=1e-12)


def test_generator_backward_without_nan_even_for_batch_one():
    g, d = Generator(32, fmap_base=256, fmap_max=8), Discriminator(32, fmap_base=256, fmap_max=8)
    d(g(torch.randn(1, 512)), torch.randn(1, 365)).sum().backward()
    grads = [p.grad for p in (*g.parameters(), *d.parameters())]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)


def test_discriminator_uses_the_condition():
    d = Discriminator(32, fmap_base=1024, fmap_max=16)
    spec = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a, b = d(spec, torch.zeros(2, 365)), d(spec, torch.ones(2, 365))
    assert not torch.allclose(a, b)


def test_resolution_must_be_a_power_of_two_in_range():
    for bad in (16, 48, 1024):
        with pytest.raises(UserError, match="resolution"):
            ModelConfig(resolution=bad)


def test_the_depth_network_needs_images_of_64_px():
    with pytest.raises(UserError, match="depth network needs image_size of at least 64"):
        ModelConfig(resolution=32, image_size=32)
    assert ModelConfig(resolution=32, image_size=32, depth_mode="none").image_size == 32


def _tiny_config(depth_mode="auto"):
    return ModelConfig(name="tiny", resolution=32, encoder_arch="resnet18", image_size=64, depth_mode=depth_mode,
                       g_fmap_base=256, g_fmap_max=16, d_fmap_base=256, d_fmap_max=16)


def test_presets():
    paper, small = ModelConfig.preset("paper"), ModelConfig.preset("small")
    assert (paper.resolution, paper.encoder_arch, paper.image_size, paper.noise_dim) == (512, "resnet50", 224, 147)
    assert (small.resolution, small.encoder_arch, small.image_size) == (128, "resnet18", 64)
    assert [stage_channels(size, small.g_fmap_base, small.g_fmap_max) for size in (8, 16, 32, 64, 128)] == [64, 64, 32, 16, 8]
    assert ModelConfig.from_dict(small.to_dict()) == small
    with pytest.raises(UserError, match="preset"):
        ModelConfig.preset("huge")
    with pytest.raises(UserError, match="unknown model config field"):
        ModelConfig.from_dict({**small.to_dict(), "colour": 1})


def test_the_small_preset_standardises_features_and_starts_at_a_prior_and_the_paper_does_neither():
    small, paper = Image2Reverb(ModelConfig.preset("small")), Image2Reverb(ModelConfig.preset("paper"))
    assert small.encoder.standardize is not None and small.generator.prior.shape == (1, 1, 128, 128)
    assert paper.encoder.standardize is None and paper.generator.prior is None
    assert not any(key.startswith(("encoder.standardize", "generator.prior")) for key in paper.state_dict())
    with pytest.raises(UserError, match="feature_norm"):
        ModelConfig(feature_norm="layer")
    with pytest.raises(UserError, match="spectrogram_prior"):
        ModelConfig(spectrogram_prior="median")


def test_a_config_saved_before_feature_norm_and_the_prior_existed_builds_the_model_it_was():
    saved = {key: value for key, value in ModelConfig.preset("small").to_dict().items()
             if key not in ("feature_norm", "spectrogram_prior")}
    config = ModelConfig.from_dict(saved)
    assert (config.feature_norm, config.spectrogram_prior) == ("none", "none")
    model = Image2Reverb(config)
    assert model.encoder.standardize is None and model.generator.prior is None


def test_standardised_features_have_zero_mean_and_unit_spread_across_the_batch():
    torch.manual_seed(0)
    model = Image2Reverb(replace(_tiny_config(), feature_norm="batch")).train()
    features, _ = model.encode(torch.rand(6, 3, 64, 64))
    torch.testing.assert_close(features.mean(0), torch.zeros(365), atol=1e-4, rtol=0)
    torch.testing.assert_close(features.std(0, unbiased=False), torch.ones(365), atol=0.01, rtol=0)
    # a training batch of one has no spread: it takes the running statistics and leaves them be
    running = model.encoder.standardize.running_mean.clone()
    one, _ = model.encode(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(one).all() and torch.equal(model.encoder.standardize.running_mean, running)


def test_a_generator_with_a_prior_makes_it_for_every_latent_until_it_learns():
    torch.manual_seed(0)
    generator = Generator(32, 512, 256, 16, prior=True)
    generator.prior.copy_(torch.linspace(-2.0, 2.0, 32 * 32).view(1, 1, 32, 32))
    out = generator(torch.randn(3, 512))
    torch.testing.assert_close(out, generator.prior.tanh().expand(3, 1, 32, 32))
    out.square().sum().backward()  # the output conv, at zero, still gets a gradient to learn from
    assert generator.output.weight.grad.abs().sum() > 0


def test_model_wiring_and_depth_modes():
    model = Image2Reverb(_tiny_config()).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        features, depth = model.encode(images)
        assert features.shape == (2, 365) and depth.shape == (2, 1, 64, 64)
        _, half = model.encode(images, depth_mode="0.5")
        assert torch.all(half == 0.5)
        f_zero, zero = model.encode(images, depth_mode=0)
        assert torch.all(zero == 0) and not torch.allclose(f_zero, features)
        _, odd = model.encode(torch.rand(1, 3, 50, 70))  # Monodepth2 runs at a multiple of 32
        assert odd.shape == (1, 1, 50, 70)
        seeded = [model.generate(features, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
        assert seeded[0].shape == (2, 1, 32, 32)
        torch.testing.assert_close(seeded[0], seeded[1])
        assert model.discriminate(seeded[0], features).shape == (2, 1, 8, 8)
    with pytest.raises(UserError, match="depth mode"):
        model.encode(images, depth_mode="none")
    with pytest.raises(UserError, match="depth mode"):
        model.encode(images, depth_mode="far")


def test_detached_depth_gets_no_gradient_from_the_features():
    """With depth supervision the depth network learns from the true maps alone (the GAN's
    gradient through the encoder made it collapse to a constant map)."""
    model = Image2Reverb(_tiny_config())
    images = torch.rand(2, 3, 64, 64)
    for detach, reaches in ((False, True), (True, False)):
        model.zero_grad()
        features, depth = model.encode(images, detach_depth=detach)
        features.sum().backward()
        grads = [p.grad for p in model.depth.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads) == reaches
        assert model.encoder.resnet.conv1.weight.grad[:, 3].abs().sum() > 0  # the 4th channel is still read
        assert depth.requires_grad  # its own loss still trains it


def test_no_depth_model_has_a_three_channel_encoder():
    model = Image2Reverb(_tiny_config("none")).eval()
    assert model.depth is None and model.encoder.resnet.conv1.weight.shape[1] == 3
    with torch.no_grad():
        features, depth = model.encode(torch.rand(1, 3, 64, 64))
    assert features.shape == (1, 365) and depth is None
    with pytest.raises(UserError, match="depth mode"):
        model.encode(torch.rand(1, 3, 64, 64), depth_mode="auto")
