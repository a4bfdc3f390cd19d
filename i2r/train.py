"""The Image2Reverb trainer, in one file to read top to bottom (in the manner of nanoGPT's train.py).

Singh et al., "Image2Reverb" (ICCV 2021), Sec. 3 and Table 2: a conditional GAN whose generator
gets LSGAN + 100 * L1 + 100 * |relative T60p error|, three Adam optimisers (G 4e-4, D 2e-4,
encoder and depth 1e-5; betas (0, 0.99), eps 1e-8). Unlike the original, the generator's
adversarial term is not detached and the T60p term is differentiable (``i2r.acoustics.t60p``).

One process:   ``i2r train --data DIR --out RUN``
Many (DDP):    ``torchrun --nproc_per_node N -m i2r train --data DIR --out RUN``
               (NCCL on CUDA, gloo on CPU; ``--batch-size`` is per process).

Data parallelism averages the gradients of all ranks with one all-reduce per optimiser step
instead of wrapping modules in ``DistributedDataParallel``: a GAN step runs the discriminator
three times across two backward passes under three optimisers, which DDP's one-forward-one-
backward reducer handles only with ``find_unused_parameters`` (StyleGAN2-ADA trains the same way).
BatchNorm statistics follow rank 0, as under DDP's ``broadcast_buffers``.

``--resume`` continues exactly: RUN/last.pt holds the model, the optimisers, the AMP scaler, each
rank's RNG states and the position inside the epoch, and the data order is a function of
(seed, epoch), so the batches a killed run had not reached come in the same order.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from i2r.audio import SpectrogramNorm, fit_spectrogram_norm, mean_normalized_spectrogram
from i2r.checkpoint import capture_rng_state, check_same, load_checkpoint, restore_rng_state, save_checkpoint
from i2r.data.datasets import PairedDataset
from i2r.devices import resolve_device
from i2r.errors import UserError
from i2r.files import atomic_open, atomic_write_text
from i2r.models import Image2Reverb, ModelConfig
from i2r.models.losses import (LossWeights, discriminator_loss, generator_loss, spectrogram_decay_db,
                               spectrogram_t60p, t60p_relative_error)
from i2r.seeds import check_seed


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as RUN/config.json and inside every checkpoint."""

    data: str = ""  # a paired data set: manifest CSV folder or pix2pix layout (i2r.data)
    out: str = "runs/i2r"  # RUN folder: last.pt, config.json, metrics.csv, tb/
    preset: str = "small"  # model preset: "small" (CPU-friendly) or "paper"
    resolution: int = 0  # spectrogram side R overriding the preset's (0: the preset's)
    image_size: int = 0  # image side in pixels overriding the preset's (0: the preset's)
    max_steps: int = 0  # stop after this many optimiser steps (0: run all epochs)
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time in this call (0: no limit)
    epochs: int = 200  # the paper trained 200 epochs
    batch_size: int = 4  # per process
    lr_generator: float = 4e-4
    lr_discriminator: float = 2e-4
    lr_encoder: float = 1e-5  # encoder and depth network together, as in the original
    beta1: float = 0.0
    beta2: float = 0.99
    eps: float = 1e-8
    l1_weight: float = 100.0
    t60p_weight: float = 100.0
    depth_weight: float = 1.0  # weight of the depth-supervision L1 term
    no_depth: bool = False  # ablation: 3-channel encoder, no depth network
    no_t60p: bool = False  # ablation: drop the T60p term
    decay_weight: float = 0.0  # weight per dB of the decay-curve term (not in the paper; 0: none)
    no_places: bool = False  # ablation: encoder from random weights even if places_weights is set
    places_weights: str = ""  # resnet*_places365.pth.tar to start the encoder from
    monodepth_weights: str = ""  # folder with Monodepth2's encoder.pth and depth.pth
    depth_supervision: bool = False  # L1 between the depth net and the data set's true depth maps, its only teacher
    ema_beta: float = 0.0  # keep an exponential moving average of the encoder, depth and generator weights
    #   (ProGAN's G_ema) with this decay per step, saved in checkpoints and used for inference; 0: off
    amp: str = "bf16"  # CUDA only: "bf16", "fp16" (with a gradient scaler) or "off"
    device: str = "auto"  # "auto" (cuda if present), "cpu" or "cuda"
    threads: int = 0  # CPU threads per process (0: torch's default; 1 is far faster on shared cores)
    num_workers: int = 0
    checkpoint_every: int = 500  # steps between writes of RUN/last.pt (and one at the end)
    log_every: int = 10  # steps between metric rows
    val_every: int = 0  # steps between validation passes (0: once per epoch)
    val_rooms: int = 0  # validate on the validation split's first N pairs (0: all of them)
    select_best: bool = False  # validation also inverts and measures the generated IRs (as i2r eval does), and
    #   RUN/best.pt keeps the weights with the lowest median |T60 error|, an unmeasurable IR counting as infinitely wrong
    seed: int = 0
    resume: bool = False  # continue from RUN/last.pt
    stop_after_step: int = 0  # crash on purpose (SIGKILL, no checkpoint) after this step; tests --resume

    def __post_init__(self):
        if not 0.0 <= self.ema_beta < 1.0:
            raise UserError(f"ema_beta must be in [0, 1), got {self.ema_beta}")
        if self.amp not in ("bf16", "fp16", "off"):
            raise UserError(f"amp must be 'bf16', 'fp16' or 'off', got {self.amp!r}")
        for name in ("batch_size", "checkpoint_every", "log_every", "epochs"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_seed(self.seed)
        for name in ("val_every", "val_rooms", "max_steps", "threads", "num_workers", "stop_after_step"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be 0 or more, got {getattr(self, name)}")
        # `not x >= 0` also refuses NaN, which would otherwise train to a NaN checkpoint
        for name in ("max_minutes", "l1_weight", "t60p_weight", "depth_weight", "decay_weight"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise UserError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("lr_generator", "lr_discriminator", "lr_encoder", "eps"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise UserError(f"{name} must be a finite number > 0, got {value}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"{name} must be in [0, 1), got {getattr(self, name)}")


# Fields a resumed run may change; every other field must match the checkpoint's.
RESUMABLE_CHANGES = ("data", "out", "max_steps", "max_minutes", "epochs", "checkpoint_every", "log_every", "val_every",
                     "num_workers", "device", "threads", "resume", "stop_after_step")
METRIC_FIELDS = ("step", "epoch", "split", "loss_d", "loss_g", "g_adv", "g_l1", "g_t60p", "g_decay_db", "depth_l1",
                 "l1", "t60_error_pct", "t60_median_abs_pct", "t60_measurable", "s_per_step")


def train(cfg: TrainConfig) -> dict:
    """Train Image2Reverb as ``cfg`` says; return a summary (step, epoch, checkpoint,
    ``trained_seconds``: wall time over this call and the ones it resumed, last validation, and
    with ``cfg.select_best`` the ``best`` validation's step and score and its ``best_checkpoint``).

    Under ``torchrun`` every rank calls this; only rank 0 writes files. Raises
    :class:`UserError` for a missing or empty data set and for a checkpoint that does not fit.
    """
    # ---- processes, device, precision ----------------------------------------------------------
    rank, world, device = _init_distributed(cfg.device)
    master = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, rank, world, device, master)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, rank: int, world: int, device: torch.device, master: bool) -> dict:
    out = Path(cfg.out)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if device.type == "cuda" else None
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype else nullcontext
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    # ---- configuration, and the checkpoint to resume (checked before anything slow) ----------------
    model_config = _model_config(cfg)
    checkpoint_path = out / "last.pt"
    ckpt = load_checkpoint(checkpoint_path, map_location="cpu") if cfg.resume else None
    if ckpt is not None:
        _check_resumable(ckpt, cfg, model_config, world, checkpoint_path)
    ckpt_ema = ckpt.get("ema") if ckpt is not None else None
    best = ckpt.get("best") if ckpt is not None else None  # {"step", "score", "measurable"} of RUN/best.pt
    # wall time trained by the calls before this one (what a caller's overall time budget has spent)
    trained_before = float(ckpt.get("trained_seconds", 0.0)) if ckpt is not None else 0.0

    # ---- data ----------------------------------------------------------------------------------
    train_set = PairedDataset(cfg.data, "train", model_config.resolution, model_config.image_size)
    if len(train_set) == 0:
        raise UserError(f"{cfg.data}: the training split holds no pairs")
    if cfg.depth_supervision and (cfg.no_depth or train_set.records[0].depth_path is None):
        raise UserError(f"--depth-supervision needs a depth network (not --no-depth) and depth maps in the "
                        f"data set (a 'depth' column in {cfg.data}'s manifest)")
    val_set = _optional_split(cfg.data, "val", model_config, cfg.val_rooms)
    if cfg.select_best and val_set is None:
        raise UserError(f"selecting the best checkpoint needs a validation split in {cfg.data}")
    steps_per_epoch = math.ceil(math.ceil(len(train_set) / world) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    # ---- model: same seed on every rank, so every rank starts from the same weights --------------
    torch.manual_seed(cfg.seed)
    model = Image2Reverb(model_config)
    places = "" if cfg.no_places else cfg.places_weights
    model.load_pretrained(places365=places or None, monodepth=cfg.monodepth_weights or None)
    model.to(device).train()
    if master and not places and not cfg.no_places:
        tqdm.write("note: no --places-weights given: the encoder starts from random weights", file=sys.stderr)

    # ---- optimisers (Table 2) ------------------------------------------------------------------
    adam = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    encoder_params = list(model.encoder.parameters()) + (list(model.depth.parameters()) if model.depth else [])
    optimizers = {
        "generator": torch.optim.Adam(model.generator.parameters(), lr=cfg.lr_generator, **adam),
        "discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr_discriminator, **adam),
        "encoder": torch.optim.Adam(encoder_params, lr=cfg.lr_encoder, **adam),
    }

    # ---- fresh start or exact resume -----------------------------------------------------------
    step, epoch, batch_in_epoch = 0, 0, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        if ckpt["scaler"] is not None:
            scaler.load_state_dict(ckpt["scaler"])
        norm = SpectrogramNorm.from_dict(ckpt["spec_norm"])
        step, epoch, batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        restore_rng_state(ckpt["rng"][rank])
        del ckpt
    else:
        norm = _fit_norm(train_set, master, world)
        if master and model.generator.prior is not None:
            model.generator.prior.copy_(_spectrogram_prior(train_set, norm))
        _seed_rank(cfg.seed, rank)
    _broadcast_module(model, world)
    ema = WeightAverage(model, cfg.ema_beta, ckpt_ema) if cfg.ema_beta else None

    # ---- logging (rank 0) ----------------------------------------------------------------------
    if master:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(
            {"train": asdict(cfg), "model": asdict(model_config), "world_size": world}, indent=2) + "\n")
        log = _MetricLog(out, step if cfg.resume else 0)
    # A run bounded by time alone gets a bar of seconds of its budget: counting steps, it would
    # promise all the epochs' steps (hours) for a ten-minute run.
    by_time = cfg.max_minutes > 0 and not cfg.max_steps
    if by_time:
        progress = tqdm(total=max(1, round(cfg.max_minutes * 60)), disable=not master, file=sys.stderr,
                        desc="train (time budget)", dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} s [{elapsed}<{remaining}{postfix}]")
    else:
        progress = tqdm(total=total_steps, initial=step, disable=not master, file=sys.stderr, desc="train",
                        dynamic_ncols=True)
    val_metrics: dict = {}
    val_t60 = None  # the validation rooms' true T60 (s), measured at the first validation that needs it
    started = tick = time.perf_counter()
    logged_step = step
    done = step >= total_steps
    trained_seconds = trained_before  # over this call and the ones it resumed; saved with each checkpoint

    # ---- the loop ------------------------------------------------------------------------------
    while not done:
        loader = _epoch_loader(train_set, cfg, rank, world, epoch, skip_batches=batch_in_epoch)
        for batch in loader:
            losses = _train_step(model, batch, norm, optimizers, scaler, autocast, cfg, world, device)
            # fp16's scaler skips steps with overflowing gradients itself; anything else that is not
            # finite has already poisoned the weights, which must not overwrite the last checkpoint
            if not scaler.is_enabled() and not all(math.isfinite(v) for v in losses.values()):
                raise UserError(f"training diverged at step {step + 1} (losses {_format_losses(losses)}); "
                                f"{checkpoint_path} keeps the last finite weights: lower the learning rates "
                                f"or loss weights and --resume")
            if ema is not None:
                ema.update(model)
            step += 1
            batch_in_epoch += 1
            end_of_epoch = batch_in_epoch == steps_per_epoch
            if end_of_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
            progress.update(int(min(time.perf_counter() - started, progress.total)) - progress.n if by_time else 1)
            if master and (step % cfg.log_every == 0 or step == total_steps):
                seconds = (time.perf_counter() - tick) / (step - logged_step)
                tick, logged_step = time.perf_counter(), step
                log.write(step, epoch, "train", losses | {"s_per_step": seconds})
                progress.set_postfix(step=step, d=f"{losses['loss_d']:.3f}", g=f"{losses['loss_g']:.3f}")
            if val_set is not None and (step % cfg.val_every == 0 if cfg.val_every else end_of_epoch):
                if cfg.select_best and master and val_t60 is None:
                    val_t60 = _true_t60(val_set)
                val_metrics = _validate(model, val_set, norm, cfg, device, autocast, master, world, val_t60)
                if master:
                    log.write(step, epoch, "val", val_metrics)
                    measured = (f", median |T60 error| {val_metrics['t60_median_abs_pct']:.1f} % "
                                f"({val_metrics['t60_measurable']}/{val_metrics['n']} measurable)" if cfg.select_best else "")
                    tqdm.write(f"step {step} epoch {epoch}: val L1 {val_metrics['l1']:.4f}, "
                               f"T60p error {val_metrics['t60_error_pct']:.1f} %{measured}", file=sys.stderr)
                if master and cfg.select_best and _improves(val_metrics, best):
                    best = {"step": step, "score": val_metrics["t60_median_abs_pct"],
                            "measurable": val_metrics["t60_measurable"]}
                    _save_inference(out / "best.pt", cfg, model_config, norm, model, best)
            done = step == total_steps or _out_of_time(started, cfg.max_minutes, world, device)
            trained_seconds = trained_before + time.perf_counter() - started
            if step % cfg.checkpoint_every == 0 or done:
                _save(checkpoint_path, cfg, model_config, norm, model, optimizers, scaler, ema,
                      step, epoch, batch_in_epoch, world, master, best, trained_seconds)
            if step == cfg.stop_after_step:
                os.kill(os.getpid(), signal.SIGKILL)
            if done or end_of_epoch:
                break
    progress.close()
    if master:
        log.close()
    return {"rank": rank, "step": step, "epoch": epoch, "checkpoint": str(checkpoint_path),
            "trained_seconds": trained_seconds, "validation": val_metrics, "best": best,
            "best_checkpoint": str(out / "best.pt") if best is not None else None}


# ---- one optimisation step -----------------------------------------------------------------------


def _format_losses(losses: dict) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in losses.items())


def _train_step(model, batch, norm, optimizers, scaler, autocast, cfg, world, device) -> dict:
    """One GAN step in pix2pix's order: forward once, update D on the detached fake, then G + encoder.

    Returns the scalar losses as floats (this rank's).
    """
    images = batch["image"].to(device, non_blocking=True)
    real = norm.normalize(batch["logspec"].to(device, non_blocking=True).float())
    with autocast():
        # A supervised depth network learns depth from the true maps alone: the GAN's gradient,
        # reaching it through the encoder, made it collapse to a constant map (demo, measured)
        features, depth = model.encode(images, detach_depth=cfg.depth_supervision)
        fake = model.generate(features)

    # Discriminator: LSGAN on (real, features) vs (fake, features), no gradient into G or the encoder.
    with autocast():
        loss_d = discriminator_loss(model.discriminate(real, features.detach()),
                                    model.discriminate(fake.detach(), features.detach()))["total"]
    _optimizer_step(loss_d, [optimizers["discriminator"]], scaler, world)

    # Generator and encoder: adversarial (not detached) + L1 + T60p (+ depth supervision).
    model.discriminator.requires_grad_(False)
    with autocast():
        d_fake = model.discriminate(fake, features)
    t60_fake = t60_real = None
    if not cfg.no_t60p:  # both de-normalised to raw log|X| (the real one after the same clipping)
        t60_fake, t60_real = spectrogram_t60p(fake, norm), spectrogram_t60p(real, norm)
    decay_fake = decay_real = None
    if cfg.decay_weight:
        decay_fake, decay_real = spectrogram_decay_db(fake, norm), spectrogram_decay_db(real, norm)
    weights = LossWeights(l1=cfg.l1_weight, t60p=0.0 if cfg.no_t60p else cfg.t60p_weight, decay=cfg.decay_weight)
    terms = generator_loss(d_fake, fake, real, t60_fake, t60_real, weights, decay_fake, decay_real)
    loss_g = terms["total"]
    depth_l1 = torch.zeros((), device=device)
    if cfg.depth_supervision and depth is not None and "depth" in batch:
        depth_l1 = F.l1_loss(depth.float(), batch["depth"].to(device).float())  # both (B, 1, S, S)
        loss_g = loss_g + cfg.depth_weight * depth_l1
    _optimizer_step(loss_g, [optimizers["generator"], optimizers["encoder"]], scaler, world)
    model.discriminator.requires_grad_(True)
    scaler.update()
    _broadcast_buffers(model, world)
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "g_adv": terms["adversarial"].item(),
            "g_l1": terms["l1"].item(), "g_t60p": terms["t60p"].item(), "g_decay_db": terms["decay"].item(),
            "depth_l1": depth_l1.item()}


class WeightAverage:
    """Exponential moving average of the weights used at inference (encoder, depth net, generator).

    After every step, each parameter's average moves ``1 - beta`` of the way to its new value;
    buffers (BatchNorm statistics) are copied. A GAN generator's weights keep oscillating around
    the equilibrium, and in long runs the average of the last ~``1 / (1 - beta)`` steps generates
    better than single iterates (Karras et al. 2018, ProGAN's G_ema; Yazici et al. 2019). It is
    not a sure gain: the copied BatchNorm statistics belong to the live encoder, which the average
    lags, and in 600-step demo runs beta 0.99 was better at step 300 and worse at 600 (README).
    The discriminator only matters for training and is not averaged. ``state`` (what checkpoints store under
    ``"ema"``) is a partial state dict of the model: :func:`i2r.checkpoint.load_model` loads it
    over the trained weights.
    """

    MODULES = ("encoder.", "depth.", "generator.")

    def __init__(self, model: nn.Module, beta: float, state: dict | None = None):
        self.beta = beta
        live = {name: tensor for name, tensor in model.state_dict(keep_vars=True).items() if name.startswith(self.MODULES)}
        self.state = {name: tensor.detach().clone() for name, tensor in live.items()}
        if state is not None:
            if set(state) != set(self.state):
                raise UserError("the checkpoint's weight average does not fit this model (resume with the same preset)")
            for name, tensor in self.state.items():
                tensor.copy_(state[name])
        parameters = {name for name, _ in model.named_parameters()}
        self._pairs = {kind: ([self.state[n] for n in live if (n in parameters) == is_param],
                              [live[n].detach() for n in live if (n in parameters) == is_param])
                       for kind, is_param in (("parameters", True), ("buffers", False))}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average (call after every optimiser step)."""
        average, live = self._pairs["parameters"]
        torch._foreach_lerp_(average, live, 1.0 - self.beta)
        for average, live in zip(*self._pairs["buffers"]):
            average.copy_(live)


def _optimizer_step(loss, opts, scaler, world) -> None:
    """Backward, average gradients over ranks, step each optimiser (through the AMP scaler)."""
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    params = [p for opt in opts for group in opt.param_groups for p in group["params"]]
    _average_gradients(params, world)
    for opt in opts:
        scaler.step(opt)


# ---- validation ----------------------------------------------------------------------------------


@torch.no_grad()
def _validate(model, val_set, norm, cfg, device, autocast, master, world, true_t60=None) -> dict:
    """L1 (normalised spectrogram) and T60p error (%) on the validation split, on rank 0; with
    ``true_t60`` (the rooms' T60, s) also the measured T60 error of :func:`_measured_t60_error`.

    The generator's noise comes from a generator seeded with ``cfg.seed``: passes at different
    steps see the same noise (comparable numbers) and the training RNG streams are untouched.
    """
    metrics: dict = {}
    if master:
        model.eval()
        noise_rng = torch.Generator(device=device).manual_seed(cfg.seed)
        l1_sum, errors = 0.0, []
        # its own generator: iterating a loader draws a seed, from torch's global generator
        # (the training noise's) unless given one, and a pass would change the run it measures
        loader = DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers, generator=torch.Generator())
        for batch in loader:
            real = norm.normalize(batch["logspec"].to(device).float())
            with autocast():
                features, _ = model.encode(batch["image"].to(device))
                fake = model.generate(features, generator=noise_rng).float()
            l1_sum += (fake - real).abs().mean(dim=(1, 2, 3)).sum().item()
            errors.append(100.0 * t60p_relative_error(spectrogram_t60p(fake, norm), spectrogram_t60p(real, norm)).cpu())
        if true_t60 is not None:
            metrics = _measured_t60_error(model, norm, val_set, true_t60, cfg, device)
        model.train()
        errors = torch.cat(errors)
        metrics |= {"l1": l1_sum / len(val_set), "t60_error_pct": errors.mean().item(), "n": len(val_set)}
    if world > 1:
        dist.barrier()
    return metrics


def _improves(val_metrics: dict, best: dict | None) -> bool:
    """Is this validation better than ``best``: a lower median |T60 error|, or an equal one (when
    both are infinite: most IRs unmeasurable) with more measurable IRs?"""
    if best is None:
        return True
    return ((val_metrics["t60_median_abs_pct"], -val_metrics["t60_measurable"])
            < (best["score"], -best["measurable"]))


def _true_t60(val_set) -> np.ndarray:
    """T60 (s) of the validation rooms' true IRs as i2r eval defines it ``(n,)``; NaN where not measurable."""
    from i2r.audio import load_ir
    from i2r.evaluate import single_number_t60

    return single_number_t60(np.stack([load_ir(record.ir_path) for record in val_set.records]), "t30")[0]


def _measured_t60_error(model, norm, val_set, true_t60: np.ndarray, cfg, device) -> dict:
    """The validation rooms' IRs generated, inverted and measured exactly as i2r eval does
    (same noise and Griffin-Lim phase per room, the single-number T30 T60): the median absolute
    T60 error (%) over the rooms whose true T60 is measurable, a generated IR that cannot be
    measured counting as an infinite error (a checkpoint whose IRs are mostly unmeasurable is
    never the best), and how many were measurable."""
    from i2r.evaluate import generate_examples, percent_error, single_number_t60

    irs = []
    for start in range(0, len(val_set), cfg.batch_size):
        indices = list(range(start, min(start + cfg.batch_size, len(val_set))))
        images = torch.stack([val_set.image(i) for i in indices])
        irs.append(generate_examples(model, norm, images.to(device), indices, cfg.seed, None)[2])
    generated, _ = single_number_t60(np.concatenate(irs), "t30")
    known = np.isfinite(true_t60)
    errors = np.where(np.isfinite(generated), np.abs(percent_error(generated, true_t60)), np.inf)[known]
    return {"t60_median_abs_pct": float(np.median(errors)) if errors.size else math.inf,
            "t60_measurable": int(np.isfinite(generated[known]).sum())}


# ---- checkpoints ---------------------------------------------------------------------------------


def _save(path, cfg, model_config, norm, model, optimizers, scaler, ema, step, epoch, batch_in_epoch, world, master,
          best=None, trained_seconds=0.0):
    """Gather every rank's RNG state, then let rank 0 write RUN/last.pt atomically (with ``best``,
    the validation score of RUN/best.pt, so that a resumed run knows what to beat, and
    ``trained_seconds``, the wall time of all the calls that trained it)."""
    rng = [None] * world
    if world > 1:
        dist.all_gather_object(rng, capture_rng_state())
    else:
        rng[0] = capture_rng_state()
    if master:
        save_checkpoint({
            "config": asdict(cfg), "model_config": asdict(model_config), "spec_norm": norm.to_dict(),
            "model": model.state_dict(), "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "world_size": world, "rng": rng,
            "trained_seconds": trained_seconds,
        } | ({"ema": ema.state} if ema is not None else {}) | ({"best": best} if best is not None else {}), path)
    if world > 1:
        dist.barrier()


def _save_inference(path, cfg, model_config, norm, model, best) -> None:
    """Rank 0 writes what inference needs (:func:`i2r.checkpoint.load_model`), atomically: the
    weights that were validated (the step's own, not a weight average), the configs and the
    spectrogram normalisation, and ``best`` (its step and score)."""
    save_checkpoint({"config": asdict(cfg), "model_config": asdict(model_config), "spec_norm": norm.to_dict(),
                     "model": model.state_dict(), "step": best["step"], "best": best}, path)


def _check_resumable(ckpt, cfg, model_config, world, path) -> None:
    """A resumed run must be the same run: same model, same training settings, same world size."""
    check_same(ckpt["config"], asdict(cfg), "training config", path, ignore=RESUMABLE_CHANGES)
    try:
        check_same(ckpt["model_config"], asdict(model_config), "model config", path)
    except UserError as exc:  # e.g. a run of a preset that has changed since (README, the demo)
        raise UserError(f"{exc}; a run keeps its model: train into a new --out") from None
    if ckpt["world_size"] != world:
        raise UserError(f"{path}: written by {ckpt['world_size']} processes, resumed with {world}; "
                        f"resume with the same --nproc_per_node so data order and RNG streams match")


# ---- data ----------------------------------------------------------------------------------------


def _epoch_loader(dataset, cfg, rank, world, epoch, skip_batches) -> DataLoader:
    """This rank's batches of ``epoch``, without the first ``skip_batches`` (already trained on).

    The order is DistributedSampler's shuffle seeded by (seed, epoch) -- also with one process --
    so a resumed run sees the batches the killed one had not reached. The loader's own seeded
    generator keeps it from drawing on the global RNG that the training step uses.
    """
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    sampler.set_epoch(epoch)
    indices = list(sampler)[skip_batches * cfg.batch_size:]
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.num_workers,
                      generator=torch.Generator().manual_seed(cfg.seed + epoch), pin_memory=torch.cuda.is_available())


def _optional_split(root, split, model_config, limit: int = 0):
    """The ``split`` part of the data set (its first ``limit`` pairs when > 0), or None when the
    data set has none."""
    try:
        dataset = PairedDataset(root, split, model_config.resolution, model_config.image_size, limit=limit)
    except UserError:
        return None
    return dataset if len(dataset) else None


def _fit_norm(train_set, master, world) -> SpectrogramNorm:
    """Fit the spectrogram normalisation on the training split (rank 0) and share it with all ranks."""
    payload = [fit_spectrogram_norm(train_set).to_dict() if master else None]
    if world > 1:
        dist.broadcast_object_list(payload, src=0)
    return SpectrogramNorm.from_dict(payload[0])


def _spectrogram_prior(train_set, norm) -> torch.Tensor:
    """The generator's starting point ``(1, 1, R, R)``: the pre-tanh values whose tanh is the mean
    normalised training spectrogram (clamped short of +-1, where atanh is infinite)."""
    mean = torch.from_numpy(mean_normalized_spectrogram(train_set, norm)).float()
    return torch.atanh(mean.clamp(-0.99, 0.99)).view(1, 1, *mean.shape)


# ---- processes and state -------------------------------------------------------------------------


def _init_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device): from torchrun's environment when present, else one process."""
    requested = resolve_device(device_name)
    use_cuda = requested.type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, requested
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return dist.get_rank(), world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")


