"""Pure translation between looplet's neutral types and Anthropic's Messages format.

Messages and tool schemas go out as Messages API request JSON; a ``Message`` comes back as an
:class:`~looplet.backends.base.LLMResponse`; an SDK exception becomes an
:class:`~looplet.errors.LLMError`. Nothing here performs I/O or sleeps, so the sync and async
backends in :mod:`looplet.backends.anthropic` share every line of it; the assembling of a
streamed reply is in :mod:`looplet.backends._anthropic_stream`. These functions are public
through :mod:`looplet.backends.anthropic`; import them from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from looplet.backends._sdk import retry_after, sdk_llm_error
from looplet.backends._streaming import broken_connection_error
from looplet.backends.base import LLMRequest, LLMResponse, ToolSchema
from looplet.errors import ConfigurationError, LLMError
from looplet.parse import tool_call_from_openai
from looplet.types import ToolCall, Usage

if TYPE_CHECKING:
    from anthropic.types import Message as AnthropicMessage

    from looplet.messages import Message

__all__ = [
    "build_request_kwargs",
    "from_anthropic_message",
    "place_cache_controls",
    "reasoning_of_turn",
    "retry_after",
    "to_anthropic_messages",
    "to_anthropic_tools",
    "to_llm_error",
    "tool_call_from_anthropic",
    "usage_from_anthropic",
]

_EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}
# An error sent inside a stream (``event: error``) arrives on a 200 response; its type says
# which HTTP status it stands for, and so whether it is worth retrying.
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def to_anthropic_messages(
    messages: Sequence[Message],
    *,
    cache_at: int = -1,
    cache_control: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The conversation (without its system messages) as Anthropic ``messages``.

    The Messages API wants user and assistant turns strictly alternating, so consecutive
    messages that map to one role are merged into one message of several content blocks:
    the ``tool`` results of a turn become ONE user message of ``tool_result`` blocks
    (``is_error: true`` for a failure), and a user message that follows them (the context a
    hook adds) joins it as a text block after the results, where the API wants them. An
    assistant turn's calls become ``tool_use`` blocks after its text, with ``input`` = the
    call's arguments (``{}`` for a call whose arguments could not be parsed). Empty text is
    left out (the API rejects empty text blocks), and a message left with no content at
    all is dropped. A message of a single text block is sent as a plain string.

    With ``cache_control``, the last block of ``messages[cache_at]`` carries it (a prompt
    cache breakpoint; see :func:`place_cache_controls`).
    """
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _content_blocks(message)
        if not blocks:
            continue
        if i == cache_at and cache_control is not None:
            blocks[-1]["cache_control"] = dict(cache_control)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        # tool_result blocks must open a user message; sorted() keeps each group's order.
        content.sort(key=lambda block: block["type"] != "tool_result")
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]
    return turns


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.content,
        }
        if message.is_error:
            block["is_error"] = True
        return [block]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    if message.role == "assistant":
        blocks += [
            {
                "type": "tool_use",
                "id": call.call_id,
                "name": call.tool,
                "input": {} if call.parse_error is not None else dict(call.args),
            }
            for call in message.tool_calls
        ]
    return blocks


def to_anthropic_tools(schemas: Sequence[ToolSchema]) -> list[dict[str, Any]]:
    """Tool schemas (``{"name", "description", "parameters"}``) as Anthropic tools
    (``{"name", "description", "input_schema"}``); no ``parameters`` means no arguments."""
    return [
        {
            "name": schema["name"],
            "description": schema.get("description", ""),
            "input_schema": dict(schema.get("parameters") or _EMPTY_SCHEMA),
        }
        for schema in schemas
    ]


