"""The scripted in-process backends: MockLLMBackend and its async twin."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import threading
from json.encoder import encode_basestring_ascii
from typing import Any

import pytest

from looplet import (
    InjectContext,
    LoopConfig,
    StopReason,
    ToolSpec,
    async_composable_loop,
    composable_loop,
)
from looplet.backends.base import AsyncLLMBackend, LLMBackend, LLMRequest, LLMResponse
from looplet.compact import ContextBudget
from looplet.errors import ConfigurationError, LLMError, ScriptExhaustedError
from looplet.messages import ConversationView, Message
from looplet.parse import format_text_reply
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from looplet.testing._mock_usage import _args_json, json_chars, reply_chars
from looplet.types import ToolCall, Usage
from tests.conftest import make_tools


def _request(text: str = "Greet Alice", system: str = "You are helpful.") -> LLMRequest:
    return LLMRequest(messages=[Message.system(system), Message.user(text)])


def test_json_text_reply_becomes_a_tool_call_with_turn_ids() -> None:
    llm = MockLLMBackend(['{"tool": "greet", "args": {"name": "Alice"}, "reasoning": "hi"}'])

    reply = llm.complete(_request())

    assert reply.tool_calls == (
        ToolCall("greet", {"name": "Alice"}, reasoning="hi", call_id="call_0_0"),
    )
    assert reply.finish_reason == "tool_calls"
    assert reply.model == "mock"


def test_other_text_becomes_a_plain_text_reply() -> None:
    llm = MockLLMBackend(["The answer is 42."])

    reply = llm.complete(_request())

    assert reply.text == "The answer is 42."
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"


def test_toolcall_list_and_dict_items_fill_empty_ids_per_turn() -> None:
    given = ToolCall("keep", {}, call_id="given")
    llm = MockLLMBackend(
        [
            ToolCall("greet", {"name": "Alice"}),
            [ToolCall("a", {"x": 1}), given],
            {"tool": "done", "args": {"answer": "ok"}},
        ]
    )

    first, second, third = (llm.complete(_request()) for _ in range(3))

    assert first.tool_calls == (ToolCall("greet", {"name": "Alice"}, call_id="call_0_0"),)
    assert [(c.tool, c.call_id) for c in second.tool_calls] == [
        ("a", "call_1_0"),
        ("keep", "given"),
    ]
    assert third.tool_calls == (ToolCall("done", {"answer": "ok"}, call_id="call_2_0"),)


def test_llmresponse_item_is_returned_unchanged() -> None:
    scripted = LLMResponse(text="exact", usage=Usage(7, 3), finish_reason="length", model="x")
    llm = MockLLMBackend([scripted])

    assert llm.complete(_request()) is scripted


def test_exception_item_is_raised() -> None:
    llm = MockLLMBackend([LLMError("mock", "boom", status=500), "after"])

    with pytest.raises(LLMError, match="boom") as info:
        llm.complete(_request())

    assert info.value.status == 500
    assert llm.complete(_request()).text == "after"


def test_callable_item_receives_the_request_and_its_result_is_used() -> None:
    def echo(request: LLMRequest) -> Any:
        return {"tool": "echo", "args": {"said": request.messages[-1].content}}

    llm = MockLLMBackend([echo])

    reply = llm.complete(_request("ping"))

    assert reply.tool_calls[0].args == {"said": "ping"}


def test_unsupported_item_raises_a_configuration_error_naming_it() -> None:
    llm = MockLLMBackend([42])  # type: ignore[list-item]

    with pytest.raises(ConfigurationError, match=r"reply 0 of the script is int 42"):
        llm.complete(_request())


def test_usage_is_a_deterministic_chars_over_four_estimate() -> None:
    llm = MockLLMBackend(["x" * 10], cycle=True)
    request = LLMRequest(messages=[Message.system("s" * 7), Message.user("u" * 9)])

    first = llm.complete(request).usage
    second = llm.complete(request).usage

    assert first == Usage(input_tokens=4, output_tokens=3)  # ceil(16/4), ceil(10/4)
    assert second == first


def test_input_estimate_of_a_message_list_counts_arguments_as_ascii_json() -> None:
    """A request that is not the loop's view is counted whole, by the same rule."""
    calls = tuple(ToolCall("note", args, call_id=f"c{i}") for i, args in enumerate(_ARGS))
    messages = [Message.user("héllo ✓"), Message.assistant("ok", calls)]
    llm = MockLLMBackend(["done"], cycle=True)

    for request in (messages, tuple(messages)):
        usage = llm.complete(LLMRequest(messages=request)).usage

        assert usage.input_tokens == _whole_conversation_tokens(messages)