def _model_config(cfg: TrainConfig) -> ModelConfig:
    """The preset, with the run's resolution, image size and depth ablation applied."""
    config = ModelConfig.preset(cfg.preset)
    changes = {"resolution": cfg.resolution, "image_size": cfg.image_size}
    config = replace(config, **{k: v for k, v in changes.items() if v})
    return replace(config, depth_mode="none") if cfg.no_depth else config


def _out_of_time(started: float, max_minutes: float, world: int, device) -> bool:
    """Whether the time budget is spent; rank 0's clock decides for all, so all stop at one step."""
    if not max_minutes:
        return False
    flag = torch.tensor([time.perf_counter() - started > 60.0 * max_minutes], dtype=torch.int32, device=device)
    if world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def _seed_rank(seed: int, rank: int) -> None:
    """Different noise per rank, reproducible per (seed, rank)."""
    torch.manual_seed(seed * 1000 + rank + 1)
    np.random.seed(seed * 1000 + rank + 1)
    random.seed(seed * 1000 + rank + 1)


def _average_gradients(params, world: int) -> None:
    """Mean of every rank's gradients, in one flat all-reduce.

    Parameters without a gradient (outside this loss's graph, the same on every rank) stay
    without one, so Adam skips them as it would in a single process.
    """
    if world == 1:
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()


