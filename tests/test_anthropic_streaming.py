"""The Anthropic backends streaming: the assembled reply, the chunks, and a stream that breaks
(the server's :func:`cut_stream`: a cut connection, an error event, no ``message_stop``)."""

from __future__ import annotations

import asyncio
import typing
from typing import Any

import pytest

from looplet.backends.anthropic import (
    AnthropicBackend,
    AnthropicStreamAssembler,
    AsyncAnthropicBackend,
)
from looplet.backends.base import LLMRequest, LLMResponse, StreamChunk
from looplet.errors import LLMError
from looplet.testing import _anthropic_wire
from looplet.testing.server import (
    ScriptedModelServer,
    call,
    cut_stream,
    text_reply,
    tool_reply,
)
from looplet.types import Usage
from tests._anthropic import (
    FAST,
    HELLO,
    MODEL,
    async_client_for,
    client_for,
    two_calls,
)


def test_assembler_decodes_a_malformed_streamed_input_into_a_parse_error() -> None:
    reply = tool_reply(call("greet", '{"name": "Al'))
    events = _anthropic_wire.stream_events(reply, number=1, model="m", usage=Usage(1, 1))
    assembler = AnthropicStreamAssembler()
    for event in events:
        assembler.feed(_as_sdk_event(event))
    [bad] = assembler.response().tool_calls
    assert assembler.complete and assembler.delivered == 0  # nobody listened
    assert (bad.args, bad.raw_arguments) == ({}, '{"name": "Al')
    assert bad.parse_error


def _as_sdk_event(event: dict[str, Any]) -> Any:
    from anthropic._models import construct_type
    from anthropic.types import RawMessageStreamEvent

    return construct_type(value=event, type_=typing.cast(Any, RawMessageStreamEvent))


def _streamed(chunks: list[StreamChunk], tokens: list[str]) -> tuple[str, dict[int, list[str]]]:
    """The text of the chunks, and each call's [name, id, arguments] joined from them."""
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        if chunk.tool_index is not None:
            slot = calls.setdefault(chunk.tool_index, ["", "", ""])
            slot[0] += chunk.tool_name
            slot[1] += chunk.call_id
            slot[2] += chunk.arguments
    text = "".join(c.text for c in chunks)
    assert "".join(tokens) == text
    return text, calls


def test_streamed_reply_equals_the_plain_one_and_chunks_add_up() -> None:
    chunks: list[StreamChunk] = []
    tokens: list[str] = []
    with ScriptedModelServer(two_calls() + two_calls()[1:]) as server, client_for(server) as c:
        plain = AnthropicBackend(c, model=MODEL, retry=FAST).complete(HELLO)
        backend = AnthropicBackend(c, model=MODEL, stream=True, on_token=tokens.append)
        streamed = backend.complete(
            LLMRequest(HELLO.messages, HELLO.tools, 100, None, 0, chunks.append)
        )
        assert server.requests[-1].body["stream"] is True

    assert streamed == plain
    text, calls = _streamed(chunks, tokens)
    assert text == plain.text and len([c for c in chunks if c.text]) >= 2
    assert calls == {
        0: ["greet", "toolu_a", '{"name": "Alice, the one from accounting"}'],
        1: ["done", "toolu_b", '{"answer": '],
    }
    assert len([c for c in chunks if c.tool_index == 0 and c.arguments]) >= 2
    assert backend.last_usage == plain.usage


def test_async_stream_equals_the_sync_stream() -> None:
    def run_sync() -> tuple[LLMResponse, list[StreamChunk]]:
        chunks: list[StreamChunk] = []
        with ScriptedModelServer(two_calls()) as server, client_for(server) as client:
            backend = AnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
            return backend.complete(LLMRequest(HELLO.messages, on_chunk=chunks.append)), chunks

    async def run_async() -> tuple[LLMResponse, list[StreamChunk]]:
        chunks: list[StreamChunk] = []
        with ScriptedModelServer(two_calls()) as server:
            async with async_client_for(server) as client:
                backend = AsyncAnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
                request = LLMRequest(HELLO.messages, on_chunk=chunks.append)
                return await backend.acomplete(request), chunks

    # The 529 before the stream is retried in both, and the chunks arrive once.
    assert asyncio.run(run_async()) == run_sync()
    assert run_sync()[0].tool_calls[0].args == {"name": "Alice, the one from accounting"}


