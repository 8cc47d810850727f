"""The OpenAI backends: pure conversions, then the real SDK over real HTTP (loopback server)."""

from __future__ import annotations

import asyncio
import socket
import sys
import types
from collections.abc import Sequence
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

import looplet.backends.openai as openai_backend
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy
from looplet.backends.openai import (
    AsyncOpenAIBackend,
    OpenAIBackend,
    build_request_kwargs,
    from_openai_completion,
    to_llm_error,
    to_openai_messages,
    to_openai_tools,
)
from looplet.errors import ConfigurationError, LLMError, MissingExtraError
from looplet.messages import Message
from looplet.testing.server import (
    ScriptedModelServer,
    ScriptItem,
    call,
    error_reply,
    slow_reply,
    text_reply,
    tool_reply,
)
from looplet.types import ToolCall, ToolResult, Usage

GREET_SCHEMA = {
    "name": "greet",
    "description": "Greet someone by name.",
    "parameters": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    },
}


def _conversation() -> list[Message]:
    return [
        Message.system("You greet people."),
        Message.user("Greet Alice and Bob."),
        Message.assistant(
            "",
            (
                ToolCall("greet", {"name": "Alice"}, call_id="call_1"),
                ToolCall(
                    "greet",
                    call_id="call_2",
                    raw_arguments='{"name": "Bob"',
                    parse_error="Expecting ',' delimiter",
                ),
            ),
        ),
        Message("tool", '{"greeting": "Hello, Alice!"}', tool_call_id="call_1", name="greet"),
        Message(
            "tool",
            "ERROR [parse]: bad arguments",
            tool_call_id="call_2",
            name="greet",
            is_error=True,
        ),
        Message.assistant("Both greeted.", (ToolCall("done", {}, call_id="call_3"),)),
    ]


EXPECTED_OPENAI_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You greet people."},
    {"role": "user", "content": "Greet Alice and Bob."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "greet", "arguments": '{"name": "Alice"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "greet", "arguments": '{"name": "Bob"'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"greeting": "Hello, Alice!"}'},
    {"role": "tool", "tool_call_id": "call_2", "content": "ERROR [parse]: bad arguments"},
    {
        "role": "assistant",
        "content": "Both greeted.",
        "tool_calls": [
            {"id": "call_3", "type": "function", "function": {"name": "done", "arguments": "{}"}}
        ],
    },
]


# --- pure conversions ------------------------------------------------------------------------


def test_conversation_converts_to_openai_messages() -> None:
    assert to_openai_messages(_conversation()) == EXPECTED_OPENAI_MESSAGES


def test_raw_arguments_are_echoed_verbatim_instead_of_reencoded() -> None:
    call = ToolCall("greet", {"name": "Alice"}, call_id="c", raw_arguments='{"name":"Alice"}')
    [message] = to_openai_messages([Message.assistant("", (call,))])
    assert message["tool_calls"][0]["function"]["arguments"] == '{"name":"Alice"}'


def test_plain_assistant_text_keeps_its_content_and_has_no_tool_calls() -> None:
    assert to_openai_messages([Message.assistant("Hi.")]) == [
        {"role": "assistant", "content": "Hi."}
    ]


def test_tool_schemas_convert_to_function_tools() -> None:
    bare = {"name": "done"}
    assert to_openai_tools([GREET_SCHEMA, bare]) == [
        {
            "type": "function",
            "function": {
                "name": "greet",
                "description": "Greet someone by name.",
                "parameters": GREET_SCHEMA["parameters"],
            },
        },
        {
            "type": "function",
            "function": {
                "name": "done",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]


def test_request_kwargs_leave_out_unset_temperature_and_tools() -> None:
    request = LLMRequest([Message.user("hi")], max_tokens=50)
    assert build_request_kwargs(request, "m") == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 50,
    }


def test_request_kwargs_carry_temperature_tools_and_defaults() -> None:
    request = LLMRequest([Message.user("hi")], tools=[GREET_SCHEMA], temperature=0.0)
    kwargs = build_request_kwargs(request, "m", top_p=0.5, temperature=0.9)
    assert kwargs["temperature"] == 0.0  # the request's own value wins over a default
    assert kwargs["top_p"] == 0.5
    assert kwargs["tools"] == to_openai_tools([GREET_SCHEMA])


def test_request_without_max_tokens_uses_the_backend_default() -> None:
    request = LLMRequest([Message.user("hi")], max_tokens=0)
    assert build_request_kwargs(request, "m", default_max_tokens=123)["max_tokens"] == 123


def _completion(message: dict[str, Any], **extra: Any) -> ChatCompletion:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        **extra,
    }
    return ChatCompletion.model_validate(body)


