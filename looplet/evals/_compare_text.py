"""The terminal form of a report comparison: a compact table a CI log shows whole.

One row per eval that changed (every eval with ``show_all``), worst first: its status, the
verdict and passes/runs of each side, the signed changes of pass rate, mean score, cost,
tokens and steps, Fisher's p-value, and the eval; under a changed eval, the first step where
its trajectories diverge. Then the totals of both reports.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from looplet.evals.report_model import COUNTED, PASSED, EvalEntry, Report

if TYPE_CHECKING:
    from looplet.evals.compare import EvalDelta, ReportDiff

__all__ = ["diff_lines", "dollars", "signed", "totals_line"]

_HEAD = ("change", "base", "new", "rate", "score", "cost", "tokens", "steps", "p", "eval")


def signed(value: float | None, kind: str) -> str:
    """A signed delta: ``+70%`` (rate), ``-0.60`` (score), ``+$0.0004`` (cost), ``+120``."""
    if value is None:
        return "-"
    if value == 0:
        return {"rate": "0%", "score": "0.00", "cost": "$0"}.get(kind, "0")
    if kind == "rate":
        return f"{value * 100:+.0f}%"
    if kind == "score":
        return f"{value:+.2f}"
    if kind == "cost":
        return ("-" if value < 0 else "+") + dollars(abs(value))
    return f"{value:+.0f}"


def dollars(value: float) -> str:
    """``$0.0123``; below a cent, two significant digits (``$0.00000060``): a cheap eval's
    cost, and its change, is millionths of a dollar."""
    if value == 0:
        return "$0"
    places = min(10, max(4, 1 - math.floor(math.log10(abs(value)))))
    return f"{'-' if value < 0 else ''}${abs(value):.{places}f}"


def _side(entry: EvalEntry | None) -> str:
    return "-" if entry is None else f"{entry.verdict} {entry.passes}/{entry.runs}"


def row(delta: EvalDelta) -> list[str]:
    """The table row of one eval."""
    p = delta.change.p_value if delta.change is not None else None
    return [
        delta.status,
        _side(delta.base),
        _side(delta.new),
        signed(delta.delta("pass_rate"), "rate"),
        signed(delta.delta("mean_score"), "score"),
        signed(delta.delta("cost_usd"), "cost"),
        signed(delta.delta("tokens"), "int"),
        signed(delta.delta("steps"), "int"),
        "-" if p is None else f"{p:.4f}",
        delta.eval,
    ]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    numeric = {3, 4, 5, 6, 7, 8}
    out = []
    for r in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(r[:-1])
        ]
        out.append("  ".join([*cells, r[-1]]).rstrip())
    return out


def _run_label(path: str, report: Report) -> str:
    started = report.run.started.replace("T", " ")[:16] or "no start time"
    return f"{path} ({started}, {len(report.evals)} evals)"


def totals_line(report: Report) -> str:
    """``passed 10/12 runs, mean score 0.85, cost $0.0130, 12500 tokens``."""
    items = report.items
    runs = sum(item.verdict in COUNTED for item in items)
    passes = sum(item.verdict in PASSED for item in items)
    t = report.totals
    score = "-" if t.mean_score is None else f"{t.mean_score:.2f}"
    cost = "-" if t.cost_usd is None else dollars(t.cost_usd)
    tokens = "-" if t.tokens is None else str(t.tokens)
    return f"passed {passes}/{runs} runs, mean score {score}, cost {cost}, tokens {tokens}"


def diff_lines(diff: ReportDiff, *, show_all: bool = False) -> list[str]:
    """The comparison as lines of text (see the module's docstring)."""
    from looplet.evals.compare import STATUSES

    out = [
        f"base: {_run_label(diff.base_path, diff.base)}",
        f"new:  {_run_label(diff.new_path, diff.new)}",
        "",
    ]
    rank = {status: i for i, status in enumerate(STATUSES)}
    shown = sorted(
        (d for d in diff.evals if show_all or d.status != "unchanged"),
        key=lambda d: (rank[d.status], d.eval),
    )
    if shown:
        table = _table([list(_HEAD), *(row(d) for d in shown)])
        out.append(table[0])
        for delta, line in zip(shown, table[1:], strict=True):
            out.append(line)
            if delta.failure is not None:
                out.append(f"    failed: {_clip(delta.failure, 120)}")
            if delta.divergence is not None:
                out.append(f"    diverged at {delta.divergence.describe()}")
    else:
        out.append("no eval changed")
    counts = diff.counts()
    out += [
        "",
        ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no evals",
        f"base: {totals_line(diff.base)}",
        f"new:  {totals_line(diff.new)}",
    ]
    return out


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
