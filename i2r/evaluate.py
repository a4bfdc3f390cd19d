"""Evaluation: checkpoint -> generated IRs for a paired test set -> metrics (Singh et al. 2021, Sec. 3.2).

The paper's headline number is a signed T60 error per example, ``(generated - true) / true * 100``.
Its MATLAB script was never published, so here the definition is explicit, selectable and written
into every output (``t60_definition``):

- ``t30`` (default): ISO 3382-1's single number, the mean of T30 (-5 to -35 dB fit to the
  Lundeby-compensated Schroeder curve) in the 500 Hz and 1 kHz octave bands;
- ``irstats``: the IoSR MATLAB toolbox ``irStats`` default the paper used, a fit from 0 to -60 dB
  of the same curve, same two bands;
- ``t60p``: the paper's differentiable proxy on the fullband spectrogram (``i2r.acoustics.t60p``).

An example whose ground truth cannot be measured honestly (too little dynamic range) is excluded
and counted with its reason, never averaged in. Under ``torchrun`` each process evaluates a shard
of the test set and rank 0 gathers and writes the results.

An interrupted evaluation resumes: every measured example is appended to a journal in the output
folder (``.eval-partial-*.jsonl``, headed by what decides the results: the checkpoint's bytes, the
test pairs, split, depth, T60 definition, seed), and a run with the same identity into the same
folder measures only the examples that are missing. The journals go once the results are written.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.fft import dct
from scipy.stats import spearmanr
from tqdm import tqdm

from i2r.acoustics import analyze, decay_time, t60p
from i2r.audio import HOP, SAMPLE_RATE, ir_to_logspec, save_wav
from i2r.devices import resolve_device
from i2r.errors import UserError
from i2r.files import atomic_open, atomic_savefig, atomic_write_text, file_sha256, journal_writer, read_journal
from i2r.seeds import check_seed

T60_DEFINITIONS = {
    "t30": "ISO 3382-1 single number: mean of T30 (-5 to -35 dB fit, Lundeby-compensated Schroeder "
           "decay) in the 500 Hz and 1 kHz octave bands",
    "irstats": "IoSR irStats default as used by the paper: line fit from 0 to -60 dB of the "
               "Schroeder decay, mean of the 500 Hz and 1 kHz octave bands",
    "t60p": "the paper's T60 proxy: fullband spectrogram energy, Schroeder integration, -5 to -25 dB "
            "crossings extrapolated to 60 dB",
}
MID_BANDS_HZ = (500.0, 1000.0)
BAND_METRICS = ("t30_s", "edt_s", "c50_db")
JOURNALS = ".eval-partial-*.jsonl"


@dataclass
class EvalConfig:
    """Settings of one evaluation run; written into ``metrics.json`` so every number is traceable."""

    checkpoint: str
    data: str
    out: str = "reports/eval"
    split: str = "test"
    depth: str | None = None
    t60_definition: str = "t30"
    batch_size: int = 8
    seed: int = 0
    save_wavs: bool = False
    baseline: str | None = None
    places_weights: str | None = None
    device: str = "auto"

    def __post_init__(self):
        if self.t60_definition not in T60_DEFINITIONS:
            raise UserError(f"unknown T60 definition {self.t60_definition!r}; choose one of {sorted(T60_DEFINITIONS)}")
        if self.baseline not in (None, "nn"):
            raise UserError(f"unknown baseline {self.baseline!r}; the only baseline is 'nn'")
        if self.places_weights and self.baseline != "nn":
            raise UserError("Places365 weights are only used by the NN baseline: add --baseline nn")
        if self.batch_size < 1:
            raise UserError("batch size must be at least 1")
        check_seed(self.seed)
        resolve_device(self.device)


# --- metrics of a pair of IRs --------------------------------------------------------------------


def single_number_t60(irs: np.ndarray, definition: str, fs: int = SAMPLE_RATE,
                      measured: dict | None = None) -> tuple[np.ndarray, list[str]]:
    """T60 in seconds of IRs ``(B, n_samples)`` under ``definition`` (see :data:`T60_DEFINITIONS`).

    ``measured`` (the :func:`_measure` of ``irs``) saves the ``t30`` definition a second analysis.
    Returns ``(t60 (B,), reasons)`` where ``reasons[i]`` explains a NaN (empty when finite).
    """
    irs = np.asarray(irs, dtype=np.float64)
    if definition == "t60p":
        logspec = ir_to_logspec(torch.as_tensor(irs))
        values = t60p(logspec.double(), frame_rate_hz=fs / HOP).numpy()
        return values, ["" if np.isfinite(v) else "T60p: no -25 dB crossing" for v in values]
    if definition == "t30":
        measured = measured if measured is not None else _measure(irs, fs)
        bands, per_band = measured["bands_hz"], measured["t30_s"]
        notes = [[w for w in item if _mentions_mid_band(w)] for item in measured["warnings"]]
    else:
        # irStats: plain Schroeder integral over the whole file, fit 0 to -60 dB, no range check.
        bands, per_band, _ = decay_time(irs, fs, bands="octave", start_db=0.0, end_db=-60.0,
                                        noise_handling=False, check_range=False)
        notes = [[] for _ in range(len(irs))]
    columns = [int(np.argmin(np.abs(np.asarray(bands) - hz))) for hz in MID_BANDS_HZ]
    values = np.asarray(per_band)[:, columns].mean(axis=1)
    reasons = ["" if np.isfinite(v) else ("; ".join(n) or "the 500 Hz / 1 kHz decay is not measurable")
               for v, n in zip(values, notes)]
    return values, reasons


def _mentions_mid_band(warning: str) -> bool:
    """Does an :func:`analyze` warning concern the bands of the single number (labels as it writes them)?"""
    return "500 Hz" in warning or "1 kHz" in warning


def log_spectral_distance_db(logspec_a: torch.Tensor, logspec_b: torch.Tensor) -> torch.Tensor:
    """Log-spectral distance in dB between natural-log magnitude spectrograms ``(..., F, T)``.

    ``LSD = mean_t sqrt(mean_f (20 log10|A| - 20 log10|B|)^2)`` (Gray & Markel 1976).
    """
    diff_db = (20.0 / np.log(10.0)) * (logspec_a - logspec_b)
    return diff_db.square().mean(dim=-2).sqrt().mean(dim=-1)


def _mel_filterbank(fs: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-style triangular mel filters ``(n_mels, n_fft // 2 + 1)``, area-normalised (librosa's default)."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        linear = f / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log_part, linear)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), (200.0 / 3) * m)

    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(fs / 2), n_mels + 2))
    freqs = np.linspace(0, fs / 2, n_fft // 2 + 1)
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def mfcc(irs: np.ndarray, fs: int = SAMPLE_RATE, n_mfcc: int = 20, n_fft: int = 2048,
         hop: int = 512, n_mels: int = 128) -> np.ndarray:
    """MFCCs ``(B, n_mfcc, n_frames)`` of signals ``(B, n_samples)`` with librosa's defaults.

    Power spectrogram (Hann, centred), Slaney mel filters, ``10 log10`` with an 80 dB top-down
    floor, DCT-II (orthonormal): what the original evaluation script computed with librosa.
    """
    x = torch.as_tensor(np.asarray(irs, dtype=np.float32))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True)
    power = spec.abs().square().numpy()
    mel = np.einsum("mf,bft->bmt", _mel_filterbank(fs, n_fft, n_mels), power)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0)
    return dct(db, type=2, axis=1, norm="ortho")[:, :n_mfcc]


def mfcc_spearman(irs_a: np.ndarray, irs_b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation ``(B,)`` between the flattened MFCCs of paired IRs ``(B, n)``."""
    a, b = mfcc(irs_a), mfcc(irs_b)
    return np.array([spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)])


