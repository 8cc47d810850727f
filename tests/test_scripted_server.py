"""The loopback OpenAI-compatible server, driven by the real ``openai`` SDK over real HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

import looplet
from looplet.errors import ConfigurationError
from looplet.parse import tool_call_from_openai
from looplet.testing import (
    RecordedRequest,
    ScriptedModelServer,
    call,
    cut_stream,
    error_reply,
    slow_reply,
    text_reply,
    tool_reply,
)
from looplet.testing.server import load_script
from looplet.types import Usage

API_KEY = "test-key"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Greet Alice"}]


def _client(server: ScriptedModelServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, **kwargs)


def _raw_post(server: ScriptedModelServer, body: Any) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` (JSON) to the chat endpoint without the SDK; status, headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _raw_stream(server: ScriptedModelServer, body: Any) -> tuple[bytes, bool]:
    """POST a streamed chat request without the SDK; the body read, and whether it was whole."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body))
        resp = conn.getresponse()
        try:
            return resp.read(), True
        except http.client.IncompleteRead as exc:  # the connection closed mid-body
            return exc.partial, False
    finally:
        conn.close()


def _sse_chunks(raw: bytes) -> list[Any]:
    """The ``data:`` payloads of a server-sent-event stream, ``[DONE]`` kept as a string."""
    events = [e for e in raw.decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e[6:] if e[6:] == "[DONE]" else json.loads(e[6:]) for e in events]


# -- plain completions ------------------------------------------------------------------------


def test_tool_reply_decodes_to_sdk_tool_calls() -> None:
    script = [tool_reply(call("greet", {"name": "Alice"}), call("done", {}, id="fixed"))]
    with ScriptedModelServer(script) as server, _client(server) as client:
        reply = client.chat.completions.create(model="gpt-test", messages=HELLO)

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [  # type: ignore[union-attr]
        ("call_1_0", "function", "greet"),
        ("fixed", "function", "done"),
    ]
    assert json.loads(calls[0].function.arguments) == {"name": "Alice"}  # type: ignore[union-attr]
    assert reply.model == "gpt-test"
    assert reply.object == "chat.completion"


def test_text_reply_has_stop_finish_and_content() -> None:
    with ScriptedModelServer(["Hello, Alice!"]) as server, _client(server) as client:
        reply = client.chat.completions.create(model="m", messages=HELLO)

    assert reply.choices[0].message.content == "Hello, Alice!"
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


def test_default_usage_is_a_deterministic_estimate() -> None:
    with ScriptedModelServer(["abcdefgh", "abcdefgh"]) as server, _client(server) as client:
        first = client.chat.completions.create(model="m", messages=HELLO)
        second = client.chat.completions.create(model="other", messages=HELLO)

    assert first.usage is not None and second.usage is not None
    assert first.usage.completion_tokens == 2  # 8 characters / 4
    assert first.usage.prompt_tokens > 0
    assert first.usage.total_tokens == first.usage.prompt_tokens + 2
    assert first.usage == second.usage


def test_scripted_usage_is_reported_as_given() -> None:
    script = [text_reply("hi", usage=Usage(123, 45))]
    with ScriptedModelServer(script) as server, _client(server) as client:
        reply = client.chat.completions.create(model="m", messages=HELLO)

    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (123, 45)
    assert reply.usage.total_tokens == 168


def test_malformed_arguments_arrive_verbatim_and_parse_with_an_error() -> None:
    script = [tool_reply(call("greet", '{"name": "Al'))]
    with ScriptedModelServer(script) as server, _client(server) as client:
        reply = client.chat.completions.create(model="m", messages=HELLO)

    sdk_call = (reply.choices[0].message.tool_calls or [])[0]
    arguments = sdk_call.function.arguments  # type: ignore[union-attr]
    assert arguments == '{"name": "Al'
    parsed = tool_call_from_openai("greet", arguments, sdk_call.id)
    assert parsed.parse_error is not None
    assert parsed.raw_arguments == '{"name": "Al'


def test_request_log_records_method_path_headers_and_body() -> None:
    with ScriptedModelServer(["ok"]) as server, _client(server) as client:
        client.chat.completions.create(model="m", messages=HELLO, temperature=0.5)
        requests = server.requests

    (recorded,) = requests
    assert isinstance(recorded, RecordedRequest)
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"
    assert recorded.body == {"model": "m", "messages": HELLO, "temperature": 0.5}
    assert json.loads(recorded.raw) == recorded.body


