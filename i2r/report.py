"""Reports: one list of blocks rendered as Markdown, self-contained HTML and LaTeX tables.

A report is a sequence of :class:`Block` values (heading, paragraph, table, figure, audio). The
same blocks become ``report.md`` (figures and audio linked next to it), ``report.html`` (figures
embedded as data URIs, so the file can be mailed on its own; audio linked) and, for every table,
a LaTeX ``tabular`` with booktabs rules. Figures are saved as PNG and PDF.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from i2r.files import atomic_savefig, atomic_write_text


@dataclass
class Block:
    """One piece of a report. ``kind`` is heading, paragraph, table, figure or audio.

    - heading: ``text``, ``level`` (1-3);
    - paragraph: ``text`` (plain text; Markdown emphasis is left as is);
    - table: ``header`` (list of str), ``rows`` (list of lists), ``text`` (caption), ``name``
      (file stem of its LaTeX version);
    - figure / audio: ``path`` (relative to the report folder), ``text`` (caption).
    """

    kind: str
    text: str = ""
    level: int = 2
    header: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    path: str = ""
    name: str = ""


def heading(text: str, level: int = 2) -> Block:
    """A section heading of ``level`` 1-3."""
    return Block("heading", text=text, level=level)


def paragraph(text: str) -> Block:
    """A paragraph of plain text."""
    return Block("paragraph", text=text)


def table(header, rows, caption: str = "", name: str = "") -> Block:
    """A table; with ``name`` it is also written as ``<name>.tex`` by :func:`write_report`."""
    return Block("table", text=caption, header=list(header), rows=[list(r) for r in rows], name=name)


def figure(path: str, caption: str = "") -> Block:
    """An image file ``path`` relative to the report folder (embedded in the HTML)."""
    return Block("figure", text=caption, path=path)


def audio(path: str, caption: str = "") -> Block:
    """An audio file ``path`` relative to the report folder (a player in the HTML, a link in Markdown)."""
    return Block("audio", text=caption, path=path)


def format_number(value, digits: int = 1, signed: bool = False) -> str:
    """A table cell: ``None``/NaN -> an en dash, floats to ``digits`` decimals."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def save_figure(fig, out_dir: Path, stem: str) -> str:
    """Save a matplotlib figure as ``stem.png`` and ``stem.pdf``; returns the PNG's file name."""
    atomic_savefig(fig, out_dir / f"{stem}.png", dpi=130, bbox_inches="tight")
    atomic_savefig(fig, out_dir / f"{stem}.pdf", format="pdf", bbox_inches="tight")
    return f"{stem}.png"


def _md_cell(value) -> str:
    """A table cell's text with the pipes that would split it escaped."""
    return str(value).replace("|", "\\|")


def to_markdown(blocks: list[Block]) -> str:
    """GitHub-flavoured Markdown of ``blocks``; figures and audio are linked, not embedded."""
    parts = []
    for b in blocks:
        if b.kind == "heading":
            parts.append(f"{'#' * b.level} {b.text}")
        elif b.kind == "paragraph":
            parts.append(b.text)
        elif b.kind == "table":
            lines = ["| " + " | ".join(map(_md_cell, b.header)) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b.rows]
            if b.text:
                lines.append(f"\n*{b.text}*")
            parts.append("\n".join(lines))
        elif b.kind == "figure":
            parts.append(f"![{b.text}]({b.path})" + (f"\n\n*{b.text}*" if b.text else ""))
        elif b.kind == "audio":
            parts.append(f"[{b.text or b.path}]({b.path})")
    return "\n\n".join(parts) + "\n"


_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
                ".gif": "image/gif", ".webp": "image/webp"}


def _data_uri(path: Path) -> str:
    mime = _IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_inline(text: str) -> str:
    """Escape, then turn ``**bold**`` pairs and backtick ``code`` pairs into tags (paragraph markup)."""
    parts = html.escape(text).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], title: str, base: Path) -> str:
    """Self-contained HTML: figures under ``base`` are embedded; audio players link their files.

    Paragraphs understand ``**bold**`` and backtick code, as their Markdown rendering shows them."""
    body = []
    for b in blocks:
        if b.kind == "heading":
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif b.kind == "paragraph":
            body.append(f"<p>{_html_inline(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in b.rows)
            caption = f"<caption>{html.escape(b.text)}</caption>" if b.text else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "figure":
            src = _data_uri(base / b.path) if (base / b.path).exists() else html.escape(b.path)
            body.append(f'<figure><img src="{src}" alt="{html.escape(b.text)}">'
                        f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
        elif b.kind == "audio":
            body.append(f'<p>{html.escape(b.text)}<br><audio controls preload="none" '
                        f'src="{html.escape(b.path)}"></audio></p>')
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
             "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1rem 0}"
             "th,td{border-bottom:1px solid #ccc;padding:.25rem .6rem;text-align:right}"
             "th:first-child,td:first-child{text-align:left}caption{caption-side:bottom;font-style:italic;"
             "padding-top:.4rem}img{max-width:100%}figcaption{font-style:italic;font-size:.9rem}")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--",
                  "μ": r"$\mu$", "σ": r"$\sigma$", "±": r"$\pm$", "−": "-"}


def _latex_escape(text) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(block: Block) -> str:
    """A table block as a LaTeX ``table`` with a booktabs ``tabular`` (first column left-aligned)."""
    spec = "l" + "r" * (len(block.header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_latex_escape(h) for h in block.header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in block.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if block.text:
        lines.append(rf"\caption{{{_latex_escape(block.text)}}}")
    if block.name:
        lines.append(rf"\label{{tab:{block.name}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_report(blocks: list[Block], out_dir: str | os.PathLike, title: str) -> dict:
    """Write ``report.md``, ``report.html`` and one ``<name>.tex`` per named table into ``out_dir``.

    Returns the written paths by kind.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"markdown": out / "report.md", "html": out / "report.html", "latex": []}
    atomic_write_text(written["markdown"], to_markdown([heading(title, 1)] + blocks))
    atomic_write_text(written["html"], to_html([heading(title, 1)] + blocks, title, out))
    for b in blocks:
        if b.kind == "table" and b.name:
            path = out / f"{b.name}.tex"
            atomic_write_text(path, to_latex(b))
            written["latex"].append(path)
    return written
