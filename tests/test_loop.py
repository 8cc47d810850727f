"""The loop: conversation, stop reasons, budgets, bad calls, errors; over both drivers."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from looplet import (
    BaseToolRegistry,
    CancelToken,
    ConfigurationError,
    DefaultState,
    ErrorKind,
    LLMError,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolSpec,
    composable_loop,
)
from looplet.backends.base import LLMResponse
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from tests.conftest import RunLoop, make_tools, run_async, run_sync

GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})


def strip_timing(steps: list[Any]) -> list[dict[str, Any]]:
    out = []
    for step in steps:
        d = step.to_dict()
        d["tool_result"].pop("duration_ms")
        out.append(d)
    return out


def test_readme_example_yields_greet_then_done(run_loop: RunLoop, tools: BaseToolRegistry) -> None:
    llm = MockLLMBackend(['{"tool": "greet", "args": {"name": "Alice"}}', DONE])
    steps, traj = run_loop(
        llm=llm,
        tools=tools,
        state=DefaultState(max_steps=5),
        config=LoopConfig(max_steps=5),
        task={"goal": "Greet Alice, then finish."},
    )
    assert [s.pretty().split(" [")[0] for s in steps] == [
        "#1 ✓ greet(name='Alice') → 1 keys",
        "#2 ✓ done(answer='Greeted Alice.') → 1 keys",
    ]
    assert traj.stop_reason is StopReason.DONE
    assert traj.stop_detail == "Greeted Alice."
    assert traj.llm_calls == 2
    assert traj.tools == ["greet", "done"]


def test_model_sees_its_own_turns_and_tool_results(tools: BaseToolRegistry) -> None:
    llm = MockLLMBackend([GREET, DONE])
    run_sync(llm=llm, tools=tools, task={"goal": "Greet Alice, then finish."})
    second = list(llm.requests[1].messages)
    assert [m.role for m in second] == ["system", "user", "assistant", "tool"]
    assert second[1].content == "goal: Greet Alice, then finish."
    assistant, tool_msg = second[2], second[3]
    assert assistant.tool_calls[0].tool == "greet"
    assert tool_msg.tool_call_id == assistant.tool_calls[0].call_id != ""
    assert "Hello, Alice!" in tool_msg.content
    # The first request is not changed by later turns (requests hold a view, not the list).
    assert len(llm.requests[0].messages) == 2


def test_sync_and_async_loops_give_identical_steps(tools: BaseToolRegistry) -> None:
    script = [
        GREET,
        ToolCall("greet", {"nmae": "Bob"}),
        ToolCall("nope", {}),
        [ToolCall("greet", {"name": "Carol"}), DONE],
    ]
    sync_steps, sync_traj = run_sync(llm=MockLLMBackend(script), tools=tools, task="t")
    async_steps, async_traj = run_async(
        llm=AsyncMockLLMBackend(script), tools=make_tools(), task="t"
    )
    assert strip_timing(sync_steps) == strip_timing(async_steps)
    assert len(sync_steps) == 5
    assert sync_traj.stop_reason == async_traj.stop_reason == StopReason.DONE
    assert [m.to_dict() for m in sync_traj.messages] == [m.to_dict() for m in async_traj.messages]


def test_plain_text_reply_ends_with_final_text(run_loop: RunLoop, tools: BaseToolRegistry) -> None:
    steps, traj = run_loop(
        llm=MockLLMBackend([GREET, "All done, Alice was greeted."]), tools=tools, task="greet"
    )
    assert len(steps) == 1
    assert traj.stop_reason is StopReason.FINAL_TEXT
    assert traj.final_text == "All done, Alice was greeted."


def test_max_steps_bounds_tool_steps(run_loop: RunLoop, tools: BaseToolRegistry) -> None:
    steps, traj = run_loop(
        llm=MockLLMBackend([GREET], cycle=True),
        tools=tools,
        task="t",
        config=LoopConfig(max_steps=3),
    )
    assert len(steps) == 3
    assert traj.stop_reason is StopReason.MAX_STEPS
    assert traj.llm_calls == 3


def test_smaller_of_state_and_config_budget_applies(tools: BaseToolRegistry) -> None:
    steps, traj = run_sync(
        llm=MockLLMBackend([GREET], cycle=True),
        tools=tools,
        task="t",
        state=DefaultState(max_steps=2),
        config=LoopConfig(max_steps=5),
    )
    assert len(steps) == 2 and traj.stop_reason is StopReason.MAX_STEPS


def test_budget_running_out_mid_turn_records_the_rest_as_not_run(tools: BaseToolRegistry) -> None:
    steps, traj = run_sync(
        llm=MockLLMBackend([[GREET, GREET, GREET]]),
        tools=tools,
        task="t",
        config=LoopConfig(max_steps=2),
    )
    assert [s.ok for s in steps] == [True, True, False]
    assert steps[2].tool_result.error_kind is ErrorKind.CANCELLED
    assert "max_steps=2" in (steps[2].tool_result.error or "")
    assert traj.stop_reason is StopReason.MAX_STEPS


def test_free_tools_do_not_count_but_model_calls_are_capped(run_loop: RunLoop) -> None:
    tools = make_tools(
        think=ToolSpec(
            name="think",
            description="Think.",
            parameters={"thought": "str"},
            execute=lambda *, thought: None,
            free=True,
        )
    )
    think = ToolCall("think", {"thought": "hmm"})
    steps, traj = run_loop(
        llm=MockLLMBackend([think], cycle=True),
        tools=tools,
        task="t",
        config=LoopConfig(max_steps=2, max_llm_calls=7),
    )
    assert len(steps) == 7
    assert traj.stop_reason is StopReason.MAX_LLM_CALLS
    assert traj.llm_calls == 7


def test_default_model_call_cap_exists(tools: BaseToolRegistry) -> None:
    bad = ToolCall("greet", {})  # invalid every time: never counts as a step
    steps, traj = run_sync(
        llm=MockLLMBackend([bad], cycle=True), tools=tools, task="t", config=LoopConfig(max_steps=3)
    )
    assert traj.stop_reason is StopReason.MAX_LLM_CALLS
    assert traj.llm_calls == 13 == len(steps)


def test_unknown_tool_is_a_failed_step_the_model_is_told_about(
    run_loop: RunLoop, tools: BaseToolRegistry
) -> None:
    llm = MockLLMBackend([ToolCall("gret", {"name": "A"}), DONE])
    steps, traj = run_loop(llm=llm, tools=tools, task="t")
    assert steps[0].tool_result.error_kind is ErrorKind.UNKNOWN_TOOL
    told = list(llm.requests[1].messages)[-1]
    assert told.role == "tool" and told.is_error
    assert "Did you mean 'greet'" in told.content
    assert traj.stop_reason is StopReason.DONE


def test_malformed_arguments_become_a_parse_step(
    run_loop: RunLoop, tools: BaseToolRegistry
) -> None:
    bad = ToolCall("greet", {}, raw_arguments='{"name": "Al', parse_error="Unterminated string")
    llm = MockLLMBackend([bad, DONE])
    steps, traj = run_loop(llm=llm, tools=tools, task="t", config=LoopConfig(max_steps=1))
    assert steps[0].tool_result.error_kind is ErrorKind.PARSE
    assert steps[1].ok and traj.stop_reason is StopReason.DONE  # the bad call cost no budget


def test_wrong_argument_type_is_rejected_before_the_tool_runs(run_loop: RunLoop) -> None:
    ran: list[int] = []
    tools = make_tools(
        add=ToolSpec(
            name="add",
            description="Add.",
            parameters={"a": "int", "b": "int"},
            execute=lambda *, a, b: ran.append(1) or a + b,
        )
    )
    llm = MockLLMBackend([ToolCall("add", {"a": "1", "b": 2}), DONE])
    steps, _ = run_loop(llm=llm, tools=tools, task="t")
    assert steps[0].tool_result.error_kind is ErrorKind.VALIDATION
    assert "'a'" in (steps[0].tool_result.error or "")
    assert ran == []


def test_raising_tool_is_a_failed_step_and_the_model_may_retry(run_loop: RunLoop) -> None:
    attempts: list[str] = []

    def flaky(*, path: str) -> str:
        attempts.append(path)
        if len(attempts) == 1:
            raise RuntimeError("disk on fire")
        return "contents"

    tools = make_tools(
        read=ToolSpec(name="read", description="Read.", parameters={"path": "str"}, execute=flaky)
    )
    call = ToolCall("read", {"path": "a.txt"})
    llm = MockLLMBackend([call, call, DONE])
    steps, _ = run_loop(llm=llm, tools=tools, task="t")
    assert steps[0].pretty().startswith("#1 ✗ read(path='a.txt') → ERROR: execution: RuntimeError")
    assert "disk on fire" in list(llm.requests[1].messages)[-1].content
    assert steps[1].ok and steps[1].tool_result.data == "contents"


def test_llm_error_is_raised_with_the_partial_trajectory(
    run_loop: RunLoop, tools: BaseToolRegistry
) -> None:
    boom = LLMError("openai", "The server had an error", status=500, retriable=True, attempts=4)
    with pytest.raises(LLMError) as info:
        run_loop(llm=MockLLMBackend([GREET, boom]), tools=tools, task="t")
    err = info.value
    assert "openai" in str(err) and "HTTP 500" in str(err) and "The server had an error" in str(err)
    assert err.trajectory is not None
    assert err.trajectory.stop_reason is StopReason.LLM_ERROR
    assert err.trajectory.tools == ["greet"]


def test_backend_bug_becomes_llm_error_with_cause(tools: BaseToolRegistry) -> None:
    class Broken:
        def complete(self, request: Any) -> LLMResponse:
            raise KeyError("choices")

    with pytest.raises(LLMError) as info:
        run_sync(llm=Broken(), tools=tools, task="t")
    assert "Broken" in str(info.value) and "KeyError" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("task", "first_user_message"),
    [
        ("Greet Alice.", "Greet Alice."),
        ({"goal": "Greet", "names": ["Alice", "Bob"]}, 'goal: Greet\nnames: ["Alice", "Bob"]'),
        (42, "42"),
    ],
)
def test_any_task_type_becomes_the_first_user_message(
    task: Any, first_user_message: str, tools: BaseToolRegistry
) -> None:
    llm = MockLLMBackend([DONE])
    _, traj = run_sync(llm=llm, tools=tools, task=task)
    assert list(llm.requests[0].messages)[1].content == first_user_message
    assert traj.task == task


def test_dataclass_task_is_rendered_as_its_fields(tools: BaseToolRegistry) -> None:
    @dataclass
    class Ticket:
        title: str
        priority: int

    llm = MockLLMBackend([DONE])
    run_sync(llm=llm, tools=tools, task=Ticket("printer jam", 2))
    assert list(llm.requests[0].messages)[1].content == "title: printer jam\npriority: 2"


def test_empty_registry_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="registry is empty"):
        composable_loop(llm=MockLLMBackend([DONE]), tools=BaseToolRegistry(), task="t")


def test_missing_tools_or_llm_is_a_clear_error(tools: BaseToolRegistry) -> None:
    with pytest.raises(ConfigurationError, match="needs tools="):
        composable_loop(llm=MockLLMBackend([DONE]), task="t")
    with pytest.raises(ConfigurationError, match="complete"):
        composable_loop(llm=object(), tools=tools, task="t")


def test_cancel_token_stops_between_steps(run_loop: RunLoop, tools: BaseToolRegistry) -> None:
    token = CancelToken()
    calls = 0

    def reply(request: Any) -> ToolCall:
        nonlocal calls
        calls += 1
        if calls == 2:
            token.cancel("user pressed stop")
        return GREET

    steps, traj = run_loop(
        llm=MockLLMBackend([reply], cycle=True),
        tools=tools,
        task="t",
        config=LoopConfig(cancel_token=token),
    )
    assert len(steps) == 2
    assert traj.stop_reason is StopReason.CANCELLED and traj.stop_detail == "user pressed stop"


def test_breaking_out_stops_later_calls_and_ends_as_cancelled() -> None:
    ran: list[str] = []
    tools = make_tools(
        log=ToolSpec(
            name="log",
            description="Log.",
            parameters={"m": "str"},
            execute=lambda *, m: ran.append(m),
        )
    )
    seen: list[Any] = []

    class EndHook:
        def on_loop_end(self, trajectory: Any) -> None:
            seen.append(trajectory.stop_reason)

    loop = composable_loop(
        llm=MockLLMBackend([[ToolCall("log", {"m": "a"}), ToolCall("log", {"m": "b"})]]),
        tools=tools,
        task="t",
        hooks=[EndHook()],
    )
    for step in loop:
        assert step.ok
        break
    loop.close()
    assert ran == ["a"]
    assert seen == [StopReason.CANCELLED]
    assert loop.trajectory.stop_reason is StopReason.CANCELLED


def test_calls_after_done_in_one_turn_are_recorded_not_dropped(tools: BaseToolRegistry) -> None:
    steps, traj = run_sync(llm=MockLLMBackend([[DONE, GREET]]), tools=tools, task="t")
    assert [s.tool_call.tool for s in steps] == ["done", "greet"]
    assert not steps[1].ok and "not run" in (steps[1].tool_result.error or "")
    assert traj.stop_reason is StopReason.DONE


def test_failed_done_call_does_not_end_the_run(tools: BaseToolRegistry) -> None:
    steps, traj = run_sync(llm=MockLLMBackend([ToolCall("done", {}), DONE]), tools=tools, task="t")
    assert not steps[0].ok and steps[1].ok and traj.stop_reason is StopReason.DONE


def test_done_tool_name_is_configurable_and_may_be_unregistered() -> None:
    tools = BaseToolRegistry()
    tools.register(
        ToolSpec(
            name="greet",
            description="Greet.",
            parameters={"name": "str"},
            execute=lambda *, name: name,
        )
    )
    finish = ToolCall("finish", {"summary": "ok"})
    llm = MockLLMBackend([GREET, finish])
    steps, traj = run_sync(llm=llm, tools=tools, task="t", config=LoopConfig(done_tool="finish"))
    assert traj.stop_reason is StopReason.DONE
    assert steps[1].tool_result.data == {"summary": "ok"}
    assert "`finish`" in llm.requests[0].messages[0].content


def test_concurrent_safe_calls_in_one_turn_run_together() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def fetch(*, url: str) -> str:
        barrier.wait()  # both calls must be in flight at once, or this times out
        return url

    tools = make_tools(
        fetch=ToolSpec(
            name="fetch",
            description="Fetch.",
            parameters={"url": "str"},
            execute=fetch,
            concurrent_safe=True,
        )
    )
    calls = [ToolCall("fetch", {"url": "a"}), ToolCall("fetch", {"url": "b"})]
    steps, _ = run_sync(llm=MockLLMBackend([calls, DONE]), tools=tools, task="t")
    assert [s.tool_result.data for s in steps[:2]] == ["a", "b"]


def test_async_loop_awaits_async_tools() -> None:
    async def slow_echo(*, text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()

    tools = make_tools(
        echo=ToolSpec(
            name="echo", description="Echo.", parameters={"text": "str"}, execute=slow_echo
        )
    )
    steps, _ = run_async(
        llm=AsyncMockLLMBackend([ToolCall("echo", {"text": "hi"}), DONE]), tools=tools, task="t"
    )
    assert steps[0].tool_result.data == "HI"


def test_legacy_generate_backend_drives_the_loop(tools: BaseToolRegistry) -> None:
    class OldBackend:
        def __init__(self) -> None:
            self.prompts: list[str] = []
            self.replies = [
                '{"tool": "greet", "args": {"name": "Alice"}}',
                '{"tool": "done", "args": {"answer": "ok"}}',
            ]

        def generate(
            self,
            prompt: str,
            *,
            max_tokens: int = 2000,
            system_prompt: str = "",
            temperature: float = 0.2,
        ) -> str:
            self.prompts.append(prompt)
            return self.replies.pop(0)

    old = OldBackend()
    _, traj = run_sync(llm=old, tools=tools, task="Greet Alice")
    assert traj.tools == ["greet", "done"] and traj.stop_reason is StopReason.DONE
    assert "Hello, Alice!" in old.prompts[1]  # the text model sees tool results too


def test_usage_is_summed_over_model_calls(tools: BaseToolRegistry) -> None:
    from looplet.types import Usage

    replies = [
        LLMResponse(tool_calls=(GREET,), usage=Usage(10, 3)),
        LLMResponse(tool_calls=(DONE,), usage=Usage(20, 4)),
    ]
    _, traj = run_sync(llm=MockLLMBackend(replies), tools=tools, task="t")
    assert traj.usage == Usage(30, 7)
    assert traj.to_dict()["usage"]["total_tokens"] == 37


def test_tools_get_a_context_with_the_run_settings(tmp_path: Any) -> None:
    seen: list[Any] = []

    def where(*, ctx: Any) -> str:
        seen.append((ctx.workspace_root, ctx.cwd, ctx.session_id, ctx.step, ctx.cancel_token))
        return "ok"

    token = CancelToken()
    tools = make_tools(
        where=ToolSpec(name="where", description="Where.", parameters={}, execute=where)
    )
    config = LoopConfig(workspace_root=str(tmp_path), session_id="s1", cancel_token=token)
    run_sync(
        llm=MockLLMBackend([GREET, ToolCall("where", {}), DONE]),
        tools=tools,
        task="t",
        config=config,
    )
    assert seen == [(str(tmp_path), str(tmp_path), "s1", 2, token)]
