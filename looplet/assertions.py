"""Assertions on a :class:`~looplet.types.Trajectory`: which tools ran, with what, in what order.

Plain Python, usable in any test runner or script (no pytest import):
:func:`assert_trajectory` raises :class:`TrajectoryMismatch`, an ``AssertionError`` whose
message is a headline, the reasons, a step-by-step table of expected against actual steps and
the divergent step's result; :func:`trajectory_matches` is the ``bool`` form. Argument values
are compared through matchers (:data:`ANY`, :class:`Regex`, :class:`Predicate`, a compiled
regex, a callable, nested dicts and lists). An expected step means the call succeeded unless
it says otherwise: :func:`failed` expects a failed call (optionally of one
:class:`~looplet.errors.ErrorKind`), :func:`any_outcome` takes either (both built in
:mod:`looplet._expected_steps`). The query methods on ``Trajectory`` (``called``, ``count``,
``denied``...) delegate here. Aligning steps and drawing the table live in
:mod:`looplet._trajectory_diff`; the pytest hook that shows the message lives in the plugin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, final

from looplet import _trajectory_diff as diff
from looplet._expected_steps import ExpectedStep, StepSpec, any_outcome, failed, normalise
from looplet.errors import ConfigurationError, ErrorKind, LoopletError
from looplet.types import Step, StopReason, Trajectory

__all__ = [
    "ANY",
    "ExpectedStep",
    "Predicate",
    "Regex",
    "TrajectoryMismatch",
    "any_outcome",
    "assert_trajectory",
    "explain_mismatch",
    "failed",
    "trajectory_matches",
]

Order: TypeAlias = Literal["strict", "unordered", "subset", "superset"]
ArgsMode: TypeAlias = Literal["exact", "ignore", "subset"]

_ORDERS: Final = ("strict", "unordered", "subset", "superset")
_ARGS_MODES: Final = ("exact", "ignore", "subset")


@final
class _AnyType:
    """Matches any value (the key must still be present): ``traj.called("greet", name=ANY)``."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        return "ANY"


ANY: Final = _AnyType()


@final
class Regex:
    """Matches a string the pattern is found in, anywhere (``re.search``): say ``^...$`` for all.

    A bare ``re.compile(...)`` works the same way; ``Regex`` also takes a string and shows as
    ``Regex('^Al')`` in a diff. A value that is not a ``str`` never matches.

    Example::

        traj.called("greet", name=Regex(r"^Al"))
        assert_trajectory(traj, [("search", {"q": Regex("refund", re.I)}), "done"])
    """

    __slots__ = ("pattern",)

    def __init__(self, pattern: str | re.Pattern[str], flags: int = 0) -> None:
        if isinstance(pattern, re.Pattern):
            compiled = re.compile(pattern.pattern, pattern.flags | flags) if flags else pattern
        else:
            compiled = re.compile(pattern, flags)
        self.pattern: re.Pattern[str] = compiled

    def matches(self, value: object) -> bool:
        """Whether ``value`` is a ``str`` that the pattern is found in."""
        return isinstance(value, str) and self.pattern.search(value) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        flags = self.pattern.flags & ~re.UNICODE
        return f"Regex({self.pattern.pattern!r}" + (f", flags={flags})" if flags else ")")


@final
class Predicate:
    """A test on an argument value with a name for diffs; a plain callable also works.

    The value matches when ``fn(value)`` is truthy; if ``fn`` raises, it does not match and
    the diff says what was raised. The description is what the diff shows, as ``<positive>``.

    Example::

        traj.called("search", limit=Predicate(lambda n: n > 0, "positive"))
        traj.called("search", limit=lambda n: n > 0)   # shown as <lambda>
    """

    __slots__ = ("description", "fn")

    def __init__(self, fn: Callable[[Any], object], description: str = "") -> None:
        if not callable(fn):
            raise ConfigurationError(
                f"Predicate() takes a callable, got {type(fn).__name__} {fn!r}; "
                f"to compare with a value, pass the value itself"
            )
        self.fn = fn
        self.description = description or diff.callable_name(fn)

    def check(self, value: object) -> tuple[bool, str]:
        """``(matched, note)``; the note names an exception ``fn`` raised, else is empty."""
        try:
            return bool(self.fn(value)), ""
        except Exception as exc:
            return False, f"{self.description} raised {type(exc).__name__}: {exc}"

    def __repr__(self) -> str:
        return f"<{self.description}>"