def build_request_kwargs(
    request: LLMRequest,
    model: str,
    *,
    default_max_tokens: int = 2000,
    send_temperature: bool = True,
    **defaults: Any,
) -> dict[str, Any]:
    """The keyword arguments for ``client.messages.create`` for ``request``.

    The system messages, joined, become the top-level ``system`` (left out when there are
    none). ``defaults`` (``tool_choice``, ``metadata``, ``timeout``...) are passed through
    as given; the request's own values win over them. The request's ``temperature`` is sent
    only when it sets one and ``send_temperature`` is true: the ``messages.create`` of the
    ``anthropic`` SDK has no such parameter from 1.0 on, and the backends pass ``False`` there.
    With ``request.cache`` set, :func:`place_cache_controls` marks its breakpoints.

    Example::

        kwargs = build_request_kwargs(LLMRequest([Message.user("hi")]), "claude-sonnet-5-5")
        message = client.messages.create(**kwargs)
    """
    kwargs: dict[str, Any] = dict(defaults)
    kwargs["model"] = model
    kwargs["max_tokens"] = request.max_tokens or default_max_tokens
    if request.cache is None:  # else place_cache_controls converts them, marked
        kwargs["messages"] = to_anthropic_messages(request.messages)
    system = request.system_prompt
    if system:
        kwargs["system"] = system
    if request.temperature is not None and send_temperature:
        kwargs["temperature"] = request.temperature
    if request.tools:
        kwargs["tools"] = to_anthropic_tools(request.tools)
    if request.cache is not None:
        place_cache_controls(kwargs, request)
    return kwargs


def place_cache_controls(kwargs: dict[str, Any], request: LLMRequest) -> None:
    """Mark the breakpoints of ``request.cache`` in ``kwargs`` (from
    :func:`build_request_kwargs`) with ``cache_control``, and set its ``messages``.

    The system messages are sent as one text block each (instead of one joined string), so
    that the system prompt and the memory can each end a cached prefix; the tool-schema
    breakpoint goes on the last tool, and the conversation's on the last block of the
    message :func:`looplet.cache.breakpoint_positions` picks (the last tool result or
    assistant message). See :class:`looplet.cache.CachePolicy`.
    """
    from looplet.cache import CachePolicy, breakpoint_positions

    policy = request.cache
    if not isinstance(policy, CachePolicy):
        raise ConfigurationError(
            f"LLMRequest.cache (LoopConfig.cache_policy) must be a looplet.cache.CachePolicy "
            f"or None, got {policy!r}; e.g. LoopConfig(cache_policy=CachePolicy())"
        )
    control = policy.control.to_anthropic()
    marked = dict(breakpoint_positions(request.messages, request.tools, policy))
    marked_system = {marked.get("system_prompt"), marked.get("memory")}
    blocks: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        if message.role == "system" and message.content:
            block: dict[str, Any] = {"type": "text", "text": message.content}
            if i in marked_system:
                block["cache_control"] = dict(control)
            blocks.append(block)
    if blocks:
        kwargs["system"] = blocks
    if "tool_schemas" in marked:
        kwargs["tools"][-1]["cache_control"] = dict(control)
    kwargs["messages"] = to_anthropic_messages(
        request.messages, cache_at=marked.get("conversation", -1), cache_control=control
    )


def from_anthropic_message(message: AnthropicMessage) -> LLMResponse:
    """An Anthropic ``Message`` as an :class:`LLMResponse`.

    The text is the text blocks joined; each ``tool_use`` block becomes a :class:`ToolCall`
    with ``args`` = its ``input`` and ``reasoning`` = :func:`reasoning_of_turn` of the
    reply's thinking and text. Blocks of other kinds (redacted thinking, server tools) are
    not part of the neutral reply and are skipped; thinking shows only in ``reasoning``.
    """
    texts: list[str] = []
    thinking: list[str] = []
    uses: list[Any] = []
    for block in message.content or ():
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(_str(getattr(block, "text", "")))
        elif kind == "thinking":
            thinking.append(_str(getattr(block, "thinking", "")))
        elif kind == "tool_use":
            uses.append(block)
    text = "".join(texts)
    reasoning = reasoning_of_turn(thinking, text)
    calls = tuple(
        tool_call_from_anthropic(
            _str(getattr(block, "name", "")),
            getattr(block, "input", None),
            _str(getattr(block, "id", "")),
            reasoning=reasoning,
        )
        for block in uses
    )
    return LLMResponse(
        text=text,
        tool_calls=calls,
        usage=usage_from_anthropic(message.usage),
        finish_reason=_str(message.stop_reason),
        model=_str(message.model),
    )


def reasoning_of_turn(thinking: Sequence[str], text: str) -> str:
    """The ``reasoning`` every call of an Anthropic turn gets: the turn's thinking, then its
    text.

    ``thinking`` is the ``thinking`` text of the turn's thinking blocks, in order; ``text``
    is the reply's text (its text blocks joined). The non-empty ones are joined with a blank
    line between them. All calls of a turn share it, as a JSON-text batch shares its
    ``"theory"``; redacted thinking has no readable text and is not part of it.
    """
    return "\n\n".join(part for part in (*thinking, text) if part)