def test_exhausted_script_raises_with_count_and_fix() -> None:
    llm = MockLLMBackend(["one", "two"], provider="scripted")
    llm.complete(_request())
    llm.complete(_request())

    with pytest.raises(ScriptExhaustedError) as info:
        llm.complete(_request())

    assert info.value.used == 2
    assert info.value.provider == "scripted"
    assert "2 replies are used up" in str(info.value)
    assert "cycle=True" in str(info.value)


def test_cycle_repeats_the_script() -> None:
    llm = MockLLMBackend(["a", "b"], cycle=True)

    texts = [llm.complete(_request()).text for _ in range(5)]

    assert texts == ["a", "b", "a", "b", "a"]


def test_cycle_without_responses_is_rejected_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="at least one response"):
        MockLLMBackend(cycle=True)


def test_requests_are_recorded_with_last_prompt_and_system_prompt() -> None:
    llm = MockLLMBackend(["a", "b"])
    first = _request("first task", system="sys one")
    tool_turn = LLMRequest(
        messages=[
            Message.system("sys two"),
            Message.user("task"),
            Message.assistant("", (ToolCall("t", {}, call_id="c"),)),
            Message("tool", "tool output", tool_call_id="c", name="t"),
        ]
    )

    llm.complete(first)
    llm.complete(tool_turn)

    assert llm.requests == [first, tool_turn]
    assert llm.last_request is tool_turn
    assert llm.last_prompt == "tool output"
    assert llm.last_system_prompt == "sys two"


def test_reset_forgets_calls_and_restarts_the_script() -> None:
    llm = MockLLMBackend(["a", "b"])
    llm.complete(_request())

    llm.reset()

    assert llm.requests == []
    assert llm.last_request is None
    assert llm.last_prompt == ""
    assert llm.complete(_request()).text == "a"


def test_legacy_generate_returns_raw_text_and_records_the_prompt() -> None:
    raw = 'Sure: {"tool": "greet", "args": {"name": "Alice"}}'
    llm = MockLLMBackend([raw, ToolCall("done", {"answer": "hi"})])

    first = llm.generate("Greet Alice", system_prompt="Be brief.", max_tokens=50)
    second = llm.generate("Finish")

    assert first == raw
    assert llm.requests[0].max_tokens == 50
    assert llm.requests[0].temperature == 0.2
    assert llm.last_prompt == "Finish"
    assert llm.requests[0].system_prompt == "Be brief."
    assert second == '{"tool": "done", "args": {"answer": "hi"}, "call_id": "call_1_0"}'


def test_backends_satisfy_the_backend_protocols() -> None:
    assert isinstance(MockLLMBackend(), LLMBackend)
    assert isinstance(AsyncMockLLMBackend(), AsyncLLMBackend)


def _script() -> list[Any]:
    return [
        '{"tools": [{"tool": "a", "args": {}}, {"tool": "b", "args": {"n": 1}}], "theory": "t"}',
        "plain words",
        ToolCall("c", {"k": "v"}),
        {"tool": "done", "args": {}},
    ]


def test_async_twin_gives_identical_replies() -> None:
    requests = [_request(f"turn {i}") for i in range(4)]
    sync = MockLLMBackend(_script())
    expected = [sync.complete(r) for r in requests]

    async def run() -> list[LLMResponse]:
        llm = AsyncMockLLMBackend(_script())
        return [await llm.acomplete(r) for r in requests]

    assert asyncio.run(run()) == expected


def test_async_twin_raises_exhaustion_and_records_calls() -> None:
    llm = AsyncMockLLMBackend(["only"])

    async def run() -> str:
        text = await llm.generate("hello", system_prompt="sys")
        with pytest.raises(ScriptExhaustedError):
            await llm.acomplete(_request())
        return text

    assert asyncio.run(run()) == "only"
    assert llm.last_system_prompt == "You are helpful."
    assert [c.messages[-1].content for c in llm.requests] == ["hello", "Greet Alice"]


# -- usage estimates stay O(1) per turn, with the same numbers -------------------------------


