"""The values a run is made of: tool calls, tool results, steps, token usage, the trajectory.

These are plain data with no behaviour beyond formatting; the loop produces them, hooks and
evals read them. Provider-specific shapes never appear here (see :mod:`looplet.messages` for
the conversation and :mod:`looplet.backends` for providers).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from looplet._value_type import value_type
from looplet.errors import ErrorKind, ToolError

if TYPE_CHECKING:
    from looplet._expected_steps import StepSpec
    from looplet.messages import Message

__all__ = ["Step", "StopReason", "ToolCall", "ToolResult", "Trajectory", "Turn", "Usage"]

_ARG_VALUE_CHARS = 40
_TAIL_CHARS = 60
_ERROR_CHARS = 80


@value_type
class ToolCall:
    """One tool call requested by the model.

    Attributes:
        tool: the tool's name as the model wrote it.
        args: the decoded arguments (empty when they could not be decoded).
        reasoning: text the model wrote alongside the call, if any.
        call_id: the provider's id for the call, echoed back in the tool message.
        raw_arguments: the arguments exactly as the model sent them (a JSON string), kept so
            that a malformed call can be shown and echoed back unchanged.
        parse_error: why ``raw_arguments`` could not be decoded; such a call is never run.
    """

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    call_id: str = ""
    raw_arguments: str | None = None
    parse_error: str | None = None

    def args_summary(self) -> str:
        """The arguments as ``name='Alice', n=3``, each value cut to 40 characters."""
        if self.parse_error is not None:
            return _clip(repr(self.raw_arguments or ""), _ARG_VALUE_CHARS)
        args: object = self.args
        if type(args) is not dict and not isinstance(args, Mapping):  # the registry refuses it
            return _clip(repr(args), _ARG_VALUE_CHARS)
        parts = []
        for key, value in self.args.items():
            text = repr(value)
            if len(text) > _ARG_VALUE_CHARS:
                text = text[: _ARG_VALUE_CHARS - 3] + "..."
            parts.append(f"{key}={text}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form of the call: the run record's, trimmed (``codec.call_view``)."""
        from looplet.record.codec import call_view  # not at import: `import looplet` stays lean

        return call_view(self)


