"""The one JSON form of a run's record, and its checked decoding.

Each value a run records is encoded field by field so that it decodes to an equal value:
calls, results (with their :class:`~looplet.errors.ToolError`), steps, messages, usage,
permission decisions (with their rules), compactions, stop reasons and whole trajectories (a
sub-agent's run is one, in ``children``). Checkpoints, recorded runs (``trajectory.json``),
saved runs read for grading, ``to_dict()`` (:func:`step_view`: trimmed) and the reports'
trajectory all use it. The keys are the fields' names; optional ones (a call's
``reasoning``, ``raw_arguments``, ``parse_error``; a message's ``tool_calls``,
``tool_call_id``, ``name``, ``is_error``; a trajectory's model ``turns``) are left out when
empty; usage adds ``total_tokens`` (not read back); a rule is ``{decision, tool, reason,
had_matcher}``.

A file holding a trajectory on its own starts with ``"format": "looplet-record/1"``
(:func:`trajectory_document`); one without a format is read as looplet 0.2's
``Trajectory.to_dict()`` (the same keys, a rule as its ``describe()`` text), and a newer one
is refused with the fix (:func:`check_format`).

Tool data (args, results, a task) is kept as JSON when it is JSON (``dict`` with ``str``
keys, ``list``, ``str``, ``int``, finite ``float``, ``bool``, ``None``; a ``tuple`` becomes a
list). Anything else, and data nested deeper than 100 levels, is kept as
``{"__looplet_repr__": repr(value), "type": "module.Class"}`` and decodes to that dict. Two
more things cannot come back: a rule's argument matcher is code (a decoded rule holds a
stand-in that raises if used), and the exception that ended a run returns as a
:class:`~looplet.errors.LoopletError` with its text. Decoding checks every field and names a
bad one by its place (``steps[2].tool_call.args``) in a :class:`DecodeError`; the reader
that opened the file adds its name and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from looplet.errors import ErrorKind, LoopletError, ToolError
from looplet.messages import Message
from looplet.record.fields import (
    DecodeError,
    decode_list,
    decode_str,
    field_bool,
    field_int,
    field_number,
    field_str,
    json_object,
    optional_str,
)
from looplet.record.fields import at as _at
from looplet.record.fields import kind_of as _kind
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Turn, Usage

if TYPE_CHECKING:
    from looplet.compact import CompactionRecord
    from looplet.permissions import PermissionDecision, PermissionOutcome, PermissionRule

__all__ = [
    "FORMAT",
    "REPR_MARKER",
    "DecodeError",
    "call_view",
    "check_format",
    "decode_call",
    "decode_compaction",
    "decode_list",
    "decode_message",
    "decode_permission",
    "decode_result",
    "decode_step",
    "decode_stop_reason",
    "decode_str",
    "decode_trajectory",
    "decode_turn",
    "decode_usage",
    "encode_call",
    "encode_compaction",
    "encode_data",
    "encode_message",
    "encode_permission",
    "encode_result",
    "encode_step",
    "encode_trajectory",
    "encode_turn",
    "encode_usage",
    "field_bool",
    "field_int",
    "field_number",
    "field_str",
    "has_repr_marker",
    "json_object",
    "optional_str",
    "result_view",
    "step_view",
    "trajectory_document",
]

#: The format of a document holding one trajectory (``trajectory.json``).
FORMAT: Final = "looplet-record/1"
#: The key that marks data stored by its ``repr`` because JSON cannot hold it.
REPR_MARKER: Final = "__looplet_repr__"

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_MAX_DEPTH = 100


# -- data ------------------------------------------------------------------------------------


def encode_data(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON that decodes to an equal value, with non-JSON leaves as repr markers."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else _repr_marker(value)
    if depth >= _MAX_DEPTH:  # deeper than JSON readers go, or a container holding itself
        return _repr_marker(value)
    if kind is list or kind is tuple:
        return [encode_data(v, depth + 1) for v in value]
    if kind is dict and all(type(k) is str for k in value):
        return {k: encode_data(v, depth + 1) for k, v in value.items()}
    return _repr_marker(value)


def has_repr_marker(value: Any) -> bool:
    """Whether encoded data holds a repr marker anywhere (it cannot be compared exactly)."""
    if isinstance(value, dict):
        return REPR_MARKER in value or any(has_repr_marker(v) for v in value.values())
    if isinstance(value, list):
        return any(has_repr_marker(v) for v in value)
    return False


def _repr_marker(value: Any) -> dict[str, str]:
    kind = type(value)
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the whole record
        text = f"<unrepresentable {kind.__name__}: {type(exc).__name__}>"
    return {REPR_MARKER: text, "type": f"{kind.__module__}.{kind.__qualname__}"}


# -- encoding --------------------------------------------------------------------------------


def encode_call(call: ToolCall) -> dict[str, Any]:
    """A tool call, every field kept (empty optional ones left out)."""
    out: dict[str, Any] = {
        "tool": call.tool,
        "args": encode_data(call.args),
        "call_id": call.call_id,
    }
    if call.reasoning:
        out["reasoning"] = call.reasoning
    if call.raw_arguments is not None:
        out["raw_arguments"] = call.raw_arguments
    if call.parse_error is not None:
        out["parse_error"] = call.parse_error
    return out


def encode_result(result: ToolResult) -> dict[str, Any]:
    """A tool result, every field kept; the duration is not rounded."""
    detail = result.error_detail
    return {
        "tool": result.tool,
        "args_summary": result.args_summary,
        "data": encode_data(result.data),
        "error": result.error,
        "error_detail": None
        if detail is None
        else {
            "kind": detail.kind.value,
            "message": detail.message,
            "retriable": detail.retriable,
            "context": encode_data(detail.context),
        },
        "duration_ms": result.duration_ms,
        "call_id": result.call_id,
    }


def encode_step(step: Step) -> dict[str, Any]:
    """A step: its number, call and result."""
    return {
        "step": step.number,
        "tool_call": encode_call(step.tool_call),
        "tool_result": encode_result(step.tool_result),
    }


def encode_turn(turn: Turn) -> dict[str, Any]:
    """A model turn: its first step, calls, usage and duration (not rounded)."""
    usage = encode_usage(turn.usage)
    return {"step": turn.step, "calls": turn.calls, "usage": usage, "duration_ms": turn.duration_ms}


def call_view(call: ToolCall) -> dict[str, Any]:
    """``ToolCall.to_dict()``: :func:`encode_call`'s form with ``raw_arguments`` only when it
    could not be parsed (else ``args`` says it all)."""
    out = encode_call(call)
    if call.parse_error is None:
        out.pop("raw_arguments", None)
    return out


def result_view(result: ToolResult) -> dict[str, Any]:
    """``ToolResult.to_dict()``: :func:`encode_result`'s form, the duration to the µs."""
    out = encode_result(result)
    out["duration_ms"] = round(result.duration_ms, 3)
    return out


