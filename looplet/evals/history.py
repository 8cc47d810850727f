"""Eval reports over time: pass rate, mean score, cost and tokens of each run, as a text table
and as one self-contained HTML page of inline SVG charts (``looplet history``).

Runs are put in the order they started (each report's ``run.started``; a merged report's is
its earliest shard's), so ``looplet history reports/*.json`` is chronological whatever the
files are called; reports that started at the same second keep the order given, and
``keep_order=True`` (``--keep-order``) keeps the command line's order throughout. When a
report has no readable start time the order given is kept too.

Per run: **pass rate** is passed runs over counted runs (``PASS``/``XPASS`` over
``PASS``/``XPASS``/``FAIL``/``ERROR``) across every eval item, so a repeated eval weighs by its
runs; **mean score** is the report's ``totals.mean_score`` (the mean of the evals' mean
scores); **cost** and **tokens** are the report's sums (``None`` when no eval recorded them).
The page also lists the evals whose verdict was not the same in every run. Only the standard
library is imported.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from looplet.evals._compare_text import dollars
from looplet.evals._html_page import esc, line_chart, page, table
from looplet.evals.report_model import COUNTED, PASSED, Report

__all__ = ["History", "RunPoint", "history_of", "load_history"]

_MAX_FLIPS = 200
"""The page lists at most this many evals whose verdict changed (most changes first)."""


@dataclass(frozen=True, slots=True)
class RunPoint:
    """One report's figures, a point of each chart.

    Attributes:
        path: the report's file.
        started: when the run started (ISO 8601), ``""`` when unknown.
        evals, passed_evals: evals in the report, and those whose verdict is a pass.
        runs, passes: counted runs of every eval, and those that passed.
        pass_rate: ``passes / runs``, ``None`` with no counted run.
        mean_score, cost_usd, tokens: the report's totals.
        partial: a merge of an incomplete set of shards (``looplet merge --allow-partial``).
        verdicts: each eval's verdict.
    """

    path: str
    started: str
    evals: int
    passed_evals: int
    runs: int
    passes: int
    pass_rate: float | None
    mean_score: float | None
    cost_usd: float | None
    tokens: int | None
    partial: bool = False
    verdicts: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, path: str | Path, report: Report) -> RunPoint:
        """The point of ``report``, read from ``path``."""
        items = report.items
        runs = sum(item.verdict in COUNTED for item in items)
        passes = sum(item.verdict in PASSED for item in items)
        return cls(
            path=str(path),
            started=report.run.started,
            evals=len(report.evals),
            passed_evals=sum(entry.verdict in PASSED for entry in report.evals),
            runs=runs,
            passes=passes,
            pass_rate=passes / runs if runs else None,
            mean_score=report.totals.mean_score,
            cost_usd=report.totals.cost_usd,
            tokens=report.totals.tokens,
            partial=bool(report.run.partial),
            verdicts={entry.eval: entry.verdict for entry in report.evals},
        )

    @property
    def label(self) -> str:
        """The file's name and the start time to the minute: ``r3.json 2026-12-07 22:32``."""
        return f"{Path(self.path).name} {self.started.replace('T', ' ')[:16]}".strip()