def error_stats(errors_pct) -> dict:
    """Mean, SD (n - 1), median, IQR and median |error| of signed percentage errors (NaNs dropped)."""
    e = np.asarray([v for v in errors_pct if v is not None and np.isfinite(v)], dtype=np.float64)
    if e.size == 0:
        return {"n": 0, "mean": None, "sd": None, "median": None, "iqr": None, "median_abs": None}
    q1, q3 = np.percentile(e, [25, 75])
    return {"n": int(e.size), "mean": float(e.mean()), "sd": float(e.std(ddof=1)) if e.size > 1 else 0.0,
            "median": float(np.median(e)), "iqr": float(q3 - q1), "median_abs": float(np.median(np.abs(e)))}


def percent_error(generated: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Signed ``(generated - true) / true * 100``, NaN where either is not finite."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(generated) - np.asarray(true)) / np.asarray(true) * 100.0


# --- running an evaluation -----------------------------------------------------------------------


def _process_group(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, joined); joins the ``torchrun`` process group when launched under it
    (NCCL for a CUDA ``device``, else gloo).

    ``joined`` says this call created the group, so the caller must destroy it when done (a
    group that a caller such as the trainer opened is left to its owner).
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    joined = world > 1 and not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), joined
    return 0, 1, joined


def _gather(records: list, rank: int, world: int) -> list:
    """All ranks' records on rank 0 (others get an empty list), in dataset order."""
    if world == 1:
        return records
    import torch.distributed as dist

    gathered = [None] * world if rank == 0 else None
    dist.gather_object(records, gathered, dst=0)
    if rank != 0:
        return []
    return sorted((r for part in gathered for r in part), key=lambda r: r["index"])


