"""The versioned JSON report of an eval run: build, write, read back, merge.

One document describes a run (``run``: versions, times, options), each eval (``evals``: its
verdict and repetition statistics, with one entry per repetition in ``items``: score,
verdict, metrics, steps, usage, cost, duration) and the totals. ``docs/reports.md`` is the
schema's reference; :data:`SCHEMA` and :data:`VERSION` identify it, and a reader refuses a
document of another schema or a newer version.

The eval entries are always recomputed from the items (:func:`summarise_evals`), so a
document merged from shards (:func:`merge_reports`) has the statistics of the whole run. A
shard's report says which shard it is and which eval items the whole suite had (``run.shard``),
so a merge can tell a missing or repeated shard.

Only the standard library is imported: ``looplet merge`` works without pytest, and the plugin
passes its options in as plain values.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

from looplet.evals import stats

__all__ = [
    "SCHEMA",
    "VERSION",
    "MergeError",
    "ReportError",
    "build_report",
    "load_report",
    "mean_score",
    "merge_reports",
    "summarise_evals",
    "validate_report",
    "write_report",
]

SCHEMA = "looplet-report"
"""The value of a report's ``schema`` field."""

VERSION = 1
"""The version of the schema this module writes and the newest it reads."""

VERDICTS = ("PASS", "FAIL", "ERROR", "SKIP", "XFAIL", "XPASS")
PASSED = ("PASS", "XPASS")
COUNTED = (*PASSED, "FAIL", "ERROR")  # runs that say something about the pass rate
_VERSION_KEYS = ("looplet_version", "pytest_version", "python", "platform")


class ReportError(ValueError):
    """A file that is not a usable looplet report, with the field at fault."""

    def __init__(self, path: str | Path, field: str, problem: str) -> None:
        super().__init__(f"{path}: field {field}: {problem}")
        self.path, self.field, self.problem = str(path), field, problem


class MergeError(ValueError):
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
    items: Iterable[Mapping[str, Any]],
    *,
    started: datetime.datetime,
    finished: datetime.datetime,
    options: Mapping[str, Any] | None = None,
    workers: int = 0,
    args: Iterable[str] = (),
    pytest_version: str | None = None,
    shard: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report document of a run from its items (one per eval item, as the summary
    builds them).

    Args:
        items: one mapping per eval item (``nodeid``, ``eval``, ``repetition``, ...).
        started, finished: when the run began and ended (aware datetimes).
        options: the run's options, written to ``run.options`` as given; ``min_pass_rate``
            (default 1.0) and ``pass_k`` (default ``None``) decide the verdicts.
        workers: xdist workers that ran evals (0 without xdist).
        args: the command line.
        pytest_version: the pytest that ran the evals, or ``None``.
        shard: for a sharded run, ``{"index", "total", "suite", "items"}``: this shard's
            1-based number, how many shards, the node ids of every eval item of the suite,
            and those of this shard; ``None`` for a whole run.
    """
    options = {"min_pass_rate": 1.0, "pass_k": None, **(options or {})}
    evals = summarise_evals(items, min_pass_rate=options["min_pass_rate"], pass_k=options["pass_k"])
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "run": {
            **_versions(pytest_version),
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "duration_s": round((finished - started).total_seconds(), 3),
            "workers": workers,
            "args": list(args),
            "options": options,
            "shard": None if shard is None else _shard_entry(shard),
        },
        "evals": evals,
        "totals": _totals(evals),
    }


def summarise_evals(
    items: Iterable[Mapping[str, Any]], *, min_pass_rate: float = 1.0, pass_k: int | None = None
) -> list[dict[str, Any]]:
    """The ``evals`` entries: the items grouped by eval, with their statistics, sorted."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        copy = dict(item)
        copy["duration_s"] = round(float(copy.get("duration_s") or 0.0), 4)
        groups.setdefault(item["eval"], []).append(copy)
    return [_summarise(name, groups[name], min_pass_rate, pass_k) for name in sorted(groups)]


