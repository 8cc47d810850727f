"""The Anthropic backends with the real SDK over real HTTP (loopback server): requests, retries,
errors, configuration."""

from __future__ import annotations

import asyncio
import functools
import socket
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

import pytest

import looplet.backends.anthropic as anthropic_backend
from looplet.backends.anthropic import (
    DEFAULT_MODEL,
    AnthropicBackend,
    AsyncAnthropicBackend,
    to_anthropic_tools,
)
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy
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
from looplet.types import ToolResult, Usage
from tests._anthropic import (
    API_KEY,
    EXPECTED_MESSAGES,
    FAST,
    GREET_SCHEMA,
    HELLO,
    MODEL,
    async_client_for,
    client_for,
    conversation,
    two_calls,
)

# --- the real SDK over real HTTP -------------------------------------------------------------


@functools.cache
def _sdk_takes_temperature() -> bool:
    """Whether the installed SDK's ``messages.create`` accepts a ``temperature`` (0.x only),
    found by calling it with one: the request the backend must then send it in."""
    with ScriptedModelServer(["ok"]) as server, client_for(server) as client:
        try:
            client.messages.create(
                model=MODEL,
                max_tokens=5,
                messages=[{"role": "user", "content": "Hi"}],
                temperature=0.3,
            )
        except TypeError:
            return False
        return server.requests[-1].body.get("temperature") == 0.3


def _fail(
    script: Sequence[ScriptItem], retry: RetryPolicy = FAST, **client_kw: Any
) -> tuple[LLMError, int]:
    """Run HELLO against ``script``; the LLMError raised and how many requests were sent."""
    with ScriptedModelServer(script) as server, client_for(server, **client_kw) as client:
        backend = AnthropicBackend(client, model=MODEL, retry=retry)
        with pytest.raises(LLMError) as info:
            backend.complete(HELLO)
        return info.value, len(server.requests)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the sync backend makes between attempts, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(anthropic_backend, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


def test_tool_call_round_trips_with_matching_tool_use_id() -> None:
    script = [
        tool_reply(
            call("greet", {"name": "Alice"}), usage={"input_tokens": 12, "output_tokens": 5}
        ),
        text_reply("Greeted."),
    ]
    with ScriptedModelServer(script) as server, client_for(server) as client:
        backend = AnthropicBackend(client, model=MODEL)
        reply = backend.complete(HELLO)
        [greet] = reply.tool_calls
        result = ToolResult("greet", data={"greeting": "Hello, Alice!"}, call_id=greet.call_id)
        follow_up = LLMRequest(
            [
                Message.system("You greet people."),
                *HELLO.messages,
                Message.assistant(reply.text, reply.tool_calls),
                Message.tool_result(result, '{"greeting": "Hello, Alice!"}'),
            ],
            tools=HELLO.tools,
        )
        final = backend.complete(follow_up)

    assert (greet.tool, greet.args, greet.call_id) == ("greet", {"name": "Alice"}, "toolu_1_0")
    assert (reply.usage, reply.finish_reason, reply.model) == (Usage(12, 5), "tool_use", MODEL)
    assert (final.text, final.finish_reason) == ("Greeted.", "end_turn")
    assert backend.last_usage == final.usage
    body = server.requests[-1].body
    assert body["system"] == "You greet people."
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1_0", "name": "greet", "input": {"name": "Alice"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1_0",
                    "content": '{"greeting": "Hello, Alice!"}',
                }
            ],
        },
    ]


def test_conversation_is_sent_in_anthropic_format_and_accepted() -> None:
    request = LLMRequest(conversation(), tools=[GREET_SCHEMA], max_tokens=77, temperature=0.3)
    with ScriptedModelServer(["ok"]) as server, client_for(server) as client:
        reply = AnthropicBackend(client, model=MODEL, metadata={"user_id": "u1"}).complete(request)

    body = server.requests[-1].body
    assert reply.text == "ok"  # the server's validation (alternation, pairing) let it through
    assert body["messages"] == EXPECTED_MESSAGES
    assert body["system"] == "You greet people.\n\nBe brief."
    assert body["tools"] == to_anthropic_tools([GREET_SCHEMA])
    assert (body["model"], body["max_tokens"], body["metadata"]) == (MODEL, 77, {"user_id": "u1"})
    # Sent whenever the installed SDK takes one (messages.create has none from 1.0 on).
    assert body.get("temperature") == (0.3 if _sdk_takes_temperature() else None)


def test_malformed_input_comes_back_as_a_call_with_parse_error() -> None:
    script = [tool_reply(call("greet", '{"name": "Al'))]
    with ScriptedModelServer(script) as server, client_for(server) as client:
        reply = AnthropicBackend(client, model=MODEL).complete(HELLO)

    [bad] = reply.tool_calls
    assert (bad.tool, bad.args, bad.raw_arguments) == ("greet", {}, '{"name": "Al')
    assert bad.parse_error