def _example_seed(seed: int, index: int) -> int:
    """The random seed of data set example ``index`` in a run seeded ``seed``."""
    return seed * 1_000_003 + int(index)


def _example_noise(model, indices, seed: int, device) -> torch.Tensor:
    """Noise ``(B, 147)`` drawn per example from ``(seed, index)``: independent of batching and sharding."""
    rows = [torch.randn(model.config.noise_dim, generator=torch.Generator().manual_seed(_example_seed(seed, i)))
            for i in indices]
    return torch.stack(rows).to(device)


def generate_examples(model, norm, images: torch.Tensor, indices, seed: int, depth_mode):
    """Generate IRs for dataset examples ``indices`` from ``images`` ``(B, 3, H, W)`` in [0, 1].

    Each example's noise and Griffin-Lim starting phase come from ``(seed, index)``, so batching
    and ``torchrun`` sharding change the result only by the network's float rounding (about 1e-6
    relative), and a report can regenerate what an evaluation measured. Returns ``(output (B, 1, R, R) normalised, logspec
    (B, 1, R, R) raw log|X|, irs (B, 130977) float32 NumPy at 22,050 Hz, depth (B, 1, H, W) or None)``.
    """
    from i2r.audio import logspec_to_ir

    with torch.inference_mode():
        features, depth = model.encode(images, depth_mode)
        output = model.generate(features, _example_noise(model, indices, seed, images.device))
        logspec = norm.denormalize(output)
        spectrograms = logspec.squeeze(1).float().cpu()
        irs = np.stack([logspec_to_ir(spec, seed=_example_seed(seed, i)).numpy()
                        for spec, i in zip(spectrograms, indices)])
    return output, logspec, irs, depth


def _measure(irs: np.ndarray, fs: int = SAMPLE_RATE) -> dict:
    """Per-example acoustic parameters of IRs ``(B, n_samples)``, octave bands (ISO 3382-1)."""
    params = analyze(irs, fs, bands="octave")
    return {"bands_hz": params.bands_hz, "t30_s": params.t30_s, "edt_s": params.edt_s,
            "c50_db": params.c50_db, "drr_db": params.drr_db, "warnings": params.warnings}


