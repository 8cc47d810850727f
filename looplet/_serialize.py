"""The checkpoint document: :class:`Checkpoint`, its JSON form, and its checked decoding.

Every value a checkpoint holds (messages, tool calls, tool results, steps, usage) is encoded
here field by field, so that it decodes to an equal value: unlike ``to_dict`` (made for
reading: it cuts long data and rounds durations), nothing is cut or rounded; only credentials
become ``<redacted>`` (:mod:`looplet._redact`), so that none reaches the disk. Decoding
checks every field and reports a bad one by its place (``steps[2].tool_call.args``) as a
:class:`DecodeError`, and a file that is no checkpoint at all as a :class:`BadFile`;
:mod:`looplet.checkpoint` (the store, resuming) adds the file name and the fix.

Tool data is kept as JSON when it is JSON: ``dict`` with ``str`` keys, ``list``, ``str``,
``int``, finite ``float``, ``bool``, ``None`` (a ``tuple`` is stored as a list). Anything else
is stored as ``{"__looplet_repr__": repr(value), "type": "module.Class"}`` in its place, and a
resumed run sees that dict: the object itself cannot come back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from looplet._version import __version__
from looplet.errors import CheckpointError, ErrorKind, ToolError
from looplet.messages import Message
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Usage

__all__ = [
    "FORMAT",
    "REPR_MARKER",
    "RUN_ID",
    "BadFile",
    "Checkpoint",
    "DecodeError",
    "decode_call",
    "decode_checkpoint",
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

#: The format written in every checkpoint file; a reader refuses any other.
FORMAT = "looplet-checkpoint/1"
#: The key that marks data stored by its ``repr`` because JSON cannot hold it.
REPR_MARKER = "__looplet_repr__"
#: A run id names a folder inside the store: one plain path component, never "." or "..".
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

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


# -- the checkpoint document ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The saved state of a run after a step (or at its end): what a resumed run restores.

    Attributes:
        run_id: the run's id, also the name of its folder in the store.
        step: how many steps the run had recorded.
        ended: whether the run had ended (a run's last checkpoint); such a run is not resumed.
        task: the task, in its JSON form.
        messages: the conversation, with the assistant turns' tool calls.
        steps: the recorded steps.
        queries_used: the step budget used; ``llm_calls`` and ``usage``: model calls and tokens.
        stop_reason, stop_detail, final_text: as on the trajectory at that point.
        tool_names: the registered tools; a resumed run must have the same.
        pending_calls: the calls of the current turn not yet recorded; run first on resume.
        pending_context, stop_requested: what hooks asked for that takes effect later.
        max_steps: the run's step budget (for information).
        compactions: the run's context compactions so far, each in its ``to_dict`` form.
        permission_decisions: the permission decisions taken so far, in order.
        children: the runs of the sub-agents started so far (see
            :mod:`looplet._serialize_records` for what of them cannot be kept).
        context_calibration: with a context budget, the prompt limit as lowered by
            provider refusals and the provider's tokens per estimated token.
        created_at: when it was taken (seconds since the epoch).
        path: the file it was read from, if any.
    """

    run_id: str
    step: int
    ended: bool = False
    task: Any = None
    messages: tuple[Message, ...] = ()
    steps: tuple[Step, ...] = ()
    queries_used: int = 0
    llm_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    final_text: str = ""
    tool_names: tuple[str, ...] = ()
    pending_calls: tuple[ToolCall, ...] = ()
    pending_context: tuple[str, ...] = ()
    stop_requested: str | None = None
    max_steps: int = 0
    compactions: tuple[dict[str, Any], ...] = ()
    permission_decisions: tuple[Any, ...] = ()
    children: tuple[Trajectory, ...] = ()
    context_calibration: tuple[int, float] | None = None
    created_at: float = 0.0
    path: Path | None = field(default=None, compare=False)

    @property
    def file_name(self) -> str:
        """``step-0007.json``, or ``step-0007.end.json`` for a run's end."""
        return f"step-{self.step:04d}{'.end' if self.ended else ''}.json"

    def trajectory(self) -> Trajectory:
        """The run's record as of this checkpoint (``elapsed_ms`` is not kept: 0)."""
        return Trajectory(
            task=self.task,
            steps=list(self.steps),
            stop_reason=self.stop_reason,
            stop_detail=self.stop_detail,
            llm_calls=self.llm_calls,
            usage=self.usage,
            messages=list(self.messages),
            final_text=self.final_text,
            permission_decisions=list(self.permission_decisions),
            children=list(self.children),
        )

    def to_json(self) -> str:
        """The checkpoint file's text, credentials and key-shaped strings redacted
        (:mod:`looplet._redact`): a resumed run sees ``<redacted>`` in their place."""
        from looplet._redact import redact
        from looplet._serialize_records import encode_child, encode_permission

        doc = {
            "format": FORMAT,
            "looplet_version": __version__,
            "run_id": self.run_id,
            "step": self.step,
            "ended": self.ended,
            "created_at": self.created_at,
            "task": encode_data(self.task),
            "messages": [encode_message(m) for m in self.messages],
            "steps": [encode_step(s) for s in self.steps],
            "queries_used": self.queries_used,
            "llm_calls": self.llm_calls,
            "usage": encode_usage(self.usage),
            "stop_reason": self.stop_reason.value if self.stop_reason else None,
            "stop_detail": self.stop_detail,
            "final_text": self.final_text,
            "tool_names": list(self.tool_names),
            "pending_calls": [encode_call(c) for c in self.pending_calls],
            "pending_context": list(self.pending_context),
            "stop_requested": self.stop_requested,
            "max_steps": self.max_steps,
            "compactions": [encode_data(c) for c in self.compactions],
            "permission_decisions": [encode_permission(d) for d in self.permission_decisions],
            "children": [encode_child(c) for c in self.children],
            "context_calibration": None
            if self.context_calibration is None
            else dict(zip(("limit", "scale"), self.context_calibration, strict=True)),
        }
        return json.dumps(redact(doc), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes, *, path: Path | None = None) -> Checkpoint:
        """Read a checkpoint file's text, checking every field.

        Raises:
            CheckpointError: the text is not a checkpoint this looplet can read; the message
                says why (cut-short JSON, a foreign file, a newer format, a bad field).
        """
        try:
            return decode_checkpoint(text, path)
        except BadFile as bad:
            where = path if path is not None else "checkpoint text"
            raise CheckpointError(f"cannot read {where}: {bad.reason}", path=path) from None


