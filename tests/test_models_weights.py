"""Pretrained-weight loaders on state dicts saved in the published formats (strict, round trip)."""

import warnings

import pytest
import torch

from i2r.errors import UserError
from i2r.models import load_monodepth, load_places365
from i2r.models.monodepth import Monodepth2
from i2r.models.resnet import resnet18, resnet50


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomised(state):
    """Distinct random values (floats) so a round trip cannot pass by matching the init."""
    return {k: torch.randn_like(v) if v.is_floating_point() else v + 7 for k, v in state.items()}


def _save_places(tmp_path, state, name="resnet50_places365.pth.tar"):
    path = tmp_path / name
    torch.save({"epoch": 90, "arch": "resnet50", "state_dict": {"module." + k: v for k, v in state.items()}}, path)
    return path


def test_places365_round_trip_strict(tmp_path):
    published = _randomised(resnet50(num_classes=365).state_dict())
    loaded = load_places365(_save_places(tmp_path, published)).state_dict()
    assert loaded.keys() == published.keys()
    for key, value in published.items():
        assert torch.equal(loaded[key], value), key


def test_places365_into_four_channel_encoder_keeps_fresh_depth_channel(tmp_path):
    published = _randomised(resnet18(num_classes=365).state_dict())
    encoder = resnet18(in_channels=4, num_classes=365)
    fresh_fourth = encoder.conv1.weight[:, 3].detach().clone()
    load_places365(_save_places(tmp_path, published), encoder)
    assert torch.equal(encoder.conv1.weight[:, :3], published["conv1.weight"])
    assert torch.equal(encoder.conv1.weight[:, 3], fresh_fourth)
    assert fresh_fourth.std() > 0
    assert torch.equal(encoder.layer4[1].bn2.running_var, published["layer4.1.bn2.running_var"])


def test_places365_errors_name_the_problem(tmp_path):
    state = resnet18(num_classes=365).state_dict()
    with pytest.raises(UserError, match="no such weights file"):
        load_places365(tmp_path / "absent.pth.tar")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="junk.pth.tar: not a readable"):
        load_places365(tmp_path / "junk.pth.tar")
    # text that torch's legacy reader takes for a pickle: a bare KeyError and a warning, before
    (tmp_path / "notes.pth.tar").write_text("hello text")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match="notes.pth.tar: not a readable PyTorch weights file"):
            load_places365(tmp_path / "notes.pth.tar")
    torch.save({"weights": {}}, tmp_path / "flat.pth")
    with pytest.raises(UserError, match="'state_dict'"):
        load_places365(tmp_path / "flat.pth")
    renamed = {("head.weight" if k == "fc.weight" else k): v for k, v in state.items()}
    with pytest.raises(UserError, match=r"missing keys fc\.weight.*unexpected keys head\.weight"):
        load_places365(_save_places(tmp_path, renamed), resnet18(num_classes=365))
    with pytest.raises(UserError, match=r"wrong shapes fc\.weight: file \(365, 512\) vs model \(1000, 512\)"):
        load_places365(_save_places(tmp_path, state), resnet18(num_classes=1000))


def _save_monodepth(folder, net, **extra):
    folder.mkdir(exist_ok=True)
    torch.save({**net.encoder.state_dict(), "height": 192, "width": 640, "use_stereo": False, **extra},
               folder / "encoder.pth")
    torch.save(net.decoder.state_dict(), folder / "depth.pth")


def test_monodepth_round_trip_strict_and_training_size(tmp_path):
    published = Monodepth2()
    published.load_state_dict(_randomised(published.state_dict()))
    _save_monodepth(tmp_path / "mono_640x192", published)
    net, size = load_monodepth(tmp_path / "mono_640x192")
    assert size == (192, 640)
    loaded, expected = net.state_dict(), published.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_monodepth_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_monodepth(tmp_path / "nowhere")
    folder = tmp_path / "md"
    _save_monodepth(folder, Monodepth2())
    (folder / "depth.pth").unlink()
    with pytest.raises(UserError, match="depth.pth: no such weights file"):
        load_monodepth(folder)
    net = Monodepth2()
    encoder_state = {k: v for k, v in net.encoder.state_dict().items() if k != "encoder.fc.bias"}
    torch.save(encoder_state, folder / "encoder.pth")
    torch.save(net.decoder.state_dict(), folder / "depth.pth")
    with pytest.raises(UserError, match="'height'"):
        load_monodepth(folder)
    torch.save({**encoder_state, "height": 192, "width": 640}, folder / "encoder.pth")
    with pytest.raises(UserError, match=r"encoder.pth: does not fit the model: missing keys encoder\.fc\.bias"):
        load_monodepth(folder)


def test_model_load_pretrained_fills_encoder_and_depth(tmp_path):
    from i2r.models import Image2Reverb, ModelConfig

    config = ModelConfig(name="tiny", resolution=32, encoder_arch="resnet18", image_size=64,
                         g_fmap_base=256, g_fmap_max=16, d_fmap_base=256, d_fmap_max=16)
    places = _randomised(resnet18(num_classes=365).state_dict())
    depth = Monodepth2()
    depth.load_state_dict(_randomised(depth.state_dict()))
    _save_monodepth(tmp_path / "md", depth)
    model = Image2Reverb(config)
    model.load_pretrained(places365=_save_places(tmp_path, places), monodepth=tmp_path / "md")
    assert torch.equal(model.encoder.resnet.fc.weight, places["fc.weight"])
    assert torch.equal(model.encoder.resnet.conv1.weight[:, :3], places["conv1.weight"])
    assert torch.equal(model.depth.decoder.decoder[10].conv.weight, depth.decoder.decoder[10].conv.weight)
    no_depth = Image2Reverb(ModelConfig(**{**config.to_dict(), "depth_mode": "none"}))
    with pytest.raises(UserError, match="no depth channel"):
        no_depth.load_pretrained(monodepth=tmp_path / "md")
