"""How well can the demo's T60 be predicted at all from what a camera sees? (issue 4's "find out why")

The demo's figure of merit is the relative error of the single-number T60 (mean of the 500 Hz and
1 kHz octaves) on held-out synthetic rooms. This script fits regressors of log T60 on the training
split of an ``i2r synth`` set and reports the same error statistics on its test split, for
predictors that know more and more of the ground truth:

- the rows of :func:`i2r.data.synthetic.predictability.information_ceiling` (what ``i2r demo``'s
  report shows too): a constant (the training geometric mean); gradient-boosted trees
  (scikit-learn) on the training rooms' exact scene parameters, knowing room category and exact
  dimensions; + floor and ceiling materials; + the materials of the walls in view (the camera
  stands near the ``x = 0`` wall looking along +x, so ``wall_x0`` is never in view); + that hidden
  wall, i.e. everything Eyring's formula uses; and the perfect reader of the view, which knows
  Eyring's formula and the generator's priors and averages over what the hidden wall may be;
- ``pixels``: the same regressor on 16x16 RGB pixels plus the true 16x16 depth map;
- ``CNN``: the demo's own image encoder (ResNet-18 from random weights on 64 px RGB + the true
  depth map, as ``i2r demo`` feeds it) trained for ``--cnn-steps`` steps of batch 8 to regress
  the per-band log T60 directly, with an L1 loss: the best the demo's encoder can do in a
  budget of that many steps, with no GAN in the way (a demo step costs ~7x more than one of these);
- with ``--absorption-channel``, the CNN again with each pixel's true mid-band absorption
  coefficient as a fifth channel: what recognising the materials would be worth;
- with ``--physics-reader``, a reader built like Eyring's formula instead of learned end to end:
  the depth-weighted mean absorption of the room surfaces in view (of the whole view and of its
  upper and lower halves) and percentiles of the true depth, fed to the same trees; once with
  each pixel's true absorption, once with absorption and surface mask read per pixel by a small
  fully convolutional net trained on the renderer's maps (dense supervision, as the demo's depth
  network gets): does a structured reader with the renderer's help read the materials in time?

The perfect reader is the information limit of the photo: no image-to-IR model can be expected to
do better on these rooms (up to windows on the hidden wall, which it takes as none). The trees show how far learning the law from the training rooms gets even with every
parameter read perfectly; ground truth is the manifest's Eyring T60.

    .venv/bin/python benchmarks/bench_demo_ceiling.py --data ~/.cache/i2r/synth-n1000-seed0
    .venv/bin/python benchmarks/bench_demo_ceiling.py --data DIR --no-pixels --cnn-steps 0  # seconds
    .venv/bin/python benchmarks/bench_demo_ceiling.py --data DIR --no-pixels --absorption-channel
    .venv/bin/python benchmarks/bench_demo_ceiling.py --data DIR --no-pixels --cnn-steps 0 --physics-reader 3000
    .venv/bin/python benchmarks/bench_demo_ceiling.py --data ~/.cache/i2r/synth-n4000-seed0 --no-pixels \
        --cnn-steps 1500 --train-rooms 800   # then without --train-rooms: 800 vs 3,200 training rooms
    .venv/bin/python benchmarks/bench_demo_ceiling.py --data DIR --no-pixels --image-size 128  # vs the preset's 64 px
    .venv/bin/python benchmarks/bench_demo_ceiling.py --data DIR --no-pixels --unshuffle  # 128 px seen at 64 px's cost
    .venv/bin/python benchmarks/bench_demo_ceiling.py --data ~/.cache/i2r/synth-n4000-seed0 --no-pixels \
        --cnn-steps 16000 --report-at 1000,2000,4000,8000,12000   # a learning curve: does more compute help?

With ``--save-encoder PATH`` the regressor's ResNet is saved as a Places365-style file: an
encoder that already reads T60 (trained on other rooms, e.g. seed 1's), to start the demo's
recipe from with ``i2r train --places-weights PATH`` (the README's "encoder that already sees").
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from i2r.data.synthetic.predictability import (MID_BANDS, error_stats, fit_and_score, information_ceiling,
                                               single_number_t60)


def pixel_features(data: Path, manifest: pd.DataFrame, size: int = 16) -> np.ndarray:
    """Each scene's image (RGB) and true depth map, area-averaged to ``size`` x ``size``, flattened."""
    from PIL import Image

    rgb = np.stack([np.asarray(Image.open(data / image).convert("RGB").resize((size, size), Image.BOX), dtype=float)
                    for image in manifest["image"]])
    return np.concatenate([rgb.reshape(len(rgb), -1) / 255.0,
                           np.log1p(depth_metres(data, manifest, size).reshape(len(rgb), -1))], axis=1)


