"""Tool parameter schemas: the simple form, JSON Schema, validation messages, signatures."""

from __future__ import annotations

from typing import Any, Literal, Optional

import pytest

from looplet.errors import ToolRegistrationError
from looplet.schema import (
    describe_parameters,
    normalize_parameters,
    validate_arguments,
)
from looplet.signature import schema_from_signature

# --------------------------------------------------------------------------- normalising


def test_simple_form_maps_names_to_json_types_and_requires_all_but_optional() -> None:
    schema = normalize_parameters(
        {
            "name": "str",
            "n": "int?",
            "tags": "list",
            "opts": "dict?",
            "x": "float",
            "flag": "bool",
            "anything": "any",
        },
        tool_name="t",
    )
    assert schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "n": {"type": "integer"},
            "tags": {"type": "array"},
            "opts": {"type": "object"},
            "x": {"type": "number"},
            "flag": {"type": "boolean"},
            "anything": {},
        },
        "required": ["name", "tags", "x", "flag", "anything"],
        "additionalProperties": False,
    }


def test_simple_form_accepts_python_types_as_values() -> None:
    schema = normalize_parameters({"name": str, "n": int, "ok": bool}, tool_name="t")
    assert schema["properties"] == {
        "name": {"type": "string"},
        "n": {"type": "integer"},
        "ok": {"type": "boolean"},
    }
    assert schema["required"] == ["name", "n", "ok"]


@pytest.mark.parametrize("parameters", [None, {}])
def test_no_parameters_gives_an_empty_object_schema_with_required(parameters: Any) -> None:
    schema = normalize_parameters(parameters, tool_name="t")
    assert schema["type"] == "object"
    assert schema["properties"] == {}
    assert schema["required"] == []


def test_unknown_simple_type_names_tool_parameter_type_and_valid_names() -> None:
    with pytest.raises(ToolRegistrationError) as info:
        normalize_parameters({"n": "integr"}, tool_name="count")
    message = str(info.value)
    assert "'count'" in message
    assert "'n'" in message
    assert "'integr'" in message
    assert "int, list, str" in message
    assert "Did you mean 'integer'?" in message


def test_json_schema_is_kept_and_gets_required_added() -> None:
    given = {"type": "object", "properties": {"q": {"type": "string", "description": "query"}}}
    schema = normalize_parameters(given, tool_name="t")
    assert schema == {
        "type": "object",
        "properties": {"q": {"type": "string", "description": "query"}},
        "required": [],
    }
    assert "required" not in given, "the caller's schema must not be modified"


def test_json_schema_is_recognised_by_properties_alone() -> None:
    schema = normalize_parameters(
        {"properties": {"q": {"type": "string"}}, "required": ["q"]}, tool_name="t"
    )
    assert schema["type"] == "object"
    assert schema["required"] == ["q"]


def test_json_schema_required_name_missing_from_properties_is_rejected() -> None:
    with pytest.raises(ToolRegistrationError, match=r"'qq'.*not in 'properties'"):
        normalize_parameters(
            {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["qq"]},
            tool_name="t",
        )


def test_json_schema_with_python_type_name_is_rejected_at_registration() -> None:
    with pytest.raises(ToolRegistrationError, match=r"parameter 'n'.*'int'.*integer"):
        normalize_parameters(
            {"type": "object", "properties": {"n": {"type": "int"}}}, tool_name="t"
        )


# --------------------------------------------------------------------------- validating

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 5},
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "maybe": {"type": ["string", "null"]},
        "opts": {
            "type": "object",
            "properties": {"limit": {"type": "integer"}},
            "required": ["limit"],
            "additionalProperties": False,
        },
    },
    "required": ["name"],
    "additionalProperties": False,
}


def test_valid_arguments_give_no_problems() -> None:
    args = {
        "name": "Ann",
        "n": 3,
        "ratio": 2,
        "flag": False,
        "mode": "slow",
        "tags": ["a", "b"],
        "maybe": None,
        "opts": {"limit": 2},
    }
    assert validate_arguments(SCHEMA, args) == []


def test_wrong_type_names_argument_expected_and_got() -> None:
    assert validate_arguments(SCHEMA, {"name": "a", "n": "3"}) == [
        "argument 'n': expected integer, got str ('3')"
    ]


def test_bool_is_not_an_integer_or_a_number() -> None:
    problems = validate_arguments(SCHEMA, {"name": "a", "n": True, "ratio": False})
    assert problems == [
        "argument 'n': expected integer, got bool (True)",
        "argument 'ratio': expected number, got bool (False)",
    ]


def test_float_is_not_an_integer() -> None:
    assert validate_arguments(SCHEMA, {"name": "a", "n": 2.5}) == [
        "argument 'n': expected integer, got float (2.5)"
    ]


