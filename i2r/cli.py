"""Command-line front end: ``i2r COMMAND ...``.

Thin by design: each command parses its arguments, calls one library function and prints or
writes what it returns. Every command is registered by a ``_add_<command>`` function below, in
the order ``i2r --help`` lists them. Mistakes a user can make raise :class:`i2r.errors.UserError`
in the library and become one ``error: ...`` line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from i2r import __version__
from i2r.errors import UserError
from i2r.files import writable_dir, writable_file


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake prints one ``error:`` line (plus a hint), not a usage dump."""

    def error(self, message):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _config(args: argparse.Namespace, config_class):
    """The config dataclass ``config_class`` filled from the parsed arguments of the same names."""
    fields = config_class.__dataclass_fields__
    return config_class(**{k: v for k, v in vars(args).items() if k in fields})


def _output_folder(value: str) -> str:
    """argparse type of an output folder: refused while parsing, before any work, when nothing can
    be written there (it is not created yet; see :func:`i2r.files.writable_dir`)."""
    return _checked(writable_dir, value)


def _output_file(value: str) -> str:
    """argparse type of an output file (see :func:`i2r.files.writable_file`)."""
    return _checked(writable_file, value)


def _checked(check, value: str) -> str:
    if value:  # an empty value means the command's own default place
        try:
            check(value)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _add_command(sub, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=description, formatter_class=_formatter)


# --- commands -----------------------------------------------------------------------------------
# Each _add_<command>(sub) builds its parser and sets `func`, a callable(args) -> exit status.


