"""The versioned JSON report of an eval run: build, write, read back, merge.

One document describes a run (``run``: versions, times, options), each eval (``evals``: its
verdict and repetition statistics, with one entry per repetition in ``items``: score,
verdict, metrics, steps, usage, cost, duration) and the totals. ``docs/reports.md`` is the
schema's reference; :data:`SCHEMA` and :data:`VERSION` identify it, and a reader refuses a
document of another schema or a newer version.

The eval entries are always recomputed from the items (:func:`summarise_evals`), so a
document merged from shards (:func:`merge_reports`) has the statistics of the whole run.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplet.evals import stats

if TYPE_CHECKING:
    from pytest_looplet.plugin import LoopletSettings

__all__ = [
    "SCHEMA",
    "VERSION",
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


class ReportError(ValueError):
    """A file that is not a usable looplet report, with the field at fault."""

    def __init__(self, path: str | Path, field: str, problem: str) -> None:
        super().__init__(f"{path}: field {field}: {problem}")
        self.path, self.field, self.problem = str(path), field, problem


def build_report(
    items: Iterable[Mapping[str, Any]],
    *,
    settings: LoopletSettings | None,
    started: datetime.datetime,
    finished: datetime.datetime,
    workers: int = 0,
    args: Iterable[str] = (),
) -> dict[str, Any]:
    """The report document of a run from its items (one per eval item, as the summary
    builds them)."""
    options = _options(settings)
    evals = summarise_evals(items, min_pass_rate=options["min_pass_rate"], pass_k=options["pass_k"])
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "run": {
            **_versions(),
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "duration_s": round((finished - started).total_seconds(), 3),
            "workers": workers,
            "args": list(args),
            "options": options,
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
    """The mean score of an eval's runs; ``None`` when none recorded a score.

    A run that failed or errored without a score (an assert, an exception) counts as 0.0, so
    the mean of a repeated eval does not ignore its failed runs.
    """
    scores, any_score = [], False
    for item in items:
        score = item.get("score")
        if score is not None:
            scores.append(float(score))
            any_score = True
        elif item.get("verdict") in ("FAIL", "ERROR"):
            scores.append(0.0)
    return sum(scores) / len(scores) if any_score else None


def write_report(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as JSON to ``path``, creating missing folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
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


def merge_reports(paths: Iterable[str | Path]) -> dict[str, Any]:
    """One report of the items of several (e.g. one per shard), statistics recomputed.

    Options and versions come from the first report; ``run.merged_from`` lists every
    source. The reports must agree on ``min_pass_rate`` and ``pass_k`` (the verdicts depend
    on them) and must not share an item (a node id in two reports).

    Raises:
        ReportError: a file is not a report, the options differ, or an item repeats.
        ValueError: no paths were given.
    """
    docs = [(str(path), load_report(path)) for path in paths]
    if not docs:
        raise ValueError("merge_reports needs at least one report")
    first_path, first = docs[0]
    options = dict(first["run"].get("options", {}))
    seen: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    for path, doc in docs:
        theirs = doc["run"].get("options", {})
        for key in ("min_pass_rate", "pass_k"):
            if theirs.get(key) != options.get(key):
                raise ReportError(path, f"run.options.{key}", f"is {theirs.get(key)!r} but "
                                  f"{options.get(key)!r} in {first_path}")  # fmt: skip
        for entry in doc["evals"]:
            for item in entry["items"]:
                if item["nodeid"] in seen:
                    raise ReportError(path, "items", f"{item['nodeid']} is also in "
                                      f"{seen[item['nodeid']]}")  # fmt: skip
                seen[item["nodeid"]] = path
                items.append(item)
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
            **{key: first["run"].get(key) for key in _versions()},
            "started": started,
            "finished": finished,
            "duration_s": round(sum(run.get("duration_s") or 0.0 for run in runs), 3),
            "workers": sum(run.get("workers") or 0 for run in runs),
            "args": first["run"].get("args", []),
            "options": options,
            "merged_from": [
                {
                    "path": path,
                    "shard": doc["run"].get("options", {}).get("shard"),
                    "started": doc["run"].get("started"),
                }
                for path, doc in docs
            ],
        },
        "evals": evals,
        "totals": _totals(evals),
    }


def _versions() -> dict[str, Any]:
    import pytest

    from looplet._version import __version__

    return {
        "looplet_version": __version__,
        "pytest_version": pytest.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _options(settings: LoopletSettings | None) -> dict[str, Any]:
    if settings is None:
        return {"min_pass_rate": 1.0, "pass_k": None}
    return {
        "threshold": settings.threshold,
        "repeat": settings.repeat,
        "min_pass_rate": settings.min_pass_rate,
        "pass_k": settings.pass_k,
        "record_mode": settings.record_mode,
        "model": settings.model,
        "provider": settings.provider,
        "shard": None if settings.shard is None else "{}/{}".format(*settings.shard),
        "eval_files": list(settings.eval_files),
        "eval_prefix": settings.eval_prefix,
        "baseline": None if settings.baseline is None else str(settings.baseline),
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_score(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not math.isnan(value) and 0.0 <= value <= 1.0


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
