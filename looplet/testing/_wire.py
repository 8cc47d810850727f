"""The OpenAI Chat Completions wire format, as the loopback server speaks it.

Pure functions from a request body and a scripted reply to the JSON the real API would send:
the ``chat.completion`` object, the ``chat.completion.chunk`` sequence of a stream (whole, or
broken off as a :func:`~looplet.testing.cut_stream` asks), error bodies, a deterministic usage
estimate, and the validation of the ``messages`` list (the 400s the real API returns for a
broken conversation). No sockets here; see :mod:`looplet.testing._server`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from looplet.testing._script import ScriptedReply, StreamCut
from looplet.types import Usage

__all__ = [
    "CREATED",
    "MODEL_ID",
    "Invalid",
    "call_ids",
    "completion_chunks",
    "completion_object",
    "error_body",
    "estimate_usage",
    "models_object",
    "pieces",
    "stream_body",
    "validate_chat_body",
]

#: A fixed ``created`` time base, so that served responses are byte-for-byte reproducible.
CREATED = 1_700_000_000
#: The one model ``GET /v1/models`` lists.
MODEL_ID = "looplet-scripted"

_DONE = b"data: [DONE]\n\n"
_ROLES = ("system", "developer", "user", "assistant", "tool")
_CHARS_PER_TOKEN = 4
_MAX_PIECE = 16


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a request is rejected with 400: the OpenAI error's message, param and code."""

    message: str
    param: str | None = None
    code: str | None = None


def error_body(
    message: str, type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The JSON body of an OpenAI error response."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def models_object() -> dict[str, Any]:
    """The ``GET /v1/models`` body: a list with one model."""
    return {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": CREATED, "owned_by": "looplet"}],
    }


def estimate_usage(body: Mapping[str, Any], reply: ScriptedReply) -> Usage:
    """Token counts estimated from sizes (about four characters a token), deterministically.

    The prompt side counts the ``messages`` and ``tools`` of the request (not the other
    fields, so a streamed and a plain request for the same conversation agree); the
    completion side counts the reply's text, call names and argument strings.
    """
    prompt = json.dumps(
        [body.get("messages"), body.get("tools")], sort_keys=True, ensure_ascii=False
    )
    completion = len(reply.text) + sum(len(c.name) + len(c.arguments) for c in reply.tool_calls)
    return Usage(_tokens(len(prompt)), _tokens(completion))


def call_ids(reply: ScriptedReply, number: int) -> tuple[str, ...]:
    """The ids of a reply's calls: the scripted id, else ``call_<number>_<i>``."""
    return tuple(c.id or f"call_{number}_{i}" for i, c in enumerate(reply.tool_calls))


def completion_object(
    reply: ScriptedReply, *, number: int, model: str, usage: Usage
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object for reply ``number`` (1-based)."""
    ids = call_ids(reply, number)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if (reply.text or not reply.tool_calls) else None,
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": cid,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for cid, c in zip(ids, reply.tool_calls, strict=True)
        ]
    return {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion",
        "created": CREATED + number,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(reply),
            }
        ],
        "usage": _usage_object(usage),
    }


def completion_chunks(
    reply: ScriptedReply, *, number: int, model: str, usage: Usage, include_usage: bool
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order (no ``[DONE]``).

    The first chunk carries the role; the text comes in several pieces; every tool call
    opens with a chunk holding its ``id``, ``type`` and ``name`` (and empty arguments), and
    its arguments follow split over at least two chunks when they are two characters or
    longer. Then a chunk with the ``finish_reason``, and with ``include_usage`` a last chunk
    with no choices and the usage (every earlier chunk then has ``"usage": null``).
    """
    ids = call_ids(reply, number)
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": "" if (reply.text or not reply.tool_calls) else None}
    ]
    deltas += [{"content": piece} for piece in pieces(reply.text)]
    for i, (cid, c) in enumerate(zip(ids, reply.tool_calls, strict=True)):
        head = {"index": i, "id": cid, "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": c.name, "arguments": ""}}]})
        deltas += [
            {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
            for piece in pieces(c.arguments)
        ]
    base = {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion.chunk",
        "created": CREATED + number,
        "model": model,
        "system_fingerprint": None,
    }
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    chunks = [{**base, "choices": [_chunk_choice(delta, None)], **extra} for delta in deltas]
    chunks.append({**base, "choices": [_chunk_choice({}, _finish_reason(reply))], **extra})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _usage_object(usage)})
    return chunks


