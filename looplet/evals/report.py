"""The versioned JSON report of an eval run: build, write, read back, merge.

The report is typed (:mod:`looplet.evals.report_model`): a :class:`Report` holds the run
(versions, times, options), each eval (:class:`EvalEntry`: its verdict and repetition
statistics, with one :class:`ReportItem` per repetition: score, verdict, metrics, steps,
usage, cost, duration) and the totals; its JSON form is ``docs/reports.md``'s schema, which
:data:`SCHEMA` and :data:`VERSION` identify. A reader refuses a document of another schema or
a newer version, and reads every older one.

The eval entries are always recomputed from the items (:func:`summarise_evals`), so a
document merged from shards (:func:`merge_reports`) has the statistics of the whole run. A
shard's report says which shard it is and which eval items the whole suite had (``run.shard``),
so a merge can tell a missing or repeated shard.

Only the standard library is imported: ``looplet merge`` works without pytest, and the plugin
passes its options in as plain values (:class:`ReportOptions`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from looplet.errors import LoopletError
from looplet.evals.report_model import (
    COUNTED,
    PASSED,
    SCHEMA,
    VERDICTS,
    VERSION,
    EvalEntry,
    Figures,
    MergedFrom,
    Report,
    ReportError,
    ReportItem,
    ReportOptions,
    ReportRun,
    ShardSplit,
    Totals,
    mean_score,
    summarise_evals,
)

__all__ = [
    "COUNTED",
    "PASSED",
    "SCHEMA",
    "VERDICTS",
    "VERSION",
    "EvalEntry",
    "Figures",
    "MergeError",
    "MergedFrom",
    "Report",
    "ReportError",
    "ReportItem",
    "ReportOptions",
    "ReportRun",
    "ShardSplit",
    "Totals",
    "build_report",
    "load_report",
    "mean_score",
    "merge_reports",
    "summarise_evals",
    "validate_report",
    "write_report",
]


class MergeError(LoopletError, ValueError):
    """Reports that are not one complete set: a shard missing or given twice, an item in
    two reports, shards of different splits. ``problems`` lists each; ``allow_partial=True``
    merges them anyway."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            f"{'; '.join(problems)}. Merge them anyway with --allow-partial "
            "(merge_reports(..., allow_partial=True)): the merged report is marked partial"
        )
        self.problems = problems


def build_report(
    items: Iterable[ReportItem],
    *,
    started: datetime.datetime,
    finished: datetime.datetime,
    options: ReportOptions | None = None,
    workers: int = 0,
    args: Iterable[str] = (),
    pytest_version: str | None = None,
    shard: ShardSplit | None = None,
) -> Report:
    """The report of a run from its items (one per eval item).

    Args:
        items: one :class:`ReportItem` per eval item.
        started, finished: when the run began and ended (aware datetimes).
        options: the run's options, written to ``run.options``; ``min_pass_rate`` and
            ``pass_k`` decide the verdicts.
        workers: xdist workers that ran evals (0 without xdist).
        args: the command line.
        pytest_version: the pytest that ran the evals, or ``None``.
        shard: for a sharded run, its split; ``None`` for a whole run.
    """
    run = ReportRun(
        **_versions(pytest_version),
        started=started.isoformat(timespec="seconds"),
        finished=finished.isoformat(timespec="seconds"),
        duration_s=round((finished - started).total_seconds(), 3),
        workers=workers,
        args=list(args),
        options=options if options is not None else ReportOptions(),
        shard=None if shard is None else _sorted_split(shard),
    )
    return Report.of(items, run)