def tool_call_from_anthropic(
    name: str, arguments: object, call_id: str, *, reasoning: str = ""
) -> ToolCall:
    """A :class:`ToolCall` from a ``tool_use``'s ``input``: an object, or the JSON text of a
    streamed one. Anything that is not (or does not decode to) an object gives a call with
    ``parse_error`` set and ``raw_arguments`` holding what was sent, which is never run.

    A call decoded from text equals the one built from the same object, so a streamed reply
    and a whole one give equal responses. ``reasoning`` is the text written alongside it.
    """
    if isinstance(arguments, Mapping):
        return tool_call_from_openai(name, arguments, call_id, reasoning=reasoning)
    if isinstance(arguments, str):
        call = tool_call_from_openai(name, arguments, call_id, reasoning=reasoning)
        if call.parse_error is None:
            return tool_call_from_openai(name, call.args, call_id, reasoning=reasoning)
        return call
    raw = json.dumps(arguments, default=repr)
    return ToolCall(
        name,
        reasoning=reasoning,
        call_id=call_id,
        raw_arguments=raw,
        parse_error=f"input must be a JSON object, got {type(arguments).__name__}: {raw[:80]}",
    )


def usage_from_anthropic(usage: Any) -> Usage:
    """Anthropic ``usage`` as a :class:`Usage`; ``None`` gives zero tokens.

    Anthropic counts the cached input apart from ``input_tokens``: ``cache_read_input_tokens``
    (read from the cache) and ``cache_creation_input_tokens`` (written to it). They become
    ``cache_read_tokens`` and ``cache_write_tokens``, and ``input_tokens`` is the sum of the
    three, the whole prompt, as OpenAI counts it.
    """
    if usage is None:
        return Usage()
    read = _int(getattr(usage, "cache_read_input_tokens", 0))
    written = _int(getattr(usage, "cache_creation_input_tokens", 0))
    return Usage(
        _int(usage.input_tokens) + read + written, _int(usage.output_tokens), read, written
    )


def to_llm_error(exc: Exception, attempts: int, *, provider: str = "anthropic") -> LLMError:
    """The :class:`LLMError` for an exception raised while calling the ``anthropic`` SDK.

    An HTTP error keeps its status and Anthropic's own message (``error.message`` of the
    body) and is retriable when :meth:`RetryPolicy.is_retriable` says so (429, 5xx, 529
    overloaded). An error event inside a stream is given the status its type stands for
    (``overloaded_error``: 529). A time-out has ``kind="timeout"``, a failed connection
    ``kind="connection_error"``, both retriable and without a status. A reply the SDK cannot
    read is ``kind="invalid_response"``, not retriable. Any other exception is one raised
    while the stream was being read (the connection broke): a retriable connection error.

    Args:
        exc: the exception.
        attempts: how many requests were sent, this one included.
        provider: the name shown in the error.
    """
    import anthropic

    if not isinstance(exc, anthropic.APIError):
        return broken_connection_error(provider, exc, attempts)
    return sdk_llm_error(anthropic, exc, attempts, provider=provider, status_error=_status_error)


def _status_error(exc: Any) -> tuple[int | None, str]:
    # An error event inside a stream arrives on a 200 response; its type gives the status.
    status: int | None = exc.status_code
    if status is None or status < 400:
        status = _STATUS_OF_ERROR_TYPE.get(_error_field(exc.body, "type"), 500)
    return status, _provider_message(exc)


def _provider_message(exc: Any) -> str:
    # The body is {"type": "error", "error": {"type", "message"}} from Anthropic; a proxy may
    # send plain text instead, which the SDK keeps as a string.
    message = _error_field(exc.body, "message")
    if message:
        return message
    body = exc.body
    if isinstance(body, str) and body.strip():
        return body.strip()
    return str(exc.message)


def _error_field(body: object, name: str) -> str:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return _str(inner.get(name))
    return ""


# The SDK builds replies without validating them, so a field a compatible server leaves out
# (or sends as null) arrives as None whatever its declared type.
def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
