"""Re-recording an unchanged run writes the same bytes: volatile headers stay out of the file.

The loopback server is made noisy the way a real provider is: every reply gets a new date,
new request ids, timings, rate-limit counters and a session cookie, and the client sends a
new trace id and idempotency key (and, on the second run, another machine's OS) each time.
Everything goes through the real ``openai`` and ``anthropic`` SDKs over ``httpx2``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from looplet.cassettes import DEFAULT_VOLATILE_HEADERS, serializer, use_cassette
from looplet.errors import ConfigurationError
from looplet.testing import ScriptedModelServer, error_reply, text_reply
from looplet.testing._handler import Handler

# Sent by the noisy server on every reply, each with a new value; dropped by default.
NOISY_REPLY_HEADERS = (
    "anthropic-ratelimit-tokens-remaining",
    "apim-request-id",
    "cf-ray",
    "openai-processing-ms",
    "set-cookie",
    "x-envoy-upstream-service-time",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-tokens",
)
# Always sent by the scripted server (the ids are per request number, so stable here).
SERVER_VOLATILE = ("date", "request-id", "x-request-id")
# Sent by the client with a new value on every run; dropped by default.
NOISY_REQUEST_HEADERS = ("idempotency-key", "traceparent", "x-stainless-os")
# What a reviewer, or replay, needs: kept.
KEPT_REQUEST = ("anthropic-version", "content-type", "user-agent", "x-stainless-package-version")
KEPT_RESPONSE = ("content-length", "content-type", "server")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    """A scripted server whose replies carry new volatile header values every time."""
    seconds = itertools.count(1_700_000_000, 97)
    original = Handler.end_headers

    def end_headers(self: Handler) -> None:
        token = uuid.uuid4().hex
        for name in NOISY_REPLY_HEADERS:
            value = f"__cf_bm={token}; path=/" if name == "set-cookie" else token[:12]
            self.send_header(name, value)
        original(self)

    # The Date header comes from date_time_string(): a new second for every reply.
    monkeypatch.setattr(
        Handler, "date_time_string", lambda self, *_: formatdate(next(seconds), usegmt=True)
    )
    monkeypatch.setattr(Handler, "end_headers", end_headers)
    with ScriptedModelServer() as scripted:
        yield scripted


def record(
    path: Path, server: ScriptedModelServer, *, os_name: str = "Linux", **options: Any
) -> str:
    """Record one OpenAI and one Anthropic call in a new cassette; the file's text."""
    server.reset([text_reply("Hello from OpenAI."), text_reply("Hello from Claude.")])
    noise = {
        "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        "Idempotency-Key": f"stainless-python-retry-{uuid.uuid4()}",
        "X-Stainless-OS": os_name,
    }
    with use_cassette(path, "all", **options):
        with openai.OpenAI(
            base_url=server.base_url, api_key="sk-test", max_retries=0, default_headers=noise
        ) as client:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
        with anthropic.Anthropic(
            base_url=server.url, api_key="sk-test", max_retries=0, default_headers=noise
        ) as claude:
            claude.messages.create(
                model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
            )
    sent = server.requests
    assert [r.headers["traceparent"] for r in sent] == [noise["traceparent"]] * 2
    assert sent[0].headers["x-stainless-os"] == os_name  # the noise really went out
    return path.read_text(encoding="utf-8")


def header_names(text: str) -> tuple[set[str], set[str]]:
    """The header names of the file's requests, and of its responses (lower case)."""
    requests: set[str] = set()
    responses: set[str] = set()
    for item in json.loads(text)["interactions"]:
        requests.update(name.lower() for name in item["request"]["headers"])
        responses.update(name.lower() for name in item["response"]["headers"])
    return requests, responses


# -- the same run, the same bytes --------------------------------------------------------------