def test_completion_converts_to_response_with_tool_calls_and_usage() -> None:
    completion = _completion(
        {
            "role": "assistant",
            "content": "Greeting.",
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "greet", "arguments": '{"name": "Alice"}'},
                },
                {
                    "id": "call_10",
                    "type": "function",
                    "function": {"name": "greet", "arguments": '{"name": '},
                },
            ],
        },
        usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    )
    response = from_openai_completion(completion)
    ok, bad = response.tool_calls
    assert (response.text, response.finish_reason, response.model) == (
        "Greeting.",
        "tool_calls",
        "gpt-test",
    )
    assert response.usage == Usage(11, 7)
    assert (ok.tool, ok.args, ok.call_id, ok.parse_error) == (
        "greet",
        {"name": "Alice"},
        "call_9",
        None,
    )
    assert (bad.call_id, bad.args, bad.raw_arguments) == ("call_10", {}, '{"name": ')
    assert bad.parse_error


def test_completion_without_usage_or_content_gives_empty_values() -> None:
    response = from_openai_completion(_completion({"role": "assistant", "content": None}))
    assert (response.text, response.tool_calls, response.usage) == ("", (), Usage())


def _status_error(status: int, body: object) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(status, request=request, headers={"x-request-id": "r"})
    return openai.APIStatusError(f"Error code: {status}", response=response, body=body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "Invalid API key.", "type": "invalid_request_error"}, "Invalid API key."),
        ({"error": {"message": "nested"}}, "nested"),
        ("model 'llama9' not found", "model 'llama9' not found"),
        (None, "Error code: 404"),
    ],
)
def test_status_error_keeps_the_providers_own_message(body: object, expected: str) -> None:
    error = to_llm_error(_status_error(404, body), attempts=1, provider="ollama")
    assert (error.provider, error.status, error.provider_message) == ("ollama", 404, expected)
    assert not error.retriable
    assert str(error).startswith("ollama request failed (HTTP 404)")


def test_status_errors_are_retriable_only_when_transient() -> None:
    assert to_llm_error(_status_error(429, None), 1).retriable
    assert to_llm_error(_status_error(503, None), 1).retriable
    assert not to_llm_error(_status_error(401, None), 1).retriable


def test_timeout_and_connection_errors_have_no_status_and_are_retriable() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    timeout = to_llm_error(openai.APITimeoutError(request), 2)
    refused = to_llm_error(openai.APIConnectionError(request=request), 3)
    assert (timeout.kind, timeout.status, timeout.retriable, timeout.attempts) == (
        "timeout",
        None,
        True,
        2,
    )
    assert (refused.kind, refused.status, refused.retriable, refused.attempts) == (
        "connection_error",
        None,
        True,
        3,
    )


def test_response_that_is_not_a_completion_is_not_retriable() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    invalid = openai.APIResponseValidationError(httpx2.Response(200, request=request), body={})
    error = to_llm_error(invalid, 1)
    assert (error.kind, error.retriable) == ("invalid_response", False)


# --- the real SDK over real HTTP -------------------------------------------------------------

API_KEY = "test-key"
FAST = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01)
HELLO = LLMRequest([Message.user("Greet Alice.")], tools=[GREET_SCHEMA], max_tokens=100)


def _client(server: ScriptedModelServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=API_KEY, **kwargs)


def _async_client(server: ScriptedModelServer, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, **kwargs)


def _fail(
    script: Sequence[ScriptItem], retry: RetryPolicy = FAST, **client_kw: Any
) -> tuple[LLMError, int]:
    """Run HELLO against ``script``; the LLMError raised and how many requests were sent."""
    with ScriptedModelServer(script) as server, _client(server, **client_kw) as client:
        backend = OpenAIBackend(client, model="gpt-test", retry=retry)
        with pytest.raises(LLMError) as info:
            backend.complete(HELLO)
        return info.value, len(server.requests)


