"""The typed eval report: :class:`ReportItem` (one run of an eval), :class:`EvalEntry` (an eval
and its statistics), :class:`Report` (the run, its evals, the totals), and their JSON form.

A run's figures (:class:`Figures`: score, threshold, metrics, steps, tokens, cost...) are
recorded where the eval runs and carried to whoever builds the report as ``looplet_<field>``
pairs (:meth:`Figures.properties`, read back with :meth:`Figures.read_properties`): in the
pytest plugin these are the item's user properties, so the same names appear in JUnit XML.
Each field has one name end to end: the attribute, the ``looplet_<name>`` pair and the key
of the JSON report (``docs/reports.md``). Adding a figure is adding a typed field to
:class:`Figures` and setting it where the eval runs; the pairs, the JSON writer, the checked
reader and the HTML page's list of facts all follow the field.

The statistics of each eval (:class:`EvalEntry`) and the totals always follow from the items
(:func:`summarise_evals`), so a document read back or merged from shards is recomputed
rather than trusted. Only the standard library is imported (and :mod:`looplet.errors`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeGuard, get_args

from looplet.errors import LoopletError
from looplet.evals import stats

__all__ = [
    "COUNTED",
    "PASSED",
    "PROPERTY_PREFIX",
    "SCHEMA",
    "VERDICTS",
    "VERSION",
    "EvalEntry",
    "Figures",
    "MergedFrom",
    "Report",
    "ReportError",
    "ReportItem",
    "ReportOptions",
    "ReportRun",
    "ShardSplit",
    "Totals",
    "Verdict",
    "mean_score",
    "summarise_evals",
]

SCHEMA = "looplet-report"
"""The value of a report's ``schema`` field."""

VERSION = 1
"""The version of the schema this module writes and the newest it reads."""

Verdict = Literal["PASS", "FAIL", "ERROR", "SKIP", "XFAIL", "XPASS"]
"""An eval's or a run's result, in pytest's words."""

VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
"""Every :data:`Verdict`, in the order totals list them."""

PASSED: tuple[Verdict, ...] = ("PASS", "XPASS")
"""The verdicts that count as a pass."""

COUNTED: tuple[Verdict, ...] = (*PASSED, "FAIL", "ERROR")
"""The verdicts of runs that say something about the pass rate (not skipped)."""

PROPERTY_PREFIX = "looplet_"
"""A figure ``x`` travels as the pair ``("looplet_x", value)``."""

JSON = Any
"""A value as :func:`json.loads` returns it."""


class ReportError(LoopletError, ValueError):
    """A file that is not a usable looplet report, with the field at fault."""

    def __init__(self, path: str | Path, field: str, problem: str) -> None:
        super().__init__(f"{path}: field {field}: {problem}")
        self.path, self.field, self.problem = str(path), field, problem


