"""The value types keep the dataclass contract: fields, defaults, equality, hash, replace.

That type checkers reject assigning to their fields is checked by mypy over
tests/typing/ in .ci/run.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from looplet import Step, ToolCall, ToolResult, Usage
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.messages import Message


@pytest.mark.parametrize(
    "cls", [ToolCall, ToolResult, Step, Usage, Message, LLMRequest, LLMResponse]
)
def test_signature_matches_the_fields(cls: type) -> None:
    params = list(inspect.signature(cls).parameters)
    assert params == [f.name for f in dataclasses.fields(cls)]


def test_defaults_factories_equality_and_replace_still_work() -> None:
    a, b = ToolCall("greet"), ToolCall("greet")
    assert a.args == {} and a.args is not b.args  # default_factory gives each its own dict
    assert a == b and ToolCall("x", {"n": 1}, call_id="c") == ToolCall("x", {"n": 1}, "", "c")
    assert LLMResponse().usage == Usage() and LLMResponse().tool_calls == ()
    assert dataclasses.replace(a, tool="wave") == ToolCall("wave")
    assert repr(Usage(1, 2)) == "Usage(input_tokens=1, output_tokens=2)"


def test_equal_values_hash_alike_and_a_missing_field_is_a_type_error() -> None:
    assert hash(Usage(1, 2)) == hash(Usage(1, 2)) and hash(Usage(1, 2)) != hash(Usage(2, 1))
    assert {Message.user("hi"), Message.user("hi")} == {Message.user("hi")}
    with pytest.raises(TypeError):
        ToolCall()  # type: ignore[call-arg]


def test_values_pickle_and_copy_to_equal_values() -> None:
    import copy
    import pickle

    call = ToolCall("greet", {"name": "Alice"}, call_id="c1")
    step = Step(1, call, ToolResult("greet", "name='Alice'", {"greeting": "hi"}, call_id="c1"))
    request = LLMRequest((Message.user("hi"), Message("assistant", "", (call,))), step=2)
    for value in (step, request, LLMResponse("x", (call,), Usage(3, 4)), Usage(1, 2)):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value and copy.copy(value) == value