def test_tool_call_round_trips_with_name_args_id_and_usage() -> None:
    script = [
        tool_reply(
            call("greet", {"name": "Alice"}), usage={"prompt_tokens": 12, "completion_tokens": 5}
        ),
        text_reply("Greeted."),
    ]
    with ScriptedModelServer(script) as server, _client(server) as client:
        backend = OpenAIBackend(client, model="gpt-test")
        reply = backend.complete(HELLO)
        [greet] = reply.tool_calls
        result = ToolResult("greet", data={"greeting": "Hello, Alice!"}, call_id=greet.call_id)
        follow_up = LLMRequest(
            [
                *HELLO.messages,
                Message.assistant(reply.text, reply.tool_calls),
                Message.tool_result(result, '{"greeting": "Hello, Alice!"}'),
            ],
            tools=HELLO.tools,
        )
        final = backend.complete(follow_up)

    assert (greet.tool, greet.args, greet.parse_error) == ("greet", {"name": "Alice"}, None)
    assert greet.call_id == "call_1_0"
    assert (reply.usage, reply.finish_reason, reply.model) == (
        Usage(12, 5),
        "tool_calls",
        "gpt-test",
    )
    assert final.text == "Greeted."
    assert backend.last_usage == final.usage
    # The id the server sent comes back on both the assistant call and the tool message.
    sent = server.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1_0"
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": "call_1_0",
        "content": '{"greeting": "Hello, Alice!"}',
    }


def test_conversation_and_tools_are_sent_in_openai_format() -> None:
    conversation = _conversation()[:-1]  # ends on the tool messages, as a real turn does
    request = LLMRequest(conversation, tools=[GREET_SCHEMA], max_tokens=77)
    with ScriptedModelServer(["ok"]) as server, _client(server) as client:
        OpenAIBackend(client, model="gpt-test", top_p=0.5).complete(request)

    body = server.requests[-1].body
    assert body["messages"] == EXPECTED_OPENAI_MESSAGES[:-1]
    assert body["tools"] == to_openai_tools([GREET_SCHEMA])
    assert (body["model"], body["max_tokens"], body["top_p"]) == ("gpt-test", 77, 0.5)
    assert "temperature" not in body


def test_malformed_arguments_come_back_as_a_call_with_parse_error() -> None:
    script = [tool_reply(call("greet", '{"name": "Al'))]
    with ScriptedModelServer(script) as server, _client(server) as client:
        reply = OpenAIBackend(client, model="gpt-test").complete(HELLO)

    [bad] = reply.tool_calls
    assert (bad.tool, bad.args, bad.raw_arguments) == ("greet", {}, '{"name": "Al')
    assert bad.parse_error


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the sync backend makes between attempts, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(openai_backend, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


def test_rate_limit_is_retried_once_honouring_retry_after(sleeps: list[float]) -> None:
    # Retry-After "0" must win over the policy's own backoff, which here is a whole minute.
    slow_policy = RetryPolicy(max_retries=3, base_delay=60.0, max_delay=60.0)
    script: list[ScriptItem] = [
        error_reply(429, "Rate limit reached.", type="rate_limit_error", retry_after="0"),
        "Hi!",
    ]
    with ScriptedModelServer(script) as server, _client(server) as client:
        reply = OpenAIBackend(client, model="gpt-test", retry=slow_policy).complete(HELLO)

    assert reply.text == "Hi!"
    assert len(server.requests) == 2
    assert sleeps == [0.0]


def test_server_errors_are_retried_then_raised_with_attempts_and_message(
    sleeps: list[float],
) -> None:
    script = [error_reply(500, "The server had an error.")] * (FAST.max_retries + 1)
    error, sent = _fail(script)

    assert sent == FAST.max_retries + 1 == 3
    assert len(sleeps) == 2 and all(0 < wait <= FAST.max_delay for wait in sleeps)
    assert (error.status, error.attempts, error.retriable) == (500, 3, True)
    assert error.provider_message == "The server had an error."
    assert (
        str(error) == "openai request failed (HTTP 500) after 3 attempts: The server had an error."
    )


def test_authentication_error_is_raised_after_exactly_one_request() -> None:
    with ScriptedModelServer(["unused"], api_key="the-right-key") as server:
        with _client(server) as client:
            backend = OpenAIBackend(client, model="gpt-test", retry=FAST, provider="ollama")
            with pytest.raises(LLMError) as info:
                backend.complete(HELLO)
        sent = len(server.requests)

    error = info.value
    assert sent == 1
    assert (error.status, error.attempts, error.retriable, error.provider) == (
        401,
        1,
        False,
        "ollama",
    )
    assert "Incorrect API key provided" in str(error)
    assert str(error).startswith("ollama request failed (HTTP 401): Incorrect API key")


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    error, sent = _fail([error_reply(status, "Bad request: no.", type="invalid_request_error")] * 3)

    assert sent == 1
    assert (error.status, error.attempts, error.retriable) == (status, 1, False)
    assert error.provider_message == "Bad request: no."


def test_timeout_becomes_llm_error_of_kind_timeout() -> None:
    once = RetryPolicy(max_retries=0)
    error, sent = _fail([slow_reply(30, "too late")], retry=once, timeout=0.2)

    assert sent == 1
    assert (error.kind, error.status, error.retriable, error.attempts) == ("timeout", None, True, 1)
    assert "timed out" in str(error)


def test_refused_connection_is_retried_then_raised() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY)
    with client, pytest.raises(LLMError) as info:
        OpenAIBackend(client, model="gpt-test", retry=FAST).complete(HELLO)

    error = info.value
    assert (error.kind, error.status, error.attempts) == ("connection_error", None, 3)