def _batches(indices, size):
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def _evaluate_shard(model, norm, dataset, indices, config: EvalConfig, device, wav_dir: Path | None,
                    done: dict[int, dict], journal) -> list[dict]:
    """Generate and measure the examples ``indices`` of ``dataset`` not already in ``done`` (index ->
    record of an interrupted run), passing each batch's records to ``journal`` (the ``append`` of
    :func:`i2r.files.journal_writer`); returns one record per example of ``indices``, in their order."""
    depth_mode = model.resolve_depth_mode(config.depth)
    records = [done[i] for i in indices if i in done]
    journal(*records)  # this run's journal carries them on, should it be interrupted too
    todo = [i for i in indices if i not in done]
    progress = tqdm(total=len(indices), initial=len(records), desc="eval", unit="ex", disable=None, file=None)
    for batch in _batches(todo, config.batch_size):
        items = [dataset[i] for i in batch]
        images = torch.stack([item["image"] for item in items]).to(device)
        target = torch.stack([item["logspec"] for item in items]).to(device)
        output, logspec, irs_gen, _ = generate_examples(model, norm, images, batch, config.seed, depth_mode)
        irs_true = np.stack([np.asarray(item["ir"], dtype=np.float64) for item in items])
        true_m, gen_m = _measure(irs_true), _measure(irs_gen)
        t60_true, true_reasons = single_number_t60(irs_true, config.t60_definition, measured=true_m)
        t60_gen, gen_reasons = single_number_t60(irs_gen, config.t60_definition, measured=gen_m)
        lsd = log_spectral_distance_db(logspec.float(), target.float()).flatten(1).mean(1).cpu().numpy()
        l1 = (output.float() - norm.normalize(target).float()).abs().flatten(1).mean(1).cpu().numpy()
        rho = mfcc_spearman(irs_gen, irs_true)
        for k, (index, item) in enumerate(zip(batch, items)):
            record = {
                "index": int(index), "image": str(item["image_path"]), "ir_true": str(item["ir_path"]),
                "scene": item.get("scene", ""),
                "t60_true_s": float(t60_true[k]), "t60_generated_s": float(t60_gen[k]),
                "t60_error_pct": float(percent_error(t60_gen[k], t60_true[k])),
                "excluded_reason": true_reasons[k], "generated_reason": gen_reasons[k],
                "drr_true_db": float(true_m["drr_db"][k]), "drr_generated_db": float(gen_m["drr_db"][k]),
                "lsd_db": float(lsd[k]), "l1_spectrogram": float(l1[k]), "mfcc_spearman": float(rho[k]),
            }
            for key in BAND_METRICS:
                name, unit = key.rsplit("_", 1)
                for hz, t, g in zip(true_m["bands_hz"], true_m[key][k], gen_m[key][k]):
                    record[f"{name}_{hz:g}_true_{unit}"] = float(t)
                    record[f"{name}_{hz:g}_generated_{unit}"] = float(g)
            if wav_dir is not None:
                wav_path = wav_dir / f"{int(index):05d}_{Path(item['image_path']).stem}.wav"
                save_wav(wav_path, irs_gen[k], SAMPLE_RATE)
                record["ir_generated"] = str(wav_path)
            records.append(record)
        journal(*records[-len(batch):])
        progress.update(len(batch))
    progress.close()
    return sorted(records, key=lambda r: r["index"])


def _identity(config: EvalConfig, dataset) -> dict:
    """What decides every record of an evaluation: a journal written under another identity is
    never reused. The batch size is part of it: the per-example noise and Griffin-Lim phase come
    from the seed and the example's index, but a batch of another size rounds the network's sums
    differently (measured: about 1e-6 relative in T30 and DRR)."""
    from i2r import __version__

    pairs = "\n".join(f"{r.image_path}\t{r.ir_path}" for r in dataset.records)
    return {"i2r": __version__, "checkpoint_sha256": file_sha256(config.checkpoint),
            "pairs_sha256": hashlib.sha256(pairs.encode()).hexdigest(), "split": config.split, "depth": config.depth,
            "t60_definition": config.t60_definition, "seed": config.seed, "save_wavs": config.save_wavs,
            "batch_size": config.batch_size}


def _journalled_records(out: Path, identity: dict) -> dict[int, dict]:
    """Records (by example index) that interrupted runs of ``identity`` journalled in ``out``, of any
    process; a line cut off by the interruption, and a record whose wav is gone, are measured again."""
    found = {}
    for path in sorted(out.glob(JOURNALS)):
        for record in read_journal(path, identity):
            if not identity["save_wavs"] or Path(record.get("ir_generated", "")).is_file():
                found[int(record["index"])] = record
    return found


# --- nearest-neighbour baseline --------------------------------------------------------------------


