"""Image -> IR wav: latency and throughput of `i2r generate`'s pipeline, stage by stage.

For each preset (paper: 512x512, ResNet-50 at 224 px; small: 128x128, ResNet-18 at 128 px) and
each precision (fp32, bf16 autocast) and intra-op thread count, one real photo goes through
image loading, Monodepth2, the encoder, the generator, Griffin-Lim and the wav write; the median
of ``--repeats`` runs is reported per stage, with the end-to-end ratio to the 0.5 s target.
Then: throughput at ``--batch``, the bf16-vs-fp32 difference (spectrogram dB and octave-band T30
of the resulting IRs, same seed), Griffin-Lim's T30 accuracy against its iteration count on
the real IRs of ../shared/data, and the time of one training step of the small preset. Weights are random (speed does not depend on them); on a GPU
(when present) the same table is repeated there.

    .venv/bin/python benchmarks/bench_generate.py            # both presets: ~10 min on the 2 shared, loaded cores
    .venv/bin/python benchmarks/bench_generate.py --presets small --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from i2r.acoustics import analyze
from i2r.audio import SAMPLE_RATE, SpectrogramNorm, ir_to_logspec, load_ir, logspec_to_ir, save_wav
from i2r.inference import STAGES, Image2ReverbPipeline, load_image
from i2r.models import Image2Reverb, ModelConfig, discriminator_loss, generator_loss, spectrogram_t60p

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTO = DATA / "images" / "interior_clinic_waiting_room.jpg"
TARGET_S = 0.5
# A plausible range of raw log|X| for peak-normalised IRs (i2r.audio.LOG_FLOOR .. direct sound).
NORM = SpectrogramNorm(low=-11.5, high=3.0)


def build_pipeline(preset: str, precision: str, device: str, gl_iters: int) -> Image2ReverbPipeline:
    torch.manual_seed(0)
    return Image2ReverbPipeline(Image2Reverb(ModelConfig.preset(preset)), NORM, device, precision, gl_iters)


def time_once(pipeline: Image2ReverbPipeline, photos: list, out: Path) -> dict:
    """One end-to-end run; per-stage seconds plus the wav writes and the total."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = pipeline.generate(photos, seed=0)
    write_start, write_start_cpu = time.perf_counter(), time.process_time()
    for i, ir in enumerate(result.irs):
        save_wav(out / f"{i}.wav", ir / max(float(np.abs(ir).max()), 1e-12), SAMPLE_RATE)
    seconds = dict(result.seconds)
    seconds["write"] = time.perf_counter() - write_start
    seconds["cpu_write"] = time.process_time() - write_start_cpu
    seconds["total"] = time.perf_counter() - start
    seconds["cpu_total"] = time.process_time() - start_cpu
    return seconds