def test_legacy_generate_sends_one_user_message_and_returns_the_text() -> None:
    with ScriptedModelServer(["Hello, Alice!"]) as server, _client(server) as client:
        text = OpenAIBackend(client, model="gpt-test").generate(
            "Greet Alice.", system_prompt="Be brief.", max_tokens=9
        )

    body = server.requests[-1].body
    assert text == "Hello, Alice!"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Greet Alice."},
    ]
    assert (body["max_tokens"], body["temperature"]) == (9, 0.2)
    assert "tools" not in body


def _script() -> list[ScriptItem]:
    return [
        error_reply(503, "Overloaded.", retry_after="0"),
        tool_reply(call("greet", {"name": "Alice"}), call("done", '{"answer": '), text="Calling."),
    ]


def test_async_backend_gives_the_same_response_as_the_sync_one() -> None:
    with ScriptedModelServer(_script()) as server, _client(server) as client:
        expected = OpenAIBackend(client, model="gpt-test", retry=FAST).complete(HELLO)
        sync_bodies = [r.body for r in server.requests]

    async def run() -> tuple[LLMResponse, list[Any]]:
        with ScriptedModelServer(_script()) as server:
            async with _async_client(server) as client:
                backend = AsyncOpenAIBackend(client, model="gpt-test", retry=FAST)
                reply = await backend.acomplete(HELLO)
            return reply, [r.body for r in server.requests]

    reply, async_bodies = asyncio.run(run())
    assert reply == expected
    assert len(expected.tool_calls) == 2 and expected.tool_calls[1].parse_error
    assert async_bodies == sync_bodies and len(async_bodies) == 2


def test_async_backend_raises_the_same_errors() -> None:
    async def run() -> tuple[LLMError, int]:
        with ScriptedModelServer([error_reply(500, "Boom.")] * 3) as server:
            async with _async_client(server) as client:
                backend = AsyncOpenAIBackend(client, model="gpt-test", retry=FAST)
                with pytest.raises(LLMError) as info:
                    await backend.acomplete(HELLO)
            return info.value, len(server.requests)

    error, sent = asyncio.run(run())
    assert (sent, error.status, error.attempts, error.provider_message) == (3, 500, 3, "Boom.")


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend_cls", [OpenAIBackend, AsyncOpenAIBackend])
def test_from_env_without_api_key_says_what_to_set(
    backend_cls: type[OpenAIBackend | AsyncOpenAIBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY") as info:
        backend_cls.from_env()
    assert "OPENAI_BASE_URL" in str(info.value)


def test_from_env_reads_key_base_url_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedModelServer(["Hi!"], api_key=API_KEY) as server:
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_MODEL", "llama-test")
        with OpenAIBackend.from_env() as backend:
            reply = backend.complete(HELLO)

    assert (backend.model, reply.text) == ("llama-test", "Hi!")
    assert server.requests[-1].body["model"] == "llama-test"


def test_from_env_defaults_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)

    async def build() -> str:
        async with AsyncOpenAIBackend.from_env() as backend:
            return backend.model

    assert asyncio.run(build()) == "gpt-4o-mini"


@pytest.mark.parametrize("backend_cls", [OpenAIBackend, AsyncOpenAIBackend])
def test_missing_openai_package_names_the_extra_to_install(
    backend_cls: type[OpenAIBackend | AsyncOpenAIBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'looplet\[openai\]'") as info:
        backend_cls(object(), model="gpt-test")  # type: ignore[arg-type]
    assert backend_cls.__name__ in str(info.value)


def test_backends_are_exported_lazily_from_looplet_backends() -> None:
    import looplet.backends

    assert looplet.backends.OpenAIBackend is OpenAIBackend
    assert looplet.backends.AsyncOpenAIBackend is AsyncOpenAIBackend
