"""Reading tool calls from the JSON-text protocol and from native argument strings."""

from __future__ import annotations

import json

import pytest

from looplet.parse import format_text_reply, parse_text_reply, tool_call_from_openai
from looplet.types import ToolCall


def test_single_call_gives_tool_args_reasoning_and_generated_id() -> None:
    text, calls = parse_text_reply(
        '{"tool": "greet", "args": {"name": "Alice"}, "reasoning": "be polite"}'
    )

    assert calls == (ToolCall("greet", {"name": "Alice"}, reasoning="be polite", call_id="call_0"),)
    assert text == "be polite"


def test_batch_theory_becomes_each_calls_reasoning_never_an_argument() -> None:
    reply = json.dumps(
        {
            "tools": [
                {"tool": "search", "args": {"q": "refunds"}},
                {"tool": "read", "args": {"path": "a.txt"}},
            ],
            "theory": "look it up first",
        }
    )

    text, calls = parse_text_reply(reply)

    assert [c.tool for c in calls] == ["search", "read"]
    assert [c.args for c in calls] == [{"q": "refunds"}, {"path": "a.txt"}]
    assert all(c.reasoning == "look it up first" for c in calls)
    assert [c.call_id for c in calls] == ["call_0", "call_1"]
    assert text == "look it up first"


def test_fenced_object_with_prose_around_keeps_the_prose_without_fences() -> None:
    reply = (
        "I will greet her now.\n"
        "```json\n"
        '{"tool": "greet", "args": {"name": "Alice"}}\n'
        "```\n"
        "Then I am done."
    )

    text, calls = parse_text_reply(reply)

    assert [(c.tool, c.args) for c in calls] == [("greet", {"name": "Alice"})]
    assert text == "I will greet her now.\n\nThen I am done."
    assert "```" not in text


def test_deeply_nested_arguments_are_decoded_whole() -> None:
    deep: dict[str, object] = {"leaf": [1, {"x": "}{"}]}
    for level in range(12):
        deep = {f"level{level}": deep}

    _, calls = parse_text_reply(
        "Here you go: " + json.dumps({"tool": "store", "args": {"doc": deep}}) + " thanks"
    )

    assert calls[0].args == {"doc": deep}
    assert calls[0].parse_error is None


def test_tool_object_nested_inside_other_json_is_found() -> None:
    reply = '{"answer": {"tool": "done", "args": {"result": 42}}}'

    _, calls = parse_text_reply(reply)

    assert [(c.tool, c.args) for c in calls] == [("done", {"result": 42})]


def test_first_brace_that_is_not_a_tool_object_is_skipped() -> None:
    reply = 'Consider {"x": 1} and {not json}, then {"tool": "greet", "args": {}}'

    text, calls = parse_text_reply(reply)

    assert [c.tool for c in calls] == ["greet"]
    assert text.startswith('Consider {"x": 1}')


@pytest.mark.parametrize("args", [[1, 2], "not json at all", 7, None])
def test_non_object_args_set_parse_error_instead_of_empty_args(args: object) -> None:
    _, calls = parse_text_reply(json.dumps({"tool": "greet", "args": args}))

    (call,) = calls
    assert call.tool == "greet"
    assert call.args == {}
    assert call.parse_error is not None
    assert call.raw_arguments is not None


def test_non_object_args_error_names_the_type_and_value() -> None:
    _, (call,) = parse_text_reply('{"tool": "greet", "args": ["Alice"]}')

    assert call.parse_error == '"args" must be a JSON object, got an array: ["Alice"]'
    assert call.raw_arguments == '["Alice"]'


def test_json_string_args_are_decoded_like_native_arguments() -> None:
    _, (call,) = parse_text_reply('{"tool": "greet", "args": "{\\"name\\": \\"Alice\\"}"}')

    assert call.args == {"name": "Alice"}
    assert call.parse_error is None


def test_batch_entry_without_a_tool_name_is_kept_with_a_parse_error() -> None:
    _, calls = parse_text_reply('{"tools": [{"tool": "a", "args": {}}, {"args": {"x": 1}}]}')

    assert calls[0].parse_error is None
    assert calls[1].parse_error is not None
    assert "tool call 1" in calls[1].parse_error


def test_plain_text_has_no_calls_and_is_returned_unchanged() -> None:
    reply = "The capital of France is Paris. {not a tool}"

    assert parse_text_reply(reply) == (reply, ())


def test_ids_given_in_the_reply_are_kept_and_the_prefix_is_configurable() -> None:
    reply = '{"tools": [{"tool": "a", "args": {}, "call_id": "mine"}, {"tool": "b", "args": {}}]}'

    _, calls = parse_text_reply(reply, id_prefix="call_3_")

    assert [c.call_id for c in calls] == ["mine", "call_3_1"]


def test_raw_newlines_inside_json_strings_are_tolerated() -> None:
    _, (call,) = parse_text_reply('{"tool": "write", "args": {"text": "line1\nline2"}}')

    assert call.args == {"text": "line1\nline2"}


def test_format_text_reply_round_trips_through_parse() -> None:
    calls = (
        ToolCall("search", {"q": "x"}, call_id="c1"),
        ToolCall("read", {"path": "a"}, call_id="c2"),
    )

    text, parsed = parse_text_reply(format_text_reply("plan", calls))

    assert text == "plan"
    assert [(c.tool, c.args, c.call_id, c.reasoning) for c in parsed] == [
        ("search", {"q": "x"}, "c1", "plan"),
        ("read", {"path": "a"}, "c2", "plan"),
    ]
    assert format_text_reply("just text", ()) == "just text"


def test_openai_arguments_string_is_decoded_and_kept_raw() -> None:
    call = tool_call_from_openai("greet", '{"name": "Alice"}', "call_abc")

    assert call == ToolCall(
        "greet", {"name": "Alice"}, call_id="call_abc", raw_arguments='{"name": "Alice"}'
    )


def test_openai_invalid_json_arguments_give_the_json_error_message() -> None:
    call = tool_call_from_openai("greet", '{"a": 1 "b": 2}', "call_1")

    assert call.args == {}
    assert call.raw_arguments == '{"a": 1 "b": 2}'
    assert call.parse_error == "Expecting ',' delimiter: line 1 column 9 (char 8)"


def test_openai_truncated_arguments_set_parse_error() -> None:
    call = tool_call_from_openai("greet", '{"name": "Al', "call_1")

    assert call.args == {}
    assert call.parse_error is not None
    assert "Unterminated string" in call.parse_error


def test_openai_non_object_arguments_set_parse_error() -> None:
    call = tool_call_from_openai("greet", '["Alice"]', "call_1")

    assert call.args == {}
    assert call.raw_arguments == '["Alice"]'
    assert call.parse_error == 'arguments must be a JSON object, got an array: ["Alice"]'


def test_openai_empty_arguments_mean_no_arguments() -> None:
    call = tool_call_from_openai("now", "", "call_1")

    assert call.args == {}
    assert call.parse_error is None


def test_openai_mapping_arguments_are_copied_and_serialised() -> None:
    given = {"name": "Alice"}

    call = tool_call_from_openai("greet", given, "toolu_1")

    assert call.args == given
    assert call.args is not given
    assert call.raw_arguments is not None
    assert json.loads(call.raw_arguments) == given
