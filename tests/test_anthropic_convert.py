"""The Anthropic backends' pure conversions: messages and tools out, replies and errors in."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
from anthropic.types import Message as AnthropicMessage

from looplet.backends.anthropic import (
    build_request_kwargs,
    from_anthropic_message,
    to_anthropic_messages,
    to_anthropic_tools,
    to_llm_error,
)
from looplet.backends.base import LLMRequest
from looplet.messages import Message
from looplet.types import Usage
from tests._anthropic import (
    EXPECTED_MESSAGES,
    GREET_SCHEMA,
    conversation,
)

# --- pure conversions ------------------------------------------------------------------------

# --- pure conversions ------------------------------------------------------------------------


def test_conversation_converts_to_alternating_anthropic_messages() -> None:
    assert to_anthropic_messages(conversation()) == EXPECTED_MESSAGES


def test_empty_assistant_turn_is_dropped_and_its_neighbours_merged() -> None:
    messages = [Message.user("one"), Message.assistant(""), Message.user("two")]
    assert to_anthropic_messages(messages) == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        }
    ]


def test_request_kwargs_put_the_joined_system_prompt_top_level() -> None:
    request = LLMRequest(conversation(), tools=[GREET_SCHEMA], max_tokens=0, temperature=0.5)
    kwargs = build_request_kwargs(
        request, "claude-x", default_max_tokens=321, send_temperature=False, top_k=3
    )
    assert kwargs == {
        "model": "claude-x",
        "max_tokens": 321,
        "system": "You greet people.\n\nBe brief.",
        "messages": EXPECTED_MESSAGES,
        "tools": to_anthropic_tools([GREET_SCHEMA]),
        "top_k": 3,
    }
    assert build_request_kwargs(request, "m")["temperature"] == 0.5
    bare = build_request_kwargs(LLMRequest([Message.user("hi")], max_tokens=9), "m")
    assert set(bare) == {"model", "max_tokens", "messages"}


def test_tool_schemas_convert_to_input_schema_tools() -> None:
    assert to_anthropic_tools([GREET_SCHEMA, {"name": "done"}]) == [
        {
            "name": "greet",
            "description": "Greet someone by name.",
            "input_schema": GREET_SCHEMA["parameters"],
        },
        {"name": "done", "description": "", "input_schema": {"type": "object", "properties": {}}},
    ]


def _message(content: list[dict[str, Any]], **usage: int) -> AnthropicMessage:
    return AnthropicMessage.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": content,
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 7, **usage},
        }
    )


def test_message_converts_to_response_with_joined_text_calls_and_cached_usage() -> None:
    message = _message(
        [
            {"type": "text", "text": "Greeting "},
            {"type": "tool_use", "id": "toolu_9", "name": "greet", "input": {"name": "Alice"}},
            {"type": "text", "text": "Alice."},
        ],
        cache_read_input_tokens=100,
        cache_creation_input_tokens=5,
    )
    response = from_anthropic_message(message)
    [greet] = response.tool_calls
    assert (response.text, response.finish_reason, response.model) == (
        "Greeting Alice.",
        "tool_use",
        "claude-test",
    )
    assert response.usage == Usage(115, 7, 100, 5)
    assert (greet.tool, greet.args, greet.call_id, greet.parse_error) == (
        "greet",
        {"name": "Alice"},
        "toolu_9",
        None,
    )


def _status_error(status: int, body: object) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    response = httpx2.Response(status, request=request)
    return anthropic.APIStatusError(f"Error code: {status}", response=response, body=body)


def test_errors_keep_anthropics_message_and_retriability() -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
    auth = to_llm_error(_status_error(401, body), 1)
    overloaded = to_llm_error(_status_error(529, {"error": {"message": "Overloaded"}}), 2)
    assert (auth.provider, auth.status, auth.retriable, auth.provider_message) == (
        "anthropic",
        401,
        False,
        "bad key",
    )
    assert (overloaded.status, overloaded.retriable, overloaded.attempts) == (529, True, 2)


def test_error_event_inside_a_stream_gets_the_status_of_its_type() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = to_llm_error(_status_error(200, body), 1)
    assert (error.status, error.retriable, error.provider_message) == (529, True, "Overloaded")


def test_timeouts_connection_and_transport_errors_are_retriable_without_status() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    timeout = to_llm_error(anthropic.APITimeoutError(request), 1)
    refused = to_llm_error(anthropic.APIConnectionError(request=request), 1)
    cut = to_llm_error(httpx2.RemoteProtocolError("peer closed connection"), 1)
    assert [(e.kind, e.status, e.retriable) for e in (timeout, refused, cut)] == [
        ("timeout", None, True),
        ("connection_error", None, True),
        ("connection_error", None, True),
    ]
    assert "peer closed connection" in cut.provider_message