def test_rate_limit_is_retried_honouring_retry_after(sleeps: list[float]) -> None:
    slow_policy = RetryPolicy(max_retries=3, base_delay=60.0, max_delay=60.0)
    script: list[ScriptItem] = [error_reply(429, "Rate limited.", retry_after="0"), "Hi!"]
    with ScriptedModelServer(script) as server, client_for(server) as client:
        reply = AnthropicBackend(client, model=MODEL, retry=slow_policy).complete(HELLO)

    assert (reply.text, len(server.requests), sleeps) == ("Hi!", 2, [0.0])


def test_rate_limit_then_success_with_a_fast_policy() -> None:
    script: list[ScriptItem] = [error_reply(429, "Rate limited."), "Hi!"]
    with ScriptedModelServer(script) as server, client_for(server) as client:
        backend = AnthropicBackend(client, model=MODEL, retry=RetryPolicy(base_delay=0.001))
        reply = backend.complete(HELLO)

    assert (reply.text, len(server.requests)) == ("Hi!", 2)


@pytest.mark.parametrize(("status", "message"), [(529, "Overloaded"), (500, "Internal error")])
def test_server_errors_are_retried_then_raised_with_attempts(
    status: int, message: str, sleeps: list[float]
) -> None:
    error, sent = _fail([error_reply(status, message)] * 3)

    assert sent == 3 and len(sleeps) == 2
    assert (error.status, error.attempts, error.retriable) == (status, 3, True)
    assert str(error) == f"anthropic request failed (HTTP {status}) after 3 attempts: {message}"


def test_authentication_error_is_raised_after_exactly_one_request() -> None:
    with ScriptedModelServer(["unused"], api_key="the-right-key") as server:
        with client_for(server) as client:
            backend = AnthropicBackend(client, model=MODEL, retry=FAST)
            with pytest.raises(LLMError) as info:
                backend.complete(HELLO)
        sent = len(server.requests)

    error = info.value
    assert sent == 1
    assert (error.status, error.attempts, error.retriable) == (401, 1, False)
    assert str(error).startswith("anthropic request failed (HTTP 401): invalid x-api-key")


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    error, sent = _fail([error_reply(status, "No.")] * 3)

    assert (sent, error.status, error.attempts, error.provider_message) == (1, status, 1, "No.")


def test_timeout_becomes_llm_error_of_kind_timeout() -> None:
    error, sent = _fail([slow_reply(30, "too late")], retry=RetryPolicy(max_retries=0), timeout=0.2)

    assert sent == 1
    assert (error.kind, error.status, error.retriable, error.attempts) == ("timeout", None, True, 1)


def test_legacy_generate_sends_the_system_prompt_top_level() -> None:
    with ScriptedModelServer(["Hello, Alice!"]) as server, client_for(server) as client:
        text = AnthropicBackend(client, model=MODEL).generate(
            "Greet Alice.", system_prompt="Be brief.", max_tokens=9
        )

    assert text == "Hello, Alice!"
    assert server.requests[-1].body == {
        "model": MODEL,
        "max_tokens": 9,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Greet Alice."}],
        # generate()'s default temperature, where the SDK takes one.
        **({"temperature": 0.2} if _sdk_takes_temperature() else {}),
    }


def test_async_backend_gives_the_same_response_and_requests_as_the_sync_one() -> None:
    with ScriptedModelServer(two_calls()) as server, client_for(server) as client:
        expected = AnthropicBackend(client, model=MODEL, retry=FAST).complete(HELLO)
        sync_bodies = [r.body for r in server.requests]

    async def run() -> tuple[LLMResponse, list[Any]]:
        with ScriptedModelServer(two_calls()) as server:
            async with async_client_for(server) as client:
                backend = AsyncAnthropicBackend(client, model=MODEL, retry=FAST)
                reply = await backend.acomplete(HELLO)
            return reply, [r.body for r in server.requests]

    reply, async_bodies = asyncio.run(run())
    assert reply == expected
    assert len(expected.tool_calls) == 2 and expected.tool_calls[1].parse_error
    assert async_bodies == sync_bodies and len(async_bodies) == 2


def test_async_backend_raises_the_same_errors() -> None:
    async def run() -> tuple[LLMError, int]:
        with ScriptedModelServer([error_reply(500, "Boom.")] * 3) as server:
            async with async_client_for(server) as client:
                backend = AsyncAnthropicBackend(client, model=MODEL, retry=FAST)
                with pytest.raises(LLMError) as info:
                    await backend.acomplete(HELLO)
            return info.value, len(server.requests)

    error, sent = asyncio.run(run())
    assert (sent, error.status, error.attempts, error.provider_message) == (3, 500, 3, "Boom.")


