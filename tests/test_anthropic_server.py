"""The loopback server's Anthropic Messages API, driven by the real ``anthropic`` SDK over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import openai
import pytest

import looplet
from looplet.testing import (
    RecordedRequest,
    ScriptedModelServer,
    call,
    cut_stream,
    error_reply,
    text_reply,
    tool_reply,
)
from looplet.types import Usage
from tests._anthropic import API_KEY, HELLO_PARAMS, MODEL, client_for, create, raw_post

GREET_TOOL: dict[str, Any] = {
    "name": "greet",
    "description": "Greet someone.",
    "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}},
}


def _sse_events(raw: bytes) -> list[tuple[str, Any]]:
    """The (event name, decoded data) pairs of a server-sent-event stream."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        events.append((name_line[7:], json.loads(data_line[6:])))
    return events


# -- plain replies ----------------------------------------------------------------------------


def test_tool_reply_is_a_message_with_tool_use_blocks() -> None:
    script = [tool_reply(call("greet", {"name": "Alice"}), call("done", {}, id="fixed"), text="Hi")]
    with ScriptedModelServer(script) as server, client_for(server, max_retries=0) as client:
        message = create(client, tools=[GREET_TOOL])

    assert (message.id, message.type, message.role) == ("msg_scripted_1", "message", "assistant")
    assert message.model == MODEL
    assert message.stop_reason == "tool_use"
    text, greet, done = message.content
    assert (text.type, text.text) == ("text", "Hi")
    assert (greet.type, greet.id, greet.name, greet.input) == (
        "tool_use",
        "toolu_1_0",
        "greet",
        {"name": "Alice"},
    )
    assert (done.id, done.name, done.input) == ("fixed", "done", {})
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_text_reply_ends_the_turn_and_reports_scripted_usage() -> None:
    script = [text_reply("Hello, Alice!", usage=Usage(123, 45))]
    with ScriptedModelServer(script) as server, client_for(server, max_retries=0) as client:
        message = create(client)

    [block] = message.content
    assert (block.type, block.text) == ("text", "Hello, Alice!")
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (123, 45)


def test_request_is_recorded_with_path_headers_and_body() -> None:
    with ScriptedModelServer(["ok"]) as server, client_for(server, max_retries=0) as client:
        create(client, system="Be brief.")
        (recorded,) = server.requests

    assert isinstance(recorded, RecordedRequest)
    assert (recorded.method, recorded.path) == ("POST", "/v1/messages")
    assert "anthropic-version" in recorded.headers
    assert recorded.body == {
        "model": MODEL,
        "max_tokens": 100,
        "messages": HELLO_PARAMS,
        "system": "Be brief.",
    }


def test_callable_item_sees_the_anthropic_request() -> None:
    def echo(request: RecordedRequest) -> Any:
        return text_reply(f"system was {request.body['system']!r}")

    with ScriptedModelServer([echo]) as server, client_for(server, max_retries=0) as client:
        message = create(client, system="Be kind.")

    assert message.content[0].text == "system was 'Be kind.'"


def test_one_script_serves_the_openai_and_the_anthropic_sdk_in_turn() -> None:
    script = [tool_reply(call("greet", {"name": "Bo"})), tool_reply(call("greet", {"name": "Bo"}))]
    with ScriptedModelServer(script) as server:
        with openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0) as oa:
            completion = oa.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        with client_for(server, max_retries=0) as client:
            message = create(client)

    function = (completion.choices[0].message.tool_calls or [])[0].function  # type: ignore[union-attr]
    assert json.loads(function.arguments) == message.content[0].input == {"name": "Bo"}
    assert completion.object == "chat.completion" and message.type == "message"


# -- streaming --------------------------------------------------------------------------------


