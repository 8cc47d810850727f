"""``looplet compare`` and ``looplet history``: the commands over JSON eval reports.

``looplet compare BASE NEW [--html OUT] [--fail-on worse|regression|never] [--all]`` prints
the evals that changed between two ``--looplet-report`` files (:mod:`looplet.evals.compare`).
Exit status: 0 when nothing got worse; 1 when an eval newly fails (its verdict is ``FAIL`` or
``ERROR`` and was not) or its pass rate dropped significantly (Fisher's exact test, p < 0.05),
with the default ``--fail-on worse``; ``--fail-on regression`` exits 1 on a significant drop
only, ``--fail-on never`` never; 2 on a usage error (a missing or unreadable report, naming the
file and the field).

``looplet history REPORT... [--html OUT] [--keep-order]`` prints a table of the runs (pass
rate, mean score, cost, tokens) by start time and writes the page of charts
(:mod:`looplet.evals.history`); exit status 0, or 2 on a usage error.

Part of :mod:`looplet.cli` (which adds these commands to its parser); kept apart so that the
``looplet`` command's module stays small.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from looplet.evals.report import Report

__all__ = ["add_report_commands"]


def add_report_commands(commands: Any, file_error: type[Exception]) -> None:
    """Add ``compare`` and ``history`` to the ``looplet`` command's subparsers;
    ``file_error`` is what they raise for a report they cannot read or a page they cannot
    write (the command reports it in one line, exit status 2)."""
    from looplet.evals.compare import FAIL_ON

    compare = commands.add_parser(
        "compare",
        help="compare two JSON eval reports, eval by eval",
        description="Compare NEW with BASE (files written by pytest --looplet-evals "
        "--looplet-report FILE): evals newly failing or passing, added or removed, pass-rate "
        "changes with Fisher's exact test, signed score, cost, token and step changes, and for "
        "a changed eval the first step where the runs diverge. Exit 0 when nothing got worse; "
        "1 when an eval newly fails or its pass rate dropped significantly (see --fail-on); "
        "2 on a usage error.",
    )
    compare.add_argument("base", metavar="BASE", type=Path, help="the report compared against")
    compare.add_argument("new", metavar="NEW", type=Path, help="the report of the newer run")
    compare.add_argument("--html", metavar="OUT", type=Path, help="also write an HTML page")
    compare.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="worse",
        help="exit 1 on: worse (an eval newly failing or a significant drop; the default), "
        "regression (a significant drop only), never",
    )
    compare.add_argument(
        "--all", dest="show_all", action="store_true", help="list unchanged evals too"
    )
    compare.set_defaults(
        command="compare", run=_run_compare, usage=compare.format_usage(), file_error=file_error
    )

    history = commands.add_parser(
        "history",
        help="pass rate, score, cost and tokens over several JSON eval reports",
        description="Print one line per report (by the run's start time) and, with --html, "
        "write one self-contained page of SVG charts: pass rate, mean score, cost, tokens.",
    )
    history.add_argument("reports", metavar="REPORT", type=Path, nargs="+", help="JSON reports")
    history.add_argument("--html", metavar="OUT", type=Path, help="write the page of charts")
    history.add_argument(
        "--keep-order",
        action="store_true",
        help="keep the reports in the order given rather than by start time",
    )
    history.set_defaults(
        command="history", run=_run_history, usage=history.format_usage(), file_error=file_error
    )


def _load(args: argparse.Namespace, path: Path) -> Report:
    from looplet.evals.report import ReportError, load_report

    try:
        return load_report(path)
    except ReportError as exc:  # a bad file, not a usage mistake: no usage line
        raise args.file_error(str(exc)) from None


def _write(args: argparse.Namespace, path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise args.file_error(
            f"--html {str(path)!r}: cannot write it: {exc.strerror or exc}"
        ) from None


def _run_compare(args: argparse.Namespace) -> int:
    from looplet.evals.compare import compare_reports

    diff = compare_reports(
        _load(args, args.base), _load(args, args.new), base_path=args.base, new_path=args.new
    )
    for line in diff.lines(show_all=args.show_all):
        print(line)
    if args.html is not None:
        _write(args, args.html, diff.to_html())
        print(f"HTML written to {args.html}")
    worse = [delta for delta in diff.evals if delta.worse]
    failed = diff.failed(args.fail_on)
    verdict = (
        f"{len(worse)} eval{'s' * (len(worse) != 1)} got worse" if worse else "nothing got worse"
    )
    print(f"looplet compare: {verdict} (--fail-on {args.fail_on}: exit {int(failed)})")
    return int(failed)


def _run_history(args: argparse.Namespace) -> int:
    from looplet.evals.history import history_of

    history = history_of(
        [(path, _load(args, path)) for path in args.reports], keep_order=args.keep_order
    )
    for line in history.lines():
        print(line)
    if args.html is not None:
        _write(args, args.html, history.to_html())
        print(f"HTML written to {args.html}")
    return 0
