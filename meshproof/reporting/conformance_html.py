"""The conformance report as a single HTML page: the Markdown summary's content, for a browser.

Rendered from the Markdown that `render_markdown` writes (headings, bullet lists, tables, code blocks and
inline code, nothing else), so both say the same thing: one source of wording, two formats.
"""

from __future__ import annotations

import html
import re
from typing import Any

from meshproof.reporting.conformance_markdown import render_markdown

_INLINE = re.compile(r"`([^`]*)`|\*\*([^*]*)\*\*")
STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}pre{background:#f4f4f4;padding:.5em}"
)


def render_html(report: dict[str, Any]) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><style>{STYLE}</style>"]
    out.append(f"<title>meshproof conformance report {html.escape(str(report.get('runId', '?')))}</title>")
    out.append("</head><body>")
    lines = render_markdown(report).splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = lines.index("```", index + 1) if "```" in lines[index + 1 :] else len(lines)
            out.append("<pre>" + html.escape("\n".join(lines[index + 1 : end])) + "</pre>")
            index = end + 1
            continue
        if line.startswith("|"):
            rows = []
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(lines[index])
                index += 1
            out.append(_table(rows))
            continue
        if line.startswith("- "):
            items = []
            while index < len(lines) and lines[index].startswith("- "):
                items.append(f"<li>{_inline(lines[index][2:])}</li>")
                index += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        heading = re.match(r"^(#+) (.*)$", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        index += 1
    out.append("</body></html>\n")
    return "\n".join(out)


def _table(rows: list[str]) -> str:
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    head, body = cells[0], [r for r in cells[1:] if not all(set(c) <= {"-"} for c in r)]
    parts = ["<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body]
    return "".join(parts) + "</table>"


def _inline(text: str) -> str:
    """Escape, then turn `code` and **bold** into tags (escaping first keeps report text inert)."""
    escaped = html.escape(text)
    return _INLINE.sub(
        lambda m: f"<code>{m.group(1)}</code>" if m.group(1) is not None else f"<b>{m.group(2)}</b>", escaped
    )