def test_raw_stream_has_the_real_event_sequence_and_splits_the_tool_input() -> None:
    arguments = {"name": "Alice", "greeting": "Good morning!"}
    script = [tool_reply(call("greet", arguments), text="Let me greet her.")]
    with ScriptedModelServer(script) as server:
        body = {"model": MODEL, "max_tokens": 50, "messages": HELLO_PARAMS, "stream": True}
        status, headers, raw = raw_post(server, body)

    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = _sse_events(raw)
    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events if name != "content_block_delta"] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_stop",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"], start["model"]) == ([], None, MODEL)
    deltas = [d for name, d in events if name == "content_block_delta"]
    text = [d["delta"]["text"] for d in deltas if d["index"] == 0]
    json_pieces = [d["delta"]["partial_json"] for d in deltas if d["index"] == 1]
    assert {d["delta"]["type"] for d in deltas if d["index"] == 1} == {"input_json_delta"}
    assert "".join(text) == "Let me greet her." and len(text) >= 2
    assert len(json_pieces) >= 2 and json.loads("".join(json_pieces)) == arguments
    starts = [d["content_block"] for name, d in events if name == "content_block_start"]
    assert starts[0] == {"type": "text", "text": ""}
    tool_start = starts[1]
    assert (tool_start["type"], tool_start["name"], tool_start["input"]) == (
        "tool_use",
        "greet",
        {},
    )
    message_delta = events[-2][1]
    assert message_delta["delta"]["stop_reason"] == "tool_use"
    assert message_delta["usage"]["output_tokens"] > 0


def test_sdk_stream_accumulates_to_the_same_message_as_a_plain_reply() -> None:
    item = tool_reply(call("greet", {"name": "Alice"}, id="toolu_x"), text="Greeting Alice.")
    with ScriptedModelServer([item, item]) as server, client_for(server, max_retries=0) as client:
        plain = create(client, tools=[GREET_TOOL])
        with client.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=HELLO_PARAMS,
            tools=[GREET_TOOL],  # type: ignore[list-item]
        ) as stream:
            streamed = stream.get_final_message()

    def shape(message: Any) -> Any:
        return [block.to_dict() for block in message.content], message.stop_reason

    assert shape(streamed) == shape(plain)
    assert streamed.usage.output_tokens == plain.usage.output_tokens
    assert streamed.usage.input_tokens == plain.usage.input_tokens


# -- streams cut short (cut_stream) -----------------------------------------------------------

LONG = tool_reply(call("greet", {"name": "Alice"}), text="Greeting Alice now, then done.")
STREAMED = {"model": MODEL, "max_tokens": 50, "messages": HELLO_PARAMS, "stream": True}


