"""Which requests match a recorded one, and how a mismatch is explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from looplet.cassettes import (
    DEFAULT_VOLATILE_FIELDS,
    CassetteMismatchError,
    Change,
    use_cassette,
)
from looplet.cassettes.diff import diff_json, render_changes, shorten_pair
from looplet.errors import ConfigurationError
from looplet.testing import ScriptedModelServer, text_reply

RECORDED = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
    b'"user":"alice","metadata":{"run":"1"},"seed":7}'
)


def post(url: str, body: bytes) -> Any:
    with httpx2.Client() as client:
        response = client.post(
            url + "/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    return response.json()["choices"][0]["message"]["content"]


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "body.yaml"
    with ScriptedModelServer([text_reply("recorded")]) as server:
        with use_cassette(path, "once"):
            post(server.base_url, RECORDED)
        return path, server.base_url


def test_key_order_whitespace_and_volatile_fields_do_not_matter(
    recorded: tuple[Path, str],
) -> None:
    path, url = recorded
    reordered = (
        b'{ "seed": 7, "metadata": {"run": "2"},\n  "user": "bob",\n'
        b'  "messages": [ {"content": "hi", "role": "user"} ], "model": "gpt-4o-mini" }'
    )
    with use_cassette(path):
        assert post(url, reordered) == "recorded"


def test_a_changed_seed_is_a_mismatch_unless_ignored(recorded: tuple[Path, str]) -> None:
    path, url = recorded
    reseeded = RECORDED.replace(b'"seed":7', b'"seed":8')
    with (
        pytest.raises(CassetteMismatchError, match=r"seed changed:\n\s+- 7\n\s+\+ 8"),
        use_cassette(path),
    ):
        post(url, reseeded)
    with use_cassette(path, ignore_fields=(*DEFAULT_VOLATILE_FIELDS, "seed")):
        assert post(url, reseeded) == "recorded"


def test_a_dotted_ignore_field_removes_only_the_nested_key(recorded: tuple[Path, str]) -> None:
    path, url = recorded
    other_run = RECORDED.replace(b'"run":"1"', b'"run":"2"')
    with use_cassette(path, ignore_fields=("metadata.run", "user")):
        assert post(url, other_run) == "recorded"
    with (
        pytest.raises(CassetteMismatchError, match=r"metadata\.extra added"),
        use_cassette(path, ignore_fields=("metadata.run", "user")),
    ):
        post(url, RECORDED.replace(b'"run":"1"', b'"run":"1","extra":true'))


def test_a_changed_path_is_shown_as_a_request_change(recorded: tuple[Path, str]) -> None:
    path, url = recorded
    with (
        pytest.raises(CassetteMismatchError) as info,
        use_cassette(path),
        httpx2.Client() as client,
    ):
        client.post(url + "/responses", content=RECORDED)
    assert info.value.request_changes == [
        Change("request path", "changed", "/v1/chat/completions", "/v1/responses")
    ]
    assert "request path changed:" in str(info.value)


def test_an_unknown_matcher_name_suggests_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Did you mean 'json_body'"):
        use_cassette(tmp_path / "x.yaml", match_on=["method", "jsonbody"])


def test_a_matcher_function_can_refuse_a_request(recorded: tuple[Path, str]) -> None:
    path, url = recorded

    def never(request: Any, recorded: Any) -> bool:
        return False

    with (
        pytest.raises(CassetteMismatchError),
        use_cassette(path, match_on=["method", "path", never]),
    ):
        post(url, RECORDED)


# -- the diff ----------------------------------------------------------------------------------

OLD = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Greet Alice."},
        {"role": "assistant", "content": None},
        {"role": "tool", "content": "Hello, Alice!"},
    ],
    "tools": [{"name": "greet"}],
    "temperature": 0.2,
}


def test_the_diff_names_each_change_by_its_path() -> None:
    new = {
        **OLD,
        "model": "gpt-4o",
        "messages": [*OLD["messages"][:3], {"role": "tool", "content": "Hi, Alice!"}],
        "tools": [{"name": "greet"}, {"name": "done"}],
    }
    del new["temperature"]
    assert diff_json(OLD, new) == [
        Change("model", "changed", "gpt-4o-mini", "gpt-4o"),
        Change("messages[3].content", "changed", "Hello, Alice!", "Hi, Alice!"),
        Change("tools[1]", "added", None, {"name": "done"}),
        Change("temperature", "removed", 0.2, None),
    ]


def test_an_inserted_message_is_one_addition_not_every_later_message_changed() -> None:
    inserted = {"role": "user", "content": "Also Bob."}
    new = {**OLD, "messages": [*OLD["messages"][:2], inserted, *OLD["messages"][2:]]}
    assert diff_json(OLD, new) == [Change("messages[2]", "added", None, inserted)]


def test_true_is_not_one_but_one_is_one_point_zero() -> None:
    assert diff_json({"a": 1}, {"a": 1.0}) == []
    assert diff_json({"a": 1}, {"a": True}) == [Change("a", "changed", 1, True)]


def test_long_strings_are_cut_around_the_first_difference() -> None:
    head = "You are a careful agent. " * 8
    old, new = shorten_pair(head + "Reply in English. " + "x" * 200, head + "Reply in French. ")
    assert "English" in old and "French" in new
    assert old.startswith("'…") and len(old) < 90 and len(new) < 90


def test_rendered_changes_show_old_and_new_and_count_the_rest() -> None:
    changes = [Change(f"messages[{i}].content", "changed", "a", "b") for i in range(8)]
    lines = render_changes(changes, limit=2)
    assert lines == [
        "    messages[0].content changed:",
        "    - 'a'",
        "    + 'b'",
        "    messages[1].content changed:",
        "    - 'a'",
        "    + 'b'",
        "    ... and 6 more differences",
    ]


def test_a_key_that_is_not_an_identifier_is_quoted_in_the_path() -> None:
    assert diff_json({"a-b": {"c": 1}}, {"a-b": {"c": 2}})[0].path == "['a-b'].c"
