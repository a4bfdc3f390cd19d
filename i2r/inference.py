"""Photo -> room impulse response with a trained Image2Reverb checkpoint (``i2r generate``).

:class:`Image2ReverbPipeline` runs, per batch: image loading (centre crop, resize to the model's
``image_size``, [0, 1] RGB), depth estimation, the scene encoder, the generator, de-normalisation
with the checkpoint's :class:`i2r.audio.SpectrogramNorm` and Griffin-Lim inversion
(:func:`i2r.audio.logspec_to_ir`) to 5.94 s at 22,050 Hz. The networks run under
``torch.inference_mode`` in channels-last layout and, with ``precision="bf16"``, bf16 autocast
(the default on CPUs with native bf16 and on CUDA); ``benchmarks/bench_generate.py`` measures
speed and the T30 change bf16 causes. :func:`generate_files` is the command's whole job.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from i2r.audio import IR_SAMPLES, SAMPLE_RATE, SpectrogramNorm, load_audio, logspec_to_ir, resample, save_wav, to_mono
from i2r.data import images as image_io
from i2r.devices import resolve_device
from i2r.errors import UserError
from i2r.files import atomic_savefig, atomic_write_text, file_sha256, journal_writer, read_journal
from i2r.models import Image2Reverb
from i2r.seeds import check_seed

STAGES = ("load", "depth", "encoder", "generator", "griffin_lim")


@dataclass
class GenerationResult:
    """One batch's outputs; ``irs`` ``(B, 130977)`` float32 at 22,050 Hz, ``logspecs`` raw log|X|
    ``(B, R, R)`` (frequency x frames), ``depth`` ``(B, H, W)`` in [0, 1] or None (depth mode
    "none"), ``features`` ``(B, 365)``, ``seconds``: wall time per stage (:data:`STAGES`) for
    the batch, and process CPU time under ``"cpu_<stage>"``."""

    irs: np.ndarray
    logspecs: np.ndarray
    depth: np.ndarray | None
    features: np.ndarray
    seconds: dict = field(default_factory=dict)


def default_precision(device: torch.device) -> str:
    """``"bf16"`` where it is native (CUDA with bf16, CPUs with AVX-512 BF16 / AMX), else ``"fp32"``."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # a torch build without the query
        native = False
    return "bf16" if native else "fp32"


