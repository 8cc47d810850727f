"""The Anthropic Messages wire format, as the loopback server speaks it.

Pure functions from a request body and a scripted reply to the JSON the real Messages API
would send: the ``message`` object, the named server-sent events of a stream (whole, or broken
off as a :func:`~looplet.testing.cut_stream` asks), error bodies, a deterministic usage
estimate, and the validation of a request (the 400s the real API returns for a conversation
that does not alternate, a ``tool_use`` left unanswered, a missing ``max_tokens``...). No
sockets here; the OpenAI twin is :mod:`looplet.testing._wire`, the server
:mod:`looplet.testing._server`.

A scripted call whose arguments are not a JSON object (``call("greet", '{"name": "Al')``) is
sent with the raw string as its ``input`` (and, streamed, as its ``partial_json`` pieces): the
real API always sends an object, but a broken or cut-off model output is what such a script
item is for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from looplet.testing._script import ScriptedCall, ScriptedReply, StreamCut

# Token estimates and value descriptions are the OpenAI wire module's: one rule for both APIs.
from looplet.testing._wire import Invalid, _kind, _tokens, pieces
from looplet.types import Usage

__all__ = [
    "MESSAGES_PATH",
    "encode_events",
    "error_body",
    "error_type",
    "estimate_usage",
    "message_object",
    "stream_body",
    "stream_events",
    "tool_use_ids",
    "usage_fields",
    "validate_messages_body",
]

#: The endpoint, relative to the server's root (the Anthropic SDK's ``base_url``).
MESSAGES_PATH = "/v1/messages"

# The error types of Anthropic's API by status; "server_error" (error_reply's default, an
# OpenAI name) is replaced by these so that a script written once serves both APIs.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking"})


def error_type(status: int, scripted: str | None) -> str:
    """The Anthropic ``error.type`` for a scripted error (its own type unless the default)."""
    if scripted and scripted != "server_error":
        return scripted
    return _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(type: str, message: str, request_id: str) -> dict[str, Any]:
    """The JSON body of an Anthropic error response."""
    return {"type": "error", "error": {"type": type, "message": message}, "request_id": request_id}


def estimate_usage(body: Mapping[str, Any], reply: ScriptedReply) -> Usage:
    """Token counts estimated from sizes (about four characters a token), deterministically.

    The input side counts ``system``, ``messages`` and ``tools`` (not ``stream`` and the
    like, so a streamed and a plain request agree); the output side the reply's text, call
    names and argument strings.
    """
    prompt = json.dumps(
        [body.get("system"), body.get("messages"), body.get("tools")],
        sort_keys=True,
        ensure_ascii=False,
    )
    output = len(reply.text) + sum(len(c.name) + len(c.arguments) for c in reply.tool_calls)
    return Usage(_tokens(len(prompt)), _tokens(output))


def tool_use_ids(reply: ScriptedReply, number: int) -> tuple[str, ...]:
    """The ids of a reply's calls: the scripted id, else ``toolu_<number>_<i>``."""
    return tuple(c.id or f"toolu_{number}_{i}" for i, c in enumerate(reply.tool_calls))


def message_object(
    reply: ScriptedReply, *, number: int, model: str, usage: Usage
) -> dict[str, Any]:
    """The non-streaming ``message`` object for reply ``number`` (1-based).

    A text block comes first when the reply has text (or nothing else), then one
    ``tool_use`` block per call; ``stop_reason`` is ``"tool_use"`` or ``"end_turn"``.
    """
    content: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    for call_id, c in zip(tool_use_ids(reply, number), reply.tool_calls, strict=True):
        content.append({"type": "tool_use", "id": call_id, "name": c.name, "input": _input(c)})
    return {
        **_message_head(number, model),
        "content": content,
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": {**usage_fields(usage), "output_tokens": usage.output_tokens},
    }


def stream_events(
    reply: ScriptedReply, *, number: int, model: str, usage: Usage
) -> list[dict[str, Any]]:
    """The events of a streamed reply, in order, each with its ``type``.

    ``message_start`` (no content yet, the input tokens and any cache figures), a ``ping``,
    then per content block ``content_block_start``, its deltas (``text_delta`` pieces; for a
    call an empty ``input`` and its JSON in ``input_json_delta`` pieces, at least two when it
    is two characters or longer) and ``content_block_stop``; then ``message_delta`` with the
    ``stop_reason`` and the output tokens, and ``message_stop``.
    """
    start = {
        **_message_head(number, model),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage_fields(usage), "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if reply.text or not reply.tool_calls:
        deltas = [{"type": "text_delta", "text": p} for p in pieces(reply.text)]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for call_id, c in zip(tool_use_ids(reply, number), reply.tool_calls, strict=True):
        head = {"type": "tool_use", "id": call_id, "name": c.name, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(c.arguments)]
        blocks.append((head, deltas))
    for index, (head, deltas) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": head})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
            "usage": {"output_tokens": usage.output_tokens},
        }
    )
    events.append({"type": "message_stop"})
    return events


