"""Grad-CAM localises what a network looks at; `i2r gradcam` compares two encoders by SSIM."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from i2r.analysis.gradcam import GradCamConfig, grad_cam, grayscale, overlay, ssim_maps, ssim_overlays
from i2r.audio import SpectrogramNorm
from i2r.checkpoint import save_checkpoint
from i2r.cli import main
from i2r.errors import UserError
from i2r.models import Image2Reverb, ModelConfig
from i2r.models.resnet import resnet18, resnet50


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Masked(nn.Module):
    """Zeroes the input outside rows/cols ``region`` (slices), then runs ``net``: the output
    depends on that region only."""

    def __init__(self, net, region):
        super().__init__()
        self.net, self.region = net, region

    def forward(self, x):
        mask = torch.zeros_like(x)
        mask[..., self.region[0], self.region[1]] = 1
        return self.net(x * mask)


def _assert_peaks_in(cam, region, size, margin):
    """Peak within the region grown by ``margin`` px (one cell of the target layer: bilinear
    upsampling and receptive fields blur its edge), and the region holds most of the map."""
    inside = np.zeros((size, size), bool)
    inside[region] = True
    grown = np.zeros((size, size), bool)
    grown[max(region[0].start - margin, 0):region[0].stop + margin,
          max(region[1].start - margin, 0):region[1].stop + margin] = True
    peak = np.unravel_index(cam.argmax(), cam.shape)
    assert grown[peak], f"CAM peaks at {peak}, outside the region"
    assert cam[inside].mean() > 3 * cam[~grown].mean()


@pytest.mark.parametrize("region", [(slice(0, 16), slice(0, 16)), (slice(40, 64), slice(24, 48))])
def test_cam_of_small_conv_net_peaks_in_the_only_region_that_matters(region):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.ReLU())
    net = Masked(nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)), region)
    image = torch.rand(1, 3, 64, 64)
    result = grad_cam(net, body[3], image)
    assert result.cam.shape == (64, 64) and result.cam.max() == pytest.approx(1.0)
    assert result.feature == int(net(image).argmax())
    _assert_peaks_in(result.cam, region, 64, margin=2)


def test_cam_follows_the_gradients_not_just_the_activations():
    """Two channels fire on two squares; only the red one feeds the explained output, so the CAM
    must light up the red square and leave the equally active green one dark."""
    target = nn.Conv2d(3, 2, 1, bias=False)
    head = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        target.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))
        head.weight.copy_(torch.tensor([[3.0, -0.5], [0.5, 0.5], [0.0, 0.2]]))
    net = nn.Sequential(target, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    image = torch.zeros(1, 3, 32, 32)
    image[0, 0, 2:10, 2:10] = 1.0  # red square
    image[0, 1, 20:30, 18:28] = 1.0  # green square, larger
    result = grad_cam(net, target, image)
    assert result.feature == 0
    assert result.cam[3:9, 3:9].min() == pytest.approx(1.0)
    assert result.cam[21:29, 19:27].max() == 0.0
    # For the output fed by both channels, both squares light up.
    both = grad_cam(net, target, image, feature=1)
    assert both.cam[3:9, 3:9].min() > 0.5 and both.cam[21:29, 19:27].min() > 0.5


def test_cam_of_masked_resnet_last_block_peaks_in_region_for_a_chosen_feature():
    torch.manual_seed(1)
    resnet = resnet18(num_classes=10).eval()
    region = (slice(96, 160), slice(0, 64))
    net = Masked(resnet, region)
    image = torch.rand(1, 3, 224, 224)
    feature = int(net(image).argmax())
    result = grad_cam(net, resnet.layer4[-1], image, feature=feature)
    assert result.feature == feature
    _assert_peaks_in(result.cam, region, 224, margin=32)


def test_ssim_identical_maps_is_one_and_different_maps_fall_below_threshold():
    rng = np.random.default_rng(0)
    a = np.clip(rng.random((64, 64)), 0, 1)
    assert ssim_maps(a, a) == pytest.approx(1.0)
    yy, xx = np.mgrid[:64, :64]
    left, right = np.exp(-((xx - 16) ** 2 + (yy - 32) ** 2) / 100), np.exp(-((xx - 48) ** 2 + (yy - 32) ** 2) / 100)
    assert ssim_maps(left, right) < 0.98
    photo = rng.random((64, 64, 3))
    gray_left, gray_right = grayscale(overlay(photo, left)), grayscale(overlay(photo, right))
    assert gray_left.dtype == np.uint8 and gray_left.shape == (64, 64)
    assert ssim_overlays(gray_left, gray_left) == pytest.approx(1.0)
    assert ssim_overlays(gray_left, gray_right) < 0.98


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gradcam")
    torch.manual_seed(0)
    tiny = ModelConfig(name="tiny", resolution=32, encoder_arch="resnet18", image_size=64, depth_mode="0.5",
                       g_fmap_base=256, g_fmap_max=16, d_fmap_base=256, d_fmap_max=16)
    save_checkpoint({"config": {"preset": "tiny"}, "model_config": tiny.to_dict(),
                     "spec_norm": SpectrogramNorm(low=-11.5, high=2.0).to_dict(),
                     "model": Image2Reverb(tiny).state_dict()}, folder / "last.pt")
    # The published Places365 file: {"state_dict": {"module.<torchvision name>": tensor}}.
    places = resnet50(num_classes=365).state_dict()
    torch.save({"epoch": 90, "arch": "resnet50", "state_dict": {f"module.{k}": v for k, v in places.items()}},
               folder / "resnet50_places365.pth.tar")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)).save(folder / "hall.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_cli_compares_pretrained_and_finetuned_encoders(files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["gradcam", str(files / "hall.png"), str(files / "broken.jpg"), "--checkpoint", str(files / "last.pt"),
                 "--pretrained", str(files / "resnet50_places365.pth.tar"), "--feature", "3", "--out", str(out)])
    assert code == 2  # the good image is compared, and the exit status says one was bad
    captured = capsys.readouterr()
    assert "hall.png: SSIM maps" in captured.out
    assert [line for line in captured.err.splitlines() if "broken.jpg" in line][0].startswith("error: ")
    with open(out / "gradcam.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    row = rows[0]
    assert row["feature_pretrained"] == row["feature_finetuned"] == "3"
    assert -1 <= float(row["ssim_maps"]) <= 1 and -1 <= float(row["ssim_overlays"]) <= 1
    assert row["flagged"] == str(float(row["ssim_overlays"]) < 0.98)
    panel = Image.open(out / "000_hall_gradcam.png")
    assert panel.size[0] > 4 * panel.size[1]


def test_cli_without_pretrained_draws_finetuned_maps_only_and_rejects_bad_feature(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["gradcam", str(files / "hall.png"), "--checkpoint", str(files / "last.pt"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "fine-tuned feature" in captured.out and "no --pretrained" in captured.err
    with open(out / "gradcam.csv", newline="") as handle:
        assert "ssim_maps" not in next(csv.reader(handle))
    assert main(["gradcam", str(files / "hall.png"), "--checkpoint", str(files / "last.pt"), "--feature", "999",
                 "--out", str(out)]) == 2
    assert "--feature 999" in capsys.readouterr().err
    assert main(["gradcam", str(files / "hall.png"), "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    capsys.readouterr()
    assert main(["gradcam", str(files / "hall.png"), "--checkpoint", str(files / "last.pt"), "--device", "tpu",
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err == "error: --device 'tpu': expected auto, cpu, cuda or cuda:N\n"


@pytest.mark.parametrize("feature, message", [("-1", "--feature must be an output index of at least 0, not -1"),
                                              ("100000", "--feature 100000 is outside the finetuned network's")])
def test_bad_feature_is_one_error_before_any_image(files, tmp_path, capsys, monkeypatch, feature, message):
    import i2r.analysis.gradcam as gradcam

    monkeypatch.setattr(gradcam, "compare_image", lambda *a: pytest.fail("an image was processed"))
    out = tmp_path / "out"
    status = main(["gradcam", str(files / "hall.png"), str(files / "broken.jpg"),
                   "--checkpoint", str(files / "last.pt"), "--feature", feature, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"error: {message}") and len(err.splitlines()) == 1, err
    assert not (out / "config.json").exists()


def test_feature_beyond_the_pretrained_networks_outputs_is_refused_up_front(files, tmp_path, monkeypatch):
    import i2r.analysis.gradcam as gradcam

    monkeypatch.setattr(gradcam, "compare_image", lambda *a: pytest.fail("an image was processed"))
    config = GradCamConfig(checkpoint=str(files / "last.pt"), pretrained=str(files / "resnet50_places365.pth.tar"),
                           feature=365, out=str(tmp_path))
    with pytest.raises(UserError, match="outside the pretrained network's 365 outputs"):
        gradcam.run_gradcam([str(files / "hall.png")], config)
    with pytest.raises(UserError, match="--feature must be"):
        GradCamConfig(checkpoint="x.pt", feature=True)
