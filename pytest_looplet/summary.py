"""The end-of-run "looplet evals" section, built on the controller from the reports alone.

:class:`EvalSummary` reads each eval report's outcome and the ``looplet_*`` user properties
that :mod:`pytest_looplet.scoring` recorded; nothing is read from files, so the section is the
same whether the evals ran in this process or on xdist workers (which send their reports
here). At the end of the run (:meth:`EvalSummary.finish`) the items become the report
document of :mod:`looplet.evals.report`, from which the tables, the JSON and HTML files and
the baseline comparison are all made. Lines are sorted by node id, so the order does not
depend on scheduling.

Evals that are not repeated get one line each (result, score, steps, tokens, stop reason),
and an indented one under it with the reason for the score when the eval gave one (a
scorer's or judge's ``explanation``; every run's is in the JSON and HTML reports); repeated
evals get a second table (passes/runs, pass rate with its Wilson interval, mean score,
pass@k, pass^k, flaky). A repeated eval passes when its pass rate reaches
``--looplet-min-pass-rate``; :meth:`EvalSummary.finish` makes the exit status agree. After
a model matrix (:mod:`pytest_looplet.matrix`) a table with a row per model follows.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_looplet.collect import EVAL_KEYWORD, eval_of, repetition_of_nodeid

if TYPE_CHECKING:  # looplet is imported once an eval reports, not before
    from looplet.evals.report_model import EvalEntry, Report, ReportItem, ReportOptions, Verdict
    from pytest_looplet.baseline import Comparison
    from pytest_looplet.settings import LoopletSettings

__all__ = ["OUTCOMES", "EvalSummary"]

OUTCOMES = ("PASS", "FAIL", "ERROR", "SKIP", "XFAIL", "XPASS")
"""The results an eval line can show, in the order the totals list them."""

MESSAGE_CHARS = 2000
"""How much of a failure's message, or of an eval's reason, an item keeps for the reports."""

REASON_LINE_CHARS = 160
"""How much of an eval's reason its line under the eval in the terminal table shows."""

_TOTAL_WORDS = {
    "PASS": "passed",
    "FAIL": "failed",
    "ERROR": "error",
    "SKIP": "skipped",
    "XFAIL": "xfailed",
    "XPASS": "xpassed",
}