def step_view(step: Step) -> dict[str, Any]:
    """``Step.to_dict()``: :func:`encode_step`'s form, its call and result as viewed above."""
    return {
        "step": step.number,
        "tool_call": call_view(step.tool_call),
        "tool_result": result_view(step.tool_result),
    }


def encode_message(message: Message) -> dict[str, Any]:
    """A message of the conversation (empty optional fields left out)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [encode_call(c) for c in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.name:
        out["name"] = message.name
    if message.is_error:
        out["is_error"] = True
    return out


def encode_usage(usage: Usage) -> dict[str, int]:
    """Token counts (the total for readers; it is not read back). The cache counts are
    written only when not zero, so a run without prompt caching keeps the v1 form."""
    tokens_in, tokens_out = usage.input_tokens, usage.output_tokens
    out = {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }
    if usage.cache_read_tokens:
        out["cache_read_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        out["cache_write_tokens"] = usage.cache_write_tokens
    return out


def encode_permission(outcome: PermissionOutcome) -> dict[str, Any]:
    """A permission decision, every field kept (a rule without its matcher: see above)."""
    rule = outcome.rule
    return {
        "tool": outcome.tool,
        "args": encode_data(dict(outcome.args)),
        "decision": outcome.decision.value,
        "rule": None
        if rule is None
        else {
            "decision": rule.decision.value,
            "tool": rule.tool,
            "reason": rule.reason,
            "had_matcher": rule.match is not None,
        },
        "reason": outcome.reason,
        "decided_by": outcome.decided_by,
        "asked": outcome.asked,
        "at": outcome.at,
        "step": outcome.step,
    }


def encode_compaction(record: CompactionRecord | Mapping[str, Any]) -> dict[str, Any]:
    """A context compaction (a record, or the form a checkpoint already holds)."""
    fields = record if isinstance(record, Mapping) else record.to_dict()
    return encode_data(dict(fields))  # type: ignore[no-any-return]


def encode_trajectory(trajectory: Trajectory) -> dict[str, Any]:
    """A whole run, its sub-agents' runs included; nothing cut or rounded."""
    t, error = trajectory, trajectory.error
    out: dict[str, Any] = {
        "task": encode_data(t.task),
        "steps": [encode_step(s) for s in t.steps],
        "stop_reason": t.stop_reason.value if t.stop_reason else None,
        "stop_detail": t.stop_detail,
        "llm_calls": t.llm_calls,
        "usage": encode_usage(t.usage),
        "messages": [encode_message(m) for m in t.messages],
        "elapsed_ms": t.elapsed_ms,
        "final_text": t.final_text,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "permission_decisions": [encode_permission(d) for d in t.permission_decisions],
        "compactions": [encode_compaction(c) for c in t.compactions],
        "parent_step": t.parent_step,
        "children": [encode_trajectory(c) for c in t.children],
    }
    if t.turns:  # left out when empty, as records written before turns were kept
        out["turns"] = [encode_turn(turn) for turn in t.turns]
    return out