def depth_metres(data: Path, manifest: pd.DataFrame, size: int) -> np.ndarray:
    """Each manifest row's true depth map in metres (the PNG times its ``depth_scale_m``),
    area-averaged to ``size`` x ``size`` px: ``(n_rows, size, size)`` float32."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(np.asarray(Image.open(data / path), dtype=np.float32)
                                                * float(scale)).resize((size, size), Image.BOX))
                     for path, scale in zip(manifest["depth"], manifest["depth_scale_m"])])


def absorption_maps(manifest: pd.DataFrame, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of each manifest row's image at ``size`` px, the mean 500 Hz / 1 kHz absorption
    coefficient of the room surface it shows (0 for furniture and sky; doors and windows count as
    their wall), and whether it shows a room surface (1.0) or furniture or sky (0.0), both
    ``(n_rows, size, size)`` float32: what the renderer knows and a photo only hints at."""
    from i2r.data.synthetic.dataset import draw_example_scene
    from i2r.data.synthetic.materials import absorption
    from i2r.data.synthetic.render import RenderConfig, surface_ids
    from i2r.data.synthetic.scene import SURFACES

    maps = np.zeros((len(manifest), size, size), dtype=np.float32)
    surface = np.zeros_like(maps)
    for row, (seed, index) in enumerate(zip(manifest["seed"], manifest["index"])):
        scene = draw_example_scene(int(seed), int(index))
        ids = surface_ids(scene, RenderConfig(size=size))
        surface[row] = (ids >= 0) & (ids < len(SURFACES))
        for name, material in scene.materials.items():
            maps[row][ids == SURFACES.index(name)] = absorption(material)[2:4].mean()
    return maps, surface


