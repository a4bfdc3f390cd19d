"""Networks of Image2Reverb (Singh et al., ICCV 2021) and loaders for their published weights.

``resnet`` (torchvision-named ResNet-18/50), ``monodepth`` (Monodepth2 with official key names),
``layers`` (ProGAN's equalised conv, PixelNorm, minibatch stddev), ``generator``,
``discriminator``, ``image2reverb`` (the wiring and :class:`ModelConfig`), ``weights``
(Places365 / Monodepth2 loaders) and ``losses`` (LSGAN + L1 + T60p).
"""

from i2r.models.image2reverb import Image2Reverb, ModelConfig, parse_depth_mode
from i2r.models.losses import LossWeights, discriminator_loss, generator_loss, spectrogram_t60p
from i2r.models.weights import load_monodepth, load_places365

__all__ = [
    "Image2Reverb",
    "LossWeights",
    "ModelConfig",
    "discriminator_loss",
    "generator_loss",
    "load_monodepth",
    "load_places365",
    "parse_depth_mode",
    "spectrogram_t60p",
]