def _whole_conversation_tokens(messages: Any) -> int:
    """The input estimate as first written: every message of the request counted each turn."""
    chars = 0
    for message in messages:
        chars += len(message.content)
        for call in message.tool_calls:
            chars += len(call.tool) + len(json.dumps(call.args, default=str))
    return math.ceil(chars / 4)


def _raw_tokens(item: Any, reply: LLMResponse) -> int:
    raw = item if isinstance(item, str) else format_text_reply(reply.text, reply.tool_calls)
    return math.ceil(len(raw) / 4)


class _Recording:
    """A backend that passes each request to a mock and keeps the request and reply."""

    def __init__(self, llm: MockLLMBackend) -> None:
        self.llm = llm
        self.turns: list[tuple[LLMRequest, LLMResponse]] = []

    def complete(self, request: LLMRequest) -> LLMResponse:
        reply = self.llm.complete(request)
        self.turns.append((request, reply))
        return reply


def _note_tools() -> Any:
    note = ToolSpec(
        name="note",
        description="Note something.",
        parameters={"text": "str", "when": "any?"},
        execute=lambda *, text, when=None: {"noted": text[:20]},
    )
    return make_tools(note=note)


def _varied_script(turns: int) -> list[Any]:
    """Every kind of script item, non-ASCII text (the estimate escapes it, the raw reply does
    not), nested and flat values of each JSON kind, several calls in one turn; then ``done``."""
    kinds: list[Any] = [
        ToolCall("note", {"text": "héllo ✓ " * 20, "when": [1.5, None, {"k": "é"}]}),
        # flat arguments, added up without encoding: escapes, DEL (escaped in ASCII-only
        # JSON, not in the text form), ints, booleans, None; a reasoning on a call
        ToolCall("note", {"text": 'q"uote\\ del\x7f tab\t é', "when": -(10**30)}, reasoning="é"),
        ToolCall("note", {"text": "yes", "when": True}),
        ToolCall("note", {"text": "", "when": None}, reasoning="why"),
        ToolCall("note", {"when": False, "text": "\u2028\U0001f600"}),
        '{"tool": "note", "args": {"text": "plain"}, "reasoning": "why not"}',
        [ToolCall("note", {"text": "a"}), ToolCall("note", {"text": "b" * 200})],
        {"tool": "note", "args": {"text": "from a dict"}},
        'Noting it.\n```json\n{"tool": "note", "args": {"text": "fenced"}}\n```',
    ]
    return [kinds[i % len(kinds)] for i in range(turns)] + [ToolCall("done", {"answer": "ok"})]


def test_usage_matches_counting_the_whole_conversation_every_turn() -> None:
    """The incremental count gives the numbers the whole-conversation count gave, through
    extra context messages, compactions (a new list) and a second run on the same mock."""

    class Remind:
        def pre_prompt(self, step_num: int) -> Any:
            return InjectContext(f"Reminder {step_num}: keep notes short.")

    script = _varied_script(40)
    llm = _Recording(MockLLMBackend(script, cycle=True))
    for _ in range(2):  # the second run sends a new conversation list to the same mock
        loop = composable_loop(
            llm=llm,
            tools=_note_tools(),
            task="Take notes.",
            hooks=[Remind()],
            config=LoopConfig(max_steps=60, context_budget=ContextBudget(max_tokens=1500)),
        )
        list(loop)
        assert loop.trajectory.stop_reason is StopReason.DONE
        assert loop.trajectory.compactions  # the conversation list was swapped
    assert len(llm.turns) == 2 * len(script)
    for turn, (request, reply) in enumerate(llm.turns):
        assert reply.usage == Usage(
            _whole_conversation_tokens(list(request.messages)),
            _raw_tokens(script[turn % len(script)], reply),
        ), turn


def test_concurrent_async_runs_on_one_mock_get_their_own_counts() -> None:
    script = _varied_script(12)
    llm = AsyncMockLLMBackend(script, cycle=True)
    replies: list[tuple[LLMRequest, LLMResponse]] = []

    class Recording:
        async def acomplete(self, request: LLMRequest) -> LLMResponse:
            reply = await llm.acomplete(request)
            replies.append((request, reply))
            return reply

    async def one_run(task: str) -> None:
        loop = async_composable_loop(
            llm=Recording(), tools=_note_tools(), task=task, config=LoopConfig(max_steps=40)
        )
        async for _ in loop:
            pass

    async def both() -> None:
        await asyncio.gather(one_run("First run."), one_run("Second, longer task " * 10))

    asyncio.run(both())
    assert len({id(request.messages) for request, _ in replies}) == len(replies)
    for request, reply in replies:
        assert reply.usage.input_tokens == _whole_conversation_tokens(list(request.messages))