def view_features(alpha: np.ndarray, surface: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """What Eyring's formula needs, as a view shows it: per room, the mean absorption of the room
    surfaces in view weighted by their depth squared (a pixel's patch of surface grows with the
    square of its distance), over the whole view and its upper and lower halves (ceiling and
    floor), as ``log(-log(1 - alpha))``; the 10/50/90/99th percentiles of log depth (room size);
    the share of pixels that show room surfaces. ``alpha``, ``surface`` (0-1) and ``depth_m``
    (metres) ``(n, S, S)`` -> ``(n, 8)``."""
    weight = depth_m ** 2 * surface
    half = alpha.shape[1] // 2

    def eyring_term(rows: slice) -> np.ndarray:
        mean = (weight[:, rows] * alpha[:, rows]).sum((1, 2)) / np.maximum(weight[:, rows].sum((1, 2)), 1e-9)
        return np.log(-np.log1p(-np.clip(mean, 1e-3, 0.95)))

    size = np.log(np.percentile(depth_m.reshape(len(depth_m), -1), [10, 50, 90, 99], axis=1)).T
    terms = [eyring_term(slice(None)), eyring_term(slice(None, half)), eyring_term(slice(half, None))]
    return np.column_stack([size, *terms, surface.mean((1, 2))])


def learned_absorption(images: np.ndarray, depth: np.ndarray, alpha: np.ndarray, surface: np.ndarray,
                       train_rows: np.ndarray, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel absorption and room-surface probability of every room, ``(n, S, S)`` each, read
    by a small fully convolutional net (five 3x3 convolutions of 32 channels, dilated to a 33 px
    field) from RGB ``(n, 3, S, S)`` and the demo's depth channel ``(n, 1, S, S)``, trained for
    ``steps`` steps of 16 rooms on ``train_rows``' true maps: L1 on absorption over room surfaces,
    cross-entropy on the surface mask."""
    import torch

    torch.manual_seed(seed)
    layers, channels = [], 4
    for dilation in (1, 1, 2, 4, 8):
        layers += [torch.nn.Conv2d(channels, 32, 3, padding=dilation, dilation=dilation), torch.nn.ReLU()]
        channels = 32
    net = torch.nn.Sequential(*layers, torch.nn.Conv2d(32, 2, 1))
    inputs = torch.from_numpy(np.concatenate([images, depth], axis=1)).float()
    target, mask = torch.from_numpy(alpha)[:, None], torch.from_numpy(surface)[:, None]
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = torch.from_numpy(rng.choice(train_rows, 16))
        out = net(inputs[batch])
        loss = (((torch.sigmoid(out[:, :1]) - target[batch]).abs() * mask[batch]).sum() / mask[batch].sum()
                + torch.nn.functional.binary_cross_entropy_with_logits(out[:, 1:], mask[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = torch.sigmoid(torch.cat([net(inputs[i: i + 100]) for i in range(0, len(inputs), 100)]))
    return out[:, 0].numpy(), out[:, 1].numpy()


def physics_reader_rows(data: Path, manifest: pd.DataFrame, steps: int, seed: int) -> Iterator[tuple[str, dict]]:
    """``(predictor, error statistics)`` of :func:`view_features` + trees with the true
    absorption map, then with :func:`learned_absorption`'s after ``steps`` steps (and its
    per-pixel absorption error on the test rooms' surfaces)."""
    from i2r.models.image2reverb import ModelConfig

    size = ModelConfig.preset("small").image_size
    alpha, surface = absorption_maps(manifest, size)
    depth_m = depth_metres(data, manifest, size)
    t60 = single_number_t60(manifest)
    train, test = (manifest["split"] == "train").to_numpy(), (manifest["split"] == "test").to_numpy()
    yield "physics reader: true absorption + true depth", fit_and_score(
        view_features(alpha, surface, depth_m), t60, train, test, seed)
    images, depth = np.zeros((len(manifest), 3, size, size), np.float32), np.zeros((len(manifest), 1, size, size), np.float32)
    for split in ("train", "val", "test"):
        rows = np.flatnonzero((manifest["split"] == split).to_numpy())
        images[rows], depth[rows] = (views.numpy() for views in split_views(data, split, size))
    read_alpha, read_surface = learned_absorption(images, depth, alpha, surface, np.flatnonzero(train), steps, seed)
    error = np.abs(read_alpha - alpha)[test][surface[test] > 0].mean()
    yield (f"physics reader: absorption read per pixel ({steps} steps, L1 {error:.3f}) + true depth",
           fit_and_score(view_features(read_alpha, read_surface, depth_m), t60, train, test, seed))


def split_views(data: Path, split: str, size: int):
    """The images ``(n, 3, size, size)`` and true depth channels ``(n, 1, size, size)`` of a split,
    in manifest order, as the demo reads them (tensors; no IR or spectrogram decoded)."""
    import torch

    from i2r.data.datasets import PairedDataset

    pairs = PairedDataset(data, split, 32, size, check_files=False, cache=False)
    return (torch.stack([pairs.image(i) for i in range(len(pairs))]),
            torch.stack([pairs.depth(i) for i in range(len(pairs))]))


def cnn_predictions(data: Path, manifest: pd.DataFrame, steps: int, seed: int, with_absorption: bool = False,
                    train_rooms: int = 0, save_encoder: str = "", image_size: int = 0,
                    report_at: tuple[int, ...] = (), unshuffle: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Train the demo's encoder (+ a linear head) on the training split to regress log T60 per
    octave band; yield the test split's predicted single-number T60 (s), ``(n_test,)``. With
    ``with_absorption`` the encoder gets :func:`absorption_maps` as a fifth input channel (beside
    the true depth): how well it would read T60 if it recognised every surface's material.
    ``train_rooms`` > 0 trains on the first that many training rooms only (same test rooms).
    ``save_encoder``: write the trained ResNet there in the Places365 file layout, so that
    ``i2r train --places-weights`` starts from an encoder that already reads T60. ``image_size``:
    the encoder's input side in px (0: the small preset's 64). Yields ``(step, predictions)`` after
    each of ``report_at`` below ``steps`` and after ``steps``, as they come: a learning curve from
    one run. ``unshuffle``: the images are read at twice ``image_size`` and each 2x2 block of
    pixels becomes 12 channels of one (pixel unshuffle), so the ResNet works at ``image_size``'s
    cost but sees every pixel of the larger image (depth is averaged to ``image_size``)."""
    import torch

    from i2r.models.image2reverb import ModelConfig, SceneEncoder
    from i2r.models.resnet import ARCHITECTURES

    torch.manual_seed(seed)
    size = image_size or ModelConfig.preset("small").image_size
    bands = [column for column in manifest.columns if column.startswith("t60_") and column != "t60_s"]

    maps = torch.from_numpy(absorption_maps(manifest, size)[0])[:, None] if with_absorption else None

    def split(name: str):
        rows = (manifest["split"] == name).to_numpy()
        target = np.log(manifest.loc[rows, bands].to_numpy())
        images, depth = split_views(data, name, 2 * size if unshuffle else size)
        if unshuffle:
            depth = torch.nn.functional.avg_pool2d(depth, 2)
        # the extra channel rides with depth: SceneEncoder appends that after normalising RGB
        if maps is not None:
            depth = torch.cat([depth, maps[np.flatnonzero(rows)]], dim=1)
        return images, depth, torch.tensor(target, dtype=torch.float32)

    images, depth, target = split("train")
    if train_rooms:
        images, depth, target = images[:train_rooms], depth[:train_rooms], target[:train_rooms]
    encoder = unshuffled_scene_encoder() if unshuffle else SceneEncoder("resnet18", 365, with_depth=True)
    if with_absorption:
        encoder.resnet = ARCHITECTURES["resnet18"](in_channels=encoder.resnet.conv1.in_channels + 1, num_classes=365)
    head = torch.nn.Linear(365, len(bands))
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)
    test_images, test_depth, _ = split("test")

    def predict() -> np.ndarray:
        encoder.eval()
        with torch.no_grad():
            predicted = torch.exp(head(encoder(test_images, test_depth))).numpy()
        encoder.train()
        return predicted[:, [bands.index(band) for band in MID_BANDS]].mean(axis=1)

    for step in range(1, steps + 1):
        batch = torch.randint(0, len(images), (8,))
        loss = (head(encoder(images[batch], depth[batch])) - target[batch]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in report_at or step == steps:
            yield step, predict()
    if save_encoder:
        from i2r.files import atomic_torch_save

        atomic_torch_save({"state_dict": encoder.resnet.state_dict()}, save_encoder)


def unshuffled_scene_encoder():
    """:class:`i2r.models.image2reverb.SceneEncoder` (ResNet-18, 365 features, with depth) for
    images ``(B, 3, 2H, 2W)`` and depth ``(B, 1, H, W)``: RGB normalised, then pixel-unshuffled
    to ``(B, 12, H, W)``, so the network runs at ``H`` x ``W``."""
    import torch

    from i2r.models.image2reverb import SceneEncoder
    from i2r.models.resnet import ARCHITECTURES

    class Unshuffled(SceneEncoder):
        def forward(self, images, depth=None):
            x = torch.nn.functional.pixel_unshuffle((images - self.mean) / self.std, 2)
            return self.resnet(torch.cat([x, depth.to(x.dtype)], dim=1))

    encoder = Unshuffled("resnet18", 365, with_depth=True)
    encoder.resnet = ARCHITECTURES["resnet18"](in_channels=13, num_classes=365)
    return encoder


def step_list(text: str) -> tuple[int, ...]:
    """``"1000,4000"`` -> ``(1000, 4000)``; argparse turns the ValueError into an error line."""
    steps = tuple(int(part) for part in text.split(","))
    if any(step <= 0 for step in steps):
        raise ValueError(text)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an `i2r synth` folder (manifest.csv with train/test splits)")
    parser.add_argument("--no-pixels", action="store_true", help="skip the pixel regressor (reads every image)")
    parser.add_argument("--cnn-steps", type=int, default=1200,
                        help="training steps of the CNN regressor (0: skip it); default %(default)s")
    parser.add_argument("--absorption-channel", action="store_true",
                        help="also train the CNN with each pixel's true absorption as an input channel")
    parser.add_argument("--train-rooms", type=int, default=0,
                        help="train the CNN on the first N training rooms only (0: all): does more data help it?")
    parser.add_argument("--save-encoder", default="", metavar="PATH",
                        help="save the CNN's ResNet (RGB + depth, no absorption channel) in the Places365 file layout "
                             "for `i2r train --places-weights PATH`")
    parser.add_argument("--image-size", type=int, default=0,
                        help="the CNN's input side in px (0: the small preset's, 64); a multiple of 32")
    parser.add_argument("--report-at", type=step_list, default=(), metavar="N,N,...",
                        help="also score the CNN on the test rooms after these steps (a learning curve from one run)")
    parser.add_argument("--unshuffle", action="store_true",
                        help="read images at twice --image-size and pixel-unshuffle them to it: the finer "
                             "image's detail at the smaller size's cost")
    parser.add_argument("--physics-reader", type=int, default=0, metavar="STEPS",
                        help="also score a reader built like Eyring's formula (depth-weighted absorption in view + "
                             "depth), with true absorption and with absorption read per pixel by a small net "
                             "trained for STEPS steps on the renderer's maps (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.image_size < 0 or args.image_size % 32:
        parser.error(f"--image-size must be 0 (the preset's) or a multiple of 32, got {args.image_size}")
    if args.physics_reader < 0:
        parser.error(f"--physics-reader must be 0 (skip) or more steps, got {args.physics_reader}")
    if args.train_rooms < 0:
        parser.error(f"--train-rooms must be 0 (all) or more, got {args.train_rooms}")
    if args.save_encoder and not args.cnn_steps:
        parser.error("--save-encoder needs a CNN to save: --cnn-steps must be more than 0")
    if args.save_encoder and args.unshuffle:
        parser.error("--save-encoder saves a 4-channel ResNet for `i2r train`; --unshuffle's has 13")
    data = Path(args.data).expanduser()
    manifest = pd.read_csv(data / "manifest.csv")
    t60 = single_number_t60(manifest)
    train, test = (manifest["split"] == "train").to_numpy(), (manifest["split"] == "test").to_numpy()
    print(f"{data}: {train.sum()} training and {test.sum()} test scenes; single-number T60 = mean of "
          f"{' and '.join(MID_BANDS)} (manifest, Eyring)")
    print(f"{'predictor':60s} {'mean %':>8s} {'SD %':>7s} {'median|e| %':>12s} {'SD of log':>10s}")
    for row in information_ceiling(manifest, args.seed).to_dict("records"):
        report(row["predictor"], row)
    if not args.no_pixels:
        report("pixels (16x16 + depth)", fit_and_score(pixel_features(data, manifest), t60, train, test, args.seed))
    if args.cnn_steps:
        rooms = min(args.train_rooms or train.sum(), train.sum())
        from i2r.models.image2reverb import ModelConfig

        size = args.image_size or ModelConfig.preset("small").image_size
        curve = cnn_predictions(data, manifest, args.cnn_steps, args.seed, train_rooms=rooms,
                                save_encoder=args.save_encoder, image_size=size, report_at=args.report_at,
                                unshuffle=args.unshuffle)
        seen = f"{2 * size} px unshuffled to {size}" if args.unshuffle else f"{size} px"
        for step, predicted in curve:
            report(f"CNN ({step} steps, {rooms} training rooms, {seen})", error_stats(predicted, t60[test]))
        if args.absorption_channel:
            curve = cnn_predictions(data, manifest, args.cnn_steps, args.seed, with_absorption=True,
                                    train_rooms=rooms, image_size=size, report_at=args.report_at,
                                    unshuffle=args.unshuffle)
            for step, predicted in curve:
                report(f"CNN + true absorption per pixel ({step} steps, {rooms} rooms, {seen})",
                       error_stats(predicted, t60[test]))
    if args.physics_reader:
        for name, stats in physics_reader_rows(data, manifest, args.physics_reader, args.seed):
            report(name, stats)


def report(name: str, stats: dict) -> None:
    print(f"{name:60s} {stats['mean']:+8.1f} {stats['sd']:7.1f} {stats['median_abs']:12.1f} {stats['log_sd']:10.3f}", flush=True)


if __name__ == "__main__":
    main()
