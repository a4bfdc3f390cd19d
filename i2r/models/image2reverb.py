"""Image2Reverb: scene encoder (+ Monodepth2 depth) -> conditional GAN over log-spectrograms.

Singh et al., "Image2Reverb: Cross-Modal Reverb Impulse Response Synthesis" (ICCV 2021), Fig. 23.
An image in [0, 1] is normalised as the Places365 network expects (ImageNet mean/std per RGB
channel); Monodepth2's disparity in [0, 1] is appended unscaled as a 4th channel (so the paper's
constant-depth steering values 0 and 0.5 mean what they meant there). A ResNet gives 365 features;
147 Gaussian noise values complete the 512-d latent; the generator makes a spectrogram in (-1, 1);
the discriminator scores (spectrogram, features) pairs on an 8x8 patch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2r.errors import UserError
from i2r.models.discriminator import Discriminator
from i2r.models.generator import Generator
from i2r.models.layers import n_stages
from i2r.models.monodepth import Monodepth2
from i2r.models.resnet import ARCHITECTURES
from i2r.models.weights import load_monodepth, load_places365

# ImageNet statistics of [0, 1] RGB, which the Places365 ResNets were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEPTH_MODES_HELP = "auto (Monodepth2), none (3-channel encoder), or a constant disparity in [0, 1] such as 0 or 0.5"


@dataclass
class ModelConfig:
    """Everything that fixes the model's shapes; saved with every checkpoint.

    ``depth_mode``: ``"auto"`` (Monodepth2's estimate), ``"none"`` (no depth channel: a
    3-channel encoder, the paper's "no depth" ablation) or a constant disparity such as ``"0"`` or
    ``"0.5"`` (the paper's depth steering). Widths follow ProGAN's ``min(fmap_max, fmap_base / res)``.
    ``feature_norm``: ``"none"`` (the paper: the encoder's outputs as they are) or ``"batch"`` (each
    feature standardised across the batch, see :class:`SceneEncoder`). ``spectrogram_prior``:
    ``"none"`` (the paper) or ``"mean"`` (the generator starts at the training spectrograms' mean,
    see :class:`i2r.models.generator.Generator`). Checkpoints written before these two fields
    existed load with their defaults, which is what those models were.
    """

    name: str = "paper"
    resolution: int = 512
    encoder_arch: str = "resnet50"
    image_size: int = 224
    depth_mode: str = "auto"
    n_features: int = 365
    latent_dim: int = 512
    g_fmap_base: int = 16384
    g_fmap_max: int = 256
    d_fmap_base: int = 16384
    d_fmap_max: int = 256
    feature_norm: str = "none"
    spectrogram_prior: str = "none"

    def __post_init__(self):
        try:
            n_stages(self.resolution)
        except ValueError as exc:
            raise UserError(f"model config: {exc}") from None
        if self.encoder_arch not in ARCHITECTURES:
            raise UserError(f"model config: encoder_arch must be one of {sorted(ARCHITECTURES)}, got {self.encoder_arch!r}")
        if self.image_size < 32 or self.image_size % 32:
            raise UserError(f"model config: image_size must be a multiple of 32, got {self.image_size}")
        if not 0 < self.n_features < self.latent_dim:
            raise UserError(f"model config: need 0 < n_features < latent_dim, got {self.n_features}, {self.latent_dim}")
        parse_depth_mode(self.depth_mode)
        for name, choices in (("feature_norm", ("none", "batch")), ("spectrogram_prior", ("none", "mean"))):
            if getattr(self, name) not in choices:
                raise UserError(f"model config: {name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        if self.depth_mode != "none" and self.image_size < 64:
            # Monodepth2's deepest features are 1/32 of the image and its decoder reflection-pads them
            raise UserError(f"model config: the depth network needs image_size of at least 64, got {self.image_size}")

    @classmethod
    def preset(cls, name: str) -> "ModelConfig":
        """``"paper"`` (512x512, ResNet-50 at 224 px, the paper's widths) or ``"small"``.

        ``small`` is the CPU demo model (``i2r demo``): 128x128 spectrograms, a ResNet-18 encoder
        and Monodepth2 at 64 px, and slim G/D (widths 64, 64, 32, 16, 8). A training step costs
        about 5 GFLOP per example, 4x less than at 128 px with widths 128, 128, 64, 32, 16 (1.4
        vs 6.8 s per batch of 8 on one loaded CPU core), so ten minutes on a CPU core give about
        600 steps instead of about 100. 128x128 keeps T30 measurable: inverting the true 128x128
        spectrograms of synthetic rooms gives T30 within 2 % (SD) of the true IRs' (64x64: 3 %).
        64 px images cost the material that moves the synthetic rooms' T60 most: an acoustic-tile
        ceiling is told from plaster 82 % of the time at 64 px, 94 % at 128 px
        (``benchmarks/bench_material_legibility.py``; the README says what that costs).
        """
        if name == "paper":
            return cls()
        if name == "small":
            return cls(name="small", resolution=128, encoder_arch="resnet18", image_size=64,
                       g_fmap_base=1024, g_fmap_max=64, d_fmap_base=1024, d_fmap_max=64,
                       feature_norm="batch", spectrogram_prior="mean")
        raise UserError(f"unknown model preset {name!r}; choose 'small' or 'paper'")

    @property
    def noise_dim(self) -> int:
        """Number of Gaussian noise values in the latent (147 for the paper)."""
        return self.latent_dim - self.n_features

    def to_dict(self) -> dict:
        """Plain dict of the fields (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "checkpoint") -> "ModelConfig":
        """Rebuild from :meth:`to_dict`; unknown or mistyped fields raise :class:`UserError`."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UserError(f"{source}: unknown model config field(s) {unknown}")
        for key, value in data.items():
            expected = str if known[key].type == "str" else int
            if not isinstance(value, expected) or isinstance(value, bool):
                raise UserError(f"{source}: model config field {key!r} should be {expected.__name__}, got {value!r}")
        return cls(**data)


def parse_depth_mode(mode: str | float) -> str | float:
    """``"auto"`` / ``"none"`` stay strings; a number (``"0"``, ``"0.5"``, 0.5) becomes a float in [0, 1]."""
    if mode in ("auto", "none"):
        return mode
    try:
        value = float(mode)
    except (TypeError, ValueError):
        raise UserError(f"depth mode {mode!r} is not {DEPTH_MODES_HELP}") from None
    if not 0.0 <= value <= 1.0:
        raise UserError(f"constant depth {value} is outside [0, 1] (Monodepth2 disparities are sigmoids)")
    return value


class SceneEncoder(nn.Module):
    """Images ``(B, 3, H, W)`` in [0, 1] (+ depth ``(B, 1, H, W)``) -> features ``(B, n_features)``.

    RGB is normalised with ImageNet's mean/std (what the Places365 weights expect); the depth
    channel is appended after that, unscaled. ``resnet`` holds the torchvision-named network that
    :func:`i2r.models.weights.load_places365` fills. With ``standardize`` each feature is then
    standardised across the batch (BatchNorm without scale or shift; running statistics at
    inference and for a training batch of one, which has no spread): what tells rooms apart is
    the features' spread, and a from-scratch encoder trained through the GAN grew a common part
    that drowned it (README, "The generator hardly heard the encoder").
    """

    def __init__(self, arch: str = "resnet50", n_features: int = 365, with_depth: bool = True,
                 standardize: bool = False):
        super().__init__()
        self.with_depth = with_depth
        self.resnet = ARCHITECTURES[arch](in_channels=4 if with_depth else 3, num_classes=n_features)
        self.standardize = nn.BatchNorm1d(n_features, affine=False) if standardize else None
        # Not persistent: constants of the method, not learned state, so checkpoints hold only weights.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor, depth: Tensor | None = None) -> Tensor:
        x = (images - self.mean) / self.std
        if self.with_depth:
            x = torch.cat([x, depth.to(x.dtype)], dim=1)
        features = self.resnet(x)
        norm = self.standardize
        if norm is None:
            return features
        if self.training and features.shape[0] == 1:
            return F.batch_norm(features, norm.running_mean, norm.running_var, training=False, eps=norm.eps)
        return norm(features)


class Image2Reverb(nn.Module):
    """The whole model: ``encoder`` (+ ``depth``), ``generator``, ``discriminator``.

    The encoder's optimiser covers ``encoder`` and ``depth`` (as in the original), G's
    ``generator`` and D's ``discriminator``. ``depth`` is ``None`` for ``depth_mode="none"``.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        with_depth = self.config.depth_mode != "none"
        self.encoder = SceneEncoder(self.config.encoder_arch, self.config.n_features, with_depth,
                                    standardize=self.config.feature_norm == "batch")
        self.depth = Monodepth2() if with_depth else None
        self.generator = Generator(self.config.resolution, self.config.latent_dim,
                                   self.config.g_fmap_base, self.config.g_fmap_max,
                                   prior=self.config.spectrogram_prior == "mean")
        self.discriminator = Discriminator(self.config.resolution, self.config.d_fmap_base, self.config.d_fmap_max)

    def resolve_depth_mode(self, depth_mode: str | float | None = None) -> str | float:
        """The effective depth mode (``None`` = the config's), checked against this model.

        A model built with a depth channel needs one ("auto" or a constant); a model built
        without (``depth_mode="none"``) cannot take one. Raises :class:`UserError` otherwise.
        """
        mode = parse_depth_mode(self.config.depth_mode if depth_mode is None else depth_mode)
        if (mode == "none") != (self.depth is None):
            built = "without" if self.depth is None else "with"
            raise UserError(f"depth mode {mode!r} does not fit this model, which was built {built} a depth "
                            f"channel (its depth_mode is {self.config.depth_mode!r})")
        return mode

    def estimate_depth(self, images: Tensor, depth_mode: str | float | None = None) -> Tensor | None:
        """Depth channel ``(B, 1, H, W)`` in [0, 1] for ``images`` ``(B, 3, H, W)`` in [0, 1], or None.

        ``depth_mode`` overrides the config's (``"auto"``, a constant, or ``"none"``), see
        :meth:`resolve_depth_mode`.
        """
        mode = self.resolve_depth_mode(depth_mode)
        if mode == "none":
            return None
        if mode == "auto":
            return _depth_at_any_size(self.depth, images)
        return images.new_full((images.shape[0], 1, images.shape[2], images.shape[3]), mode)

    def encode(self, images: Tensor, depth_mode: str | float | None = None,
               detach_depth: bool = False) -> tuple[Tensor, Tensor | None]:
        """Images ``(B, 3, H, W)`` in [0, 1] -> (features ``(B, 365)``, depth ``(B, 1, H, W)`` or None).

        ``detach_depth``: the encoder sees the depth map as a constant input, so no gradient of
        the features reaches the depth network (which then learns only from its own loss)."""
        depth = self.estimate_depth(images, depth_mode)
        return self.encoder(images, depth.detach() if detach_depth and depth is not None else depth), depth

    def generate(self, features: Tensor, noise: Tensor | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Features ``(B, 365)`` + noise ``(B, 147)`` (drawn ~N(0, 1) from ``generator`` if not
        given) -> normalised log-spectrogram ``(B, 1, R, R)`` in (-1, 1)."""
        if noise is None:
            noise = torch.randn(features.shape[0], self.config.noise_dim, generator=generator,
                                device=features.device, dtype=features.dtype)
        return self.generator(torch.cat([features, noise.to(features.dtype)], dim=1))

    def discriminate(self, spectrogram: Tensor, features: Tensor) -> Tensor:
        """Spectrogram ``(B, 1, R, R)`` conditioned on features ``(B, 365)`` -> scores ``(B, 1, 8, 8)``."""
        return self.discriminator(spectrogram, features)

    def load_pretrained(self, places365: str | None = None, monodepth: str | None = None) -> None:
        """Fill the encoder from a Places365 ``.pth.tar`` and/or the depth net from a Monodepth2 folder."""
        if places365:
            load_places365(places365, self.encoder.resnet)
        if monodepth:
            if self.depth is None:
                raise UserError("Monodepth2 weights were given, but this model has no depth channel (depth_mode none)")
            load_monodepth(monodepth, self.depth)


def _depth_at_any_size(net: Monodepth2, images: Tensor) -> Tensor:
    """Run Monodepth2 (which needs multiples of 32) at the nearest such size, and resize back."""
    height, width = images.shape[-2:]
    size = (max(32, round(height / 32) * 32), max(32, round(width / 32) * 32))
    if size == (height, width):
        return net(images)
    disparity = net(F.interpolate(images, size=size, mode="bilinear", align_corners=False))
    return F.interpolate(disparity, size=(height, width), mode="bilinear", align_corners=False)