def load_image(source, size: int) -> torch.Tensor:
    """A path or PIL image -> ``(3, size, size)`` float32 RGB in [0, 1], preprocessed exactly as
    the training images are (:mod:`i2r.data.images`: centre square crop, antialiased bicubic)."""
    if not isinstance(source, Image.Image):
        return image_io.load_image(source, size)
    array = np.asarray(image_io.center_crop_resize(source.convert("RGB"), size), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class Image2ReverbPipeline:
    """A trained model ready for batched inference (see the module docstring).

    The pipeline takes the model over: it is moved to ``device``, put in eval mode and
    channels-last layout, and with ``precision="bf16"`` its generator is stored in bf16.
    """

    def __init__(self, model: Image2Reverb, spec_norm: SpectrogramNorm, device: str | torch.device = "cpu",
                 precision: str | None = None, griffin_lim_iters: int = 8):
        self.device = torch.device(device)
        self.spec_norm = spec_norm
        self.precision = precision or default_precision(self.device)
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        if self.precision == "bf16":
            # G has no BatchNorm to keep in fp32, and stored bf16 weights spare autocast a cast of
            # its 13.7 M weights on every call (~15 % of G's CPU time at the paper's size).
            self.model.generator.to(torch.bfloat16)
        self.griffin_lim_iters = griffin_lim_iters

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu", **options) -> "Image2ReverbPipeline":
        """Load ``path`` with :func:`i2r.checkpoint.load_model` (``weights_only=True``; a bad file is a UserError)."""
        from i2r.checkpoint import load_model

        model, spec_norm, _ = load_model(path, device)
        return cls(model, spec_norm, device, **options)

    @property
    def config(self):
        """The model's :class:`i2r.models.ModelConfig`."""
        return self.model.config

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _timed(self, seconds: dict, stage: str, fn, *args):
        """Run ``fn(*args)``, adding its wall time to ``seconds[stage]`` and its process CPU time
        (all threads) to ``seconds["cpu_" + stage]``: on a shared machine CPU time is the
        load-independent figure."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
        seconds["cpu_" + stage] = seconds.get("cpu_" + stage, 0.0) + time.process_time() - start_cpu
        return out

    @torch.inference_mode()
    def generate(self, images, depth_mode: str | float | None = None, seed: int = 0) -> GenerationResult:
        """Images (paths, PIL images, or a tensor ``(B, 3, H, W)`` in [0, 1]) -> :class:`GenerationResult`.

        ``depth_mode`` overrides the checkpoint's (``auto``, ``none`` or a constant such as 0 /
        0.5); ``seed`` fixes the generator's 147 noise values (the same for every image) and
        Griffin-Lim's initial phase, so an image gives the same IR in any batch.
        """
        seconds: dict = {}
        batch = self._timed(seconds, "load", self._as_batch, images)
        with self._autocast():
            depth = self._timed(seconds, "depth", self.model.estimate_depth, batch, depth_mode)
            features = self._timed(seconds, "encoder", self.model.encoder, batch, depth)
            spectrogram = self._timed(seconds, "generator", self.model.generate, features, self._noise(seed, len(batch)))
        logspecs = self.spec_norm.denormalize(spectrogram.float().squeeze(1))
        irs = self._timed(seconds, "griffin_lim", self._invert, logspecs, seed)
        return GenerationResult(
            irs=irs.cpu().numpy(), logspecs=logspecs.cpu().numpy(),
            depth=None if depth is None else depth.float().squeeze(1).cpu().numpy(),
            features=features.float().cpu().numpy(), seconds=seconds,
        )

    def _noise(self, seed: int, batch_size: int) -> torch.Tensor:
        """One noise vector ``(147,)`` from ``seed``, shared by the batch: an image's IR then
        depends on the image and the seed only, not on which images share its batch."""
        generator = torch.Generator(device=self.device).manual_seed(seed)
        noise = torch.randn(1, self.config.noise_dim, generator=generator, device=self.device)
        return noise.expand(batch_size, -1)

    def _as_batch(self, images) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            batch = images
        else:
            batch = torch.stack([load_image(image, self.config.image_size) for image in images])
        return batch.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)

    def _invert(self, logspecs: torch.Tensor, seed: int) -> torch.Tensor:
        return logspec_to_ir(logspecs, n_iter=self.griffin_lim_iters, seed=seed)


# --- the `i2r generate` command's job ----------------------------------------------------------


@dataclass
class GenerateConfig:
    """What ``i2r generate`` was asked to do (written next to the outputs as generate.json)."""

    images: list
    checkpoint: str
    out: str
    depth_mode: str | None = None
    seed: int = 0
    apply: list = field(default_factory=list)
    batch_size: int = 8
    device: str = "auto"
    precision: str | None = None
    griffin_lim_iters: int = 8

    def __post_init__(self):
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.griffin_lim_iters < 0:
            raise UserError(f"--griffin-lim-iters must be 0 or more, got {self.griffin_lim_iters}")
        check_seed(self.seed)


@dataclass
class GenerateSummary:
    """Counts of a ``generate`` run; ``skipped`` lists ``(image, reason)``."""

    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def find_images(paths) -> list[Path]:
    """Files given by name, plus image files (sorted, recursive) inside given folders."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in image_io.IMAGE_EXTENSIONS))
        else:
            found.append(path)
    return found


def load_dry(path: str | os.PathLike) -> np.ndarray:
    """A dry signal for ``--apply``: mono (see :func:`i2r.audio.to_mono`) at 22,050 Hz, float64."""
    audio = load_audio(path)
    mono, _ = to_mono(audio.samples)
    if not np.any(mono):
        # a silent dry signal would give silent wet files that look like a result
        raise UserError(f"{path}: the dry signal is silent (all samples zero)")
    return resample(mono, audio.fs, SAMPLE_RATE)