def usage_fields(usage: Usage) -> dict[str, int]:
    """The input side of Anthropic's ``usage`` for ``usage``.

    Anthropic counts cached input apart: ``input_tokens`` is the part neither read from
    nor written to the cache (:attr:`~looplet.types.Usage.uncached_input_tokens`), and
    ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` carry
    ``usage.cache_read_tokens`` and ``usage.cache_write_tokens``; those two are sent when
    either is not zero (a reply without cache figures keeps the plain form).
    """
    fields = {"input_tokens": usage.uncached_input_tokens}
    if usage.cache_read_tokens or usage.cache_write_tokens:
        fields["cache_creation_input_tokens"] = usage.cache_write_tokens
        fields["cache_read_input_tokens"] = usage.cache_read_tokens
    return fields


def encode_events(events: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """Each event as server-sent-event bytes: an ``event:`` line named by its type, and
    its JSON on a ``data:`` line (the SDK skips events without the ``event:`` line)."""
    return [
        f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n".encode()
        for e in events
    ]


def stream_body(events: Sequence[Mapping[str, Any]], cut: StreamCut | None = None) -> list[bytes]:
    """The server-sent events of a stream, encoded (:func:`encode_events`).

    With ``cut``, what a :func:`~looplet.testing.cut_stream` sends instead: its first
    ``cut.after`` events, then for ``"error"`` an ``event: error`` (an ``overloaded_error``,
    the error a real stream most often ends with), for ``"no_finish"`` nothing more (the
    ``message_stop`` is left out), for ``"cut"`` nothing: closing the connection is the
    server's part.
    """
    if cut is None:
        return encode_events(events)
    if cut.ending == "no_finish":
        sent = [e for e in events if e["type"] != "message_stop"][: cut.after]
        return encode_events(sent)
    sent = list(events[: cut.after])
    if cut.ending == "error":
        message = f"Overloaded (scripted: cut_stream after {len(sent)} events)"
        sent.append({"type": "error", "error": {"type": "overloaded_error", "message": message}})
    return encode_events(sent)


def validate_messages_body(body: Any) -> Invalid | None:
    """Why the real API would reject this Messages request with 400, or ``None``.

    Checks the required fields (``model``, ``max_tokens``, ``messages``), that ``system`` is
    top-level and not a message role, that the roles alternate starting with ``user``, each
    content block's shape, the ``tool_use``/``tool_result`` pairing (every call of an
    assistant turn answered in the next user message, its results first, no result for an
    unknown call), and the shape of ``tools`` and ``stream``.
    """
    if not isinstance(body, Mapping):
        return Invalid(
            f"The request body must be a JSON object, got {_kind(body)}. Send Content-Type: "
            'application/json with {"model": ..., "max_tokens": ..., "messages": [...]}.'
        )
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return Invalid(f"{name}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        return Invalid(f"model: expected a non-empty string, got {_kind(body['model'])}")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return Invalid(f"max_tokens: expected an integer of at least 1, got {max_tokens!r}")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return Invalid(f"messages: expected a non-empty array of messages, got {_kind(messages)}")
    return (
        _check_system(body.get("system"))
        or _check_messages(messages)
        or _check_tools(body.get("tools"))
        or _check_stream(body.get("stream"))
    )


def _check_system(system: Any) -> Invalid | None:
    if system is None or isinstance(system, str):
        return None
    if isinstance(system, list) and all(
        isinstance(b, Mapping) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        return None
    return Invalid(f"system: expected a string or an array of text blocks, got {_kind(system)}")


def _check_messages(messages: Sequence[Any]) -> Invalid | None:
    pending: list[str] = []  # the tool_use ids of the assistant message just before
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, Mapping):
            return Invalid(f"{where}: expected an object, got {_kind(msg)}")
        role = msg.get("role")
        problem = _check_role(messages, i, role)
        if problem:
            return problem
        blocks, problem = _content_blocks(msg, where, str(role), last=i == len(messages) - 1)
        if problem:
            return problem
        if role == "user":
            problem = _check_answers(blocks, where, pending, i - 1)
            if problem:
                return problem
            pending = []
        else:
            pending = [b["id"] for b in blocks if b["type"] == "tool_use"]
    if pending:
        return _unanswered(len(messages) - 1, pending, "the conversation ends there")
    return None


def _check_role(messages: Sequence[Any], i: int, role: Any) -> Invalid | None:
    where = f"messages.{i}.role"
    if role == "system":
        return Invalid(
            f'{where}: unexpected role "system". The Messages API takes the system prompt as '
            "the top-level `system` parameter, not as a message: move it there."
        )
    if role not in ("user", "assistant"):
        return Invalid(f'{where}: expected "user" or "assistant", got {role!r}')
    if i == 0 and role != "user":
        return Invalid(f'{where}: the first message must use the "user" role, got {role!r}')
    previous = messages[i - 1] if i else None
    if isinstance(previous, Mapping) and previous.get("role") == role:
        return Invalid(
            f'messages: roles must alternate between "user" and "assistant", but messages.'
            f'{i - 1} and messages.{i} are both "{role}". Put consecutive content of one role '
            "in one message (a list of content blocks)."
        )
    return None


def _content_blocks(
    msg: Mapping[str, Any], where: str, role: str, *, last: bool
) -> tuple[list[Mapping[str, Any]], Invalid | None]:
    content = msg.get("content")
    if isinstance(content, str):
        blocks: list[Mapping[str, Any]] = [{"type": "text", "text": content}] if content else []
    elif isinstance(content, list):
        blocks = content
    else:
        return [], Invalid(
            f"{where}.content: expected a string or an array of content blocks, got "
            f"{_kind(content)}"
        )
    if not blocks and not (last and role == "assistant"):
        return [], Invalid(
            f"{where}: all messages must have non-empty content except for the optional final "
            "assistant message"
        )
    for j, block in enumerate(blocks):
        problem = _check_block(block, f"{where}.content.{j}", role)
        if problem:
            return [], problem
    return blocks, None


def _check_block(block: Any, where: str, role: str) -> Invalid | None:
    kind = block.get("type") if isinstance(block, Mapping) else None
    if kind not in _BLOCK_TYPES:
        allowed = ", ".join(sorted(_BLOCK_TYPES))
        return Invalid(f"{where}: expected a content block with a type ({allowed}), got {block!r}")
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        return Invalid(f"{where}.text: text content blocks must be non-empty strings")
    if kind == "tool_use":
        if role != "assistant":
            return Invalid(f"{where}: `tool_use` blocks may only appear in assistant messages")
        if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
            return Invalid(
                f"{where}.id: expected an id matching {_TOOL_ID.pattern}, got {block.get('id')!r}"
            )
        if not isinstance(block.get("name"), str) or not block["name"]:
            return Invalid(f"{where}.name: Field required")
        if not isinstance(block.get("input"), Mapping):
            return Invalid(f"{where}.input: expected an object, got {_kind(block.get('input'))}")
    if kind == "tool_result":
        if role != "user":
            return Invalid(f"{where}: `tool_result` blocks may only appear in user messages")
        if not isinstance(block.get("tool_use_id"), str) or not block["tool_use_id"]:
            return Invalid(f"{where}.tool_use_id: Field required")
        if not isinstance(block.get("content", ""), str | list):
            return Invalid(f"{where}.content: expected a string or an array of content blocks")
        if not isinstance(block.get("is_error", False), bool):
            return Invalid(f"{where}.is_error: expected a boolean")
    return None


def _check_answers(
    blocks: Sequence[Mapping[str, Any]], where: str, pending: Sequence[str], opener: int
) -> Invalid | None:
    results = [b for b in blocks if b["type"] == "tool_result"]
    for j, block in enumerate(blocks):
        if block["type"] != "tool_result":
            continue
        if block["tool_use_id"] not in pending:
            waiting = ", ".join(pending) or "none"
            return Invalid(
                f"{where}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                f"`tool_use` block in the previous message (its tool_use ids: {waiting})."
            )
        if j >= len(results):
            return Invalid(
                f"{where}.content: `tool_result` blocks must come first in the content of a "
                f"user message, before any other block; content.{j} comes after another block."
            )
    answered = {b["tool_use_id"] for b in results}
    missing = [p for p in pending if p not in answered]
    if missing:
        return _unanswered(opener, missing, f"{where} does not answer them")
    return None


def _unanswered(opener: int, missing: Sequence[str], after: str) -> Invalid:
    return Invalid(
        f"messages.{opener}: `tool_use` ids were found without `tool_result` blocks "
        f"immediately after: {', '.join(missing)}; {after}. Each `tool_use` block must have a "
        "corresponding `tool_result` block in the next message."
    )


def _check_tools(tools: Any) -> Invalid | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return Invalid(f"tools: expected an array, got {_kind(tools)}")
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            return Invalid(f"tools.{i}: expected an object, got {_kind(tool)}")
        if tool.get("type", "custom") not in (None, "custom"):
            continue  # a server tool (web_search...): its own shape, not checked here
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            return Invalid(
                f"tools.{i}.name: expected a name matching {_TOOL_NAME.pattern}, got {name!r}"
            )
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping):
            return Invalid(f"tools.{i}.input_schema: Field required")
        if schema.get("type") != "object":
            return Invalid(
                f"tools.{i}.input_schema.type: expected 'object', got {schema.get('type')!r}"
            )
    return None


def _check_stream(stream: Any) -> Invalid | None:
    if stream is None or isinstance(stream, bool):
        return None
    return Invalid(f"stream: expected a boolean, got {stream!r}")


def _message_head(number: int, model: str) -> dict[str, Any]:
    return {"id": f"msg_scripted_{number}", "type": "message", "role": "assistant", "model": model}


def _stop_reason(reply: ScriptedReply) -> str:
    return "tool_use" if reply.tool_calls else "end_turn"


def _input(c: ScriptedCall) -> Any:
    text = c.arguments
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text