def write_report(path: str | Path, report: Report | Mapping[str, Any]) -> Path:
    """Write ``report`` (a :class:`Report`, or a document as :meth:`Report.to_json` gives)
    as JSON to ``path``, creating missing folders; returns the path.

    Credentials and key-shaped strings in it are written as ``<redacted>``
    (:mod:`looplet._redact`).
    """
    from looplet._redact import redact

    doc = report.to_json() if isinstance(report, Report) else dict(report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(redact(doc), indent=1, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_report(path: str | Path) -> Report:
    """Read and check a report file (any version up to :data:`VERSION`).

    Raises:
        ReportError: the file cannot be read, is not JSON, or is not a looplet report this
            version reads (naming the field at fault).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(path, "(file)", f"cannot read it: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ReportError(path, "(file)", f"not JSON: {exc}") from None
    return Report.from_json(doc, path)


def validate_report(doc: object, path: str | Path = "<report>") -> None:
    """Check that ``doc`` is a looplet report document of a version this module reads.

    Raises:
        ReportError: naming the first field at fault.
    """
    Report.from_json(doc, path)


def merge_reports(paths: Iterable[str | Path], *, allow_partial: bool = False) -> Report:
    """One report of the items of several (e.g. one per shard), statistics recomputed.

    Options and versions come from the first report; ``run.merged_from`` lists every
    source. The reports must agree on ``min_pass_rate`` and ``pass_k`` (the verdicts depend
    on them), and must be one complete set: the shard reports (those with ``run.shard``)
    all of one split, every shard exactly once, and no item (node id) in two reports.
    Otherwise :class:`MergeError` names each problem, unless ``allow_partial``: then an item
    found twice is taken from the first report given, and the result says ``run.partial``
    with the problems in ``run.problems``. Reports without ``run.shard`` (whole runs) merge
    with no shard check.

    Raises:
        ReportError: a file is not a report, or the options differ.
        MergeError: the reports are not one complete set and ``allow_partial`` is false.
        ValueError: no paths were given.
    """
    reports = [(str(path), load_report(path)) for path in paths]
    if not reports:
        raise ValueError("merge_reports needs at least one report")
    first_path, first = reports[0]
    options = first.run.options
    seen: dict[str, str] = {}
    items: list[ReportItem] = []
    repeated: list[tuple[str, str]] = []
    for path, report in reports:
        theirs = report.run.options
        for key in ("min_pass_rate", "pass_k"):
            if getattr(theirs, key) != getattr(options, key):
                raise ReportError(path, f"run.options.{key}", f"is {getattr(theirs, key)!r} but "
                                  f"{getattr(options, key)!r} in {first_path}")  # fmt: skip
        for item in report.items:
            if item.nodeid in seen:
                repeated.append((path, item.nodeid))
                continue  # kept once, from the first report that has it
            seen[item.nodeid] = path
            items.append(item)
    problems = _shard_problems(reports)
    if repeated and not problems:  # a shard given twice already explains its items
        path, nodeid = repeated[0]
        more = f" (and {len(repeated) - 1} more items found twice)" if len(repeated) > 1 else ""
        problems.append(f"{path}: {nodeid} is also in {seen[nodeid]}{more}")
    problems += [f"{path} is a partial merge" for path, report in reports if report.run.partial]
    if problems and not allow_partial:
        raise MergeError(problems)
    runs = [report.run for _, report in reports]
    run = ReportRun(
        looplet_version=first.run.looplet_version,
        pytest_version=first.run.pytest_version,
        python=first.run.python,
        platform=first.run.platform,
        started=min(run.started for run in runs),
        finished=max(run.finished for run in runs),
        duration_s=round(sum(run.duration_s for run in runs), 3),
        workers=sum(run.workers for run in runs),
        args=first.run.args,
        options=dataclasses.replace(options, shard=None),
        shard=None,
        merged_from=[
            MergedFrom(path=path, shard=report.run.options.shard, started=report.run.started)
            for path, report in reports
        ],
        partial=bool(problems),
        problems=problems,
    )
    return Report.of(items, run)


def _shard_problems(reports: list[tuple[str, Report]]) -> list[str]:
    """Why the shard reports among ``reports`` are not every shard of one split, once each."""
    shards = [(path, r.run.shard) for path, r in reports if r.run.shard is not None]
    if not shards:
        return []
    first_path, first = shards[0]
    total = first.total
    problems: list[str] = []
    given: dict[int, list[str]] = {}
    for path, shard in shards:
        if shard.total != total:
            problems.append(
                f"{path} is shard {shard.index}/{shard.total} but {first_path} is shard "
                f"{first.index}/{total}: they are not shards of one split"
            )
        elif shard.suite != first.suite:
            problems.append(
                f"{path} and {first_path} were split from different suites "
                f"({len(shard.suite)} and {len(first.suite)} eval items): run every "
                "shard from the same checkout with the same arguments"
            )
        else:
            given.setdefault(shard.index, []).append(path)
    missing = [f"{index}/{total}" for index in range(1, total + 1) if index not in given]
    if len(missing) == 1:
        problems.append(f"shard {missing[0]} is missing")
    elif missing:
        problems.append(f"shards {', '.join(missing)} are missing")
    for index, paths in sorted(given.items()):
        if len(paths) > 1:
            times = "twice" if len(paths) == 2 else f"{len(paths)} times"
            problems.append(f"shard {index}/{total} is given {times} ({', '.join(paths)})")
    if not problems:
        # Every shard once, of one suite: their items must be the suite's, each once (they
        # are not when the shards were split by different versions of looplet).
        counts = Counter(nodeid for _, shard in shards for nodeid in shard.items)
        twice = sorted(nodeid for nodeid, count in counts.items() if count > 1)
        absent = sorted(set(first.suite) - set(counts))
        if twice:
            problems.append(f"{len(twice)} eval items are in two shards (first: {twice[0]})")
        if absent:
            problems.append(f"{len(absent)} eval items of the suite are in no shard "
                            f"(first: {absent[0]})")  # fmt: skip
    return problems


def _versions(pytest_version: str | None) -> dict[str, Any]:
    from looplet._version import __version__

    return {
        "looplet_version": __version__,
        "pytest_version": pytest_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _sorted_split(shard: ShardSplit) -> ShardSplit:
    return dataclasses.replace(shard, suite=sorted(shard.suite), items=sorted(shard.items))