def apply_ir(dry: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """FFT convolution ``dry * ir`` (length len(dry) + len(ir) - 1), scaled so |peak| = 0.99 at most.

    The wet signal keeps the dry signal's level where that does not clip; otherwise the whole
    signal is scaled down (never clipped), so the reverb's shape is untouched.
    """
    from scipy.signal import fftconvolve

    wet = fftconvolve(dry, ir.astype(np.float64))
    peak = float(np.max(np.abs(wet))) if wet.size else 0.0
    dry_peak = float(np.max(np.abs(dry))) if dry.size else 0.0
    target = min(0.99, dry_peak) if dry_peak > 0 else 0.99
    return wet * (target / peak) if peak > 0 else wet


def generate_files(config: GenerateConfig, progress: bool = False) -> GenerateSummary:
    """Run the pipeline over ``config.images`` in batches and write, per image ``<stem>``:
    ``<stem>.wav`` (mono float32, 22,050 Hz, 5.94 s, peak 1), ``<stem>_spectrogram.png``,
    ``<stem>_depth.png`` (unless depth mode "none"), per ``--apply`` file
    ``<stem>_<drystem>_wet.wav``, and ``generate.json`` (the config and what was written). A stem
    met twice (same name in two folders) gets ``_2``, ``_3``... rather than overwriting.
    Unreadable images are skipped and counted; a bad checkpoint, depth mode or dry file is a
    :class:`UserError` before any work. ``progress`` shows a tqdm bar on stderr.

    An interrupted run resumes: each finished batch is journalled in ``OUT/.generate-partial.jsonl``
    (headed by everything that decides the outputs), and the same command skips the batches whose
    files are all on disk. The journal goes once ``generate.json`` is written.
    """
    device = resolve_device(config.device)
    pipeline = Image2ReverbPipeline.from_checkpoint(config.checkpoint, device, precision=config.precision,
                                                    griffin_lim_iters=config.griffin_lim_iters)
    pipeline.model.resolve_depth_mode(config.depth_mode)
    dry = {Path(p).stem: load_dry(p) for p in config.apply}
    images = find_images(config.images)
    if not images:
        raise UserError(f"no images found in {', '.join(map(str, config.images))}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    identity = _identity(config, images)
    finished = _journalled_batches(out / _JOURNAL, identity)
    if finished:
        batches = -(-len(images) // config.batch_size)
        print(f"generate: resuming: {len(finished)} of {batches} batches already written in {out}", file=sys.stderr)
    summary, taken = GenerateSummary(), set()
    bar = tqdm(total=len(images), desc="generate", unit="image", file=sys.stderr, disable=not progress)
    with journal_writer(out / _JOURNAL, identity) as journal:
        for start in range(0, len(images), config.batch_size):
            batch = finished.get(start)
            if batch is None:
                batch = _generate_batch(pipeline, images[start:start + config.batch_size], config, out, dry, taken,
                                        summary)
            else:
                for _, reason in batch["skipped"]:  # said again: the exit status still counts them
                    tqdm.write(f"error: {reason}", file=sys.stderr)
            summary.written.extend(batch["written"])
            summary.skipped.extend(tuple(s) for s in batch["skipped"])
            taken.update(Path(w).stem for w in batch["written"])
            journal({"start": start} | batch)
            bar.update(min(config.batch_size, len(images) - start))
    bar.close()
    record = {"config": _config_record(config), "written": summary.written, "skipped": summary.skipped}
    atomic_write_text(out / "generate.json", json.dumps(record, indent=2) + "\n")
    (out / _JOURNAL).unlink()
    return summary


_JOURNAL = ".generate-partial.jsonl"


def _generate_batch(pipeline, paths, config: GenerateConfig, out: Path, dry: dict, taken: set,
                    summary: GenerateSummary) -> dict:
    """Generate and write one batch; ``{"written": [wav paths], "skipped": [(image, reason)]}``."""
    skipped: list = []
    loaded = _load_batch(paths, pipeline.config.image_size, skipped)
    written = []
    if loaded:
        images, tensors = zip(*loaded)
        result = pipeline.generate(torch.stack(tensors), config.depth_mode, config.seed)
        for key, value in result.seconds.items():
            summary.seconds[key] = summary.seconds.get(key, 0.0) + value
        for i, path in enumerate(images):
            written.append(_write_outputs(out, _unique_stem(path, taken), result, i, dry))
            taken.add(Path(written[-1]).stem)
    return {"written": written, "skipped": skipped}


def _identity(config: GenerateConfig, images: list[Path]) -> dict:
    """Everything that decides the files written: a journal made under another identity is not reused."""
    from i2r import __version__

    settings = {k: v for k, v in _config_record(config).items() if k not in ("images", "checkpoint", "out", "device")}
    return {"i2r": __version__, "checkpoint_sha256": file_sha256(config.checkpoint), "settings": settings,
            "images": [str(p) for p in images], "apply_sha256": [file_sha256(p) for p in config.apply]}


def _journalled_batches(path: Path, identity: dict) -> dict[int, dict]:
    """Batches (by first image's position) that an interrupted run of ``identity`` finished, with
    every file they wrote still on disk; a line cut off by the interruption is done again."""
    batches = {}
    for batch in read_journal(path, identity) if path.is_file() else []:
        if all(Path(w).is_file() for w in batch["written"]):
            batches[batch.pop("start")] = batch
    return batches


def _unique_stem(path: Path, taken: set) -> str:
    """The image's stem, suffixed ``_2``, ``_3``... when an earlier image had the stem (in ``taken``)."""
    stem, n = path.stem, 1
    while stem in taken:
        n += 1
        stem = f"{path.stem}_{n}"
    return stem


def _load_batch(paths, size: int, skipped: list) -> list:
    """``[(path, image tensor)]`` of the readable images; each other one goes to ``skipped``."""
    loaded = []
    for path in paths:
        try:
            loaded.append((path, load_image(path, size)))
        except UserError as exc:
            skipped.append((str(path), str(exc)))
            tqdm.write(f"error: {exc}", file=sys.stderr)  # above the progress bar, on a line of its own
    return loaded


def _write_outputs(out: Path, stem: str, result: GenerationResult, i: int, dry: dict) -> str:
    # Peak 1, the convention of the training IRs (i2r.audio.prepare_ir): the level carries no information.
    ir = result.irs[i] / max(float(np.max(np.abs(result.irs[i]))), 1e-12)
    wav = out / f"{stem}.wav"
    save_wav(wav, ir, SAMPLE_RATE)
    _save_png(out / f"{stem}_spectrogram.png", result.logspecs[i], f"{stem}: generated log|X|", spectrogram=True)
    if result.depth is not None:
        _save_png(out / f"{stem}_depth.png", result.depth[i], f"{stem}: depth (disparity)", spectrogram=False)
    for dry_stem, signal in dry.items():
        save_wav(out / f"{stem}_{dry_stem}_wet.wav", apply_ir(signal, ir), SAMPLE_RATE)
    return str(wav)


def _save_png(path: Path, image: np.ndarray, title: str, spectrogram: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    if spectrogram:
        extent = (0, IR_SAMPLES / SAMPLE_RATE, 0, SAMPLE_RATE / 2000)
        shown = ax.imshow(image * (20 / np.log(10)), origin="lower", aspect="auto", extent=extent, cmap="magma")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (kHz)")
        fig.colorbar(shown, ax=ax, label="dB")
    else:
        shown = ax.imshow(image, cmap="viridis", vmin=0, vmax=1)
        ax.set_axis_off()
        fig.colorbar(shown, ax=ax, label="disparity (near = 1)")
    ax.set_title(title, fontsize=9)
    atomic_savefig(fig, path, bbox_inches="tight")
    plt.close(fig)


def _config_record(config: GenerateConfig) -> dict:
    return {k: (list(map(str, v)) if isinstance(v, list) else v) for k, v in asdict(config).items()}