def nn_embedder(config: EvalConfig, model, device):
    """(description, function images (B, 3, H, W) in [0, 1] -> embeddings (B, D)) for the NN baseline.

    With ``places_weights`` this is the paper's baseline: the pooled features of the published
    Places365 ResNet (``resnet50_places365.pth.tar``, 2048-d, or ``resnet18_places365.pth.tar``,
    512-d; the architecture is read from the file), on ImageNet-normalised 224 x 224 images.
    Without them (no download is possible here) the checkpoint's own scene encoder is used, which
    makes the baseline stronger, not weaker: it sees what the model sees. Built before any
    generation, so a bad weights file fails at once.
    """
    if config.places_weights:
        return _places365_embedder(config.places_weights, device)
    depth_mode = model.resolve_depth_mode(config.depth)

    def embed(images):
        return model.encode(images, depth_mode)[0]

    return "the checkpoint's scene encoder (365-d; no Places365 weights given)", embed


def _places365_embedder(path: str, device):
    from i2r.models.image2reverb import IMAGENET_MEAN, IMAGENET_STD
    from i2r.models.resnet import resnet18, resnet50
    from i2r.models.weights import load_places365, read_weights

    # Bottleneck blocks (conv3) mean ResNet-50; the file is read again by the strict loader.
    deep = any(key.endswith("layer1.0.conv3.weight") for key in read_weights(path).get("state_dict", {}))
    net = (resnet50 if deep else resnet18)(in_channels=3, num_classes=365)
    load_places365(path, net)
    width = net.fc.in_features
    net.fc = torch.nn.Identity()
    net = net.to(device).eval()
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def embed(images):
        images = torch.nn.functional.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
        return net((images - mean) / std)

    return f"Places365 ResNet-{50 if deep else 18} pooled features ({width}-d)", embed


def _embed_all(dataset, indices, embed, batch_size, device, desc) -> torch.Tensor:
    rows = []
    for batch in tqdm(list(_batches(list(indices), batch_size)), desc=desc, unit="batch", disable=None):
        images = torch.stack([dataset[i]["image"] for i in batch]).to(device)
        with torch.inference_mode():
            rows.append(torch.nn.functional.normalize(embed(images).float().flatten(1), dim=1).cpu())
    return torch.cat(rows)


def nearest_neighbour_baseline(embed, train_set, test_set, records: list[dict], config: EvalConfig, device) -> None:
    """Add ``ir_nn``, ``t60_nn_s`` and ``t60_nn_error_pct`` to ``records`` (those of ``test_set``): the
    training IR whose image embedding (``embed``, see :func:`nn_embedder`) is nearest by cosine
    similarity to the test image's, measured with ``config.t60_definition``."""
    if not records:  # an empty shard: more processes than test examples
        return
    train = _embed_all(train_set, range(len(train_set)), embed, config.batch_size, device, "nn: train")
    test = _embed_all(test_set, [r["index"] for r in records], embed, config.batch_size, device, "nn: test")
    nearest = (test @ train.T).argmax(dim=1).tolist()
    chosen = sorted(set(nearest))
    irs = np.stack([np.asarray(train_set[i]["ir"], dtype=np.float64) for i in chosen])
    t60, _ = single_number_t60(irs, config.t60_definition)
    by_index = dict(zip(chosen, t60))
    for record, j in zip(records, nearest):
        record["ir_nn"] = str(train_set[j]["ir_path"])
        record["t60_nn_s"] = float(by_index[j])
        record["t60_nn_error_pct"] = float(percent_error(by_index[j], record["t60_true_s"]))


# --- summarising and writing -----------------------------------------------------------------------