class EvalSummary:
    """Collects eval reports (``pytest_runtest_logreport``) and writes the section at the end.

    >>> summary = EvalSummary()  # the eval plugin makes one on the controller
    >>> summary.lines()
    []
    """

    def __init__(
        self,
        settings: LoopletSettings | None = None,
        baseline: Report | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.baseline = baseline
        self.args = args
        self.doc: Report | None = None
        self.comparison: Comparison | None = None
        self.notes: list[str] = []
        # With --looplet-shard: {"index", "total", "suite", "items"} (node ids), set by the
        # eval plugin from its own collection or, under xdist, from a worker's.
        self.shard: dict[str, Any] | None = None
        self._items: dict[str, ReportItem] = {}
        self._verdicts: dict[str, Verdict | None] = {}  # None until an outcome is known
        # The user properties last read into each item (a teardown report repeats the call's).
        self._properties: dict[str, list[tuple[str, object]]] = {}
        self._expected: set[str] = set()
        self._workers: set[str] = set()
        self._other_failures = 0
        self._started = _now()

    def start(self) -> None:
        """Note the run's start time."""
        self._started = _now()

    def collection_failed(self) -> None:
        """Note a collection error: it keeps the run failed whatever the evals did."""
        self._other_failures += 1

    def expect(self, nodeids: Iterable[str]) -> None:
        """Note eval items that should run: one that never reports (the run stopped first:
        ``-x``, ``--maxfail``, an interrupt, xdist out of worker restarts) is still listed,
        as skipped, "not run"."""
        self._expected.update(nodeids)

    def add(self, report: pytest.TestReport) -> None:
        """Fold one phase's report into its eval item; other tests only count their failures."""
        if EVAL_KEYWORD not in report.keywords:
            if report.failed:
                self._other_failures += 1
            return
        item = self._items.get(report.nodeid)
        if item is None:
            item = self._items[report.nodeid] = _new_item(report)
        item.duration_s += report.duration
        worker = getattr(report, "worker_id", None)
        if worker:
            self._workers.add(str(worker))
        previous = self._verdicts.get(report.nodeid)
        outcome = _outcome(report, previous)
        if outcome is None:
            return
        if outcome != previous and (report.failed or report.skipped):
            item.message = _message(report)
        item.verdict = self._verdicts[report.nodeid] = outcome
        if self._properties.get(report.nodeid) == report.user_properties:
            return  # the teardown's copy of what the call recorded: read already
        self._properties[report.nodeid] = report.user_properties
        item.read_properties(dict(report.user_properties))
        if item.reason is not None:
            item.reason = _clip(item.reason, MESSAGE_CHARS)

    def build(self) -> Report:
        """The report of the evals seen so far (:mod:`looplet.evals.report`)."""
        from looplet.evals.report import ShardSplit, build_report

        items = [item for nodeid, item in self._items.items() if self._verdicts.get(nodeid)]
        ran = {item.nodeid for item in items}
        items += [_not_run(nodeid) for nodeid in sorted(self._expected - ran)]
        return build_report(
            items,
            options=_options(self.settings),
            started=self._started,
            finished=_now(),
            workers=len(self._workers),
            args=self.args,
            pytest_version=pytest.__version__,
            shard=None if self.shard is None else ShardSplit(**self.shard),
        )

    def empty_shard_status(self, status: int) -> int:
        """``status``, but 0 with a note for a shard left with no eval item to run.

        A suite of fewer eval items than shards leaves some shards empty; pytest would exit
        5 (no tests collected) and fail that CI job though nothing is wrong.
        """
        shard = self.shard
        if (
            status != int(pytest.ExitCode.NO_TESTS_COLLECTED)
            or shard is None
            or shard["items"]
            or not shard["suite"]
        ):
            return status
        self.notes.append(
            f"looplet: shard {shard['index']}/{shard['total']} has no eval items (the suite "
            f"has {len(shard['suite'])} for {shard['total']} shards): nothing to run"
        )
        return int(pytest.ExitCode.OK)

    def finish(self, session: pytest.Session) -> int:
        """Build the document, compare with the baseline, write the reports; the exit status.

        The status is pytest's, except that a run whose only failures are runs of repeated
        evals that reached ``--looplet-min-pass-rate`` passes, a repeated eval below it fails
        the run, and so does a regression with ``--looplet-fail-on-regression``.
        """
        s = self.settings
        status = self.empty_shard_status(int(session.exitstatus))
        writes = s is not None and (s.report or s.html or s.baseline) is not None
        if not (self._items or self._expected or writes):
            return status  # no eval and no file to write: nothing to build (nor to import)
        doc = self.doc = self.build()
        if s is None:
            return status
        if self.baseline is not None and s.baseline is not None:
            from pytest_looplet.baseline import compare

            self.comparison = compare(self.baseline, doc, path=s.baseline, sharded=bool(s.shard))
        if s.report is not None:
            from looplet.evals.report import write_report

            write_report(s.report, doc)
            self.notes.append(f"looplet: JSON report written to {s.report}")
        if s.html is not None:
            from pytest_looplet.html import write_html

            write_html(s.html, doc)
            self.notes.append(f"looplet: HTML report written to {s.html}")
        return self._exit_status(session, status, doc)

    def _exit_status(self, session: pytest.Session, status: int, doc: Report) -> int:
        assert self.settings is not None
        ok, failed = int(pytest.ExitCode.OK), int(pytest.ExitCode.TESTS_FAILED)
        if status not in (ok, failed):
            return status
        repeated = [e for e in doc.evals if e.repetitions > 1]
        below = [e.eval for e in repeated if e.verdict in ("FAIL", "ERROR")]
        single_failed = any(e.verdict in ("FAIL", "ERROR") for e in doc.evals if e.repetitions == 1)
        rate = f"{self.settings.min_pass_rate:g}"
        if below:
            status = failed
            if self.settings.min_pass_rate < 1.0:  # at 1.0 their failed runs say it all
                self.notes.append(
                    f"looplet: {len(below)} repeated eval(s) below --looplet-min-pass-rate {rate}"
                )
        elif (
            status == failed
            and repeated
            and not single_failed
            and not self._other_failures
            and not session.shouldfail
            and not session.shouldstop
        ):
            status = ok
            self.notes.append(
                f"looplet: every repeated eval reached --looplet-min-pass-rate {rate}: the "
                "failed runs do not fail the run"
            )
        regressions = [] if self.comparison is None else self.comparison.regressions
        if regressions and self.settings.fail_on_regression:
            status = failed
            self.notes.append(
                f"looplet: {len(regressions)} regression(s) against the baseline "
                "(--looplet-fail-on-regression)"
            )
        return status

    def lines(self) -> list[str]:
        """The tables: single evals, then repeated evals, then the totals."""
        if self.doc is None and not (self._items or self._expected):
            return []
        doc = self.doc if self.doc is not None else self.build()
        evals = doc.evals
        if not evals:
            return []
        single = [e for e in evals if e.repetitions == 1]
        repeated = [e for e in evals if e.repetitions > 1]
        out: list[str] = []
        if single:
            table = _table(
                ("result", "score", "steps", "tokens", "stop", "eval"),
                [_single_cells(e) for e in single],
                "<>>><<",
            )
            out.append(table[0])
            for entry, line in zip(single, table[1:], strict=True):
                out.append(line)
                reason = entry.items[0].reason
                if reason:
                    out.append(f"  ↳ {_clip(' '.join(reason.split()), REASON_LINE_CHARS)}")
        if repeated:
            rate = 1.0 if self.settings is None else self.settings.min_pass_rate
            out.append(f"repeated evals (pass when at least {rate:.0%} of runs pass):")
            out += _table(
                ("result", "runs", "rate", "95% CI", "score", "k", "pass@k", "pass^k", "eval"),
                [_repeated_cells(e) for e in repeated],
                "<>>>>>>><",
            )
        from pytest_looplet.matrix import table_lines  # a table only when a matrix ran

        out += table_lines(doc)
        return [*out, _totals(doc)]

    def write(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Write the "looplet evals" section, then the baseline comparison and the notes."""
        lines = self.lines()
        if lines:
            from looplet._redact import redact

            lines = redact(lines)  # as the reports it is made of were
            terminalreporter.write_sep("=", "looplet evals")
            for line in lines:
                terminalreporter.write_line(line)
        if self.comparison is not None:
            terminalreporter.write_sep("-", f"looplet baseline {self.comparison.path}")
            for line in self.comparison.lines():
                terminalreporter.write_line(line)
        for note in self.notes:
            terminalreporter.write_line(note)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _options(settings: LoopletSettings | None) -> ReportOptions | None:
    """The report's ``run.options``: the settings that shaped the run, as plain values."""
    if settings is None:
        return None
    from looplet.evals.report import ReportOptions

    return ReportOptions(
        threshold=settings.threshold,
        repeat=settings.repeat,
        min_pass_rate=settings.min_pass_rate,
        pass_k=settings.pass_k,
        record_mode=settings.record_mode,
        model=settings.model
        if len(settings.models) < 2
        else ",".join(choice.id for choice in settings.models),
        provider=settings.provider,
        shard=None if settings.shard is None else "{}/{}".format(*settings.shard),
        eval_files=list(settings.eval_files),
        eval_prefix=settings.eval_prefix,
        baseline=None if settings.baseline is None else str(settings.baseline),
    )


def _not_run(nodeid: str) -> ReportItem:
    item = _item(nodeid, repetition_of_nodeid(nodeid))
    item.verdict, item.error = "SKIP", "not_run"
    item.message = (
        "not run: the run stopped before it (-x, --maxfail, an interrupt, or xdist ran out of "
        "worker restarts)"
    )
    return item


def _new_item(report: pytest.TestReport) -> ReportItem:
    props = dict(report.user_properties)
    return _item(report.nodeid, str(props.get("looplet_repetition") or "") or None)


def _item(nodeid: str, repetition: str | None) -> ReportItem:
    """An item of a node id and its ``looplet_repetition`` (``"2/5"``), verdict to come."""
    from looplet.evals.report_model import ReportItem

    index, _, count = (repetition or "1/1").partition("/")
    return ReportItem(
        nodeid=nodeid,
        eval=eval_of(nodeid, repetition),
        repetition=int(index),
        repetitions=int(count),
        verdict="SKIP",  # set by EvalSummary.add once an outcome is known
    )


def _outcome(report: pytest.TestReport, previous: Verdict | None) -> Verdict | None:
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "XPASS" if xfail else "PASS"
        if report.skipped:
            return "XFAIL" if xfail else "SKIP"
        return "FAIL"  # pytest's FAILED; what went wrong is the item's `error` kind
    if report.failed:
        # pytest's word for each: ERROR in setup or teardown, FAILED for a crashed worker's item
        return "ERROR" if report.when in ("setup", "teardown") else "FAIL"
    if report.skipped:
        return "XFAIL" if xfail else "SKIP"
    # A passed setup says nothing yet; a passed teardown keeps the call's result.
    return previous


def _message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        text = str(longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = getattr(crash, "message", None) or report.longreprtext
    return _clip(text, MESSAGE_CHARS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _single_cells(entry: EvalEntry) -> tuple[str, ...]:
    item = entry.items[0]
    return (
        item.verdict,
        _fmt(item.score),
        _fmt(item.step_count, "d"),
        _fmt(item.tokens, "d"),
        item.stop_reason or "-",
        entry.eval,
    )


def _repeated_cells(entry: EvalEntry) -> tuple[str, ...]:
    ci = entry.pass_rate_ci
    name = entry.eval + ("  flaky" if entry.flaky else "")
    return (
        entry.verdict,
        f"{entry.passes}/{entry.runs}",
        _fmt(entry.pass_rate),
        "-" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]",
        _fmt(entry.mean_score),
        _fmt(entry.k, "d"),
        _fmt(entry.pass_at_k),
        _fmt(entry.pass_hat_k),
        name,
    )


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], align: str) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...]) -> str:
        cells = [f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths, strict=False)]
        return "  ".join([*cells, row[-1]])

    return [line(header), *(line(row) for row in rows)]


def _totals(doc: Report) -> str:
    evals = doc.evals
    counts = {outcome: sum(e.verdict == outcome for e in evals) for outcome in OUTCOMES}
    parts = [
        f"{n} {_TOTAL_WORDS[outcome]}{'s' if outcome == 'ERROR' and n > 1 else ''}"
        for outcome, n in counts.items()
        if n
    ]
    noun = "eval" if len(evals) == 1 else "evals"
    text = f"{len(evals)} {noun}: {', '.join(parts)}"
    totals = doc.totals
    if totals.flaky:
        text += f" ({totals.flaky} flaky)"
    if totals.mean_score is not None:
        text += f"; mean score {totals.mean_score:.2f}"
    if totals.steps is not None:
        text += f"; {totals.steps} steps, {totals.tokens or 0} tokens"
    if totals.cost_usd is not None:
        text += f"; ${totals.cost_usd:.4f}"
    return text