@dataclass(slots=True)
class History:
    """The runs in order (see the module's docstring)."""

    points: list[RunPoint]
    ordered_by: str
    """``started`` or ``given``: how the runs were put in order."""

    def flips(self) -> list[tuple[str, list[str]]]:
        """The evals whose verdict was not the same in every run (``-`` where absent), most
        changes first, then by name: ``[(eval, [verdict per run]), ...]``."""
        names = sorted({name for point in self.points for name in point.verdicts})
        out = []
        for name in names:
            row = [point.verdicts.get(name, "-") for point in self.points]
            present = [v for v in row if v != "-"]  # absent from a run is no change
            changes = sum(a != b for a, b in itertools.pairwise(present))
            if changes:
                out.append((changes, name, row))
        out.sort(key=lambda t: (-t[0], t[1]))
        return [(name, row) for _, name, row in out]

    def lines(self) -> list[str]:
        """The plain-text table: one line per run, then the count of evals that flipped."""
        head = ["#", "started", "evals", "passed", "pass rate", "score", "cost", "tokens", "report"]
        rows = [head]
        for i, p in enumerate(self.points, 1):
            rows.append([str(i), p.started.replace("T", " ")[:19] or "-", str(p.evals),
                         f"{p.passes}/{p.runs}", _pct(p.pass_rate), _num(p.mean_score),
                         _cost(p.cost_usd), "-" if p.tokens is None else str(p.tokens),
                         p.path + (" (partial)" if p.partial else "")])  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        out = [
            "  ".join([*(c.rjust(w) if i > 1 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=False))), r[-1]])
            for r in rows
        ]  # fmt: skip
        flips = self.flips()
        order = "start time" if self.ordered_by == "started" else "order given"
        evals = "1 eval" if len(flips) == 1 else f"{len(flips)} evals"
        out.append(f"{len(self.points)} runs by {order}; {evals} changed verdict between runs")
        return out

    def to_html(self) -> str:
        """The page: four charts, the table of runs, the evals that changed verdict."""
        points = self.points
        labels = [p.label for p in points]
        charts = "".join([
            line_chart("pass rate", labels, [p.pass_rate for p in points],
                       fmt="{:.0%}".format, bounds=(0.0, 1.0)),
            line_chart("mean score", labels, [p.mean_score for p in points], bounds=(0.0, 1.0)),
            line_chart("cost (USD)", labels, [p.cost_usd for p in points], fmt=dollars),
            line_chart("tokens", labels,
                       [None if p.tokens is None else float(p.tokens) for p in points],
                       fmt="{:.0f}".format),
        ])  # fmt: skip
        runs = table(
            ["#", "started", "evals", "passed", "pass rate", "score", "cost", "tokens", "report"],
            [[str(i), esc(p.started or "-"), str(p.evals), f"{p.passes}/{p.runs}",
              _pct(p.pass_rate), _num(p.mean_score), _cost(p.cost_usd),
              "-" if p.tokens is None else str(p.tokens),
              f"<code>{esc(p.path)}</code>" + (" (partial)" if p.partial else "")]
             for i, p in enumerate(points, 1)],
            numeric={0, 2, 3, 4, 5, 6, 7},
        )  # fmt: skip
        flips = self.flips()
        shown = flips[:_MAX_FLIPS]
        flip_table = table(
            ["eval", *(f"#{i}" for i in range(1, len(points) + 1))],
            [[f"<code>{esc(name)}</code>", *(_verdict(v) for v in row)] for name, row in shown],
            numeric=set(),
        )
        more = f" (the first {_MAX_FLIPS} shown)" if len(flips) > _MAX_FLIPS else ""
        order = "start time" if self.ordered_by == "started" else "the order given"
        body = (
            f'<h1>looplet history</h1><p class="meta">{len(points)} runs, by {order}</p>'
            f'<div class="charts">{charts}</div><h2>runs</h2>{runs}'
            f"<h2>evals that changed verdict ({len(flips)}){more}</h2>"
            + (flip_table if shown else "<p>none: every eval kept its verdict.</p>")
        )
        return page("looplet history", body)


def history_of(
    reports: Iterable[tuple[str | Path, Report]], *, keep_order: bool = False
) -> History:
    """The history of ``(path, report)`` pairs, in order (see the module's docstring)."""
    points = [RunPoint.of(path, report) for path, report in reports]
    times = [t for point in points if (t := _parse_time(point.started)) is not None]
    if keep_order or len(times) != len(points):
        return History(points, "given")
    order = sorted(range(len(points)), key=times.__getitem__)  # stable: ties keep their order
    return History([points[i] for i in order], "started")


def load_history(paths: Sequence[str | Path], *, keep_order: bool = False) -> History:
    """Read each report (``load_report``) and order the runs.

    Raises:
        ReportError: a file is missing or not a looplet report, naming it and the field.
        ValueError: no paths were given.
    """
    from looplet.evals.report import load_report

    if not paths:
        raise ValueError("load_history needs at least one report")
    return history_of([(path, load_report(path)) for path in paths], keep_order=keep_order)


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cost(value: float | None) -> str:
    return "-" if value is None else dollars(value)


def _verdict(verdict: str) -> str:
    tone = "better" if verdict in PASSED else "worse" if verdict in ("FAIL", "ERROR") else "other"
    return f'<span class="{tone}">{esc(verdict)}</span>'
