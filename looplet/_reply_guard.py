"""What every model reply passes through before the loop keeps it (``engine.record_reply``).

A backend is outside looplet's control, and what it hands back is sent to the provider
again, written to checkpoints and provenance files, and given to the caller. So it is made
safe once, where it enters, for the sync and async loops and every backend alike:

* a reply that is not an :class:`~looplet.backends.base.LLMResponse` (or whose fields have
  the wrong types) becomes an :class:`~looplet.errors.LLMError` naming the backend and
  what it returned;
* arguments that are not a JSON object, or are nested more than :data:`MAX_ARGS_DEPTH`
  levels deep, make a call with ``parse_error`` set: never run, the model is told, as for
  arguments that are not valid JSON (:mod:`looplet.parse` does the same for JSON text);
* lone surrogates (a JSON ``"\\ud800"`` escape decodes to one), which no UTF-8 writer
  accepts, become U+FFFD in the text, names, ids, reasoning and arguments;
* an empty call id, or one already used in the run, is replaced by a unique one, so the
  assistant turn and its tool results, sent back, never repeat an id.

A clean reply is returned as it is: checking it costs a few type checks and
``str.isascii()`` calls (constant time in CPython) per call and argument.
:func:`utf8` is the one encoder for files looplet writes, for text that did not come
through here (a tool's result, a recorded raw reply).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from looplet.backends.base import LLMResponse
from looplet.errors import LLMError
from looplet.types import ToolCall, Usage

__all__ = ["MAX_ARGS_DEPTH", "clean_text", "guard_reply", "nested_too_deep", "utf8"]

#: How deep arguments may nest (serde_json's default limit). Deeper ones are a parse error:
#: checking, showing or saving them could exhaust Python's recursion limit.
MAX_ARGS_DEPTH = 128

_ATOMS = frozenset((int, float, bool, type(None)))
#: A call's text fields and what each must be.
_STR_FIELDS = {
    "tool": "a str",
    "call_id": "a str",
    "reasoning": "a str",
    "raw_arguments": "a str or None",
    "parse_error": "a str or None",
}
_OK, _DIRTY, _DEEP = 0, 1, 2


def nested_too_deep() -> str:
    """The ``parse_error`` of arguments nested more than :data:`MAX_ARGS_DEPTH` levels."""
    return f"the arguments are nested more than {MAX_ARGS_DEPTH} levels deep"


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (a split pair is joined)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, a lone surrogate written as U+FFFD rather than failing the write."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return clean_text(text).encode("utf-8")


def guard_reply(
    reply: object, llm: object, seen_ids: set[str], turn: int
) -> LLMResponse | LLMError:
    """``reply`` made safe to keep (itself when nothing needed fixing), or why it cannot be.

    Args:
        reply: what the backend returned.
        llm: the backend, named in the error.
        seen_ids: the call ids used so far in the run; this reply's are added.
        turn: the number of this model call in the run, for ids given to calls without one.
    """
    # The common case first, inline (it runs on every model call): a clean reply is kept as
    # it is, decided by type checks and isascii() alone; anything else takes _guarded.
    if type(reply) is LLMResponse:
        text: object = reply.text
        calls: object = reply.tool_calls
        if (
            type(text) is str
            and (text.isascii() or _encodes(text))
            and type(reply.usage) is Usage
            and type(calls) is tuple
        ):
            added = 0
            for call in calls:
                if type(call) is not ToolCall:
                    break
                call_id, tool, reasoning = call.call_id, call.tool, call.reasoning
                raw, args = call.raw_arguments, call.args
                if not (
                    type(call_id) is str
                    and call_id
                    and call_id.isascii()
                    and call_id not in seen_ids
                    and type(tool) is str
                    and tool.isascii()
                    and type(reasoning) is str
                    and (reasoning.isascii() or _encodes(reasoning))
                    and (raw is None or (type(raw) is str and (raw.isascii() or _encodes(raw))))
                    and call.parse_error is None
                    and type(args) is dict
                ):
                    break
                for key, value in args.items():
                    if not (
                        type(key) is str
                        and key.isascii()
                        and (  # a str first: the most common value
                            (type(value) is str and (value.isascii() or _encodes(value)))
                            or type(value) in _ATOMS
                        )
                    ):
                        break
                else:
                    seen_ids.add(call_id)
                    added += 1
                    continue
                if _inspect(args) != _OK:  # nested (or not clean): walk it all once
                    break
                seen_ids.add(call_id)
                added += 1
            else:
                return reply
            for call in calls[:added]:  # _guarded looks at every call again
                seen_ids.discard(call.call_id)
    return _guarded(reply, llm, seen_ids, turn)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _guarded(reply: object, llm: object, seen_ids: set[str], turn: int) -> LLMResponse | LLMError:
    """:func:`guard_reply` for a reply that is not plainly clean: check and fix each part."""
    if not isinstance(reply, LLMResponse):
        return _bad_reply(
            llm,
            f"returned {type(reply).__name__} {_shown(reply)}, not an LLMResponse. A "
            "backend's complete() must return looplet.backends.LLMResponse(text=..., "
            "tool_calls=(ToolCall(...), ...))",
        )
    # Typed as what a backend may really have put there, not as the fields are declared.
    text: object = reply.text
    calls: object = reply.tool_calls
    usage: object = reply.usage
    fixes: dict[str, Any] = {}
    if type(text) is not str:
        if text is not None:
            return _bad_field(llm, "text", text, "a str")
        text = fixes["text"] = ""
    elif not text.isascii() and (clean := clean_text(text)) is not text:
        fixes["text"] = clean
    if type(usage) is not Usage:
        if usage is not None:
            return _bad_field(llm, "usage", usage, "a looplet Usage")
        fixes["usage"] = Usage()
    if isinstance(calls, list):
        calls = fixes["tool_calls"] = tuple(calls)
    elif not isinstance(calls, tuple):
        return _bad_field(llm, "tool_calls", calls, "a tuple of ToolCall")
    changed: list[ToolCall] | None = None
    for index, call in enumerate(calls):
        if not isinstance(call, ToolCall):
            return _bad_field(llm, f"tool_calls[{index}]", call, "a ToolCall")
        checked = _guard_call(call, index, seen_ids, turn)
        if isinstance(checked, str):
            value = getattr(call, checked)
            return _bad_field(llm, f"tool_calls[{index}].{checked}", value, _STR_FIELDS[checked])
        if checked is not call:
            if changed is None:
                changed = list(calls)
            changed[index] = checked
    if changed is not None:
        fixes["tool_calls"] = tuple(changed)
    return dataclasses.replace(reply, **fixes) if fixes else reply


def _guard_call(call: ToolCall, index: int, seen: set[str], turn: int) -> ToolCall | str:
    """``call`` made safe (itself when it was), or the name of a field of the wrong type."""
    tool, call_id, reasoning = call.tool, call.call_id, call.reasoning
    raw, error = call.raw_arguments, call.parse_error
    if type(tool) is not str:
        return "tool"
    if type(call_id) is not str:
        return "call_id"
    if type(reasoning) is not str:
        return "reasoning"
    if raw is not None and type(raw) is not str:
        return "raw_arguments"
    if error is not None and type(error) is not str:
        return "parse_error"
    fixes: dict[str, Any] = {}
    if not (
        tool.isascii()
        and call_id.isascii()
        and reasoning.isascii()
        and (raw is None or raw.isascii())
        and (error is None or error.isascii())
    ):
        for name, value in (
            ("tool", tool),
            ("call_id", call_id),
            ("reasoning", reasoning),
            ("raw_arguments", raw),
            ("parse_error", error),
        ):
            if value is not None and (clean := clean_text(value)) is not value:
                fixes[name] = clean
        call_id = fixes.get("call_id", call_id)
    if not call_id or call_id in seen:  # the tool message must name its call, and only it
        call_id = fixes["call_id"] = _unique_id(call_id or f"call_{turn}_{index}", seen)
    seen.add(call_id)
    fixes.update(_guard_args(call.args, fixes.get("raw_arguments", raw)))
    return dataclasses.replace(call, **fixes) if fixes else call


def _guard_args(args: object, raw: str | None) -> dict[str, Any]:
    """The fields to change so that ``args`` is a clean JSON object, or a parse error."""
    if not isinstance(args, dict) and isinstance(args, Mapping):
        args = dict(args)  # the registry accepts any Mapping; kept, as a plain dict
    state = _inspect(args)
    if state == _DEEP:
        return {"args": {}, "parse_error": nested_too_deep()}
    if state == _DIRTY:
        args = _cleaned(args)
    if isinstance(args, dict):
        return {"args": args} if state == _DIRTY else {}
    import json  # not needed on the common path: kept out of `import looplet`

    from looplet.parse import _json_type

    shown = raw
    if shown is None:
        try:
            shown = json.dumps(args, ensure_ascii=False, default=repr)
        except Exception:  # an object whose repr raises
            shown = _shown(args)
    return {
        "args": {},
        "raw_arguments": shown,
        "parse_error": f"arguments must be a JSON object, got {_json_type(args)}: {_clip(shown)}",
    }


def _inspect(value: object) -> int:
    """Whether ``value`` holds a lone surrogate (_DIRTY) or is nested too deep (_DEEP)."""
    dirty = False
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_ARGS_DEPTH:
                return _DEEP
            for key, inner in item.items():
                if type(key) is str and not dirty and clean_text(key) is not key:
                    dirty = True
                stack.append((inner, depth + 1))
        elif isinstance(item, list | tuple):
            if depth > MAX_ARGS_DEPTH:
                return _DEEP
            stack.extend((inner, depth + 1) for inner in item)
        elif type(item) is str and not dirty and clean_text(item) is not item:
            dirty = True
    return _DIRTY if dirty else _OK


def _cleaned(value: Any) -> Any:
    """``value`` rebuilt with clean strings (its depth is bounded: see ``_inspect``)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {_cleaned(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    return value


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value: object) -> str:
    """``repr(value)``, cut short; a repr that fails (nested without end...) is not shown."""
    try:
        return _clip(clean_text(repr(value)))
    except Exception:  # RecursionError, or a user type's own __repr__ raising
        return "(its repr fails)"


def _unique_id(call_id: str, seen: set[str]) -> str:
    if call_id not in seen:
        return call_id
    n = 2
    while f"{call_id}-{n}" in seen:
        n += 1
    return f"{call_id}-{n}"


def _bad_field(llm: object, field: str, value: object, expected: str) -> LLMError:
    return _bad_reply(
        llm,
        f"returned an LLMResponse whose {field} is {type(value).__name__} "
        f"{_shown(value)}, expected {expected}",
    )


def _bad_reply(llm: object, problem: str) -> LLMError:
    backend = _unwrapped(llm)
    name = type(backend).__name__
    provider = getattr(backend, "provider", None)
    return LLMError(
        provider if isinstance(provider, str) and provider else name,
        f"the backend {name} {problem}.",
        kind="invalid_response",
    )


def _unwrapped(llm: object) -> object:
    """The user's backend inside looplet's own wrappers (recording, legacy adapters)."""
    for _ in range(4):
        inner = getattr(llm, "backend", None)
        if inner is None or not type(llm).__module__.startswith("looplet."):
            break
        llm = inner
    return llm