def _raw_stream(server: ScriptedModelServer) -> tuple[list[tuple[str, Any]], bool]:
    """POST STREAMED without the SDK; its events, and whether the body was whole."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(
            "POST", "/v1/messages", body=json.dumps(STREAMED), headers={"anthropic-version": "1"}
        )
        resp = conn.getresponse()
        try:
            return _sse_events(resp.read()), True
        except http.client.IncompleteRead as exc:  # the connection closed mid-body
            return _sse_events(exc.partial), False
    finally:
        conn.close()


def _whole_events() -> list[tuple[str, Any]]:
    with ScriptedModelServer([LONG]) as server:
        events, whole = _raw_stream(server)
    assert whole
    return events


@pytest.mark.parametrize(("after", "ending"), [(4, "cut"), (6, "error"), (1000, "no_finish")])
def test_cut_stream_sends_the_first_events_then_its_ending(after: int, ending: str) -> None:
    with ScriptedModelServer([cut_stream(after, LONG, ending=ending)]) as server:
        events, whole = _raw_stream(server)

    full = _whole_events()
    assert whole is (ending != "cut")
    if ending == "cut":
        assert events == full[:4]
    elif ending == "error":
        assert events[:-1] == full[:6]
        name, data = events[-1]
        assert (name, data["error"]["type"]) == ("error", "overloaded_error")
        assert "cut_stream after 6 events" in data["error"]["message"]
    else:  # the whole stream but its message_stop: the message_delta is still there
        assert [name for name, _ in full][-2:] == ["message_delta", "message_stop"]
        assert events == full[:-1]


def test_cut_stream_through_the_sdk_fails_after_the_events_it_sent() -> None:
    script = [cut_stream(4, LONG, ending="error"), cut_stream(4, LONG, ending="no_finish")]
    with ScriptedModelServer(script) as server, client_for(server, max_retries=0) as client:
        seen: list[str] = []
        with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
            for event in create(client, stream=True):
                seen.append(event.type)
        ended = [event.type for event in create(client, stream=True)]

    # message_start, (ping: the SDK skips it), the text block's start, one text piece.
    assert seen == ended == ["message_start", "content_block_start", "content_block_delta"]


def test_cut_stream_answers_a_request_that_does_not_stream_whole() -> None:
    with (
        ScriptedModelServer([cut_stream(1, LONG)]) as server,
        client_for(server, max_retries=0) as client,
    ):
        message = create(client)

    assert message.content[0].text == LONG.text
    assert message.stop_reason == "tool_use"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
        (404, "not_found_error"),
    ],
)
def test_error_reply_has_anthropics_shape_and_sdk_exception(status: int, error_type: str) -> None:
    script = [error_reply(status, f"scripted {status}", retry_after=7)]
    with (
        ScriptedModelServer(script) as server,
        client_for(server, max_retries=0) as client,
        # The SDK's status error (which subclass it picks for a status is the SDK's business).
        pytest.raises(anthropic.APIStatusError, match=f"scripted {status}") as info,
    ):
        create(client)

    error = info.value
    assert error.status_code == status
    assert error.response.headers["retry-after"] == "7"
    assert error.body == {
        "type": "error",
        "error": {"type": error_type, "message": f"scripted {status}"},
        "request_id": "req_scripted_1",
    }
    assert error.request_id == "req_scripted_1"


def test_explicit_error_type_is_kept() -> None:
    script = [error_reply(400, "too long", type="invalid_request_error")]
    with ScriptedModelServer(script) as server:
        status, _, raw = raw_post(
            server, {"model": MODEL, "max_tokens": 5, "messages": HELLO_PARAMS}
        )

    assert status == 400
    assert json.loads(raw)["error"] == {"type": "invalid_request_error", "message": "too long"}


def test_api_key_is_accepted_as_bearer_or_x_api_key_and_enforced() -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": HELLO_PARAMS}
    with ScriptedModelServer(["sdk", "bearer", "header"], api_key=API_KEY) as server:
        with client_for(server, max_retries=0) as client:
            first = create(client)  # in the header of the SDK's choice (its versions differ)
        answers = [
            raw_post(server, body, {"authorization": f"Bearer {API_KEY}"}),
            raw_post(server, body, {"x-api-key": API_KEY}),
        ]
        with (
            anthropic.Anthropic(base_url=server.url, api_key="wrong", max_retries=0) as bad,
            pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key") as info,
        ):
            create(bad)
        assert server.served == 3 and len(server.requests) == 4

    assert first.content[0].text == "sdk"
    assert [(status, json.loads(raw)["content"][0]["text"]) for status, _, raw in answers] == [
        (200, "bearer"),
        (200, "header"),
    ]
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_exhausted_script_answers_500_api_error() -> None:
    with ScriptedModelServer(["one"]) as server, client_for(server, max_retries=0) as client:
        create(client)
        with pytest.raises(anthropic.InternalServerError, match="used up") as info:
            create(client)

    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]


# -- the command line -------------------------------------------------------------------------


def test_cli_with_api_anthropic_prints_the_root_url_for_the_sdk(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "Hello from the CLI."}]))
    root = str(Path(looplet.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "looplet.testing.server", "--script", str(script)]
    with subprocess.Popen(
        [*command, "--api", "anthropic", "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            parts = urlsplit(base_url)
            assert (parts.scheme, parts.hostname, parts.path) == ("http", "127.0.0.1", "")
            with anthropic.Anthropic(base_url=base_url, api_key=API_KEY, max_retries=0) as client:
                message = create(client)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    assert message.content[0].text == "Hello from the CLI."
    assert proc.returncode == 0
    assert "stopped after 1 requests (1 of 1 script items used)" in stderr