def _add_analyze(sub):
    p = _add_command(
        sub, "analyze", "ISO 3382-1 parameters of impulse-response files (T20/T30/EDT/C50/C80/D50/Ts/DRR)",
        "Measure room impulse responses per octave or one-third-octave band (IEC 61260-1, zero-phase)\n"
        "and broadband: T20, T30, EDT, C50, C80, D50, centre time Ts, and DRR, with ISO 3382-1 onset,\n"
        "Lundeby noise handling and fit ranges. A value without the dynamic range it needs is null/-\n"
        "with a warning saying why. WAV/FLAC at any rate; mono is kept, stereo averaged, 4-channel\n"
        "B-format uses W (the `channels` field says which). Folders are walked recursively; files\n"
        "stream through in batches (--jobs worker processes) with a progress bar on stderr (when it\n"
        "is a terminal; logs get clean `error:` lines and a summary line instead).\n\n"
        "Formats: table (default; bands as columns), csv (one row per file x band, written and flushed\n"
        "as results arrive, so an interrupted run keeps what it measured; --resume continues it), json\n"
        "(one document: a list with one object per file).\n\n"
        "Exit status: 0 if every file was analysed; 2 if any failed (each bad file gets one\n"
        "`error: <file>: <reason>` line on stderr and the others are still analysed).\n\n"
        "examples: i2r analyze room.wav\n"
        "          i2r analyze irs/ --format csv --out results.csv --jobs 2 [--resume]\n"
        "          i2r analyze hall.flac --bands third --format json --plot plots/",
    )
    p.add_argument("inputs", nargs="+", metavar="FILE", help="WAV/FLAC files or folders (walked recursively)")
    p.add_argument("--bands", choices=("octave", "third"), default="octave", help="band set (default octave)")
    p.add_argument("--filter-order", type=int, default=3, metavar="N",
                   help="poles per band side of the zero-phase Butterworth band filters (default 3: "
                        "IEC 61260-1 class 1 for octaves). Steeper filters let less of a neighbouring "
                        "band's decay leak in (T30 at 4 kHz beside a slower 2 kHz band: median bias "
                        "+0.9 %% at 3, +0.5 %% at 6) but ring longer, so the shortest decay a band "
                        "can measure grows (2x the ringing: 125 Hz octave 0.10 s at 3, 0.19 s at 6; "
                        "100 Hz third 0.38 s at 3, 0.74 s at 6)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    p.add_argument("--plot", metavar="DIR", type=_output_folder, help="write one decay-curve PNG per file into DIR")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="files decoded and analysed together (default 32; memory ~ 2 x jobs x N files)")
    p.add_argument("--out", metavar="FILE", type=_output_file, help="write the results to FILE instead of stdout")
    p.add_argument("--resume", action="store_true", help="with --format csv --out FILE: skip files already in FILE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from i2r.acoustics.batch import AnalyzeConfig, run_analysis

    config = AnalyzeConfig(bands=args.bands, filter_order=args.filter_order, format=args.format, jobs=args.jobs,
                           chunk_size=args.batch_size,
                           plot_dir=args.plot, out=args.out, resume=args.resume,
                           progress=not args.quiet and sys.stderr.isatty())
    summary = run_analysis(args.inputs, config)
    if summary.failed or summary.skipped or summary.analysed > 1:
        sys.stderr.write(f"analyze: {summary.analysed} analysed, {summary.failed} failed, "
                         f"{summary.skipped} skipped (already in {args.out})\n" if summary.skipped else
                         f"analyze: {summary.analysed} analysed, {summary.failed} failed\n")
    return 2 if summary.failed else 0


def _add_survey_stats(sub):
    p = _add_command(
        sub, "survey-stats", "statistics of the listening study (normality, RM ANOVA, TOST; Table 4, Fig. 9)",
        "Analyse listening-test responses as in the paper's Sec. 3.3: D'Agostino-Pearson normality per design\n"
        "cell, two-way repeated-measures ANOVA source x scene with Greenhouse-Geisser correction and\n"
        "generalised eta squared, and per-scene TOST equivalence tests (bound 1 rating unit) with a\n"
        "Bonferroni adjustment. Participants who failed screening/attention or lack a stimulus are\n"
        "excluded and listed. The CSV is tidy (one row per participant x stimulus) or wide (one row per\n"
        "participant, columns rating:scene:example:source); see survey/README.md.\n\n"
        "example: i2r survey-stats survey/example_responses.csv --out reports/survey",
    )
    p.add_argument("responses", nargs="+", help="responses CSV(s), tidy or wide; several files are pooled "
                   "(e.g. one downloaded per participant)")
    p.add_argument("--out", metavar="DIR", type=_output_folder,
                   help="also write Table 4 (md, html), fig9.png, report.md/html and the JSON here")
    p.add_argument("--format", choices=("table", "json"), default="table", help="stdout format (default: table)")
    p.add_argument("--tost", choices=("paired", "unpaired"), default="paired",
                   help="paired TOST (default) or unpaired Student TOST, the paper's Table 4 choice (56 dof)")
    p.add_argument("--bound", type=float, default=1.0, help="equivalence bound in rating units (default: 1)")
    p.add_argument("--layout", choices=("auto", "tidy", "wide"), default="auto", help="CSV layout (default: auto)")
    p.set_defaults(func=_run_survey_stats)


def _run_survey_stats(args) -> int:
    import json

    from i2r.survey.report import summary_text, write_outputs
    from i2r.survey.stats import SurveyStatsConfig, analyze_csv

    config = SurveyStatsConfig(tost=args.tost, bound=args.bound, layout=args.layout)
    result = analyze_csv(args.responses, config)
    if args.out:
        paths = write_outputs(result, args.out)
        sys.stderr.write(f"wrote {', '.join(str(p) for p in paths.values())}\n")
    sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n" if args.format == "json" else summary_text(result))
    return 0


def _add_survey_build(sub):
    p = _add_command(
        sub, "survey-build", "build the listening test: stimuli (dry * IR, loudness-matched) and the web page",
        "Convolve a dry signal with the real and the generated IR of every example, match all stimuli to one\n"
        "ITU-R BS.1770-4 integrated loudness, lower them together so that none clips, and write them with\n"
        "the images and the static survey page into DIR. Open DIR/index.html in a browser (no server\n"
        "needed); participants download a CSV that `i2r survey-stats` reads.\n\n"
        "EXAMPLES.csv columns: image, real_ir, generated_ir, scene[, example] (paths relative to the CSV).\n\n"
        "example: i2r survey-build examples.csv --dry speech.wav --out survey_site",
    )
    p.add_argument("examples", help="CSV of examples: image, real_ir, generated_ir, scene[, example]")
    p.add_argument("--dry", required=True, help="dry (anechoic) signal to convolve with every IR")
    p.add_argument("--out", metavar="DIR", type=_output_folder, default="survey_site",
                   help="output folder (default: survey_site)")
    p.add_argument("--title", default="Reverb listening test", help="page title")
    p.add_argument("--lufs", type=float, default=-23.0, help="target integrated loudness in LUFS (default: -23)")
    p.add_argument("--peak-dbfs", type=float, default=-1.0, help="sample-peak ceiling in dBFS (default: -1)")
    p.add_argument("--allow-outside", action="store_true",
                   help="let the CSV's paths point outside its folder (their files are copied into the site)")
    p.set_defaults(func=_run_survey_build)


def _run_survey_build(args) -> int:
    from i2r.survey.stimuli import SurveyBuildConfig, build_survey

    config = SurveyBuildConfig(examples_csv=args.examples, dry=args.dry, out=args.out, title=args.title,
                               target_lufs=args.lufs, peak_dbfs=args.peak_dbfs, allow_outside=args.allow_outside)
    manifest = build_survey(config)
    levels = manifest["levels"]
    sys.stdout.write(f"{len(manifest['stimuli'])} stimuli at {levels['loudness_lufs']:.1f} LUFS "
                     f"(common gain {levels['common_gain_db']:.1f} dB, peak {levels['max_peak_dbfs']:.1f} dBFS); "
                     f"open {args.out}/index.html\n")
    return 0


def _add_train(sub):
    # Defaults are spelt out here (not imported) so that `i2r --help` does not import torch;
    # tests/test_train.py checks that they equal TrainConfig's.
    p = _add_command(
        sub, "train", "train Image2Reverb on a paired image/IR data set (one process or torchrun DDP)",
        "Train the conditional GAN of Singh et al. (2021): LSGAN + 100 L1 + 100 |T60p error|, three Adam\n"
        "optimisers with Table 2's settings. RUN/last.pt is rewritten atomically every --checkpoint-every\n"
        "steps and at the end; metrics go to RUN/metrics.csv and TensorBoard (RUN/tb); a validation pass\n"
        "(L1, T60 error) runs each epoch when the data set has a val split.\n\n"
        "  i2r train --data DATA --out RUN --preset small --max-steps 2000\n"
        "  torchrun --nproc_per_node 4 -m i2r train --data DATA --out RUN --preset paper   (DDP)\n"
        "  i2r train --data DATA --out RUN --resume      (continues exactly where RUN/last.pt left off)",
    )
    p.add_argument("--data", required=True, help="paired data set folder (manifest CSV or pix2pix train_A/train_B)")
    p.add_argument("--out", required=True, type=_output_folder, help="run folder: last.pt, config.json, metrics.csv, tb/")
    p.add_argument("--preset", choices=("small", "paper"), default="small",
                   help="small (128x128, ResNet-18) or paper (512x512, ResNet-50) (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=0, help="spectrogram side overriding the preset's (32-512)")
    p.add_argument("--image-size", type=int, default=0, help="image side overriding the preset's (multiple of 32)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after N optimiser steps (default: 0, all epochs)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop, with a checkpoint, after M minutes (default: 0, no limit)")
    p.add_argument("--epochs", type=int, default=200, help="epochs (default: %(default)s, as in the paper)")
    p.add_argument("--batch-size", type=int, default=4, help="examples per process and step (default: %(default)s)")
    p.add_argument("--lr-generator", type=float, default=4e-4, help="Adam lr of G (default: %(default)s)")
    p.add_argument("--lr-discriminator", type=float, default=2e-4, help="Adam lr of D (default: %(default)s)")
    p.add_argument("--lr-encoder", type=float, default=1e-5, help="Adam lr of encoder + depth (default: %(default)s)")
    p.add_argument("--beta1", type=float, default=0.0,
                   help="Adam beta1 of all three optimisers (default: %(default)s, Table 2; the demo uses 0.9)")
    p.add_argument("--l1-weight", type=float, default=100.0, help="L1 term weight (default: %(default)s)")
    p.add_argument("--t60p-weight", type=float, default=100.0, help="T60p term weight (default: %(default)s)")
    p.add_argument("--decay-weight", type=float, default=0.0,
                   help="weight per dB of a term not in the paper: the mean |difference| of the generated and "
                        "true fullband Schroeder decay curves down to -60 dB; it keeps energy out of the end of "
                        "the generated IRs, which otherwise can leave their T30 unmeasurable (default: %(default)s)")
    p.add_argument("--no-depth", action="store_true", help="ablation: no depth channel (3-channel encoder)")
    p.add_argument("--no-t60p", action="store_true", help="ablation: no T60p loss term")
    p.add_argument("--no-places", action="store_true", help="ablation: random encoder weights, ignoring --places-weights")
    p.add_argument("--places-weights", default="", help="Places365 ResNet .pth.tar to start the encoder from")
    p.add_argument("--monodepth-weights", default="", help="folder with Monodepth2's encoder.pth and depth.pth")
    p.add_argument("--depth-supervision", action="store_true", help="train the depth net on the data's true depth maps (L1), and on them alone: the "
                        "encoder's gradient no longer reaches it")
    p.add_argument("--depth-weight", type=float, default=1.0, help="weight of that depth L1 (default: %(default)s)")
    p.add_argument("--ema-beta", type=float, default=0.0,
                   help="keep a moving average of the encoder/depth/generator weights with this decay per step and "
                        "infer with it (ProGAN's G_ema; e.g. 0.99); default 0: off")
    p.add_argument("--amp", choices=("bf16", "fp16", "off"), default="bf16", help="CUDA mixed precision (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: %(default)s")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads per process (default: 0, torch's choice; use 1 on busy shared cores)")
    p.add_argument("--num-workers", type=int, default=0, help="data loader workers per process (default: 0)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default: %(default)s)")
    p.add_argument("--log-every", type=int, default=10, help="steps between metric rows (default: %(default)s)")
    p.add_argument("--val-every", type=int, default=0, help="steps between validation passes (default: 0, each epoch)")
    p.add_argument("--val-rooms", type=int, default=0,
                   help="validate on the validation split's first N pairs only (default: 0, all): a large split "
                        "measured with --select-best costs training time at every pass")
    p.add_argument("--select-best", action="store_true",
                   help="also invert and measure the validation IRs as i2r eval does, and keep RUN/best.pt: the "
                        "weights with the lowest median |T60 error| (an unmeasurable IR counts as infinitely wrong)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue exactly from RUN/last.pt")
    p.add_argument("--stop-after-step", type=int, default=0, help="crash on purpose (SIGKILL) after step N: tests --resume")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    import json

    from i2r.train import TrainConfig, train

    config = _config(args, TrainConfig)
    summary = train(config)
    if summary["rank"] == 0:
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def _add_eval(sub):
    p = _add_command(
        sub, "eval", "evaluate a checkpoint on a paired test set (T60 error and more)",
        "Generate an IR for every test image (batched; GPU when present) and measure generated and true\n"
        "IRs with i2r.acoustics. Writes OUT/metrics.json, OUT/per_example.csv, a violin plot of the signed\n"
        "T60 error and a scatter of generated vs true T60 per octave band. Examples whose true IR is not\n"
        "measurable (too little dynamic range) are excluded and listed, never averaged in. An interrupted\n"
        "run resumes: run the same command again and only the examples not yet measured are evaluated.\n\n"
        "T60 definitions (--t60, written into every output):\n"
        "  t30      ISO 3382-1 single number: mean of T30 at 500 Hz and 1 kHz (default)\n"
        "  irstats  the paper's MATLAB irStats: 0 to -60 dB Schroeder fit, same bands\n"
        "  t60p     the paper's differentiable proxy on the spectrogram\n\n"
        "  i2r eval RUN/last.pt --data DATA --out reports/eval --baseline nn\n"
        "  torchrun --nproc_per_node 2 -m i2r eval RUN/last.pt --data DATA   (shards the test set)",
    )
    p.add_argument("checkpoint", help="a checkpoint written by i2r train (e.g. RUN/last.pt)")
    p.add_argument("--data", required=True, help="paired data set folder (manifest CSV or pix2pix test_A/test_B)")
    p.add_argument("--out", default="reports/eval", type=_output_folder, help="output folder (default: %(default)s)")
    p.add_argument("--split", default="test", help="which split to evaluate (default: %(default)s)")
    p.add_argument("--depth", default=None, help="auto, 0, 0.5 or none; default: the checkpoint's own depth mode")
    p.add_argument("--t60", dest="t60_definition", choices=("t30", "irstats", "t60p"), default="t30",
                   help="T60 definition (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="images per generation batch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator's noise, per example (default: 0)")
    p.add_argument("--save-wavs", action="store_true", help="keep the generated IRs in OUT/wavs/")
    p.add_argument("--baseline", choices=("nn",), default=None,
                   help="also evaluate the nearest-neighbour baseline: the training IR whose image is closest")
    p.add_argument("--places-weights", default=None,
                   help="with --baseline nn: resnet50_places365.pth.tar (or resnet18_) whose pooled features embed "
                   "the images, as in the paper (default: the checkpoint's own encoder)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="stdout format (default: %(default)s)")
    p.set_defaults(func=_run_eval)


def _run_eval(args) -> int:
    import json

    from i2r.evaluate import EvalConfig, evaluate

    config = _config(args, EvalConfig)
    metrics = evaluate(config)
    if metrics is None:
        return 0
    if args.format == "json":
        sys.stdout.write(json.dumps(metrics) + "\n")
        return 0
    sys.stdout.write(_eval_table(metrics) + f"\nwritten to {args.out}/\n")
    return 0


def _eval_table(metrics: dict) -> str:
    def row(name, stats):
        if not stats or stats.get("mean") is None:
            return f"  {name:<14} (nothing measurable)"
        return (f"  {name:<14} mean {stats['mean']:+7.1f} %   sd {stats['sd']:6.1f} %   median {stats['median']:+7.1f} %"
                f"   IQR {stats['iqr']:6.1f} %")

    lines = [f"T60 error ({metrics['t60_definition']}: {metrics['t60_definition_text']})",
             f"  n = {metrics['n']} evaluated, {len(metrics['excluded'])} excluded (ground truth not measurable)",
             f"  {len(metrics['generated_unmeasurable'])} of the {metrics['n']} generated IRs not measurable "
             f"(left out of the model's T60 statistics, n = {metrics['t60_error_pct']['n']})",
             row("model", metrics["t60_error_pct"])]
    if "baseline_nn" in metrics:
        lines.append(row("NN baseline", metrics["baseline_nn"]["t60_error_pct"]))
    lines.append(f"  log-spectral distance {metrics['lsd_db']['mean']:.2f} dB, MFCC Spearman "
                 f"{metrics['mfcc_spearman']['mean']:.3f}" if metrics["n"] else "")
    return "\n".join(lines)


def _add_report(sub):
    p = _add_command(
        sub, "report", "build the ablation report (Table 3, Fig. 8, Table 5, Fig. 10)",
        "Evaluate every variant of an ablation protocol (eval/ablations.toml: variants, checkpoints, test set,\n"
        "depth-steering settings) and write Markdown, HTML and LaTeX tables with PNG and PDF figures. Each\n"
        "variant is compared with the main model (Wilcoxon signed-rank on |error|, bootstrap 95 % CIs).\n"
        "Evaluations are cached by checkpoint hash and settings: re-running reuses finished ones.\n\n"
        "  i2r report --ablations                                    (eval/ablations.toml)\n"
        "  i2r report --ablations eval/ablations_synthetic.toml --train   (offline, bounded time)",
    )
    p.add_argument("--ablations", nargs="?", const="eval/ablations.toml", metavar="PROTOCOL.toml", required=True,
                   help="the protocol (default when given without a value: %(const)s)")
    p.add_argument("--out", default=None, type=_output_folder, help="report folder (default: the protocol's `out`)")
    p.add_argument("--train", action="store_true", help="train the variants whose checkpoints are missing")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    from i2r.analysis.ablations import load_protocol, run_ablations

    result = run_ablations(load_protocol(args.ablations), train_missing=args.train, out=args.out, device=args.device)
    sys.stdout.write(f"report: {result['report']['markdown']}\n")
    return 0


def _add_synth(sub):
    p = _add_command(
        sub, "synth", "write a synthetic paired data set (rendered rooms + their IRs, exact T60)",
        "Procedural shoebox rooms from a 2 m booth to a 60 m hall, plus outdoor scenes, each with surface\n"
        "materials from Vorländer's absorption tables. For every scene: a rendered view (images/), its\n"
        "z-depth in millimetres as 16-bit PNG (depth/; 65535 = 65.535 m or sky), and a 22,050 Hz, 5.94 s IR\n"
        "(irs/: image sources + a tail decaying per octave band with Eyring's T60). OUT/manifest.csv lists\n"
        "them with split, category, per-band T60 and the scene parameters; `i2r train --data OUT` reads it.\n"
        "Same --seed, same bytes, whatever --jobs; an interrupted run resumes when run again.\n\n"
        "  i2r synth --n 2000 --out data/synth --jobs 2\n"
        "  i2r synth --n 200 --out data/synth_small --seed 7 --image-size 224 --split 0.7,0.15,0.15",
    )
    p.add_argument("--n", type=int, required=True, help="number of scenes")
    p.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=256, help="image and depth side in pixels (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default: %(default)s)")
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test fractions (default: %(default)s)")
    p.set_defaults(func=_run_synth)


def _run_synth(args) -> int:
    from i2r.data.synthetic import SynthConfig, generate

    try:
        split = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        raise UserError(f"--split: expected three numbers like 0.8,0.1,0.1, got {args.split!r}") from None
    summary = generate(SynthConfig(n=args.n, out=args.out, seed=args.seed, image_size=args.image_size,
                                   jobs=args.jobs, split=split))
    splits = ", ".join(f"{k} {v}" for k, v in summary.splits.items())
    kinds = ", ".join(f"{k} {v}" for k, v in summary.categories.items())
    sys.stdout.write(f"{summary.manifest}: {summary.n} scenes ({summary.generated} new, {summary.reused} reused) "
                     f"in {summary.seconds:.1f} s; {splits}; {kinds}\n")
    return 0


def _add_demo(sub):
    p = _add_command(
        sub, "demo", "the whole system on built-in synthetic rooms: synth -> train -> eval -> report",
        "One command, offline: makes (or reuses from the cache) a paired set of synthetic rooms with exact\n"
        "ground truth, trains the small preset for --minutes (depth supervised by the renderer's depth maps),\n"
        "evaluates on held-out rooms against the nearest-neighbour baseline, and writes a report (Markdown,\n"
        "HTML, PNG, WAV) to --out. Re-running resumes an interrupted training run in OUT/run.\n\n"
        "  i2r demo                          (about 10 minutes of training on 2 CPU cores)\n"
        "  i2r demo --minutes 2 --format json",
    )
    p.add_argument("--minutes", type=float, default=10.0, help="training time budget in minutes (default: %(default)s)")
    p.add_argument("--out", default="reports/demo", type=_output_folder, help="report and run folder (default: %(default)s)")
    p.add_argument("--cache", default="", type=_output_folder, help="where synthetic data sets are kept (default: ~/.cache/i2r)")
    p.add_argument("--scenes", dest="n_scenes", type=int, default=1000,
                   help="synthetic rooms to make, split 80/10/10 train/val/test (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="training batch size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, training and evaluation (default: 0)")
    p.add_argument("--dry", default="", help="your own dry signal for the audio examples (default: built-in)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for training; 0 = torch's default (default: %(default)s: on 2 shared "
                        "cores a second thread made steps up to 10x slower; on a quiet machine with more cores, "
                        "more threads give more steps, see DemoConfig)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="stdout format (default: %(default)s)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    import json

    from i2r.demo import DemoConfig, run_demo

    config = _config(args, DemoConfig)
    summary = run_demo(config)
    if args.format == "json":
        sys.stdout.write(json.dumps(summary) + "\n")
        return 0
    for name in ("model", "baseline_nn"):
        s = summary[name]["t60_error_pct"]
        sys.stdout.write(f"{name:<12} T60 error: mean {s['mean']:+.1f} %, SD {s['sd']:.1f} %, median {s['median']:+.1f} %, "
                         f"median |error| {s['median_abs']:.1f} %\n")
    sys.stdout.write(f"report: {summary['report']}\n")
    return 0


def _add_generate(sub):
    p = _add_command(
        sub, "generate", "photo(s) -> room impulse response(s) with a trained checkpoint",
        "For each image write OUT/<stem>.wav (mono, 22,050 Hz, 5.94 s, peak 1), OUT/<stem>_spectrogram.png\n"
        "and OUT/<stem>_depth.png; with --apply DRY.wav also OUT/<stem>_<dry stem>_wet.wav (FFT convolution,\n"
        "scaled to the dry signal's peak or below, never clipped). Images are batched; folders are searched\n"
        "for images; unreadable images are reported, skipped and counted. OUT/generate.json records the run.\n"
        "Exit status: 0 if every image gave an IR; 2 if any could not be read (each gets an `error:` line).\n"
        "An interrupted run resumes: the same command again writes only the batches not yet written.\n\n"
        "  i2r generate photo.jpg --checkpoint RUN/last.pt --out generated/\n"
        "  i2r generate photos/ --checkpoint RUN/last.pt --out generated/ --depth 0.5 --apply speech.wav",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by i2r train (e.g. RUN/last.pt)")
    p.add_argument("--out", required=True, type=_output_folder, help="output folder")
    p.add_argument("--depth", dest="depth_mode", default=None,
                   help="auto (Monodepth2), none, or a constant disparity such as 0 or 0.5 (the paper's depth "
                   "steering); default: the checkpoint's own depth mode")
    p.add_argument("--seed", type=int, default=0, help="seed of the 147 noise values and Griffin-Lim (default: 0)")
    p.add_argument("--apply", action="append", default=[], metavar="DRY.wav",
                   help="also convolve this dry signal with each IR (repeatable)")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: %(default)s")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="network precision (default: bf16 where the hardware has it natively, else fp32)")
    p.add_argument("--griffin-lim-iters", type=int, default=8,
                   help="fast Griffin-Lim iterations; 8 keep octave-band T30 within ~0.2 %% (median) of 32's "
                   "(benchmarks/bench_generate.py) (default: %(default)s)")
    p.set_defaults(func=_run_generate)


def _run_generate(args) -> int:
    from i2r.inference import GenerateConfig, generate_files

    config = _config(args, GenerateConfig)
    summary = generate_files(config, progress=True)
    sys.stdout.write(f"{len(summary.written)} IRs written to {args.out}/; {len(summary.skipped)} images skipped\n")
    return 2 if summary.skipped else 0


def _add_prepare(sub):
    p = _add_command(
        sub, "prepare", "turn raw photos + IRs (or 360° panoramas) into a ready paired data set",
        "RAW is a manifest CSV (columns image, ir, split, scene; optional depth, t60_s; paths relative to\n"
        "the CSV), a folder holding manifest.csv, or a pix2pix folder (train_A/ photos + train_B/ IRs,\n"
        "paired by sorted name; likewise val_, test_), with original files: any image size, WAV/FLAC\n"
        "IRs at any rate, mono, stereo (mean) or B-format (W). OUT gets 22,050 Hz mono 5.94 s float WAVs\n"
        "(peak 1), centre-cropped square PNGs, 16-bit depth PNGs and OUT/manifest.csv. With\n"
        "--equirect-views K every image is a 360° equirectangular panorama and K rectilinear views are\n"
        "cut from it at yaws 0, 360/K, ... (the paper's Fig. 7). Bad files are skipped and listed at the\n"
        "end; run again to resume.\n\n"
        "  i2r prepare raw/pairs.csv --out data/ready --image-size 256\n"
        "  i2r prepare raw/panoramas --out data/views --equirect-views 8 --fov 90 --layout pix2pix",
    )
    p.add_argument("raw", metavar="RAW", help="raw data: manifest CSV, folder with manifest.csv, or pix2pix folder")
    p.add_argument("--out", required=True, type=_output_folder, help="output folder (created; reused to resume)")
    p.add_argument("--image-size", type=int, default=256, help="side of the square output images in px (default: %(default)s)")
    p.add_argument("--layout", choices=["manifest", "pix2pix"], default="manifest",
                   help="output layout (default: %(default)s); manifest.csv is written in both")
    p.add_argument("--equirect-views", type=int, default=0, metavar="K",
                   help="treat images as 360° panoramas and cut K views from each (default: 0 = off)")
    p.add_argument("--fov", type=float, default=90.0, metavar="DEG", help="field of view of a view (default: %(default)s)")
    p.add_argument("--pitch", type=float, default=0.0, metavar="DEG", help="view elevation, up positive (default: %(default)s)")
    p.add_argument("--allow-outside", action="store_true", help="let manifest paths point outside the CSV's folder")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args) -> int:
    from i2r.data.prepare import PrepareConfig, prepare_dataset

    config = PrepareConfig(raw=args.raw, out=args.out, image_size=args.image_size, layout=args.layout,
                           equirect_views=args.equirect_views, fov_deg=args.fov, pitch_deg=args.pitch,
                           allow_outside=args.allow_outside)
    summary = prepare_dataset(config)
    for path, reason in summary.bad:
        sys.stderr.write(f"skipped {path}: {reason}\n")
    if not summary.pairs:
        raise UserError(f"{args.raw}: no usable pairs ({len(summary.bad)} bad files, {summary.skipped_pairs} pairs "
                        f"skipped)")
    sys.stdout.write(f"{summary.manifest}: {summary.pairs} pairs ({summary.written} files written, {summary.reused} "
                     f"kept); {len(summary.bad)} bad files, {summary.skipped_pairs} pairs skipped\n")
    return 0


def _add_tsne_grid(sub):
    p = _add_command(
        sub, "tsne-grid", "lay images out on a grid by their IRs' multiband T60 (t-SNE + assignment)",
        "The paper's supplementary Fig. 24. RESULTS_DIR is an eval run (per_example.csv with image and\n"
        "ir_generated, from `i2r eval --save-wavs`) or a folder of IRs paired with images by stem\n"
        "(room.wav + room.png/.jpg). Features: T30 per octave band 125 Hz-4 kHz (ISO 3382-1), log, z-scored;\n"
        "a NaN band takes the IR's mean over its measured bands, an IR with none is dropped. t-SNE to 2-D,\n"
        "then an exact linear assignment to a near-square grid (spare cells empty). Writes OUT/mosaic.png,\n"
        "OUT/mosaic_t60.png (broadband T60 = mean of 500 Hz and 1 kHz), OUT/assignments.csv, OUT/config.json.\n\n"
        "  i2r tsne-grid runs/eval --out reports/tsne --perplexity 30 --thumb 48\n"
        "  i2r tsne-grid my_irs/ --features reports/tsne/assignments.csv --seed 1",
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="eval run folder or folder of IRs + images")
    p.add_argument("--out", default="reports/tsne-grid", type=_output_folder, help="output folder (default: %(default)s)")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="t-SNE random seed (default: %(default)s)")
    p.add_argument("--thumb", type=int, default=32, metavar="PX", help="mosaic cell size in px, 1-1024 (default: %(default)s)")
    p.add_argument("--method", choices=["opentsne", "sklearn"], default="opentsne",
                   help="t-SNE implementation (default: %(default)s: Barnes-Hut below 10,000 points, FFT above)")
    p.add_argument("--jobs", type=int, default=2, help="t-SNE threads; 1 on busy shared cores (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=250,
                   help="openTSNE steps after early exaggeration, which takes half as many (default: %(default)s)")
    p.add_argument("--features", metavar="CSV", help="read T30s (file, image, t30_<Hz>_s columns) instead of measuring")
    p.set_defaults(func=_run_tsne_grid)


def _run_tsne_grid(args) -> int:
    from i2r.analysis.tsne_grid import TsneGridConfig, run_tsne_grid

    config = TsneGridConfig(perplexity=args.perplexity, seed=args.seed, thumb=args.thumb, method=args.method,
                            n_jobs=args.jobs, iterations=args.iterations, features_csv=args.features)
    result = run_tsne_grid(args.results_dir, args.out, config)
    s = result.summary
    sys.stdout.write(f"{args.out}: {s['n']} IRs on a {s['grid'][0]}x{s['grid'][1]} grid; "
                     f"{s['dropped_unmeasurable']} dropped (no measurable band), {s['imputed_bands']} bands imputed, "
                     f"{len(s['skipped_files'])} files skipped\n")
    return 0


def _add_gradcam(sub):
    p = _add_command(
        sub, "gradcam", "Grad-CAM of the Places365 and fine-tuned encoders, compared by SSIM",
        "The paper's Section 3.4 and Figs. 11-12. Grad-CAM (Selvaraju et al. 2017) on layer4[-1] at\n"
        "224x224, for the greatest output feature (or --feature K), of the pre-trained Places365 ResNet-50\n"
        "(--pretrained) and of the checkpoint's fine-tuned encoder (fed its depth channel as the model does).\n"
        "SSIM two ways (scikit-image): on the raw maps (Wang et al. 2004: Gaussian sigma 1.5, data_range 1)\n"
        "and on grayscale heat-map overlays with default settings, as the original compare.py; `flagged`\n"
        "marks overlay SSIM < 0.98, the paper's criterion. Without --pretrained only the fine-tuned maps\n"
        "are drawn (a checkpoint does not keep the encoder's initial weights). Writes OUT/gradcam.csv and\n"
        "OUT/NNN_<stem>_gradcam.png panels; unreadable images are skipped, each with an `error:` line, and\n"
        "the exit status is then 2.\n\n"
        "  i2r gradcam photos/*.jpg --checkpoint runs/paper/last.pt --pretrained resnet50_places365.pth.tar",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos (any size; resized to 224x224)")
    p.add_argument("--checkpoint", required=True, help="trained model checkpoint (i2r train's last.pt)")
    p.add_argument("--pretrained", metavar="PLACES.pth.tar", help="Places365 ResNet-50 weights (resnet50_places365.pth.tar)")
    p.add_argument("--feature", type=int, metavar="K", help="output feature to explain (default: each network's greatest)")
    p.add_argument("--out", default="reports/gradcam", type=_output_folder, help="output folder (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    p.set_defaults(func=_run_gradcam)


def _run_gradcam(args) -> int:
    from i2r.analysis.gradcam import GradCamConfig, run_gradcam

    config = GradCamConfig(checkpoint=args.checkpoint, pretrained=args.pretrained, feature=args.feature,
                           out=args.out, device=args.device)
    rows = run_gradcam(args.images, config)
    for row in rows:
        if "error" in row:
            sys.stderr.write(f"error: {row['error']}\n")
        elif "ssim_maps" in row:
            sys.stdout.write(f"{row['image']}: SSIM maps {row['ssim_maps']:.4f}, overlays {row['ssim_overlays']:.4f}"
                             f"{'  (< 0.98)' if row['flagged'] else ''}\n")
        else:
            sys.stdout.write(f"{row['image']}: fine-tuned feature {row['feature_finetuned']}\n")
    if not args.pretrained:
        sys.stderr.write("note: no --pretrained Places365 weights given: fine-tuned maps only, no SSIM\n")
    return 2 if any("error" in row for row in rows) else 0


COMMANDS = [_add_demo, _add_analyze, _add_survey_stats, _add_survey_build, _add_train, _add_eval, _add_report, _add_synth,
            _add_generate, _add_prepare, _add_tsne_grid, _add_gradcam]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="i2r",
        description="Image2Reverb, rebuilt: turn a photo of a space into its room impulse response, "
        "apply it to dry audio, and measure everything about it.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"i2r {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    parser.commands = list(sub.choices)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        sys.stderr.write(f"error: give a command, one of {', '.join(parser.commands)} (see `i2r --help`)\n")
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; finished results were kept\n")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # the file system refused (permission, full disk, a path that cannot exist): the user's
        # environment, not a bug, and whatever was finished is already on disk
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"error: {where}{exc.strerror or exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