def test_re_recording_an_unchanged_run_writes_the_same_bytes(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    path = tmp_path / "stable.yaml"
    first = record(path, server)
    second = record(path, server, os_name="MacOS")  # another contributor re-records
    assert first == second
    # The server was really noisy: kept, the same headers make every recording differ.
    raw = record(tmp_path / "raw1.yaml", server, volatile_headers=())
    assert raw != record(tmp_path / "raw2.yaml", server, volatile_headers=())
    assert "cf-ray" in raw and '"date"' in raw


def test_volatile_headers_are_left_out_and_what_matters_is_kept(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    requests, responses = header_names(record(tmp_path / "c.yaml", server))
    assert requests.isdisjoint(NOISY_REQUEST_HEADERS) and "x-stainless-retry-count" not in requests
    assert responses.isdisjoint((*NOISY_REPLY_HEADERS, *SERVER_VOLATILE))
    assert requests.issuperset(KEPT_REQUEST) and responses.issuperset(KEPT_RESPONSE)


def test_a_re_recorded_cassette_replays_with_the_server_stopped(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    path = tmp_path / "replay.yaml"
    record(path, server)
    url, base_url = server.url, server.base_url
    server.stop()
    with (
        use_cassette(path) as cassette,
        openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client,
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as claude,
    ):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        message = claude.messages.create(
            model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        )
    assert reply.choices[0].message.content == "Hello from OpenAI."
    assert message.content[0].type == "text" and message.content[0].text == "Hello from Claude."
    assert reply._request_id is None  # the id was not kept: nothing in replay needs it
    assert cassette.played == 2


# -- older files ---------------------------------------------------------------------------------


def test_an_old_cassette_holding_volatile_headers_replays_and_is_cleaned_when_extended(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    path = tmp_path / "old.yaml"
    old = record(path, server, volatile_headers=())  # written as before this change
    assert {"date", "cf-ray", "x-request-id"} <= header_names(old)[1]
    url, base_url = server.url, server.base_url
    server.stop()
    with (
        use_cassette(path),
        openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client,
    ):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert reply.choices[0].message.content == "Hello from OpenAI."
    assert reply._request_id == "req_scripted_1"  # replayed as recorded
    assert path.read_text(encoding="utf-8") == old  # replaying never rewrites the file
    # Recording one more exchange rewrites the file: the old exchanges lose their noise.
    with (
        ScriptedModelServer([text_reply("New.")]) as another,
        use_cassette(path, "new_episodes") as cassette,
        openai.OpenAI(base_url=another.base_url, api_key="k", max_retries=0) as client,
    ):
        for question in ("Hi", "More"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
            )
    assert (cassette.played, cassette.new) == (1, 1)
    requests, responses = header_names(path.read_text(encoding="utf-8"))
    assert responses.isdisjoint((*NOISY_REPLY_HEADERS, *SERVER_VOLATILE))
    assert requests.isdisjoint(NOISY_REQUEST_HEADERS) and "content-type" in responses
    with (
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as claude,
        use_cassette(path),
    ):
        message = claude.messages.create(
            model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        )
    assert message.content[0].type == "text" and message.content[0].text == "Hello from Claude."


# -- the list is the user's ----------------------------------------------------------------------


def test_a_header_the_user_adds_is_left_out_too(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    path = tmp_path / "extra.yaml"
    server.reset([text_reply("Hi.")])
    volatile = (*DEFAULT_VOLATILE_HEADERS, "x-debug-run", "X-Build-*")
    with (
        use_cassette(path, "once", volatile_headers=volatile),
        openai.OpenAI(
            base_url=server.base_url,
            api_key="k",
            max_retries=0,
            default_headers={"X-Debug-Run": "run-7", "x-build-sha": "abc123", "x-team": "evals"},
        ) as client,
    ):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert server.requests[0].headers["x-debug-run"] == "run-7"
    requests, responses = header_names(path.read_text(encoding="utf-8"))
    assert "x-debug-run" not in requests and "x-build-sha" not in requests
    assert "x-team" in requests  # not named: kept
    assert "date" not in responses  # the defaults still apply


def test_headers_replay_needs_are_written_even_when_named(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    path = tmp_path / "429.yaml"
    server.reset([error_reply(429, "Slow down.", type="rate_limit_error", retry_after=7)])
    with (
        use_cassette(path, "once", volatile_headers=["*"]),
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        pytest.raises(openai.RateLimitError),
    ):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    requests, responses = header_names(path.read_text(encoding="utf-8"))
    assert requests == {"content-length", "content-type"}
    assert responses == {"content-length", "content-type", "retry-after"}
    base_url = server.base_url
    server.stop()
    with (
        use_cassette(path),
        openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client,
        pytest.raises(openai.RateLimitError, match="Slow down") as info,
    ):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.response.headers["retry-after"] == "7"


def test_a_single_string_is_refused_not_split_into_letters(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"not the string 'date'"):
        use_cassette(tmp_path / "x.yaml", "once", volatile_headers="date")


# -- the writer on its own -----------------------------------------------------------------------


def test_the_writer_gives_the_same_text_whatever_order_it_is_given() -> None:
    def exchange(reverse: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        headers = [("Content-Type", "application/json"), ("Date", "now"), ("b", "1"), ("a", "2")]
        body = [("temperature", 0.1), ("model", "m"), ("n", 1e-07)]
        if reverse:
            headers.reverse()
            body.reverse()
        request = {
            "method": "POST",
            "uri": "https://api.example.test/v1/chat/completions",
            "headers": dict(headers),
            "body": json.dumps(dict(body)).encode(),
        }
        response = {"status": {"code": 200, "message": "OK"}, "headers": dict(headers)}
        return request, {**response, "body": {"string": json.dumps(dict(body)).encode()}}

    text = serializer.dump_interactions([exchange(False)])
    assert text == serializer.dump_interactions([exchange(True)])
    document = json.loads(text)
    assert list(document) == ["format", "interactions"]  # no recording time, no host name
    assert list(document["interactions"][0]["request"]["headers"]) == ["a", "b", "Content-Type"]
    assert (
        serializer.serialize(
            {"interactions": [{"request": r, "response": s} for r, s in [exchange(True)]]}
        )
        == text
    )  # registered on a vcr.VCR, the serializer leaves them out too