class BadFile(Exception):
    """Why a file is not a checkpoint this looplet can read (``reason``: one clause)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_checkpoint(text: str | bytes, path: Path | None) -> Checkpoint:
    """A checkpoint from a file's text, every field checked; else :class:`BadFile`."""
    if not text.strip():
        raise BadFile("the file is empty; the write was probably cut short")
    try:
        doc = json.loads(text)
    except UnicodeDecodeError:
        raise BadFile("not UTF-8 text, so not a looplet checkpoint") from None
    except json.JSONDecodeError as exc:
        raise BadFile(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); the write "
            "was probably cut short"
        ) from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("looplet-checkpoint/"):
        raise BadFile(f'not a looplet checkpoint (no "format": "{FORMAT}" field)')
    if fmt != FORMAT:
        raise BadFile(
            f"written in format {fmt!r} by a newer looplet; this looplet ({__version__}) reads "
            f"{FORMAT!r}: upgrade looplet to resume it"
        )
    try:
        return _checkpoint_fields(doc, path)
    except DecodeError as exc:
        raise BadFile(f"malformed checkpoint: {exc}") from None


def _checkpoint_fields(doc: dict[str, Any], path: Path | None) -> Checkpoint:
    from looplet._serialize_records import decode_child, decode_permission

    run_id = field_str(doc, "run_id", "")
    if not RUN_ID.match(run_id):
        raise DecodeError("run_id", f"not a plain name: {run_id!r}")
    created = doc.get("created_at", 0.0)
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise DecodeError("created_at", f"expected a number, got {created!r}")
    context = decode_list(doc.get("pending_context", []), "pending_context", decode_str)
    steps = decode_list(doc.get("steps"), "steps", decode_step)
    step = field_int(doc, "step", "")
    if step != len(steps):
        raise DecodeError("step", f"is {step}, but the file holds {len(steps)} steps")
    return Checkpoint(
        run_id=run_id,
        step=step,
        ended=field_bool(doc, "ended", "", False),
        task=doc.get("task"),
        messages=tuple(decode_list(doc.get("messages"), "messages", decode_message)),
        steps=tuple(steps),
        queries_used=field_int(doc, "queries_used", ""),
        llm_calls=field_int(doc, "llm_calls", ""),
        usage=decode_usage(doc.get("usage", {}), "usage"),
        stop_reason=decode_stop_reason(doc.get("stop_reason"), "stop_reason"),
        stop_detail=field_str(doc, "stop_detail", "", ""),
        final_text=field_str(doc, "final_text", "", ""),
        tool_names=tuple(decode_list(doc.get("tool_names"), "tool_names", decode_str)),
        pending_calls=tuple(
            decode_list(doc.get("pending_calls", []), "pending_calls", decode_call)
        ),
        pending_context=tuple(context),
        stop_requested=optional_str(doc, "stop_requested", ""),
        max_steps=field_int(doc, "max_steps", "", 0),
        compactions=tuple(decode_list(doc.get("compactions", []), "compactions", _object)),
        permission_decisions=tuple(
            decode_list(
                doc.get("permission_decisions", []), "permission_decisions", decode_permission
            )
        ),
        children=tuple(decode_list(doc.get("children", []), "children", decode_child)),
        context_calibration=_calibration(doc.get("context_calibration")),
        created_at=float(created),
        path=path,
    )


def _calibration(value: Any) -> tuple[int, float] | None:
    if value is None:
        return None
    obj = _object(value, "context_calibration")
    scale = obj.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale < 1:
        raise DecodeError("context_calibration.scale", f"expected a number >= 1, got {scale!r}")
    return field_int(obj, "limit", "context_calibration"), float(scale)
