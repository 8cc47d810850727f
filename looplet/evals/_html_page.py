"""What the ``looplet compare`` and ``looplet history`` pages share: one self-contained HTML
page (inline CSS, no script, nothing loaded from anywhere), tables, and inline SVG line charts.

Every value from a report goes through :func:`esc`; the charts are drawn here from numbers,
so a CI job can publish the file as an artifact and anyone can open it offline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

__all__ = ["esc", "line_chart", "page", "table"]

_CSS = """
:root{--bg:#fff;--fg:#1d2330;--mute:#667085;--line:#e4e7ec;--card:#f8f9fb;--good:#12805c;
--bad:#c4320a;--warn:#8a6d00;--accent:#2e5aac;--code:#f2f4f7}
@media (prefers-color-scheme:dark){:root{--bg:#14161b;--fg:#e6e8ec;--mute:#98a2b3;
--line:#2c313c;--card:#1b1e25;--code:#232732;--good:#47cd89;--bad:#f97066;--warn:#fdb022;
--accent:#84adff}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
main{max-width:1200px;margin:0 auto;padding:16px 24px}h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:20px 0 6px}.meta{color:var(--mute);margin:0 0 8px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid var(--line);vertical-align:top}th{color:var(--mute);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.w{white-space:nowrap}
.worse{color:var(--bad);font-weight:600}.better{color:var(--good);font-weight:600}
.other{color:var(--warn)}.div td{background:var(--card);font-size:12.5px}
.div table{table-layout:fixed}.div th{width:50%}.div code{overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px;background:var(--card)}
figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:auto}
svg text{fill:var(--mute);font:11px system-ui,sans-serif}svg .axis{stroke:var(--line)}
svg .series{fill:none;stroke:var(--accent);stroke-width:2}svg .dot{fill:var(--accent)}
"""


def esc(value: object) -> str:
    """``value`` as HTML text, quotes escaped."""
    return escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body`` (already HTML)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """A table of cells that are already HTML; columns in ``numeric`` right-aligned."""
    cls = [' class="n"' if i in numeric else "" for i in range(len(head))]
    out = ["<table><thead><tr>"]
    out += [f"<th{cls[i]}>{esc(name)}</th>" for i, name in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td{cls[i]}>{cell}</td>" for i, cell in enumerate(r)))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def line_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    fmt: Callable[[float], str] = "{:.2f}".format,
    bounds: tuple[float, float] | None = None,
) -> str:
    """An inline SVG line chart of ``values`` (one per run, ``None`` leaves a gap), each
    point with a ``<title>`` tooltip (``labels[i]: value``); ``bounds`` fixes the y range
    (0 to 1 for rates), else it spans the values from 0."""
    width, height, left, right, top, bottom = 360, 170, 52, 12, 10, 24
    known = [v for v in values if v is not None]
    lo, hi = bounds if bounds is not None else (min(0.0, *known) if known else 0.0,
                                                max(known) if known else 1.0)  # fmt: skip
    if hi <= lo:
        hi = lo + 1.0
    n = len(values)

    def x(i: int) -> float:
        return left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    parts = [
        f"<figure><figcaption>{esc(title)}</figcaption>"
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" '
        f'y2="{height - bottom}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}"/>',
    ]
    for tick in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                     f"{esc(fmt(tick))}</text>")  # fmt: skip
    step = max(1, n // 8)  # at most ~8 run numbers under the axis
    for i in range(0, n, step):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 6}" text-anchor="middle">#{i + 1}</text>')
    segment: list[str] = []
    for i, v in enumerate([*values, None]):  # a None closes the current segment
        if v is None:
            if len(segment) > 1:
                parts.append(f'<polyline class="series" points="{" ".join(segment)}"/>')
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(v):.1f}")
    for i, v in enumerate(values):
        if v is not None:
            tip = f"#{i + 1} {labels[i]}: {fmt(v)}"
            parts.append(f'<circle class="dot" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3">'
                         f"<title>{esc(tip)}</title></circle>")  # fmt: skip
    parts.append("</svg></figure>")
    return "".join(parts)
