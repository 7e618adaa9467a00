"""A tiny document model (headings, paragraphs, tables, images) rendered to Markdown and to self-contained HTML.

The report is built once as a list of blocks, so report.md and report.html always show the same numbers. Images are
referenced by relative path (the PNGs sit next to the report); the HTML has inline CSS and no scripts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Union

__all__ = ["Document", "Heading", "Image", "Paragraph", "Table", "fmt", "fmt_stats"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str  # plain text; `code` spans are kept as such in Markdown and rendered as <code> in HTML


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report
    alt: str


Block = Union[Heading, Paragraph, Table, Image]


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals, or an en dash for a missing value."""
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_stats(stats: dict | None, digits: int = 3) -> str:
    """'mean ± std' of a `compute_stats` dict ('–' when empty); a single value shows no ± part."""
    if not stats or stats.get("mean") is None:
        return "–"
    if stats.get("n", 0) <= 1:
        return fmt(stats["mean"], digits)
    return f"{fmt(stats['mean'], digits)} ± {fmt(stats['std'], digits)}"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline_html(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{border-bottom:2px solid #ddd;padding-bottom:.2em}
h2{margin-top:1.8em;border-bottom:1px solid #eee}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child,td:nth-child(2){text-align:left}caption{caption-side:top;text-align:left;
font-style:italic;color:#555;padding-bottom:.3em}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code{background:#f5f5f5;padding:0 .2em;border-radius:3px}p.note{color:#555}"""


@dataclass
class Document:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Heading(text, level))

    def paragraph(self, text: str) -> None:
        self.blocks.append(Paragraph(text))

    def table(self, headers: list[str], rows: list[list[str]], caption: str = "") -> None:
        self.blocks.append(Table(list(headers), [list(r) for r in rows], caption))

    def image(self, path: str, alt: str) -> None:
        self.blocks.append(Image(path, alt))

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown."""
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            if isinstance(block, Heading):
                lines += [f"{'#' * block.level} {block.text}", ""]
            elif isinstance(block, Paragraph):
                lines += [block.text, ""]
            elif isinstance(block, Table):
                if block.caption:
                    lines += [f"*{block.caption}*", ""]
                lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
                lines.append("|" + "|".join(["---"] * len(block.headers)) + "|")
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
                lines.append("")
            else:
                lines += [f"![{block.alt}]({block.path})", ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        """One self-contained HTML page (inline CSS, no scripts, images by relative path)."""
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            if isinstance(block, Heading):
                level = min(max(block.level, 1), 6)
                body.append(f"<h{level}>{html.escape(block.text)}</h{level}>")
            elif isinstance(block, Paragraph):
                body.append(f"<p>{_inline_html(block.text)}</p>")
            elif isinstance(block, Table):
                caption = f"<caption>{_inline_html(block.caption)}</caption>" if block.caption else ""
                head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.headers)
                rows = "".join("<tr>" + "".join(f"<td>{_inline_html(str(c))}</td>" for c in row) + "</tr>"
                               for row in block.rows)
                body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            else:
                body.append(f'<img src="{html.escape(block.path, quote=True)}" alt="{html.escape(block.alt)}">')
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")