def median_run(pipeline, photos, out, repeats: int) -> dict:
    time_once(pipeline, photos, out)  # warm-up: allocator, oneDNN kernel selection
    runs = [time_once(pipeline, photos, out) for _ in range(repeats)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def latency_table(presets, precisions, threads, devices, repeats, gl_iters, out) -> list[dict]:
    rows = []
    columns = (*STAGES, "write", "total")
    print(f"\n## latency, batch 1 (median of {repeats}; wall seconds, process CPU seconds in brackets)\n")
    print("| device | preset | precision | threads | " + " | ".join(columns) + " | total / 0.5 s | CPU total / 0.5 s |")
    print("|---" * (len(columns) + 6) + "|")
    for device in devices:
        for preset in presets:
            for precision in precisions:
                pipeline = build_pipeline(preset, precision, device, gl_iters)
                for n_threads in (threads if device == "cpu" else [torch.get_num_threads()]):
                    torch.set_num_threads(n_threads)
                    med = median_run(pipeline, [PHOTO], out, repeats)
                    rows.append({"device": device, "preset": preset, "precision": precision, "threads": n_threads, **med})
                    cells = " | ".join(f"{med[c]:.3f} ({med['cpu_' + c]:.3f})" for c in columns)
                    print(f"| {device} | {preset} | {precision} | {n_threads} | {cells} | {med['total'] / TARGET_S:.2f} "
                          f"| {med['cpu_total'] / TARGET_S:.2f} |")
    return rows


def throughput(rows, batch: int, repeats: int, gl_iters: int, out: Path) -> None:
    print(f"\n## throughput, batch {batch}, fastest setting per preset and device\n")
    print("| device | preset | precision | threads | s / batch | images / s | s / image (batch 1) |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted({(r["device"], r["preset"]) for r in rows}):
        best = min((r for r in rows if (r["device"], r["preset"]) == key), key=lambda r: r["total"])
        torch.set_num_threads(best["threads"])
        pipeline = build_pipeline(best["preset"], best["precision"], best["device"], gl_iters)
        med = median_run(pipeline, [PHOTO] * batch, out, repeats)
        print(f"| {best['device']} | {best['preset']} | {best['precision']} | {best['threads']} | {med['total']:.3f} | "
              f"{batch / med['total']:.2f} | {best['total']:.3f} |")


def bf16_quality(presets, device: str, gl_iters: int) -> None:
    """How much bf16 changes the output, and whether that matters for T30.

    Same weights, seed and photos in fp32 and bf16 give the bf16 error of the spectrogram
    (dB). Random weights make no measurable IRs, so the T30 effect is measured by adding each
    photo's error field (bf16 - fp32, raw log|X|) to the spectrograms of the real IRs of
    ../shared/data and comparing octave-band T30 of the two inversions (same Griffin-Lim seed).
    """
    photos = sorted((DATA / "images").glob("*.jpg"))
    irs = np.stack([load_ir(f) for f in sorted((DATA / "irs").glob("*.wav"))])
    print(f"\n## bf16 vs fp32 ({len(photos)} photos, random weights, same seed; T30 on {len(irs)} real IRs "
          f"+ the bf16 error field)\n")
    print("| preset | max abs dlog-spec dB | median abs dlog-spec dB | median abs dT30 % | 90th pct abs dT30 % "
          "| bands measured |")
    print("|---|---|---|---|---|---|")
    for preset in presets:
        results = {}
        for precision in ("fp32", "bf16"):
            pipeline = build_pipeline(preset, precision, device, gl_iters)
            size = pipeline.config.image_size
            results[precision] = pipeline.generate(torch.stack([load_image(p, size) for p in photos]), seed=0)
        error = results["bf16"].logspecs - results["fp32"].logspecs
        diff_db = np.abs(error) * 20 / np.log(10)
        clean = ir_to_logspec(irs, resolution=error.shape[-1])
        perturbed = clean + torch.from_numpy(error[np.arange(len(irs)) % len(error)])
        t30 = [np.asarray(analyze(logspec_to_ir(spec, n_iter=gl_iters).numpy().astype(np.float64), SAMPLE_RATE).t30_s,
                          dtype=float) for spec in (clean, perturbed)]
        rel = np.abs(t30[1] / t30[0] - 1) * 100
        rel = rel[np.isfinite(rel)]
        print(f"| {preset} | {diff_db.max():.2f} | {np.median(diff_db):.3f} | {np.median(rel):.2f} | "
              f"{np.percentile(rel, 90):.2f} | {rel.size}/{np.size(t30[0])} |")


def training_step(preset: str, batch: int, repeats: int) -> None:
    """Seconds of one training step (D step + G/encoder step with all loss terms, three Adams)."""
    torch.manual_seed(0)
    config = ModelConfig.preset(preset)
    model = Image2Reverb(config).train()
    encoder_params = [*model.encoder.parameters(), *model.depth.parameters()]
    optimizers = [torch.optim.Adam(params, lr=1e-4, betas=(0.0, 0.99))
                  for params in (model.generator.parameters(), model.discriminator.parameters(), encoder_params)]
    images = torch.rand(batch, 3, config.image_size, config.image_size)
    real = torch.rand(batch, 1, config.resolution, config.resolution) * 1.6 - 0.8

    def step():
        features, _ = model.encode(images)
        fake = model.generate(features)
        d_terms = discriminator_loss(model.discriminate(real, features.detach()),
                                     model.discriminate(fake.detach(), features.detach()))
        optimizers[1].zero_grad()
        d_terms["total"].backward()
        optimizers[1].step()
        g_terms = generator_loss(model.discriminate(fake, features), fake, real,
                                 spectrogram_t60p(fake, NORM), spectrogram_t60p(real, NORM))
        for optimizer in (optimizers[0], optimizers[2]):
            optimizer.zero_grad()
        g_terms["total"].backward()
        for optimizer in (optimizers[0], optimizers[2]):
            optimizer.step()

    step()
    runs = []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        runs.append((time.perf_counter() - start, time.process_time() - start_cpu))
    wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    print(f"\n## one training step, preset {preset}, batch {batch}, fp32, threads {torch.get_num_threads()}: "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU (median of {repeats}); 1000 steps = {1000 * cpu / 60:.0f} CPU-minutes")


def griffin_lim_sweep(iterations) -> None:
    """T30 of the inverted spectrogram vs the real IR's, per octave band, for real IRs."""
    files = sorted((DATA / "irs").glob("*.wav"))
    irs = np.stack([load_ir(f) for f in files])
    spec = ir_to_logspec(irs)
    reference = np.asarray(analyze(irs.astype(np.float64), SAMPLE_RATE).t30_s, dtype=float)
    print(f"\n## Griffin-Lim iterations vs T30 accuracy ({len(files)} real IRs, 512x512, threads {torch.get_num_threads()})\n")
    print("| method | iterations | s / IR | median |dT30| % | 90th pct |dT30| % |")
    print("|---|---|---|---|---|")
    for n_iter in iterations:
        method = "random-phase" if n_iter == 0 else "griffin-lim"
        start = time.perf_counter()
        out = logspec_to_ir(spec, method=method, n_iter=n_iter).numpy().astype(np.float64)
        seconds = (time.perf_counter() - start) / len(files)
        rel = np.abs(np.asarray(analyze(out, SAMPLE_RATE).t30_s, dtype=float) / reference - 1) * 100
        ok = np.isfinite(rel)
        print(f"| {method} | {n_iter} | {seconds:.3f} | {np.median(rel[ok]):.2f} | {np.percentile(rel[ok], 90):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["paper", "small"], choices=["paper", "small"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="intra-op thread counts to time on CPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="batch size of the throughput run")
    parser.add_argument("--gl-iters", type=int, default=8, help="Griffin-Lim iterations (i2r generate's default)")
    parser.add_argument("--skip-quality", action="store_true", help="only the timing tables")
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"# bench_generate: torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min), devices {devices}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = latency_table(args.presets, args.precisions, args.threads, devices, args.repeats, args.gl_iters, Path(tmp))
        throughput(rows, args.batch, max(1, args.repeats // 2), args.gl_iters, Path(tmp))
    if not args.skip_quality:
        torch.set_num_threads(min(args.threads))
        bf16_quality(args.presets, "cpu", args.gl_iters)
        griffin_lim_sweep([0, 4, 8, 16, 32])
        training_step("small", args.batch, args.repeats)
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
