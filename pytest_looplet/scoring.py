"""Running one eval item: its return value becomes a score, checked against its threshold
and its budgets.

:func:`run_eval` is the body of the plugin's ``pytest_pyfunc_call`` for eval items; it records
the score, threshold, metrics, reason (the result's ``explanation``) and the run's trajectory
figures in a :class:`~looplet.evals.report_model.Figures`, written to ``item.user_properties``
as ``looplet_<field>`` pairs once the eval is over, so they ride on the report to the xdist
controller and into JUnit XML; when a report is written (``--looplet-report``,
``--looplet-html``) the trajectory's steps go there too (``looplet_trajectory``).
:func:`record_trajectory` is how a fixture tells the plugin which trajectory an eval produced.
The marker's ``max_steps``, ``max_tokens`` and ``max_cost`` are checked once the eval
returned; its cost comes from :data:`PRICES` (extended by the ``looplet_prices`` files).
Collection is :mod:`pytest_looplet.collect`'s job, the end-of-run table
:mod:`pytest_looplet.summary`'s.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from looplet import pricing
from looplet.evals.report_model import Figures
from looplet.evals.result import EvalResult
from looplet.types import Step, Trajectory, Turn, Usage
from pytest_looplet.collect import async_return_key
from pytest_looplet.datasets import case_threshold
from pytest_looplet.settings import LoopletSettings, check_threshold

__all__ = [
    "MARKER_KEYS",
    "PRICES",
    "Prices",
    "cost_usd",
    "load_prices",
    "price_of",
    "record_trajectory",
    "run_eval",
    "trajectory_json",
    "trajectory_key",
]

MARKER_KEYS = ("threshold", "repeat", "max_steps", "max_tokens", "max_cost", "models")
"""The keyword arguments ``@pytest.mark.looplet(...)`` accepts."""

Prices = dict[str, tuple[float, float]]
"""Model name -> (input, output) price in US dollars per million tokens (a mutable table)."""

PRICES: Prices = dict(pricing.PRICES)
"""The built-in price table (:data:`looplet.pricing.PRICES`), as extended per run by
``looplet_prices`` files (``docs/reports.md``)."""

PREVIEW_CHARS = 200
"""How much of each argument list, result, error and reasoning a step keeps in reports."""

MAX_REPORTED_STEPS = 100
"""A trajectory longer than this keeps its first and last halves in reports."""

trajectory_key = pytest.StashKey[Trajectory]()
#: The prompt-cache lifetime of the recorded run (``"5m"`` or ``"1h"``): it prices cache writes.
cache_ttl_key = pytest.StashKey[str]()
"""Where :func:`record_trajectory` keeps an item's trajectory (on ``item.stash``)."""


def record_trajectory(
    request_or_item: pytest.FixtureRequest | pytest.Item,
    trajectory: Trajectory,
    *,
    cache_ttl: str = "5m",
) -> None:
    """Attach ``trajectory`` to the running eval, so its steps, tokens and stop reason are reported.

    For fixtures that run the agent (``looplet_agent``): the last trajectory recorded wins,
    and one the eval returns (in an ``EvalResult``'s or a dict's values) takes precedence.

        def looplet_agent(request):
            trajectory = run_agent(...)
            record_trajectory(request, trajectory)

    ``cache_ttl`` is the prompt-cache lifetime the run used (``CachePolicy(ttl=...)``): a
    ``"1h"`` cache write costs 2x the input price, a ``"5m"`` one 1.25x (Anthropic's prices).
    """
    item = request_or_item if isinstance(request_or_item, pytest.Item) else request_or_item.node
    item.stash[trajectory_key] = trajectory
    item.stash[cache_ttl_key] = cache_ttl


