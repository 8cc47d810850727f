"""Running one eval item: its return value becomes a score, checked against its threshold.

:func:`run_eval` is the body of the plugin's ``pytest_pyfunc_call`` for eval items; it records
the score, threshold, metrics and the run's trajectory figures in ``item.user_properties``, so
they ride on the report to the xdist controller and into JUnit XML. :func:`record_trajectory`
is how a fixture tells the plugin which trajectory an eval produced. Collection is
:mod:`pytest_looplet.collect`'s job, the end-of-run table :mod:`pytest_looplet.summary`'s.
"""

from __future__ import annotations

import inspect
import json
from typing import NoReturn

import pytest

from looplet.evals.result import EvalResult
from looplet.types import Trajectory
from pytest_looplet.plugin import check_threshold

__all__ = ["MARKER_KEYS", "record_trajectory", "run_eval", "trajectory_key"]

MARKER_KEYS = ("threshold", "max_steps", "max_tokens")
"""The keyword arguments ``@pytest.mark.looplet(...)`` accepts."""

trajectory_key = pytest.StashKey[Trajectory]()
"""Where :func:`record_trajectory` keeps an item's trajectory (on ``item.stash``)."""


def record_trajectory(
    request_or_item: pytest.FixtureRequest | pytest.Item, trajectory: Trajectory
) -> None:
    """Attach ``trajectory`` to the running eval, so its steps, tokens and stop reason are reported.

    For fixtures that run the agent (``looplet_agent``): the last trajectory recorded wins,
    and one the eval returns (in an ``EvalResult``'s or a dict's values) takes precedence.

        def looplet_agent(request):
            trajectory = run_agent(...)
            record_trajectory(request, trajectory)
    """
    item = request_or_item if isinstance(request_or_item, pytest.Item) else request_or_item.node
    item.stash[trajectory_key] = trajectory


def run_eval(item: pytest.Function, default_threshold: float) -> bool | None:
    """Call the eval, normalise what it returned, record it, and fail it below its threshold.

    Returns ``None`` (not handled) for ``async def`` evals, which are left to an async plugin.
    An eval that raises is reported as pytest reports any test; one that returns an
    unsupported value fails with a message naming the eval, the value's type and the
    accepted forms, and is recorded as an error (``looplet_error``), never as a pass.
    """
    function = item.obj
    if inspect.iscoroutinefunction(function):
        return None
    threshold = _threshold(item, default_threshold)
    # pytest's own pyfunc_call passes exactly these: the function's arguments, not autouse
    # fixtures.
    args = {name: item.funcargs[name] for name in item._fixtureinfo.argnames}
    try:
        value = function(**args)
    except BaseException as exc:
        _record_trajectory_figures(item, None)
        if isinstance(exc, Exception) and not isinstance(exc, AssertionError):
            item.user_properties.append(("looplet_error", type(exc).__name__))
        raise
    result = _normalise(item, value)
    _record_trajectory_figures(item, _returned_trajectory(result))
    item.user_properties.extend(
        [
            ("looplet_score", result.score),
            ("looplet_threshold", threshold),
            ("looplet_metrics", json.dumps(result.metrics, sort_keys=True)),
        ]
    )
    if not result.passed(threshold):
        pytest.fail(_below_threshold(item, result, threshold), pytrace=False)
    return True


def _normalise(item: pytest.Function, value: object) -> EvalResult:
    try:
        return EvalResult.from_return(value)
    except (TypeError, ValueError) as exc:
        kind, problem = type(exc).__name__, str(exc)
    if inspect.iscoroutine(value):
        value.close()  # never awaited: close it rather than leak a RuntimeWarning
    _record_trajectory_figures(item, None)
    item.user_properties.append(("looplet_error", kind))
    # Raised outside the except block, so the report shows one message, not a chain.
    pytest.fail(f"{kind}: eval {item.name} {problem}", pytrace=False)


def _threshold(item: pytest.Function, default: float) -> float:
    marker = item.get_closest_marker("looplet")
    if marker is None:
        return default
    if marker.args:
        _bad_marker(item, f"takes keyword arguments only ({', '.join(MARKER_KEYS)})")
    unknown = sorted(set(marker.kwargs) - set(MARKER_KEYS))
    if unknown:
        _bad_marker(item, f"got {', '.join(unknown)}; it accepts {', '.join(MARKER_KEYS)}")
    for key in ("max_steps", "max_tokens"):
        budget = marker.kwargs.get(key)
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
        ):
            _bad_marker(item, f"{key} is a positive int or None, not {budget!r}")
    threshold = marker.kwargs.get("threshold")
    if threshold is None:
        return default
    if isinstance(threshold, str):
        _bad_marker(item, f"threshold is a number in [0, 1], not {threshold!r}")
    try:
        return check_threshold(threshold)
    except ValueError as exc:
        _bad_marker(item, str(exc))


def _bad_marker(item: pytest.Function, problem: str) -> NoReturn:
    item.user_properties.append(("looplet_error", "marker"))
    pytest.fail(f"eval {item.name}: @pytest.mark.looplet {problem}", pytrace=False)


def _returned_trajectory(result: EvalResult) -> Trajectory | None:
    found = [value for value in result.details.values() if isinstance(value, Trajectory)]
    return found[-1] if found else None


def _record_trajectory_figures(item: pytest.Item, returned: Trajectory | None) -> None:
    trajectory = returned if returned is not None else item.stash.get(trajectory_key, None)
    if trajectory is None:
        return
    reason = trajectory.stop_reason
    item.user_properties.extend(
        [
            ("looplet_steps", len(trajectory.steps)),
            ("looplet_tokens", trajectory.usage.total_tokens),
            ("looplet_stop_reason", reason.value if reason is not None else ""),
        ]
    )


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
