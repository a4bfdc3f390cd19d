"""Image2Reverb's conditional discriminator (paper Fig. 23, ProGAN with a patch output).

Spectrogram ``(B, 1, R, R)`` -> 1x1 conv -> one block per resolution R, R/2, ..., 16 of
[3x3 conv, LReLU 0.2] x 2 + 2x2 average pooling, ending at 8x8 -> minibatch stddev (+1 channel)
-> [3x3 conv, LReLU] x 2 -> concatenation with the condition (the 365 encoder features,
zero-padded to 512 and reshaped to 8 channels of 8x8) -> 1x1 conv, LReLU -> 1x1 conv to a
linear 8x8 patch of scores ``(B, 1, 8, 8)``. All convs use an equalised learning rate and biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2r.models.layers import EqualizedConv2d, MinibatchStddev, leaky_relu, n_stages, stage_channels

CONDITION_CHANNELS = 8  # 512 = 8 x 8 x 8 values, the encoder's 365 features zero-padded


class DiscriminatorBlock(nn.Module):
    """[3x3 conv, LReLU] x 2 then 2x2 average pooling: ``(B, C_in, H, W) -> (B, C_out, H/2, W/2)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = EqualizedConv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = leaky_relu(self.conv2(leaky_relu(self.conv1(x))))
        return F.avg_pool2d(x, 2)


def condition_planes(features: Tensor) -> Tensor:
    """Encoder features ``(B, F <= 512)`` -> zero-padded ``(B, 8, 8, 8)`` conditioning planes."""
    size = CONDITION_CHANNELS * 64
    if features.shape[1] > size:
        raise ValueError(f"at most {size} conditioning features fit in 8x8x8, got {features.shape[1]}")
    padded = F.pad(features, (0, size - features.shape[1]))
    return padded.reshape(features.shape[0], CONDITION_CHANNELS, 8, 8)


class Discriminator(nn.Module):
    """``(spectrogram (B, 1, R, R), features (B, F)) -> patch scores (B, 1, 8, 8)`` (linear)."""

    def __init__(self, resolution: int = 512, fmap_base: int = 16384, fmap_max: int = 256):
        super().__init__()
        sizes = [resolution // 2**i for i in range(n_stages(resolution) + 1)]
        widths = [stage_channels(size, fmap_base, fmap_max) for size in sizes]
        self.resolution = resolution
        self.input = EqualizedConv2d(1, widths[0], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(widths[i], widths[i + 1]) for i in range(len(widths) - 1))
        self.stddev = MinibatchStddev()
        self.conv1 = EqualizedConv2d(widths[-1] + 1, widths[-1], 3, padding=1)
        self.conv2 = EqualizedConv2d(widths[-1], widths[-1], 3, padding=1)
        self.head1 = EqualizedConv2d(widths[-1] + CONDITION_CHANNELS, widths[-1], 1)
        self.head2 = EqualizedConv2d(widths[-1], 1, 1)

    def forward(self, spectrogram: Tensor, features: Tensor) -> Tensor:
        x = leaky_relu(self.input(spectrogram))
        for block in self.blocks:
            x = block(x)
        x = leaky_relu(self.conv1(self.stddev(x)))
        x = leaky_relu(self.conv2(x))
        x = torch.cat([x, condition_planes(features).to(x.dtype)], dim=1)
        return self.head2(leaky_relu(self.head1(x)))
