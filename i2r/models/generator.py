"""Image2Reverb's generator: 512-d latent -> log-magnitude spectrogram (paper Fig. 23, ProGAN).

Latent ``(B, 512)`` (365 encoder features + 147 Gaussian noise values) -> a 8x8-kernel conv
(padding 7) lifts 1x1 to 8x8 without activation; then one block per resolution 8, 16, ...,
``resolution`` of [3x3 conv, LReLU 0.2, PixelNorm] x 2 with nearest x2 upsampling between blocks;
then a 1x1 conv to one channel and tanh. Every conv has an equalised learning rate and no bias.
With ``prior`` (not in the paper) a fixed map is added before the tanh and the 1x1 conv starts at
zero, so an untrained generator makes ``tanh(prior)`` for every latent.
Each upsampling is folded into the next conv (an exact stride-2 transposed conv, 2-4x faster).
The paper's 512x512 generator has 13,687,840 weights (widths 256, 256, 256, 256, 128, 64, 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2r.models.layers import EqualizedConv2d, PixelNorm, inverse_rms, leaky_relu, n_stages, stage_channels


class GeneratorBlock(nn.Module):
    """[3x3 equalised conv, LReLU 0.2, PixelNorm] x 2: ``(B, C_in, H, W) -> (B, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = EqualizedConv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm = PixelNorm()

    def forward(self, x: Tensor, upsample: bool = False) -> Tensor:
        """``upsample``: nearest x2 first (folded into conv1, see ``forward_upsampled``)."""
        x = self.conv1.forward_upsampled(x) if upsample else self.conv1(x)
        return self._activate(self.conv2(self._activate(x)))

    def _activate(self, x: Tensor) -> Tensor:
        """LReLU 0.2 then PixelNorm; without autograd both run in place on the fresh conv output,
        which saves two passes over the largest tensors (512x512x32 at the paper's size)."""
        if torch.is_grad_enabled():
            return self.norm(leaky_relu(x))
        x = F.leaky_relu_(x, 0.2)
        return x.mul_(inverse_rms(x))


class Generator(nn.Module):
    """Latent ``(B, latent_dim)`` -> spectrogram ``(B, 1, resolution, resolution)`` in (-1, 1).

    ``resolution`` is a power of two from 32 to 512; widths follow
    :func:`i2r.models.layers.stage_channels` with ``fmap_base`` and ``fmap_max``. ``prior``: the
    buffer ``prior`` ``(1, 1, R, R)`` of pre-tanh values (zeros until the trainer sets it to the
    atanh of the mean normalised training spectrogram) is added to the output conv's, which starts
    at zero: the generator then learns each room's departure from a spectrogram that already
    decays, instead of first learning to decay from tanh(noise).
    """

    def __init__(self, resolution: int = 512, latent_dim: int = 512, fmap_base: int = 16384, fmap_max: int = 256,
                 prior: bool = False):
        super().__init__()
        sizes = [8 * 2**i for i in range(n_stages(resolution) + 1)]
        widths = [stage_channels(size, fmap_base, fmap_max) for size in sizes]
        self.resolution = resolution
        self.latent_dim = latent_dim
        self.input = EqualizedConv2d(latent_dim, widths[0], 8, padding=7, bias=False)
        self.blocks = nn.ModuleList(
            GeneratorBlock(widths[max(i - 1, 0)], widths[i]) for i in range(len(widths))
        )
        self.output = EqualizedConv2d(widths[-1], 1, 1, bias=False)
        self.register_buffer("prior", torch.zeros(1, 1, resolution, resolution) if prior else None)
        if prior:
            nn.init.zeros_(self.output.weight)

    def forward(self, latent: Tensor) -> Tensor:
        x = self.input(latent.reshape(latent.shape[0], self.latent_dim, 1, 1))
        for i, block in enumerate(self.blocks):
            x = block(x, upsample=i > 0)
        x = self.output(x)
        return (x if self.prior is None else x + self.prior).tanh()
