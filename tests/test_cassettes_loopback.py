"""A loopback server's port is not part of a cassette: re-recording against a server on
another port writes the same file, and ``uri``/``port`` matchers replay across ports."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from looplet.cassettes import use_cassette
from looplet.cassettes.loopback import is_loopback, without_loopback_port
from looplet.testing import ScriptedModelServer, text_reply
from tests._greeter import plugin_runner, recording

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

CASSETTE = Path("cassettes", "eval_greeter", "eval_greets_alice.yaml")


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest with the plugin on the greeter's eval, in a subprocess."""
    return plugin_runner(pytester, monkeypatch)


def record(run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Record the eval against a greeter served on a new loopback port: the cassette's text
    and the server's base URL."""
    with recording(monkeypatch):
        base_url = os.environ["OPENAI_BASE_URL"]
        run("--looplet-record-mode=all").assert_outcomes(passed=1)
    return (pytester.path / CASSETTE).read_text(encoding="utf-8"), base_url


def test_re_recording_against_a_server_on_another_port_writes_the_same_file(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, first_server = record(run, pytester, monkeypatch)
    second, second_server = record(run, pytester, monkeypatch)
    assert first_server != second_server  # two servers, two ports
    assert first == second
    # Nothing port-like stayed behind: every request's URI names the host alone.
    uris = [i["request"]["uri"] for i in json.loads(first)["interactions"]]
    assert uris and all(uri.startswith("http://127.0.0.1/") for uri in uris), uris
    run().assert_outcomes(passed=1)  # and it replays offline


@pytest.mark.parametrize(
    "match_on", [("method", "uri", "json_body"), ("method", "host", "port", "path", "json_body")]
)
def test_uri_and_port_matchers_replay_a_loopback_cassette_against_another_port(
    tmp_path: Path, match_on: tuple[str, ...]
) -> None:
    path = tmp_path / "ports.yaml"
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    with (
        ScriptedModelServer([text_reply("recorded")]) as first,
        use_cassette(path, "once", match_on=match_on),
    ):
        first_url = first.base_url
        assert _post(first_url, body) == "recorded"
    with ScriptedModelServer([text_reply("live")]) as second:
        assert second.base_url != first_url
        with use_cassette(path, "none", match_on=match_on) as cassette:
            assert _post(second.base_url, body) == "recorded"
        assert cassette.played == 1
        assert not second.requests  # replayed, never sent


def _post(base_url: str, body: bytes) -> Any:
    import httpx2

    with httpx2.Client() as client:
        response = client.post(
            base_url + "/chat/completions",
            content=body,
            headers={"content-type": "application/json"},
        )
    return response.json()["choices"][0]["message"]["content"]


def test_a_port_on_another_host_still_has_to_match(tmp_path: Path) -> None:
    from looplet.cassettes.matching import RequestMatcher
    from looplet.cassettes.serializer import StoredRequest

    def request(uri: str) -> StoredRequest:
        return StoredRequest("POST", uri, {}, None, None)

    matcher = RequestMatcher(["method", "uri", "port"], ())
    loopback = [request("http://127.0.0.1:8001/v1/x"), request("http://127.0.0.1:9002/v1/x")]
    assert matcher.key(loopback[0]) == matcher.key(loopback[1])
    remote = [
        request("http://models.internal:8001/v1/x"),
        request("http://models.internal:9002/v1/x"),
    ]
    assert matcher.key(remote[0]) != matcher.key(remote[1])


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://127.0.0.1:5000/v1/x?a=1", "http://127.0.0.1/v1/x?a=1"),
        ("http://127.10.0.3:5000/v1", "http://127.10.0.3/v1"),
        ("http://localhost:8080/v1", "http://localhost/v1"),
        ("http://app.localhost:3000/", "http://app.localhost/"),
        ("http://[::1]:8080/v1", "http://[::1]/v1"),
        ("http://user:pw@127.0.0.1:9/v1", "http://user:pw@127.0.0.1/v1"),
        ("http://127.0.0.1/v1", "http://127.0.0.1/v1"),
        ("https://api.openai.com:443/v1", "https://api.openai.com:443/v1"),
        ("http://10.0.0.1:8000/v1", "http://10.0.0.1:8000/v1"),
        ("http://[2001:db8::1]:8000/v1", "http://[2001:db8::1]:8000/v1"),
        ("http://127.example.com:8000/v1", "http://127.example.com:8000/v1"),
    ],
)
def test_only_a_loopback_hosts_port_is_dropped(uri: str, expected: str) -> None:
    assert without_loopback_port(uri) == expected


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1"]))
    assert not any(map(is_loopback, [None, "", "10.0.0.1", "127.example.com", "::2", "example"]))
