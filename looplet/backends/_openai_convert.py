"""Pure translation between looplet's neutral types and OpenAI's Chat Completions format.

Messages and tool schemas go out as OpenAI request JSON; a ``ChatCompletion`` comes back as an
:class:`~looplet.backends.base.LLMResponse`; an SDK exception becomes an
:class:`~looplet.errors.LLMError`. Nothing here performs I/O or sleeps, so the sync and async
backends in :mod:`looplet.backends.openai` share every line of it. These functions are public
through that module; import them from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from looplet.backends._sdk import sdk_llm_error
from looplet.backends.base import LLMRequest, LLMResponse, ToolSchema
from looplet.errors import LLMError
from looplet.parse import tool_call_from_openai
from looplet.types import ToolCall, Usage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

    from looplet.messages import Message

__all__ = [
    "as_str",
    "build_request_kwargs",
    "from_openai_completion",
    "to_llm_error",
    "to_openai_messages",
    "to_openai_tools",
    "usage_from_openai",
]

_EMPTY_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation as OpenAI ``messages``.

    An assistant turn's tool calls become ``{"id", "type": "function", "function": {"name",
    "arguments"}}``, with the arguments echoed exactly as the model sent them when they were
    kept (so a malformed call is shown back unchanged), else re-encoded as JSON. Its content is
    ``None`` when it only calls tools, as OpenAI expects. A tool result becomes
    ``{"role": "tool", "tool_call_id", "content"}``.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "content": message.content,
                }
            )
        elif message.role == "assistant" and message.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [_openai_tool_call(call) for call in message.tool_calls],
                }
            )
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def _openai_tool_call(call: ToolCall) -> dict[str, Any]:
    arguments = call.raw_arguments if call.raw_arguments is not None else json.dumps(call.args)
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.tool, "arguments": arguments},
    }


def to_openai_tools(schemas: Sequence[ToolSchema]) -> list[dict[str, Any]]:
    """Tool schemas (``{"name", "description", "parameters"}``) as OpenAI function tools.

    A schema without ``parameters`` is offered as taking no arguments.
    """
    return [
        {
            "type": "function",
            "function": {
                "name": schema["name"],
                "description": schema.get("description", ""),
                "parameters": dict(schema.get("parameters") or _EMPTY_PARAMETERS),
            },
        }
        for schema in schemas
    ]


def build_request_kwargs(
    request: LLMRequest, model: str, *, default_max_tokens: int = 2000, **defaults: Any
) -> dict[str, Any]:
    """The keyword arguments for ``client.chat.completions.create`` for ``request``.

    ``defaults`` (``top_p``, ``tool_choice``, ``timeout``...) are passed through; the request's
    own values win over them. ``temperature`` is sent only when the request sets one (or a
    default does), so the provider's default applies otherwise; ``tools`` only when offered.

    Example::

        kwargs = build_request_kwargs(LLMRequest([Message.user("hi")]), "gpt-4o-mini")
        completion = client.chat.completions.create(**kwargs)
    """
    kwargs: dict[str, Any] = dict(defaults)
    kwargs["model"] = model
    kwargs["messages"] = to_openai_messages(request.messages)
    kwargs["max_tokens"] = request.max_tokens or default_max_tokens
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.tools:
        kwargs["tools"] = to_openai_tools(request.tools)
    return kwargs


def from_openai_completion(completion: ChatCompletion) -> LLMResponse:
    """An OpenAI ``ChatCompletion`` as an :class:`LLMResponse` (first choice only).

    Tool-call arguments are decoded by :func:`looplet.parse.tool_call_from_openai`: arguments
    that are not valid JSON give a :class:`ToolCall` with ``parse_error`` and
    ``raw_arguments`` set instead of raising, so the loop can tell the model. The message's
    text, when it comes with calls, is their ``reasoning``: every call of the turn gets the
    whole text, as the JSON-text protocol's ``"theory"`` is shared by a batch.
    """
    tokens = usage_from_openai(completion.usage)
    model = as_str(completion.model)
    if not completion.choices:
        return LLMResponse(usage=tokens, model=model)
    choice = completion.choices[0]
    message = choice.message
    text = as_str(message.content)
    calls = tuple(_looplet_tool_call(tc, text) for tc in message.tool_calls or ())
    return LLMResponse(
        text=text,
        tool_calls=calls,
        usage=tokens,
        finish_reason=as_str(choice.finish_reason),
        model=model,
    )


def usage_from_openai(usage: Any) -> Usage:
    """An OpenAI ``usage`` object (of a completion or of a stream's last chunk) as a Usage.

    ``prompt_tokens`` already counts the cached tokens; ``prompt_tokens_details.cached_tokens``
    (those read from OpenAI's automatic prompt cache) becomes ``cache_read_tokens``. OpenAI
    reports no cache writes. ``None`` (a server that reports no usage) gives zero tokens.
    """
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    cached = _int(getattr(details, "cached_tokens", 0)) if details is not None else 0
    prompt = _int(usage.prompt_tokens)
    return Usage(prompt, _int(usage.completion_tokens), min(cached, prompt))


# The SDK builds replies without validating them, so a field an OpenAI-compatible server sends
# as null (or leaves out) arrives as None whatever its declared type.
def as_str(value: object) -> str:
    """``value`` if it is a string, else ``""`` (a field sent as null or left out)."""
    return value if isinstance(value, str) else ""


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _looplet_tool_call(tool_call: Any, reasoning: str) -> ToolCall:
    # Function calls carry ``.function``; the SDK's other variant (custom tools) carries
    # ``.custom`` with free-form ``input``. looplet only offers function tools, but an
    # OpenAI-compatible server may still answer with either, so neither is assumed.
    function = getattr(tool_call, "function", None)
    if function is not None:
        name, arguments = function.name, function.arguments
    else:
        custom = tool_call.custom
        name, arguments = custom.name, custom.input
    return tool_call_from_openai(name, arguments, tool_call.id or "", reasoning=reasoning)


def to_llm_error(exc: Exception, attempts: int, *, provider: str = "openai") -> LLMError:
    """The :class:`LLMError` for an exception raised by the OpenAI SDK.

    An HTTP error keeps its status and the provider's own message (``error.message`` from the
    body when there is one) and is retriable when :meth:`RetryPolicy.is_retriable` says so; a
    time-out has ``kind="timeout"`` and a failed connection ``kind="connection_error"``, both
    retriable and without a status. Any other exception is wrapped as not retriable.

    Args:
        exc: the exception the SDK raised.
        attempts: how many requests were sent, this one included.
        provider: the name shown in the error (``"ollama"`` for an OpenAI-compatible server).
    """
    import openai

    return sdk_llm_error(
        openai,
        exc,
        attempts,
        provider=provider,
        status_error=lambda error: (error.status_code, _provider_message(error)),
    )


def _provider_message(exc: Any) -> str:
    # The SDK stores the body's "error" member when the body is a JSON object with one, the
    # whole body otherwise, and the raw text when it is not JSON; compatible servers use all
    # three shapes ({"error": {"message": ...}}, {"error": "..."}, plain text).
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            if isinstance(message, str) and message:
                return message
        elif isinstance(inner, str) and inner:
            return inner
    if isinstance(body, str) and body.strip():
        return body.strip()
    return str(exc.message)