@value_type
class ToolResult:
    """The outcome of one tool call: its data, or an error.

    Attributes:
        tool: the tool's name.
        args_summary: the call's arguments, formatted for display.
        data: what the tool returned (``None`` on failure).
        error: a one-line description of the failure, or ``None`` on success.
        error_detail: the structured :class:`~looplet.errors.ToolError` behind ``error``.
        duration_ms: wall time spent in the tool.
        call_id: the id of the :class:`ToolCall` this answers.
    """

    tool: str
    args_summary: str = ""
    data: Any = None
    error: str | None = None
    error_detail: ToolError | None = None
    duration_ms: float = 0.0
    call_id: str = ""

    @property
    def ok(self) -> bool:
        """True when the tool succeeded."""
        return self.error is None

    @property
    def error_kind(self) -> ErrorKind | None:
        """The failure's kind, or ``None`` on success."""
        if self.error is None:
            return None
        return self.error_detail.kind if self.error_detail else ErrorKind.EXECUTION

    @property
    def error_message(self) -> str | None:
        """The failure's message without its kind, or ``None`` on success."""
        if self.error is None:
            return None
        return self.error_detail.message if self.error_detail else self.error

    @property
    def error_retriable(self) -> bool:
        """Whether the failure may go away if the call is retried (``False`` on success)."""
        return (
            self.error is not None
            and self.error_detail is not None
            and (self.error_detail.retriable)
        )

    @classmethod
    def success(cls, call: ToolCall, data: Any, duration_ms: float = 0.0) -> ToolResult:
        """A successful result for ``call``: its tool, argument summary and id, and ``data``.

        With :meth:`failure`, the one way the loop builds a result: the fields that come from
        the call are filled in here only. (Positional arguments, in field order: a class
        called with keywords costs about 0.25 µs more, and the loop builds one per step.)
        """
        return cls(call.tool, call.args_summary(), data, None, None, duration_ms, call.call_id)

    @classmethod
    def failure(cls, call: ToolCall, error: ToolError, *, duration_ms: float = 0.0) -> ToolResult:
        """A failed result for ``call`` carrying ``error``."""
        return cls(
            tool=call.tool,
            args_summary=call.args_summary(),
            error=f"{error.kind.value}: {error.message}",
            error_detail=error,
            duration_ms=duration_ms,
            call_id=call.call_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form of the result: the run record's, trimmed (``codec.result_view``)."""
        from looplet.record.codec import result_view

        return result_view(self)


@value_type
class Step:
    """One tool call and its result: what ``composable_loop`` yields.

    Attributes:
        number: 1-based position in the run.
        tool_call: what the model asked for.
        tool_result: what happened.
    """

    number: int
    tool_call: ToolCall
    tool_result: ToolResult

    @property
    def ok(self) -> bool:
        """True when the tool call succeeded."""
        return self.tool_result.error is None

    def pretty(self) -> str:
        """One line for humans: ``#1 ✓ greet(name='Alice') → 1 keys [12ms]``."""
        result = self.tool_result
        mark = "✓" if result.error is None else "✗"
        head = f"#{self.number} {mark} {self.tool_call.tool}({result.args_summary})"
        tail = _result_tail(result)
        line = f"{head} → {tail}" if tail else head
        if result.duration_ms > 0:
            line += f" [{result.duration_ms:.0f}ms]"
        return line

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: ``{"step", "tool_call", "tool_result"}``, the run record's form
        (:mod:`looplet.record.codec`) trimmed for reading (``codec.step_view``)."""
        from looplet.record.codec import step_view

        return step_view(self)


@value_type
class Usage:
    """Token counts reported by the provider. Add two with ``+``.

    ``input_tokens`` counts every token of the prompt, cached or not (OpenAI's
    ``prompt_tokens``; Anthropic's ``input_tokens`` + ``cache_read_input_tokens`` +
    ``cache_creation_input_tokens``), so it measures the context whatever the provider.
    ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of it that were read
    from, and written to, the provider's prompt cache (OpenAI reports reads only); the
    rest, :attr:`uncached_input_tokens`, was billed at the plain input price.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """The input tokens neither read from nor written to the cache."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        """``{"input_tokens", "output_tokens", "total_tokens"}``, plus ``cache_read_tokens``
        and ``cache_write_tokens`` when not zero (a run without caching keeps the old form)."""
        out = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cache_read_tokens:
            out["cache_read_tokens"] = self.cache_read_tokens
        if self.cache_write_tokens:
            out["cache_write_tokens"] = self.cache_write_tokens
        return out


class StopReason(enum.StrEnum):
    """Why a run ended. Exactly one is set, and it is never guessed after the fact."""

    DONE = "done"
    """The model called the done tool and it was accepted."""
    FINAL_TEXT = "final_text"
    """The model answered in plain text without calling a tool."""
    MAX_STEPS = "max_steps"
    """The step budget (``max_steps``) was used up."""
    MAX_LLM_CALLS = "max_llm_calls"
    """The hard cap on model calls was reached (free tools or repeated bad calls)."""
    CANCELLED = "cancelled"
    """The cancel token was set, or the caller closed the loop early."""
    HOOK_STOP = "hook_stop"
    """A hook asked to stop (``should_stop``, or a ``Stop`` decision)."""
    LLM_ERROR = "llm_error"
    """The model provider failed; the error is on the trajectory and was raised."""
    HOOK_ERROR = "hook_error"
    """A hook raised; the :class:`~looplet.errors.HookError` was raised."""


_NO_USAGE = Usage()


@value_type
class Turn:
    """One model call of a run: how many tool calls it made, its tokens and its time.

    :attr:`Trajectory.turns` holds one for each reply the loop recorded (a failed call's
    too), in order. A turn's calls are the steps ``step`` to ``step + calls - 1``
    (:attr:`steps`); only the last turn of a run can have none (a final text, a failed call).

    Attributes:
        step: the number of the first step its calls became (for a turn without calls, the
            number the next step would have had).
        calls: how many tool calls the reply held.
        usage: the tokens the provider reported for the call. The turns' usage adds up to
            :attr:`Trajectory.usage`, less the tokens of a context compaction's own model
            calls (a summary), which count in the run's usage only.
        duration_ms: wall time from sending the request to recording its reply (the
            backend's retries, and with a context budget a compaction made for it, included).
    """

    step: int
    calls: int
    usage: Usage = _NO_USAGE
    duration_ms: float = 0.0

    @property
    def steps(self) -> range:
        """The numbers of the steps its calls became."""
        return range(self.step, self.step + self.calls)

    def to_dict(self) -> dict[str, Any]:
        """``{"step", "calls", "usage", "duration_ms"}``, the duration to the µs."""
        from looplet.record.codec import encode_turn

        out = encode_turn(self)
        out["duration_ms"] = round(self.duration_ms, 3)
        return out


@dataclass(slots=True, eq=False)
class Trajectory:
    """The record of one run: what ``composable_loop`` returns and what evals assert on.

    Attributes:
        task: the task as given to the loop.
        steps: every step, in order.
        stop_reason: why the run ended (``None`` while it is still running).
        stop_detail: a human-readable detail (the hook's stop reason, the final text...).
        llm_calls: how many model requests were made.
        usage: tokens summed over all model calls.
        messages: the conversation as the model was last sent it, in order (after a context
            compaction, the compacted one; the steps are never compacted).
        elapsed_ms: wall time of the run.
        final_text: the model's last plain-text reply, if any.
        error: the exception that ended the run, if any.
        permission_decisions: every permission decision taken during the run, in order
            (:class:`~looplet.permissions.PermissionOutcome`, added by ``PermissionHook``).
        compactions: every context compaction of the run, in order
            (:class:`~looplet.compact.CompactionRecord`: reason, sizes before and after).
        children: the runs of sub-agents started during this run
            (:func:`looplet.subagent.run_sub_loop`), in the order they started. Their steps
            and tokens are theirs, not this run's; :attr:`total_usage` adds them in.
        parent_step: for a sub-agent's run, the number of the parent's step whose tool
            started it (``None`` for a top-level run). ``children_of(n)`` finds them.
        turns: every model call the loop recorded a reply of, in order (:class:`Turn`: its
            tool calls' steps, tokens and time); :meth:`turn_of` finds a step's. A run
            resumed from a checkpoint has them all, each once (the checkpoint keeps them;
            one written before turns were kept has none, so only those made since).
    """

    task: Any = None
    steps: list[Step] = field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    llm_calls: int = 0
    usage: Usage = _NO_USAGE  # shared: a Usage is a value, never changed in place
    messages: list[Message] = field(default_factory=list)
    elapsed_ms: float = 0.0
    final_text: str = ""
    error: BaseException | None = None
    permission_decisions: list[Any] = field(default_factory=list)
    compactions: list[Any] = field(default_factory=list)
    children: list[Trajectory] = field(default_factory=list)
    parent_step: int | None = None
    turns: list[Turn] = field(default_factory=list)

    @property
    def tools(self) -> list[str]:
        """The names of the tools called, in order."""
        return [s.tool_call.tool for s in self.steps]

    def turn_of(self, step: int, /) -> Turn | None:
        """The model turn whose reply held the call of step ``step`` (its tokens and the
        model's time; the tool's time is on the step's result), or ``None`` if not recorded."""
        for turn in reversed(self.turns):
            if turn.step <= step:
                return turn if step < turn.step + turn.calls else None
        return None

    def children_of(self, step: int, /) -> list[Trajectory]:
        """The sub-agent runs started by the tool of step ``step``, in order."""
        return [c for c in self.children if c.parent_step == step]

    @property
    def total_usage(self) -> Usage:
        """Tokens of this run and of every sub-agent run under it, at any depth."""
        total = self.usage
        for child in self.children:
            total = total + child.total_usage
        return total

    @property
    def total_llm_calls(self) -> int:
        """Model calls of this run and of every sub-agent run under it, at any depth."""
        return self.llm_calls + sum(c.total_llm_calls for c in self.children)

    # The queries below live in looplet.assertions, imported when first used: that module
    # imports this one, and `import looplet` should not pay for the matchers.

    def called(self, tool: str, /, **args: Any) -> bool:
        """Whether some step called ``tool`` with arguments matching every matcher given.

        A call counts whether it succeeded or failed (see :meth:`failed`, :meth:`denied`, or
        ``traj == [...]``, which expects success). Unnamed arguments are not checked; a value
        may be a matcher (``ANY``, ``Regex``, a compiled regex, a predicate, a nested dict;
        see :mod:`looplet.assertions`).
        ``traj.called("greet", name="Alice")``, ``traj.called("greet", name=ANY)``.
        """
        from looplet.assertions import _called

        return _called(self, tool, args)

    def not_called(self, tool: str, /) -> bool:
        """Whether no step called ``tool``: ``assert traj.not_called("delete_file")``."""
        from looplet.assertions import _calls

        return not _calls(self, tool)

    def called_before(self, first: str, then: str, /) -> bool:
        """Whether ``first`` was first called before ``then`` was; ``False`` if either never was.

        ``assert traj.called_before("get_order", "refund_order")``
        """
        from looplet.assertions import _called_before

        return _called_before(self, first, then)

    def count(self, tool: str, /) -> int:
        """How many steps called ``tool``: ``assert traj.count("search") <= 3``."""
        from looplet.assertions import _calls

        return len(_calls(self, tool))

    def calls(self, tool: str, /) -> list[Step]:
        """The steps that called ``tool``, in order: ``traj.calls("greet")[0].tool_call.args``."""
        from looplet.assertions import _calls

        return _calls(self, tool)

    def denied(self) -> list[Step]:
        """The steps refused by a permission check or hook (error kind ``permission_denied``)."""
        from looplet.assertions import _denied

        return _denied(self)

    def failed(self) -> list[Step]:
        """The steps whose tool call failed, for any reason (unknown tool, bad arguments, the
        tool raised or timed out, a permission denied)."""
        from looplet.assertions import _failed

        return _failed(self)

    def __eq__(self, other: object) -> bool:
        """Equal to another trajectory with the same record; or to a list of expected steps.

        ``traj == ["greet", ("done", {"answer": ANY})]`` is ``traj.matches(expected,
        order="strict", args="subset")``: the same steps in the same order, each call's
        arguments holding the ones named, and each call succeeded unless its expected step
        is ``failed(...)`` or ``any_outcome(...)`` (:mod:`looplet.assertions`). Under pytest a
        failing ``assert`` of it shows the step-by-step diff.
        """
        if isinstance(other, Trajectory):
            return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))
        if isinstance(other, list | tuple):
            return self.matches(list(other), order="strict", args="subset")
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def matches(self, expected: Sequence[StepSpec], /, **options: Any) -> bool:
        """Whether the steps match ``expected``; the ``bool`` form of ``assert_trajectory``.

        Takes the same options (``order``, ``args``, ``stop_reason``, ``max_steps``,
        ``max_tokens``): ``assert traj.matches(["greet", "done"], args="ignore")``. For the
        step-by-step diff on failure, call :func:`looplet.assertions.assert_trajectory`.
        """
        from looplet.assertions import trajectory_matches

        return trajectory_matches(self, expected, **options)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form of the whole record."""
        return {
            "task": _jsonable(self.task),
            "steps": [s.to_dict() for s in self.steps],
            "stop_reason": self.stop_reason.value if self.stop_reason else None,
            "stop_detail": self.stop_detail,
            "llm_calls": self.llm_calls,
            "usage": self.usage.to_dict(),
            "messages": [m.to_dict() for m in self.messages],
            "elapsed_ms": round(self.elapsed_ms, 3),
            "final_text": self.final_text,
            "error": f"{type(self.error).__name__}: {self.error}" if self.error else None,
            "permission_decisions": [d.to_dict() for d in self.permission_decisions],
            "compactions": [c.to_dict() for c in self.compactions],
            "parent_step": self.parent_step,
            "children": [c.to_dict() for c in self.children],
            "turns": [t.to_dict() for t in self.turns],
        }

    def pretty(self) -> str:
        """The steps, one per line, then the stop reason and totals.

        A sub-agent's steps follow the step that started it, indented under ``↳``.
        """
        lines = []
        for step in self.steps:
            lines.append(step.pretty())
            for child in self.children_of(step.number) if self.children else ():
                lines.extend("    ↳ " + line for line in child.pretty().splitlines())
        reason = self.stop_reason.value if self.stop_reason else "running"
        lines.append(
            f"stopped: {reason} · {len(self.steps)} steps · {self.llm_calls} model calls · "
            f"{self.usage.total_tokens} tokens · {self.elapsed_ms:.0f}ms"
        )
        return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _result_tail(result: ToolResult) -> str:
    if result.error is not None:
        return "ERROR: " + result.error[:_ERROR_CHARS]
    data = result.data
    if data is None:
        return ""
    if isinstance(data, list | tuple):
        return f"{len(data)} items"
    if isinstance(data, Mapping):
        return f"{len(data)} keys"
    text = str(data)
    return text if len(text) <= _TAIL_CHARS else text[: _TAIL_CHARS - 3] + "..."


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can encode it, else a JSON-able stand-in (``str`` at the leaves).

    A container met again inside itself becomes ``"<circular reference>"``, and nesting
    deeper than 100 levels ``"<nested too deep>"``, so no value can crash a run here.
    """
    import json  # not at module level: json (and re) would cost every `import looplet`

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError, RecursionError):
        return _stand_in(value, set())


_MAX_DEPTH = 100


def _stand_in(value: Any, open_containers: set[int]) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if not isinstance(value, Mapping | list | tuple | set | frozenset):
        return str(value)
    if id(value) in open_containers:
        return "<circular reference>"
    if len(open_containers) >= _MAX_DEPTH:
        return "<nested too deep>"
    open_containers.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {str(k): _stand_in(v, open_containers) for k, v in value.items()}
        return [_stand_in(v, open_containers) for v in value]
    finally:
        open_containers.discard(id(value))


# The original looplet 0.1.7 kept these in looplet.types; they live in their own modules now
# (which import this one, hence loaded on first use). ErrorKind and ToolError are imported above.
_ORIGINAL_HOMES = {
    "AgentState": "looplet.state",
    "DefaultState": "looplet.state",
    "LLMBackend": "looplet.backends.base",
    "CancelToken": "looplet.cancel",
    "ToolContext": "looplet.toolspec",
}


def __getattr__(name: str) -> Any:
    home = _ORIGINAL_HOMES.get(name)
    if home is None:
        from looplet._moved import missing

        missing(__name__, name)
    import importlib

    return getattr(importlib.import_module(home), name)
