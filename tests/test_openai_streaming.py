"""Streaming OpenAI backends: the real SDK over real HTTP, and the chunk assembler on its own.

A streamed reply must come back as exactly the :class:`LLMResponse` of the non-streamed one,
its pieces must reach ``on_chunk``/``on_token`` as they arrive, and a stream that breaks after
pieces were handed out must fail without a retry: the server's :func:`cut_stream` sends the
first chunks of a scripted stream and then hangs up, sends an error event, or ``[DONE]``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from looplet import StopReason, async_composable_loop, composable_loop
from looplet.backends._openai_stream import StreamAssembler
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy, StreamChunk
from looplet.backends.openai import AsyncOpenAIBackend, OpenAIBackend, from_openai_completion
from looplet.errors import ConfigurationError, LLMError
from looplet.messages import Message
from looplet.observe import StreamingHook
from looplet.testing import (
    ScriptedModelServer,
    call,
    cut_stream,
    error_reply,
    text_reply,
    tool_reply,
)
from looplet.testing._script import ScriptedReply
from looplet.testing._wire import completion_chunks, completion_object
from looplet.types import Usage
from tests.conftest import make_tools

API_KEY = "sk-test"
FAST = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01)
GREET_SCHEMA = {
    "name": "greet",
    "description": "Greet someone by name.",
    "parameters": {"type": "object", "properties": {"name": {"type": "string"}}},
}
HELLO = LLMRequest([Message.user("Greet Alice.")], tools=[GREET_SCHEMA], max_tokens=100)

TEXT = text_reply("Hello Alice, and welcome to the streamed reply!")
CALLS = tool_reply(
    call("greet", {"name": "Alice Liddell of Wonderland"}),
    call("done", '{"answer": "greeted", "note": '),  # malformed: must stay malformed
    text="Greeting her first.",
    usage={"prompt_tokens": 12, "completion_tokens": 5},
)


@dataclass
class Seen:
    """What one streamed ``complete`` gave: the reply (or the LLMError) and the callbacks' view."""

    result: LLMResponse | LLMError
    chunks: list[StreamChunk] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    @property
    def reply(self) -> LLMResponse:
        assert isinstance(self.result, LLMResponse), self.result
        return self.result

    @property
    def error(self) -> LLMError:
        assert isinstance(self.result, LLMError), self.result
        return self.result

    def arguments(self, index: int) -> list[str]:
        """The argument fragments ``on_chunk`` got for call ``index`` (empty ones left out)."""
        return [c.arguments for c in self.chunks if c.tool_index == index and c.arguments]


def _stream_sync(base_url: str, *, callbacks: bool = True, **backend_kw: Any) -> Seen:
    seen = Seen(LLMResponse())
    on_token = backend_kw.pop("on_token", seen.tokens.append if callbacks else None)
    request = LLMRequest(
        HELLO.messages,
        tools=HELLO.tools,
        max_tokens=HELLO.max_tokens,
        on_chunk=seen.chunks.append if callbacks else None,
    )
    with openai.OpenAI(base_url=base_url, api_key=API_KEY) as client:
        backend = OpenAIBackend(
            client, model="gpt-test", retry=FAST, stream=True, on_token=on_token, **backend_kw
        )
        try:
            seen.result = backend.complete(request)
        except LLMError as exc:
            seen.result = exc
    return seen


async def _stream_async(base_url: str, *, callbacks: bool = True, **backend_kw: Any) -> Seen:
    seen = Seen(LLMResponse())
    on_token = backend_kw.pop("on_token", seen.tokens.append if callbacks else None)
    request = LLMRequest(
        HELLO.messages,
        tools=HELLO.tools,
        max_tokens=HELLO.max_tokens,
        on_chunk=seen.chunks.append if callbacks else None,
    )
    async with openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY) as client:
        backend = AsyncOpenAIBackend(
            client, model="gpt-test", retry=FAST, stream=True, on_token=on_token, **backend_kw
        )
        try:
            seen.result = await backend.acomplete(request)
        except LLMError as exc:
            seen.result = exc
    return seen


