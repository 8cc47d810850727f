"""The ``looplet`` command: ``looplet eval`` grades saved runs, ``looplet show`` summarises one.

``looplet eval TRACES --evals DIR`` runs every ``eval_*`` grader found under ``DIR`` on every
saved run under ``TRACES`` and prints a table; the graders run as pytest evals, in a pytest
subprocess with ``--looplet-evals --looplet-runs TRACES`` (:mod:`looplet._eval_command`), so
``--report``/``--html``/``--junit-xml`` and any pytest option after ``--`` (``-n 4``,
``--looplet-repeat 3``, ``--looplet-baseline``) apply. Exit status: 0 only when every grader
passed on every run; 1 when any scored below ``--threshold`` (default 0.5), raised, or was
skipped (``looplet eval`` has no judge model, so graders that need one are skipped, and a skip
is not a pass), or pytest failed the run; 2 on a usage error (a missing directory, no runs or
no evals found, a broken eval file or saved run, pytest stopped before grading).
``looplet show PATH`` prints a one-page summary of a saved run, provenance folder or
checkpoint, its steps being the run's session log (:mod:`looplet._cli_show`).
``looplet merge OUT REPORT...`` joins the JSON reports of ``--looplet-shard`` runs; it needs
no pytest. ``looplet compare BASE NEW`` and ``looplet history REPORT...`` read JSON reports
(:mod:`looplet._cli_reports`, where their exit statuses are told).

The work lives in :mod:`looplet.evals`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from looplet._eval_command import RunFileError, UsageError
from looplet.evals.context import EvalContext, TrajectoryLoadError
from looplet.evals.result import DEFAULT_THRESHOLD

__all__ = ["eval_cli", "main"]

_SHOW_HEAD = 20
_SHOW_TAIL = 15
_TASK_LINES = 8
_LINE_CHARS = 160


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``looplet`` command with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    >>> main(["eval", "runs/", "--evals", "evals/"])
    0
    """
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # `looplet eval ... -- -n 4`: what follows `--` goes to pytest unread (argparse would
    # take its options for looplet's).
    cut = words.index("--") if "--" in words else len(words)
    args = parser.parse_args(words[:cut])
    args.pytest_args = words[cut + 1 :]
    if args.pytest_args and args.command != "eval":
        parser.error(f"only `looplet eval` passes options after -- to pytest, not {args.command}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _tolerate_unencodable_output()
    try:
        status: int = args.run(args)
    except BrokenPipeError:  # `looplet show DIR | head`: the reader left, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as exc:
        if not isinstance(exc, RunFileError):  # a bad file is not a usage mistake
            print(args.usage, end="", file=sys.stderr)
        print(f"looplet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return status


def eval_cli(argv: Sequence[str] | None = None) -> int:
    """``looplet eval`` as a function: ``eval_cli(["runs/", "--evals", "evals/"])``."""
    return main(["eval", *(sys.argv[1:] if argv is None else argv)])


def _parser() -> argparse.ArgumentParser:
    from looplet._version import __version__

    parser = argparse.ArgumentParser(
        prog="looplet", description="Grade and inspect saved looplet runs."
    )
    parser.add_argument("--version", action="version", version=f"looplet {__version__}")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    grade = commands.add_parser(
        "eval",
        help="run eval_* graders on saved runs",
        description="Run the eval_* graders in --evals on each saved run under TRACES. "
        "Exit 0 only when every grader passed on every run; 1 when any failed, raised or "
        "was skipped (no judge model here); 2 on a usage error. The graders run as pytest "
        "evals (pytest --looplet-evals DIR --looplet-runs TRACES); pytest options go after "
        "--, e.g. looplet eval runs --evals evals -- -n 4 --looplet-repeat 3.",
    )
    grade.add_argument(
        "traces", metavar="TRACES", type=Path, help="a run directory, or a folder of them"
    )
    grade.add_argument(
        "--evals",
        required=True,
        type=Path,
        metavar="DIR",
        help="an eval file or a folder of eval_*.py files",
    )
    grade.add_argument(
        "--threshold",
        type=_threshold,
        default=DEFAULT_THRESHOLD,
        help=f"the score a grader must reach to pass (default: {DEFAULT_THRESHOLD})",
    )
    grade.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="TAG",
        help="run only graders with this eval_mark tag (repeatable)",
    )
    grade.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="TAG",
        help="leave out graders with this tag (repeatable)",
    )
    grade.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show pytest's output and every result, not only the failing ones",
    )
    for flag, text in (
        ("--report", "write the JSON report (docs/reports.md) to PATH"),
        ("--html", "write the HTML report to PATH"),
        ("--junit-xml", "write JUnit XML to PATH"),
    ):
        grade.add_argument(flag, type=Path, metavar="PATH", default=None, help=text)
    grade.set_defaults(command="eval", run=_run_eval, usage=grade.format_usage())

    from looplet._cli_show import add_show_command

    add_show_command(commands)

    merge = commands.add_parser(
        "merge",
        help="join the JSON reports of several shards into one",
        description="Merge --looplet-report files (e.g. one per --looplet-shard) into OUT, "
        "recomputing every eval's statistics from the merged runs. Shard reports must be "
        "every shard of one split, each once.",
    )
    merge.add_argument("out", metavar="OUT", type=Path, help="the merged report to write")
    merge.add_argument("reports", metavar="REPORT", type=Path, nargs="+", help="shard reports")
    merge.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge even when a shard is missing or given twice (each run is kept once); "
        "the merged report is marked partial",
    )
    merge.set_defaults(command="merge", run=_run_merge, usage=merge.format_usage())
    from looplet._cli_reports import add_report_commands  # compare, history

    add_report_commands(commands, RunFileError)
    return parser


def _run_merge(args: argparse.Namespace) -> int:
    from looplet.evals.report import MergeError, ReportError, merge_reports, write_report

    try:
        merged = merge_reports(args.reports, allow_partial=args.allow_partial)
    except MergeError as exc:
        raise UsageError(f"not one complete set of reports: {exc}") from None
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    write_report(args.out, merged)
    line = f"merged {len(args.reports)} reports ({len(merged.evals)} evals) into {args.out}"
    if merged.run.partial:
        line += f", marked partial: {'; '.join(merged.run.problems or [])}"
    print(line)
    return 0


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is outside [0, 1]")
    return value


# -- looplet eval -------------------------------------------------------------------------------


def _run_eval(args: argparse.Namespace) -> int:
    from looplet._eval_command import run_eval_command  # imports pytest's runner only now

    return run_eval_command(args)


def _load(run: Path) -> EvalContext:
    try:
        return EvalContext.from_trajectory_dir(run)
    except TrajectoryLoadError as exc:
        raise RunFileError(str(exc)) from exc


def _tolerate_unencodable_output() -> None:
    # Step.pretty() prints ✓ ✗ →; a console that cannot encode them should get escapes,
    # not a UnicodeEncodeError halfway through the report.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")
