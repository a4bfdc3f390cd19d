"""What the encoder looks at: Grad-CAM of the Places365 and fine-tuned encoders, compared by SSIM.

Image2Reverb Section 3.4 (Figs. 11-12): Grad-CAM (Selvaraju et al. 2017) on the encoder's last
residual block (``layer4[-1]``) at 224 x 224 for the pre-trained Places365 ResNet-50 and for the
fine-tuned encoder of a checkpoint, and the structural similarity (SSIM, Wang et al. 2004) of the
two maps, "below 0.98 for all examples". SSIM is computed two ways (scikit-image):

- ``ssim_maps``: on the raw maps in [0, 1] as Wang et al. define it (Gaussian window sigma 1.5,
  population covariances, ``data_range=1``);
- ``ssim_overlays``: on grayscale heat-map overlays (jet colour map over the photo), with
  scikit-image's defaults -- how the original ``compare.py`` obtained the paper's figure (it read
  saved JPEG overlays; ours are not JPEG-compressed).

``flagged`` marks the paper's criterion: overlay SSIM below 0.98, i.e. the two networks attend
noticeably differently. Without ``--pretrained`` only the fine-tuned maps are made (no SSIM):
a checkpoint does not hold the encoder's initial weights, and comparing against an untrained
network would say nothing.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from i2r.devices import resolve_device
from i2r.errors import UserError
from i2r.files import atomic_open, atomic_savefig

IMAGE_SIZE = 224
SSIM_THRESHOLD = 0.98


@dataclass
class GradCamConfig:
    """How ``i2r gradcam`` runs; ``feature`` None = each network's greatest output."""

    checkpoint: str
    pretrained: str | None = None
    feature: int | None = None
    out: str = "reports/gradcam"
    image_size: int = IMAGE_SIZE
    device: str = "cpu"

    def __post_init__(self):
        if self.feature is not None and (isinstance(self.feature, bool) or not isinstance(self.feature, int)
                                         or self.feature < 0):
            raise UserError(f"--feature must be an output index of at least 0, not {self.feature!r}")


@dataclass
class Cam:
    """A class activation map ``cam`` ``(H, W)`` in [0, 1] for output ``feature`` (value ``score``)."""

    cam: np.ndarray
    feature: int
    score: float


def grad_cam(model: nn.Module, target_layer: nn.Module, inputs: Tensor, feature: int | None = None) -> Cam:
    """Grad-CAM (Selvaraju et al. 2017) of ``model`` for one input ``(1, C, H, W)``.

    ``model(inputs)`` must return ``(1, K)`` outputs; ``feature`` picks the output (default: the
    greatest). The weights are the target's gradients w.r.t. ``target_layer``'s output activations
    ``A`` ``(1, C', h, w)``, averaged over space; the map is ``ReLU(sum_k w_k A_k)``, bilinearly
    upsampled to ``(H, W)`` and divided by its maximum (all zeros if nothing contributes positively).
    """
    captured = {}

    def keep(_module, _inputs, output):
        output.register_hook(lambda grad: captured.__setitem__("grad", grad))
        captured["act"] = output

    handle = target_layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            outputs = model(inputs)
            if outputs.ndim != 2 or outputs.shape[0] != 1:
                raise ValueError(f"model must return (1, K) outputs, got {tuple(outputs.shape)}")
            index = int(outputs[0].argmax()) if feature is None else int(feature)
            if not 0 <= index < outputs.shape[1]:
                raise UserError(f"--feature {index} is outside the network's {outputs.shape[1]} outputs")
            outputs[0, index].backward()
    finally:
        handle.remove()
    act, grad = captured["act"].detach(), captured["grad"]
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    peak = cam.max()
    cam = cam / peak if peak > 0 else torch.zeros_like(cam)
    return Cam(cam=cam.cpu().numpy().astype(np.float64), feature=index, score=float(outputs[0, index].detach()))


class _EncoderWithDepth(nn.Module):
    """The fine-tuned encoder as the model runs it: RGB in [0, 1] + the model's own depth channel.

    Depth (Monodepth2 or a constant, per the checkpoint's depth mode) is computed without
    gradients: Grad-CAM needs only the path from ``layer4[-1]`` to the output.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            depth = self.model.estimate_depth(images)
        return self.model.encoder(images, depth)


def load_networks(config: GradCamConfig) -> tuple[nn.Module | None, nn.Module]:
    """(pre-trained Places365 encoder or None, fine-tuned encoder), both ``images in [0, 1] -> (B, K)``."""
    from i2r.checkpoint import load_model
    from i2r.models.image2reverb import SceneEncoder
    from i2r.models.weights import load_places365

    model, _, _ = load_model(config.checkpoint, device=config.device)
    finetuned = _EncoderWithDepth(model).eval()
    pretrained = None
    if config.pretrained:
        pretrained = SceneEncoder("resnet50", n_features=365, with_depth=False)
        load_places365(config.pretrained, pretrained.resnet)
        pretrained = pretrained.to(config.device).eval()
    return pretrained, finetuned


def last_block(network: nn.Module) -> nn.Module:
    """``layer4[-1]`` of the ResNet inside ``network`` (a SceneEncoder or the wrapper above)."""
    encoder = network.model.encoder if isinstance(network, _EncoderWithDepth) else network
    return encoder.resnet.layer4[-1]


def n_outputs(network: nn.Module) -> int:
    """How many output features ``network`` (a SceneEncoder or the wrapper above) has."""
    encoder = network.model.encoder if isinstance(network, _EncoderWithDepth) else network
    return encoder.resnet.fc.out_features


def check_feature(config: GradCamConfig, networks: dict[str, nn.Module]) -> None:
    """A ``feature`` beyond a network's outputs is one mistake, reported once before any image."""
    if config.feature is None:
        return
    for name, network in networks.items():
        if config.feature >= n_outputs(network):
            raise UserError(f"--feature {config.feature} is outside the {name} network's {n_outputs(network)} "
                            f"outputs (0 to {n_outputs(network) - 1})")


