"""The JSON form of every value a checkpoint holds, and its checked decoding.

Every value a checkpoint holds (messages, tool calls, tool results, steps, usage) is encoded
here field by field, so that it decodes to an equal value: unlike ``to_dict`` (made for
reading: it cuts long data and rounds durations), nothing is cut or rounded. Decoding checks
every field and reports a bad one by its place (``steps[2].tool_call.args``) as a
:class:`DecodeError`. The document that holds them (:class:`~looplet._checkpoint_doc.Checkpoint`,
credentials redacted on the way out) is :mod:`looplet._checkpoint_doc`;
:mod:`looplet.checkpoint` (the store, resuming) adds the file name and the fix.

Tool data is kept as JSON when it is JSON: ``dict`` with ``str`` keys, ``list``, ``str``,
``int``, finite ``float``, ``bool``, ``None`` (a ``tuple`` is stored as a list). Anything else
is stored as ``{"__looplet_repr__": repr(value), "type": "module.Class"}`` in its place, and a
resumed run sees that dict: the object itself cannot come back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from looplet.errors import ErrorKind, ToolError
from looplet.messages import Message
from looplet.types import Step, StopReason, ToolCall, ToolResult, Usage

__all__ = [
    "REPR_MARKER",
    "DecodeError",
    "decode_call",
    "decode_list",
    "decode_message",
    "decode_result",
    "decode_step",
    "decode_stop_reason",
    "decode_str",
    "decode_usage",
    "encode_call",
    "encode_data",
    "encode_message",
    "encode_result",
    "encode_step",
    "encode_usage",
    "field_bool",
    "field_int",
    "field_str",
    "has_repr_marker",
    "optional_str",
]

#: The key that marks data stored by its ``repr`` because JSON cannot hold it.
REPR_MARKER = "__looplet_repr__"

_ROLES = frozenset({"system", "user", "assistant", "tool"})
T = TypeVar("T")


class DecodeError(ValueError):
    """A field of a checkpoint has the wrong shape: ``where`` names it, ``problem`` says how."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"field {where}: {problem}")
        self.where = where
        self.problem = problem


# -- data ------------------------------------------------------------------------------------


def encode_data(value: Any) -> Any:
    """``value`` as JSON that decodes to an equal value, with non-JSON leaves as repr markers."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else _repr_marker(value)
    if kind is list or kind is tuple:
        return [encode_data(v) for v in value]
    if kind is dict and all(type(k) is str for k in value):
        return {k: encode_data(v) for k, v in value.items()}
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
    except Exception as exc:  # a broken __repr__ must not lose the whole checkpoint
        text = f"<unrepresentable {kind.__name__}: {type(exc).__name__}>"
    return {REPR_MARKER: text, "type": f"{kind.__module__}.{kind.__qualname__}"}


# -- encoding --------------------------------------------------------------------------------


def encode_call(call: ToolCall) -> dict[str, Any]:
    """A tool call, every field kept (empty optional ones left out)."""
    out: dict[str, Any] = {"tool": call.tool, "args": encode_data(call.args)}
    if call.call_id:
        out["call_id"] = call.call_id
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
    """Token counts."""
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


# -- decoding, with the place of any bad field -----------------------------------------------


def decode_call(value: Any, where: str) -> ToolCall:
    """A :class:`ToolCall` from :func:`encode_call`'s form."""
    obj = _object(value, where)
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


def decode_result(value: Any, where: str) -> ToolResult:
    """A :class:`ToolResult` from :func:`encode_result`'s form."""
    obj = _object(value, where)
    detail_obj = obj.get("error_detail")
    detail = None if detail_obj is None else _decode_tool_error(detail_obj, f"{where}.error_detail")
    duration = obj.get("duration_ms", 0.0)
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise DecodeError(f"{where}.duration_ms", f"expected a number, got {_kind(duration)}")
    return ToolResult(
        field_str(obj, "tool", where),
        field_str(obj, "args_summary", where, ""),
        obj.get("data"),
        optional_str(obj, "error", where),
        detail,
        float(duration),
        field_str(obj, "call_id", where, ""),
    )


def _decode_tool_error(value: Any, where: str) -> ToolError:
    obj = _object(value, where)
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
    obj = _object(value, where)
    return Step(
        field_int(obj, "step", where),
        decode_call(obj.get("tool_call"), f"{where}.tool_call"),
        decode_result(obj.get("tool_result"), f"{where}.tool_result"),
    )


def decode_message(value: Any, where: str) -> Message:
    """A :class:`Message` from :func:`encode_message`'s form."""
    obj = _object(value, where)
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
    """A :class:`Usage` from :func:`encode_usage`'s form."""
    obj = _object(value, where)
    tokens_in = field_int(obj, "input_tokens", where, 0)
    return Usage(tokens_in, field_int(obj, "output_tokens", where, 0))


def decode_stop_reason(value: Any, where: str) -> StopReason | None:
    """A stop reason from its value, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in StopReason._value2member_map_:
        valid = ", ".join(r.value for r in StopReason)
        raise DecodeError(where, f"expected null or one of {valid}, got {value!r}")
    return StopReason(value)


def decode_str(value: Any, where: str) -> str:
    """A string item of an array."""
    if not isinstance(value, str):
        raise DecodeError(where, f"expected a string, got {_kind(value)}")
    return value


def decode_list(value: Any, where: str, decode: Callable[[Any, str], T]) -> list[T]:
    """Decode each item of the JSON array ``value``, naming a bad one ``where[i]``."""
    if not isinstance(value, list):
        raise DecodeError(where, f"expected an array, got {_kind(value)}")
    return [decode(item, f"{where}[{i}]") for i, item in enumerate(value)]


# -- fields ------------------------------------------------------------------------------------

_MISSING: Any = object()


def field_str(obj: Mapping[str, Any], key: str, where: str, default: str = _MISSING) -> str:
    """The string ``obj[key]`` (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if value is _MISSING:
        raise DecodeError(_at(where, key), "missing")
    if not isinstance(value, str):
        raise DecodeError(_at(where, key), f"expected a string, got {_kind(value)}")
    return value


def optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    """The string or null ``obj[key]`` (``None`` when absent)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise DecodeError(_at(where, key), f"expected a string or null, got {_kind(value)}")
    return value


def field_int(obj: Mapping[str, Any], key: str, where: str, default: int = _MISSING) -> int:
    """The non-negative integer ``obj[key]`` (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if value is _MISSING:
        raise DecodeError(_at(where, key), "missing")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DecodeError(_at(where, key), f"expected a non-negative integer, got {value!r}")
    return value


def field_bool(obj: Mapping[str, Any], key: str, where: str, default: bool = _MISSING) -> bool:
    """The boolean ``obj[key]`` (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if value is _MISSING:
        raise DecodeError(_at(where, key), "missing")
    if not isinstance(value, bool):
        raise DecodeError(_at(where, key), f"expected true or false, got {_kind(value)}")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(where, f"expected an object, got {_kind(value)}")
    return value


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value!r}"
    return names.get(type(value), type(value).__name__)