def trajectory_document(trajectory: Trajectory) -> dict[str, Any]:
    """A file's document holding ``trajectory``: its form with the :data:`FORMAT` first."""
    return {"format": FORMAT, **encode_trajectory(trajectory)}


# -- decoding, with the place of any bad field -----------------------------------------------


def check_format(
    doc: Mapping[str, Any], family: str, current: str, *, required: bool
) -> str | None:
    """The document's ``format`` (``None`` when absent and not ``required``), checked to be
    ``current``: another format of ``family`` is one a newer looplet wrote."""
    fmt = doc.get("format")
    if fmt is None and not required:
        return None
    if not isinstance(fmt, str) or not fmt.startswith(f"{family}/"):
        raise DecodeError(
            "format", f'expected "{current}", got {fmt!r}: not a looplet {family} file'
        )
    if fmt != current:
        from looplet._version import __version__

        raise DecodeError(
            "format",
            f"{fmt!r} was written by a newer looplet; this one ({__version__}) reads "
            f"{current!r}: upgrade looplet to read it",
        )
    return fmt


def decode_call(value: Any, where: str) -> ToolCall:
    """A :class:`ToolCall` from :func:`encode_call`'s form."""
    obj = json_object(value, where)
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise DecodeError(f"{where}.args", f"expected an object, got {_kind(args)}")
    return ToolCall(
        field_str(obj, "tool", where),
        args,
        field_str(obj, "reasoning", where, ""),
        field_str(obj, "call_id", where, ""),
        optional_str(obj, "raw_arguments", where),
        optional_str(obj, "parse_error", where),
    )


def decode_result(value: Any, where: str, tool: str = "") -> ToolResult:
    """A :class:`ToolResult` from :func:`encode_result`'s form (``tool``: its call's, used
    when the result names none)."""
    obj = json_object(value, where)
    detail_obj = obj.get("error_detail")
    detail = None if detail_obj is None else _tool_error(detail_obj, f"{where}.error_detail")
    return ToolResult(
        field_str(obj, "tool", where, tool) if tool else field_str(obj, "tool", where),
        field_str(obj, "args_summary", where, ""),
        obj.get("data"),
        optional_str(obj, "error", where),
        detail,
        field_number(obj, "duration_ms", where, 0.0),
        field_str(obj, "call_id", where, ""),
    )