def _broadcast_module(model, world: int) -> None:
    """Every rank takes rank 0's parameters and buffers (after a resume, say)."""
    if world > 1:
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)


def _broadcast_buffers(model, world: int) -> None:
    """BatchNorm running statistics follow rank 0 (what DDP's broadcast_buffers does)."""
    if world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


class _MetricLog:
    """RUN/metrics.csv (appended, flushed per row) and TensorBoard scalars in RUN/tb, on rank 0.

    On resume, rows past the checkpoint's step (written by the killed run after its last
    checkpoint) are dropped, and TensorBoard purges the same steps.
    """

    def __init__(self, out: Path, resume_step: int):
        from torch.utils.tensorboard import SummaryWriter

        path = out / "metrics.csv"
        if resume_step and path.exists():
            with open(path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
            with atomic_open(path) as handle:
                writer = csv.DictWriter(handle, METRIC_FIELDS)
                writer.writeheader()
                writer.writerows(kept)
        new = not path.exists() or not resume_step
        self.handle = open(path, "w" if new else "a", newline="")
        self.csv = csv.DictWriter(self.handle, METRIC_FIELDS, extrasaction="ignore")
        if new:
            self.csv.writeheader()
        self.tb = SummaryWriter(str(out / "tb"), purge_step=resume_step or None)

    def write(self, step: int, epoch: int, split: str, values: dict) -> None:
        self.csv.writerow({"step": step, "epoch": epoch, "split": split} | values)
        self.handle.flush()
        for key, value in values.items():
            self.tb.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        self.handle.close()
        self.tb.close()
