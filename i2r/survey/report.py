"""Rendering the survey analysis: the paper's Table 4, Fig. 9, a Markdown/HTML report, a text summary.

A report is a list of blocks (heading, paragraph, table, image) rendered to Markdown or HTML by the
same code, so the two never disagree. Participant ids and scene names come from the user's CSV:
they are escaped in HTML and in Markdown tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from i2r.files import atomic_savefig, atomic_write_text
from i2r.report import Block, heading, paragraph, table, to_html, to_markdown
from i2r.report import figure as figure_block
from i2r.survey.responses import RATINGS
from i2r.survey.stats import SurveyResult

PAPER_NOTE = (
    "The paper's Table 4 lists 56 degrees of freedom for its 'paired' TOST. A paired test on n "
    "participants has n - 1 dof (30 for the paper's 31 experts, whose ANOVA reports F(3, 90)); 56 = "
    "2 x 29 - 2 is the dof of an unpaired two-sample test on 29 participants. `--tost unpaired` "
    "reproduces that choice."
)
FIG9_COLOURS = {"real": "#1b9e4b", "generated": "#d62728", "equal": "#9e9e9e"}


def format_p(p: float | None) -> str:
    """A p-value in the paper's style: ``< .001``, ``.006``, ``.28``."""
    if p is None or not np.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "< .001"
    text = f"{p:.3f}" if p < 0.01 else f"{p:.2f}"
    return text[1:] if text.startswith("0") else text


def _num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    if isinstance(x, (int, np.integer)) or float(x).is_integer():
        return str(int(x))
    return f"{x:.{digits}f}"


def _fixed(x: float, width: int, digits: int) -> str:
    """``x`` right-aligned with ``digits`` decimals, or ``n/a`` where it is undefined (NaN)."""
    return f"{x:{width}.{digits}f}" if np.isfinite(x) else f"{'n/a':>{width}}"


def tost_description(result: SurveyResult) -> str:
    """Which TOST was run, its bound, and the Bonferroni family size."""
    cfg = result.config
    kind = ("paired (one-sample t on each participant's real - generated difference, dof n - 1)"
            if cfg.tost == "paired" else "unpaired (Student's two-sample t, dof 2n - 2), as in the paper's Table 4")
    return (f"Two one-sided tests, {kind}, bound ±{cfg.bound:g} rating unit(s); p-values Bonferroni-adjusted "
            f"over all {len(result.tost)} tests of the table ({len(RATINGS)} ratings x {len(result.scenes)} scenes).")


def table4_blocks(result: SurveyResult) -> list[Block]:
    """Table 4 of the paper: Rating | Scene | DoF | p (Bonferroni-adjusted TOST p)."""
    rows = tuple((r.rating.capitalize(), r.scene.capitalize(), _num(r.dof), format_p(r.p_bonf))
                 for r in result.tost.itertuples())
    caption = ("Table 4. Simple main effect tests for equivalence between real and generated IRs per scene. "
               + tost_description(result) + (" SIMULATED DATA." if result.simulated else ""))
    return [table(("Rating", "Scene", "DoF", "p"), rows), paragraph(caption)]


def _anova_blocks(result: SurveyResult) -> list[Block]:
    blocks = [heading("Two-way repeated-measures ANOVA (source x scene)"),
              paragraph("Greenhouse-Geisser corrected p (p_gg) with epsilon; ng2 is the generalised eta squared "
                         "(Olejnik & Algina 2003). Each participant's ratings are averaged over a scene's examples.")]
    for rating, anova in result.anova.items():
        rows = tuple((r.effect, _num(r.F), _num(r.ddof1), _num(r.ddof2), format_p(r.p_unc), format_p(r.p_gg),
                      _num(r.eps), _num(r.ng2)) for r in anova.itertuples())
        blocks += [paragraph(f"**{rating.capitalize()}**"),
                   table(("Effect", "F", "df1", "df2", "p_unc", "p_gg", "eps", "ng2"), rows)]
        blocks += [paragraph(f"Note: {r.effect}: {r.note}.") for r in anova.itertuples() if r.note]
    return blocks


def _normality_blocks(result: SurveyResult) -> list[Block]:
    norm = result.normality
    rows = tuple((c["rating"], c["source"], c["scene"], _num(c["statistic"]), format_p(c["p"]), c["note"])
                 for c in norm["cells"])
    summary = (f"{norm['test']} on {norm['on']} (n = {norm['n']}). {norm['n_rejected']} of {norm['n_tested']} "
               f"tested cells reject normality at alpha = {norm['alpha']:g} (uncorrected). Caveat: {norm['caveat']}.")
    return [heading("Normality"), paragraph(summary),
            table(("Rating", "Source", "Scene", "K2", "p", "Note"), rows)]


def _participant_blocks(result: SurveyResult) -> list[Block]:
    text = (f"{result.n_participants} participants analysed ({result.n_stimuli} stimuli each, {result.layout} CSV); "
            f"{len(result.excluded)} excluded.")
    blocks = [heading("Participants"), paragraph(text)]
    if result.excluded:
        blocks.append(table(("Excluded participant", "Reason"),
                            [(e["participant"], e["reason"]) for e in result.excluded]))
    return blocks


