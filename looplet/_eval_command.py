"""``looplet eval TRACES --evals DIR``: the graders run as pytest evals, the table printed here.

The command checks its inputs first, so a usage error stays one line and exit status 2: the
saved runs under ``TRACES`` exist and load, the eval files import and define graders
(:func:`~looplet.evals.discover.eval_discover`), ``--include``/``--exclude`` select some.
Then it runs ``python -m pytest FILES --looplet-evals --looplet-runs TRACES`` in a subprocess
(:mod:`pytest_looplet.runs`: each saved run an item of each grader; ``FILES`` are the eval
files, so other tests under ``DIR`` do not run; a ``conftest.py`` there gives fixtures), with
the threshold, ``-m`` for the tags and the report options, and prints the table from the
plugin's JSON report: one row per grader over the runs. A subprocess rather than
``pytest.main``: the eval files are imported by a fresh interpreter (a second ``looplet eval``
in one process sees edited files), and pytest's output, plugins and ``-n`` workers stay out of
the caller's process. Exit status: 0 when every grader passed on every run, 1 when any did not
(a skip is no pass) or pytest failed the run (``--looplet-fail-on-regression``), 2 on a usage
error or when pytest stopped before grading (its output is shown).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplet.evals.context import EvalContext, TrajectoryLoadError, find_run_dirs
from looplet.evals.discover import EvalImportError, eval_discover, eval_id
from looplet.evals.runner import eval_tags

if TYPE_CHECKING:
    import argparse

    from looplet.evals.report_model import Report, ReportItem

__all__ = ["Row", "UsageError", "mark_expression", "rows_of", "run_eval_command"]

_LINE_CHARS = 160
_TAG = re.compile(r"[\w.+:/\\\[\]-]+")  # what pytest's -m expressions take as a name
_NOT_NAMES = frozenset({"and", "or", "not"})
_STOPPED = (2, 3, 4, 5)  # pytest: interrupted, internal error, usage error, nothing collected


class UsageError(Exception):
    """A problem with the command line or its inputs: reported, exit status 2."""


class RunFileError(UsageError):
    """A saved run's file cannot be read: reported in one line, without the usage."""


@dataclass
class Row:
    """One grader over every run: its items in the report and their counts.

    Attributes:
        name: the grader, ``file::function`` relative to ``--evals``.
        items: one report item per run (per repetition, with ``--looplet-repeat``).
    """

    name: str
    items: list[ReportItem] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        """The scores of the items that have one."""
        return [item.score for item in self.items if item.score is not None]

    def count(self, status: str) -> int:
        """How many items have ``status`` (:func:`status_of`)."""
        return sum(status_of(item) == status for item in self.items)

    @property
    def ok(self) -> bool:
        """Every item passed."""
        return bool(self.items) and self.count("PASS") == len(self.items)

    @property
    def status(self) -> str:
        """ERROR, FAIL, SKIP or PASS: the worst of its items."""
        for status in ("ERROR", "FAIL", "SKIP"):
            if self.count(status):
                return status
        return "PASS"


def status_of(item: ReportItem) -> str:
    """An item's status in the table: an eval that raised (not an ``assert``) is an ERROR."""
    if item.verdict in ("PASS", "XPASS"):
        return "PASS"
    if item.verdict in ("SKIP", "XFAIL"):
        return "SKIP"
    if item.verdict == "ERROR" or item.error is not None:
        return "ERROR"
    return "FAIL"


def run_eval_command(args: argparse.Namespace) -> int:
    """``looplet eval``: check the inputs, run pytest over them, print the table; the status."""
    traces: Path = args.traces
    evals: Path = args.evals
    runs, graders = _check_inputs(traces, evals, args.include, args.exclude)
    with tempfile.TemporaryDirectory(prefix="looplet-eval-") as folder:
        report_path = args.report or Path(folder) / "report.json"
        command = _pytest_command(args, report_path, _files_of(evals, graders))
        # A fresh session: what an enclosing xdist worker set describes another run.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
        done = subprocess.run(
            command, capture_output=True, text=True, encoding="utf-8", errors="replace", env=env
        )
        if done.returncode in _STOPPED or not report_path.is_file():
            sys.stderr.write(done.stdout + done.stderr)
            raise RunFileError(
                f"pytest stopped before grading (exit status {done.returncode}; its output is "
                f"above): {' '.join(command[1:])}"
            )
        from looplet.evals.report import load_report

        report = load_report(report_path)
    if args.verbose:
        print(done.stdout, end="" if done.stdout.endswith("\n") else "\n")
    rows = rows_of(report, [eval_id(fn) for fn in graders])
    _print_table(rows, len(runs), args.threshold, args.verbose)
    return 0 if rows and all(row.ok for row in rows) and done.returncode == 0 else 1


def mark_expression(include: list[str], exclude: list[str]) -> str | None:
    """The pytest ``-m`` expression selecting graders by ``eval_mark`` tag, or ``None``.

    Raises:
        UsageError: a tag pytest cannot name in an expression.
    """
    for tag in (*include, *exclude):
        if not _TAG.fullmatch(tag) or tag in _NOT_NAMES:
            raise UsageError(
                f"tag {tag!r} cannot be selected: a tag for --include/--exclude is letters, "
                "digits and _ . - + : / only"
            )
    parts = []
    if include:
        parts.append("(" + " or ".join(include) + ")")
    if exclude:
        parts.append("not (" + " or ".join(exclude) + ")")
    return " and ".join(parts) or None


def rows_of(report: Report, order: list[str]) -> list[Row]:
    """The report's items grouped by grader (the node id before its ``[run]`` part), in
    ``order`` (discovery order), graders not in it after."""
    rows: dict[str, Row] = {name: Row(name) for name in order}
    for entry in report.evals:
        for item in entry.items:
            name = item.nodeid.partition("[")[0]
            rows.setdefault(name, Row(name)).items.append(item)
    return [row for row in rows.values() if row.items]


