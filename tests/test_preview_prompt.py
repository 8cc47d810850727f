"""preview_prompt: the exact request the next model call sends, built without a model call and
without changing the run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from looplet import ConfigurationError, LoopConfig, async_composable_loop, composable_loop
from looplet.checkpoint import FileCheckpointStore
from looplet.compact import ContextBudget
from looplet.loop import AsyncLoopRun, LoopRun
from looplet.memory import CallableMemorySource, StaticMemorySource
from looplet.messages import Message
from looplet.preview import PromptPreview, preview_prompt
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from looplet.types import ToolCall
from tests.conftest import make_tools

GREET = {"tool": "greet", "args": {"name": "Alice"}}
DONE = {"tool": "done", "args": {"answer": "Greeted Alice."}}


def memory_config(**options: Any) -> LoopConfig:
    return LoopConfig(
        memory_sources=[
            StaticMemorySource("Be polite.", title="Rules"),
            CallableMemorySource(lambda state: f"{state.queries_used} calls made", title="Now"),
        ],
        **options,
    )


class Briefing:
    """A pre_prompt hook that counts its calls (its side effect)."""

    def __init__(self) -> None:
        self.calls = 0

    def pre_prompt(self, step_num: int) -> str:
        self.calls += 1
        return f"Briefing for step {step_num}."


class Note:
    """A post_dispatch hook whose text waits for the next model call."""

    def post_dispatch(self, step_num: int) -> str:
        return f"Note after step {step_num}."


def test_a_new_runs_preview_is_its_first_request() -> None:
    config = memory_config(max_tokens=300, temperature=0.0)
    preview = preview_prompt("Greet Alice.", make_tools(), config=config)
    llm = MockLLMBackend([DONE])
    list(composable_loop(llm, "Greet Alice.", make_tools(), config=config))
    assert isinstance(preview, PromptPreview)
    assert preview.request == llm.requests[0]
    assert [m.role for m in preview.messages] == ["system", "system", "user"]
    assert preview.memory == "# Memory\n\n## Rules\nBe polite.\n\n## Now\n0 calls made"
    assert preview.system_prompt == llm.requests[0].messages[0].content
    assert [t["name"] for t in preview.tools] == ["greet", "done"]
    assert preview.hooks_not_run == () and preview.measured_tokens is None


def test_the_shorthands_and_the_originals_call_shape_are_accepted() -> None:
    task = {"goal": "Greet Alice"}
    preview = preview_prompt(task, make_tools(), None, None, config=LoopConfig(), step_number=1)
    assert preview.messages[1] == Message.user("goal: Greet Alice")
    short = preview_prompt(task, make_tools(), system_prompt="Be short.", max_steps=2)
    assert short.system_prompt == "Be short." and short.memory == ""
    with pytest.raises(ConfigurationError, match="next request is for step 1"):
        preview_prompt(task, make_tools(), step_number=3)


@pytest.mark.parametrize("hooked", [False, True])
def test_a_running_loops_preview_is_its_next_request(hooked: bool) -> None:
    hooks = [Note()] if hooked else []
    llm = MockLLMBackend([GREET, [ToolCall("greet", {"name": "Bob"})], GREET, DONE])
    loop = composable_loop(llm, "Greet Alice.", make_tools(), hooks=hooks, config=memory_config())
    previews = [preview_prompt(loop)]  # before the first step: the first request
    for _ in loop:
        if loop.trajectory.steps[-1].tool_call.tool != "done":
            previews.append(preview_prompt(loop))
    assert len(llm.requests) == len(previews) == 4
    for preview, request in zip(previews, llm.requests, strict=True):
        assert preview.request == request
    if hooked:  # the waiting post_dispatch text is in the preview as in the request
        assert previews[1].messages[-1] == Message.user("Note after step 1.")


def test_the_async_loops_preview_is_its_next_request() -> None:
    async def go() -> tuple[list[PromptPreview], AsyncMockLLMBackend]:
        llm = AsyncMockLLMBackend([GREET, GREET, DONE])
        loop = async_composable_loop(llm, "Greet Alice.", make_tools(), config=memory_config())
        assert isinstance(loop, AsyncLoopRun)
        previews = [preview_prompt(loop)]
        async for step in loop:
            if step.tool_call.tool != "done":
                previews.append(preview_prompt(loop))
        return previews, llm

    previews, llm = asyncio.run(go())
    assert [p.request for p in previews] == llm.requests
    assert previews[2].memory.endswith("2 calls made")


def test_previewing_changes_nothing_in_the_run() -> None:
    hook = Briefing()
    llm = MockLLMBackend([GREET, DONE])
    loop = composable_loop(llm, "Greet Alice.", make_tools(), hooks=[hook, Note()])
    assert isinstance(loop, LoopRun)
    next(loop)
    run = loop._run
    before = (list(run.messages), list(run.pending_context), dict(run.hook_values), hook.calls)
    preview = preview_prompt(loop)
    assert (list(run.messages), list(run.pending_context), dict(run.hook_values)) == before[:3]
    assert hook.calls == before[3]  # the pre_prompt hook was not run...
    assert preview.hooks_not_run == ("Briefing.pre_prompt",)  # ...and the preview says so
    assert "Briefing.pre_prompt was not run" in preview.text()
    list(loop)
    # Without the hook's text, the preview is the real request less its last message.
    assert preview.messages == list(llm.requests[1].messages)[:-1]


def test_run_hooks_runs_the_pre_prompt_hooks_so_the_preview_is_exact() -> None:
    llm = MockLLMBackend([GREET, DONE])
    hooks = [Briefing(), Note()]
    first = preview_prompt("Greet Alice.", make_tools(), hooks=hooks, run_hooks=True)
    loop = composable_loop(llm, "Greet Alice.", make_tools(), hooks=hooks)
    assert preview_prompt(loop, run_hooks=True).request == first.request
    next(loop)
    second = preview_prompt(loop, run_hooks=True)
    list(loop)
    assert first.request == llm.requests[0] and second.request == llm.requests[1]
    assert first.messages[-1].content == "Briefing for step 1."
    assert [m.content for m in second.messages[-2:]] == [
        "Note after step 1.",
        "Briefing for step 2.",
    ]
    assert first.hooks_not_run == second.hooks_not_run == ()


def test_pre_loop_hooks_are_never_run_and_listed_when_they_may_add_text() -> None:
    class Opening:
        def __init__(self) -> None:
            self.calls = 0

        def pre_loop(self) -> str:
            self.calls += 1
            return "Opening context."

    class Quiet:
        started = 0

        def pre_loop(self) -> None:
            Quiet.started += 1

        def pre_prompt(self) -> None:
            return None

    opening = Opening()
    hooks = [opening, Quiet(), Briefing()]
    preview = preview_prompt("Greet Alice.", make_tools(), hooks=hooks, run_hooks=True)
    assert opening.calls == Quiet.started == 0
    assert preview.hooks_not_run == ("Opening.pre_loop",)
    assert "Opening.pre_loop was not run" in preview.text()
    plain = preview_prompt("Greet Alice.", make_tools(), hooks=hooks)
    assert plain.hooks_not_run == ("Opening.pre_loop", "Briefing.pre_prompt")
    # Once the run has started, its pre_loop hooks have run: nothing is missing any more.
    llm = MockLLMBackend([GREET, DONE])
    loop = composable_loop(llm, "Greet Alice.", make_tools(), hooks=hooks)
    next(loop)
    upcoming = preview_prompt(loop, run_hooks=True)
    list(loop)
    assert upcoming.hooks_not_run == () and upcoming.request == llm.requests[1]
    assert opening.calls == Quiet.started == 1


def test_an_async_hook_is_listed_and_cannot_be_run() -> None:
    class AsyncBriefing:
        async def pre_prompt(self) -> str:
            return "later"

    preview = preview_prompt("t", make_tools(), hooks=[AsyncBriefing()])
    assert preview.hooks_not_run == ("AsyncBriefing.pre_prompt",)
    with pytest.raises(ConfigurationError, match=r"AsyncBriefing.pre_prompt\(\) is async"):
        preview_prompt("t", make_tools(), hooks=[AsyncBriefing()], run_hooks=True)


def test_a_run_that_sends_no_next_request_says_why() -> None:
    llm = MockLLMBackend([GREET, DONE])
    loop = composable_loop(llm, "Greet Alice.", make_tools())
    list(loop)
    with pytest.raises(ConfigurationError, match="it has ended"):
        preview_prompt(loop)
    loop = composable_loop(MockLLMBackend([DONE]), "t", make_tools())
    next(loop)  # the done step, handed out before the run records its end
    with pytest.raises(ConfigurationError, match="done tool"):
        preview_prompt(loop)
    loop = composable_loop(MockLLMBackend([GREET, DONE]), "t", make_tools(), max_steps=1)
    next(loop)
    with pytest.raises(ConfigurationError, match="step budget is spent"):
        preview_prompt(loop)


def test_the_middle_of_a_turn_has_no_known_next_request() -> None:
    both = [ToolCall("greet", {"name": "A"}), ToolCall("greet", {"name": "B"})]
    llm = MockLLMBackend([both, DONE])
    config = LoopConfig(concurrent_dispatch=False)
    loop = composable_loop(llm, "t", make_tools(), config=config)
    next(loop)
    with pytest.raises(ConfigurationError, match=r"middle of a model turn \(1 of its"):
        preview_prompt(loop)
    next(loop)
    assert preview_prompt(loop).request == (list(loop), llm.requests[1])[1]


def test_a_loop_is_previewed_alone() -> None:
    loop = composable_loop(MockLLMBackend([DONE]), "t", make_tools())
    with pytest.raises(ConfigurationError, match="running loop alone"):
        preview_prompt(loop, make_tools())


def test_a_resumed_runs_preview_is_its_next_request(tmp_path: Any) -> None:
    store = FileCheckpointStore(tmp_path)
    first = composable_loop(
        MockLLMBackend([GREET, DONE]),
        "Greet Alice.",
        make_tools(),
        checkpoint=store,
        config=memory_config(),
    )
    next(first)
    first.close()
    preview = preview_prompt(tools=make_tools(), resume=store, config=memory_config())
    llm = MockLLMBackend([DONE])
    list(composable_loop(llm, tools=make_tools(), resume=store, config=memory_config()))
    assert preview.request == llm.requests[0]
    assert preview.memory.endswith("1 calls made")


def test_the_preview_measures_the_request_against_the_budget() -> None:
    memory = "A long standing rule. " * 60
    config = LoopConfig(
        memory_sources=[StaticMemorySource(memory)], context_budget=ContextBudget(200)
    )
    preview = preview_prompt("t", make_tools(), config=config)
    assert preview.token_limit == 200 and preview.measured_tokens is not None
    assert preview.over_budget and preview.measured_tokens > 330
    assert "over the budget" in preview.text()
    roomy = LoopConfig(context_budget=ContextBudget(10_000))
    assert not preview_prompt("t", make_tools(), config=roomy).over_budget


def test_the_text_shows_every_message_the_tools_and_the_settings() -> None:
    llm = MockLLMBackend([GREET, DONE])
    loop = composable_loop(llm, "Greet Alice.", make_tools(), config=memory_config())
    next(loop)
    text = str(preview_prompt(loop))
    assert text == preview_prompt(loop).text()
    for part in (
        "request for step 2: 5 messages, 2 tools",
        "--- system (memory) ---\n# Memory\n\n## Rules\nBe polite.",
        "--- user ---\nGreet Alice.",
        '-> greet({"name": "Alice"}) [call_0_0]',
        "--- tool greet [call_0_0] ---",
        "--- tools (2) ---\ngreet: ",
        "max_tokens=2000 temperature=0.2",
    ):
        assert part in text


def test_a_conversations_next_turn_is_previewed_without_changing_it() -> None:
    from looplet.conversation import Conversation

    config = memory_config()
    chat = Conversation()
    list(
        composable_loop(
            MockLLMBackend(["Hello."]), "Hi.", make_tools(), config=config, conversation=chat
        )
    )
    preview = preview_prompt("And again?", make_tools(), config=config, conversation=chat)
    assert len(chat.messages) == 3 and preview.hooks_not_run == ()
    llm = MockLLMBackend(["Again: hello."])
    list(composable_loop(llm, "And again?", make_tools(), config=config, conversation=chat))
    assert preview.request == llm.requests[0]
    assert [m.content for m in preview.messages[2:]] == ["Hi.", "Hello.", "And again?"]


def test_the_preview_is_what_goes_over_the_wire_with_the_real_openai_sdk() -> None:
    import openai

    from looplet.backends.openai import OpenAIBackend, build_request_kwargs
    from looplet.testing import ScriptedModelServer, call, tool_reply

    script = [
        tool_reply(call("greet", {"name": "Alice"})),
        tool_reply(call("done", {"answer": "ok"})),
    ]
    with ScriptedModelServer(script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini")
            loop = composable_loop(llm, "Greet Alice.", make_tools(), config=memory_config())
            previews = [preview_prompt(loop)]
            next(loop)
            previews.append(preview_prompt(loop))
            list(loop)
        finally:
            client.close()
    for preview, sent in zip(previews, server.requests, strict=True):
        expected = build_request_kwargs(preview.request, "gpt-4o-mini")
        assert sent.body["messages"] == expected["messages"]
        assert sent.body["tools"] == expected["tools"]
        assert sent.body["messages"][1]["content"] == preview.memory
