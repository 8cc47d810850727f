"""The Anthropic backends streaming: the assembled reply, the chunks, and a stream that breaks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import pytest

from looplet import StreamChunk
from looplet.backends.anthropic import (
    AnthropicBackend,
    AnthropicStreamAssembler,
    AsyncAnthropicBackend,
)
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.errors import LLMError
from looplet.testing import _anthropic_wire
from looplet.testing.server import (
    ScriptedOpenAIServer,
    call,
    text_reply,
    tool_reply,
)
from looplet.types import Usage
from tests._anthropic import (
    API_KEY,
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
    with ScriptedOpenAIServer(two_calls() + two_calls()[1:]) as server, client_for(server) as c:
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
        with ScriptedOpenAIServer(two_calls()) as server, client_for(server) as client:
            backend = AnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
            return backend.complete(LLMRequest(HELLO.messages, on_chunk=chunks.append)), chunks

    async def run_async() -> tuple[LLMResponse, list[StreamChunk]]:
        chunks: list[StreamChunk] = []
        with ScriptedOpenAIServer(two_calls()) as server:
            async with async_client_for(server) as client:
                backend = AsyncAnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
                request = LLMRequest(HELLO.messages, on_chunk=chunks.append)
                return await backend.acomplete(request), chunks

    # The 529 before the stream is retried in both, and the chunks arrive once.
    assert asyncio.run(run_async()) == run_sync()
    assert run_sync()[0].tool_calls[0].args == {"name": "Alice, the one from accounting"}


class _CutStreamServer:
    """Answers each POST with the next list of SSE events, then cuts the connection before
    the body ends (``cut=True``) or ends it properly; for the stream failures the loopback
    server cannot script."""

    def __init__(self, plans: list[tuple[list[bytes], bool]]) -> None:
        self.plans = list(plans)
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests += 1
                events, cut = owner.plans.pop(0)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in events:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                if cut:
                    self.close_connection = True
                else:
                    self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @contextlib.contextmanager
    def running(self) -> Iterator[_CutStreamServer]:
        thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01})
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join()


def _events(reply: Any) -> list[bytes]:
    events = _anthropic_wire.stream_events(reply, number=1, model=MODEL, usage=Usage(3, 4))
    return _anthropic_wire.encode_events(events)


GREETING = text_reply("Hello there, Alice, nice to meet you.")
ERROR_EVENT = b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'  # noqa: E501


@pytest.mark.parametrize(
    ("tail", "cut", "detail"),
    [
        ([], True, "the connection broke"),
        ([ERROR_EVENT], False, "Overloaded"),
        ([], False, "ended before its message_stop"),
    ],
)
def test_stream_failing_after_chunks_is_interrupted_and_not_retried(
    tail: list[bytes], cut: bool, detail: str
) -> None:
    chunks: list[StreamChunk] = []
    partial = _events(GREETING)[:5]  # message_start, ping, block start, two text pieces
    server = _CutStreamServer([(partial + tail, cut), (_events(GREETING), False)])
    with server.running(), client_for(server.url) as client:
        backend = AnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
        with pytest.raises(LLMError) as info:
            backend.complete(LLMRequest(HELLO.messages, on_chunk=chunks.append))

    error = info.value
    assert server.requests == 1
    assert (error.kind, error.retriable, error.attempts) == ("stream_interrupted", False, 1)
    assert "after 2 chunks" in str(error) and detail in str(error)
    assert "".join(c.text for c in chunks) == "Hello there, Alice, nice to meet you."[:32]


@pytest.mark.parametrize("listening", [False, True])
def test_stream_failing_before_any_chunk_reached_a_callback_is_retried(listening: bool) -> None:
    chunks: list[StreamChunk] = []
    # With nobody listening, text already read does not stand in the way of a retry.
    partial = _events(GREETING)[: 5 if not listening else 2]
    server = _CutStreamServer([(partial, True), (_events(GREETING), False)])
    with server.running(), client_for(server.url) as client:
        backend = AnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
        on_chunk = chunks.append if listening else None
        reply = backend.complete(LLMRequest(HELLO.messages, on_chunk=on_chunk))

    assert server.requests == 2
    assert reply.text == GREETING.text
    assert "".join(c.text for c in chunks) == (GREETING.text if listening else "")


def test_async_stream_cut_after_chunks_is_interrupted() -> None:
    server = _CutStreamServer([(_events(GREETING)[:5], True)])

    async def run() -> LLMError:
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key=API_KEY) as client:
            backend = AsyncAnthropicBackend(
                client, model=MODEL, retry=FAST, stream=True, on_token=lambda text: None
            )
            with pytest.raises(LLMError) as info:
                await backend.acomplete(HELLO)
            return info.value

    with server.running():
        error = asyncio.run(run())
    assert (error.kind, error.attempts, server.requests) == ("stream_interrupted", 1, 1)