def stream(mode: str, base_url: str, **kw: Any) -> Seen:
    """One streamed ``complete`` (``mode="sync"``) or ``acomplete`` (``"async"``) of HELLO."""
    if mode == "sync":
        return _stream_sync(base_url, **kw)
    return asyncio.run(_stream_async(base_url, **kw))


def _not_streamed(item: ScriptedReply) -> LLMResponse:
    with (
        ScriptedModelServer([item]) as server,
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as client,
    ):
        return OpenAIBackend(client, model="gpt-test").complete(HELLO)


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


# --- over HTTP: a whole stream ---------------------------------------------------------------


@MODES
@pytest.mark.parametrize("item", [TEXT, CALLS], ids=["text", "tool_calls"])
def test_streamed_reply_equals_the_non_streamed_reply(mode: str, item: ScriptedReply) -> None:
    with ScriptedModelServer([item]) as server:
        seen = stream(mode, server.base_url)

    body = server.requests[0].body
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})
    assert seen.reply == _not_streamed(item)
    assert seen.reply.text == item.text


def test_tool_calls_keep_ids_names_and_a_malformed_call_stays_malformed() -> None:
    with ScriptedModelServer([CALLS]) as server:
        reply = stream("sync", server.base_url).reply

    greet, done = reply.tool_calls
    assert (greet.tool, greet.call_id, greet.args) == (
        "greet",
        "call_1_0",
        {"name": "Alice Liddell of Wonderland"},
    )
    assert (done.tool, done.call_id, done.raw_arguments) == (
        "done",
        "call_1_1",
        CALLS.tool_calls[1].arguments,
    )
    assert done.parse_error and not done.args
    assert reply.finish_reason == "tool_calls"


@MODES
def test_callbacks_get_every_piece_and_they_add_up_to_the_reply(mode: str) -> None:
    with ScriptedModelServer([CALLS]) as server:
        seen = stream(mode, server.base_url)

    reply = seen.reply
    texts = [c.text for c in seen.chunks if c.text]
    assert len(texts) >= 2 and "".join(texts) == reply.text
    assert seen.tokens == texts  # on_token gets the same text pieces, in order
    for index, tool_call in enumerate(reply.tool_calls):
        fragments = seen.arguments(index)
        assert len(fragments) >= 2, "the arguments should arrive split"
        assert "".join(fragments) == tool_call.raw_arguments
        [head] = [c for c in seen.chunks if c.tool_index == index and c.tool_name]
        assert (head.tool_name, head.call_id) == (tool_call.tool, tool_call.call_id)
    # Text first, then call 0's pieces, then call 1's: in the order they arrived.
    order = [c.tool_index for c in seen.chunks]
    assert order == sorted(order, key=lambda i: -1 if i is None else i)


@MODES
def test_usage_comes_from_the_usage_chunk(mode: str) -> None:
    with ScriptedModelServer([text_reply("Hi!", usage=Usage(321, 7))]) as server:
        seen = stream(mode, server.base_url)

    assert seen.reply.usage == Usage(321, 7)


def test_async_stream_gives_the_same_reply_chunks_and_requests_as_sync() -> None:
    with ScriptedModelServer([CALLS]) as server:
        sync_seen = stream("sync", server.base_url)
        sync_bodies = [r.body for r in server.requests]
    with ScriptedModelServer([CALLS]) as server:
        async_seen = stream("async", server.base_url)
        async_bodies = [r.body for r in server.requests]

    assert async_seen.reply == sync_seen.reply
    assert async_seen.chunks == sync_seen.chunks and len(sync_seen.chunks) > 5
    assert async_seen.tokens == sync_seen.tokens
    assert async_bodies == sync_bodies


