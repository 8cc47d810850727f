"""Record modes, and what happens when a run and its cassette do not line up.

Requests go through the real ``openai`` SDK to the loopback server; the server's request log
says which requests reached the network, and a stopped server proves none did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
import vcr

from looplet.cassettes import (
    CassetteExhaustedError,
    CassetteMismatchError,
    CassetteNotFoundError,
    use_cassette,
)
from looplet.errors import ConfigurationError
from looplet.testing import ScriptedModelServer, text_reply


def ask(base_url: str, question: str, **extra: Any) -> str:
    """One chat completion through the SDK; returns the reply's text."""
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}], **extra
        )
    return completion.choices[0].message.content or ""


def questions(server: ScriptedModelServer) -> list[str]:
    """The questions that reached the server, in order."""
    return [r.body["messages"][0]["content"] for r in server.requests]


def interactions(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())["interactions"])


def recorded_questions(path: Path) -> list[str]:
    return [i["request"]["body"]["json"]["messages"][0]["content"] for i in interactions(path)]


@pytest.fixture
def cassette_ab(tmp_path: Path) -> tuple[Path, str]:
    """A cassette holding questions A then B; returns it and the (stopped) server's URL."""
    path = tmp_path / "ab.yaml"
    with ScriptedModelServer([text_reply("answer A"), text_reply("answer B")]) as server:
        with use_cassette(path, "once"):
            assert ask(server.base_url, "A") == "answer A"
            assert ask(server.base_url, "B") == "answer B"
        return path, server.base_url


# -- none --------------------------------------------------------------------------------------


def test_none_with_a_missing_cassette_says_how_to_record_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(CassetteNotFoundError) as info, use_cassette(path, "none"):
        pytest.fail("the block must not run")
    message = str(info.value)
    assert str(path) in message and "does not exist" in message
    assert "record_mode='once'" in message and "--looplet-record-mode=once" in message
    assert info.value.path == str(path)


def test_none_with_an_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("\n")
    with pytest.raises(CassetteNotFoundError, match="is empty"), use_cassette(path):
        pass


def test_none_replays_in_recorded_order(cassette_ab: tuple[Path, str]) -> None:
    path, url = cassette_ab
    with use_cassette(path) as cassette:
        assert [ask(url, "A"), ask(url, "B")] == ["answer A", "answer B"]
    assert (cassette.played, cassette.new, len(cassette)) == (2, 0, 2)


def test_identical_requests_replay_their_own_recorded_answers_in_order(tmp_path: Path) -> None:
    path = tmp_path / "same.yaml"
    with ScriptedModelServer([text_reply("first"), text_reply("second")]) as server:
        url = server.base_url
        with use_cassette(path, "once"):
            live = [ask(url, "Q"), ask(url, "Q")]
    with use_cassette(path):
        assert (
            [ask(url, "Q"), ask(url, "Q")]
            == live
            == [
                "first",
                "second",
            ]
        )


def test_a_run_longer_than_its_cassette_is_exhausted(cassette_ab: tuple[Path, str]) -> None:
    path, url = cassette_ab
    with pytest.raises(CassetteExhaustedError) as info, use_cassette(path):
        ask(url, "A")
        ask(url, "B")
        ask(url, "A")
    message = str(info.value)
    assert "request 3 found no exchange left" in message and str(path) in message
    assert "holds 2 recorded exchanges and this run used 2" in message
    assert (info.value.position, info.value.recorded, info.value.used) == (3, 2, 2)


def test_a_repeated_request_is_a_mismatch_that_points_at_allow_repeats(
    cassette_ab: tuple[Path, str],
) -> None:
    path, url = cassette_ab
    with pytest.raises(CassetteMismatchError) as info, use_cassette(path):
        ask(url, "A")
        ask(url, "A")
    message = str(info.value)
    assert "request 2 of 2" in message and "same as exchange 1" in message
    assert "allow_repeats=True" in message


def test_allow_repeats_replays_an_exchange_again(cassette_ab: tuple[Path, str]) -> None:
    path, url = cassette_ab
    with use_cassette(path, allow_repeats=True) as cassette:
        assert [ask(url, "A"), ask(url, "A"), ask(url, "A")] == ["answer A"] * 3
    assert cassette.played == 3


# -- once, new_episodes, all -------------------------------------------------------------------