class TrajectoryMismatch(LoopletError, AssertionError):
    """A trajectory is not what :func:`assert_trajectory` expected.

    ``str(error)`` is the whole rendered message (``.lines`` joined); the same facts are on
    attributes for tools that want them.

    Attributes:
        expected: the expected steps, normalised to :class:`ExpectedStep`.
        actual: the :class:`~looplet.types.Trajectory` checked (also on ``.trajectory``).
        first_divergence: the 0-based index into ``actual.steps`` of the first step that
            differs (``len(actual.steps)`` when steps are missing at the end), or ``None``
            when the steps match and only the stop reason or a budget failed.
        reasons: one line per failed check (steps, stop reason, step and token budgets).
        order: the ``order`` mode used.
        args_mode: the ``args`` mode used.
        lines: the message, line by line; the first is the headline.
    """

    def __init__(
        self,
        lines: Sequence[str],
        *,
        expected: Sequence[ExpectedStep],
        actual: Trajectory,
        first_divergence: int | None,
        reasons: Sequence[str],
        order: str,
        args_mode: str,
    ) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)
        self.expected = list(expected)
        self.actual = actual
        self.trajectory = actual
        self.first_divergence = first_divergence
        self.reasons = list(reasons)
        self.order = order
        self.args_mode = args_mode

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_mismatch, (type(self), self.args, self.__dict__))


def _rebuild_mismatch(
    cls: type[TrajectoryMismatch], args: tuple[Any, ...], state: dict[str, Any]
) -> TrajectoryMismatch:
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


def assert_trajectory(
    traj: Trajectory,
    expected: Sequence[StepSpec],
    *,
    order: Order = "strict",
    args: ArgsMode = "exact",
    stop_reason: StopReason | str | None = None,
    max_steps: int | None = None,
    max_tokens: int | None = None,
) -> None:
    """Check the steps of ``traj`` against ``expected``; raise :class:`TrajectoryMismatch` if not.

    Args:
        traj: the run's trajectory (``loop.trajectory``).
        expected: the steps, each ``"greet"``, ``("greet", {"name": "Alice"})``,
            ``{"tool": "greet", "args": {...}, "ok": True}`` or an :class:`ExpectedStep`.
            Each must have succeeded (its ``tool_result.error`` is ``None``) unless it is
            :func:`failed` (it must have failed, optionally with a given kind) or
            :func:`any_outcome` (either). Argument values may be matchers: :data:`ANY`,
            :class:`Regex` or ``re.compile(...)`` (searched), :class:`Predicate` or a
            callable, a type (``isinstance``), a nested dict or list (matched item by item,
            dict keys exactly); anything else is compared with ``==``.
        order: ``"strict"``: the same steps in the same order; ``"unordered"``: the same
            steps in any order (each actual step matches a different expected one);
            ``"subset"``: the expected steps appear in this order, other steps may come
            between; ``"superset"``: every actual step is one of the expected, in order
            (expected steps may be skipped).
        args: ``"exact"`` (the default here; ``traj == [...]`` uses ``"subset"``): the
            argument dict has exactly the expected keys, each matching; ``"subset"``: only
            the expected keys are checked; ``"ignore"``: names only.
        stop_reason: the :class:`~looplet.types.StopReason` the run must have ended with.
        max_steps: the most steps the run may have taken.
        max_tokens: the most tokens (input plus output) the run may have used.

    Raises:
        TrajectoryMismatch: when any check fails; the message is a step-by-step diff.
        ConfigurationError: for an unknown mode or a malformed expected step.

    Example::

        assert_trajectory(traj, [("greet", {"name": "Alice"}), "done"], stop_reason="done")
        assert_trajectory(traj, ["done"], order="subset", max_tokens=2_000)
    """
    mismatch = _check(traj, expected, order, args, stop_reason, max_steps, max_tokens)
    if mismatch is not None:
        raise mismatch