def test_last_usage_is_set_by_a_streamed_call() -> None:
    with (
        ScriptedModelServer([CALLS]) as server,
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as client,
    ):
        backend = OpenAIBackend(client, model="gpt-test", stream=True)
        backend.complete(HELLO)

    assert backend.last_usage == Usage(12, 5)
    assert "stream=True" in repr(backend)


@MODES
def test_rate_limit_before_the_first_chunk_is_retried(mode: str) -> None:
    limited = error_reply(429, "Rate limit reached.", type="rate_limit_error")
    with ScriptedModelServer([limited, CALLS]) as server:
        seen = stream(mode, server.base_url)

    assert len(server.requests) == 2
    assert seen.reply.tool_calls[0].args == {"name": "Alice Liddell of Wonderland"}
    assert "".join(seen.tokens) == CALLS.text  # each piece delivered once


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_loop_streams_text_and_tool_calls_to_a_streaming_hook(mode: str) -> None:
    script = [
        tool_reply(call("greet", {"name": "Alice"}), text="Greeting Alice now."),
        tool_reply(call("done", {"answer": "Greeted Alice."})),
    ]
    chunks: list[StreamChunk] = []
    texts: list[str] = []
    hook = StreamingHook(on_chunk=chunks.append, on_text=texts.append)
    with ScriptedModelServer(script) as server:
        if mode == "sync":
            with openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as client:
                llm = OpenAIBackend(client, model="gpt-test", stream=True)
                loop = composable_loop(llm=llm, tools=make_tools(), task="Greet.", hooks=[hook])
                steps = list(loop)
                trajectory = loop.trajectory
        else:

            async def go() -> Any:
                async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as c:
                    llm = AsyncOpenAIBackend(c, model="gpt-test", stream=True)
                    run = async_composable_loop(
                        llm=llm, tools=make_tools(), task="Greet.", hooks=[hook]
                    )
                    return [s async for s in run], run.trajectory

            steps, trajectory = asyncio.run(go())

    assert [s.tool_call.tool for s in steps] == ["greet", "done"]
    assert trajectory.stop_reason is StopReason.DONE
    assert all(r.body["stream"] is True for r in server.requests)
    assert len(texts) >= 2 and "".join(texts) == "Greeting Alice now."
    names = [c.tool_name for c in chunks if c.tool_name]
    assert names == ["greet", "done"]
    arguments = "".join(c.arguments for c in chunks)
    assert arguments == '{"name": "Alice"}{"answer": "Greeted Alice."}'
    assert sum(1 for c in chunks if c.arguments) >= 4


@MODES
def test_a_raising_callback_propagates_unchanged_without_a_retry(mode: str) -> None:
    class Stop(Exception):
        pass

    def explode(text: str) -> None:
        raise Stop(text)

    with ScriptedModelServer([TEXT, TEXT]) as server, pytest.raises(Stop):
        stream(mode, server.base_url, on_token=explode)

    assert len(server.requests) == 1


# --- over HTTP: a stream that breaks ---------------------------------------------------------


# The role chunk (nothing for the callbacks), both text pieces, call 0's head and its first
# argument fragment: four pieces reach the callbacks.
CUT_AFTER = 5


@MODES
def test_stream_cut_after_pieces_were_delivered_is_not_retried(mode: str) -> None:
    with ScriptedModelServer([cut_stream(CUT_AFTER, CALLS), CALLS]) as server:
        seen = stream(mode, server.base_url)

    error = seen.error
    assert len(server.requests) == 1
    assert (error.kind, error.attempts, error.retriable, error.status) == (
        "stream_interrupted",
        1,
        False,
        None,
    )
    assert len(seen.chunks) == CUT_AFTER - 1
    assert "the stream broke after 4 chunks" in str(error)
    # What broke the reading (the SDK's error, or the HTTP library's that some SDK versions let
    # through) is the cause, and its own words are kept.
    assert error.__cause__ is not None and str(error.__cause__) in error.provider_message


