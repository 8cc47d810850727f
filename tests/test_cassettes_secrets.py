"""Secrets never reach a cassette file: keys, organisation ids, tokens in URLs, echoed keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from looplet.cassettes import use_cassette
from looplet.cassettes.scrub import Scrubber
from looplet.testing import ScriptedModelServer, error_reply, text_reply

API_KEY = "sk-looplet-FAKE-7f3a9c0d1e2b4a68"
ORGANIZATION = "org-FAKEORG0123456789"
PROJECT = "proj_FAKEPROJ987654"
QUERY_TOKEN = "qtok-FAKE-5551234"
CUSTOMER_REF = "cust-PRIVATE-246810"
TENANT = "tenant-PRIVATE-13579"
SECRETS = (API_KEY, ORGANIZATION, PROJECT, QUERY_TOKEN, CUSTOMER_REF, TENANT)


def test_no_secret_byte_reaches_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secrets.yaml"
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    script = [
        text_reply("Hi."),
        # A provider that echoes the key in an error message.
        error_reply(401, f"Incorrect API key provided: {API_KEY}.", type="invalid_request_error"),
    ]
    with ScriptedModelServer(script, api_key=API_KEY) as server:
        client = openai.OpenAI(
            base_url=server.base_url,
            organization=ORGANIZATION,
            project=PROJECT,
            default_headers={"X-Customer-Ref": CUSTOMER_REF},
            max_retries=0,
        )
        with (
            client,
            use_cassette(path, "once", filter_headers=["x-customer-ref"], filter_query=["tenant"]),
        ):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
            client.models.list(extra_query={"api_key": QUERY_TOKEN, "tenant": TENANT})
            with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Again"}]
                )
        sent = server.requests
    # The secrets were really sent (so the test could catch a leak)...
    assert sent[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert sent[0].headers["openai-organization"] == ORGANIZATION
    assert sent[0].headers["x-customer-ref"] == CUSTOMER_REF
    assert QUERY_TOKEN in sent[1].path and TENANT in sent[1].path
    # ...and none is in the file, in any encoding a reviewer could miss.
    data = path.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in data, secret
        assert secret.encode("utf-16-le") not in data, secret
    assert b"<redacted>" in data  # the echoed key was replaced, not the whole body dropped
    assert b"Incorrect API key provided" in data


def test_a_scrubbed_cassette_still_replays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "replay.yaml"
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with ScriptedModelServer([text_reply("Hi.")]) as server:
        url = server.base_url

        def run() -> list[Any]:
            with openai.OpenAI(base_url=url, max_retries=0) as client:
                models = client.models.list(extra_query={"key": QUERY_TOKEN})
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
                )
            return [[m.id for m in models], reply.choices[0].message.content]

        with use_cassette(path, "once"):
            live = run()
    monkeypatch.setenv("OPENAI_API_KEY", "another-key-at-replay-time")
    with use_cassette(path, match_on=["method", "host", "path", "query", "json_body"]):
        assert run() == live  # the same query secret is removed before matching too


def test_before_record_rewrites_what_is_stored_and_matched(tmp_path: Path) -> None:
    path = tmp_path / "hook.yaml"

    def hide_email(request: Any) -> Any:
        request.body = request.body.replace(b"alice@example.com", b"<email>")
        return request

    def ask(url: str, email: str) -> str:
        with openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0) as client:
            completion = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"Mail {email}"}]
            )
        return completion.choices[0].message.content or ""

    with ScriptedModelServer([text_reply("Sent.")]) as server:
        url = server.base_url
        with use_cassette(path, "once", before_record=hide_email):
            ask(url, "alice@example.com")
    assert b"alice@example.com" not in path.read_bytes() and b"<email>" in path.read_bytes()
    with use_cassette(path, before_record=hide_email):
        assert ask(url, "alice@example.com") == "Sent."


def test_response_cookies_and_account_headers_are_removed() -> None:
    scrubber = Scrubber()
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {
            "Set-Cookie": ["__cf_bm=abc123secretcookie; path=/"],
            "openai-organization": ["user-abc123"],
            "x-ratelimit-remaining-tokens": ["149000"],
            "content-type": ["application/json"],
        },
        "body": {"string": b"{}"},
    }
    kept = scrubber.response(response)["headers"]
    assert sorted(kept) == ["content-type", "x-ratelimit-remaining-tokens"]


@pytest.mark.parametrize(
    "name",
    ["Authorization", "x-api-key", "api-key", "x-goog-api-key", "Cookie", "x-amz-security-token"],
)
def test_credential_headers_are_recognised_by_name(name: str) -> None:
    assert Scrubber().is_secret_header(name)


@pytest.mark.parametrize(
    "name", ["content-type", "user-agent", "x-stainless-os", "anthropic-version", "x-request-id"]
)
def test_ordinary_headers_are_kept(name: str) -> None:
    assert not Scrubber().is_secret_header(name)