@pytest.mark.parametrize("backend_cls", [AnthropicBackend, AsyncAnthropicBackend])
def test_from_env_without_api_key_says_what_to_set(
    backend_cls: type[AnthropicBackend | AsyncAnthropicBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="needs ANTHROPIC_API_KEY") as info:
        backend_cls.from_env()
    assert "export ANTHROPIC_API_KEY=" in str(info.value)
    assert "ANTHROPIC_BASE_URL" in str(info.value) and "ANTHROPIC_MODEL" in str(info.value)


def test_from_env_reads_key_base_url_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedModelServer(["Hi!"], api_key=API_KEY) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_MODEL", "claude-env")
        with AnthropicBackend.from_env() as backend:
            reply = backend.complete(HELLO)

    assert (backend.model, reply.text) == ("claude-env", "Hi!")
    assert server.requests[-1].body["model"] == "claude-env"


def test_from_env_defaults_to_a_current_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.delenv("ANTHROPIC_MODEL", raising=False)

    async def ask() -> str:
        with ScriptedModelServer(["Hi!"], api_key=API_KEY) as server:
            monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
            async with AsyncAnthropicBackend.from_env() as backend:
                await backend.acomplete(HELLO)
            assert backend.model == DEFAULT_MODEL
            return str(server.requests[-1].body["model"])

    # The SDK warns (DeprecationWarning) on a request for a model it knows to be deprecated.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert asyncio.run(ask()) == DEFAULT_MODEL


class _Sent(Exception):
    """Raised by a stand-in ``messages.create`` with the arguments it was called with."""


def _create_taking_temperature(*, temperature: float | None = None, **kwargs: Any) -> Any:
    raise _Sent({**kwargs, "temperature": temperature})


def _create_without_temperature(**kwargs: Any) -> Any:
    raise _Sent(kwargs)


class _CreateWithoutSignature:
    __signature__ = "none to read"  # inspect.signature() raises TypeError on it

    def __call__(self, **kwargs: Any) -> Any:
        raise _Sent(kwargs)


@pytest.mark.parametrize(
    ("create", "sent"),
    [
        (_create_taking_temperature, 0.3),  # the 0.x SDKs
        (_create_without_temperature, None),  # 1.0 on: sending one is a TypeError
        (_CreateWithoutSignature(), 0.3),  # cannot tell: the classic API
    ],
    ids=["takes_temperature", "takes_none", "no_signature"],
)
def test_temperature_is_sent_only_to_an_sdk_whose_create_takes_one(
    create: Any, sent: float | None
) -> None:
    client = types.SimpleNamespace(messages=types.SimpleNamespace(create=create))
    client.with_options = lambda **_: client
    backend = AnthropicBackend(client, model=MODEL)
    with pytest.raises(_Sent) as info:
        backend.complete(LLMRequest([Message.user("Hi")], temperature=0.3))

    kwargs = info.value.args[0]
    assert (kwargs["model"], kwargs.get("temperature")) == (MODEL, sent)


def test_on_token_without_stream_is_a_configuration_error() -> None:
    with client_for("http://127.0.0.1:9") as client:
        with pytest.raises(ConfigurationError, match="pass stream=True"):
            AnthropicBackend(client, model=MODEL, on_token=print)
        assert "stream=True" in repr(AnthropicBackend(client, model=MODEL, stream=True))


@pytest.mark.parametrize("backend_cls", [AnthropicBackend, AsyncAnthropicBackend])
def test_missing_anthropic_package_names_the_extra_to_install(
    backend_cls: type[AnthropicBackend | AsyncAnthropicBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'looplet\[anthropic\]'") as info:
        backend_cls(object(), model=MODEL)  # type: ignore[arg-type]
    assert backend_cls.__name__ in str(info.value)
    with pytest.raises(MissingExtraError):
        backend_cls.from_env()


def test_backends_are_exported_lazily_from_looplet_backends() -> None:
    import looplet.backends

    assert looplet.backends.AnthropicBackend is AnthropicBackend
    assert looplet.backends.AsyncAnthropicBackend is AsyncAnthropicBackend


def test_refused_connection_is_retried_then_raised() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with client_for(f"http://127.0.0.1:{port}") as client, pytest.raises(LLMError) as info:
        AnthropicBackend(client, model=MODEL, retry=FAST).complete(HELLO)

    assert (info.value.kind, info.value.status, info.value.attempts) == (
        "connection_error",
        None,
        3,
    )
