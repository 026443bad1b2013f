"""A report as a list of blocks, rendered to markdown or to standalone HTML.

Blocks are tuples: ``("h", level, text)``, ``("p", text)``, ``("table", header,
rows, caption)``, ``("img", src, alt)``, ``("list", items)``, ``("code", text)``.
Text may hold inline code in backticks (both renderers show it as code).
"""

from __future__ import annotations

import html
import re
from typing import Any

Block = tuple[Any, ...]

_CSS = """body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;
line-height:1.4}table{border-collapse:collapse;margin:.5em 0 1em}
th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;font-size:90%}
th{background:#eee}code,pre{background:#f4f4f4}pre{padding:.5em;overflow-x:auto}
img{max-width:100%}.caption{font-size:90%;color:#444}"""


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    """The blocks as GitHub-flavoured markdown."""
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out += ["#" * b[1] + " " + b[2], ""]
        elif kind == "p":
            out += [b[1], ""]
        elif kind == "table":
            header, rows, caption = b[1], b[2], b[3]
            out.append("| " + " | ".join(map(_md_cell, header)) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
            out += ["", caption, ""] if caption else [""]
        elif kind == "img":
            out += [f"![{b[2]}]({b[1]})", ""]
        elif kind == "list":
            out += [f"- {item}" for item in b[1]] + [""]
        elif kind == "code":
            out += ["```", b[1].rstrip("\n"), "```", ""]
        else:  # pragma: no cover - a programming error
            raise ValueError(f"unknown block {kind!r}")
    return "\n".join(out).rstrip("\n") + "\n"


def _inline(text: str) -> str:
    """Escape ``text`` for HTML, with backticked spans as ``<code>`` and ``**x**``
    as ``<strong>``."""
    parts = re.split(r"(`[^`]*`)", str(text))
    done = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            done.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            done.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(done)


def to_html(blocks: list[Block], title: str) -> str:
    """The blocks as one standalone HTML page (inline CSS, images by relative path)."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>",
           "<body>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "table":
            header, rows, caption = b[1], b[2], b[3]
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                    for r in rows]
            out.append("</table>")
            if caption:
                out.append(f'<p class="caption">{_inline(caption)}</p>')
        elif kind == "img":
            out.append(f'<p><img src="{html.escape(b[1])}" alt="{html.escape(b[2])}"></p>')
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "code":
            out.append(f"<pre><code>{html.escape(b[1].rstrip())}</code></pre>")
        else:  # pragma: no cover - a programming error
            raise ValueError(f"unknown block {kind!r}")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
