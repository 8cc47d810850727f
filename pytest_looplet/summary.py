"""The end-of-run "looplet evals" table, built on the controller from the reports alone.

:class:`EvalSummary` reads each eval report's outcome and the ``looplet_*`` user properties
that :mod:`pytest_looplet.scoring` recorded; nothing is read from files, so the table is the
same whether the evals ran in this process or on xdist workers (which send their reports
here). Lines are sorted by node id, so the order does not depend on scheduling. JSON/HTML
reports and baselines are not built here yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pytest_looplet.collect import EVAL_KEYWORD

__all__ = ["OUTCOMES", "EvalLine", "EvalSummary"]

OUTCOMES = ("PASS", "FAIL", "ERROR", "SKIP", "XFAIL", "XPASS")
"""The results an eval line can show, in the order the totals list them."""

_TOTAL_WORDS = {
    "PASS": "passed",
    "FAIL": "failed",
    "ERROR": "error",
    "SKIP": "skipped",
    "XFAIL": "xfailed",
    "XPASS": "xpassed",
}


@dataclass(slots=True)
class EvalLine:
    """What the table shows for one eval (``None`` where the eval recorded nothing)."""

    nodeid: str
    outcome: str
    score: float | None = None
    steps: int | None = None
    tokens: int | None = None
    stop_reason: str | None = None


class EvalSummary:
    """Collects eval reports (``pytest_runtest_logreport``) and writes the table at the end.

    >>> summary = EvalSummary()  # the eval plugin makes one on the controller
    >>> summary.lines()
    []
    """

    def __init__(self) -> None:
        self._evals: dict[str, EvalLine] = {}

    def add(self, report: pytest.TestReport) -> None:
        """Fold one phase's report into its eval's line; reports of plain tests are ignored."""
        if EVAL_KEYWORD not in report.keywords:
            return
        outcome = _outcome(report, self._evals.get(report.nodeid))
        if outcome is None:
            return
        props = dict(report.user_properties)
        self._evals[report.nodeid] = EvalLine(
            nodeid=report.nodeid,
            outcome=outcome,
            score=_number(props.get("looplet_score"), float),
            steps=_number(props.get("looplet_steps"), int),
            tokens=_number(props.get("looplet_tokens"), int),
            stop_reason=str(props["looplet_stop_reason"] or "")
            if "looplet_stop_reason" in props
            else None,
        )

    def lines(self) -> list[str]:
        """The table: a header, one line per eval sorted by node id, then the totals."""
        if not self._evals:
            return []
        rows = [self._evals[nodeid] for nodeid in sorted(self._evals)]
        cells = [
            (
                row.outcome,
                "-" if row.score is None else f"{row.score:.2f}",
                "-" if row.steps is None else str(row.steps),
                "-" if row.tokens is None else str(row.tokens),
                row.stop_reason or "-",
                row.nodeid,
            )
            for row in rows
        ]
        header = ("result", "score", "steps", "tokens", "stop", "eval")
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(5)]
        table = [_format_row(header, widths), *(_format_row(row, widths) for row in cells)]
        return [*table, _totals(rows)]

    def write(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Write the table as the "looplet evals" section (nothing when no eval ran)."""
        lines = self.lines()
        if not lines:
            return
        terminalreporter.write_sep("=", "looplet evals")
        for line in lines:
            terminalreporter.write_line(line)


def _outcome(report: pytest.TestReport, previous: EvalLine | None) -> str | None:
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "XPASS" if xfail else "PASS"
        if report.skipped:
            return "XFAIL" if xfail else "SKIP"
        props = dict(report.user_properties)
        return "ERROR" if "looplet_error" in props else "FAIL"
    if report.failed:
        return "ERROR"
    if report.skipped:
        return "XFAIL" if xfail else "SKIP"
    # A passed setup says nothing yet; a passed teardown keeps the call's result.
    return None if previous is None else previous.outcome


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _format_row(row: tuple[str, ...], widths: list[int]) -> str:
    outcome, score, steps, tokens, stop, nodeid = row
    return (
        f"{outcome:<{widths[0]}}  {score:>{widths[1]}}  {steps:>{widths[2]}}  "
        f"{tokens:>{widths[3]}}  {stop:<{widths[4]}}  {nodeid}"
    )


def _totals(rows: list[EvalLine]) -> str:
    counts = {outcome: sum(row.outcome == outcome for row in rows) for outcome in OUTCOMES}
    parts = [
        f"{n} {_TOTAL_WORDS[outcome]}{'s' if outcome == 'ERROR' and n > 1 else ''}"
        for outcome, n in counts.items()
        if n
    ]
    noun = "eval" if len(rows) == 1 else "evals"
    text = f"{len(rows)} {noun}: {', '.join(parts)}"
    scores = [row.score for row in rows if row.score is not None]
    if scores:
        text += f"; mean score {sum(scores) / len(scores):.2f}"
    steps = [row.steps for row in rows if row.steps is not None]
    if steps:
        tokens = sum(row.tokens or 0 for row in rows)
        text += f"; {sum(steps)} steps, {tokens} tokens"
    return text