def test_type_list_reports_all_accepted_types() -> None:
    assert validate_arguments(SCHEMA, {"name": "a", "maybe": 1}) == [
        "argument 'maybe': expected string or null, got int (1)"
    ]


def test_missing_required_argument() -> None:
    assert validate_arguments(SCHEMA, {}) == ["missing required argument 'name'"]


def test_unexpected_argument_suggests_the_closest_name() -> None:
    assert validate_arguments(SCHEMA, {"nmae": "a"}) == [
        "missing required argument 'name'",
        "unexpected argument 'nmae' (did you mean 'name'?)",
    ]


def test_unexpected_argument_without_a_close_name_has_no_suggestion() -> None:
    assert validate_arguments(SCHEMA, {"name": "a", "zzzzzz": 1}) == [
        "unexpected argument 'zzzzzz'"
    ]


def test_extra_arguments_are_allowed_unless_additional_properties_is_false() -> None:
    open_schema = {"type": "object", "properties": {}, "required": []}
    assert validate_arguments(open_schema, {"anything": 1}) == []


def test_enum_violation_lists_the_choices() -> None:
    assert validate_arguments(SCHEMA, {"name": "a", "mode": "medium"}) == [
        "argument 'mode': expected one of 'fast', 'slow', got 'medium'"
    ]


def test_enum_does_not_confuse_true_with_one() -> None:
    schema = {"type": "object", "properties": {"v": {"enum": [1, 2]}}, "required": []}
    assert validate_arguments(schema, {"v": True}) == [
        "argument 'v': expected one of 1, 2, got True"
    ]
    assert validate_arguments(schema, {"v": 1}) == []


def test_array_items_are_checked_with_their_index() -> None:
    assert validate_arguments(SCHEMA, {"name": "a", "tags": ["x", 2]}) == [
        "argument 'tags[1]': expected string, got int (2)"
    ]


def test_nested_object_properties_and_required_are_checked() -> None:
    problems = validate_arguments(SCHEMA, {"name": "a", "opts": {"limt": "3"}})
    assert problems == [
        "missing required argument 'opts.limit'",
        "unexpected argument 'opts.limt' (did you mean 'limit'?)",
    ]
    assert validate_arguments(SCHEMA, {"name": "a", "opts": {"limit": "3"}}) == [
        "argument 'opts.limit': expected integer, got str ('3')"
    ]


def test_minimum_and_maximum() -> None:
    assert validate_arguments(SCHEMA, {"name": "a", "n": 0}) == [
        "argument 'n': expected a value >= 1, got 0"
    ]
    assert validate_arguments(SCHEMA, {"name": "a", "n": 11}) == [
        "argument 'n': expected a value <= 10, got 11"
    ]


def test_min_and_max_length() -> None:
    assert validate_arguments(SCHEMA, {"name": ""}) == [
        "argument 'name': expected at least 1 characters, got 0"
    ]
    assert validate_arguments(SCHEMA, {"name": "abcdef"}) == [
        "argument 'name': expected at most 5 characters, got 6"
    ]


def test_long_values_are_clipped_in_messages() -> None:
    problems = validate_arguments(SCHEMA, {"name": "a", "n": "x" * 500})
    assert len(problems) == 1
    assert problems[0].endswith("...)")
    assert len(problems[0]) < 100


def test_dict_value_schema_is_checked_for_every_extra_key() -> None:
    schema = {
        "type": "object",
        "properties": {"scores": {"type": "object", "additionalProperties": {"type": "number"}}},
        "required": [],
    }
    assert validate_arguments(schema, {"scores": {"a": 1.5, "b": "high"}}) == [
        "argument 'scores.b': expected number, got str ('high')"
    ]


def test_arguments_that_are_not_an_object_are_reported() -> None:
    assert validate_arguments(SCHEMA, [1, 2]) == [  # type: ignore[arg-type]
        "arguments: expected a JSON object, got list ([1, 2])"
    ]


# --------------------------------------------------------------------------- describing


def test_describe_parameters_marks_optional_and_shows_types() -> None:
    schema = normalize_parameters({"name": "str", "k": "int?", "x": "any"}, tool_name="t")
    assert describe_parameters(schema) == "name: str, k?: int, x: any"
    assert describe_parameters(SCHEMA).startswith("name: str, n?: int, ratio?: float")
    assert "mode?: 'fast' | 'slow'" in describe_parameters(SCHEMA)
    assert "tags?: list[str]" in describe_parameters(SCHEMA)
    assert "maybe?: str | None" in describe_parameters(SCHEMA)


# --------------------------------------------------------------------------- from a signature


