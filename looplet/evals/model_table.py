"""The model matrix's comparison: one :class:`ModelRow` per model over the report's items.

An item that ran under a model matrix records its model (``ReportItem.model``,
``provider:model``); :func:`model_rows` groups such items by model and gives each model the
figures a comparison needs: runs and passes, the pass rate with its Wilson interval
(:func:`looplet.evals.stats.wilson_interval`, as an eval's), the mean score (counted as
:func:`looplet.evals.report_model.mean_score` counts an eval's), and the sums of steps,
tokens, cost and time. The pytest plugin's summary and HTML page show them; like the rest
of the report they are computed from the items, never stored. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from looplet.evals import stats
from looplet.evals.report_model import COUNTED, PASSED, ReportItem, mean_score

__all__ = ["ModelRow", "model_rows"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRow:
    """One model's runs of every eval of a matrix.

    Attributes:
        model: ``provider:model``.
        items: the model's report items (skipped ones included).
        runs: the counted runs (passed, failed or errored; not skipped).
        passes: the runs that passed.
        pass_rate: ``passes / runs``, or ``None`` with no counted run.
        pass_rate_ci: its 95% Wilson interval, or ``None``.
        mean_score: the mean score of the runs (a failure without a score counts 0).
        steps: the sum of the runs' steps (``None`` when none recorded any).
        tokens: the sum of their tokens.
        cost_usd: the sum of their cost (``None`` when the model has no price).
        duration_s: the sum of their durations.
    """

    model: str
    items: int
    runs: int
    passes: int
    pass_rate: float | None
    pass_rate_ci: tuple[float, float] | None
    mean_score: float | None
    steps: int | None
    tokens: int | None
    cost_usd: float | None
    duration_s: float


def model_rows(items: Iterable[ReportItem]) -> list[ModelRow]:
    """A row per model of the items that ran under a matrix, in the order first seen
    (the report's eval order); no row when no item records a model."""
    groups: dict[str, list[ReportItem]] = {}
    for item in items:
        if item.model:
            groups.setdefault(item.model, []).append(item)
    return [_row(model, group) for model, group in groups.items()]


def _row(model: str, items: list[ReportItem]) -> ModelRow:
    counted = [item for item in items if item.verdict in COUNTED]
    n, c = len(counted), sum(item.verdict in PASSED for item in counted)
    return ModelRow(
        model=model,
        items=len(items),
        runs=n,
        passes=c,
        pass_rate=c / n if n else None,
        pass_rate_ci=stats.wilson_interval(c, n) if n else None,
        mean_score=mean_score(items),
        steps=_sum_int(item.step_count for item in items),
        tokens=_sum_int(item.tokens for item in items),
        cost_usd=_sum_cost(item.cost_usd for item in items),
        duration_s=round(sum(item.duration_s for item in items), 3),
    )


def _sum_int(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _sum_cost(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present), 10) if present else None
