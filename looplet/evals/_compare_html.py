"""The HTML page of ``looplet compare --html``: the same table as the terminal, every eval
(changed ones first), and under each changed eval the step where its runs diverge, both sides.
Self-contained (:mod:`looplet.evals._html_page`): no script, nothing loaded from anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from looplet.evals._compare_text import _HEAD, row, totals_line
from looplet.evals._html_page import esc, page

if TYPE_CHECKING:
    from looplet.evals.compare import Divergence, ReportDiff

__all__ = ["render"]

_TONE = {"newly failing": "worse", "regression": "worse", "newly passing": "better",
         "improvement": "better", "changed": "other"}  # fmt: skip


def _step_cell(step: Mapping[str, Any] | None) -> str:
    from looplet.evals.compare import error_kind

    if step is None:
        return "<em>(stopped before this step)</em>"
    parts = [f"<code>{esc(step.get('tool'))}</code> <code>{esc(step.get('args') or '')}</code>"]
    kind = error_kind(step)
    if kind is not None:
        parts.append(f'<br><span class="worse">{esc(kind)}</span>: {esc(step.get("error") or "")}')
    elif step.get("result") is not None:
        parts.append(f"<br>→ <code>{esc(step.get('result'))}</code>")
    return "".join(parts)


def _divergence(div: Divergence) -> str:
    return (
        f"<b>diverged at step {div.step}</b> ({esc(', '.join(div.fields))})"
        f'<table><tr><th>base <span class="mono">{esc(div.base_nodeid)}</span></th>'
        f'<th>new <span class="mono">{esc(div.new_nodeid)}</span></th></tr>'
        f"<tr><td>{_step_cell(div.base)}</td><td>{_step_cell(div.new)}</td></tr></table>"
    )


def render(diff: ReportDiff) -> str:
    """The page (see the module's docstring)."""
    from looplet.evals.compare import STATUSES

    rank = {status: i for i, status in enumerate(STATUSES)}
    rows = []
    for delta in sorted(diff.evals, key=lambda d: (rank[d.status], d.eval)):
        cells = [esc(cell) for cell in row(delta)]
        tone = _TONE.get(delta.status)
        if tone:
            cells[0] = f'<span class="{tone}">{cells[0]}</span>'
        cells[-1] = f'<span class="mono">{cells[-1]}</span>'
        rows.append(cells)
        if delta.failure is not None:
            rows.append([f"<b>failed</b>: <code>{esc(delta.failure)}</code>"])
        if delta.divergence is not None:
            rows.append([_divergence(delta.divergence)])
    counts = ", ".join(f"{n} {status}" for status, n in diff.counts().items() if n)
    body = [
        "<h1>looplet compare</h1>",
        f'<p class="meta">base <code>{esc(diff.base_path)}</code> ({esc(diff.base.run.started)})'
        f" → new <code>{esc(diff.new_path)}</code> ({esc(diff.new.run.started)})</p>",
        f"<p>{esc(counts or 'no evals')}</p>",
        f'<p class="meta">base: {esc(totals_line(diff.base))}<br>'
        f"new: {esc(totals_line(diff.new))}</p>",
        "<h2>evals</h2>",
        _rows_table(rows),
        '<p class="meta">Deltas are new minus base. p: Fisher\'s exact test on the passes and '
        "fails of each side (two-sided); below 0.05 a drop is a regression.</p>",
    ]
    return page(f"looplet compare: {diff.base_path} → {diff.new_path}", "".join(body))


def _rows_table(rows: list[list[str]]) -> str:
    # A divergence is a row of one cell spanning the table.
    head = "".join(f"<th{_cls(i)}>{esc(name)}</th>" for i, name in enumerate(_HEAD))
    out = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for cells in rows:
        if len(cells) == 1:
            out.append(f'<tr class="div"><td colspan="{len(_HEAD)}">{cells[0]}</td></tr>')
            continue
        tds = "".join(f"<td{_cls(i)}>{cell}</td>" for i, cell in enumerate(cells))
        out.append(f"<tr>{tds}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _cls(column: int) -> str:
    # Numbers right-aligned; status and verdicts kept on one line.
    return ' class="n"' if 3 <= column <= 8 else ' class="w"' if column < 3 else ""