def summarize(records: list[dict], config: EvalConfig) -> dict:
    """The ``metrics.json`` document of evaluated ``records`` (see DESIGN.md for the contract)."""
    kept = [r for r in records if not r["excluded_reason"]]
    excluded = [{"image": r["image"], "ir_true": r["ir_true"], "reason": r["excluded_reason"]}
                for r in records if r["excluded_reason"]]
    unmeasurable = [{"image": r["image"], "reason": r["generated_reason"]} for r in kept if r["generated_reason"]]
    per_band = {}
    bands = sorted({float(k.split("_")[1]) for k in (records[0] if records else {}) if k.startswith("t30_") and k.endswith("_true_s")})
    for key in BAND_METRICS + ("drr_db",):
        name, unit = key.rsplit("_", 1)
        if key == "drr_db":
            diffs = [[r["drr_generated_db"] - r["drr_true_db"] for r in kept]]
        elif unit == "s":
            diffs = [[percent_error(r[f"{name}_{hz:g}_generated_s"], r[f"{name}_{hz:g}_true_s"]) for r in kept] for hz in bands]
        else:
            diffs = [[r[f"{name}_{hz:g}_generated_db"] - r[f"{name}_{hz:g}_true_db"] for r in kept] for hz in bands]
        label = f"{name}_error_pct" if unit == "s" else f"{name}_error_db"
        stats = [error_stats(d) for d in diffs]
        per_band[label] = {stat: [s[stat] for s in stats] for stat in ("n", "mean", "sd", "median", "median_abs")}
    per_band["bands_hz"] = bands
    metrics = {
        "n": len(kept),
        "n_total": len(records),
        "excluded": excluded,
        "t60_definition": config.t60_definition,
        "t60_definition_text": T60_DEFINITIONS[config.t60_definition],
        "t60_error_pct": error_stats([r["t60_error_pct"] for r in kept]),
        "generated_unmeasurable": unmeasurable,
        "per_band": per_band,
        "lsd_db": error_stats([r["lsd_db"] for r in kept]),
        "l1_spectrogram": error_stats([r["l1_spectrogram"] for r in kept]),
        "mfcc_spearman": error_stats([r["mfcc_spearman"] for r in kept]),
        "config": dataclasses.asdict(config),
    }
    if config.baseline == "nn":
        metrics["baseline_nn"] = {"t60_error_pct": error_stats([r["t60_nn_error_pct"] for r in kept])}
    return metrics


def write_per_example_csv(records: list[dict], path: Path) -> None:
    """One row per example; the DESIGN.md columns first, then every measured field."""
    first = ["image", "ir_true", "t60_true_s", "t60_generated_s", "t60_error_pct"]
    if records and "ir_generated" in records[0]:
        first.append("ir_generated")
    rest = [k for k in (records[0] if records else {}) if k not in first]
    with atomic_open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=first + rest)
        writer.writeheader()
        for record in records:
            writer.writerow({k: ("" if isinstance(v, float) and not np.isfinite(v) else v) for k, v in record.items()})


def _log_axes_in_seconds(ax, lo_s: float, hi_s: float) -> tuple[float, float]:
    """Log x and y axes of seconds from ``lo_s`` to ``hi_s``, widened about their geometric centre
    to at least a decade, labelled 0.1, 0.2, 0.5, 1, 2, 5; returns the limits. matplotlib's
    default labels the minor ticks of a range of about a decade ("2x10^-1", "3x10^-1", ...), and
    below a decade falls back to linear ticks: either way, on a 3-inch panel they overprint."""
    from matplotlib import ticker

    if hi_s < 10.0 * lo_s:
        centre = float(np.sqrt(lo_s * hi_s))
        lo_s, hi_s = centre / np.sqrt(10.0), centre * np.sqrt(10.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo_s, hi_s)
    ax.set_ylim(lo_s, hi_s)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(ticker.NullFormatter())
    return lo_s, hi_s


