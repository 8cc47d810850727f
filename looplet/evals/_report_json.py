"""Reading a JSON report back into a :class:`~looplet.evals.report_model.Report`, every field
checked, so that a bad file fails naming the file and the field (``field evals[3].items[0].
verdict: expected one of PASS, ...``) rather than somewhere downstream.

Every version up to :data:`~looplet.evals.report_model.VERSION` is read; fields a version
lacks take their defaults. The statistics are not read: they are recomputed from the items.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from looplet.evals.report_model import (
    _FOUND,
    JSON,
    SCHEMA,
    VERDICTS,
    VERSION,
    MergedFrom,
    Report,
    ReportError,
    ReportItem,
    ReportOptions,
    ReportRun,
    ShardSplit,
    _figure_kinds,
    _is_int,
    _is_number,
    _is_positive,
    _kind,
)

__all__ = ["read_item", "read_report"]


def read_report(doc: JSON, path: str | Path = "<report>") -> Report:
    """The report of a JSON document (see :meth:`Report.from_json`).

    Raises:
        ReportError: naming the file (``path``) and the first field at fault.
    """
    if not isinstance(doc, dict):
        raise ReportError(path, "(top level)", f"expected an object, got {_kind(doc)}")
    if doc.get("schema") != SCHEMA:
        raise ReportError(path, "schema", f"expected {SCHEMA!r}, got {doc.get('schema')!r}")
    version = doc.get("version")
    if not _is_positive(version):
        raise ReportError(path, "version", f"expected a positive integer, got {version!r}")
    if version > VERSION:
        raise ReportError(
            path, "version", f"version {version} is newer than this looplet reads ({VERSION})"
        )
    run = _read_run(doc.get("run"), path)
    evals = doc.get("evals")
    if not isinstance(evals, list):
        raise ReportError(path, "evals", f"expected a list, got {_kind(evals)}")
    items = []
    for i, entry in enumerate(evals):
        where = f"evals[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("eval"), str):
            raise ReportError(path, f"{where}.eval", "expected an object with an 'eval' string")
        found = entry.get("items")
        if not isinstance(found, list) or not found:
            raise ReportError(path, f"{where}.items", f"expected a non-empty list, got {found!r}")
        items += [
            read_item(item, entry["eval"], f"{where}.items[{j}]", path)
            for j, item in enumerate(found)
        ]
    return Report.of(items, run)


def read_item(obj: JSON, eval_name: str, where: str, path: str | Path) -> ReportItem:
    """An item of eval ``eval_name`` (at ``where`` in the file), every field checked.

    Raises:
        ReportError: naming the first field (``where.field``) at fault.
    """
    if not isinstance(obj, dict):
        raise ReportError(path, where, f"expected an object, got {_kind(obj)}")
    checks: list[tuple[str, bool, str]] = [
        ("nodeid", isinstance(obj.get("nodeid"), str), "a string"),
        ("eval", obj.get("eval") == eval_name, f"the eval's name {eval_name!r}"),
        ("repetition", _is_positive(obj.get("repetition")), "a positive integer"),
        ("repetitions", _is_positive(obj.get("repetitions")), "a positive integer"),
        ("verdict", obj.get("verdict") in VERDICTS, f"one of {', '.join(VERDICTS)}"),
        ("score", _is_score(obj.get("score")), "null or a number in [0, 1]"),
        ("message", obj.get("message") is None or isinstance(obj["message"], str),
         "null or a string"),
        ("duration_s", obj.get("duration_s") is None or _is_number(obj["duration_s"]),
         "a number"),
    ]  # fmt: skip
    for name, ok, expected in checks:
        if not ok:
            raise ReportError(
                path, f"{where}.{name}", f"expected {expected}, got {obj.get(name)!r}"
            )
    item = ReportItem(
        nodeid=obj["nodeid"],
        eval=eval_name,
        repetition=obj["repetition"],
        repetitions=obj["repetitions"],
        verdict=obj["verdict"],
        message=obj.get("message"),
        duration_s=float(obj.get("duration_s") or 0.0),
    )
    for name, kind in _figure_kinds().items():
        if name not in obj:
            continue  # a figure added after the file's version
        value = kind.check(obj[name])
        if value is None:
            raise ReportError(
                path, f"{where}.{name}", f"expected {kind.expected}, got {obj[name]!r}"
            )
        if value is not _FOUND:  # a JSON null: the default
            setattr(item, name, value)
    return item


def _read_run(run: JSON, path: str | Path) -> ReportRun:
    if not isinstance(run, dict) or not isinstance(run.get("options", {}), dict):
        raise ReportError(path, "run", "expected an object with an 'options' object")
    plain = {k: v for k, v in run.items() if k not in ("options", "shard", "merged_from")}
    out: ReportRun = _read_fields(ReportRun, plain, "run", path)
    out.options = _read_fields(ReportOptions, run.get("options", {}), "run.options", path)
    if run.get("shard") is not None:
        out.shard = _read_shard(run["shard"], path)
    merged = run.get("merged_from")
    if merged is not None:
        if not isinstance(merged, list) or not all(isinstance(m, dict) for m in merged):
            raise ReportError(
                path, "run.merged_from", f"expected a list of objects, got {merged!r}"
            )
        out.merged_from = [
            _read_fields(MergedFrom, m, f"run.merged_from[{i}]", path) for i, m in enumerate(merged)
        ]
    return out


def _read_fields(cls: type[Any], obj: Mapping[str, JSON], where: str, path: str | Path) -> Any:
    """An instance of dataclass ``cls`` from the keys of ``obj`` it has, each checked against
    its field's type (scalars, lists of strings, optional)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            continue
        value, annotation = obj[f.name], str(f.type)
        if not _fits(value, annotation):
            raise ReportError(path, f"{where}.{f.name}", f"expected {annotation}, got {value!r}")
        is_float = value is not None and annotation.startswith("float")
        values[f.name] = float(value) if is_float else value
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ReportError(path, where, str(exc)) from None


def _fits(value: JSON, annotation: str) -> bool:
    for option in (part.strip() for part in annotation.split("|")):
        if (
            (option == "None" and value is None)
            or (option == "str" and isinstance(value, str))
            or (option == "int" and _is_int(value))
            or (option == "float" and _is_number(value))
            or (option == "bool" and isinstance(value, bool))
            or (
                option == "list[str]"
                and isinstance(value, list)
                and all(isinstance(s, str) for s in value)
            )
        ):
            return True
    return False


def _read_shard(shard: JSON, path: str | Path) -> ShardSplit:
    if not isinstance(shard, dict):
        raise ReportError(path, "run.shard", f"expected null or an object, got {_kind(shard)}")
    index, total = shard.get("index"), shard.get("total")
    if not (_is_positive(index) and _is_positive(total) and index <= total):
        raise ReportError(
            path, "run.shard", f"expected 1 <= index <= total, got index {index!r}, total {total!r}"
        )
    ids = {}
    for name in ("suite", "items"):
        found = shard.get(name)
        if not isinstance(found, list) or not all(isinstance(nodeid, str) for nodeid in found):
            raise ReportError(
                path, f"run.shard.{name}", f"expected a list of node ids, got {found!r}"
            )
        ids[name] = sorted(found)
    return ShardSplit(index=index, total=total, suite=ids["suite"], items=ids["items"])


def _is_score(value: object) -> bool:
    return value is None or (_is_number(value) and 0.0 <= value <= 1.0)
