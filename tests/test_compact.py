"""Compaction: each strategy on its own, then the loop compacting under pressure and on a
provider's "context length exceeded", without ever changing the steps it yielded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai
import pytest

from looplet import InjectContext, LLMError, LoopConfig, StopReason, ToolSpec, composable_loop
from looplet.backends import OpenAIBackend, RetryPolicy
from looplet.backends.anthropic import AnthropicBackend
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.compact import (
    NOTE_PREFIX,
    CompactionRecord,
    CompactOutcome,
    ContextBudget,
    PruneCompact,
    SummarizeCompact,
    TruncateCompact,
    check_turns,
    compact_chain,
    compact_steps,
    estimate_tokens,
    is_context_overflow,
)
from looplet.errors import ConfigurationError
from looplet.messages import Message
from looplet.testing import (
    MockLLMBackend,
    RecordedRequest,
    ScriptedModelServer,
    call,
    error_reply,
    text_reply,
    tool_reply,
)
from looplet.types import ToolCall
from tests._anthropic import FAST, MODEL, client_for
from tests.conftest import RunLoop, make_tools, run_sync

FAST_RETRY = RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.01)
OVERFLOW = error_reply(
    400,
    "This model's maximum context length is 8192 tokens. However, your messages resulted in "
    "9000 tokens. Please reduce the length of the messages.",
    type="invalid_request_error",
    code="context_length_exceeded",
)
DONE = tool_reply(call("done", {"answer": "ok"}))


def conversation(turns: int, *, result: str = "x" * 200, parallel_at: int = -1) -> list[Message]:
    """System prompt, task, then ``turns`` turns of ``lookup`` calls (two calls at one turn)."""
    messages = [Message.system("You look things up."), Message.user("Find order 1042.")]
    for t in range(turns):
        n = 2 if t == parallel_at else 1
        calls = tuple(ToolCall("lookup", {"i": t, "j": j}, call_id=f"c{t}_{j}") for j in range(n))
        messages.append(Message.assistant("", calls))
        for c in calls:
            messages.append(Message("tool", f"{c.call_id}:{result}", (), c.call_id, "lookup"))
    return messages


def turn_of(message: Message) -> str:
    """The turn a message belongs to ("c3" for call c3_0 and its result)."""
    if message.role == "tool":
        return message.tool_call_id.split("_")[0]
    return message.tool_calls[0].call_id.split("_")[0] if message.tool_calls else ""


# -- the strategies ----------------------------------------------------------------------------


def test_truncate_drops_the_oldest_whole_turns_and_keeps_system_task_and_a_note() -> None:
    messages = conversation(12, parallel_at=1)
    budget = ContextBudget(max_tokens=800)
    outcome = TruncateCompact(keep_recent=2).compact(messages, budget=budget)

    out = outcome.messages
    assert out[:2] == messages[:2]
    assert out[2].role == "user" and out[2].content.startswith(NOTE_PREFIX)
    dropped = len(messages) + 1 - len(out)
    assert f"{dropped} earlier messages" in out[2].content
    assert out[3:] == messages[len(messages) - len(out) + 3 :]  # an unchanged suffix
    assert out[3].role == "assistant"  # the kept part starts with a whole turn
    check_turns(out, TruncateCompact())
    assert outcome.after_tokens == budget.count(out) <= budget.target_tokens
    assert outcome.before_tokens == budget.count(messages) > outcome.after_tokens
    assert outcome.llm_calls == 0
    assert "dropped" in outcome.reason


def test_truncate_keeps_a_parallel_turn_whole() -> None:
    messages = conversation(4, parallel_at=2, result="y" * 400)
    # A target that the cut could only meet by splitting turn 2 (two calls, two results).
    for max_tokens in range(200, 700, 7):
        out = TruncateCompact(keep_recent=1).compact(
            messages, budget=ContextBudget(max_tokens=max_tokens)
        )
        check_turns(out.messages, TruncateCompact())
        kept = [turn_of(m) for m in out.messages[3:]]
        for turn in set(kept):
            assert kept.count(turn) == [turn_of(m) for m in messages].count(turn)


def test_truncate_never_drops_the_newest_turns_and_says_when_it_cannot_help() -> None:
    messages = conversation(3)
    outcome = TruncateCompact(keep_recent=3).compact(messages, budget=ContextBudget(10))
    assert outcome.messages == messages
    assert outcome.after_tokens == outcome.before_tokens
    assert "no turn" in outcome.reason

    out = TruncateCompact(keep_recent=1).compact(messages, budget=ContextBudget(10)).messages
    assert out[-2:] == messages[-2:]


def test_a_second_truncation_folds_the_earlier_note_into_one() -> None:
    budget = ContextBudget(max_tokens=700)
    first = TruncateCompact().compact(conversation(10), budget=budget).messages
    grown = first + conversation(16)[len(conversation(10)) :]
    second = TruncateCompact().compact(grown, budget=budget).messages
    notes = [m for m in second if m.content.startswith(NOTE_PREFIX)]
    assert len(notes) == 1
    lost = len(conversation(16)) - (len(second) - 1)  # all but what is kept besides the note
    assert f"{lost} earlier messages" in notes[0].content


def test_prune_clears_old_results_naming_the_tool_and_size() -> None:
    messages = conversation(8, result="z" * 800)
    outcome = PruneCompact(keep_recent=2).compact(messages, budget=ContextBudget(1600))
    out = outcome.messages
    assert [(m.role, m.tool_call_id) for m in out] == [(m.role, m.tool_call_id) for m in messages]
    cleared = [m for m in out if m.role == "tool" and m.content.startswith(NOTE_PREFIX)]
    assert cleared and all("lookup" in m.content and "805 characters" in m.content for m in cleared)
    assert out[-1] == messages[-1] and out[-3] == messages[-3]  # the newest two results stay
    assert cleared[0].tool_call_id == "c0_0"  # oldest first
    assert len(cleared) == 5  # no more than needed: the sixth oldest result stays
    assert outcome.after_tokens <= 1600 * 0.6 < outcome.before_tokens
    assert outcome.reason == f"prune: cleared {len(cleared)} tool results"


def test_prune_only_touches_the_tools_named() -> None:
    messages = conversation(4, result="z" * 800)
    messages.insert(4, Message("tool", "w" * 800, (), "c0_1", "search"))
    messages[2] = Message.assistant(
        "", (*messages[2].tool_calls, ToolCall("search", {}, "", "c0_1"))
    )
    check_turns(messages, None)
    out = PruneCompact(keep_recent=0, tools=["search"]).compact(messages, budget=ContextBudget(10))
    changed = [m.name for m, old in zip(out.messages, messages, strict=True) if m != old]
    assert changed == ["search"]


def test_summarize_replaces_old_turns_with_the_model_summary_keeping_identifiers() -> None:
    messages = conversation(10, result="order 1042 shipped to /srv/orders/1042.json on 2024-05-01")
    summary = (
        "Goal: find order 1042.\nFindings: order 1042 shipped on 2024-05-01, file "
        "/srv/orders/1042.json.\nOpen questions: none.\nRecent decisions: look up lines."
    )
    llm = MockLLMBackend([LLMResponse(text=summary)])
    budget = ContextBudget(max_tokens=500)
    outcome = SummarizeCompact(keep_recent=2, max_summary_tokens=100).compact(
        messages, budget=budget, llm=llm
    )

    (request,) = llm.requests
    assert request.tools == ()
    asked = request.messages[-1].content
    assert "Find order 1042." in asked and "/srv/orders/1042.json" in asked and "c0_0" in asked
    assert "verbatim" in request.system_prompt or "exactly as written" in request.system_prompt
    out = outcome.messages
    assert out[:2] == messages[:2]
    assert out[2].content.startswith(f"{NOTE_PREFIX} Summary of ")
    for identifier in ("1042", "/srv/orders/1042.json", "2024-05-01"):
        assert identifier in out[2].content
    check_turns(out, SummarizeCompact())
    assert outcome.llm_calls == 1 and outcome.reason.startswith("summarize:")
    assert outcome.after_tokens <= budget.target_tokens


def test_summarize_falls_back_to_truncation_when_the_call_fails() -> None:
    messages = conversation(10)
    llm = MockLLMBackend([LLMError("mock", "overloaded", status=529)])
    outcome = SummarizeCompact().compact(messages, budget=ContextBudget(900), llm=llm)
    assert "the summary call failed" in outcome.reason and "truncate: dropped" in outcome.reason
    assert outcome.messages[2].content.startswith(NOTE_PREFIX)
    assert "earlier messages of this conversation were dropped" in outcome.messages[2].content
    assert outcome.llm_calls == 1
    check_turns(outcome.messages, SummarizeCompact())


class Recording:
    """A service that records that it ran and drops nothing (or everything after the task)."""

    def __init__(self, drop: bool = False) -> None:
        self.ran = 0
        self.drop = drop

    def compact(
        self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any
    ) -> CompactOutcome:
        self.ran += 1
        out = list(messages[:2]) if self.drop else list(messages)
        return CompactOutcome(out, "recorded", budget.count(messages), budget.count(out))


def test_a_chain_stops_at_the_first_stage_that_makes_it_fit() -> None:
    first, second, third = Recording(), Recording(drop=True), Recording()
    chain = compact_chain(first, second, third)
    outcome = chain.compact(conversation(5), budget=ContextBudget(300))
    assert (first.ran, second.ran, third.ran) == (1, 1, 0)
    assert outcome.reason == "recorded" and len(outcome.messages) == 2

    fitting = compact_chain(first).compact(conversation(1), budget=ContextBudget(10_000))
    assert first.ran == 1 and fitting.reason == "nothing could be dropped"


def test_a_services_model_calls_are_yielded_for_the_driver_to_make() -> None:
    class TwoCalls:
        def compact(
            self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any
        ) -> CompactOutcome:
            try:  # a broad fallback must not swallow the request handed to the driver
                first = llm.complete(LLMRequest([Message.user("first")]))
            except Exception:
                return CompactOutcome(list(messages), "fell back", 0, 0)
            second = llm.complete(LLMRequest([Message.user(f"second after {first.text}")]))
            return CompactOutcome(list(messages[:2]), second.text, 0, 0, llm_calls=2)

    steps = compact_steps(TwoCalls(), conversation(2), ContextBudget(100))
    assert next(steps).messages[0].content == "first"
    assert steps.send(LLMResponse(text="A")).messages[0].content == "second after A"
    with pytest.raises(StopIteration) as stop:
        steps.send(LLMResponse(text="B"))
    outcome = stop.value.value
    assert outcome.reason == "B" and len(outcome.messages) == 2


def test_configuration_errors_say_what_to_pass() -> None:
    with pytest.raises(ConfigurationError, match=r"compact_chain\(\) needs at least one"):
        compact_chain()
    with pytest.raises(ConfigurationError, match=r"argument 1 .*has no compact"):
        compact_chain(TruncateCompact(), object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="target must be a fraction"):
        ContextBudget(1000, target=1.5)
    with pytest.raises(ConfigurationError, match="max_tokens must be a positive int"):
        ContextBudget(0)
    with pytest.raises(ConfigurationError, match="keep_recent must be an int >= 1"):
        TruncateCompact(keep_recent=0)
    with pytest.raises(ConfigurationError, match="collection of tool names"):
        PruneCompact(tools="search")
    with pytest.raises(ConfigurationError, match="context_budget must be a ContextBudget"):
        LoopConfig(context_budget=8000)  # type: ignore[arg-type]


def test_context_overflow_is_recognised_from_each_provider() -> None:
    def err(status: int | None, message: str, kind: str = "") -> LLMError:
        return LLMError("p", message, status=status, kind=kind)

    assert is_context_overflow(err(400, "This model's maximum context length is 8192 tokens."))
    assert is_context_overflow(err(400, "prompt is too long: 210000 tokens > 200000 maximum"))
    assert is_context_overflow(err(400, "error code: context_length_exceeded"))
    assert is_context_overflow(err(None, "?", kind="context_length_exceeded"))
    assert not is_context_overflow(err(429, "maximum context length"))
    assert not is_context_overflow(err(400, "Invalid 'messages[2].role'"))
    assert not is_context_overflow(ValueError("maximum context length"))


def test_estimate_counts_text_and_tool_calls() -> None:
    budget = ContextBudget(1000)
    assert estimate_tokens("abcd" * 10) == 10 and estimate_tokens("abcde") == 2
    call_message = Message.assistant("", (ToolCall("greet", {}, call_id="c", raw_arguments="{}"),))
    assert budget.count_message(call_message) == 4 + 2 + 1
    assert budget.count([Message.user("abcd" * 10)] * 2) == 2 * (4 + 10)


# -- the loop ----------------------------------------------------------------------------------


def lookup_tools() -> Any:
    return make_tools(
        lookup=ToolSpec(
            name="lookup",
            description="Look up record i.",
            parameters={"i": "int"},
            execute=lambda *, i: {"record": i, "text": f"record {i}: " + "r" * 300},
        )
    )


class Events:
    """Records the requests sent and the compactions, through ``on_event``."""

    def __init__(self) -> None:
        self.requests: list[LLMRequest] = []
        self.compactions: list[CompactionRecord] = []

    def on_event(self, event: Any) -> None:
        if event.kind == "llm_call":
            self.requests.append(event.data["request"])
        elif event.kind == "compaction":
            self.compactions.append(event.data["record"])


def lookups_then_done(n: int) -> Any:
    """A mock model that calls ``lookup`` ``n`` times, then done, and answers summary requests."""
    turns = iter(range(n + 1))

    def reply(request: LLMRequest) -> Any:
        if not request.tools:
            return LLMResponse(text="Goal: look up records. Findings: records 0-9 read.")
        i = next(turns)
        return ToolCall("lookup", {"i": i}) if i < n else ToolCall("done", {"answer": "all read"})

    return reply


@pytest.mark.parametrize("strategy", [None, SummarizeCompact(max_summary_tokens=60)])
def test_the_loop_compacts_under_pressure_and_the_steps_stay_as_yielded(
    run_loop: RunLoop, strategy: Any
) -> None:
    budget = ContextBudget(max_tokens=1500, strategy=strategy)
    events = Events()
    steps, traj = run_loop(
        llm=MockLLMBackend([lookups_then_done(30)], cycle=True),
        tools=lookup_tools(),
        task="Read records 0 to 29.",
        hooks=[events],
        config=LoopConfig(max_steps=40, context_budget=budget),
    )
    assert traj.stop_reason is StopReason.DONE
    assert traj.steps == steps and len(steps) == 31
    assert [s.tool_result.data["record"] for s in steps[:-1]] == list(range(30))
    assert all(s.tool_result.data["text"].endswith("r" * 300) for s in steps[:-1])
    assert events.compactions and all(c.trigger == "pressure" for c in events.compactions)
    assert all(c.after_tokens < c.before_tokens for c in events.compactions)
    agent_requests = [r for r in events.requests if r.tools]
    assert len(agent_requests) == 31
    for request in agent_requests:
        assert budget.count(request.messages) <= budget.max_tokens
        check_turns(list(request.messages), None)
    assert traj.messages[-1].role == "tool"  # the trajectory holds the compacted conversation
    if strategy is not None:
        assert all(c.llm_calls == 1 for c in events.compactions)
        assert traj.llm_calls == 31 + len(events.compactions)
        assert traj.messages[2].content.startswith(f"{NOTE_PREFIX} Summary of ")


def test_pre_prompt_context_is_still_sent_after_a_compaction() -> None:
    class Remind:
        def pre_prompt(self, step_num: int) -> Any:
            return InjectContext(f"Reminder {step_num}: account ACC-7.")

    events = Events()
    budget = ContextBudget(max_tokens=1200)
    steps, traj = run_sync(
        llm=MockLLMBackend([lookups_then_done(20)], cycle=True),
        tools=lookup_tools(),
        task="Read records.",
        hooks=[Remind(), events],
        config=LoopConfig(max_steps=30, context_budget=budget),
    )
    assert traj.stop_reason is StopReason.DONE and len(steps) == 21
    assert events.compactions
    for request in events.requests:
        assert request.messages[-1].content == f"Reminder {request.step}: account ACC-7."
        assert budget.count(request.messages) <= budget.max_tokens


def test_a_failed_summary_call_falls_back_and_the_run_goes_on() -> None:
    turns = iter(range(100))

    def reply(request: LLMRequest) -> Any:
        if not request.tools:
            return LLMError("mock", "overloaded", status=529)
        i = next(turns)
        return ToolCall("lookup", {"i": i}) if i < 20 else ToolCall("done", {"answer": "ok"})

    events = Events()
    budget = ContextBudget(max_tokens=1200, strategy=SummarizeCompact(max_summary_tokens=50))
    loop = composable_loop(
        llm=MockLLMBackend([reply], cycle=True),
        tools=lookup_tools(),
        task="Read records.",
        hooks=[events],
        config=LoopConfig(max_steps=30, context_budget=budget),
    )
    steps = list(loop)
    assert loop.trajectory.stop_reason is StopReason.DONE and len(steps) == 21
    assert events.compactions
    assert all("the summary call failed" in c.reason for c in events.compactions)


def test_a_service_that_splits_a_turn_is_a_configuration_error() -> None:
    class Orphaning:
        def compact(
            self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any
        ) -> CompactOutcome:
            out = [m for m in messages if m.role != "assistant" or m is messages[-2]]
            return CompactOutcome(out, "orphaned", 0, 0)

    loop = composable_loop(
        llm=MockLLMBackend([lookups_then_done(20)], cycle=True),
        tools=lookup_tools(),
        task="Read records.",
        config=LoopConfig(max_steps=30, context_budget=ContextBudget(800, strategy=Orphaning())),
    )
    with pytest.raises(
        ConfigurationError, match=r"Orphaning\.compact\(\) returned .*splits a tool"
    ):
        list(loop)


# -- over real HTTP: the loopback server rejects a split turn with 400 -------------------------


def run_over_http(script: list[Any], budget: ContextBudget, max_steps: int = 30) -> Any:
    """Run the lookup agent against the loopback server; (trajectory or error, bodies, events)."""
    events = Events()
    with ScriptedModelServer(script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            config = LoopConfig(max_steps=max_steps, context_budget=budget)
            loop = composable_loop(
                llm=llm, tools=lookup_tools(), task="Read records.", hooks=[events], config=config
            )
            try:
                for _ in loop:
                    pass
                result: Any = loop.trajectory
            except LLMError as err:
                result = err
        finally:
            client.close()
        return result, [r.body for r in server.requests], events


def lookup(*indexes: int) -> Any:
    return tool_reply(*(call("lookup", {"i": i}) for i in indexes))


def test_parallel_turns_are_kept_whole_over_http() -> None:
    script = [lookup(2 * i, 2 * i + 1) for i in range(12)] + [DONE]
    traj, bodies, events = run_over_http(script, ContextBudget(max_tokens=1600))
    assert not isinstance(traj, Exception), traj
    assert traj.stop_reason is StopReason.DONE and len(traj.steps) == 25
    assert events.compactions and len(bodies) == 13  # the server accepted every request


def test_context_length_exceeded_is_compacted_and_retried_once() -> None:
    script = [lookup(i) for i in range(6)] + [OVERFLOW, DONE]
    traj, bodies, events = run_over_http(script, ContextBudget(max_tokens=100_000))
    assert traj.stop_reason is StopReason.DONE and traj.tools[-1] == "done"
    assert len(traj.steps) == 7
    (record,) = events.compactions
    assert record.trigger == "context_length_exceeded" and record.step == 7
    refused, retried = bodies[6], bodies[7]
    assert len(retried["messages"]) < len(refused["messages"])
    assert retried["messages"][:2] == refused["messages"][:2]
    assert retried["messages"][2]["content"].startswith(NOTE_PREFIX)
    assert (record.before_messages, record.after_messages) == (
        len(refused["messages"]),
        len(retried["messages"]),
    )
    assert traj.llm_calls == 8  # six lookups, the refused call, the retry


def test_a_second_context_length_error_ends_the_run_as_llm_error() -> None:
    script = [lookup(i) for i in range(6)] + [OVERFLOW, OVERFLOW, DONE]
    err, bodies, events = run_over_http(script, ContextBudget(max_tokens=100_000))
    assert isinstance(err, LLMError) and err.status == 400
    assert "maximum context length" in str(err)
    assert err.trajectory is not None
    assert err.trajectory.stop_reason is StopReason.LLM_ERROR
    assert err.trajectory.tools == ["lookup"] * 6
    assert len(bodies) == 8 and len(events.compactions) == 1


def test_without_a_budget_a_context_length_error_is_not_retried() -> None:
    script = [lookup(0), OVERFLOW, DONE]
    with ScriptedModelServer(script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        llm = OpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
        loop = composable_loop(llm=llm, tools=lookup_tools(), task="Read records.")
        with pytest.raises(LLMError, match="maximum context length"):
            list(loop)
        client.close()
        assert len(server.requests) == 2


def test_tool_results_sent_after_compaction_are_the_steps_results() -> None:
    """The conversation is compacted; what the steps hold is not."""
    script = [lookup(i) for i in range(15)] + [DONE]
    traj, bodies, _ = run_over_http(script, ContextBudget(max_tokens=1200))
    last = bodies[-1]["messages"]
    assert json.loads(last[-1]["content"]) == traj.steps[-2].tool_result.data
    assert [s.tool_result.data["record"] for s in traj.steps[:-1]] == list(range(15))


def test_compacted_turns_with_hook_context_are_valid_for_anthropic_too() -> None:
    """Anthropic's API rejects a tool_result without its tool_use, as OpenAI's does."""

    class AfterEachTool:
        def post_dispatch(self, step_num: int) -> str:
            return f"Step {step_num} is done."

    turns = iter(range(100))

    def reply(request: RecordedRequest) -> Any:
        if "tools" not in request.body:
            return text_reply("Goal: read records. Findings: records 0-20 read.")
        t = next(turns)
        return lookup(2 * t, 2 * t + 1) if t < 12 else DONE

    events = Events()
    budget = ContextBudget(max_tokens=1800, strategy=SummarizeCompact(max_summary_tokens=80))
    with ScriptedModelServer([reply] * 40) as server, client_for(server) as client:
        loop = composable_loop(
            llm=AnthropicBackend(client, model=MODEL, retry=FAST),
            tools=lookup_tools(),
            task="Read records.",
            hooks=[AfterEachTool(), events],
            config=LoopConfig(max_steps=30, context_budget=budget),
        )
        steps = list(loop)
        served = server.served
    assert loop.trajectory.stop_reason is StopReason.DONE and len(steps) == 25
    assert events.compactions and served == 13 + len(events.compactions)