def load_rgb(path: str | os.PathLike, size: int = IMAGE_SIZE) -> np.ndarray:
    """An image resized to ``(size, size, 3)`` float in [0, 1] (the original's 224 x 224 input)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except FileNotFoundError:
        raise UserError(f"{path}: no such image") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"{path}: not readable as an image ({exc})") from None
    return np.asarray(resized, dtype=np.float64) / 255.0


def overlay(rgb: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Jet heat map of ``cam`` added to the photo ``rgb`` (both in [0, 1]), rescaled: uint8 ``(H, W, 3)``.

    The usual Grad-CAM rendering (heat map + image, divided by the maximum).
    """
    from matplotlib import colormaps

    mixed = colormaps["jet"](cam)[..., :3] + rgb
    return np.round(255 * mixed / mixed.max()).astype(np.uint8)


def grayscale(rgb_uint8: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of a uint8 RGB image, uint8 (what image readers use for 'L'/grayscale)."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb_uint8).convert("L"))


def ssim_maps(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two maps in [0, 1] as Wang et al. (2004): 11-tap Gaussian window, sigma 1.5."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=1.0))


def ssim_overlays(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 grayscale overlays with scikit-image's defaults (the original compare.py)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b))


def save_panel(path: Path, rgb: np.ndarray, cams: dict[str, Cam], title: str) -> None:
    """Figure like the paper's Figs. 11-12: image, each network's CAM, each overlay; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("image", rgb)]
    panels += [(f"{name} CAM (feature {cam.feature})", cam.cam) for name, cam in cams.items()]
    panels += [(f"{name} overlay", overlay(rgb, cam.cam)) for name, cam in cams.items()]
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (label, picture) in zip(np.atleast_1d(axes), panels):
        ax.imshow(picture, cmap="jet" if picture.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(label, fontsize=8)
        ax.set_axis_off()
    figure.suptitle(title, fontsize=9)
    atomic_savefig(figure, path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def _to_tensor(rgb: np.ndarray, device: str) -> Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float().to(device)


def compare_image(path: str, networks: dict[str, nn.Module],
                  config: GradCamConfig) -> tuple[dict, dict[str, Cam], np.ndarray]:
    """CAMs of one image for each network and, with two networks, the two SSIMs:
    ``(CSV row, cams, the 224 x 224 RGB image in [0, 1])``."""
    rgb = load_rgb(path, config.image_size)
    inputs = _to_tensor(rgb, config.device)
    cams = {name: grad_cam(net, last_block(net), inputs, config.feature) for name, net in networks.items()}
    row = {"image": str(path)}
    for name, cam in cams.items():
        row[f"feature_{name}"] = cam.feature
        row[f"score_{name}"] = round(cam.score, 6)
    if len(cams) == 2:
        pre, fine = cams["pretrained"], cams["finetuned"]
        row["ssim_maps"] = round(ssim_maps(pre.cam, fine.cam), 6)
        row["ssim_overlays"] = round(ssim_overlays(grayscale(overlay(rgb, pre.cam)),
                                                   grayscale(overlay(rgb, fine.cam))), 6)
        row["flagged"] = row["ssim_overlays"] < SSIM_THRESHOLD
    return row, cams, rgb


def run_gradcam(images: list[str], config: GradCamConfig) -> list[dict]:
    """``i2r gradcam``: ``OUT/gradcam.csv`` (one row per image), ``OUT/NNN_<stem>_gradcam.png``
    panels (NNN = the image's position in ``images``) and ``OUT/config.json``.

    CSV columns: ``image, feature_<net>, score_<net>`` per network, and with ``--pretrained``
    ``ssim_maps, ssim_overlays, flagged`` (overlay SSIM < 0.98). Unreadable images are skipped
    and returned with an ``error``. Returns the rows.
    """
    config = replace(config, device=str(resolve_device(config.device)))
    pretrained, finetuned = load_networks(config)
    networks = {"pretrained": pretrained, "finetuned": finetuned} if pretrained is not None \
        else {"finetuned": finetuned}
    check_feature(config, networks)
    out = Path(config.out)
    rows, failed = [], []
    for index, path in enumerate(tqdm(images, desc="Grad-CAM", unit="image", file=sys.stderr,
                                      disable=len(images) < 2)):
        try:
            row, cams, rgb = compare_image(path, networks, config)
        except UserError as exc:
            failed.append({"image": str(path), "error": str(exc)})
            continue
        title = Path(path).name
        if "ssim_maps" in row:
            title += f"  SSIM maps {row['ssim_maps']:.3f}, overlays {row['ssim_overlays']:.3f}"
        save_panel(out / f"{index:03d}_{Path(path).stem}_gradcam.png", rgb, cams, title)
        rows.append(row)
    if rows:
        _write_rows(rows, out / "gradcam.csv")
    with atomic_open(out / "config.json") as handle:
        json.dump({"config": asdict(config), "failed": failed}, handle, indent=2)
    return rows + failed


def _write_rows(rows: list[dict], path: Path) -> None:
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