def run_eval(
    item: pytest.Function,
    settings: LoopletSettings,
    prices: Prices,
    call: Callable[[], object] | None = None,
) -> bool:
    """Call the eval, normalise what it returned, record it, and fail it below its threshold
    or over its budgets.

    ``call`` runs the eval and returns its value; by default the eval's function is called
    with its arguments, and an ``async def`` eval is run to completion in a new event loop.
    An async eval that another plugin awaited (anyio's, pytest-asyncio's) left its value in
    ``item.stash``, and that value is scored, exactly as a sync eval's.
    An eval that raises is reported as pytest reports any test; one that returns an
    unsupported value fails with a message naming the eval, the value's type and the
    accepted forms, and is recorded as an error (``looplet_error``), never as a pass.
    """
    figures = Figures()  # what the report shows of this run: looplet_* user properties
    try:
        return _run_eval(item, settings, prices, call, figures)
    finally:
        item.user_properties.extend(figures.properties())


def _run_eval(
    item: pytest.Function,
    settings: LoopletSettings,
    prices: Prices,
    call: Callable[[], object] | None,
    figures: Figures,
) -> bool:
    threshold, budgets = _read_marker(item, settings.threshold, figures)
    threshold = case_threshold(item, threshold)  # a dataset case's own threshold wins
    record = _Recorder(item, settings, prices, figures)
    try:
        value = call() if call is not None else _call(item)
        if async_return_key in item.stash:
            value = item.stash[async_return_key]
            del item.stash[async_return_key]
    except BaseException as exc:
        record(None)
        if isinstance(exc, Exception) and not isinstance(exc, AssertionError):
            figures.error = type(exc).__name__
        figures.divergence = _divergence(exc)
        raise
    result = _normalise(item, value, record, figures)
    recorded = record(_returned_trajectory(result))
    figures.score, figures.threshold = result.score, threshold
    figures.metrics = dict(result.metrics)
    figures.reason = result.explanation or None  # a scorer's or judge's reason, passed or not
    problems = [] if result.passed(threshold) else [_below_threshold(item, result, threshold)]
    over = _over_budget(item, budgets, recorded)
    if over:
        figures.budget_exceeded = sorted(over)
        problems.append(f"eval {item.name} is over budget: {'; '.join(over.values())}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    return True


def _call(item: pytest.Function) -> object:
    # pytest's own pyfunc_call passes exactly these: the function's arguments, not autouse
    # fixtures.
    function = item.obj
    value = function(**{name: item.funcargs[name] for name in item._fixtureinfo.argnames})
    if inspect.iscoroutinefunction(function) and inspect.iscoroutine(value):
        value = asyncio.run(value)
    return value


def _normalise(
    item: pytest.Function, value: object, record: _Recorder, figures: Figures
) -> EvalResult:
    try:
        return EvalResult.from_return(value)
    except (TypeError, ValueError) as exc:
        kind, problem = type(exc).__name__, str(exc)
    if inspect.iscoroutine(value):
        value.close()  # never awaited: close it rather than leak a RuntimeWarning
    record(None)
    figures.error = kind
    # Raised outside the except block, so the report shows one message, not a chain.
    pytest.fail(f"{kind}: eval {item.name} {problem}", pytrace=False)


def _read_marker(
    item: pytest.Function, default: float, figures: Figures
) -> tuple[float, dict[str, float]]:
    """The eval's threshold and its budgets (``max_*`` keys that are set)."""
    marker = item.get_closest_marker("looplet")
    if marker is None:
        return default, {}
    if marker.args:
        _bad_marker(item, figures, f"takes keyword arguments only ({', '.join(MARKER_KEYS)})")
    unknown = sorted(set(marker.kwargs) - set(MARKER_KEYS))
    if unknown:
        _bad_marker(item, figures, f"got {', '.join(unknown)}; it accepts {', '.join(MARKER_KEYS)}")
    for key in ("repeat", "max_steps", "max_tokens"):
        value = marker.kwargs.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            _bad_marker(item, figures, f"{key} is a positive int or None, not {value!r}")
    cost = marker.kwargs.get("max_cost")
    if cost is not None and (
        isinstance(cost, bool) or not isinstance(cost, int | float) or math.isnan(cost) or cost <= 0
    ):
        _bad_marker(
            item, figures, f"max_cost is a positive number of dollars or None, not {cost!r}"
        )
    budgets = {
        key: marker.kwargs[key]
        for key in ("max_steps", "max_tokens", "max_cost")
        if marker.kwargs.get(key) is not None
    }
    threshold = marker.kwargs.get("threshold")
    if threshold is None:
        return default, budgets
    if isinstance(threshold, str):
        _bad_marker(item, figures, f"threshold is a number in [0, 1], not {threshold!r}")
    try:
        return check_threshold(threshold), budgets
    except ValueError as exc:
        _bad_marker(item, figures, str(exc))


def _bad_marker(item: pytest.Function, figures: Figures, problem: str) -> NoReturn:
    figures.error = "marker"
    pytest.fail(f"eval {item.name}: @pytest.mark.looplet {problem}", pytrace=False)


def _returned_trajectory(result: EvalResult) -> Trajectory | None:
    found = [value for value in result.details.values() if isinstance(value, Trajectory)]
    return found[-1] if found else None


@dataclass(frozen=True, slots=True)
class _Recorded:
    """The trajectory an eval produced, the model it ran and what it cost."""

    trajectory: Trajectory
    model: str | None
    cost: float | None


class _Recorder:
    """Records the figures of the trajectory an eval produced, once, and returns them."""

    def __init__(
        self, item: pytest.Function, settings: LoopletSettings, prices: Prices, figures: Figures
    ) -> None:
        self.item, self.settings, self.prices, self.figures = item, settings, prices, figures

    def __call__(self, returned: Trajectory | None) -> _Recorded | None:
        item, figures = self.item, self.figures
        trajectory = returned if returned is not None else item.stash.get(trajectory_key, None)
        if trajectory is None:
            return None
        reason = trajectory.stop_reason
        figures.step_count = len(trajectory.steps)
        figures.tokens = trajectory.total_usage.total_tokens  # sub-agents' tokens included
        figures.stop_reason = reason.value if reason is not None else None
        model = item.funcargs.get("looplet_model")
        model = model if isinstance(model, str) and model else self.settings.model
        ttl = item.stash.get(cache_ttl_key, "5m")
        figures.cost_usd = cost = cost_usd(trajectory, model, self.prices, cache_ttl=ttl)
        if self.settings.records_trajectories:
            figures.trajectory = json.loads(trajectory_json(trajectory, model))
        return _Recorded(trajectory, model, cost)


def _over_budget(
    item: pytest.Function, budgets: dict[str, float], recorded: _Recorded | None
) -> dict[str, str]:
    """The budgets the eval exceeded (or could not be checked against), each with its figures."""
    if not budgets:
        return {}
    if recorded is None:
        return {
            key: f"{_budget(key, value)} but the eval recorded no trajectory (use looplet_agent "
            "or record_trajectory)"
            for key, value in budgets.items()
        }
    trajectory, model, cost = recorded.trajectory, recorded.model, recorded.cost
    usage = trajectory.total_usage  # a sub-agent spends the eval's budget too
    over = {}
    if "max_steps" in budgets and len(trajectory.steps) > budgets["max_steps"]:
        over["max_steps"] = f"{len(trajectory.steps)} steps > max_steps={budgets['max_steps']}"
    if "max_tokens" in budgets and usage.total_tokens > budgets["max_tokens"]:
        over["max_tokens"] = (
            f"{usage.total_tokens} tokens ({usage.input_tokens} in, {usage.output_tokens} out) "
            f"> max_tokens={budgets['max_tokens']}"
        )
    if "max_cost" in budgets:
        limit = budgets["max_cost"]
        if model is None:
            over["max_cost"] = (
                f"max_cost=${limit:g} needs the model's name: request the looplet_model "
                "fixture or pass --looplet-model"
            )
        elif cost is None:
            over["max_cost"] = (
                f"max_cost=${limit:g} needs a price for model {model!r}: add it to a "
                "looplet_prices file"
            )
        elif cost > limit:
            over["max_cost"] = (
                f"${cost:.6f} > max_cost=${limit:g} ({model}: {usage.input_tokens} input, "
                f"{usage.output_tokens} output tokens)"
            )
    return over


def _budget(key: str, value: float) -> str:
    return f"max_cost=${value:g}" if key == "max_cost" else f"{key}={value:g}"


def price_of(model: str, prices: Prices) -> tuple[float, float] | None:
    """``model``'s (input, output) price per 1M tokens, or ``None`` when the table lacks it."""
    return pricing.price_of(model, prices)


def cost_usd(
    trajectory: Trajectory, model: str | None, prices: Prices, *, cache_ttl: str = "5m"
) -> float | None:
    """The trajectory's cost in US dollars, or ``None`` for an unknown or unpriced model.

    Its sub-agents' tokens are included, priced as ``model``'s (a child that runs another
    model is priced as the eval's); cache writes at ``cache_ttl``'s price."""
    if not model:
        return None
    return pricing.cost_usd(trajectory.total_usage, model, prices, cache_ttl=cache_ttl)


def load_prices(paths: Iterable[Path]) -> Prices:
    """The built-in :data:`PRICES` updated with each JSON file of ``paths``, in order.

    A file maps model names to ``{"input": dollars, "output": dollars}`` per million tokens.

    Raises:
        ValueError: a file is missing, not JSON, or not of that shape (naming the file and
            the field).
    """
    prices = dict(PRICES)
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: expected an object of model names, got {type(data).__name__}"
            )
        for model, entry in data.items():
            pair = []
            for side in ("input", "output"):
                value = entry.get(side) if isinstance(entry, dict) else None
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(
                        f"{path}: field {model}.{side}: expected a number of dollars per "
                        f"million tokens >= 0, got {value!r}"
                    )
                pair.append(float(value))
            prices[model] = (pair[0], pair[1])
    return prices