def trajectory_matches(
    traj: Trajectory,
    expected: Sequence[StepSpec],
    *,
    order: Order = "strict",
    args: ArgsMode = "exact",
    stop_reason: StopReason | str | None = None,
    max_steps: int | None = None,
    max_tokens: int | None = None,
) -> bool:
    """Whether :func:`assert_trajectory` would pass with the same arguments.

    Example::

        assert trajectory_matches(traj, ["greet", "done"], args="ignore")
    """
    return _check(traj, expected, order, args, stop_reason, max_steps, max_tokens) is None


def explain_mismatch(mismatch: TrajectoryMismatch) -> list[str]:
    """The lines for pytest's ``pytest_assertrepr_compare``: the headline, then the diff.

    Example::

        try:
            assert_trajectory(traj, ["greet", "done"])
        except TrajectoryMismatch as exc:
            print("\\n".join(explain_mismatch(exc)))
    """
    return list(mismatch.lines)


# -- the checks --------------------------------------------------------------------------------


def _check(
    traj: Trajectory,
    expected: Sequence[StepSpec],
    order: str,
    args_mode: str,
    stop_reason: StopReason | str | None,
    max_steps: int | None,
    max_tokens: int | None,
) -> TrajectoryMismatch | None:
    if not isinstance(traj, Trajectory):
        raise ConfigurationError(
            f"expected a Trajectory, got {type(traj).__name__}; pass the run's trajectory "
            f"(loop.trajectory after iterating composable_loop)"
        )
    _check_choice("order", order, _ORDERS)
    _check_choice("args", args_mode, _ARGS_MODES)
    wanted = normalise(expected)
    want_stop = _stop_reason(stop_reason)
    for name, limit in (("max_steps", max_steps), ("max_tokens", max_tokens)):
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ConfigurationError(f"{name} must be a non-negative int, got {limit!r}")
    steps = traj.steps

    def problem(i: int, j: int) -> diff.StepProblem | None:
        return _step_problem(wanted[i], steps[j], args_mode)

    def same_tool(i: int, j: int) -> bool:
        return wanted[i].tool == steps[j].tool_call.tool

    rows = diff.align(order, len(wanted), len(steps), lambda i, j: problem(i, j) is None, same_tool)
    report = diff.Report(rows, wanted, traj, problem, order, args_mode)
    reasons = report.reasons(want_stop, max_steps, max_tokens)
    if not reasons:
        return None
    return TrajectoryMismatch(
        report.lines(reasons),
        expected=wanted,
        actual=traj,
        first_divergence=report.first_divergence,
        reasons=reasons,
        order=order,
        args_mode=args_mode,
    )


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value in allowed:
        return
    import difflib  # only on this error path

    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(
        f"{name}={value!r} is not a mode; use one of {', '.join(map(repr, allowed))}.{hint}"
    )


def _stop_reason(value: StopReason | str | None) -> StopReason | None:
    if value is None or isinstance(value, StopReason):
        return value
    try:
        return StopReason(value)
    except ValueError:
        names = ", ".join(repr(r.value) for r in StopReason)
        raise ConfigurationError(
            f"stop_reason={value!r} is not a StopReason; use one of {names}"
        ) from None


# -- matching one step -------------------------------------------------------------------------


def _step_problem(want: ExpectedStep, step: Step, args_mode: str) -> diff.StepProblem | None:
    if want.tool != step.tool_call.tool:
        return diff.StepProblem(tool=True)
    arg_diffs: list[diff.ArgDiff] = []
    if want.args is not None and args_mode != "ignore":
        _diff_mapping(want.args, step.tool_call.args, "", args_mode == "exact", arg_diffs)
    ok_differs = want.ok is not None and want.ok != step.ok
    # A wanted kind is checked only on a failed step; a success already differs on ``ok``.
    kind_differs = (
        want.kind is not None and not step.ok and step.tool_result.error_kind is not want.kind
    )
    if not arg_diffs and not ok_differs and not kind_differs:
        return None
    return diff.StepProblem(ok=ok_differs, kind=kind_differs, args=tuple(arg_diffs))


