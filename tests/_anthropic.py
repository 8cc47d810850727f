"""What the Anthropic backend tests share: a tool, a conversation, clients for the server."""

from __future__ import annotations

import http.client
import json
from typing import Any

import anthropic
from anthropic.types import MessageParam

from looplet.backends.base import LLMRequest, RetryPolicy
from looplet.messages import Message
from looplet.testing.server import (
    ScriptedModelServer,
    ScriptItem,
    call,
    error_reply,
    tool_reply,
)
from looplet.types import ToolCall

GREET_SCHEMA = {
    "name": "greet",
    "description": "Greet someone by name.",
    "parameters": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    },
}


def conversation() -> list[Message]:
    """A turn with a good and a malformed call, both answered, then injected context."""
    return [
        Message.system("You greet people."),
        Message.user("Greet Alice and Bob."),
        Message.system("Be brief."),
        Message.assistant(
            "Greeting both.",
            (
                ToolCall("greet", {"name": "Alice"}, call_id="toolu_1"),
                ToolCall(
                    "greet",
                    call_id="toolu_2",
                    raw_arguments='{"name": "Bob"',
                    parse_error="Expecting ',' delimiter",
                ),
            ),
        ),
        Message("tool", '{"greeting": "Hello, Alice!"}', tool_call_id="toolu_1", name="greet"),
        Message(
            "tool",
            "ERROR [parse]: bad arguments",
            tool_call_id="toolu_2",
            name="greet",
            is_error=True,
        ),
        Message.user("Reminder: be polite."),  # what the loop adds when a hook injects context
    ]


#: conversation() as Anthropic messages (the system messages go top-level).
EXPECTED_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "Greet Alice and Bob."},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Greeting both."},
            {"type": "tool_use", "id": "toolu_1", "name": "greet", "input": {"name": "Alice"}},
            {"type": "tool_use", "id": "toolu_2", "name": "greet", "input": {}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": '{"greeting": "Hello, Alice!"}',
            },
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": "ERROR [parse]: bad arguments",
                "is_error": True,
            },
            {"type": "text", "text": "Reminder: be polite."},
        ],
    },
]


API_KEY = "test-key"
MODEL = "claude-test"
FAST = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01)
HELLO = LLMRequest([Message.user("Greet Alice.")], tools=[GREET_SCHEMA], max_tokens=100)


def client_for(server: ScriptedModelServer | str, **kwargs: Any) -> anthropic.Anthropic:
    """An ``anthropic.Anthropic`` for the server (its root URL, as the SDK expects)."""
    url = server if isinstance(server, str) else server.url
    return anthropic.Anthropic(base_url=url, api_key=API_KEY, **kwargs)


def async_client_for(server: ScriptedModelServer, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An ``anthropic.AsyncAnthropic`` for the server."""
    return anthropic.AsyncAnthropic(base_url=server.url, api_key=API_KEY, **kwargs)


def two_calls() -> list[ScriptItem]:
    """A 529 (retried), then text and two calls with fixed ids, the second malformed."""
    both = tool_reply(
        call("greet", {"name": "Alice, the one from accounting"}, id="toolu_a"),
        call("done", '{"answer": ', id="toolu_b"),
        text="Calling both tools now.",
    )
    return [error_reply(529, "Overloaded.", retry_after="0"), both]


#: The smallest valid ``messages`` for a raw Messages request.
HELLO_PARAMS: list[MessageParam] = [{"role": "user", "content": "Greet Alice"}]


def create(client: anthropic.Anthropic, **kwargs: Any) -> Any:
    """``client.messages.create`` with MODEL, 100 tokens and HELLO_PARAMS unless given."""
    return client.messages.create(
        **{"model": MODEL, "max_tokens": 100, "messages": HELLO_PARAMS, **kwargs}
    )


def raw_post(
    server: ScriptedModelServer, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` (JSON) to /v1/messages without the SDK; status, headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    sent = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    try:
        conn.request("POST", "/v1/messages", body=json.dumps(body), headers=sent | (headers or {}))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