def plot_errors(records: list[dict], out_dir: Path) -> list[Path]:
    """``t60_error.png`` (violin + box of the signed error, model and NN baseline) and
    ``t60_scatter.png`` (generated vs true T30 per octave band and single number, log axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = [r for r in records if not r["excluded_reason"]]
    series = {"model": [r["t60_error_pct"] for r in kept]}
    if kept and "t60_nn_error_pct" in kept[0]:
        series["NN baseline"] = [r["t60_nn_error_pct"] for r in kept]
    series = {k: [v for v in vals if np.isfinite(v)] for k, vals in series.items()}
    series = {k: v for k, v in series.items() if v}
    written = []
    fig, ax = plt.subplots(figsize=(5, 4))
    if series:
        ax.violinplot(list(series.values()), showmedians=True)
        ax.boxplot(list(series.values()), widths=0.15)
        ax.set_xticks(range(1, len(series) + 1), list(series))
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("T60 error (%)")
    ax.set_title("Signed T60 error, (generated - true) / true")
    fig.tight_layout()
    written.append(out_dir / "t60_error.png")
    atomic_savefig(fig, written[-1], dpi=120)
    plt.close(fig)

    bands = sorted({float(k.split("_")[1]) for k in (kept[0] if kept else {}) if k.startswith("t30_") and k.endswith("_true_s")})
    panels = [(f"T30 {hz:g} Hz", f"t30_{hz:g}_true_s", f"t30_{hz:g}_generated_s") for hz in bands]
    panels.append(("single number", "t60_true_s", "t60_generated_s"))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (title, true_key, gen_key) in zip(axes.ravel(), panels):
        t = np.array([r[true_key] for r in kept], dtype=float)
        g = np.array([r[gen_key] for r in kept], dtype=float)
        ok = np.isfinite(t) & np.isfinite(g) & (t > 0) & (g > 0)
        ax.scatter(t[ok], g[ok], s=10, alpha=0.7)
        if ok.any():
            lo, hi = _log_axes_in_seconds(ax, min(t[ok].min(), g[ok].min()) * 0.8, max(t[ok].max(), g[ok].max()) * 1.25)
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("true (s)", fontsize=8)
        ax.set_ylabel("generated (s)", fontsize=8)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    written.append(out_dir / "t60_scatter.png")
    atomic_savefig(fig, written[-1], dpi=120)
    plt.close(fig)
    return written


def evaluate(config: EvalConfig) -> dict | None:
    """Run the evaluation of ``config``; returns the metrics on rank 0 (None on other ranks).

    Writes ``metrics.json``, ``per_example.csv``, ``t60_error.png``, ``t60_scatter.png`` (and
    ``wavs/`` with ``save_wavs``) to ``config.out``. Under ``torchrun`` every rank generates and
    measures the examples ``rank, rank + world, ...``; rank 0 gathers them and writes everything
    but the wavs, which each rank writes for its own examples.
    """
    import torch.distributed as dist

    device = resolve_device(config.device)
    if device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)  # NCCL's gather works on the current device
    rank, world, joined = _process_group(device)
    try:
        return _evaluate(config, rank, world, device)
    finally:
        if joined:
            dist.destroy_process_group()


def _evaluate(config: EvalConfig, rank: int, world: int, device: torch.device) -> dict | None:
    from i2r.checkpoint import load_model
    from i2r.data.datasets import PairedDataset

    model, norm, _ = load_model(config.checkpoint, device)
    model.resolve_depth_mode(config.depth)  # a depth override the model cannot take fails before any work
    size = dict(resolution=model.config.resolution, image_size=model.config.image_size)
    test_set = PairedDataset(config.data, split=config.split, **size)
    if len(test_set) == 0:
        raise UserError(f"{config.data}: no usable '{config.split}' pairs to evaluate")
    train_set = PairedDataset(config.data, split="train", **size) if config.baseline == "nn" else None
    if train_set is not None and len(train_set) == 0:
        raise UserError(f"{config.data}: the NN baseline needs 'train' pairs, found none")
    embedding, embed = nn_embedder(config, model, device) if train_set is not None else (None, None)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    wav_dir = out / "wavs" if config.save_wavs else None
    identity = _identity(config, test_set)
    shard = list(range(rank, len(test_set), world))
    done = {i: r for i, r in _journalled_records(out, identity).items() if i % world == rank}
    if done:
        print(f"eval: resuming: {len(done)} of {len(shard)} examples already measured in {out}", file=sys.stderr)
    # a new journal per process and run: another process may still be reading an old one
    with journal_writer(out / f".eval-partial-{rank}-{uuid.uuid4().hex[:8]}.jsonl", identity) as journal:
        records = _evaluate_shard(model, norm, test_set, shard, config, device, wav_dir, done, journal)
    if embed is not None:
        nearest_neighbour_baseline(embed, train_set, test_set, records, config, device)
    records = _gather(records, rank, world)
    if rank != 0:
        return None
    metrics = summarize(records, config)
    metrics["depth_mode"] = config.depth if config.depth is not None else model.config.depth_mode
    metrics["skipped_files"] = [{"path": str(p), "reason": r} for p, r in test_set.skipped]
    if embedding is not None:
        metrics["baseline_nn"]["embedding"] = embedding
    write_per_example_csv(records, out / "per_example.csv")
    plot_errors(records, out)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=_json_default, allow_nan=False) + "\n")
    for journal in out.glob(JOURNALS):  # the results are on disk: nothing is left to resume
        journal.unlink()
    return metrics


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