def test_callable_item_sees_the_request() -> None:
    def echo(request: RecordedRequest) -> Any:
        return text_reply("you said: " + request.body["messages"][-1]["content"])

    with ScriptedModelServer([echo]) as server, _client(server) as client:
        reply = client.chat.completions.create(model="m", messages=HELLO)

    assert reply.choices[0].message.content == "you said: Greet Alice"


def test_json_form_dict_items_are_served() -> None:
    script: list[Any] = [
        {"tool_calls": [{"name": "greet", "arguments": {"name": "Bo"}}], "text": "calling"},
        {"error": {"status": 429, "message": "slow down", "retry_after": 3}},
    ]
    with ScriptedModelServer(script) as server, _client(server) as client:
        first = client.chat.completions.create(model="m", messages=HELLO)
        with pytest.raises(openai.RateLimitError, match="slow down"):
            client.chat.completions.create(model="m", messages=HELLO)

    assert first.choices[0].message.content == "calling"
    function = (first.choices[0].message.tool_calls or [])[0].function  # type: ignore[union-attr]
    assert (function.name, json.loads(function.arguments)) == ("greet", {"name": "Bo"})


def test_models_endpoint_lists_one_model() -> None:
    with ScriptedModelServer() as server, _client(server) as client:
        models = client.models.list()

    assert [m.id for m in models.data] == ["looplet-scripted"]


def test_concurrent_async_requests_each_get_one_item() -> None:
    script = [text_reply(f"reply {i}") for i in range(6)]

    async def run(server: ScriptedModelServer) -> set[str]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=API_KEY, max_retries=0
        ) as client:
            replies = await asyncio.gather(
                *(client.chat.completions.create(model="m", messages=HELLO) for _ in range(6))
            )
        return {r.choices[0].message.content or "" for r in replies}

    with ScriptedModelServer(script) as server:
        texts = asyncio.run(run(server))
        assert server.served == 6

    assert texts == {f"reply {i}" for i in range(6)}


def test_reset_serves_a_new_script_and_clears_the_log() -> None:
    with ScriptedModelServer(["first"]) as server, _client(server) as client:
        client.chat.completions.create(model="m", messages=HELLO)
        server.reset(["second"])
        assert server.requests == []
        reply = client.chat.completions.create(model="m", messages=HELLO)

    assert reply.choices[0].message.content == "second"


# -- streaming --------------------------------------------------------------------------------


def test_stream_reassembles_the_same_arguments_and_reports_usage() -> None:
    arguments = {"name": "Alice", "greeting": "Good morning, and welcome back!"}
    script = [tool_reply(call("greet", arguments), call("done", {"answer": "x"}))] * 2
    with ScriptedModelServer(script) as server, _client(server) as client:
        plain = client.chat.completions.create(model="m", messages=HELLO)
        pieces: dict[int, dict[str, str]] = {}
        finish, usage = None, None
        with client.chat.completions.create(
            model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
        ) as stream:
            for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    for tc in choice.delta.tool_calls or []:
                        slot = pieces.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        slot["id"] += tc.id or ""
                        slot["name"] += (tc.function and tc.function.name) or ""
                        slot["args"] += (tc.function and tc.function.arguments) or ""

    plain_calls = plain.choices[0].message.tool_calls or []
    assert [(p["name"], p["args"]) for p in pieces.values()] == [
        (c.function.name, c.function.arguments)  # type: ignore[union-attr]
        for c in plain_calls
    ]
    assert [p["id"] for p in pieces.values()] == ["call_2_0", "call_2_1"]
    assert json.loads(pieces[0]["args"]) == arguments
    assert finish == "tool_calls"
    assert usage is not None and usage == plain.usage