def test_once_records_when_missing_then_only_replays(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "once.yaml"
    with ScriptedModelServer([text_reply("live")]) as server:
        with use_cassette(path, "once") as cassette:
            assert ask(server.base_url, "Q") == "live"
        assert cassette.new == 1 and path.is_file()
        with use_cassette(path, "once") as cassette:
            assert ask(server.base_url, "Q") == "live"
        assert (cassette.played, cassette.new) == (1, 0)
        assert len(server.requests) == 1  # the second run did not reach the server
        with pytest.raises(CassetteMismatchError), use_cassette(path, "once"):
            ask(server.base_url, "a new question")
    assert recorded_questions(path) == ["Q"]


def test_new_episodes_replays_what_matches_and_appends_the_rest(
    cassette_ab: tuple[Path, str],
) -> None:
    path, _ = cassette_ab
    with ScriptedModelServer([text_reply("answer C")]) as server:
        with use_cassette(path, "new_episodes") as cassette:
            answers = [ask(server.base_url, q) for q in ("A", "C", "B")]
        url = server.base_url
        assert questions(server) == ["C"]
    assert answers == ["answer A", "answer C", "answer B"]
    assert (cassette.played, cassette.new) == (2, 1)
    assert recorded_questions(path) == ["A", "B", "C"]
    with use_cassette(path):  # and the whole run now replays
        assert [ask(url, q) for q in ("A", "C", "B")] == answers


def test_all_sends_every_request_and_replaces_the_cassette(
    cassette_ab: tuple[Path, str],
) -> None:
    path, _ = cassette_ab
    with ScriptedModelServer([text_reply("new answer A")]) as server:
        url = server.base_url
        with use_cassette(path, "all") as cassette:
            assert ask(url, "A") == "new answer A"
        assert questions(server) == ["A"]
    assert (cassette.played, cassette.new) == (0, 1)
    assert recorded_questions(path) == ["A"]  # B, not asked again, is gone
    with use_cassette(path):
        assert ask(url, "A") == "new answer A"


def test_all_overwrites_a_corrupt_cassette(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text('{"format": "looplet-cassette/1", "interactions": [')
    with ScriptedModelServer([text_reply("fresh")]) as server, use_cassette(path, "all"):
        ask(server.base_url, "Q")
    assert recorded_questions(path) == ["Q"]


def test_a_block_that_records_nothing_leaves_the_file_alone(
    cassette_ab: tuple[Path, str],
) -> None:
    path, url = cassette_ab
    before = path.read_bytes()
    with use_cassette(path, "new_episodes"):
        ask(url, "A")
    assert path.read_bytes() == before


def test_an_unknown_record_mode_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'none', 'once', 'new_episodes', 'all'"):
        use_cassette(tmp_path / "x.yaml", "any")


def test_a_cassette_is_not_reentrant_but_can_be_used_again(
    cassette_ab: tuple[Path, str],
) -> None:
    path, url = cassette_ab
    cassette = use_cassette(path)
    with cassette:
        with pytest.raises(ConfigurationError, match="not re-entrant"):
            cassette.__enter__()
        ask(url, "A")
    with cassette:  # a new block reads the file again: A is unused again
        assert ask(url, "A") == "answer A"


# -- cassettes from other tools and older SDKs ------------------------------------------------


def test_a_vcrpy_yaml_cassette_replays_matched_on_method_and_path(tmp_path: Path) -> None:
    path = tmp_path / "pytest_recording.yaml"
    with ScriptedModelServer([text_reply("recorded by vcrpy")]) as server:
        url = server.base_url
        with vcr.VCR(record_mode="once").use_cassette(str(path)):
            ask(url, "the question vcrpy saw")
    assert path.read_text().startswith("interactions:")  # vcrpy's own YAML
    with use_cassette(path, match_on=["method", "path"]):
        assert ask(url, "a different question") == "recorded by vcrpy"
    with (
        pytest.raises(CassetteMismatchError, match="the question vcrpy saw"),
        use_cassette(path),
    ):  # the default matching compares the body
        ask(url, "a different question")


def test_a_cassette_recorded_by_an_older_sdk_with_other_headers_still_replays(
    cassette_ab: tuple[Path, str],
) -> None:
    path, url = cassette_ab
    document = json.loads(path.read_text())
    for interaction in document["interactions"]:
        interaction["request"]["headers"] = {
            "user-agent": "OpenAI/Python 1.40.0",
            "x-stainless-package-version": "1.40.0",
            "x-some-old-header": "yes",
        }
    path.write_text(json.dumps(document, indent=2))
    with use_cassette(path):
        assert [ask(url, "A"), ask(url, "B")] == ["answer A", "answer B"]
