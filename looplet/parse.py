"""Reading tool calls out of model replies: the JSON-text protocol and provider argument strings.

Two entry points. :func:`parse_text_reply` reads the original looplet protocol, where the model
answers in text with a JSON object ``{"tool": "greet", "args": {...}, "reasoning": "..."}`` or a
batch ``{"tools": [{"tool": ..., "args": ...}, ...], "theory": "..."}``, possibly fenced in
```` ```json ```` and surrounded by prose; :func:`format_text_reply` writes that form back.
:func:`tool_call_from_openai` decodes one native tool call whose arguments arrive as a JSON
string. A call whose arguments cannot be decoded is never dropped or silently emptied: it
carries ``parse_error`` and ``raw_arguments`` so the loop can tell the model what was wrong.
The original looplet's ``parse_tool_call``, ``parse_multi_tool_calls``,
``parse_native_tool_use`` and ``to_text`` are kept, by name and call shape, on the same parser.
Nothing here knows about the loop or performs I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from looplet._reply_guard import nested_too_deep
from looplet.messages import _json_encoder
from looplet.types import ToolCall

__all__ = [
    "format_text_reply",
    "parse_multi_tool_calls",
    "parse_native_tool_use",
    "parse_text_reply",
    "parse_tool_call",
    "to_text",
    "tool_call_from_openai",
]

# strict=False: models often put raw newlines and tabs inside JSON strings.
_DECODER = json.JSONDecoder(strict=False)
_ENCODE = _json_encoder()  # json.dumps(..., ensure_ascii=False), its encoder built once
_OPEN_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?[ \t]*$")
_CLOSE_FENCE = re.compile(r"^[ \t]*\n?[ \t]*```")
_TOOL_KEY = re.compile(r'"tools?"\s*:')
_TOOL_NAME = re.compile(r'"tool"\s*:\s*"([^"\\]*)"')


def parse_text_reply(text: str, *, id_prefix: str = "call_") -> tuple[str, tuple[ToolCall, ...]]:
    """Read the tool calls of a reply written in the JSON-text protocol.

    The reply is scanned for the first ``{`` that decodes (``json.JSONDecoder.raw_decode``) to
    a tool object: a JSON object with a string ``"tool"`` or a list ``"tools"``. Code fences
    around it and prose before or after it are allowed. A batch's ``"theory"`` (or a call's
    ``"reasoning"``) becomes each call's ``reasoning``; it is never added to the arguments.

    Args:
        text: the model's reply.
        id_prefix: call ids not given in the reply become ``<id_prefix><n>``, where ``n`` is
            the call's 0-based position in the reply (``call_0``, ``call_1``...).

    Returns:
        ``(rest, calls)``. ``rest`` is the prose around the object (fences removed), or the
        object's reasoning/theory when there is no prose. A reply with no tool object gives
        ``(text, ())``. A call whose ``args`` is not a JSON object has ``parse_error`` set
        (and ``raw_arguments`` holds the value as JSON) rather than empty arguments; so
        does an object nested too deep for Python to decode (``raw_arguments`` holds the
        text from its first brace).

    Example::

        >>> parse_text_reply('{"tool": "greet", "args": {"name": "Alice"}}')[1][0].args
        {'name': 'Alice'}
    """
    found = _find_tool_object(text)
    if found is None:
        return text, ()
    obj, start, end = found
    if obj is None:  # a tool object nested too deep to decode: a call that says so
        named = _TOOL_NAME.search(text, start)
        call = ToolCall(
            named.group(1) if named else "",
            call_id=f"{id_prefix}0",
            raw_arguments=text[start:],
            parse_error=nested_too_deep(),
        )
        return _prose_around(text, start, end), (call,)
    top_reasoning = _text_field(obj, "reasoning") or _text_field(obj, "theory")
    calls = _calls_from_object(obj, id_prefix=id_prefix, reasoning=top_reasoning)
    prose = _prose_around(text, start, end)
    return (prose or top_reasoning), calls


def tool_call_from_openai(
    name: str, arguments: str | Mapping[str, Any], call_id: str, *, reasoning: str = ""
) -> ToolCall:
    """Build a :class:`ToolCall` from a native tool call (OpenAI ``function.arguments``).

    Args:
        name: the function name the model called.
        arguments: the arguments as the provider sent them: a JSON string (OpenAI) or an
            already-decoded mapping (Anthropic ``input``). An empty string means no arguments.
        call_id: the provider's id for the call.
        reasoning: the text the model wrote alongside the call (the turn's content).

    Returns:
        A call whose ``raw_arguments`` is the JSON string. When the string is not valid JSON,
        or decodes to something other than an object, ``args`` is ``{}`` and ``parse_error``
        holds the reason (the ``json`` error message, e.g. ``"Expecting ',' delimiter: line 1
        column 9 (char 8)"``); such a call is never run.
    """
    if isinstance(arguments, Mapping):
        args = dict(arguments)
        try:
            raw = json.dumps(args)
        except (RecursionError, ValueError):  # nested without end, or a cycle
            return ToolCall(
                name, call_id=call_id, reasoning=reasoning, parse_error=nested_too_deep()
            )
        return ToolCall(name, args, call_id=call_id, reasoning=reasoning, raw_arguments=raw)
    if not arguments.strip():
        # Some OpenAI-compatible servers send "" for a call without arguments.
        return ToolCall(name, {}, call_id=call_id, reasoning=reasoning, raw_arguments=arguments)
    try:
        value = _DECODER.decode(arguments)
    except (json.JSONDecodeError, RecursionError) as exc:
        why = nested_too_deep() if isinstance(exc, RecursionError) else str(exc)
        return ToolCall(
            name, call_id=call_id, reasoning=reasoning, raw_arguments=arguments, parse_error=why
        )
    if not isinstance(value, dict):
        return ToolCall(
            name,
            call_id=call_id,
            reasoning=reasoning,
            raw_arguments=arguments,
            parse_error=f"arguments must be a JSON object, got {_json_type(value)}: "
            f"{_clip(arguments)}",
        )
    return ToolCall(name, value, call_id=call_id, reasoning=reasoning, raw_arguments=arguments)


def format_text_reply(text: str, calls: Sequence[ToolCall]) -> str:
    """Write a reply in the JSON-text protocol; :func:`parse_text_reply` reads it back.

    No calls gives ``text`` unchanged; one call gives ``{"tool", "args", "reasoning"}``;
    several give ``{"tools": [...], "theory": text}``. A call with a ``parse_error`` is
    written with its raw arguments as the ``args`` value, so the defect is preserved.
    """
    if not calls:
        return text
    if len(calls) == 1:
        obj = _call_object(calls[0])
        reasoning = text or calls[0].reasoning
        if reasoning:
            obj["reasoning"] = reasoning
        return _ENCODE(obj)
    batch: dict[str, Any] = {"tools": [_call_object(c) for c in calls]}
    theory = text or calls[0].reasoning
    if theory:
        batch["theory"] = theory
    return _ENCODE(batch)


# -- the original looplet's parsing functions, kept by name on the parser above ------------------


def to_text(raw: str | Sequence[Any] | None) -> str | None:
    """The text of a reply: a string as is; of a list of content blocks, its ``text`` blocks
    (``{"type": "text", "text": ...}``) joined; ``None`` for ``None``."""
    if raw is None or isinstance(raw, str):
        return raw
    return "".join(
        block["text"]
        for block in raw
        if isinstance(block, Mapping)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def parse_tool_call(raw: str) -> ToolCall | None:
    """The first tool call of a JSON-text reply, or ``None`` if it has none.

    The original looplet's single-call parser, on :func:`parse_text_reply` (which returns all
    of them): fences and prose are allowed, and a call whose ``args`` is no object carries
    ``parse_error`` rather than empty arguments.
    """
    calls = parse_text_reply(raw)[1]
    return calls[0] if calls else None


def parse_multi_tool_calls(raw: str | Sequence[Any] | None) -> list[ToolCall]:
    """Every tool call of a reply: a single call or a ``{"tools": [...]}`` batch, in JSON
    text or in the ``text`` blocks of a list of content blocks (:func:`to_text`); ``[]`` if
    there is none. A batch's ``theory`` becomes each call's ``reasoning``, never an argument.
    """
    text = to_text(raw)
    return list(parse_text_reply(text)[1]) if text else []


def parse_native_tool_use(blocks: Iterable[Any]) -> list[ToolCall]:
    """The calls of native ``tool_use`` content blocks (``{"type": "tool_use", "id": ...,
    "name": ..., "input": {...}}``, the Anthropic form); other blocks are skipped. An
    ``input`` that is no object gives a call with ``parse_error`` set, which is never run."""
    calls: list[ToolCall] = []
    for block in blocks:
        if not isinstance(block, Mapping) or block.get("type") != "tool_use":
            continue
        name, call_id, value = block.get("name"), str(block.get("id") or ""), block.get("input")
        if not isinstance(name, str) or not name:
            continue
        if value is None or isinstance(value, Mapping | str):
            calls.append(tool_call_from_openai(name, value or {}, call_id))
            continue
        raw = json.dumps(value, ensure_ascii=False, default=str)
        why = f"input must be a JSON object, got {_json_type(value)}: {_clip(raw)}"
        calls.append(ToolCall(name, call_id=call_id, raw_arguments=raw, parse_error=why))
    return calls


def _find_tool_object(text: str) -> tuple[dict[str, Any] | None, int, int] | None:
    """The first tool object in ``text`` and its span, or ``None``.

    An object nested too deep to decode ends the search: ``(None, start, len(text))`` if it
    names a tool, else ``None`` (the nested braces inside it cannot be decoded either).
    """
    if '"tool' not in text:
        return None  # cheap exit: scanning every "{" of a long text is quadratic
    start = text.find("{")
    while start != -1:
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            pass
        except RecursionError:
            return (None, start, len(text)) if _TOOL_KEY.search(text, start) else None
        else:
            if _is_tool_object(value):
                return value, start, end
        start = text.find("{", start + 1)
    return None


def _is_tool_object(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    return isinstance(value.get("tool"), str) or isinstance(value.get("tools"), list)


def _calls_from_object(
    obj: Mapping[str, Any], *, id_prefix: str = "call_", reasoning: str = ""
) -> tuple[ToolCall, ...]:
    """The calls of one tool object (single or batch), ids filled in by position."""
    if isinstance(obj.get("tools"), list):
        entries: list[Any] = list(obj["tools"])
    else:
        entries = [obj]
    return tuple(
        _call_from_entry(entry, f"{id_prefix}{n}", reasoning, n) for n, entry in enumerate(entries)
    )


def _call_from_entry(entry: Any, default_id: str, reasoning: str, n: int) -> ToolCall:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("tool"), str):
        raw = json.dumps(entry, ensure_ascii=False, default=str)
        return ToolCall(
            "",
            call_id=default_id,
            reasoning=reasoning,
            raw_arguments=raw,
            parse_error=f'tool call {n} is not an object with a string "tool" name: {_clip(raw)}',
        )
    name: str = entry["tool"]
    call_id = entry.get("call_id") or entry.get("id") or default_id
    if not isinstance(call_id, str):
        call_id = default_id
    own = _text_field(entry, "reasoning") or reasoning
    args = entry["args"] if "args" in entry else entry.get("arguments", {})
    if isinstance(args, str):
        # The native form's JSON-string arguments; decode them the same way.
        decoded = tool_call_from_openai(name, args, call_id)
        return ToolCall(
            name,
            decoded.args,
            reasoning=own,
            call_id=call_id,
            raw_arguments=decoded.raw_arguments,
            parse_error=decoded.parse_error,
        )
    if not isinstance(args, dict):
        raw = json.dumps(args, ensure_ascii=False, default=str)
        return ToolCall(
            name,
            reasoning=own,
            call_id=call_id,
            raw_arguments=raw,
            parse_error=f'"args" must be a JSON object, got {_json_type(args)}: {_clip(raw)}',
        )
    return ToolCall(name, args, reasoning=own, call_id=call_id)


def _call_object(call: ToolCall) -> dict[str, Any]:
    args: Any = call.args
    if call.parse_error is not None and call.raw_arguments is not None:
        args = call.raw_arguments
    obj: dict[str, Any] = {"tool": call.tool, "args": args}
    if call.call_id:
        obj["call_id"] = call.call_id
    return obj


def _prose_around(text: str, start: int, end: int) -> str:
    before = _OPEN_FENCE.sub("", text[:start].rstrip(" \t"))
    after = _CLOSE_FENCE.sub("", text[end:])
    return "\n\n".join(part for part in (before.strip(), after.strip()) if part)


def _text_field(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
