"""Sub-agents: nested in the parent's record, inside its budget, stopped by its cancel token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from looplet import (
    CancelToken,
    DefaultState,
    ErrorKind,
    LLMError,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolContext,
    ToolSpec,
    Trajectory,
    async_composable_loop,
    composable_loop,
)
from looplet.loop import LoopRun
from looplet.provenance import ProvenanceSink, TrajectoryRecorder
from looplet.subagent import run_sub_loop, subagent_tool
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from tests.conftest import make_tools

GREET_BOB = ToolCall("greet", {"name": "Bob"})
CHILD_DONE = ToolCall("done", {"answer": "Bob greeted"})
DELEGATE = ToolCall("helper", {"task": "greet Bob"})
PARENT_DONE = ToolCall("done", {"answer": "ok"})


def parent_loop(
    parent_script: list[Any],
    child: MockLLMBackend,
    *,
    parent_hooks: tuple[object, ...] = (),
    config: LoopConfig | None = None,
    state: DefaultState | None = None,
    child_tools: Any = None,
    child_config: LoopConfig | None = None,
    **options: Any,
) -> LoopRun:
    """A parent loop whose ``helper`` tool runs a sub-agent on ``child``."""
    handle: dict[str, LoopRun] = {}
    helper = subagent_tool(
        "helper",
        "Hand a task to a helper.",
        child,
        child_tools if child_tools is not None else make_tools(),
        parent=lambda: handle["loop"],
        config=child_config,
        **options,
    )
    loop = composable_loop(
        MockLLMBackend(parent_script),
        "parent task",
        make_tools(helper=helper),
        hooks=parent_hooks,
        config=config,
        state=state,
    )
    handle["loop"] = loop
    return loop


def finish(loop: LoopRun) -> Trajectory:
    for _ in loop:
        pass
    return loop.trajectory


# -- nesting -----------------------------------------------------------------------------------


def test_the_child_run_is_nested_under_the_step_that_delegated() -> None:
    child = MockLLMBackend([GREET_BOB, CHILD_DONE])
    traj = finish(parent_loop([DELEGATE, PARENT_DONE], child))

    assert traj.tools == ["helper", "done"] and traj.stop_reason is StopReason.DONE
    assert traj.steps[0].tool_result.data == "Bob greeted"
    (sub,) = traj.children_of(1)
    assert traj.children == [sub] and traj.children_of(2) == []
    assert sub.parent_step == 1 and sub.task == "greet Bob"
    assert sub.tools == ["greet", "done"] and sub.stop_reason is StopReason.DONE
    doc = json.loads(json.dumps(traj.to_dict()))
    assert doc["parent_step"] is None
    assert [s["tool_call"]["tool"] for s in doc["children"][0]["steps"]] == ["greet", "done"]
    assert doc["children"][0]["parent_step"] == 1
    assert "    ↳ #1 ✓ greet(name='Bob')" in traj.pretty().splitlines()[1]
    assert traj.total_usage.total_tokens == traj.usage.total_tokens + sub.usage.total_tokens
    assert traj.total_llm_calls == 4


def test_provenance_of_the_parent_holds_the_child_run(tmp_path: Path) -> None:
    recorder = TrajectoryRecorder()
    child = MockLLMBackend([GREET_BOB, CHILD_DONE])
    finish(parent_loop([DELEGATE, PARENT_DONE], child, parent_hooks=(recorder.trajectory_hook(),)))
    run = recorder.to_run()
    assert run.trajectory is not None
    (nested,) = run.trajectory["children"]
    assert [s["tool_call"]["tool"] for s in nested["steps"]] == ["greet", "done"]

    sink = ProvenanceSink(tmp_path / "run")
    finish(
        parent_loop(
            [DELEGATE, PARENT_DONE],
            MockLLMBackend([GREET_BOB, CHILD_DONE]),
            parent_hooks=(sink.trajectory_hook(),),
        )
    )
    written = json.loads((tmp_path / "run" / "trajectory.json").read_text())
    assert written["children"][0]["steps"][0]["tool_result"]["data"] == {"greeting": "Hello, Bob!"}


def test_a_child_gets_a_done_tool_without_changing_the_tools_it_was_given() -> None:
    greet_only = make_tools()
    greet_only_specs = [s for s in greet_only if s.name != "done"]
    child = MockLLMBackend([CHILD_DONE])
    result = run_sub_loop(child, "t", greet_only_specs, max_steps=2)
    assert result.ok and result.summary == "Bob greeted"
    assert "done" in [t["name"] for t in child.requests[0].tools]
    assert [s.name for s in greet_only_specs] == ["greet"]


def test_the_summary_is_the_final_text_or_what_summarize_makes_of_the_run() -> None:
    result = run_sub_loop(MockLLMBackend(["Bob is fine."]), "t", make_tools())
    assert result.ok and str(result) == "Bob is fine."
    assert result.stop_reason is StopReason.FINAL_TEXT and result.trajectory.parent_step is None

    def count(traj: Trajectory) -> str:
        return f"{len(traj.steps)} steps: {', '.join(traj.tools)}"

    result = run_sub_loop(
        MockLLMBackend([GREET_BOB, CHILD_DONE]), "t", make_tools(), summarize=count
    )
    assert result.summary == "2 steps: greet, done"


def test_the_childs_system_prompt_is_its_own() -> None:
    child = MockLLMBackend([CHILD_DONE])
    run_sub_loop(child, "t", make_tools(), system_prompt="You only greet. End with {done_tool}.")
    assert child.requests[0].system_prompt == "You only greet. End with done."


# -- the budget --------------------------------------------------------------------------------


def test_the_child_uses_only_the_steps_the_parent_has_left_and_they_are_charged() -> None:
    state = DefaultState(max_steps=4)
    child = MockLLMBackend([GREET_BOB], cycle=True)  # never finishes on its own
    greet = ToolCall("greet", {"name": "Al"})
    loop = parent_loop([greet, DELEGATE, PARENT_DONE], child, state=state, max_steps=10)
    traj = finish(loop)

    (sub,) = traj.children
    assert len(sub.steps) == 3 and sub.stop_reason is StopReason.MAX_STEPS
    assert state.queries_used == 4  # the parent's greet, then the child's three
    assert traj.tools == ["greet", "helper"] and traj.stop_reason is StopReason.MAX_STEPS
    failed = traj.steps[1].tool_result
    assert failed.error_kind is ErrorKind.EXECUTION
    assert "did not finish: stopped (max_steps: 3 steps used) after 3 steps" in (failed.error or "")
    assert "its last step: #3 ✓ greet(name='Bob')" in (failed.error or "")


def test_a_parent_with_no_steps_left_runs_no_child() -> None:
    state = DefaultState(max_steps=1)
    child = MockLLMBackend([GREET_BOB], cycle=True)
    loop = parent_loop([ToolCall("greet", {"name": "A"})], child, state=state)
    finish(loop)
    result = run_sub_loop(child, "t", make_tools(), parent=loop)
    assert not result.ok and result.stop_reason is StopReason.MAX_STEPS
    assert "no steps left" in result.summary and child.requests == []
    assert loop.trajectory.children == [result.trajectory]


# -- cancellation ------------------------------------------------------------------------------


def cancelling_tools(token: CancelToken) -> list[ToolSpec]:
    def greet(name: str) -> str:
        token.cancel("user pressed stop")
        return f"Hello, {name}!"

    return [ToolSpec("greet", "Greet someone.", {"name": "str"}, greet)]


def test_cancelling_the_parent_stops_the_child_and_then_the_parent() -> None:
    token = CancelToken()
    child = MockLLMBackend([GREET_BOB], cycle=True)
    loop = parent_loop(
        [DELEGATE, PARENT_DONE],
        child,
        config=LoopConfig(cancel_token=token),
        child_tools=cancelling_tools(token),
    )
    traj = finish(loop)

    (sub,) = traj.children
    assert child.calls == 1 and sub.tools == ["greet"]
    assert sub.stop_reason is StopReason.CANCELLED and sub.stop_detail == "user pressed stop"
    assert traj.steps[0].tool_result.error_kind is ErrorKind.CANCELLED
    assert traj.tools == ["helper"] and traj.stop_reason is StopReason.CANCELLED


def test_a_child_with_its_own_token_still_obeys_the_parents() -> None:
    parent_token, own = CancelToken(), CancelToken()
    child = MockLLMBackend([GREET_BOB], cycle=True)
    ctx = ToolContext(cancel_token=parent_token)
    config = LoopConfig(cancel_token=own)
    result = run_sub_loop(
        child, "t", cancelling_tools(parent_token), parent=ctx, config=config, max_steps=9
    )
    assert result.stop_reason is StopReason.CANCELLED and len(result.trajectory.steps) == 1
    assert not own.is_cancelled  # the parent's stop is not written into the child's token

    other = CancelToken()
    result = run_sub_loop(
        MockLLMBackend([GREET_BOB], cycle=True),
        "t",
        cancelling_tools(own),
        parent=ToolContext(cancel_token=other),
        config=LoopConfig(cancel_token=own),
    )
    assert result.stop_reason is StopReason.CANCELLED and not other.is_cancelled


# -- failures ----------------------------------------------------------------------------------


def test_a_child_that_fails_is_a_failed_step_and_the_parent_goes_on() -> None:
    child = MockLLMBackend([LLMError("mock", "the model is down", status=503)])
    traj = finish(parent_loop([DELEGATE, PARENT_DONE], child))

    assert traj.tools == ["helper", "done"] and traj.stop_reason is StopReason.DONE
    step = traj.steps[0]
    assert not step.ok and step.pretty().startswith("#1 ✗ helper(")
    assert step.tool_result.error == (
        "execution: sub-agent 'helper' did not finish: stopped (llm_error: mock request "
        "failed (HTTP 503): the model is down) after 0 steps"
    )
    (sub,) = traj.children
    assert isinstance(sub.error, LLMError) and sub.stop_reason is StopReason.LLM_ERROR


def test_a_raising_hook_in_the_child_fails_only_the_child() -> None:
    """The hook is the child's own (``hooks=``), not the parent's."""

    class Broken:
        def should_stop(self) -> bool:
            raise RuntimeError("broken hook")

    child = MockLLMBackend([GREET_BOB, CHILD_DONE])
    traj = finish(parent_loop([DELEGATE, PARENT_DONE], child, hooks=[Broken()]))
    assert traj.tools == ["helper", "done"] and traj.stop_reason is StopReason.DONE
    assert "(hook_error: hook Broken.should_stop() raised" in (
        traj.steps[0].tool_result.error or ""
    )
    assert traj.children[0].stop_reason is StopReason.HOOK_ERROR


def test_a_bad_parent_is_refused_with_what_to_pass() -> None:
    with pytest.raises(Exception, match="parent must be the parent's loop"):
        run_sub_loop(MockLLMBackend([CHILD_DONE]), "t", make_tools(), parent="nope")  # type: ignore[arg-type]


# -- async -------------------------------------------------------------------------------------


def test_an_async_parent_runs_an_async_child_nested_and_charged() -> None:
    handle: dict[str, Any] = {}
    child = AsyncMockLLMBackend([GREET_BOB, CHILD_DONE])
    helper = subagent_tool(
        "helper", "Delegate.", child, make_tools(), parent=lambda: handle["loop"]
    )
    assert helper.is_async
    state = DefaultState(max_steps=5)

    async def go() -> Trajectory:
        loop = async_composable_loop(
            AsyncMockLLMBackend([DELEGATE, PARENT_DONE]),
            "t",
            make_tools(helper=helper),
            state=state,
        )
        handle["loop"] = loop
        async for _ in loop:
            pass
        return loop.trajectory

    traj = asyncio.run(go())
    assert traj.steps[0].tool_result.data == "Bob greeted"
    assert traj.children[0].tools == ["greet", "done"] and state.queries_used == 1


@pytest.mark.skipif(not hasattr(ToolContext(), "run"), reason="ToolContext.run not provided yet")
def test_a_tool_context_that_knows_its_run_is_parent_enough() -> None:  # pragma: no cover
    child = MockLLMBackend([GREET_BOB, CHILD_DONE])
    helper = subagent_tool("helper", "Delegate.", child, make_tools())
    state = DefaultState(max_steps=5)
    loop = composable_loop(
        MockLLMBackend([DELEGATE, PARENT_DONE]), "t", make_tools(helper=helper), state=state
    )
    traj = finish(loop)
    assert traj.children_of(1)[0].tools == ["greet", "done"] and state.queries_used == 1


# -- every budget of the parent binds the child --------------------------------------------------


def test_the_childs_model_calls_count_against_the_parents_cap() -> None:
    child = MockLLMBackend([GREET_BOB], cycle=True)  # would make 10 calls on its own
    config = LoopConfig(max_steps=20, max_llm_calls=3)
    loop = parent_loop([DELEGATE, PARENT_DONE], child, config=config, max_steps=10)
    traj = finish(loop)

    (sub,) = traj.children
    assert child.calls == 2 and sub.llm_calls == 2  # the 3 the parent may make, less its own
    assert traj.llm_calls == 1 and traj.total_llm_calls == 3
    assert sub.stop_reason is StopReason.MAX_LLM_CALLS
    assert traj.stop_reason is StopReason.MAX_LLM_CALLS and traj.tools == ["helper"]
    failed = traj.steps[0].tool_result
    assert failed.error_kind is ErrorKind.EXECUTION
    assert "did not finish: stopped (max_llm_calls: 2 model calls made)" in (failed.error or "")
    assert traj.total_usage == traj.usage + sub.usage and sub.usage.total_tokens > 0


def test_the_tighter_of_the_childs_own_cap_and_the_parents_remaining_one_wins() -> None:
    child = MockLLMBackend([GREET_BOB], cycle=True)
    config = LoopConfig(max_steps=20, max_llm_calls=4)
    loop = parent_loop(
        [DELEGATE, DELEGATE, PARENT_DONE],
        child,
        config=config,
        max_steps=10,
        child_config=LoopConfig(max_llm_calls=2),
    )
    traj = finish(loop)

    first, second = traj.children
    assert first.llm_calls == 2 and first.stop_reason is StopReason.MAX_LLM_CALLS  # its own cap
    # The parent's second call used its last one: the second child is not run at all.
    assert second.llm_calls == 0 and second.stop_reason is StopReason.MAX_LLM_CALLS
    assert "no model calls left" in (traj.steps[1].tool_result.error or "")
    assert child.calls == 2 and traj.total_llm_calls == 4
    assert traj.stop_reason is StopReason.MAX_LLM_CALLS


def async_parent(
    parent_script: list[Any], child: AsyncMockLLMBackend, config: LoopConfig, **options: Any
) -> Trajectory:
    """Run an async parent whose ``helper`` tool runs an async sub-agent on ``child``."""
    handle: dict[str, Any] = {}
    helper = subagent_tool(
        "helper", "Delegate.", child, make_tools(), parent=lambda: handle["loop"], **options
    )

    async def go() -> Trajectory:
        loop = async_composable_loop(
            AsyncMockLLMBackend(parent_script), "t", make_tools(helper=helper), config=config
        )
        handle["loop"] = loop
        async for _ in loop:
            pass
        return loop.trajectory

    return asyncio.run(go())


def test_an_async_childs_model_calls_count_against_the_parents_cap() -> None:
    child = AsyncMockLLMBackend([GREET_BOB], cycle=True)
    config = LoopConfig(max_steps=20, max_llm_calls=3)
    traj = async_parent([DELEGATE, PARENT_DONE], child, config, max_steps=10)

    (sub,) = traj.children
    assert child.calls == 2 and traj.total_llm_calls == 3
    assert sub.stop_reason is StopReason.MAX_LLM_CALLS
    assert traj.stop_reason is StopReason.MAX_LLM_CALLS and traj.tools == ["helper"]
    assert "stopped (max_llm_calls" in (traj.steps[0].tool_result.error or "")
    assert traj.total_usage == traj.usage + sub.usage


def test_an_async_child_uses_only_the_steps_the_parent_has_left() -> None:
    child = AsyncMockLLMBackend([GREET_BOB], cycle=True)
    config = LoopConfig(max_steps=2)
    traj = async_parent([DELEGATE, PARENT_DONE], child, config, max_steps=10)

    (sub,) = traj.children
    assert len(sub.steps) == 2 and sub.stop_reason is StopReason.MAX_STEPS
    assert traj.stop_reason is StopReason.MAX_STEPS and traj.tools == ["helper"]