def test_raw_stream_splits_each_calls_arguments_over_several_chunks() -> None:
    script = [tool_reply(call("greet", {"name": "Alice"}), call("done", {"answer": "ok"}))]
    with ScriptedModelServer(script) as server:
        body = {"model": "m", "messages": HELLO, "stream": True}
        status, headers, raw = _raw_post(
            server, {**body, "stream_options": {"include_usage": True}}
        )

    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    chunks = _sse_chunks(raw)
    assert chunks[-1] == "[DONE]"
    deltas = [
        tc for c in chunks[:-1] for ch in c["choices"] for tc in ch["delta"].get("tool_calls", [])
    ]
    for index, (name, args) in enumerate(
        [("greet", {"name": "Alice"}), ("done", {"answer": "ok"})]
    ):
        own = [d for d in deltas if d["index"] == index]
        assert own[0]["id"] and own[0]["type"] == "function"
        assert own[0]["function"]["name"] == name
        with_args = [d for d in own if d["function"].get("arguments")]
        assert len(with_args) >= 2, f"call {index}: arguments not split: {with_args}"
        assert json.loads("".join(d["function"]["arguments"] for d in own)) == args
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["total_tokens"] > 0
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_splits_text_into_several_chunks() -> None:
    text = "Hello Alice, it is nice to meet you today."
    with ScriptedModelServer([text, text]) as server, _client(server) as client:
        with client.chat.completions.create(model="m", messages=HELLO, stream=True) as stream:
            parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
        _, _, raw = _raw_post(server, {"model": "m", "messages": HELLO, "stream": True})

    assert "".join(parts) == text
    assert len([p for p in parts if p]) >= 2
    assert all(isinstance(c, str) or "usage" not in c for c in _sse_chunks(raw))


# -- streams cut short (cut_stream) -----------------------------------------------------------

LONG = tool_reply(call("greet", {"name": "Alice"}), text="Greeting Alice now, then done.")
STREAMED = {"model": "m", "messages": HELLO, "stream": True}


def _whole_stream(item: Any, body: Any = STREAMED) -> list[Any]:
    with ScriptedModelServer([item]) as server:
        raw, whole = _raw_stream(server, body)
    assert whole
    return _sse_chunks(raw)


def test_cut_stream_sends_its_first_chunks_then_closes_the_connection_mid_body() -> None:
    with ScriptedModelServer([cut_stream(3, LONG)]) as server:
        raw, whole = _raw_stream(server, STREAMED)

    assert not whole, "the chunked body should stop short"
    chunks = _sse_chunks(raw)
    assert chunks == _whole_stream(LONG)[:3]  # the same chunks, and no [DONE]


def test_cut_stream_error_ending_sends_an_error_object_after_the_chunks() -> None:
    with ScriptedModelServer([cut_stream(2, LONG, ending="error")]) as server:
        raw, whole = _raw_stream(server, STREAMED)

    assert whole
    *chunks, error = _sse_chunks(raw)
    assert chunks == _whole_stream(LONG)[:2]
    assert error["error"]["type"] == "server_error"
    assert "cut_stream after 2 chunks" in error["error"]["message"]


def test_cut_stream_no_finish_ends_with_done_but_no_finish_reason() -> None:
    body = {**STREAMED, "stream_options": {"include_usage": True}}
    with ScriptedModelServer([cut_stream(1000, LONG, ending="no_finish")]) as server:
        raw, whole = _raw_stream(server, body)

    assert whole
    *chunks, done = _sse_chunks(raw)
    whole_stream = _whole_stream(LONG, body)
    assert done == "[DONE]"
    # Everything before the finish_reason chunk; it and the usage chunk after it are left out.
    assert chunks == whole_stream[:-3]
    assert whole_stream[-3]["choices"][0]["finish_reason"] == "tool_calls"


def _read_until_it_fails(client: openai.OpenAI) -> tuple[str, Exception]:
    """Stream HELLO through the SDK: the text that arrived, and the exception reading ended in."""
    texts: list[str] = []
    try:
        with client.chat.completions.create(model="m", messages=HELLO, stream=True) as chunks:
            for chunk in chunks:
                texts.append(chunk.choices[0].delta.content or "")
    except Exception as exc:  # the cut's: the SDK's or its HTTP library's, by SDK version
        return "".join(texts), exc
    raise AssertionError(f"the stream ended without an error after {texts!r}")