def _search(
    query: str,
    limit: int = 10,
    mode: Literal["fast", "slow"] = "fast",
    ids: list[int] | None = None,
    weights: Optional[dict[str, float]] = None,  # noqa: UP045 - Optional is what is tested
    extra: Any = None,
    ratio: float = 0.5,
    strict: bool = False,
) -> None:
    """Search the index.

    Longer text that is not a parameter description.

    Args:
        query: the text to look for,
            spread over two lines.
        limit (int): how many hits to return.
        mode: how hard to try.

    Returns:
        Nothing.
    """


def test_signature_maps_hints_to_json_types() -> None:
    props = schema_from_signature(_search)["properties"]
    assert props["query"]["type"] == "string"
    assert props["limit"]["type"] == "integer"
    assert props["ratio"]["type"] == "number"
    assert props["strict"]["type"] == "boolean"
    assert "type" not in props["extra"]


def test_signature_literal_becomes_an_enum() -> None:
    props = schema_from_signature(_search)["properties"]
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert props["mode"]["type"] == "string"


def test_signature_list_and_dict_hints_describe_their_items() -> None:
    props = schema_from_signature(_search)["properties"]
    assert props["ids"]["type"] == ["array", "null"]
    assert props["ids"]["items"] == {"type": "integer"}
    assert props["weights"]["type"] == ["object", "null"]
    assert props["weights"]["additionalProperties"] == {"type": "number"}


def test_signature_defaults_make_parameters_optional_and_are_recorded() -> None:
    schema = schema_from_signature(_search)
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit"]["default"] == 10
    assert schema["properties"]["ids"]["default"] is None
    assert "default" not in schema["properties"]["query"]
    assert schema["additionalProperties"] is False


def test_signature_descriptions_come_from_the_args_section() -> None:
    props = schema_from_signature(_search)["properties"]
    assert props["query"]["description"] == "the text to look for, spread over two lines."
    assert props["limit"]["description"] == "how many hits to return."
    assert props["mode"]["description"] == "how hard to try."
    assert "description" not in props["ratio"]


def test_signature_optional_value_accepts_null_and_the_type() -> None:
    schema = schema_from_signature(_search)
    assert validate_arguments(schema, {"query": "q", "ids": None}) == []
    assert validate_arguments(schema, {"query": "q", "ids": [1, 2]}) == []
    assert validate_arguments(schema, {"query": "q", "ids": ["a"]}) == [
        "argument 'ids[0]': expected integer, got str ('a')"
    ]


def test_signature_skips_ctx() -> None:
    def with_ctx(ctx: Any, name: str) -> None:
        """Use the context."""

    schema = schema_from_signature(with_ctx)
    assert list(schema["properties"]) == ["name"]
    assert schema["required"] == ["name"]


def test_signature_of_async_function() -> None:
    async def fetch(url: str, retries: int = 2) -> str:
        """Fetch a page."""
        return url

    schema = schema_from_signature(fetch)
    assert schema["properties"] == {
        "url": {"type": "string"},
        "retries": {"type": "integer", "default": 2},
    }
    assert schema["required"] == ["url"]


def test_signature_with_kwargs_allows_extra_arguments() -> None:
    def loose(name: str, **rest: Any) -> None:
        """Take anything."""

    schema = schema_from_signature(loose)
    assert "additionalProperties" not in schema
    assert validate_arguments(schema, {"name": "a", "other": 1}) == []


def test_unsupported_hint_names_function_and_parameter() -> None:
    def bad(items: set[int]) -> None:
        """Take a set."""

    with pytest.raises(ToolRegistrationError) as info:
        schema_from_signature(bad)
    message = str(info.value)
    assert "bad" in message
    assert "'items'" in message
    assert "set[int]" in message


def test_dict_with_non_string_keys_is_unsupported() -> None:
    def bad(table: dict[int, str]) -> None:
        """Take a table."""

    with pytest.raises(ToolRegistrationError, match="'table'"):
        schema_from_signature(bad)


def test_var_positional_parameter_is_rejected() -> None:
    def bad(*names: str) -> None:
        """Take names."""

    with pytest.raises(ToolRegistrationError, match="keyword arguments"):
        schema_from_signature(bad)


@pytest.mark.parametrize(
    "parameters",
    [
        {"name": "str", "n": "int?", "x": "float?", "flag": "bool?", "anything": "any?"},
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}},
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
    ],
)
@pytest.mark.parametrize(
    "args",
    [
        {"name": "Alice"},
        {"name": "Alice", "n": 3, "x": 1, "flag": True, "anything": [1]},
        {"name": 3},
        {"n": True},
        {"n": -1},
        {"nmae": "Alice"},
        {"name": "Alice", "x": "1.5"},
        {"tags": ["a", 2]},
        {},
    ],
)
def test_compiled_validator_agrees_with_the_full_validator(
    parameters: dict[str, Any], args: dict[str, Any]
) -> None:
    from looplet.schema import compile_validator

    schema = normalize_parameters(parameters, tool_name="t")
    assert compile_validator(schema)(args) == validate_arguments(schema, args)