def _diff_mapping(
    want: Mapping[Any, Any], got: Mapping[Any, Any], path: str, exact: bool, out: list[diff.ArgDiff]
) -> None:
    for key, matcher in want.items():
        if key in got:
            _diff_value(matcher, got[key], _key_path(path, key), out)
        else:
            out.append(diff.ArgDiff(_key_path(path, key), matcher, diff.MISSING))
    if exact:
        out += [
            diff.ArgDiff(_key_path(path, k), diff.MISSING, v)
            for k, v in got.items()
            if k not in want
        ]


def _key_path(path: str, key: object) -> str:
    if not path:
        return str(key)
    return f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"


def _diff_value(want: object, got: object, path: str, out: list[diff.ArgDiff]) -> None:
    """Append to ``out`` why ``got`` does not match ``want`` (nothing when it matches)."""
    if want is ANY:
        return
    if isinstance(want, Regex | re.Pattern):
        if not (want if isinstance(want, Regex) else Regex(want)).matches(got):
            out.append(diff.ArgDiff(path, want, got))
    elif isinstance(want, type):
        if not isinstance(got, want):
            out.append(diff.ArgDiff(path, want, got, f"a {type(got).__name__}"))
    elif isinstance(want, Predicate) or callable(want):
        matched, note = (want if isinstance(want, Predicate) else Predicate(want)).check(got)
        if not matched:
            out.append(diff.ArgDiff(path, want, got, note))
    elif isinstance(want, Mapping):
        if isinstance(got, Mapping):
            _diff_mapping(want, got, path, True, out)
        else:
            out.append(diff.ArgDiff(path, want, got, f"a {type(got).__name__}, not a dict"))
    elif isinstance(want, list | tuple):
        if isinstance(got, list | tuple) and len(got) == len(want):
            for index, (w, g) in enumerate(zip(want, got, strict=True)):
                _diff_value(w, g, f"{path}[{index}]", out)
        else:
            size = f"{len(got)} items" if isinstance(got, list | tuple) else type(got).__name__
            out.append(diff.ArgDiff(path, want, got, f"{len(want)} items expected, got {size}"))
    elif not _equal(want, got):
        out.append(diff.ArgDiff(path, want, got))


def _equal(want: object, got: object) -> bool:
    try:
        return bool(want == got)
    except Exception:  # an __eq__ that raises (or returns an array) is not a match
        return False


# -- the Trajectory query methods --------------------------------------------------------------


def _check_tool(tool: object) -> str:
    if not isinstance(tool, str):
        raise ConfigurationError(
            f"expected a tool name, got {type(tool).__name__} {tool!r}; pass the name, "
            f"e.g. traj.called('greet')"
        )
    return tool


def _calls(traj: Trajectory, tool: str) -> list[Step]:
    _check_tool(tool)
    return [s for s in traj.steps if s.tool_call.tool == tool]


def _called(traj: Trajectory, tool: str, args: Mapping[str, Any]) -> bool:
    for step in _calls(traj, tool):
        out: list[diff.ArgDiff] = []
        _diff_mapping(args, step.tool_call.args, "", False, out)
        if not out:
            return True
    return False


def _called_before(traj: Trajectory, first: str, then: str) -> bool:
    _check_tool(first)
    _check_tool(then)
    tools = traj.tools
    if first not in tools or then not in tools:
        return False
    return tools.index(first) < tools.index(then)


def _denied(traj: Trajectory) -> list[Step]:
    return [s for s in traj.steps if s.tool_result.error_kind is ErrorKind.PERMISSION_DENIED]


def _failed(traj: Trajectory) -> list[Step]:
    return [s for s in traj.steps if not s.ok]