def test_cut_stream_through_the_sdk_fails_after_the_chunks_it_sent() -> None:
    script = [cut_stream(3, LONG), cut_stream(3, LONG, ending="error")]
    with ScriptedModelServer(script) as server, _client(server) as client:
        cut_text, cut = _read_until_it_fails(client)
        error_text, error = _read_until_it_fails(client)

    # The role chunk, then both text pieces, before either ending.
    assert cut_text == error_text == LONG.text
    # A cut connection carries no message from the server; an error event carries the server's.
    assert not isinstance(cut, openai.APIStatusError)
    assert "had an error while streaming" not in str(cut)
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIStatusError)
    assert "had an error while streaming" in str(error)


def test_cut_stream_answers_a_request_that_does_not_stream_whole() -> None:
    with ScriptedModelServer([cut_stream(1, LONG)]) as server, _client(server) as client:
        reply = client.chat.completions.create(model="m", messages=HELLO)

    message = reply.choices[0].message
    assert message.content == LONG.text
    assert reply.choices[0].finish_reason == "tool_calls"


def test_cut_stream_json_form_is_served_and_read_from_a_script_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    item = {"cut_after": 2, "then": {"text": "Hello Alice, nice to meet you."}, "ending": "error"}
    path.write_text(json.dumps([item, {"cut_after": 2, "then": "plain text"}]))
    script = load_script(str(path))

    assert script == [
        cut_stream(2, text_reply("Hello Alice, nice to meet you."), ending="error"),
        cut_stream(2, text_reply("plain text")),
    ]
    with ScriptedModelServer(script) as server:
        raw, whole = _raw_stream(server, STREAMED)
    assert whole and "error" in _sse_chunks(raw)[-1]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: cut_stream(-1, "hi"), r"an int >= 0, got -1"),
        (lambda: cut_stream(2, "hi", ending="hang"), r"ending='hang'.*'cut', 'error', 'no_finish'"),
        (lambda: cut_stream(2, error_reply(500, "x")), r"must be a reply .*got ScriptedError"),
        (lambda: ScriptedModelServer([{"cut_after": 2}]), r'item 0: "cut_after" needs a "then"'),
        (
            lambda: ScriptedModelServer([{"cut_after": 2, "then": "x", "ending": "late"}]),
            r"script item 0: cut_stream\(ending='late'\)",
        ),
    ],
)
def test_malformed_cut_stream_is_rejected_naming_the_fix(make: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        make()


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (401, "invalid_request_error", openai.AuthenticationError),
        (429, "rate_limit_error", openai.RateLimitError),
        (500, "server_error", openai.InternalServerError),
    ],
)
def test_error_reply_surfaces_as_the_sdk_exception(
    status: int, error_type: str, exception: type[openai.APIStatusError]
) -> None:
    script = [error_reply(status, f"scripted {status}", type=error_type, retry_after=7)]
    with (
        ScriptedModelServer(script) as server,
        _client(server) as client,
        pytest.raises(exception, match=f"scripted {status}") as info,
    ):
        client.chat.completions.create(model="m", messages=HELLO)

    error = info.value
    assert error.status_code == status
    assert error.response.headers["retry-after"] == "7"
    assert error.body == {
        "message": f"scripted {status}",
        "type": error_type,
        "param": None,
        "code": None,
    }


def test_api_key_is_enforced_without_using_a_script_item() -> None:
    with ScriptedModelServer(["ok"], api_key=API_KEY) as server:
        with (
            openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0) as bad,
            pytest.raises(openai.AuthenticationError, match="Incorrect API key"),
        ):
            bad.chat.completions.create(model="m", messages=HELLO)
        with _client(server) as good:
            reply = good.chat.completions.create(model="m", messages=HELLO)
        assert len(server.requests) == 2

    assert reply.choices[0].message.content == "ok"


def test_exhausted_script_answers_500_saying_so() -> None:
    with ScriptedModelServer(["one"]) as server, _client(server) as client:
        client.chat.completions.create(model="m", messages=HELLO)
        with pytest.raises(openai.InternalServerError, match="used up") as info:
            client.chat.completions.create(model="m", messages=HELLO)

    assert "its 1 replies were served and request 2 asked for another" in str(info.value)


