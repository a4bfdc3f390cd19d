"""The ablation study as data: a TOML protocol -> cached evaluations -> Table 3, Fig. 8, Table 5, Fig. 10.

Singh et al. (2021) Sec. 3.2 (Table 3, Fig. 8: main model vs. no depth, no T60p, no Places365
weights and a nearest-neighbour baseline) and Sec. 3.4 (Table 5, Fig. 10: the main model with
estimated depth vs. constant depth 0 and 0.5). The paper gave means and SDs only; here every
variant is also compared with the main model by a paired Wilcoxon signed-rank test on |error|
(same test examples), and mu and sigma get percentile-bootstrap 95 % confidence intervals.

Evaluations are cached under ``OUT/cache/<key>/`` with key = SHA-256 of the checkpoint file, of the
data set (:func:`data_fingerprint`) and of the evaluation settings: a re-run reuses finished evaluations, and because ``metrics.json`` is
written last and atomically, a crash mid-run loses no finished result.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from i2r.data.manifest import SPLITS
from i2r.devices import resolve_device
from i2r.errors import UserError
from i2r.evaluate import T60_DEFINITIONS, EvalConfig, error_stats, evaluate
from i2r.files import file_sha256
from i2r.report import figure, format_number, heading, paragraph, save_figure, table, write_report
from i2r.seeds import check_seed

DEPTH_LABELS = {"auto": "estimated", "0": "constant 0", "0.5": "constant 0.5"}
N_BOOTSTRAP = 10_000


@dataclass
class Variant:
    """One row of Table 3: a checkpoint (or the NN baseline of another variant's data)."""

    name: str
    checkpoint: str = ""
    train: dict = field(default_factory=dict)
    baseline_of: str = ""
    description: str = ""


@dataclass
class AblationProtocol:
    """A parsed ``eval/ablations*.toml`` (paths resolved against the file's folder)."""

    path: str
    name: str
    data: str
    split: str = "test"
    t60_definition: str = "t30"
    out: str = "reports/ablations"
    depth_settings: list = field(default_factory=lambda: ["auto", "0", "0.5"])
    main: str = "main"
    seed: int = 0
    batch_size: int = 8
    train: dict = field(default_factory=dict)
    synth: dict = field(default_factory=dict)
    variants: list = field(default_factory=list)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


PROTOCOL_KEYS = ("name", "data", "split", "t60_definition", "out", "depth_settings", "main", "seed", "batch_size")
VARIANT_KEYS = ("name", "checkpoint", "train", "baseline_of", "description")
SECTIONS = ("protocol", "train", "synth", "variant")


def _table(value, where: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where}: {what} must be a table ([section] or {{ key = value }}), not {value!r}")
    return value


def _known(table: dict, allowed: tuple, where: str, what: str) -> None:
    """A misspelt key would otherwise be ignored and its default used without a word."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise UserError(f"{where}: {what} has unknown key(s) {unknown}; allowed: {list(allowed)}")


def _string(table: dict, key: str, where: str, what: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise UserError(f"{where}: {what} needs a '{key}' string" + ("" if key not in table else f", not {value!r}"))
    return value


def _whole(table: dict, key: str, where: str, default: int, least: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"{where}: [protocol] {key} must be a whole number of at least {least}, not {value!r}")
    return value


def _depth_settings(head: dict, where: str) -> list[str]:
    from i2r.models.image2reverb import parse_depth_mode

    settings = head.get("depth_settings", ["auto", "0", "0.5"])
    # A string is a sequence too: "0.5" would be read as the settings "0", ".", "5".
    if not isinstance(settings, list) or not settings:
        raise UserError(f"{where}: [protocol] depth_settings must be a list such as [\"auto\", \"0\", \"0.5\"], "
                        f"not {settings!r}")
    for setting in settings:
        if isinstance(setting, bool) or not isinstance(setting, (str, int, float)):
            raise UserError(f"{where}: [protocol] depth_settings: {setting!r} is not a depth setting")
        try:
            parse_depth_mode(setting)
        except UserError as exc:
            raise UserError(f"{where}: [protocol] depth_settings: {exc}") from None
    return [str(d) for d in settings]


def load_protocol(path: str | Path) -> AblationProtocol:
    """Read and validate a protocol TOML; a mistake is a :class:`UserError` naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such protocol file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    base = path.parent

    def resolve(value: str) -> str:
        return str((base / value).resolve()) if value else ""

    _known(raw, SECTIONS, str(path), "the file")
    head = _table(raw.get("protocol", {}), str(path), "[protocol]")
    _known(head, PROTOCOL_KEYS, str(path), "[protocol]")
    for key in ("name", "data"):
        _string(head, key, str(path), "[protocol]")
    train, synth = (_table(raw.get(key, {}), str(path), f"[{key}]") for key in ("train", "synth"))
    items = raw.get("variant", [])
    if not isinstance(items, list):
        raise UserError(f"{path}: variants must be [[variant]] tables, not {items!r}")
    variants = []
    for i, item in enumerate(items):
        _table(item, str(path), f"[[variant]] number {i + 1}")
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise UserError(f"{path}: [[variant]] number {i + 1} needs a 'name'")
        what = f"variant {item['name']!r}"
        _known(item, VARIANT_KEYS, str(path), what)
        checkpoint, baseline_of, description = (_string(item, key, str(path), what, "")
                                                for key in ("checkpoint", "baseline_of", "description"))
        if not checkpoint and not baseline_of:
            raise UserError(f"{path}: {what} needs a 'checkpoint' or a 'baseline_of'")
        variants.append(Variant(name=item["name"], checkpoint=resolve(checkpoint),
                                train=dict(_table(item.get("train", {}), str(path), f"{what}: train")),
                                baseline_of=baseline_of, description=description))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: variant names must be unique, got {names}")
    split = _string(head, "split", str(path), "[protocol]", "test")
    if split not in SPLITS:
        raise UserError(f"{path}: [protocol] split must be one of {', '.join(SPLITS)}, not {split!r}")
    t60_definition = _string(head, "t60_definition", str(path), "[protocol]", "t30")
    if t60_definition not in T60_DEFINITIONS:
        raise UserError(f"{path}: [protocol] t60_definition must be one of {sorted(T60_DEFINITIONS)}, "
                        f"not {t60_definition!r}")
    protocol = AblationProtocol(
        path=str(path), name=head["name"], data=resolve(head["data"]), split=split, t60_definition=t60_definition,
        out=resolve(_string(head, "out", str(path), "[protocol]", "reports/ablations")),
        depth_settings=_depth_settings(head, str(path)), main=_string(head, "main", str(path), "[protocol]", "main"),
        seed=check_seed(head.get("seed", 0), f"{path}: [protocol] seed"),
        batch_size=_whole(head, "batch_size", str(path), 8, 1),
        train=dict(train), synth=dict(synth), variants=variants)
    if protocol.main not in names:
        raise UserError(f"{path}: the main variant {protocol.main!r} is not among the variants {names}")
    with_checkpoint = [v.name for v in variants if v.checkpoint]
    for v in variants:
        if v.baseline_of and v.baseline_of not in names:
            raise UserError(f"{path}: variant {v.name!r} is the baseline of unknown variant {v.baseline_of!r}")
        if v.baseline_of and v.baseline_of not in with_checkpoint:
            raise UserError(f"{path}: variant {v.name!r} is the baseline of {v.baseline_of!r}, which has no checkpoint")
    return protocol


def data_fingerprint(data: str) -> str:
    """SHA-256 of what a data set is: its manifest CSV's bytes, or for other layouts (pix2pix) the
    list of its files with sizes and modification times. A changed test set is a new evaluation."""
    path = Path(data)
    manifest = path / "manifest.csv" if path.is_dir() else path
    if manifest.is_file():
        return file_sha256(str(manifest))
    listing = sorted(f"{p.relative_to(path)}\t{p.stat().st_size}\t{p.stat().st_mtime_ns}"
                     for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("\n".join(listing).encode()).hexdigest()


def cached_evaluation(config: EvalConfig, cache_root: Path, label: str = "") -> Path:
    """Evaluate ``config`` unless the same checkpoint (by content) and settings were evaluated before.

    Returns the folder that holds ``metrics.json`` and ``per_example.csv``; says on stderr whether
    it reused (``reusing evaluation``) or ran (``evaluating``) it. ``label`` names it in that line.
    """
    # the batch size stays in the key: another one rounds the network's sums differently (~1e-6)
    settings = {k: v for k, v in vars(config).items() if k not in ("checkpoint", "out", "device")}
    settings["data_fingerprint"] = data_fingerprint(config.data)
    key = hashlib.sha256((file_sha256(config.checkpoint) + json.dumps(settings, sort_keys=True)).encode()).hexdigest()
    folder = cache_root / key[:20]
    if (folder / "metrics.json").is_file():
        print(f"reusing evaluation {label} {folder}", file=sys.stderr)
        return folder
    print(f"evaluating {label} into {folder}", file=sys.stderr)
    config.out = str(folder)
    evaluate(config)
    return folder


def read_errors(folder: Path, column: str = "t60_error_pct") -> dict[tuple, float]:
    """Signed errors of an evaluation by example ``(image, ir_true)``.

    Examples whose ground truth is not measurable are left out; an example whose generated IR is
    not measurable is kept as NaN, so tables can count it (the statistics drop it).
    """
    with open(folder / "per_example.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {(r["image"], r["ir_true"]): float(r[column] or "nan") for r in rows if not r.get("excluded_reason")}


def bootstrap_ci(errors: np.ndarray, seed: int = 0, n: int = N_BOOTSTRAP) -> dict:
    """Percentile-bootstrap 95 % confidence intervals of the mean and the SD (``n`` resamples)."""
    if errors.size < 2:
        return {"mean": [None, None], "sd": [None, None]}
    rng = np.random.default_rng(seed)
    samples = errors[rng.integers(0, errors.size, size=(n, errors.size))]
    means, sds = samples.mean(axis=1), samples.std(axis=1, ddof=1)
    return {"mean": np.percentile(means, [2.5, 97.5]).tolist(), "sd": np.percentile(sds, [2.5, 97.5]).tolist()}


def paired_abs_test(errors: dict, reference: dict) -> dict:
    """Wilcoxon signed-rank test of |error| against the reference's |error| on the examples both measured."""
    shared = sorted(k for k in set(errors) & set(reference) if np.isfinite(errors[k]) and np.isfinite(reference[k]))
    a = np.abs([errors[k] for k in shared])
    b = np.abs([reference[k] for k in shared])
    if len(shared) < 2 or np.allclose(a, b):
        return {"n_pairs": len(shared), "p": None, "median_abs_diff": float(np.median(a - b)) if shared else None}
    result = wilcoxon(a, b)
    return {"n_pairs": len(shared), "p": float(result.pvalue), "median_abs_diff": float(np.median(a - b))}


def summarize_errors(errors: dict, reference: dict | None, seed: int) -> dict:
    """:func:`i2r.evaluate.error_stats` of ``errors`` (NaN: generated IR not measurable, counted in
    ``n_unmeasurable``), bootstrap CIs and, given the main model's errors, the paired test."""
    values = np.array(list(errors.values()), dtype=float)
    summary = error_stats(values)
    summary["n_unmeasurable"] = int(np.sum(~np.isfinite(values)))
    summary["ci95"] = bootstrap_ci(values[np.isfinite(values)], seed)
    if reference is not None:
        summary["vs_main"] = paired_abs_test(errors, reference)
    return summary


def _train_missing(protocol: AblationProtocol, variants: list[Variant]) -> None:
    """Train (or finish, via --resume) each variant whose checkpoint is missing."""
    from i2r.train import TrainConfig, train

    for v in variants:
        if not v.checkpoint:
            continue
        out = Path(v.checkpoint).parent
        settings = {**protocol.train, **v.train, "resume": Path(v.checkpoint).is_file()}
        cfg = _make_config(TrainConfig, settings, f"{protocol.path}: [train] / variant {v.name!r}",
                           data=protocol.data, out=str(out))
        print(f"training variant {v.name!r} into {out}", file=sys.stderr)
        train(cfg)


def _ensure_data(protocol: AblationProtocol) -> None:
    """Make the protocol's synthetic data set when it is missing; a missing data set without a
    ``[synth]`` section is a :class:`UserError`."""
    if Path(protocol.data).exists():
        return
    if not protocol.synth:
        raise UserError(f"{protocol.path}: [protocol] data {protocol.data} does not exist (and the protocol has "
                        "no [synth] section to make it)")
    from i2r.data.synthetic import SynthConfig, generate

    print(f"making the synthetic data set {protocol.data}", file=sys.stderr)
    generate(_make_config(SynthConfig, protocol.synth, f"{protocol.path}: [synth]", out=protocol.data))


def _make_config(cls, settings: dict, where: str, **fixed):
    """``cls(**fixed, **settings)`` where an unknown key is a :class:`UserError` naming ``where``."""
    unknown = sorted((set(settings) - set(cls.__dataclass_fields__)) | (set(settings) & set(fixed)))
    if unknown:
        raise UserError(f"{where}: unknown or fixed setting(s) {unknown}; "
                        f"allowed: {sorted(set(cls.__dataclass_fields__) - set(fixed))}")
    return cls(**fixed, **settings)


def run_ablations(protocol: AblationProtocol, train_missing: bool = False, out: str | None = None,
                  device: str = "auto") -> dict:
    """Evaluate every variant and depth setting of ``protocol`` and write the report.

    One evaluation per checkpoint (with the NN baseline when a variant is the baseline of it) and
    one per depth setting of the main model that differs from its own depth mode: Table 3's main
    row and Table 5's matching row are the same evaluation. Returns
    ``{"table3": {variant: summary}, "table5": {depth: summary}, "report": paths}``.
    """
    resolve_device(device)  # a misspelt device fails now, not after the first variant has trained
    _ensure_data(protocol)
    out_dir = Path(out or protocol.out)
    checkpointed = [v for v in protocol.variants if v.checkpoint]
    if train_missing:
        _train_missing(protocol, checkpointed)
    missing = [v.name for v in checkpointed if not Path(v.checkpoint).is_file()]
    if missing:
        raise UserError(f"no checkpoint for variant(s) {missing}; train them with `i2r report --ablations "
                        f"{protocol.path} --train` or fix the paths in the protocol")
    cache = out_dir / "cache"
    with_nn = {v.baseline_of for v in protocol.variants if v.baseline_of}

    def run(variant: Variant, depth: str | None = None) -> Path:
        baseline = "nn" if variant.name in with_nn and depth is None else None
        config = EvalConfig(checkpoint=variant.checkpoint, data=protocol.data, split=protocol.split, depth=depth,
                            t60_definition=protocol.t60_definition, seed=protocol.seed,
                            batch_size=protocol.batch_size, baseline=baseline, device=device)
        return cached_evaluation(config, cache, f"{variant.name!r}" + (f" (depth {depth})" if depth else ""))

    folders = {v.name: run(v) for v in checkpointed}
    errors = {v.name: read_errors(folders[v.baseline_of], "t60_nn_error_pct") if v.baseline_of
              else read_errors(folders[v.name]) for v in protocol.variants}
    main = errors[protocol.main]
    table3 = {name: summarize_errors(e, None if name == protocol.main else main, protocol.seed)
              for name, e in errors.items()}
    own_depth = str(json.loads((folders[protocol.main] / "metrics.json").read_text()).get("depth_mode"))
    depth_folders = {d: folders[protocol.main] if d == own_depth else run(protocol.variant(protocol.main), d)
                     for d in protocol.depth_settings}
    depth_errors = {d: read_errors(folder) for d, folder in depth_folders.items()}
    table5 = {d: summarize_errors(e, None, protocol.seed) for d, e in depth_errors.items()}
    paths = write_ablation_report(protocol, out_dir, errors, table3, depth_errors, table5)
    return {"table3": table3, "table5": table5, "report": {k: str(v) if not isinstance(v, list) else [str(p) for p in v]
                                                          for k, v in paths.items()}}


def _violins(groups: dict, title: str, out_dir: Path, stem: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {k: [x for x in v.values() if np.isfinite(x)] for k, v in groups.items()}
    data = {k: v for k, v in data.items() if v}
    fig, ax = plt.subplots(figsize=(1.6 * max(3, len(data)) + 1, 3.6))
    if data:
        ax.violinplot(list(data.values()), showmedians=True, showextrema=False)
        ax.boxplot(list(data.values()), widths=0.12, showfliers=False)
        ax.set_xticks(range(1, len(data) + 1), list(data))
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("T60 error (%)")
    ax.set_title(title)
    name = save_figure(fig, out_dir, stem)
    plt.close(fig)
    return name


def _ci(pair) -> str:
    return "–" if pair[0] is None else f"[{pair[0]:.1f}, {pair[1]:.1f}]"


def write_ablation_report(protocol: AblationProtocol, out_dir: Path, errors, table3, depth_errors, table5) -> dict:
    """Table 3, Fig. 8, Table 5, Fig. 10 as Markdown, HTML and LaTeX, figures as PNG and PDF."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows3 = []
    for v in protocol.variants:
        s = table3[v.name]
        test = s.get("vs_main", {})
        rows3.append([v.name, s["n"], s["n_unmeasurable"], format_number(s["mean"], signed=True), format_number(s["sd"]),
                      format_number(s["median"], signed=True), _ci(s["ci95"]["mean"]), _ci(s["ci95"]["sd"]),
                      format_number(test.get("p"), 4) if test else "(reference)"])
    rows5 = [[DEPTH_LABELS.get(d, d), s["n"], s["n_unmeasurable"], format_number(s["mean"], signed=True), format_number(s["sd"]),
              format_number(s["median"], signed=True), _ci(s["ci95"]["mean"]), _ci(s["ci95"]["sd"])]
             for d, s in table5.items()]
    header = ["variant", "n", "unmeasurable", "μ (%)", "σ (%)", "median (%)", "95 % CI μ", "95 % CI σ",
              "p (|error| vs main)"]
    fig8 = _violins(errors, "T60 error per variant (Fig. 8)", out_dir, "fig8_t60_error_by_variant")
    fig10 = _violins({DEPTH_LABELS.get(d, d): e for d, e in depth_errors.items()},
                     "T60 error under depth steering (Fig. 10)", out_dir, "fig10_depth_steering")
    blocks = [
        paragraph(f"Protocol: {protocol.path}; data: {protocol.data} (split {protocol.split}); T60 definition: "
                  f"{protocol.t60_definition}. Errors are (generated - true) / true x 100 per test example. "
                  "n: examples with a measurable generated IR; unmeasurable: generated IRs without a measurable "
                  "T60, left out of the statistics (test examples whose true T60 is not measurable are left out "
                  f"entirely). CIs: percentile bootstrap, {N_BOOTSTRAP} resamples. p: Wilcoxon signed-rank test of |error| "
                  "against the main model on the same examples (two-sided)."),
        heading("Table 3: T60 error per variant"),
        table(header, rows3, "T60 error statistics per model variant", name="table3"),
        figure(fig8, "Fig. 8: distribution of the T60 error per variant"),
        heading("Table 5: depth steering"),
        table(header[:-1], rows5, f"The {protocol.main} model with estimated vs constant depth", name="table5"),
        figure(fig10, "Fig. 10: T60 error under depth steering"),
    ]
    for v in protocol.variants:
        if v.description:
            blocks.append(paragraph(f"{v.name}: {v.description}"))
    return write_report(blocks, out_dir, f"Ablation study: {protocol.name}")