def trajectory_json(trajectory: Trajectory, model: str | None = None) -> str:
    """The compact JSON of a trajectory that reports show: a view of the run record's form
    (:mod:`looplet.record.codec`) with its keys, previews cut to :data:`PREVIEW_CHARS`, at
    most :data:`MAX_REPORTED_STEPS` steps, each step a row of the report's schema
    (``n``, ``tool``, ``args``, ``ok``, ``result``, ``error``, ``error_kind``, ``ms``,
    ``reasoning``, ``turn``, ``text``, ``permission``, ``usage``, ``llm_ms``:
    docs/reports.md). A run that recorded its model turns (:attr:`Trajectory.turns`) adds
    ``llm_ms``, the model's time, and ``final_turn``, its last turn when no step shown came
    from it (a final text, a failed call)."""
    from looplet.record.codec import encode_step, encode_usage

    steps = trajectory.steps
    omitted = max(0, len(steps) - MAX_REPORTED_STEPS)
    if omitted:
        half = MAX_REPORTED_STEPS // 2
        steps = [*steps[:half], *steps[len(steps) - (MAX_REPORTED_STEPS - half) :]]
    reason = trajectory.stop_reason
    data = {
        "model": model,
        "llm_calls": trajectory.llm_calls,
        "usage": encode_usage(trajectory.usage),
        "stop_reason": reason.value if reason is not None else None,
        "stop_detail": _preview(trajectory.stop_detail),
        "final_text": _preview(trajectory.final_text, 5 * PREVIEW_CHARS),
        "elapsed_ms": round(trajectory.elapsed_ms, 1),
        "steps": _step_rows(trajectory, steps, encode_step),
        "steps_omitted": omitted,
    }
    turns = trajectory.turns
    if turns:  # after the keys of older reports
        data["llm_ms"] = round(sum(t.duration_ms for t in turns), 3)
        last = turns[-1]
        if not steps or last.step > steps[-1].number:  # none of its calls became a step shown
            data["final_turn"] = _turn_cost(last, encode_usage)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _turn_cost(turn: Turn, encode_usage: Callable[[Usage], dict[str, int]]) -> dict[str, Any]:
    """A model turn's tokens (``usage``) and time (``llm_ms``, to the µs), as the report
    shows them."""
    return {"usage": encode_usage(turn.usage), "llm_ms": round(turn.duration_ms, 3)}


