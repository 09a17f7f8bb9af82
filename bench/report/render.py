"""One document model, two renderings: GitHub markdown (figures as relative links to figures/) and
one self-contained HTML file (figures as base64 data URIs, inline CSS, an inline sorting script;
no external URL of any kind, so it reads the same with the network off)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Paragraph:
    """Plain text; `code` in backticks is the only markup."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells; `rows` are lists of str, one per column."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    """A figure: `path` is the PNG on disk, `relative` its link from report.md."""

    path: Path
    relative: str
    caption: str


Block = Paragraph | Bullets | Table | Image


@dataclass
class Section:
    title: str
    level: int = 2
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return anchor(self.title)


@dataclass
class Document:
    title: str
    intro: list[Block]
    sections: list[Section]


def anchor(title: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def fmt(value: float | int | None, digits: int = 4) -> str:
    """A number with `digits` significant digits; `n/a` for missing values."""
    if value is None:
        return "n/a"
    value = float(value)
    if not np.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}g}"
    return "0" if text == "-0" else text


def fmt_ci(low: float, high: float) -> str:
    """`[low, high]`, or `n/a` when the interval is undefined (fewer than 2 runs)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    return f"[{fmt(low)}, {fmt(high)}]"


# ---- markdown ------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        lines = ["| " + " | ".join(_md_cell(c) for c in block.columns) + " |",
                 "| " + " | ".join("---" for _ in block.columns) + " |"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Image):
        alt = block.caption.replace("[", "(").replace("]", ")")
        return f"![{alt}]({block.relative})\n\n*{block.caption}*"
    raise TypeError(f"unknown block {type(block).__name__}")


def to_markdown(document: Document) -> str:
    """GitHub-flavoured markdown: a contents list of links to the headings, tables, figure links."""
    parts = [f"# {document.title}"]
    parts += [_md_block(block) for block in document.intro]
    contents = [f"{'  ' * (s.level - 2)}- [{s.title}](#{s.anchor})" for s in document.sections]
    parts.append("## Contents\n\n" + "\n".join(contents))
    for section in document.sections:
        parts.append(f"{'#' * section.level} {section.title}")
        parts += [_md_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


# ---- HTML ----------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#fff;
line-height:1.45;font-size:15px}
main{max-width:1280px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:1.9em;border-bottom:1px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.45em;border-bottom:1px solid #d0d7de;padding-bottom:.25em;margin-top:1.8em}
h3{font-size:1.15em;margin-top:1.4em}
code{background:#f2f4f6;padding:.1em .35em;border-radius:4px;font-size:90%}
nav{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 20px;display:inline-block}
nav ul{margin:4px 0;padding-left:18px}
.table-wrap{overflow-x:auto;margin:10px 0 18px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:4px 9px;text-align:left;white-space:nowrap}
th{background:#f0f3f6;cursor:pointer;user-select:none}
th:hover{background:#e2e7ec}
th.asc::after{content:" \\25B2";font-size:9px}
th.desc::after{content:" \\25BC";font-size:9px}
tr:nth-child(even) td{background:#fafbfc}
figure{margin:14px 0 26px}
figure img{max-width:100%;height:auto;border:1px solid #e4e7eb}
figcaption{color:#57606a;font-size:13px;margin-top:4px}
"""

_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("th");
  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = !th.classList.contains("asc");
      headers.forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(ascending ? "asc" : "desc");
      function key(row) {
        var text = row.cells[column].textContent.trim();
        var number = parseFloat(text.replace(/^[\\[(]/, ""));
        return isNaN(number) ? text : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = (typeof x === "number" && typeof y === "number") ? x - y
          : (typeof x === "number" ? -1 : (typeof y === "number" ? 1 : x.localeCompare(y)));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.documentElement.dataset.sortable = "ready";
"""


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
        body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return (f'<div class="table-wrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")
    if isinstance(block, Image):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        caption = html.escape(block.caption)
        return (f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    raise TypeError(f"unknown block {type(block).__name__}")


def to_html(document: Document) -> str:
    """One self-contained page: inline CSS and script, figures as data URIs, a contents list."""
    items, depth = [], 2
    for section in document.sections:
        while section.level > depth:
            items.append("<ul>")
            depth += 1
        while section.level < depth:
            items.append("</ul>")
            depth -= 1
        items.append(f'<li><a href="#{section.anchor}">{html.escape(section.title)}</a></li>')
    items += ["</ul>"] * (depth - 2)
    parts = [f"<h1>{html.escape(document.title)}</h1>"]
    parts += [_html_block(block) for block in document.intro]
    parts.append('<nav><strong>Contents</strong><ul>' + "".join(items) + "</ul></nav>")
    for section in document.sections:
        parts.append(f'<h{section.level} id="{section.anchor}">{html.escape(section.title)}</h{section.level}>')
        parts += [_html_block(block) for block in section.blocks]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(document.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(parts) + f"\n</main>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n")