def _tool_error(value: Any, where: str) -> ToolError:
    obj = json_object(value, where)
    kind = field_str(obj, "kind", where)
    if kind not in ErrorKind._value2member_map_:
        valid = ", ".join(k.value for k in ErrorKind)
        raise DecodeError(f"{where}.kind", f"unknown error kind {kind!r}; expected one of {valid}")
    context = obj.get("context", {})
    if not isinstance(context, dict):
        raise DecodeError(f"{where}.context", f"expected an object, got {_kind(context)}")
    message = field_str(obj, "message", where)
    return ToolError(kind, message, field_bool(obj, "retriable", where, False), context)


def decode_step(value: Any, where: str) -> Step:
    """A :class:`Step` from :func:`encode_step`'s form."""
    obj = json_object(value, where)
    call = decode_call(obj.get("tool_call"), f"{where}.tool_call")
    return Step(
        field_int(obj, "step", where),
        call,
        decode_result(obj.get("tool_result"), f"{where}.tool_result", call.tool),
    )


def decode_turn(value: Any, where: str) -> Turn:
    """A :class:`~looplet.types.Turn` from :func:`encode_turn`'s form."""
    obj = json_object(value, where)
    return Turn(
        field_int(obj, "step", where),
        field_int(obj, "calls", where),
        decode_usage(obj.get("usage", {}), _at(where, "usage")),
        field_number(obj, "duration_ms", where, 0.0),
    )


def decode_message(value: Any, where: str) -> Message:
    """A :class:`Message` from :func:`encode_message`'s form."""
    obj = json_object(value, where)
    role = field_str(obj, "role", where)
    if role not in _ROLES:
        raise DecodeError(f"{where}.role", f"expected one of {sorted(_ROLES)}, got {role!r}")
    calls = decode_list(obj.get("tool_calls", []), f"{where}.tool_calls", decode_call)
    return Message(
        role,  # type: ignore[arg-type]  # checked against _ROLES just above
        field_str(obj, "content", where),
        tuple(calls),
        field_str(obj, "tool_call_id", where, ""),
        field_str(obj, "name", where, ""),
        field_bool(obj, "is_error", where, False),
    )


def decode_usage(value: Any, where: str) -> Usage:
    """A :class:`Usage` from :func:`encode_usage`'s form (absent cache counts are 0, as in
    files written before they existed)."""
    obj = json_object(value, where)
    tokens_in = field_int(obj, "input_tokens", where, 0)
    return Usage(
        tokens_in,
        field_int(obj, "output_tokens", where, 0),
        field_int(obj, "cache_read_tokens", where, 0),
        field_int(obj, "cache_write_tokens", where, 0),
    )


def decode_stop_reason(value: Any, where: str) -> StopReason | None:
    """A stop reason from its value, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in StopReason._value2member_map_:
        valid = ", ".join(r.value for r in StopReason)
        raise DecodeError(where, f"expected null or one of {valid}, got {value!r}")
    return StopReason(value)


def decode_permission(value: Any, where: str) -> PermissionOutcome:
    """A :class:`~looplet.permissions.PermissionOutcome` from :func:`encode_permission`'s form."""
    from looplet.permissions import PermissionOutcome

    obj = json_object(value, where)
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise DecodeError(f"{where}.args", f"expected an object, got {_kind(args)}")
    rule = obj.get("rule")
    return PermissionOutcome(
        tool=field_str(obj, "tool", where),
        args=args,
        decision=_decision(obj.get("decision"), f"{where}.decision"),
        rule=None if rule is None else _rule(rule, f"{where}.rule"),
        reason=field_str(obj, "reason", where, ""),
        decided_by=field_str(obj, "decided_by", where, ""),
        asked=field_bool(obj, "asked", where, False),
        at=field_number(obj, "at", where, 0.0),
        step=field_int(obj, "step", where, 0),
    )


