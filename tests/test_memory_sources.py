"""Memory sources: standing text rendered into every model request, re-read before each call,
counted by the context budget, never stored in the conversation."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import warnings
from typing import Any

import openai
import pytest

from looplet import (
    ConfigurationError,
    HookError,
    LoopConfig,
    StopReason,
    ToolSpec,
    async_composable_loop,
    composable_loop,
)
from looplet.backends import OpenAIBackend
from looplet.compact import ContextBudget, TruncateCompact
from looplet.memory import (
    MEMORY_NAME,
    CallableMemorySource,
    MemorySource,
    MemorySourceError,
    PersistentMemorySource,
    StaticMemorySource,
    render_memory,
)
from looplet.messages import ConversationView, InsertedView, Message
from looplet.state import DefaultState
from looplet.testing import MockLLMBackend, ScriptedModelServer, call, tool_reply
from looplet.types import ToolCall
from tests.conftest import RunLoop, make_tools

GREET = {"tool": "greet", "args": {"name": "Alice"}}
DONE = {"tool": "done", "args": {"answer": "Greeted Alice."}}


def memory_of(request: Any) -> list[Message]:
    """The memory messages of a request."""
    return [m for m in request.messages if m.name == MEMORY_NAME and m.role == "system"]


def steps_used(state: Any) -> str:
    return f"Tool calls so far: {state.queries_used}."


def test_memory_reaches_every_request_after_the_system_prompt_and_follows_the_run(
    run_loop: RunLoop,
) -> None:
    llm = MockLLMBackend([GREET, GREET, DONE])
    config = LoopConfig(
        memory_sources=[
            StaticMemorySource("Answer in French.", title="Style"),
            CallableMemorySource(steps_used, title="Budget"),
        ]
    )
    _, trajectory = run_loop(llm=llm, task="Greet Alice.", tools=make_tools(), config=config)
    assert trajectory.stop_reason is StopReason.DONE
    assert len(llm.requests) == 3
    for n, request in enumerate(llm.requests):
        messages = list(request.messages)
        assert [m.role for m in messages[:3]] == ["system", "system", "user"]
        assert messages[0].name == "" and messages[2].content == "Greet Alice."
        assert messages[1] == Message(
            "system",
            f"# Memory\n\n## Style\nAnswer in French.\n\n## Budget\nTool calls so far: {n}.",
            name="memory",
        )
        assert len(request.messages) == len(messages)
        assert request.messages[1] == messages[1] and request.messages[-1] == messages[-1]


def test_memory_is_not_stored_in_the_conversation(run_loop: RunLoop) -> None:
    llm = MockLLMBackend([GREET, DONE])
    config = LoopConfig(memory_sources=[StaticMemorySource("Remember this.")])
    _, trajectory = run_loop(llm=llm, task="Greet Alice.", tools=make_tools(), config=config)
    assert not [m for m in trajectory.messages if "Remember this." in m.content]
    roles = ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert [m.role for m in trajectory.messages] == roles
    # ...while the last request carried it, over the same conversation.
    last = list(llm.requests[-1].messages)
    assert last[1].content == "# Memory\n\nRemember this."
    assert last[:1] + last[2:] == trajectory.messages[: len(last) - 1]


def test_empty_sources_are_left_out_and_no_memory_message_when_all_are_empty() -> None:
    said = iter(["", "Now there is something.", None])
    llm = MockLLMBackend([GREET, GREET, DONE])
    config = LoopConfig(
        memory_sources=[
            StaticMemorySource("   "),
            CallableMemorySource(lambda: next(said), title="Maybe"),
        ]
    )
    list(composable_loop(llm, "Greet Alice.", make_tools(), config=config))
    assert [len(memory_of(r)) for r in llm.requests] == [0, 1, 0]
    assert memory_of(llm.requests[1])[0].content == "# Memory\n\n## Maybe\nNow there is something."
    # Without memory the request is exactly the plain view of the conversation.
    assert type(llm.requests[0].messages) is ConversationView


def test_a_callable_source_gets_the_runs_state_or_nothing() -> None:
    seen: list[Any] = []
    state = DefaultState(max_steps=5)

    def with_state(s: Any) -> str:
        seen.append(s)
        return "x"

    llm = MockLLMBackend([DONE])
    config = LoopConfig(
        memory_sources=[CallableMemorySource(with_state), CallableMemorySource(lambda: "y")]
    )
    list(composable_loop(llm, "t", make_tools(), config=config, state=state))
    assert seen == [state]
    assert memory_of(llm.requests[0])[0].content == "# Memory\n\nx\n\ny"


def test_any_object_with_load_is_a_source_and_the_original_names_import() -> None:
    class Notes:
        title = "Notes"

        def load(self, state: Any) -> str:
            return "custom"

    assert isinstance(Notes(), MemorySource) and PersistentMemorySource is MemorySource
    assert render_memory([Notes(), StaticMemorySource("s")], None) == "## Notes\ncustom\n\ns"
    assert render_memory([], None) == "" and render_memory(None, None) == ""


def test_a_raising_source_ends_the_run_like_a_hook_with_the_partial_trajectory(
    run_loop: RunLoop,
) -> None:
    def flaky(state: Any) -> str:
        if state.queries_used:
            raise OSError("notes.md is gone")
        return "fine"

    llm = MockLLMBackend([GREET, DONE])
    config = LoopConfig(memory_sources=[StaticMemorySource("a"), CallableMemorySource(flaky)])
    with pytest.raises(MemorySourceError) as caught:
        run_loop(llm=llm, task="Greet Alice.", tools=make_tools(), config=config)
    err = caught.value
    assert isinstance(err, HookError)
    assert err.index == 1 and err.step == 2 and isinstance(err.__cause__, OSError)
    assert "memory_sources[1]" in str(err) and "notes.md is gone" in str(err)
    assert "CallableMemorySource(test_a_raising_source" in str(err)
    assert err.trajectory is not None
    assert err.trajectory.stop_reason is StopReason.HOOK_ERROR
    assert err.trajectory.tools == ["greet"]  # the step before the failure is kept
    assert len(llm.requests) == 1  # the failing request was never sent


def test_a_source_returning_something_else_than_text_is_named() -> None:
    llm = MockLLMBackend([DONE])
    config = LoopConfig(memory_sources=[CallableMemorySource(lambda: 42)])  # type: ignore[arg-type,return-value]
    with pytest.raises(MemorySourceError, match=r"memory_sources\[0\].*returned int"):
        list(composable_loop(llm, "t", make_tools(), config=config))


@pytest.mark.parametrize(
    ("sources", "fix"),
    [
        (["Answer in French."], "StaticMemorySource('Answer in French.')"),
        ([steps_used], "CallableMemorySource(fn)"),
        ([42], "load(state)"),
        ("Answer in French.", "memory_sources=[StaticMemorySource('Answer in French.')]"),
        (StaticMemorySource("x"), "must be a list of memory sources"),
    ],
)
def test_config_rejects_what_is_not_a_source_and_says_how_to_fix_it(sources: Any, fix: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        LoopConfig(memory_sources=sources)
    assert "LoopConfig.memory_sources" in str(caught.value) and fix in str(caught.value)


def test_config_keeps_the_sources_as_a_tuple_and_sources_check_their_arguments() -> None:
    sources = [StaticMemorySource("a")]
    config = LoopConfig(memory_sources=sources)
    sources.append(StaticMemorySource("b"))  # the caller's list changing later changes nothing
    assert len(config.memory_sources) == 1 and isinstance(config.memory_sources, tuple)
    with pytest.raises(ConfigurationError, match="CallableMemorySource"):
        StaticMemorySource(steps_used)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="StaticMemorySource"):
        CallableMemorySource("text")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"must take the state"):
        CallableMemorySource(lambda a, b: "x")


def test_an_async_source_is_refused_up_front_and_a_coroutine_from_load_is_named() -> None:
    # Memory is read synchronously before each model call, in the async loop too: an
    # `async def` fn used to be accepted and then fail every run at its first model call
    # ("returned coroutine"), leaving a never-awaited coroutine behind.
    async def notes(state: Any) -> str:
        return "Nothing noted."

    with pytest.raises(
        ConfigurationError, match=r"CallableMemorySource\(fn\).*notes.* is async def"
    ):
        CallableMemorySource(notes)

    class AsyncLoad:
        async def load(self, state: Any) -> str:
            return "x"

    config = LoopConfig(memory_sources=[AsyncLoad()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(MemorySourceError, match=r"async.*awaited"):
            render_memory(config.memory_sources, DefaultState())
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_memory_goes_with_the_hooks_text_at_the_end() -> None:
    class Brief:
        def pre_prompt(self, step_num: int) -> str:
            return f"briefing {step_num}"

    llm = MockLLMBackend([DONE])
    config = LoopConfig(memory_sources=[StaticMemorySource("mem")])
    list(composable_loop(llm, "t", make_tools(), hooks=[Brief()], config=config))
    roles = [(m.role, m.content) for m in llm.requests[0].messages]
    assert roles[1] == ("system", "# Memory\n\nmem")
    assert roles[-1] == ("user", "briefing 1")


def test_inserted_view_reads_like_the_list_it_shows() -> None:
    items = [Message.system("s"), Message.user("u"), Message.assistant("a")]
    memory, extra = Message("system", "m", name="memory"), Message.user("x")
    view = InsertedView(items, 2, (extra,), (memory,), 1)
    expected = [items[0], memory, items[1], extra]
    assert list(view) == expected and len(view) == 4
    assert [view[i] for i in range(-4, 4)] == expected * 2
    assert view[1:3] == expected[1:3] and view == expected
    assert view.added == (memory, extra)
    with pytest.raises(IndexError):
        view[4]
    other = [Message.system("s2"), Message.user("u2")]
    assert list(view.rebased(other)) == [other[0], memory, other[1], extra]
    assert list(ConversationView(items, 2, (extra,)).rebased(other)) == [*other, extra]


def _budget_run(memory: str, script: list[Any], budget: ContextBudget) -> tuple[Any, Any]:
    llm = MockLLMBackend(script)
    sources = [StaticMemorySource(memory)] if memory else []
    config = LoopConfig(context_budget=budget, memory_sources=sources)
    loop = composable_loop(llm, "Greet Alice.", make_tools(), config=config)
    list(loop)
    return loop.trajectory, llm


def test_the_budget_counts_the_memory_and_compaction_keeps_it() -> None:
    script = [GREET, GREET, GREET, GREET, DONE]
    budget = ContextBudget(
        max_tokens=500, strategy=TruncateCompact(keep_recent=1), use_reported_usage=False
    )
    plain, plain_llm = _budget_run("", script, budget)
    assert plain.compactions == []  # the conversation alone fits
    memory = "Standing rule number one: greet politely. " * 24  # about 250 tokens
    trajectory, llm = _budget_run(memory, script, budget)
    assert trajectory.compactions, "the memory pushed the request over the budget"
    assert trajectory.stop_reason is StopReason.DONE
    schemas = budget.estimator(json.dumps(list(llm.requests[0].tools)))
    for request in llm.requests:  # every request fits, the memory counted
        messages = list(request.messages)
        assert budget.count(messages) + schemas <= budget.max_tokens
        assert messages[1].name == "memory" and memory.strip() in messages[1].content
    compacted = llm.requests[trajectory.compactions[0].step - 1]
    assert (
        len(compacted.messages)
        < len(plain_llm.requests[trajectory.compactions[0].step - 1].messages) + 1
    )
    assert not [m for m in trajectory.messages if m.name == "memory"]


def test_reported_usage_does_not_count_the_memory_twice() -> None:
    # The mock reports the prompt's size (memory included). The memory is part of that
    # count; adding it once more would put this run over the budget and compact it.
    memory = "Standing rule number one: greet politely. " * 24  # about 250 tokens
    script = [GREET, GREET, GREET, DONE]
    budget = ContextBudget(max_tokens=500, strategy=TruncateCompact(keep_recent=1))
    trajectory, llm = _budget_run(memory, script, budget)
    schemas = budget.estimator(json.dumps(list(llm.requests[0].tools)))
    sizes = [budget.count(r.messages) + schemas for r in llm.requests]
    assert max(sizes) <= 500 < max(sizes) + 250  # fits once, not twice
    assert trajectory.compactions == []
    assert trajectory.stop_reason is StopReason.DONE


def test_the_wire_body_carries_the_memory_through_the_real_openai_sdk() -> None:
    turns = iter(["first", "second"])
    config = LoopConfig(
        memory_sources=[CallableMemorySource(lambda: next(turns), title="Turn")],
    )
    script = [
        tool_reply(call("greet", {"name": "Alice"})),
        tool_reply(call("done", {"answer": "ok"})),
    ]
    with ScriptedModelServer(script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini")
            loop = composable_loop(llm, "Greet Alice.", make_tools(), config=config)
            list(loop)
        finally:
            client.close()
    bodies = [r.body for r in server.requests]
    assert [b["messages"][1] for b in bodies] == [
        {"role": "system", "content": "# Memory\n\n## Turn\nfirst"},
        {"role": "system", "content": "# Memory\n\n## Turn\nsecond"},
    ]
    assert [m["role"] for m in bodies[1]["messages"]] == [
        "system",
        "system",
        "user",
        "assistant",
        "tool",
    ]
    assert loop.trajectory.stop_reason is StopReason.DONE


def test_runs_without_memory_do_not_load_the_module() -> None:
    code = (
        "import sys, looplet\n"
        "from looplet.testing import MockLLMBackend\n"
        "from tests.conftest import make_tools\n"
        "assert 'looplet.memory' not in sys.modules\n"
        "llm = MockLLMBackend([{'tool': 'done', 'args': {'answer': 'x'}}])\n"
        "list(looplet.composable_loop(llm, 't', make_tools()))\n"
        "print('looplet.memory' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert out.stdout.strip() == "False"


def test_a_tool_call_made_between_memory_reads_sees_the_new_value() -> None:
    # A source that reads what a tool wrote: the next request shows it.
    notes: list[str] = []

    def remember(*, fact: str) -> str:
        notes.append(fact)
        return "ok"

    tools = make_tools()
    tools.register(
        ToolSpec(
            name="remember",
            description="Remember a fact.",
            parameters={"fact": "str"},
            execute=remember,
        )
    )
    llm = MockLLMBackend([ToolCall("remember", {"fact": "Alice likes tea."}), DONE])
    config = LoopConfig(
        memory_sources=[CallableMemorySource(lambda: "\n".join(notes), title="Facts")]
    )
    list(composable_loop(llm, "t", tools, config=config))
    assert memory_of(llm.requests[0]) == []
    assert memory_of(llm.requests[1])[0].content == "# Memory\n\n## Facts\nAlice likes tea."


def test_the_async_openai_sdk_and_the_anthropic_sdk_carry_the_memory() -> None:
    from looplet.backends import AsyncOpenAIBackend
    from looplet.backends.anthropic import AnthropicBackend
    from tests._anthropic import FAST, MODEL, client_for

    script = [
        tool_reply(call("greet", {"name": "Alice"}, id="toolu_g")),
        tool_reply(call("done", {"answer": "ok"}, id="toolu_d")),
    ]

    def config() -> LoopConfig:
        calls = iter(["first", "second"])
        return LoopConfig(
            system_prompt="You greet people.",
            memory_sources=[CallableMemorySource(lambda: next(calls), title="Turn")],
        )

    async def over_async_openai() -> list[dict[str, Any]]:
        with ScriptedModelServer(list(script)) as server:
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test")
            try:
                llm = AsyncOpenAIBackend(client, model="gpt-4o-mini")
                loop = async_composable_loop(llm, "Greet Alice.", make_tools(), config=config())
                async for _ in loop:
                    pass
            finally:
                await client.close()
            return [r.body for r in server.requests]

    bodies = asyncio.run(over_async_openai())
    assert [b["messages"][1]["content"] for b in bodies] == [
        "# Memory\n\n## Turn\nfirst",
        "# Memory\n\n## Turn\nsecond",
    ]

    with ScriptedModelServer(list(script)) as server, client_for(server) as client:
        llm = AnthropicBackend(client, model=MODEL, retry=FAST)
        list(composable_loop(llm, "Greet Alice.", make_tools(), config=config()))
    systems = []
    for request in server.requests:
        system = request.body["system"]  # a string, or text blocks when caching marks them
        if isinstance(system, list):
            system = "\n\n".join(block["text"] for block in system)
        systems.append(system)
        assert request.body["messages"][0] == {"role": "user", "content": "Greet Alice."}
    assert systems == [
        "You greet people.\n\n# Memory\n\n## Turn\nfirst",
        "You greet people.\n\n# Memory\n\n## Turn\nsecond",
    ]


def test_checkpoints_keep_no_memory_and_a_resumed_run_reads_it_afresh(tmp_path: Any) -> None:
    from looplet.checkpoint import FileCheckpointStore

    store = FileCheckpointStore(tmp_path)
    secret = iter(["before the pause", "after the resume"])
    config = LoopConfig(memory_sources=[CallableMemorySource(lambda: next(secret))])
    first = composable_loop(
        MockLLMBackend([GREET, DONE]), "Greet Alice.", make_tools(), checkpoint=store, config=config
    )
    next(first)
    first.close()
    saved = "".join(p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.is_file())
    assert "Greet Alice." in saved and "before the pause" not in saved
    llm = MockLLMBackend([DONE])
    list(composable_loop(llm, tools=make_tools(), resume=store, config=config))
    assert memory_of(llm.requests[0])[0].content == "# Memory\n\nafter the resume"
