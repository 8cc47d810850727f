"""The scripted server reports prompt-cache figures as each API does, streamed or not, so the
real ``openai`` and ``anthropic`` SDKs, and looplet's backends, read back what a script says."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import anthropic
import openai
import pytest

from looplet import LoopConfig, composable_loop
from looplet.backends import AnthropicBackend, AsyncAnthropicBackend, OpenAIBackend
from looplet.backends.base import LLMRequest
from looplet.cache import CachePolicy
from looplet.errors import ConfigurationError
from looplet.messages import Message
from looplet.testing import (
    RecordedRequest,
    ScriptedModelServer,
    call,
    text_reply,
    tool_reply,
)
from looplet.testing.server import load_script
from looplet.types import Usage
from tests._anthropic import API_KEY, FAST, MODEL
from tests.conftest import make_tools

#: 2,000 prompt tokens: 1,800 read from the cache, 150 written to it, 50 neither.
CACHED = {"input_tokens": 2000, "output_tokens": 20, "cache_read_tokens": 1800}
CACHED_USAGE = {**CACHED, "cache_write_tokens": 150}
HELLO: Any = [{"role": "user", "content": "Greet Alice"}]  # both APIs accept it
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def raw_post(server: ScriptedModelServer, path: str, body: Any) -> Any:
    """POST ``body`` without an SDK; the decoded JSON reply (a non-streamed request)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    headers = {"Content-Type": "application/json", "x-api-key": API_KEY}
    headers["Authorization"] = f"Bearer {API_KEY}"
    headers["anthropic-version"] = "2023-06-01"
    try:
        conn.request("POST", path, json.dumps(body), headers)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@STREAMS
def test_the_openai_sdk_reads_the_cached_tokens(stream: bool) -> None:
    script = [text_reply("Hello!", usage=Usage(**CACHED_USAGE))]
    with (
        ScriptedModelServer(script) as server,
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0) as client,
    ):
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model="m",
                    messages=HELLO,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            reported = chunks[-1].usage
        else:
            reported = client.chat.completions.create(model="m", messages=HELLO).usage
    assert reported is not None and reported.prompt_tokens_details is not None
    assert reported.prompt_tokens == 2000  # counts the cached tokens, as OpenAI's does
    assert reported.prompt_tokens_details.cached_tokens == 1800
    assert (reported.completion_tokens, reported.total_tokens) == (20, 2020)


@STREAMS
def test_the_anthropic_sdk_reads_the_cache_reads_and_writes(stream: bool) -> None:
    script = [text_reply("Hello!", usage=Usage(**CACHED_USAGE))]
    with (
        ScriptedModelServer(script) as server,
        anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as client,
    ):
        params: Any = {"model": MODEL, "max_tokens": 50, "messages": HELLO}
        if stream:
            with client.messages.stream(**params) as events:
                reported = events.get_final_message().usage
        else:
            reported = client.messages.create(**params).usage
    assert reported.input_tokens == 50  # Anthropic's: the part neither read nor written
    assert reported.cache_read_input_tokens == 1800
    assert reported.cache_creation_input_tokens == 150
    assert reported.output_tokens == 20


@STREAMS
def test_looplets_backends_read_back_the_scripted_usage(stream: bool) -> None:
    script = [text_reply("Hello!", usage=Usage(**CACHED_USAGE))]
    request = LLMRequest([Message.system("You greet people."), Message.user("Greet Alice")])
    with ScriptedModelServer(script * 2) as server:
        with anthropic.Anthropic(base_url=server.url, api_key=API_KEY) as client:
            claude = AnthropicBackend(client, model=MODEL, retry=FAST, stream=stream)
            from_anthropic = claude.complete(request).usage
        with openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as oai:
            gpt = OpenAIBackend(oai, model="m", retry=FAST, stream=stream)
            from_openai = gpt.complete(request).usage
    assert from_anthropic == Usage(**CACHED_USAGE)
    assert from_anthropic.uncached_input_tokens == 50
    # OpenAI reports cache reads only: the write has no place on its wire.
    assert from_openai == Usage(**CACHED)