# -- the fields' kinds: how each is checked, written as a pair and read back ------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one field type is read from JSON (``check``: None when the value does not fit),
    written as a ``looplet_*`` pair and read back from one."""

    expected: str
    check: Callable[[JSON], object | None]
    to_pair: Callable[[Any], object]
    from_pair: Callable[[object], Any]


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _dumps(value: object) -> str:
    # default=str: a YAML case's dates have no JSON form.
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def _loads(value: object) -> JSON:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _as(kind: type[int] | type[float]) -> Callable[[object], Any]:
    def convert(value: Any) -> Any:
        try:
            return None if value is None else kind(value)
        except (TypeError, ValueError):
            return None

    return convert


def _float_map(value: JSON) -> dict[str, float] | None:
    if isinstance(value, dict) and all(_is_number(v) for v in value.values()):
        return {str(k): float(v) for k, v in value.items()}
    return None


_FOUND = object()  # "fits" for a JSON null, which check() would otherwise return as None


def _optional(check: Callable[[JSON], object | None]) -> Callable[[JSON], object | None]:
    def checked(value: JSON) -> object | None:
        return _FOUND if value is None else check(value)

    return checked


_KINDS: dict[str, _Kind] = {
    "float | None": _Kind(
        "null or a number",
        _optional(lambda v: float(v) if _is_number(v) else None),
        lambda v: v,
        _as(float),
    ),
    "int | None": _Kind(
        "null or an integer", _optional(lambda v: v if _is_int(v) else None), lambda v: v, _as(int)
    ),
    "str | None": _Kind(
        "null or a string",
        _optional(lambda v: v if isinstance(v, str) else None),
        lambda v: v,
        lambda v: str(v) if v not in (None, "") else None,
    ),
    "list[str]": _Kind(
        "a list of strings",
        lambda v: v if isinstance(v, list) and all(isinstance(s, str) for s in v) else None,
        ",".join,
        lambda v: str(v).split(",") if v else [],
    ),
    "dict[str, float]": _Kind(
        "an object of numbers", _float_map, _dumps, lambda v: _float_map(_loads(v)) or {}
    ),
    "dict[str, Any] | None": _Kind(
        "null or an object",
        _optional(lambda v: v if isinstance(v, dict) else None),
        _dumps,
        lambda v: x if isinstance(x := _loads(v), dict) else None,
    ),
}


def _kinds(cls: type) -> dict[str, _Kind]:
    """Each field of ``cls`` with its kind (a field of a type no kind handles is a TypeError)."""
    out = {}
    for f in dataclasses.fields(cls):
        kind = _KINDS.get(str(f.type))
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no JSON kind for type {f.type}")
        out[f.name] = kind
    return out


def _default(f: dataclasses.Field[Any]) -> object:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


# -- a run's figures and its item ------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Figures:
    """What one run of an eval recorded, where the eval ran: the fields of its report item
    that are not pytest's outcome.

    Attributes:
        score: what the eval scored, in [0, 1], or ``None`` (it raised, or returned nothing).
        threshold: the score it had to reach.
        metrics: the eval's other numbers.
        error: what went wrong besides an assert or a low score: the exception type,
            ``marker``, ``crashed`` or ``not_run``.
        reason: why the score is what it is (the result's ``explanation``).
        step_count: the steps of its trajectory.
        tokens: the tokens its trajectory used.
        stop_reason: why its trajectory stopped.
        cost_usd: what its tokens cost, when the model and its price are known.
        budget_exceeded: the budgets it broke (``max_steps``, ``max_tokens``, ``max_cost``).
        trajectory: its trajectory's preview as JSON (an object; ``docs/reports.md``).
        case: for an eval over a dataset, the case's ``name``, ``dataset`` and ``metadata``.
        divergence: for a run that failed :func:`~looplet.assertions.assert_trajectory`, the
            ``step`` where its trajectory first differs (``None`` when only the stop reason
            or a budget failed) and the step ``diff`` (expected vs actual).
        model: for a run of a model matrix, its model as ``provider:model``
            (:mod:`looplet.evals.model_table` compares the models).
    """

    score: float | None = None
    threshold: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    step_count: int | None = None
    tokens: int | None = None
    stop_reason: str | None = None
    cost_usd: float | None = None
    budget_exceeded: list[str] = field(default_factory=list)
    trajectory: dict[str, Any] | None = None
    case: dict[str, Any] | None = None
    divergence: dict[str, Any] | None = None
    model: str | None = None

    def properties(self) -> list[tuple[str, object]]:
        """The ``("looplet_<field>", value)`` pairs of the fields that differ from their
        default: numbers and text as they are, lists comma-joined, objects as JSON text (what
        JUnit XML and xdist carry)."""
        out = []
        for f in dataclasses.fields(Figures):
            value = getattr(self, f.name)
            if value != _default(f):
                out.append((PROPERTY_PREFIX + f.name, _figure_kinds()[f.name].to_pair(value)))
        return out

    def read_properties(self, props: Mapping[str, object]) -> None:
        """Set every figure from ``props`` (``looplet_<field>`` -> value, as
        :meth:`properties` wrote them); an absent or unreadable one is its default."""
        for f in dataclasses.fields(Figures):
            raw = props.get(PROPERTY_PREFIX + f.name)
            value = None if raw is None else _figure_kinds()[f.name].from_pair(raw)
            setattr(self, f.name, _default(f) if value is None else value)


# Checked at import: a figure of a type no kind handles fails here, not in a report.
_FIGURE_KINDS = _kinds(Figures)


def _figure_kinds() -> dict[str, _Kind]:
    return _FIGURE_KINDS


# The JSON keys of an item in the order v1 wrote them; figures added later follow.
_ITEM_LEAD = ("nodeid", "eval", "repetition", "repetitions", "verdict", "score", "threshold",
              "metrics", "error", "message", "reason", "duration_s")  # fmt: skip


@dataclass(slots=True, kw_only=True)
class ReportItem(Figures):
    """One run of one eval: its node id, eval, repetition, verdict and duration (pytest's
    outcome) and the :class:`Figures` it recorded.

    Attributes:
        nodeid: the item's node id: ``path::eval_x[alice-rep2of5]``.
        eval: the eval it belongs to (the node id without the repetition).
        repetition: this run's number, from 1.
        repetitions: the eval's runs.
        verdict: this run's :data:`Verdict`.
        message: the failure's or skip's message.
        duration_s: setup + call + teardown, in seconds.
    """

    nodeid: str
    eval: str
    repetition: int = 1
    repetitions: int = 1
    verdict: Verdict
    message: str | None = None
    duration_s: float = 0.0

    def to_json(self) -> dict[str, JSON]:
        """The item as the JSON report writes it."""
        names = [*_ITEM_LEAD, *(n for n in _figure_kinds() if n not in _ITEM_LEAD)]
        return {name: _plain(getattr(self, name)) for name in names}


# -- an eval, the totals, the run ------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class EvalEntry:
    """One eval (a parametrized eval is one per parameter set): its verdict and the statistics
    of its runs, with the runs themselves (``items``, by repetition). Built by
    :func:`summarise_evals`; ``docs/reports.md`` says what each field means."""

    eval: str
    verdict: Verdict
    repetitions: int
    runs: int
    passes: int
    pass_rate: float | None
    pass_rate_ci: tuple[float, float] | None
    mean_score: float | None
    k: int | None
    pass_at_k: float | None
    pass_hat_k: float | None
    pass_at: dict[str, float]
    pass_hat: dict[str, float]
    flaky: bool
    steps: int | None
    """The sum of the runs' ``step_count``."""
    tokens: int | None
    cost_usd: float | None
    duration_s: float
    items: list[ReportItem]

    def to_json(self) -> dict[str, JSON]:
        """The entry as the JSON report writes it."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)[:-1]}
        return {**out, "items": [item.to_json() for item in self.items]}


@dataclass(slots=True, kw_only=True)
class Totals:
    """The whole run's figures: evals and items, evals per verdict, flaky evals, the mean of
    the evals' mean scores, and the sums of steps, tokens and cost."""

    evals: int
    items: int
    verdicts: dict[str, int]
    flaky: int
    mean_score: float | None
    steps: int | None
    tokens: int | None
    cost_usd: float | None

    @classmethod
    def of(cls, evals: list[EvalEntry]) -> Totals:
        """The totals of ``evals``."""
        scores = [e.mean_score for e in evals if e.mean_score is not None]
        return cls(
            evals=len(evals),
            items=sum(len(e.items) for e in evals),
            verdicts={v: n for v in VERDICTS if (n := sum(e.verdict == v for e in evals))},
            flaky=sum(e.flaky for e in evals),
            mean_score=sum(scores) / len(scores) if scores else None,
            steps=_sum(e.steps for e in evals),
            tokens=_sum(e.tokens for e in evals),
            cost_usd=_sum(e.cost_usd for e in evals),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardSplit:
    """A ``--looplet-shard`` run's split: this shard's 1-based ``index`` of ``total``, and the
    sorted node ids of every eval item of the suite (``suite``) and of this shard's
    (``items``)."""

    index: int
    total: int
    suite: list[str]
    items: list[str]


@dataclass(slots=True, kw_only=True)
class ReportOptions:
    """The options that shaped the run (``run.options``); ``min_pass_rate`` and ``pass_k``
    decide the verdicts of repeated evals. A field a report did not give is ``None``."""

    min_pass_rate: float = 1.0
    pass_k: int | None = None
    threshold: float | None = None
    repeat: int | None = None
    record_mode: str | None = None
    model: str | None = None
    provider: str | None = None
    shard: str | None = None
    """``"2/4"`` for a sharded run."""
    eval_files: list[str] | None = None
    eval_prefix: str | None = None
    baseline: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MergedFrom:
    """One report a merged report was made of: its path, shard option and start time."""

    path: str
    shard: str | None
    started: str | None


@dataclass(slots=True, kw_only=True)
class ReportRun:
    """The run: versions, times, workers, the command line, options and shard. A merged
    report adds ``merged_from``, ``partial`` and ``problems`` (``None`` otherwise)."""

    looplet_version: str | None = None
    pytest_version: str | None = None
    python: str | None = None
    platform: str | None = None
    started: str = ""
    finished: str = ""
    duration_s: float = 0.0
    workers: int = 0
    args: list[str] = field(default_factory=list)
    options: ReportOptions = field(default_factory=ReportOptions)
    shard: ShardSplit | None = None
    merged_from: list[MergedFrom] | None = None
    partial: bool | None = None
    problems: list[str] | None = None

    _MERGE_ONLY: ClassVar[tuple[str, ...]] = ("merged_from", "partial", "problems")

    def to_json(self) -> dict[str, JSON]:
        """The run as the JSON report writes it (the merge fields only when merged)."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if not (f.name in self._MERGE_ONLY and getattr(self, f.name) is None)
        }


# -- the report --------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Report:
    """A whole eval report: the run, one :class:`EvalEntry` per eval (sorted), the totals.

    Make one with :meth:`of` (or :func:`looplet.evals.report.build_report`), read one with
    :meth:`from_json` (or ``load_report``); :meth:`to_json` is the document
    ``docs/reports.md`` describes.
    """

    run: ReportRun
    evals: list[EvalEntry]
    totals: Totals

    @classmethod
    def of(cls, items: Iterable[ReportItem], run: ReportRun) -> Report:
        """The report of ``items``: grouped by eval, with statistics and totals computed
        under ``run.options``."""
        evals = summarise_evals(
            items, min_pass_rate=run.options.min_pass_rate, pass_k=run.options.pass_k
        )
        return cls(run=run, evals=evals, totals=Totals.of(evals))

    @property
    def items(self) -> list[ReportItem]:
        """Every run of every eval, in eval order."""
        return [item for entry in self.evals for item in entry.items]

    def to_json(self) -> dict[str, JSON]:
        """The JSON document (``schema``, ``version``, ``run``, ``evals``, ``totals``)."""
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "run": self.run.to_json(),
            "evals": [entry.to_json() for entry in self.evals],
            "totals": _plain(self.totals),
        }

    @classmethod
    def from_json(cls, doc: JSON, path: str | Path = "<report>") -> Report:
        """Read a report document of any version up to :data:`VERSION`, checking every
        field (:mod:`looplet.evals._report_json`); the statistics are recomputed from its items.

        Raises:
            ReportError: naming the file (``path``) and the first field at fault.
        """
        from looplet.evals._report_json import read_report  # reading needs the classes above

        return read_report(doc, path)


# -- statistics --------------------------------------------------------------------------------


def summarise_evals(
    items: Iterable[ReportItem], *, min_pass_rate: float = 1.0, pass_k: int | None = None
) -> list[EvalEntry]:
    """The items grouped by eval, each with its verdict and statistics, sorted by eval.

    A repeated eval passes when at least ``min_pass_rate`` of its counted runs pass; ``pass_k``
    is the ``k`` of the headline pass@k and pass^k (each eval's number of runs by default).
    """
    groups: dict[str, list[ReportItem]] = {}
    for item in items:
        copy = dataclasses.replace(item, duration_s=round(float(item.duration_s or 0.0), 4))
        groups.setdefault(item.eval, []).append(copy)
    return [_summarise(name, groups[name], min_pass_rate, pass_k) for name in sorted(groups)]


def _summarise(
    name: str, items: list[ReportItem], min_pass_rate: float, pass_k: int | None
) -> EvalEntry:
    items.sort(key=lambda item: (item.repetition, item.nodeid))
    repetitions = max(item.repetitions for item in items)
    counted = [item for item in items if item.verdict in COUNTED]
    n, c = len(counted), sum(item.verdict in PASSED for item in counted)
    verdict: Verdict
    if (repetitions == 1 and len(items) == 1) or n == 0:
        verdict = items[0].verdict
    elif c >= min_pass_rate * n - 1e-9:
        verdict = "PASS"
    elif all(item.verdict == "ERROR" for item in counted):
        verdict = "ERROR"
    else:
        verdict = "FAIL"
    k = pass_k or n
    return EvalEntry(
        eval=name,
        verdict=verdict,
        repetitions=repetitions,
        runs=n,
        passes=c,
        pass_rate=c / n if n else None,
        pass_rate_ci=stats.wilson_interval(c, n) if n else None,
        mean_score=mean_score(items),
        k=k if n else None,
        pass_at_k=stats.pass_at_k(n, c, k) if 1 <= k <= n else None,
        pass_hat_k=stats.pass_hat_k(n, c, k) if 1 <= k <= n else None,
        pass_at={str(j): stats.pass_at_k(n, c, j) for j in range(1, n + 1)},
        pass_hat={str(j): stats.pass_hat_k(n, c, j) for j in range(1, n + 1)},
        flaky=0 < c < n,
        steps=_sum(item.step_count for item in items),
        tokens=_sum(item.tokens for item in items),
        cost_usd=_sum(item.cost_usd for item in items),
        duration_s=round(sum(item.duration_s for item in items), 3),
        items=items,
    )


def mean_score(items: Iterable[ReportItem]) -> float | None:
    """The mean score of an eval's runs; ``None`` when no run was scored or failed.

    A run that failed or errored without a score (an assert, an exception, a crash) counts
    as 0.0, so neither an eval's mean nor the run's ignores its failures; a skipped run
    counts for nothing.
    """
    scores = []
    for item in items:
        if item.score is not None:
            scores.append(float(item.score))
        elif item.verdict in ("FAIL", "ERROR"):
            scores.append(0.0)
    return sum(scores) / len(scores) if scores else None


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    total = sum(present)
    return round(total, 10) if isinstance(total, float) else total


def _plain(value: object) -> JSON:
    """A field's value as JSON: dataclasses as objects, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _is_positive(value: object) -> TypeGuard[int]:
    return _is_int(value) and value >= 1


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