def report_blocks(result: SurveyResult, figure: str | None = None) -> list[Block]:
    """The whole report, in order."""
    blocks = [heading("Listening study: statistics", 1)]
    if result.simulated:
        blocks.append(paragraph("**SIMULATED DATA**: these responses were generated by i2r.survey.simulate, "
                                 "not collected from listeners."))
    blocks += _participant_blocks(result) + _normality_blocks(result) + _anova_blocks(result)
    blocks += [heading("Equivalence of real and generated IRs (Table 4)")] + table4_blocks(result)
    blocks.append(paragraph("Note on the paper: " + PAPER_NOTE))
    if figure:
        blocks += [heading("Per-participant ratings (Fig. 9)"),
                   figure_block(figure, "Paired per-participant mean ratings per scene; green: real rated "
                                        "higher, red: generated rated higher, grey: equal.")]
    return blocks


def plot_fig9(result: SurveyResult, path: str | Path) -> None:
    """Fig. 9: per scene and rating, one line per participant from its real to its generated mean.

    Line colour: green when real was rated higher, red when generated was, grey when equal; a small
    horizontal offset per participant keeps coincident lines visible; black markers are the means.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    k = len(result.scenes)
    fig, axes = plt.subplots(len(RATINGS), k, figsize=(2.4 * k + 1, 5.6), sharey=True, squeeze=False)
    for i, rating in enumerate(RATINGS):
        y = result.means[rating]
        jitter = np.linspace(-0.06, 0.06, y.shape[0])
        for j, scene in enumerate(result.scenes):
            ax = axes[i, j]
            for p in range(y.shape[0]):
                real, gen = y[p, 0, j], y[p, 1, j]
                colour = FIG9_COLOURS["real" if real > gen else "generated" if gen > real else "equal"]
                ax.plot([jitter[p], 1 + jitter[p]], [real, gen], color=colour, alpha=0.6, lw=1.2, marker="o", ms=2.5)
            ax.plot([0, 1], y[:, :, j].mean(axis=0), color="black", lw=2.2, marker="s", ms=5, zorder=5)
            ax.set_xticks([0, 1], ["real", "generated"])
            ax.set_xlim(-0.35, 1.35)
            ax.set_ylim(0.8, 5.2)
            ax.set_title(scene if i == 0 else "")
            if j == 0:
                ax.set_ylabel(f"{rating} (1-5)")
    title = "Per-participant ratings by scene" + (" (SIMULATED DATA)" if result.simulated else "")
    fig.suptitle(title)
    handles = [Line2D([], [], color=FIG9_COLOURS[key], lw=2) for key in ("real", "generated", "equal")]
    handles.append(Line2D([], [], color="black", lw=2.2, marker="s"))
    fig.legend(handles, ["real rated higher", "generated rated higher", "equal", "mean"],
               loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def summary_text(result: SurveyResult) -> str:
    """A plain-text summary for the terminal (``--format table``)."""
    lines = []
    if result.simulated:
        lines.append("SIMULATED DATA (i2r.survey.simulate), not real listeners")
    lines.append(f"participants analysed: {result.n_participants}; excluded: {len(result.excluded)}")
    lines += [f"  excluded {e['participant']}: {e['reason']}" for e in result.excluded]
    norm = result.normality
    lines.append(f"normality ({norm['test']}, per design cell, n = {norm['n']}): "
                 f"{norm['n_rejected']} of {norm['n_tested']} cells with p < {norm['alpha']:g}")
    for rating, anova in result.anova.items():
        lines.append(f"RM ANOVA, {rating}:")
        lines.append(f"  {'effect':<16}{'F':>8}{'df':>9}{'p_unc':>9}{'p_gg':>9}{'eps':>7}{'ng2':>7}")
        for r in anova.itertuples():
            lines.append(f"  {r.effect:<16}{_fixed(r.F, 8, 2)}{f'{r.ddof1}, {r.ddof2}':>9}{format_p(r.p_unc):>9}"
                         f"{format_p(r.p_gg):>9}{_fixed(r.eps, 7, 3)}{_fixed(r.ng2, 7, 3)}")
            if r.note:
                lines.append(f"    note: {r.note}")
    lines.append("TOST (Table 4): " + tost_description(result))
    lines.append(f"  {'rating':<9}{'scene':<12}{'dof':>5}{'diff':>7}{'p':>9}{'p_bonf':>9}  equivalent")
    for r in result.tost.itertuples():
        lines.append(f"  {r.rating:<9}{r.scene[:11]:<12}{_num(r.dof):>5}{r.mean_diff:7.2f}{format_p(r.p):>9}"
                     f"{format_p(r.p_bonf):>9}  {'yes' if r.equivalent else 'no'}")
    return "\n".join(lines) + "\n"


def write_outputs(result: SurveyResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``survey_stats.json``, ``table4.{md,html}``, ``fig9.png`` and ``report.{md,html}``."""
    out = Path(out_dir)
    paths = {name: out / name for name in
             ("survey_stats.json", "table4.md", "table4.html", "fig9.png", "report.md", "report.html")}
    atomic_write_text(paths["survey_stats.json"], json.dumps(result.to_json(), indent=2) + "\n")
    table4 = table4_blocks(result)
    atomic_write_text(paths["table4.md"], to_markdown(table4))
    atomic_write_text(paths["table4.html"], to_html(table4, "Table 4", out))
    plot_fig9(result, paths["fig9.png"])
    blocks = report_blocks(result, figure="fig9.png")
    atomic_write_text(paths["report.md"], to_markdown(blocks))
    atomic_write_text(paths["report.html"], to_html(blocks, "Listening study: statistics", out))
    return paths