def _summarise(
    name: str, items: list[dict[str, Any]], min_pass_rate: float, pass_k: int | None
) -> dict[str, Any]:
    items.sort(key=lambda item: (item["repetition"], item["nodeid"]))
    repetitions = max(item["repetitions"] for item in items)
    counted = [item for item in items if item["verdict"] in COUNTED]
    n, c = len(counted), sum(item["verdict"] in PASSED for item in counted)
    if (repetitions == 1 and len(items) == 1) or n == 0:
        verdict = items[0]["verdict"]
    elif c >= min_pass_rate * n - 1e-9:
        verdict = "PASS"
    elif all(item["verdict"] == "ERROR" for item in counted):
        verdict = "ERROR"
    else:
        verdict = "FAIL"
    k = pass_k or n
    return {
        "eval": name,
        "verdict": verdict,
        "repetitions": repetitions,
        "runs": n,
        "passes": c,
        "pass_rate": c / n if n else None,
        "pass_rate_ci": list(stats.wilson_interval(c, n)) if n else None,
        "mean_score": mean_score(items),
        "k": k if n else None,
        "pass_at_k": stats.pass_at_k(n, c, k) if 1 <= k <= n else None,
        "pass_hat_k": stats.pass_hat_k(n, c, k) if 1 <= k <= n else None,
        "pass_at": {str(j): stats.pass_at_k(n, c, j) for j in range(1, n + 1)},
        "pass_hat": {str(j): stats.pass_hat_k(n, c, j) for j in range(1, n + 1)},
        "flaky": 0 < c < n,
        "steps": _sum(item.get("step_count") for item in items),
        "tokens": _sum(item.get("tokens") for item in items),
        "cost_usd": _sum(item.get("cost_usd") for item in items),
        "duration_s": round(sum(item.get("duration_s") or 0.0 for item in items), 3),
        "items": items,
    }


def mean_score(items: Iterable[Mapping[str, Any]]) -> float | None:
    """The mean score of an eval's runs; ``None`` when no run was scored or failed.

    A run that failed or errored without a score (an assert, an exception, a crash) counts
    as 0.0, so neither an eval's mean nor the run's ignores its failures; a skipped run
    counts for nothing.
    """
    scores = []
    for item in items:
        score = item.get("score")
        if score is not None:
            scores.append(float(score))
        elif item.get("verdict") in ("FAIL", "ERROR"):
            scores.append(0.0)
    return sum(scores) / len(scores) if scores else None