@MODES
def test_error_event_mid_stream_keeps_the_providers_message(mode: str) -> None:
    with ScriptedModelServer([cut_stream(CUT_AFTER, CALLS, ending="error"), CALLS]) as server:
        seen = stream(mode, server.base_url)

    assert len(server.requests) == 1
    assert seen.error.kind == "stream_interrupted"
    assert seen.error.provider_message.startswith("the stream broke after 4 chunks: ")
    assert "The server had an error while streaming" in seen.error.provider_message


@MODES
def test_stream_ending_without_a_finish_reason_is_interrupted(mode: str) -> None:
    no_finish = cut_stream(CUT_AFTER, CALLS, ending="no_finish")
    with ScriptedModelServer([no_finish, CALLS]) as server:
        seen = stream(mode, server.base_url)

    assert len(server.requests) == 1
    assert seen.error.kind == "stream_interrupted"
    assert "after 4 chunks: it ended without a finish_reason" in str(seen.error)


@MODES
def test_cut_before_any_piece_reached_a_callback_is_retried(mode: str) -> None:
    # The first chunk only carries the role: nothing for the callbacks yet.
    with ScriptedModelServer([cut_stream(1, CALLS), CALLS]) as server:
        seen = stream(mode, server.base_url)

    assert len(server.requests) == 2
    assert seen.reply.text == CALLS.text
    assert "".join(seen.tokens) == CALLS.text  # no piece twice


def test_cut_is_retried_when_no_callback_listens() -> None:
    with ScriptedModelServer([cut_stream(CUT_AFTER, CALLS), CALLS]) as server:
        seen = stream("sync", server.base_url, callbacks=False)

    assert len(server.requests) == 2
    assert seen.reply.tool_calls[0].call_id == "call_2_0"