def _check_inputs(
    traces: Path, evals: Path, include: list[str], exclude: list[str]
) -> tuple[list[Path], list[Callable[..., Any]]]:
    if not traces.is_dir():
        raise UsageError(f"TRACES {str(traces)!r} is not a directory")
    if not evals.exists():
        raise UsageError(f"--evals {str(evals)!r} does not exist")
    runs = find_run_dirs(traces)
    if not runs:
        raise UsageError(
            f"no saved runs under {str(traces)!r}: a run directory holds trajectory.json "
            "or steps/*.json"
        )
    try:
        graders = eval_discover(evals)
    except EvalImportError as exc:
        raise UsageError(str(exc)) from exc
    if not graders:
        raise UsageError(
            f"no evals found in {str(evals)!r}: no file matching eval_*.py defines a "
            "function named eval_*"
        )
    for run in runs:  # a bad file is exit 2 here, not an ERROR row per grader
        load_run(run)
    mark_expression(include, exclude)
    wanted, unwanted = set(include), set(exclude)
    selected = [
        fn
        for fn in graders
        if (not wanted or eval_tags(fn) & wanted) and not eval_tags(fn) & unwanted
    ]
    if not selected:
        tags = sorted(set().union(*(eval_tags(fn) for fn in graders)))
        raise UsageError(
            f"none of the {len(graders)} evals matches --include {include} / --exclude "
            f"{exclude}; their tags: {', '.join(tags) or '(none)'}"
        )
    return runs, selected


def load_run(run: Path) -> EvalContext:
    """The saved run at ``run``; an unreadable one is a :class:`RunFileError`."""
    try:
        return EvalContext.from_trajectory_dir(run)
    except TrajectoryLoadError as exc:
        raise RunFileError(str(exc)) from exc


def _files_of(evals: Path, graders: list[Callable[..., Any]]) -> list[str]:
    """The eval files defining ``graders``: pytest is given these, not the folder, so other
    test files in it are not run."""
    base = evals if evals.is_dir() else evals.parent
    return sorted({str(base / eval_id(fn).partition("::")[0]) for fn in graders})


def _pytest_command(args: argparse.Namespace, report: Path, files: list[str]) -> list[str]:
    if importlib.util.find_spec("pytest") is None:
        raise UsageError(
            "looplet eval runs the graders with pytest, which is not installed: "
            "pip install 'looplet[pytest]'"
        )
    evals: Path = args.evals
    command = [sys.executable, "-m", "pytest", *files, "--looplet-evals"]
    command += ["--looplet-runs", str(args.traces), "--looplet-threshold", repr(args.threshold)]
    command += ["--looplet-report", str(report), "-p", "no:cacheprovider"]
    # Node ids relative to --evals, as eval_discover names graders: file.py::eval_x.
    command += ["--rootdir", str(evals if evals.is_dir() else evals.parent)]
    expression = mark_expression(args.include, args.exclude)
    if expression is not None:
        command += ["-m", expression]
    if args.html is not None:
        command += ["--looplet-html", str(args.html)]
    if args.junit_xml is not None:
        command += ["--junit-xml", str(args.junit_xml)]
    return command + list(getattr(args, "pytest_args", ()))


def _print_table(rows: list[Row], runs: int, threshold: float, verbose: bool) -> None:
    print(
        f"looplet eval: {_count(len(rows), 'eval')} × {_count(runs, 'run')}, "
        f"threshold {threshold:g}\n"
    )
    table = [["status", "eval", "passed", "avg", "min", "max"]]
    for row in rows:
        scores = row.scores
        figures = (sum(scores) / len(scores), min(scores), max(scores)) if scores else (None,) * 3
        table.append(
            [row.status, row.name, f"{row.count('PASS')}/{len(row.items)}", *map(_num, figures)]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    shown = [
        (row, item) for row in rows for item in row.items if verbose or status_of(item) != "PASS"
    ]
    if shown:
        print("\nresults:" if verbose else "\nproblems:")
        for row, item in shown:
            print(_result_line(row.name, item, threshold))
    print("\n" + _verdict(rows))


def _result_line(name: str, item: ReportItem, threshold: float) -> str:
    status = status_of(item)
    score = "-" if item.score is None else f"{item.score:.2f}"
    run = item.nodeid[len(name) :].removeprefix("[").removesuffix("]") or "-"
    line = f"  {status:5} {score:>4}  {name} on {run}"
    if status == "FAIL" and item.score is not None:
        detail = item.reason  # below the threshold: the scorer's reason, if it gave one
    elif status == "ERROR" and item.verdict == "FAIL" and item.message:
        detail = f"raised {item.message}"
    else:
        detail = item.reason or item.message
    if detail:
        line += f": {_clip(detail)}"
    if status == "FAIL" and item.score is not None and item.score < threshold:
        line += f" (below {threshold:g})"
    return line


def _verdict(rows: list[Row]) -> str:
    bad = [row for row in rows if not row.ok]
    if not bad:
        return f"all {len(rows)} evals passed on every run"
    failed, errors, skipped = (sum(row.count(s) for row in rows) for s in ("FAIL", "ERROR", "SKIP"))
    parts = [f"{failed} failed" if failed else "", _count(errors, "error") if errors else ""]
    parts.append(f"{skipped} skipped" if skipped else "")
    detail = ", ".join(part for part in parts if part)
    return f"{len(bad)} of {_count(len(rows), 'eval')} did not pass ({detail})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _clip(text: str, limit: int = _LINE_CHARS) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."
