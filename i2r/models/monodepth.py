"""Monodepth2's monocular depth network (ResNet-18 encoder + depth decoder), official key names.

Godard et al., "Digging Into Self-Supervised Monocular Depth Estimation" (ICCV 2019). The module
tree matches the published ``encoder.pth`` (``encoder.conv1.weight``, ``encoder.layer1.0...``) and
``depth.pth`` (``decoder.0.conv.conv.weight`` ... ``decoder.13.conv.weight``) so both load strictly.

Image2Reverb uses the finest sigmoid disparity, ``("disp", 0)``, as a 4th encoder channel. The
original fed it images in [-1, 1]; this network takes images in [0, 1], as Monodepth2 was trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2r.models.resnet import resnet18

ENCODER_CHANNELS = (64, 64, 128, 256, 512)
DECODER_CHANNELS = (16, 32, 64, 128, 256)
N_SCALES = 4

# Monodepth2 standardises its [0, 1] input with these two scalars (not ImageNet's per-channel ones).
INPUT_MEAN = 0.45
INPUT_STD = 0.225


class DepthEncoder(nn.Module):
    """ResNet-18 feature pyramid; input ``(B, 3, H, W)`` in [0, 1], H and W multiples of 32."""

    def __init__(self):
        super().__init__()
        # The published encoder is a whole torchvision ResNet-18, ``fc`` included (unused here).
        self.encoder = resnet18()

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.encoder.features((images - INPUT_MEAN) / INPUT_STD)


class Conv3x3(nn.Module):
    """Reflection-padded 3x3 convolution with bias (``.pad`` + ``.conv``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """:class:`Conv3x3` followed by ELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlin(self.conv(x))


class DepthDecoder(nn.Module):
    """U-Net style decoder: 5 stages of [ConvBlock, nearest x2 upsampling, skip concat, ConvBlock].

    ``decoder`` holds, in the official order, ``upconv (i, 0)`` and ``upconv (i, 1)`` for
    i = 4..0 (indices 0-9), then the disparity heads ``dispconv s`` for s = 0..3 (indices 10-13).
    """

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(4, -1, -1):
            in_up = ENCODER_CHANNELS[-1] if i == 4 else DECODER_CHANNELS[i + 1]
            layers.append(ConvBlock(in_up, DECODER_CHANNELS[i]))
            in_fuse = DECODER_CHANNELS[i] + (ENCODER_CHANNELS[i - 1] if i > 0 else 0)
            layers.append(ConvBlock(in_fuse, DECODER_CHANNELS[i]))
        layers += [Conv3x3(DECODER_CHANNELS[s], 1) for s in range(N_SCALES)]
        self.decoder = nn.ModuleList(layers)

    def forward(self, features: list[Tensor]) -> Tensor:
        """Finest disparity ``("disp", 0)``: ``(B, 1, H, W)`` in [0, 1] at the input resolution.

        The coarser heads (scales 1-3) only serve Monodepth2's multi-scale training loss, so they
        are not evaluated.
        """
        x = features[-1]
        for stage, i in enumerate(range(4, -1, -1)):
            x = self.decoder[2 * stage](x)
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.decoder[2 * stage + 1](x)
        return torch.sigmoid(self.decoder[10](x))


class Monodepth2(nn.Module):
    """Image ``(B, 3, H, W)`` in [0, 1] -> disparity ``(B, 1, H, W)`` in [0, 1] (near = large).

    H and W must be multiples of 32 (five stride-2 stages and back).
    """

    def __init__(self):
        super().__init__()
        self.encoder = DepthEncoder()
        self.decoder = DepthDecoder()

    def forward(self, images: Tensor) -> Tensor:
        return self.decoder(self.encoder(images))
