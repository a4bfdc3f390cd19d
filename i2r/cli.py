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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake prints one ``error:`` line (plus a hint), not a usage dump."""

    def error(self, message):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


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
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    p.add_argument("--plot", metavar="DIR", help="write one decay-curve PNG per file into DIR")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="files decoded and analysed together (default 32; memory ~ 2 x jobs x N files)")
    p.add_argument("--out", metavar="FILE", help="write the results to FILE instead of stdout")
    p.add_argument("--resume", action="store_true", help="with --format csv --out FILE: skip files already in FILE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from i2r.acoustics.batch import AnalyzeConfig, run_analysis

    config = AnalyzeConfig(bands=args.bands, format=args.format, jobs=args.jobs, chunk_size=args.batch_size,
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
    p.add_argument("--out", metavar="DIR", help="also write Table 4 (md, html), fig9.png, report.md/html and the JSON here")
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
    p.add_argument("--out", metavar="DIR", default="survey_site", help="output folder (default: survey_site)")
    p.add_argument("--title", default="Reverb listening test", help="page title")
    p.add_argument("--lufs", type=float, default=-23.0, help="target integrated loudness in LUFS (default: -23)")
    p.add_argument("--peak-dbfs", type=float, default=-1.0, help="sample-peak ceiling in dBFS (default: -1)")
    p.set_defaults(func=_run_survey_build)


def _run_survey_build(args) -> int:
    from i2r.survey.stimuli import SurveyBuildConfig, build_survey

    config = SurveyBuildConfig(examples_csv=args.examples, dry=args.dry, out=args.out, title=args.title,
                               target_lufs=args.lufs, peak_dbfs=args.peak_dbfs)
    manifest = build_survey(config)
    levels = manifest["levels"]
    sys.stdout.write(f"{len(manifest['stimuli'])} stimuli at {levels['loudness_lufs']:.1f} LUFS "
                     f"(common gain {levels['common_gain_db']:.1f} dB, peak {levels['max_peak_dbfs']:.1f} dBFS); "
                     f"open {args.out}/index.html\n")
    return 0


COMMANDS = [_add_analyze, _add_survey_stats, _add_survey_build]


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
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
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


if __name__ == "__main__":
    raise SystemExit(main())