def _step_rows(
    trajectory: Trajectory, steps: list[Step], encode_step: Callable[[Step], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The report rows of ``steps``, each with the model turn it came from (``turn``, and
    on a turn's first step the model's ``text`` and, when recorded, the turn's ``usage`` and
    ``llm_ms``: on one step only, so that the rows' tokens add up) and its permission
    decision."""
    from looplet.record.codec import encode_usage

    firsts = {t.step: t for t in trajectory.turns if t.calls}  # a turn's first step -> turn
    turns: dict[str, tuple[int, str]] = {}  # call id -> (turn, the model's text that turn)
    turn = 0
    for message in trajectory.messages:
        if message.role == "assistant" and message.tool_calls:
            turn += 1
            for call in message.tool_calls:
                turns.setdefault(call.call_id, (turn, message.content))
    decisions = {(d.step, d.tool): d for d in trajectory.permission_decisions}
    rows, told = [], set()
    for step in steps:
        row = _step_json(encode_step(step))
        found = turns.get(step.tool_call.call_id) if step.tool_call.call_id else None
        if found is not None:
            row["turn"] = found[0]
            if found[0] not in told and found[1].strip():
                row["text"] = _preview(found[1], 5 * PREVIEW_CHARS)
            told.add(found[0])
        decision = decisions.get((step.number, step.tool_call.tool))
        if decision is not None:
            row["permission"] = {
                "decision": decision.decision.value,
                "reason": _preview(decision.reason),
                "by": decision.decided_by,
            }
            if decision.asked:
                row["permission"]["asked"] = True
        first_of = firsts.get(step.number)
        if first_of is not None:
            row.update(_turn_cost(first_of, encode_usage))
        rows.append(row)
    return rows


def _step_json(step: dict[str, Any]) -> dict[str, Any]:
    """A report row from a step in the codec's form."""
    call, result = step["tool_call"], step["tool_result"]
    out: dict[str, Any] = {
        "n": step["step"],
        "tool": call["tool"],
        "args": _preview(
            call.get("raw_arguments") if "parse_error" in call else _dumps(call["args"])
        ),
        "ok": result["error"] is None,
        "result": None if result["data"] is None else _preview(_dumps(result["data"])),
        "error": _preview(result["error"]) if result["error"] is not None else None,
        "ms": round(result["duration_ms"], 1),
    }
    if call.get("reasoning"):
        out["reasoning"] = _preview(call["reasoning"])
    if result["error_detail"] is not None:  # after the keys of older reports
        out["error_kind"] = result["error_detail"]["kind"]
    return out


def _dumps(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError):  # e.g. keys of mixed types
        return repr(value)


DIFF_CHARS = 4000
"""How much of a failed trajectory assertion's step diff a report keeps."""


def _divergence(exc: BaseException) -> dict[str, Any] | None:
    """Where a failed :func:`~looplet.assertions.assert_trajectory` found the run to differ
    (the ``step`` number, ``None`` when only the stop reason or a budget failed) and its
    step diff, for the report; ``None`` for any other exception."""
    assertions = sys.modules.get("looplet.assertions")  # loaded if it raised
    if assertions is None or not isinstance(exc, assertions.TrajectoryMismatch):
        return None
    steps, index = exc.actual.steps, exc.first_divergence
    step: int | None = None
    if index is not None:  # past the last step: steps are missing at the end
        step = steps[index].number if index < len(steps) else (steps[-1].number if steps else 0) + 1
    return {"step": step, "diff": _preview("\n".join(exc.lines), DIFF_CHARS)}


def _preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _below_threshold(item: pytest.Function, result: EvalResult, threshold: float) -> str:
    text = f"eval {item.name} scored {result.score:g}, below the threshold {threshold:g}"
    if result.label:
        text += f" [{result.label}]"
    if result.explanation:
        text += f": {result.explanation}"
    if result.metrics:
        shown = ", ".join(f"{key}={value:g}" for key, value in sorted(result.metrics.items()))
        text += f" ({shown})"
    return text