GREETING = text_reply("Hello there, Alice, nice to meet you.")
# message_start, ping, the text block's start and two text pieces: two reach the callbacks.
CUT_AFTER = 5
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def _stream(
    mode: str, server: ScriptedModelServer, on_chunk: Any = None, on_token: Any = None
) -> LLMResponse:
    """One streamed ``complete`` (``mode="sync"``) or ``acomplete`` (``"async"``) of HELLO."""
    request = LLMRequest(HELLO.messages, on_chunk=on_chunk)
    kw: dict[str, Any] = {"model": MODEL, "retry": FAST, "stream": True, "on_token": on_token}
    if mode == "sync":
        with client_for(server) as client:
            return AnthropicBackend(client, **kw).complete(request)

    async def run() -> LLMResponse:
        async with async_client_for(server) as client:
            return await AsyncAnthropicBackend(client, **kw).acomplete(request)

    return asyncio.run(run())


@MODES
@pytest.mark.parametrize(
    ("ending", "detail"),
    [
        # A cut connection is worded by the SDK or the HTTP library (it changes between
        # releases): only looplet's own fields are checked for it.
        ("cut", ""),
        ("error", "Overloaded"),
        ("no_finish", "ended before its message_stop"),
    ],
)
def test_stream_failing_after_chunks_is_interrupted_and_not_retried(
    mode: str, ending: str, detail: str
) -> None:
    chunks: list[StreamChunk] = []
    tokens: list[str] = []
    cut = cut_stream(CUT_AFTER, GREETING, ending=ending)
    with ScriptedModelServer([cut, GREETING]) as server, pytest.raises(LLMError) as info:
        _stream(mode, server, on_chunk=chunks.append, on_token=tokens.append)

    error = info.value
    assert len(server.requests) == 1
    assert (error.kind, error.retriable, error.attempts) == ("stream_interrupted", False, 1)
    assert "the stream broke after 2 chunks" in str(error) and detail in str(error)
    assert "not retried: the callbacks had already received those chunks" in str(error)
    assert "".join(c.text for c in chunks) == "".join(tokens) == GREETING.text[:32]


@MODES
@pytest.mark.parametrize("listening", [False, True])
def test_stream_failing_before_any_chunk_reached_a_callback_is_retried(
    mode: str, listening: bool
) -> None:
    chunks: list[StreamChunk] = []
    # With nobody listening, text already read does not stand in the way of a retry.
    cut = cut_stream(2 if listening else CUT_AFTER, GREETING)
    with ScriptedModelServer([cut, GREETING]) as server:
        reply = _stream(mode, server, on_chunk=chunks.append if listening else None)

    assert len(server.requests) == 2
    assert reply.text == GREETING.text
    assert "".join(c.text for c in chunks) == (GREETING.text if listening else "")


@MODES
def test_error_event_before_any_chunk_is_retried_as_overloaded(mode: str) -> None:
    tokens: list[str] = []
    with ScriptedModelServer([cut_stream(2, GREETING, ending="error"), GREETING]) as server:
        reply = _stream(mode, server, on_token=tokens.append)

    assert len(server.requests) == 2
    assert reply.text == "".join(tokens) == GREETING.text


@MODES
def test_a_raising_callback_propagates_unchanged_without_a_retry(mode: str) -> None:
    class Stop(Exception):
        pass

    def explode(text: str) -> None:
        raise Stop(text)

    with ScriptedModelServer([GREETING, GREETING]) as server, pytest.raises(Stop):
        _stream(mode, server, on_token=explode)

    assert len(server.requests) == 1
