"""The trajectory scorers of :mod:`looplet.scorers`: which calls, in what order, at what cost.

:func:`tool_call_f1` and :func:`trajectory_edit_distance` compare a run's steps with expected
steps written as for :func:`~looplet.assertions.assert_trajectory` (``"greet"``,
``("greet", {"name": "Alice"})``, ``failed(...)``, ``any_outcome(...)``, matchers such as
``ANY`` or ``Regex``). A step *fits* an expected one exactly when ``assert_trajectory`` would
pair them: the same tool, arguments that match under the ``args`` mode (``"exact"``,
``"subset"`` or ``"ignore"``), and the outcome it expects (success, unless it says
otherwise). :func:`within_budget` checks steps, tokens and cost against limits.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from looplet import _trajectory_diff as diff
from looplet import pricing
from looplet._expected_steps import ExpectedStep, StepSpec, normalise
from looplet.assertions import ArgsMode, _check_choice, _step_problem
from looplet.errors import ConfigurationError
from looplet.evals.result import EvalResult
from looplet.types import Step, Trajectory, Usage

if TYPE_CHECKING:
    from looplet.pricing import Prices

__all__ = ["tool_call_f1", "trajectory_edit_distance", "within_budget"]

_ARGS_MODES = ("exact", "ignore", "subset")
_LISTED = 5  # steps named in a reason, per list
_STEP_CHARS = 60


def tool_call_f1(
    trajectory: Trajectory, expected: Sequence[StepSpec], *, args: ArgsMode = "exact"
) -> EvalResult:
    """The F1 of the run's tool calls against the expected ones, order ignored.

    The calls are matched as two multisets: each expected step pairs with at most one step of
    the run that fits it, and as many pairs are made as possible (a maximum matching, so a
    loose matcher such as ``ANY`` never takes the step a stricter one needed). With *m*
    pairs, *n* steps run and *e* expected: precision = m/n, recall = m/e, and the score is
    F1 = 2PR/(P+R). No step run gives precision 1, nothing expected recall 1; so both empty
    score 1.0, and steps where none were expected (or none where some were) score 0.0. The
    reason names each pair and each unmatched step; precision and recall are metrics.

    Example::

        tool_call_f1(traj, [("greet", {"name": "Alice"}), ("greet", {"name": "Bob"}), "done"])

    Raises:
        ConfigurationError: ``trajectory`` is not a Trajectory, an expected step is
            malformed, or ``args`` is not a mode.
    """
    steps, wanted, fits = _prepare(trajectory, expected, args)
    rows = diff.align("unordered", len(wanted), len(steps), fits, lambda i, j: False)
    pairs = sorted(
        (r.actual, r.expected)
        for r in rows
        if r.kind == "match" and r.actual is not None and r.expected is not None
    )
    matched = len(pairs)
    precision = matched / len(steps) if steps else 1.0
    recall = matched / len(wanted) if wanted else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    paired_steps = {j for j, _ in pairs}
    paired_wanted = {i for _, i in pairs}
    parts = [f"F1 {f1:.2f} (precision {matched}/{len(steps)}, recall {matched}/{len(wanted)})"]
    if not steps and not wanted:
        parts = ["F1 1.00: no calls expected and none made"]
    if pairs:
        shown = [f"{_want(wanted[i], args)} = {_step(steps[j])}" for j, i in pairs]
        parts.append(f"matched {_capped(shown)}")
    extra = [_step(s) for j, s in enumerate(steps) if j not in paired_steps]
    if extra:
        parts.append(f"unexpected {_capped(extra)}")
    missing = [_want(w, args) for i, w in enumerate(wanted) if i not in paired_wanted]
    if missing:
        parts.append(f"missing {_capped(missing)}")
    return EvalResult(
        f1,
        name="tool_call_f1",
        metrics={"precision": precision, "recall": recall},
        explanation="; ".join(parts),
    )


def trajectory_edit_distance(
    trajectory: Trajectory, expected: Sequence[StepSpec], *, args: ArgsMode = "exact"
) -> EvalResult:
    """How close the run's steps are to the expected sequence: 1 - distance / longer length.

    The distance is the Levenshtein distance over steps: the fewest steps to insert (extra
    in the run), delete (missing from it) or substitute (a step where another was expected)
    to turn the expected sequence into the run's, a step that fits costing nothing. It is
    divided by the longer of the two lengths, so the score is in [0, 1]: 1.0 for the same
    steps in the same order (or both empty), 0.0 when no step is where one that fits was
    expected. The reason names each edit; the distance is the metric ``edits``. Time and
    memory grow with the product of the two lengths.

    Example::

        trajectory_edit_distance(traj, ["search", "read", "done"], args="ignore")

    Raises:
        ConfigurationError: as for :func:`tool_call_f1`.
    """
    steps, wanted, fits = _prepare(trajectory, expected, args)
    n, m = len(wanted), len(steps)
    cost = [[0 if fits(i, j) else 1 for j in range(m)] for i in range(n)]
    # dist[i][j]: the edits that turn wanted[:i] into steps[:j].
    dist = [[i + j if i == 0 or j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        row, above = dist[i], dist[i - 1]
        for j in range(1, m + 1):
            row[j] = min(above[j] + 1, row[j - 1] + 1, above[j - 1] + cost[i - 1][j - 1])
    edits: list[str] = []
    i, j = n, m
    while i or j:  # walk back along one cheapest path, naming its edits
        if i and j and dist[i][j] == dist[i - 1][j - 1] + cost[i - 1][j - 1]:
            if cost[i - 1][j - 1]:
                edits.append(f"{_step(steps[j - 1])} instead of {_want(wanted[i - 1], args)}")
            i, j = i - 1, j - 1
        elif i and dist[i][j] == dist[i - 1][j] + 1:
            edits.append(f"missing {_want(wanted[i - 1], args)}")
            i -= 1
        else:
            edits.append(f"extra {_step(steps[j - 1])}")
            j -= 1
    distance = dist[n][m]
    longer = max(n, m)
    similarity = 1.0 - distance / longer if longer else 1.0
    if not longer:
        reason = "no steps expected and none taken"
    elif not distance:
        reason = f"the same {n} steps in the same order"
    else:
        noun = "edit" if distance == 1 else "edits"
        reason = f"{distance} {noun} over {longer} steps: {_capped(edits[::-1])}"
    return EvalResult(
        similarity,
        name="trajectory_edit_distance",
        metrics={"edits": float(distance)},
        explanation=f"similarity {similarity:.2f}, {reason}",
    )


def within_budget(
    trajectory: Trajectory,
    *,
    max_steps: int | None = None,
    max_tokens: int | None = None,
    max_cost: float | None = None,
    model: str | None = None,
    prices: Prices | None = None,
) -> EvalResult:
    """1.0 when the run kept to every budget given, else 0.0.

    Steps are the run's own; tokens and cost are its ``total_usage`` (sub-agent runs
    included). A cost needs the model's name, priced from :data:`looplet.pricing.PRICES` or
    ``prices`` (model -> (input, output) dollars per million tokens). The reason gives each
    figure against its budget; the figures are metrics (``steps``, ``tokens``, ``cost_usd``).

    Example::

        within_budget(traj, max_steps=6, max_cost=0.01, model="gpt-4o-mini")

    Raises:
        ConfigurationError: no budget given, a budget that is not a number >= 0, ``max_cost``
            without ``model``, or a model with no price.
    """
    if not isinstance(trajectory, Trajectory):
        raise _not_a_trajectory(trajectory)
    if max_steps is None and max_tokens is None and max_cost is None:
        raise ConfigurationError(
            "within_budget() needs at least one budget: max_steps=, max_tokens= or max_cost="
        )
    usage = trajectory.total_usage
    checks: list[tuple[bool, str]] = []
    metrics = {"steps": float(len(trajectory.steps)), "tokens": float(usage.total_tokens)}
    if max_steps is not None:
        limit = _count_budget("max_steps", max_steps)
        n = len(trajectory.steps)
        checks.append((n <= limit, f"{n} steps {'<=' if n <= limit else '>'} {limit}"))
    if max_tokens is not None:
        limit = _count_budget("max_tokens", max_tokens)
        n = usage.total_tokens
        checks.append((n <= limit, f"{n:,} tokens {'<=' if n <= limit else '>'} {limit:,}"))
    if max_cost is not None:
        cost, dollars = _cost(usage, max_cost, model, prices)
        metrics["cost_usd"] = cost
        ok = cost <= dollars
        checks.append((ok, f"${cost:.6f} {'<=' if ok else '>'} ${dollars:g} ({model})"))
    over = [text for ok, text in checks if not ok]
    kept = [text for ok, text in checks if ok]
    if over:
        reason = (
            "over budget: " + ", ".join(over) + (f"; within: {', '.join(kept)}" if kept else "")
        )
    else:
        reason = "within budget: " + ", ".join(kept)
    return EvalResult(
        0.0 if over else 1.0, name="within_budget", metrics=metrics, explanation=reason
    )


def _prepare(
    trajectory: Trajectory, expected: Sequence[StepSpec], args: str
) -> tuple[list[Step], list[ExpectedStep], Callable[[int, int], bool]]:
    if not isinstance(trajectory, Trajectory):
        raise _not_a_trajectory(trajectory)
    _check_choice("args", args, _ARGS_MODES)
    wanted = normalise(expected)
    steps = list(trajectory.steps)

    def fits(i: int, j: int) -> bool:
        return _step_problem(wanted[i], steps[j], args) is None

    return steps, wanted, fits


def _not_a_trajectory(value: object) -> ConfigurationError:
    return ConfigurationError(
        f"expected a Trajectory, got {type(value).__name__}; pass the run's trajectory "
        "(looplet_agent.run(...) or loop.trajectory)"
    )


def _count_budget(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"within_budget(): {name} is an int >= 0, got {value!r}")
    return value


def _cost(
    usage: Usage, max_cost: object, model: str | None, prices: Prices | None
) -> tuple[float, float]:
    if isinstance(max_cost, bool) or not isinstance(max_cost, numbers.Real):
        raise ConfigurationError(f"within_budget(): max_cost is dollars, got {max_cost!r}")
    dollars = float(max_cost)
    if not math.isfinite(dollars) or dollars < 0:
        raise ConfigurationError(
            f"within_budget(): max_cost is a finite number of dollars >= 0, got {dollars!r}"
        )
    if not isinstance(model, str) or not model:
        raise ConfigurationError(
            "within_budget(max_cost=...) needs the model's name to price the tokens: "
            "model='gpt-4o-mini' (in an eval, the looplet_model fixture)"
        )
    if prices is not None and not isinstance(prices, Mapping):
        raise ConfigurationError(
            f"within_budget(): prices maps model names to (input, output) dollars per "
            f"million tokens, got {type(prices).__name__}"
        )
    cost = pricing.cost_usd(usage, model, prices)
    if cost is None:
        raise ConfigurationError(
            f"within_budget(): no price for model {model!r}; pass prices={{{model!r}: "
            "(input, output)}} in dollars per million tokens"
        )
    return cost, dollars


def _want(step: ExpectedStep, args: str) -> str:
    return diff.clip(step.describe(args), _STEP_CHARS)


def _step(step: Step) -> str:
    mark = "" if step.ok else "✗ "
    call = step.tool_call
    return diff.clip(f"#{step.number} {mark}{call.tool}({call.args_summary()})", _STEP_CHARS)


def _capped(texts: Sequence[str]) -> str:
    shown = ", ".join(texts[:_LISTED])
    return shown + (f" and {len(texts) - _LISTED} more" if len(texts) > _LISTED else "")