@pytest.fixture
def unwrapped_transport_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the SDK let the HTTP library's errors through while a stream is read, as the
    ``openai`` SDKs up to 3.13 (which looplet supports) do; newer ones wrap them."""
    import openai._streaming

    if hasattr(openai._streaming, "request_exceptions"):
        monkeypatch.setattr(openai._streaming, "request_exceptions", lambda: ())


@MODES
@pytest.mark.usefixtures("unwrapped_transport_errors")
def test_raw_transport_error_mid_stream_becomes_an_llm_error(mode: str) -> None:
    with ScriptedModelServer([cut_stream(CUT_AFTER, CALLS), CALLS]) as server:
        seen = stream(mode, server.base_url)

    error = seen.error
    assert len(server.requests) == 1
    assert (error.kind, error.retriable, error.attempts) == ("stream_interrupted", False, 1)
    assert "the stream broke after 4 chunks: the connection broke while the reply" in str(error)
    cause = error.__cause__  # the HTTP library's own exception, named with its words
    assert cause is not None and f"({type(cause).__name__}: {cause})" in str(error)


@MODES
@pytest.mark.usefixtures("unwrapped_transport_errors")
def test_raw_transport_error_before_any_piece_is_retried(mode: str) -> None:
    with ScriptedModelServer([cut_stream(1, CALLS), CALLS]) as server:
        seen = stream(mode, server.base_url)

    assert len(server.requests) == 2
    assert seen.reply.text == CALLS.text


# --- the assembler on hand-built chunks ------------------------------------------------------


def _chunks(reply: ScriptedReply, usage: Usage) -> list[ChatCompletionChunk]:
    raw = completion_chunks(reply, number=1, model="gpt-test", usage=usage, include_usage=True)
    return [_chunk(c) for c in raw]


def _chunk(raw: dict[str, Any]) -> ChatCompletionChunk:
    # Unvalidated, nested models built: what the SDK does with each event of a stream.
    return ChatCompletionChunk.construct(**raw)


@pytest.mark.parametrize("item", [TEXT, CALLS], ids=["text", "tool_calls"])
def test_assembler_builds_what_the_whole_completion_gives(item: ScriptedReply) -> None:
    assembler = StreamAssembler()
    for chunk in _chunks(item, Usage(3, 4)):
        assembler.feed(chunk)
    whole = completion_object(item, number=1, model="gpt-test", usage=Usage(3, 4))

    assert assembler.response() == from_openai_completion(ChatCompletion.model_validate(whole))
    assert assembler.delivered == 0  # no callbacks: nothing was handed out


def test_assembler_without_a_finish_reason_raises_stream_interrupted() -> None:
    pieces: list[StreamChunk] = []
    assembler = StreamAssembler(on_chunk=pieces.append, provider="vllm")
    for chunk in _chunks(CALLS, Usage(3, 4))[:CUT_AFTER]:
        assembler.feed(chunk)

    with pytest.raises(LLMError) as info:
        assembler.response(attempts=2)
    error = info.value
    assert (error.kind, error.provider, error.attempts) == ("stream_interrupted", "vllm", 2)
    assert assembler.delivered == len(pieces) == 4
    assert str(error).startswith("vllm request failed (stream interrupted) after 2 attempts: ")


def test_assembler_takes_id_and_name_from_the_first_fragment_only() -> None:
    # Some compatible servers repeat the id and name on every fragment, or leave out the
    # index (a fragment with an id then opens the next call).
    def chunk(*calls: dict[str, Any], finish: str | None = None, choice: int = 0) -> Any:
        delta = {"tool_calls": list(calls)} if calls else {}
        return _chunk(
            {
                "id": "c",
                "model": "m",
                "choices": [{"index": choice, "delta": delta, "finish_reason": finish}],
            }
        )

    def fragment(index: int | None, id: str | None, name: str | None, args: str) -> Any:
        out: dict[str, Any] = {"id": id, "function": {"name": name, "arguments": args}}
        return out if index is None else {**out, "index": index}

    pieces: list[StreamChunk] = []
    assembler = StreamAssembler(on_chunk=pieces.append)
    assembler.feed(chunk(fragment(0, "a", "greet", '{"name": ')))
    assembler.feed(chunk(fragment(0, "a-again", "greet", '"Al"}')))
    assembler.feed(chunk(fragment(0, "x", "other", '"ignored"}'), choice=1))  # not choice 0
    assembler.feed(chunk(fragment(None, "b", "done", '{"answer"')))
    assembler.feed(chunk(fragment(None, None, None, ': "hi"}')))
    assembler.feed(chunk(finish="tool_calls"))
    reply = assembler.response()

    greet, done = reply.tool_calls
    assert (greet.tool, greet.call_id, greet.args) == ("greet", "a", {"name": "Al"})
    assert (done.tool, done.call_id, done.args) == ("done", "b", {"answer": "hi"})
    assert [(p.tool_index, p.arguments) for p in pieces] == [
        (0, '{"name": '),
        (0, '"Al"}'),
        (1, '{"answer"'),
        (1, ': "hi"}'),
    ]
    assert reply.finish_reason == "tool_calls"


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend_cls", [OpenAIBackend, AsyncOpenAIBackend])
def test_on_token_without_stream_is_a_configuration_error(backend_cls: Any) -> None:
    client_cls = openai.OpenAI if backend_cls is OpenAIBackend else openai.AsyncOpenAI
    client = client_cls(base_url="http://127.0.0.1:9/v1", api_key=API_KEY)
    try:
        with pytest.raises(ConfigurationError, match=r"stream=True"):
            backend_cls(client, model="gpt-test", on_token=print)
        with pytest.raises(ConfigurationError, match=r"must be a function"):
            backend_cls(client, model="gpt-test", stream=True, on_token="print")
    finally:
        if isinstance(client, openai.OpenAI):
            client.close()
        else:
            asyncio.run(client.close())