def stream_body(chunks: Sequence[Mapping[str, Any]], cut: StreamCut | None = None) -> list[bytes]:
    """The server-sent events of a stream: each chunk on a ``data:`` line, then ``[DONE]``.

    With ``cut``, what a :func:`~looplet.testing.cut_stream` sends instead: its first
    ``cut.after`` chunks, then for ``"error"`` an ``{"error": {...}}`` object on a ``data:``
    line, for ``"no_finish"`` ``[DONE]`` (the chunk with the ``finish_reason``, and the
    usage chunk after it, left out), for ``"cut"`` nothing: closing the connection is the
    server's part.
    """
    if cut is None:
        return [*map(_data_line, chunks), _DONE]
    if cut.ending == "no_finish":
        before_finish = list(itertools.takewhile(lambda c: not _finishes(c), chunks))
        return [*map(_data_line, before_finish[: cut.after]), _DONE]
    events = [_data_line(c) for c in chunks[: cut.after]]
    if cut.ending == "error":
        message = (
            "The server had an error while streaming the reply (scripted: cut_stream after "
            f"{len(events)} chunks)."
        )
        events.append(_data_line(error_body(message, "server_error")))
    return events


def pieces(text: str) -> list[str]:
    """``text`` cut into at least two pieces (when it has two characters or more)."""
    if not text:
        return []
    size = max(1, min(_MAX_PIECE, math.ceil(len(text) / 2)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def validate_chat_body(body: Any) -> Invalid | None:
    """Why the real API would reject this chat request with 400, or ``None`` if it would not.

    Checks the required fields, each message's role and content, the tool-call pairing rules
    (every ``tool`` message answers a pending call of the assistant message before it; an
    assistant's calls are all answered before the next non-tool message), and the shape of
    ``tools`` and ``stream_options``.
    """
    if not isinstance(body, Mapping):
        return Invalid(
            f"The request body must be a JSON object, got {_kind(body)}. "
            'Send Content-Type: application/json with {"model": ..., "messages": [...]}.'
        )
    for name in ("model", "messages"):
        if name not in body:
            return Invalid(
                f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
            )
    if not isinstance(body["model"], str) or not body["model"]:
        return Invalid(
            f"Invalid 'model': expected a non-empty string, got {body['model']!r}.", "model"
        )
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return Invalid(
            f"Invalid 'messages': expected a non-empty array of messages, got {_kind(messages)}.",
            "messages",
        )
    return (
        _check_messages(messages)
        or _check_tools(body.get("tools"))
        or _check_stream(body.get("stream"), body.get("stream_options"))
    )


def _check_messages(messages: Sequence[Any]) -> Invalid | None:
    pending: dict[str, None] = {}  # ids of the calls not answered yet, in order
    opener = -1  # index of the assistant message whose calls are pending
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            return Invalid(f"Invalid '{where}': expected an object, got {_kind(msg)}.", where)
        role = msg.get("role")
        if role not in _ROLES:
            allowed = ", ".join(repr(r) for r in _ROLES)
            return Invalid(
                f"Invalid value for '{where}.role': {role!r}. Supported values are: {allowed}.",
                f"{where}.role",
            )
        if role != "tool" and pending:
            return _unanswered(opener, pending, f"{where} is a {role!r} message")
        if role == "tool":
            problem = _check_tool_message(msg, where, pending, opener)
            if problem:
                return problem
            del pending[msg["tool_call_id"]]
            continue
        if role == "assistant":
            ids, problem = _assistant_call_ids(msg, where)
            if problem:
                return problem
            pending = dict.fromkeys(ids)
            opener = i if ids else -1
            continue
        opener = -1
        if not isinstance(msg.get("content"), str | list):
            return Invalid(
                f"Invalid type for '{where}.content': expected a string or an array of content "
                f"parts, got {_kind(msg.get('content'))}.",
                f"{where}.content",
            )
    if pending:
        return _unanswered(opener, pending, "the conversation ends there")
    return None


def _check_tool_message(
    msg: Mapping[str, Any], where: str, pending: Mapping[str, None], opener: int
) -> Invalid | None:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        return Invalid(
            f"Missing required parameter: '{where}.tool_call_id' (a 'tool' message must say "
            "which tool call it answers).",
            f"{where}.tool_call_id",
            "missing_required_parameter",
        )
    if not isinstance(msg.get("content"), str | list):
        return Invalid(
            f"Invalid type for '{where}.content': expected a string or an array of content "
            f"parts, got {_kind(msg.get('content'))}.",
            f"{where}.content",
        )
    if call_id in pending:
        return None
    if opener < 0:
        hint = "no assistant message with 'tool_calls' comes right before it"
    else:
        waiting = ", ".join(repr(p) for p in pending) or "none (all were answered already)"
        hint = f"the unanswered calls of messages[{opener}] are: {waiting}"
    return Invalid(
        f"Invalid parameter: {where} has role 'tool' with tool_call_id {call_id!r}, which does "
        f"not answer a tool call of the preceding assistant message; {hint}. Each 'tool' "
        "message must follow the assistant message whose 'tool_calls' it answers.",
        f"{where}.tool_call_id",
    )


def _assistant_call_ids(msg: Mapping[str, Any], where: str) -> tuple[list[str], Invalid | None]:
    calls = msg.get("tool_calls")
    if calls is None:
        return [], None
    if not isinstance(calls, list):
        return [], Invalid(
            f"Invalid type for '{where}.tool_calls': expected an array, got {_kind(calls)}.",
            f"{where}.tool_calls",
        )
    ids: list[str] = []
    for j, tc in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = tc.get("function") if isinstance(tc, Mapping) else None
        if not isinstance(tc, Mapping) or not isinstance(tc.get("id"), str) or not tc["id"]:
            return [], Invalid(f"Missing required parameter: '{at}.id'.", f"{at}.id")
        if tc.get("type") != "function" or not isinstance(fn, Mapping):
            return [], Invalid(
                f'Invalid \'{at}\': expected {{"type": "function", "function": {{"name", '
                f'"arguments"}}}}, got {json.dumps(tc)[:120]}.',
                at,
            )
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            return [], Invalid(
                f"Missing required parameter: '{at}.function.name'.", f"{at}.function.name"
            )
        if not isinstance(fn.get("arguments"), str):
            return [], Invalid(
                f"Invalid type for '{at}.function.arguments': expected a string (the arguments "
                f"JSON-encoded), got {_kind(fn.get('arguments'))}.",
                f"{at}.function.arguments",
            )
        ids.append(tc["id"])
    return ids, None


def _unanswered(opener: int, pending: Mapping[str, None], after: str) -> Invalid:
    missing = ", ".join(repr(p) for p in pending)
    return Invalid(
        f"Invalid parameter: messages[{opener}] is an assistant message with 'tool_calls' that "
        f"must be followed by a 'tool' message answering each tool_call_id, but {after} and "
        f"these calls have no answer: {missing}. Send one 'tool' message per call, right "
        "after the assistant message.",
        f"messages[{opener}].tool_calls",
    )


def _check_tools(tools: Any) -> Invalid | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return Invalid(f"Invalid type for 'tools': expected an array, got {_kind(tools)}.", "tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type") != "function"
            or not isinstance(fn, Mapping)
        ):
            return Invalid(
                f'Invalid \'tools[{i}]\': expected {{"type": "function", "function": '
                f'{{"name", "description", "parameters"}}}}, got {json.dumps(tool)[:120]}.',
                f"tools[{i}]",
            )
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            return Invalid(
                f"Missing required parameter: 'tools[{i}].function.name'.",
                f"tools[{i}].function.name",
                "missing_required_parameter",
            )
    return None


def _check_stream(stream: Any, options: Any) -> Invalid | None:
    if stream is not None and not isinstance(stream, bool):
        return Invalid(f"Invalid type for 'stream': expected a boolean, got {stream!r}.", "stream")
    if options is not None and not stream:
        return Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    return None


def _finish_reason(reply: ScriptedReply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _data_line(obj: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def _finishes(chunk: Mapping[str, Any]) -> bool:
    return any(choice.get("finish_reason") for choice in chunk.get("choices") or ())


def _chunk_choice(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def _usage_object(usage: Usage) -> dict[str, Any]:
    # prompt_tokens counts the cached tokens too, as OpenAI's does; OpenAI reports cache
    # reads only (usage.cache_write_tokens has no place here).
    body: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cache_read_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    return body


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / _CHARS_PER_TOKEN))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array" if value else "an empty array"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__