class _CountedArgs(dict[str, Any]):
    """Tool arguments that count how often they are read item by item (as JSON encoding,
    validation and the step's summary read them)."""

    reads = 0

    def items(self) -> Any:
        type(self).reads += 1
        return super().items()


def _reads_over_a_run(turns: int) -> int:
    script: list[Any] = [ToolCall("note", _CountedArgs(text="x")) for _ in range(turns)]
    _CountedArgs.reads = 0
    loop = composable_loop(
        llm=MockLLMBackend([*script, ToolCall("done", {"answer": "ok"})]),
        tools=_note_tools(),
        task="Take notes.",
        config=LoopConfig(max_steps=turns + 5),
    )
    steps = list(loop)
    assert len(steps) == turns + 1 and all(step.ok for step in steps)
    return _CountedArgs.reads


def test_each_message_is_counted_once_however_long_the_run() -> None:
    """Linear, not quadratic: each turn reads its own call's arguments a fixed number of
    times (to write the reply, validate, summarise, estimate), so every 20 more turns add the
    same reads. Counting the whole conversation on every turn read every earlier call's
    arguments again: 190, then 590, then 990 more reads for the same 20 turns."""
    twenty, forty, sixty = (_reads_over_a_run(n) for n in (20, 40, 60))

    assert sixty - forty == forty - twenty
    assert forty - twenty <= 20 * 8


@pytest.mark.parametrize("parse_error", ["parse_error value", None])
def test_a_filled_call_id_keeps_every_other_field(parse_error: str | None) -> None:
    """On both ways a call gets its id: a call with a parse error takes the general path,
    one without it the per-turn shortcut."""
    values: dict[str, Any] = {"args": {"k": [1, 2]}}
    for spec in dataclasses.fields(ToolCall):
        values.setdefault(spec.name, f"{spec.name} value")
    values["call_id"] = ""
    values["parse_error"] = parse_error
    scripted = ToolCall(**values)

    reply = MockLLMBackend([scripted]).complete(_request())

    assert reply.tool_calls == (dataclasses.replace(scripted, call_id="call_0_0"),)


def test_generate_writes_a_scripted_llmresponse_as_text() -> None:
    call = ToolCall("greet", {"name": "Ålice"}, call_id="c1")
    llm = MockLLMBackend([LLMResponse(text="because", tool_calls=(call,))])

    assert llm.generate("hi") == format_text_reply("because", (call,))


# -- the character counts behind the estimates are exact --------------------------------------

_ARGS: list[Any] = [
    {},
    {"name": "Alice"},
    {"text": 'q"uote\\back\nslash\x00\x1f\x7f', "n": 3, "ok": True, "no": False, "none": None},
    {"é": "héllo ✓", "emoji": "\U0001f600", "sep": "\u2028", "lone": "\ud800"},
    {"big": 10**40, "neg": -7, "zero": 0},
    {"f": 1.5, "nan": float("nan"), "inf": float("-inf")},  # floats: encoded, not added up
    {"nested": {"k": [1, "é", None]}, "list": []},
    {1: "int key", "s": "x"},  # a non-string key: encoded
    {"sub": type("Text", (str,), {})("a str subclass")},
    {"flag": type("Flag", (int,), {})(1)},
    ["not", "a", "dict"],
    "raw ✓ string",
]


@pytest.mark.parametrize("args", _ARGS, ids=range(len(_ARGS)))
def test_argument_chars_are_the_encoded_lengths(args: Any) -> None:
    """What the estimates add up equals the length of the JSON they stand for: ASCII-only
    with ``default=str`` for the input, as written in the text form for the output."""
    assert json_chars(args, encode_basestring_ascii, _args_json) == len(
        json.dumps(args, default=str)
    )
    assert json_chars(args) == len(json.dumps(args, ensure_ascii=False))