def write_report(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as JSON to ``path``, creating missing folders; returns the path.

    Credentials and key-shaped strings in it are written as ``<redacted>``
    (:mod:`looplet._redact`).
    """
    from looplet._redact import redact

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(redact(dict(doc)), indent=1, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report file.

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
    validate_report(doc, path)
    return doc  # type: ignore[no-any-return]  # validated just above


def validate_report(doc: object, path: str | Path = "<report>") -> None:
    """Check that ``doc`` is a looplet report of a version this module reads.

    Only what readers rely on is checked: the schema and version, and each item's node id,
    eval, repetition and verdict; other fields are passed through as they are.

    Raises:
        ReportError: naming the first field at fault.
    """
    if not isinstance(doc, dict):
        raise ReportError(path, "(top level)", f"expected an object, got {_kind(doc)}")
    if doc.get("schema") != SCHEMA:
        raise ReportError(path, "schema", f"expected {SCHEMA!r}, got {doc.get('schema')!r}")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ReportError(path, "version", f"expected a positive integer, got {version!r}")
    if version > VERSION:
        raise ReportError(
            path, "version", f"version {version} is newer than this looplet reads ({VERSION})"
        )
    run = doc.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("options", {}), dict):
        raise ReportError(path, "run", "expected an object with an 'options' object")
    if run.get("shard") is not None:
        _validate_shard(run["shard"], path)
    evals = doc.get("evals")
    if not isinstance(evals, list):
        raise ReportError(path, "evals", f"expected a list, got {_kind(evals)}")
    for i, entry in enumerate(evals):
        where = f"evals[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("eval"), str):
            raise ReportError(path, f"{where}.eval", "expected an object with an 'eval' string")
        items = entry.get("items")
        if not isinstance(items, list) or not items:
            raise ReportError(path, f"{where}.items", f"expected a non-empty list, got {items!r}")
        for j, item in enumerate(items):
            _validate_item(item, entry["eval"], f"{where}.items[{j}]", path)


def _validate_shard(shard: object, path: str | Path) -> None:
    if not isinstance(shard, dict):
        raise ReportError(path, "run.shard", f"expected null or an object, got {_kind(shard)}")
    index, total = shard.get("index"), shard.get("total")
    if not (_is_int(index) and _is_int(total) and index <= total):
        raise ReportError(
            path, "run.shard", f"expected 1 <= index <= total, got index {index!r}, total {total!r}"
        )
    for field in ("suite", "items"):
        ids = shard.get(field)
        if not isinstance(ids, list) or not all(isinstance(nodeid, str) for nodeid in ids):
            raise ReportError(
                path, f"run.shard.{field}", f"expected a list of node ids, got {ids!r}"
            )


def _validate_item(item: object, name: str, where: str, path: str | Path) -> None:
    if not isinstance(item, dict):
        raise ReportError(path, where, f"expected an object, got {_kind(item)}")
    checks: list[tuple[str, bool, str]] = [
        ("nodeid", isinstance(item.get("nodeid"), str), "a string"),
        ("eval", item.get("eval") == name, f"the eval's name {name!r}"),
        ("repetition", _is_int(item.get("repetition")), "a positive integer"),
        ("repetitions", _is_int(item.get("repetitions")), "a positive integer"),
        ("verdict", item.get("verdict") in VERDICTS, f"one of {', '.join(VERDICTS)}"),
        ("score", _is_score(item.get("score")), "null or a number in [0, 1]"),
    ]
    for field, ok, expected in checks:
        if not ok:
            raise ReportError(path, f"{where}.{field}", f"expected {expected}, got "
                              f"{item.get(field)!r}")  # fmt: skip


def merge_reports(paths: Iterable[str | Path], *, allow_partial: bool = False) -> dict[str, Any]:
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
    docs = [(str(path), load_report(path)) for path in paths]
    if not docs:
        raise ValueError("merge_reports needs at least one report")
    first_path, first = docs[0]
    options = dict(first["run"].get("options", {}))
    seen: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    repeated: list[tuple[str, str]] = []
    for path, doc in docs:
        theirs = doc["run"].get("options", {})
        for key in ("min_pass_rate", "pass_k"):
            if theirs.get(key) != options.get(key):
                raise ReportError(path, f"run.options.{key}", f"is {theirs.get(key)!r} but "
                                  f"{options.get(key)!r} in {first_path}")  # fmt: skip
        for entry in doc["evals"]:
            for item in entry["items"]:
                if item["nodeid"] in seen:
                    repeated.append((path, item["nodeid"]))
                    continue  # kept once, from the first report that has it
                seen[item["nodeid"]] = path
                items.append(item)
    problems = _shard_problems(docs)
    if repeated and not problems:  # a shard given twice already explains its items
        path, nodeid = repeated[0]
        more = f" (and {len(repeated) - 1} more items found twice)" if len(repeated) > 1 else ""
        problems.append(f"{path}: {nodeid} is also in {seen[nodeid]}{more}")
    problems += [f"{path} is a partial merge" for path, doc in docs if doc["run"].get("partial")]
    if problems and not allow_partial:
        raise MergeError(problems)
    options["shard"] = None
    evals = summarise_evals(
        items, min_pass_rate=options.get("min_pass_rate", 1.0), pass_k=options.get("pass_k")
    )
    runs = [doc["run"] for _, doc in docs]
    started = min((str(run.get("started", "")) for run in runs), default="")
    finished = max((str(run.get("finished", "")) for run in runs), default="")
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "run": {
            **{key: first["run"].get(key) for key in _VERSION_KEYS},
            "started": started,
            "finished": finished,
            "duration_s": round(sum(run.get("duration_s") or 0.0 for run in runs), 3),
            "workers": sum(run.get("workers") or 0 for run in runs),
            "args": first["run"].get("args", []),
            "options": options,
            "shard": None,
            "merged_from": [
                {
                    "path": path,
                    "shard": doc["run"].get("options", {}).get("shard"),
                    "started": doc["run"].get("started"),
                }
                for path, doc in docs
            ],
            "partial": bool(problems),
            "problems": problems,
        },
        "evals": evals,
        "totals": _totals(evals),
    }


def _shard_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Why the shard reports among ``docs`` are not every shard of one split, once each."""
    shards = [(path, doc["run"]["shard"]) for path, doc in docs if doc["run"].get("shard")]
    if not shards:
        return []
    first_path, first = shards[0]
    total = first["total"]
    problems: list[str] = []
    given: dict[int, list[str]] = {}
    for path, shard in shards:
        if shard["total"] != total:
            problems.append(
                f"{path} is shard {shard['index']}/{shard['total']} but {first_path} is shard "
                f"{first['index']}/{total}: they are not shards of one split"
            )
        elif shard["suite"] != first["suite"]:
            problems.append(
                f"{path} and {first_path} were split from different suites "
                f"({len(shard['suite'])} and {len(first['suite'])} eval items): run every "
                "shard from the same checkout with the same arguments"
            )
        else:
            given.setdefault(shard["index"], []).append(path)
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
        counts = Counter(nodeid for _, shard in shards for nodeid in shard["items"])
        twice = sorted(nodeid for nodeid, count in counts.items() if count > 1)
        absent = sorted(set(first["suite"]) - set(counts))
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


def _shard_entry(shard: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "index": int(shard["index"]),
        "total": int(shard["total"]),
        "suite": sorted(shard["suite"]),
        "items": sorted(shard["items"]),
    }


def _totals(evals: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [e["mean_score"] for e in evals if e["mean_score"] is not None]
    return {
        "evals": len(evals),
        "items": sum(len(e["items"]) for e in evals),
        "verdicts": {v: n for v in VERDICTS if (n := sum(e["verdict"] == v for e in evals))},
        "flaky": sum(bool(e["flaky"]) for e in evals),
        "mean_score": sum(scores) / len(scores) if scores else None,
        "steps": _sum(e["steps"] for e in evals),
        "tokens": _sum(e["tokens"] for e in evals),
        "cost_usd": _sum(e["cost_usd"] for e in evals),
    }


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    total = sum(present)
    return round(total, 10) if isinstance(total, float) else total


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_score(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not math.isnan(value) and 0.0 <= value <= 1.0


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
