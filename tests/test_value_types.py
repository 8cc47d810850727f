"""The value types keep what looplet/_value_type.py promises: fields, defaults, equality,
hashing by value (dicts and lists inside included), slots, replace, pickling.

That type checkers reject assigning to their fields is checked by mypy over
tests/typing/ in .ci/run.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from looplet import Step, ToolCall, ToolResult
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy, StreamChunk
from looplet.errors import ErrorKind, ToolError
from looplet.hooks import HookDecision, LoopEvent
from looplet.messages import ConversationView, Message
from looplet.types import Usage

ALL_VALUE_TYPES = [
    ToolCall,
    ToolResult,
    Step,
    Usage,
    Message,
    LLMRequest,
    LLMResponse,
    StreamChunk,
    RetryPolicy,
    HookDecision,
    LoopEvent,
]


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
    assert repr(Usage(1, 2)) == (
        "Usage(input_tokens=1, output_tokens=2, cache_read_tokens=0, cache_write_tokens=0)"
    )


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


def _equal_pairs() -> list[tuple[object, object]]:
    """Pairs of equal records built separately, each holding dicts, lists or nested values."""

    def call() -> ToolCall:
        return ToolCall("greet", {"name": "Alice", "tags": ["a", {"deep": [1, 2.5]}]}, "", "c1")

    def result() -> ToolResult:
        return ToolResult("greet", "name='Alice'", {"rows": [[1, 2], {"x": None}]}, call_id="c1")

    def message() -> Message:
        return Message("assistant", "hi", (call(),))

    history = [Message.user("hi"), message()]
    tools = ({"name": "greet", "parameters": {"type": "object"}},)
    return [
        (call(), call()),
        (result(), result()),
        (Step(1, call(), result()), Step(1, call(), result())),
        (message(), message()),
        # a request built on the loop's view equals (and hashes as) one on a list
        (
            LLMRequest(ConversationView(history), tools, step=2),
            LLMRequest(list(history), tools, step=2),
        ),
        (LLMResponse("t", (call(),), Usage(1, 2)), LLMResponse("t", (call(),), Usage(1, 2))),
        (
            HookDecision(updated_args={"a": [1]}, metadata={"retry": True}),
            HookDecision(updated_args={"a": [1]}, metadata={"retry": True}),
        ),
        (
            LoopEvent("step", 1, {"step": 1, "seen": {1, 2}}),
            LoopEvent("step", 1, {"step": 1, "seen": {2, 1}}),
        ),
        (Usage(1, 2), Usage(1, 2)),
        (StreamChunk("x", 0), StreamChunk("x", 0)),
        (RetryPolicy(2), RetryPolicy(2)),
    ]


@pytest.mark.parametrize("a, b", _equal_pairs(), ids=lambda v: type(v).__name__)
def test_equal_records_hash_alike_even_holding_dicts_and_lists(a: object, b: object) -> None:
    assert a == b and a is not b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1 and a in {b: "found"}


def test_every_value_type_is_hashable_by_value() -> None:
    # The documented claim, for each type built with its defaults (the issue: hash(ToolCall("x"))
    # raised TypeError, as every record holding a dict did).
    samples: list[Any] = [
        ToolCall("x"),
        ToolResult("x"),
        Step(1, ToolCall("x"), ToolResult("x")),
        Usage(),
        Message("user"),
        LLMRequest(()),
        LLMResponse(),
        StreamChunk(),
        RetryPolicy(),
        HookDecision(),
        LoopEvent("loop_start", 0),
    ]
    assert [type(s) for s in samples] == ALL_VALUE_TYPES
    for sample in samples:
        assert hash(sample) == hash(dataclasses.replace(sample))


def test_a_field_change_changes_the_hash_and_fields_left_out_of_equality_do_not_count() -> None:
    assert hash(ToolCall("greet", {"name": "Alice"})) != hash(ToolCall("greet", {"name": "Bob"}))
    assert hash(ToolCall("greet", {"n": [1, 2]})) != hash(ToolCall("greet", {"n": [2, 1]}))
    # on_chunk is compare=False: two requests differing only there are equal, so hash alike
    one, two = LLMRequest((), on_chunk=print), LLMRequest((), on_chunk=None)
    assert one == two and hash(one) == hash(two)


def test_unhashable_leaves_and_cycles_still_hash_consistently() -> None:
    class NoHash:
        __hash__ = None  # type: ignore[assignment]

        def __eq__(self, other: object) -> bool:
            return isinstance(other, NoHash)

    assert ToolResult("t", data=NoHash()) == ToolResult("t", data=NoHash())
    assert hash(ToolResult("t", data=NoHash())) == hash(ToolResult("t", data=NoHash()))
    # values equal across types hash alike: bytes and bytearray, a set and a dict's keys
    a = ToolResult("t", data={"raw": bytearray(b"x"), "ids": {1, 2}})
    b = ToolResult("t", data={"raw": b"x", "ids": {1: 0, 2: 0}.keys()})
    assert a == b and hash(a) == hash(b)
    circular: list[object] = []
    circular.append(circular)
    assert isinstance(hash(ToolResult("t", data=circular)), int)  # no RecursionError
    error = ToolError(ErrorKind.EXECUTION, "boom")  # an exception: equal and hashed by identity
    assert hash(ToolResult.failure(ToolCall("t"), error)) == hash(
        ToolResult.failure(ToolCall("t"), error)
    )


@pytest.mark.parametrize("cls", ALL_VALUE_TYPES)
def test_records_are_slotted_so_a_misspelt_attribute_is_an_error(cls: type) -> None:
    assert not hasattr(cls, "__dict__") or "__dict__" not in cls.__dict__
    required = [
        f
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    record = cls(
        *[
            1 if f.name in ("number", "step_num") else () if f.name == "messages" else "x"
            for f in required
        ]
    )
    with pytest.raises(AttributeError):
        record.not_a_field = 1


def test_fields_are_not_frozen_at_run_time_as_documented() -> None:
    # _value_type.py says why (a runtime freeze measured about 3 µs a loop step): type checkers
    # reject the assignment (tests/typing/), the interpreter does not. Should this ever
    # change, the documentation must change with it.
    call = ToolCall("greet")
    call.tool = "wave"  # type: ignore[misc]
    assert call.tool == "wave"


def test_the_loops_factories_fill_each_field_by_name() -> None:
    # The loop builds results and messages only through these factories, which pass fields
    # positionally for speed: a field added or moved must not shift the values silently.
    call = ToolCall("greet", {"name": "Alice"}, "because", "c1")
    ok = ToolResult.success(call, {"greeting": "hi"}, 2.5)
    assert (ok.tool, ok.args_summary, ok.data, ok.call_id) == (
        "greet",
        "name='Alice'",
        {"greeting": "hi"},
        "c1",
    )
    assert (ok.error, ok.error_detail, ok.duration_ms) == (None, None, 2.5)
    assert ok == ToolResult(
        tool="greet",
        args_summary="name='Alice'",
        data={"greeting": "hi"},
        duration_ms=2.5,
        call_id="c1",
    )
    bad = ToolResult.failure(call, ToolError(ErrorKind.EXECUTION, "boom"))
    for result in (ok, bad):
        message = Message.tool_result(result, "text")
        assert message == Message(
            role="tool",
            content="text",
            tool_call_id="c1",
            name="greet",
            is_error=result.error is not None,
        )
    assert Message.assistant("t", (call,)) == Message(
        role="assistant", content="t", tool_calls=(call,)
    )


def test_every_record_the_loop_makes_matches_its_factory() -> None:
    from looplet import BaseToolRegistry, LoopConfig, ToolSpec, composable_loop
    from looplet.testing import MockLLMBackend

    tools = BaseToolRegistry(
        [
            ToolSpec("greet", "Greet.", {"name": "str"}, lambda *, name: {"hi": name}),
            ToolSpec("done", "Finish.", {"answer": "str"}, lambda *, answer: answer),
        ]
    )
    script: list[Any] = [
        ToolCall("greet", {"name": "Alice"}),
        ToolCall("greet", {"name": 3}),  # invalid arguments: a failure
        [ToolCall("greet", {"name": "Bob"}), ToolCall("nope")],
        ToolCall("done", {"answer": "ok"}),
    ]
    llm = MockLLMBackend(script)
    config = LoopConfig(max_tokens=321, temperature=0.7)
    loop = composable_loop(llm=llm, tools=tools, task="t", config=config)
    steps = list(loop)
    # the engine builds each request positionally too: every field lands in its place
    assert [(r.max_tokens, r.temperature) for r in llm.requests] == [(321, 0.7)] * 4
    assert [r.step for r in llm.requests] == [1, 2, 3, 5]
    assert all(r.tools == tools.tool_schemas() for r in llm.requests)
    messages = loop.trajectory.messages
    tool_messages = [m for m in messages if m.role == "tool"]
    assert len(steps) == len(tool_messages) == 5
    for step, message in zip(steps, tool_messages, strict=True):
        call, result = step.tool_call, step.tool_result
        assert (result.tool, result.args_summary, result.call_id) == (
            call.tool,
            call.args_summary(),
            call.call_id,
        )
        if result.ok:
            assert result == ToolResult.success(call, result.data, result.duration_ms)
        assert message == Message.tool_result(result, message.content)
    turns = [m for m in messages if m.role == "assistant"]
    assert [len(m.tool_calls) for m in turns] == [1, 1, 2, 1]
