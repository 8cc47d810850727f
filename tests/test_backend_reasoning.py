"""ToolCall.reasoning from the native backends, over real HTTP, streamed and not, sync and async.

OpenAI: the message's text that comes with tool calls is every call's reasoning. Anthropic: the
turn's thinking then its text (see ``reasoning_of_turn``), shared by every call of the turn.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import openai
import pytest

from looplet.backends.anthropic import AnthropicBackend, AsyncAnthropicBackend
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy
from looplet.backends.openai import AsyncOpenAIBackend, OpenAIBackend
from looplet.messages import Message
from looplet.testing import ScriptedModelServer, call, tool_reply

FAST = RetryPolicy(max_retries=0, base_delay=0.001, max_delay=0.01)
SCHEMA = {"name": "greet", "description": "Greet.", "parameters": {"type": "object"}}
HELLO = LLMRequest([Message.user("Greet Alice and Bob.")], tools=[SCHEMA], max_tokens=100)
TEXT = "Greeting both of them now."
REPLY = tool_reply(call("greet", {"name": "Alice"}), call("greet", {"name": "Bob"}), text=TEXT)


def _complete(kind: str, url: str, *, stream: bool, use_async: bool) -> LLMResponse:
    if kind == "openai":
        if use_async:
            a_oai = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-test")
            backend: Any = AsyncOpenAIBackend(a_oai, model="m", retry=FAST, stream=stream)
        else:
            oai = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test")
            backend = OpenAIBackend(oai, model="m", retry=FAST, stream=stream)
    elif use_async:
        a_ant = anthropic.AsyncAnthropic(base_url=url, api_key="k")
        backend = AsyncAnthropicBackend(a_ant, model="m", retry=FAST, stream=stream)
    else:
        ant = anthropic.Anthropic(base_url=url, api_key="k")
        backend = AnthropicBackend(ant, model="m", retry=FAST, stream=stream)
    if use_async:

        async def run() -> LLMResponse:
            result: LLMResponse = await backend.acomplete(HELLO)
            await backend.aclose()
            return result

        return asyncio.run(run())
    result: LLMResponse = backend.complete(HELLO)
    backend.close()
    return result


MODES = [(s, a) for s in (False, True) for a in (False, True)]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(("stream", "use_async"), MODES)
def test_each_call_carries_the_text_written_with_it(
    kind: str, stream: bool, use_async: bool
) -> None:
    with ScriptedModelServer([REPLY]) as server:
        reply = _complete(kind, server.url, stream=stream, use_async=use_async)
    assert [c.args for c in reply.tool_calls] == [{"name": "Alice"}, {"name": "Bob"}]
    assert [c.reasoning for c in reply.tool_calls] == [TEXT, TEXT]
    assert reply.text == TEXT


# Anthropic thinking: the scripted server does not send thinking blocks, so a tiny loopback
# server answers with a fixed reply that has them (whole, or as the SSE events of a stream).
THINKING = ["The user wants two greetings.", "Alice first."]
CONTENT: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": THINKING[0], "signature": "sig1"},
    {"type": "redacted_thinking", "data": "opaque"},
    {"type": "thinking", "thinking": THINKING[1], "signature": "sig2"},
    {"type": "text", "text": TEXT},
    {"type": "tool_use", "id": "toolu_1", "name": "greet", "input": {"name": "Alice"}},
    {"type": "tool_use", "id": "toolu_2", "name": "greet", "input": {"name": "Bob"}},
]
HEAD = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m"}
USAGE = {"input_tokens": 10, "output_tokens": 5}


def _events() -> list[dict[str, Any]]:
    start = {**HEAD, "content": [], "stop_reason": None, "stop_sequence": None, "usage": USAGE}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(CONTENT):
        kind = block["type"]
        if kind == "thinking":
            head: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            text = block["thinking"]
            deltas = [{"type": "thinking_delta", "thinking": text[:5]}]
            deltas += [{"type": "thinking_delta", "thinking": text[5:]}]
            deltas += [{"type": "signature_delta", "signature": block["signature"]}]
        elif kind == "text":
            head, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": TEXT}]
        elif kind == "tool_use":
            head = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        else:
            head, deltas = block, []
        events.append({"type": "content_block_start", "index": i, "content_block": head})
        events += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": USAGE})
    events.append({"type": "message_stop"})
    return events


class _Thinking(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("stream"):
            data = b"".join(
                f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in _events()
            )
            kind = "text/event-stream"
        else:
            whole = {**HEAD, "content": CONTENT, "stop_reason": "tool_use", "usage": USAGE}
            data, kind = json.dumps({**whole, "stop_sequence": None}).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass  # keep the test output quiet


@pytest.fixture
def thinking_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Thinking)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(("stream", "use_async"), MODES)
def test_anthropic_thinking_then_text_is_the_reasoning(
    thinking_url: str, stream: bool, use_async: bool
) -> None:
    reply = _complete("anthropic", thinking_url, stream=stream, use_async=use_async)
    expected = "\n\n".join([*THINKING, TEXT])
    assert [c.reasoning for c in reply.tool_calls] == [expected, expected]
    assert [c.call_id for c in reply.tool_calls] == ["toolu_1", "toolu_2"]
    assert reply.text == TEXT  # thinking is not reply text