_DESCRIBED_RULE = re.compile(r"^(\w+) (\S+)( \(with argument matcher\))?$")


def _rule(value: Any, where: str) -> PermissionRule:
    from looplet.permissions import PermissionRule

    if isinstance(value, str):  # looplet 0.2's to_dict: the rule's describe() text
        described = _DESCRIBED_RULE.match(value)
        if described is None:
            raise DecodeError(where, f"expected a rule object or 'decision tool', got {value!r}")
        decision, tool, matcher = described.groups()
        value = {"decision": decision, "tool": tool, "had_matcher": matcher is not None}
    obj = json_object(value, where)
    had_matcher = field_bool(obj, "had_matcher", where, False)
    return PermissionRule(
        tool=field_str(obj, "tool", where),
        decision=_decision(obj.get("decision"), f"{where}.decision"),
        match=_matcher_not_restored if had_matcher else None,
        reason=field_str(obj, "reason", where, ""),
    )


def _matcher_not_restored(args: Any) -> bool:
    """Stands in for a matcher a record cannot keep (code): used again, it raises, and a
    permission engine denies a call whose matcher raises (``describe()`` still shows it)."""
    raise LoopletError(
        "this permission rule was read back from a checkpoint: its argument matcher is code "
        "and was not saved, so it cannot decide; build the rule again to use it"
    )


def _decision(value: Any, where: str) -> PermissionDecision:
    from looplet.permissions import PermissionDecision

    if not isinstance(value, str) or value not in PermissionDecision._value2member_map_:
        valid = ", ".join(d.value for d in PermissionDecision)
        raise DecodeError(where, f"expected one of {valid}, got {value!r}")
    return PermissionDecision(value)


def decode_compaction(value: Any, where: str) -> CompactionRecord:
    """A :class:`~looplet.compact.CompactionRecord` from :func:`encode_compaction`'s form."""
    from looplet.compact import CompactionRecord

    obj = json_object(value, where)
    counts = [field_int(obj, name, where, 0) for name in _COUNTS]
    return CompactionRecord(
        field_int(obj, "step", where),
        field_str(obj, "trigger", where),
        field_str(obj, "reason", where, ""),
        *counts,
    )


_COUNTS = ("before_tokens", "after_tokens", "before_messages", "after_messages", "llm_calls")


def decode_trajectory(value: Any, where: str) -> Trajectory:
    """A :class:`~looplet.types.Trajectory` from :func:`encode_trajectory`'s form (a
    document's ``format`` is for its reader to check: :func:`check_format`)."""
    obj = json_object(value, where)
    parent_step = obj.get("parent_step")
    if parent_step is not None:
        parent_step = field_int(obj, "parent_step", where)
    error = optional_str(obj, "error", where)
    return Trajectory(
        task=obj.get("task"),
        steps=decode_list(obj.get("steps", []), _at(where, "steps"), decode_step),
        stop_reason=decode_stop_reason(obj.get("stop_reason"), _at(where, "stop_reason")),
        stop_detail=field_str(obj, "stop_detail", where, ""),
        llm_calls=field_int(obj, "llm_calls", where, 0),
        usage=decode_usage(obj.get("usage", {}), _at(where, "usage")),
        messages=decode_list(obj.get("messages", []), _at(where, "messages"), decode_message),
        elapsed_ms=field_number(obj, "elapsed_ms", where, 0.0),
        final_text=field_str(obj, "final_text", where, ""),
        error=None if error is None else LoopletError(error),
        permission_decisions=decode_list(
            obj.get("permission_decisions", []),
            _at(where, "permission_decisions"),
            decode_permission,
        ),
        compactions=decode_list(
            obj.get("compactions", []), _at(where, "compactions"), decode_compaction
        ),
        children=decode_list(obj.get("children", []), _at(where, "children"), decode_trajectory),
        parent_step=parent_step,
        turns=decode_list(obj.get("turns", []), _at(where, "turns"), decode_turn),
    )