def test_tool_message_answering_no_pending_call_is_rejected_with_400() -> None:
    messages: list[Any] = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "greet", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_zzz", "content": "Hello"},
    ]
    with ScriptedModelServer(["unused"]) as server, _client(server) as client:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="m", messages=messages)
        assert server.served == 0

    message = str(info.value)
    assert "messages[2]" in message
    assert "'call_zzz'" in message
    assert "'call_a'" in message
    assert info.value.body["param"] == "messages[2].tool_call_id"  # type: ignore[index]


def test_unanswered_tool_calls_before_a_user_message_are_rejected_with_400() -> None:
    messages: list[Any] = [
        *HELLO,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "user", "content": "and?"},
    ]
    with (
        ScriptedModelServer(["unused"]) as server,
        _client(server) as client,
        pytest.raises(openai.BadRequestError) as info,
    ):
        client.chat.completions.create(model="m", messages=messages)

    message = str(info.value)
    assert "messages[1]" in message
    assert "messages[3] is a 'user' message" in message
    assert "'c2'" in message and "'c1'" not in message


def test_well_formed_tool_round_trip_is_accepted() -> None:
    messages: list[Any] = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
    ]
    with ScriptedModelServer(["fine"]) as server, _client(server) as client:
        reply = client.chat.completions.create(model="m", messages=messages)

    assert reply.choices[0].message.content == "fine"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": HELLO}, "Missing required parameter: 'model'."),
        ({"model": "m"}, "Missing required parameter: 'messages'."),
        ({"model": "m", "messages": []}, "expected a non-empty array"),
        (
            {"model": "m", "messages": [{"role": "bot", "content": "x"}]},
            "Invalid value for 'messages[0].role': 'bot'",
        ),
        (
            {"model": "m", "messages": HELLO, "stream_options": {"include_usage": True}},
            "only allowed when 'stream' is enabled",
        ),
    ],
)
def test_invalid_request_bodies_get_openai_style_400(body: Any, expected: str) -> None:
    with ScriptedModelServer(["unused"]) as server:
        status, _, raw = _raw_post(server, body)

    error = json.loads(raw)["error"]
    assert status == 400
    assert expected in error["message"]
    assert error["type"] == "invalid_request_error"


def test_slow_reply_times_out_the_client_and_stop_is_prompt() -> None:
    server = ScriptedModelServer([slow_reply(30, text_reply("too late"))]).start()
    try:
        with _client(server, timeout=0.2) as client, pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=HELLO)
        assert len(server.requests) == 1
    finally:
        started = time.monotonic()
        server.stop()
        elapsed = time.monotonic() - started

    assert elapsed < 20  # the reply would have taken 30 s: stop() did not wait for it


def test_bad_script_item_is_rejected_at_construction_with_its_index() -> None:
    with pytest.raises(ConfigurationError, match=r"script item 1 is int 42"):
        ScriptedModelServer(["ok", 42])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="unknown key"):
        ScriptedModelServer([{"text": "hi", "tools": []}])


def test_base_url_before_start_explains_how_to_start() -> None:
    with pytest.raises(ConfigurationError, match="not running"):
        _ = ScriptedModelServer().base_url


# -- the command line -------------------------------------------------------------------------


def test_cli_prints_its_url_serves_the_script_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([{"tool_calls": [{"name": "greet", "arguments": {"name": "Alice"}}]}])
    )
    root = str(Path(looplet.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "looplet.testing.server", "--script", str(script)]
    with subprocess.Popen(
        [*command, "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            parts = urlsplit(base_url)
            assert (parts.scheme, parts.hostname, parts.path) == ("http", "127.0.0.1", "/v1")
            with openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0) as client:
                reply = client.chat.completions.create(model="m", messages=HELLO)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    function = (reply.choices[0].message.tool_calls or [])[0].function  # type: ignore[union-attr]
    assert (function.name, json.loads(function.arguments)) == ("greet", {"name": "Alice"})
    assert proc.returncode == 0
    assert "stopped after 1 requests (1 of 1 script items used)" in stderr
    assert "Warning" not in stderr


def test_cli_rejects_a_malformed_script_file_naming_the_item(tmp_path: Path) -> None:
    script = tmp_path / "bad.json"
    script.write_text(json.dumps([{"text": "fine"}, {"txet": "typo"}]))
    root = str(Path(looplet.__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-m", "looplet.testing.server", "--script", str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
        timeout=30,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert "item 1 of" in result.stderr and "'txet'" in result.stderr