def test_a_callable_item_can_emulate_a_cache_for_a_run() -> None:
    """What a user's own caching test looks like: the script decides from the request."""
    seen: list[bool] = []

    def cache_aware(request: RecordedRequest) -> Any:
        marked = "cache_control" in json.dumps(request.body)
        seen.append(marked)
        cached = 900 if marked and len(seen) > 1 else 0  # the first request wrote it
        written = 100 if marked else 0
        counts = Usage(1000, 10, cache_read_tokens=cached, cache_write_tokens=written)
        if len(seen) == 3:
            return tool_reply(call("done", {"answer": "Greeted."}), usage=counts)
        return tool_reply(call("greet", {"name": "Alice"}), usage=counts)

    config = LoopConfig(cache_policy=CachePolicy())
    with (
        ScriptedModelServer([cache_aware] * 3) as server,
        anthropic.Anthropic(base_url=server.url, api_key=API_KEY) as client,
    ):
        llm = AnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
        loop = composable_loop(llm=llm, tools=make_tools(), task="Greet Alice.", config=config)
        list(loop)
    assert seen == [True, True, True]
    assert [t.usage.cache_read_tokens for t in loop.trajectory.turns] == [0, 900, 900]
    assert loop.trajectory.usage.cache_read_tokens == 1800
    assert loop.trajectory.usage.cache_write_tokens == 300
    assert loop.trajectory.usage.input_tokens == 3000


def test_the_async_anthropic_backend_reads_them_too() -> None:
    script = [text_reply("Hello!", usage=Usage(**CACHED_USAGE))]

    async def go(server: ScriptedModelServer) -> Any:
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key=API_KEY) as client:
            llm = AsyncAnthropicBackend(client, model=MODEL, retry=FAST, stream=True)
            return (await llm.acomplete(LLMRequest([Message.user("Hi")]))).usage

    with ScriptedModelServer(script) as server:
        assert asyncio.run(go(server)) == Usage(**CACHED_USAGE)


def test_the_json_form_carries_cache_figures_and_a_cut_stream_keeps_them(tmp_path: Any) -> None:
    path = tmp_path / "script.json"
    item = {
        "text": "Hello!",
        "usage": {
            "prompt_tokens": 2000,
            "completion_tokens": 20,
            "cache_read_tokens": 1800,
            "cache_write_tokens": 150,
        },
    }
    path.write_text(json.dumps([item, {"cut_after": 1, "then": item}]))
    script = load_script(str(path))
    assert script[0].usage == Usage(**CACHED_USAGE)  # type: ignore[union-attr]
    with (
        ScriptedModelServer(script) as server,
        anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as client,
    ):
        whole = raw_post(
            server, "/v1/messages", {"model": MODEL, "max_tokens": 9, "messages": HELLO}
        )
        # A cut stream sends the reply's first events: its message_start has the figures.
        params: Any = {"model": MODEL, "max_tokens": 9, "messages": HELLO, "stream": True}
        with client.messages.create(**params) as events:
            first = next(iter(events))
    assert whole["usage"] == {
        "input_tokens": 50,
        "cache_creation_input_tokens": 150,
        "cache_read_input_tokens": 1800,
        "output_tokens": 20,
    }
    assert first.type == "message_start"
    assert first.message.usage.cache_read_input_tokens == 1800


def test_replies_without_cache_figures_keep_the_plain_usage() -> None:
    with ScriptedModelServer(
        [text_reply("hi", usage=Usage(input_tokens=12, output_tokens=3))] * 2
    ) as server:
        openai_body = raw_post(server, "/v1/chat/completions", {"model": "m", "messages": HELLO})
        claude_body = raw_post(
            server, "/v1/messages", {"model": MODEL, "max_tokens": 9, "messages": HELLO}
        )
    assert openai_body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert claude_body["usage"] == {"input_tokens": 12, "output_tokens": 3}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (Usage(input_tokens=100, cache_read_tokens=90, cache_write_tokens=20), "exceed input"),
        ({"prompt_tokens": 10, "cache_read_tokens": 11}, "exceed input_tokens"),
        ({"prompt_tokens": 10, "cached_tokens": 5}, "unknown key.*'cached_tokens'"),
        ({"prompt_tokens": 10, "input_tokens": 10}, "input_tokens twice"),
        ({"prompt_tokens": -1}, "ints >= 0"),
        ({"prompt_tokens": "10"}, "ints >= 0"),
    ],
)
def test_impossible_cache_figures_are_refused_with_the_fix(given: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        text_reply("hi", usage=given)
