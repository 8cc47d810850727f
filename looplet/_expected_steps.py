"""What an expected step is: :class:`ExpectedStep`, :func:`failed`, :func:`any_outcome`.

The forms a test writes (``"greet"``, ``("greet", {...})``, a dict, ``failed("greet")``) are
all turned into :class:`ExpectedStep` here; matching them against a run lives in
:mod:`looplet.assertions`, which is the public face and re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, final

from looplet import _trajectory_diff as diff
from looplet.errors import ConfigurationError, ErrorKind

__all__ = ["ExpectedStep", "StepSpec", "any_outcome", "failed", "normalise"]

_ARG_IN_LINE_CHARS = 24


@final
@dataclass(frozen=True, slots=True)
class ExpectedStep:
    """One step :func:`assert_trajectory` expects: a tool, optionally its arguments and outcome.

    ``"greet"`` and ``("greet", {...})`` become steps that must succeed; :func:`failed` and
    :func:`any_outcome` build the others.

    Attributes:
        tool: the tool's name.
        args: matchers for the arguments, by name; ``None`` means the arguments are not
            checked for this step (whatever the ``args`` mode), ``{}`` means "no arguments"
            under ``args="exact"``.
        ok: ``True`` (the default) if the call must succeed, ``False`` if it must fail
            (the step's ``tool_result.error`` is set: unknown tool, bad arguments, the tool
            raised, permission denied...), ``None`` for either.
        kind: with ``ok=False``, the :class:`~looplet.errors.ErrorKind` the failure must
            have (a string is converted); ``None`` for any kind.

    Example::

        assert_trajectory(traj, [ExpectedStep("greet", {"name": "Bob"}, ok=False), "done"])
    """

    tool: str
    args: Mapping[str, Any] | None = None
    ok: bool | None = True
    kind: ErrorKind | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tool, str) or not self.tool:
            raise ConfigurationError(f"ExpectedStep.tool must be a tool name, got {self.tool!r}")
        if self.args is not None and not isinstance(self.args, Mapping):
            raise ConfigurationError(
                f"ExpectedStep({self.tool!r}).args must be a dict of argument matchers or "
                f"None, got {type(self.args).__name__} {self.args!r}"
            )
        if self.ok not in (None, True, False):
            raise ConfigurationError(
                f"ExpectedStep({self.tool!r}).ok must be True, False or None, got {self.ok!r}"
            )
        if self.kind is not None:
            object.__setattr__(self, "kind", _error_kind(self.kind))
            if self.ok is not False:
                raise ConfigurationError(
                    f"ExpectedStep({self.tool!r}, kind={self.kind.value!r}): kind= needs "
                    f"ok=False; write failed({self.tool!r}, kind={self.kind.value!r})"
                )

    def describe(self, args_mode: str = "exact") -> str:
        """A short form for diffs: ``greet(name='Alice')``, ``✗ greet(...)``, ``✓/✗ greet(...)``.

        A step that must fail is marked ``✗`` (and its kind follows in brackets), one that may
        do either ``✓/✗``; one that must succeed, the default, is not marked.
        """
        mark = {True: "", False: "✗ ", None: "✓/✗ "}[self.ok]
        kind = f" [{self.kind.value}]" if self.kind is not None else ""
        if self.args is None or args_mode == "ignore":
            inner = "..."
        else:
            parts = [f"{k}={diff.show(v, _ARG_IN_LINE_CHARS)}" for k, v in self.args.items()]
            if args_mode == "subset":
                parts.append("...")
            inner = ", ".join(parts)
        return f"{mark}{self.tool}({inner}){kind}"


def failed(
    tool: str, args: Mapping[str, Any] | None = None, *, kind: ErrorKind | str | None = None
) -> ExpectedStep:
    """An expected step whose call failed: its ``tool_result.error`` is set.

    A plain expected step (``"book_hotel"``, ``("book_hotel", {...})``) only matches a call
    that succeeded; say ``failed(...)`` where the run is meant to hit a failure: an unknown
    tool, arguments that did not validate, a tool that raised, a call a permission check
    refused. A ``failed(...)`` step never matches a call that succeeded.

    Args:
        tool: the tool's name.
        args: matchers for the call's arguments, as for any expected step; ``None`` does not
            check them.
        kind: the :class:`~looplet.errors.ErrorKind` the failure must have, or its value
            (``"permission_denied"``, ``"validation"``, ``"unknown_tool"``, ``"execution"``...);
            ``None`` for any.

    Raises:
        ConfigurationError: ``tool`` is not a name, or ``kind`` is not an ``ErrorKind``.

    Example::

        assert traj == [failed("book_hotel", {"city": "Paris"}, kind="permission_denied"), "done"]
    """
    return ExpectedStep(_tool_name("failed", tool), args, ok=False, kind=_error_kind(kind))


def any_outcome(tool: str, args: Mapping[str, Any] | None = None) -> ExpectedStep:
    """An expected step whose call may have succeeded or failed: only tool and arguments count.

    Example::

        assert traj == [any_outcome("search", {"q": ANY}), "done"]
    """
    return ExpectedStep(_tool_name("any_outcome", tool), args, ok=None)


def _tool_name(helper: str, tool: object) -> str:
    if not isinstance(tool, str) or not tool:
        raise ConfigurationError(
            f"{helper}() takes the tool's name, got {type(tool).__name__} {tool!r}; "
            f"e.g. {helper}('book_hotel', {{'city': 'Paris'}})"
        )
    return tool


def _error_kind(kind: ErrorKind | str | None) -> ErrorKind | None:
    if kind is None or isinstance(kind, ErrorKind):
        return kind
    try:
        return ErrorKind(kind)
    except ValueError:
        values = [k.value for k in ErrorKind]
        close = [v for v in values if isinstance(kind, str) and kind and kind in v]
        hint = f" Did you mean {close[0]!r}?" if len(close) == 1 else ""
        raise ConfigurationError(
            f"kind={kind!r} is not an ErrorKind; use one of {', '.join(map(repr, values))}.{hint}"
        ) from None


#: One expected step: ``"greet"``, ``("greet", {"name": "Alice"})``,
#: ``{"tool": "greet", "args": {...}, "ok": True}`` or an :class:`ExpectedStep`.
StepSpec: TypeAlias = str | tuple[str, Mapping[str, Any]] | Mapping[str, Any] | ExpectedStep


def normalise(expected: Sequence[StepSpec]) -> list[ExpectedStep]:
    """``expected`` as :class:`ExpectedStep` objects; a malformed step is a configuration error."""
    if isinstance(expected, str | Mapping) or not isinstance(expected, Sequence):
        raise ConfigurationError(
            f"expected must be a list of steps, got {type(expected).__name__} {expected!r}; "
            f"wrap a single step in a list: [{expected!r}]"
        )
    return [_one_step(index, item) for index, item in enumerate(expected)]


def _one_step(index: int, item: object) -> ExpectedStep:
    if isinstance(item, ExpectedStep):
        return item
    if isinstance(item, str):
        return ExpectedStep(item)
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return ExpectedStep(item[0], item[1])
    if isinstance(item, Mapping) and "tool" in item and set(item) <= {"tool", "args", "ok", "kind"}:
        return ExpectedStep(item["tool"], item.get("args"), item.get("ok", True), item.get("kind"))
    raise ConfigurationError(
        f"expected step {index + 1} is {item!r}; write it as 'greet', ('greet', {{'name': "
        f"'Alice'}}), {{'tool': 'greet', 'args': {{...}}, 'ok': True}}, failed('greet') "
        f"or ExpectedStep(...)"
    )