def _reply_shapes() -> list[tuple[str, tuple[ToolCall, ...]]]:
    calls = [ToolCall("greet", a, call_id=f"id {i} ✓") for i, a in enumerate(_ARGS)]
    return [
        ("plain text, no calls ✓", ()),
        ("", ()),
        *(("", (call,)) for call in calls),
        ("because ✓", (ToolCall("greet", {"name": "A"}),)),
        ("", (ToolCall("greet", {"name": "A"}, reasoning='its "own" reason'),)),
        ("", (ToolCall('t\u00e9l"', {}, call_id=""),)),
        ("", (ToolCall("bad", {}, call_id="c", raw_arguments='{"x": 1,', parse_error="cut"),)),
        ("", (ToolCall("bad", {"x": 1}, parse_error="no raw arguments kept"),)),
        ("", tuple(calls[:2])),
        ("the theory ✓", tuple(calls[:3])),
        ("", (ToolCall("a", {}, reasoning="first's reasoning"), ToolCall("b", {"n": 1}))),
    ]


@pytest.mark.parametrize("text, calls", _reply_shapes())
def test_reply_chars_are_the_length_of_the_text_form(
    text: str, calls: tuple[ToolCall, ...]
) -> None:
    assert reply_chars(text, calls) == len(format_text_reply(text, calls))


@pytest.mark.parametrize("args", _ARGS[:-2], ids=range(len(_ARGS) - 2))
@pytest.mark.parametrize("reasoning", ["", 'é ✓ "why"'])
def test_output_estimate_of_a_call_item_counts_its_text_form_exactly(
    args: Any, reasoning: str
) -> None:
    """Through the public API, to the character: padding the tool's name by one to four
    characters moves the estimate across a token boundary exactly where the text form's
    length does, so the estimate's count is neither short nor long by any character."""
    for pad in range(4):
        scripted = ToolCall("t" + "x" * pad, args, reasoning=reasoning)
        llm = MockLLMBackend([scripted])

        reply = llm.complete(_request())

        assert reply.usage.output_tokens == math.ceil(
            len(format_text_reply("", reply.tool_calls)) / 4
        ), pad


# -- the async mock hands the event loop one turn per call ------------------------------------


def test_async_mock_lets_the_event_loop_run_other_work_on_each_call() -> None:
    """A callback scheduled before the call runs during it, as during a network wait."""
    llm = AsyncMockLLMBackend(["a", "b"])

    async def run() -> list[str]:
        seen: list[str] = []
        asyncio.get_running_loop().call_soon(seen.append, "before acomplete")
        await llm.acomplete(_request())
        asyncio.get_running_loop().call_soon(seen.append, "before generate")
        await llm.generate("hi")
        return seen

    assert asyncio.run(run()) == ["before acomplete", "before generate"]


def test_concurrent_callers_of_one_async_mock_take_turns() -> None:
    llm = AsyncMockLLMBackend(["reply"], cycle=True)
    order: list[str] = []

    async def caller(name: str) -> None:
        for _ in range(3):
            await llm.acomplete(_request(name))
            order.append(name)

    async def both() -> None:
        await asyncio.gather(caller("a"), caller("b"))

    asyncio.run(both())
    assert order == ["a", "b"] * 3
    assert [r.messages[-1].content for r in llm.requests] == ["a", "b"] * 3


# -- one mock shared by threads ---------------------------------------------------------------


def test_threads_sharing_one_mock_get_one_turn_each_and_exact_counts() -> None:
    """Each call takes its own turn (so its own call id) and is recorded once; the prompt
    count, which takes no lock, is exact for every thread's growing conversation."""
    threads, turns = 4, 300
    llm = MockLLMBackend([ToolCall("note", {"text": "x"})], cycle=True)
    results: list[list[tuple[int, LLMResponse]]] = [[] for _ in range(threads)]

    def worker(index: int) -> None:
        conversation = [Message.system("sys"), Message.user(f"thread {index}")]
        for _ in range(turns):
            reply = llm.complete(LLMRequest(messages=ConversationView(conversation)))
            expected = _whole_conversation_tokens(conversation)
            results[index].append((expected, reply))
            conversation.append(Message.assistant("", reply.tool_calls))
            conversation.append(Message("tool", "ok " * index, tool_call_id="c", name="note"))

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    replies = [reply for per_thread in results for _, reply in per_thread]
    assert llm.calls == threads * turns
    ids = sorted(int(r.tool_calls[0].call_id.split("_")[1]) for r in replies)
    assert ids == list(range(threads * turns))
    for per_thread in results:
        for expected, reply in per_thread:
            assert reply.usage.input_tokens == expected
