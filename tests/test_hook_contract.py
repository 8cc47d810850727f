"""The hook contract: each call gets its slot's arguments, async hooks are awaited (or refused
by the sync loop), observing slots only observe, and each decision factory means one thing.

Every test runs through the real loop (``composable_loop`` / ``async_composable_loop``) on a
scripted backend.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from looplet import (
    Allow,
    Block,
    Continue,
    Deny,
    ErrorKind,
    HookError,
    InjectContext,
    LoopletError,
    Stop,
    StopReason,
    ToolCall,
    ToolResult,
    async_composable_loop,
    composable_loop,
)
from looplet.backends.base import LLMRequest, LLMResponse, StreamChunk
from looplet.errors import AsyncHookError
from looplet.hooks import SLOT_ARGUMENTS, IgnoredDecisionWarning
from looplet.testing import MockLLMBackend
from tests.conftest import RunLoop, make_tools, run_async, run_sync

GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "ok"})


# -- 1. each call gets exactly its slot's arguments ------------------------------------------


def test_a_kwargs_hook_gets_exactly_its_slots_arguments_in_every_slot(run_loop: RunLoop) -> None:
    received: dict[str, set[frozenset[str]]] = {}

    class Everything:
        pass

    hook = Everything()
    for slot in SLOT_ARGUMENTS:

        def record(_slot: str = slot, **kwargs: Any) -> None:
            received.setdefault(_slot, set()).add(frozenset(kwargs))

        setattr(hook, slot, record)

    run_loop(llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task="t", hooks=[hook])
    # on_loop_end used to get step, step_num and new_entities (left over from should_stop).
    assert received == {slot: {names} for slot, names in SLOT_ARGUMENTS.items()}


def test_the_originals_positional_signatures_get_their_values(run_loop: RunLoop) -> None:
    seen: list[tuple[Any, ...]] = []

    class Original:  # the signatures of the original LoopHook Protocol, in its order
        def pre_prompt(self, state: Any, session_log: Any, context: Any, step_num: int) -> None:
            seen.append(("pre_prompt", context, len(session_log), step_num))

        def post_dispatch(
            self, state: Any, session_log: Any, tool_call: Any, tool_result: Any, step_num: int
        ) -> None:
            seen.append(("post_dispatch", tool_call.tool, tool_result.ok, step_num))

        def should_stop(self, state: Any, step_num: int, new_entities: Any) -> bool:
            seen.append(("should_stop", step_num, new_entities))
            return False

        def on_loop_end(self, state: Any, session_log: Any, context: Any, llm: Any) -> None:
            seen.append(("on_loop_end", context, len(session_log)))

    llm = MockLLMBackend([GREET, DONE])
    run_loop(llm=llm, tools=make_tools(), task="t", hooks=[Original()], context="ctx")
    assert seen == [
        ("pre_prompt", "ctx", 0, 1),
        ("post_dispatch", "greet", True, 1),
        ("should_stop", 1, []),
        ("pre_prompt", "ctx", 1, 2),
        ("post_dispatch", "done", True, 2),
        ("on_loop_end", "ctx", 2),
    ]


# -- 2. async hooks: awaited by the async loop, refused by the sync loop -----------------------


class AsyncEverything:
    """An async method in every slot, each doing something the run shows."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.ended: list[StopReason | None] = []
        self.refused_done = False

    async def pre_loop(self) -> str:
        await asyncio.sleep(0)
        return "Loop note."

    async def pre_prompt(self, step_num: int) -> str:
        await asyncio.sleep(0)
        return f"Prompt note {step_num}."

    async def pre_dispatch(self, tool_call: ToolCall) -> Any:
        await asyncio.sleep(0)
        return Deny("no shouting") if tool_call.args.get("name") == "BOB" else None

    async def check_permission(self, tool_call: ToolCall) -> bool:
        await asyncio.sleep(0)
        return tool_call.args.get("name") != "Eve"

    async def post_dispatch(self, tool_result: ToolResult) -> Any:
        await asyncio.sleep(0)
        if tool_result.tool == "greet" and tool_result.ok:
            return ToolResult("greet", data={"greeting": "awaited"})
        return None

    async def check_done(self) -> str | None:
        await asyncio.sleep(0)
        if not self.refused_done:
            self.refused_done = True
            return "not yet"
        return None

    async def should_stop(self, step_num: int) -> bool:
        await asyncio.sleep(0)
        return step_num >= 10

    async def on_loop_end(self, trajectory: Any) -> None:
        await asyncio.sleep(0)
        self.ended.append(trajectory.stop_reason)

    async def on_event(self, event: Any) -> None:
        await asyncio.sleep(0)
        self.events.append(event.kind)


def test_the_async_loop_awaits_an_async_hook_in_every_slot() -> None:
    hook = AsyncEverything()
    script = [GREET, ToolCall("greet", {"name": "BOB"}), ToolCall("greet", {"name": "Eve"})]
    llm = MockLLMBackend([*script, DONE, DONE])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        steps, traj = run_async(llm=llm, tools=make_tools(), task="t", hooks=[hook])
    assert steps[0].tool_result.data == {"greeting": "awaited"}  # post_dispatch
    assert steps[1].tool_result.error_kind is ErrorKind.PERMISSION_DENIED  # pre_dispatch
    assert steps[2].tool_result.error_kind is ErrorKind.PERMISSION_DENIED  # check_permission
    assert steps[3].tool_result.error_kind is ErrorKind.DONE_REJECTED  # check_done
    assert traj.stop_reason is StopReason.DONE and hook.ended == [StopReason.DONE]
    first = [m.content for m in llm.requests[0].messages]
    assert "Loop note." in first and first[-1] == "Prompt note 1."  # pre_loop, pre_prompt
    assert hook.events[0] == "loop_start" and hook.events[-1] == "loop_end"
    assert hook.events.count("step") == 5


def test_an_async_hook_that_raises_ends_the_async_run_with_hook_error() -> None:
    ended: list[StopReason | None] = []

    class Boom:
        async def post_dispatch(self) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("kaput")

        def on_loop_end(self, trajectory: Any) -> None:
            ended.append(trajectory.stop_reason)

    with pytest.raises(HookError) as info:
        run_async(llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task="t", hooks=[Boom()])
    assert info.value.slot == "post_dispatch" and isinstance(info.value.__cause__, RuntimeError)
    assert info.value.trajectory is not None
    assert info.value.trajectory.stop_reason is StopReason.HOOK_ERROR
    assert ended == []  # the failed hook's own on_loop_end is not called, as for a sync hook


def test_an_async_event_hook_gets_streamed_chunks_before_the_response() -> None:
    class AsyncStreamer:
        def __init__(self) -> None:
            self.replies = [GREET, DONE]

        async def acomplete(self, request: LLMRequest) -> LLMResponse:
            assert request.on_chunk is not None
            request.on_chunk(StreamChunk(text="a"))
            request.on_chunk(StreamChunk(text="b"))
            return LLMResponse(text="ab", tool_calls=(self.replies.pop(0),))

    seen: list[str] = []

    class Listener:
        async def on_event(self, event: Any) -> None:
            await asyncio.sleep(0)
            chunk = event.data.get("chunk")
            seen.append(event.kind + (f":{chunk.text}" if chunk is not None else ""))

    run_async(llm=AsyncStreamer(), tools=make_tools(), task="t", hooks=[Listener()])
    assert seen[:5] == ["loop_start", "llm_call", "llm_chunk:a", "llm_chunk:b", "llm_response"]


def test_aclose_awaits_the_async_end_hooks_of_a_stopped_run() -> None:
    ended: list[StopReason | None] = []

    class End:
        async def on_loop_end(self, trajectory: Any) -> None:
            await asyncio.sleep(0)
            ended.append(trajectory.stop_reason)

    async def go() -> Any:
        loop = async_composable_loop(
            llm=MockLLMBackend([GREET], cycle=True), tools=make_tools(), task="t", hooks=[End()]
        )
        async for _ in loop:
            break
        await loop.aclose()
        return loop.trajectory

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trajectory = asyncio.run(go())
    assert ended == [StopReason.CANCELLED] and trajectory.stop_reason is StopReason.CANCELLED


@pytest.mark.parametrize("slot", list(SLOT_ARGUMENTS))
def test_the_sync_loop_refuses_an_async_hook_when_the_run_starts(slot: str) -> None:
    class Late:
        pass

    async def method(**kwargs: Any) -> None:
        return None

    hook = Late()
    setattr(hook, slot, method)
    llm = MockLLMBackend([GREET, DONE])
    with pytest.raises(AsyncHookError) as info:
        composable_loop(llm=llm, tools=make_tools(), task="t", hooks=[hook])
    err = info.value
    assert isinstance(err, LoopletError) and err.hook is hook and err.slot == slot
    assert f"Late.{slot}" in str(err) and "async_composable_loop" in str(err)
    assert llm.requests == []  # refused before any model call


def test_a_sync_method_returning_a_coroutine_is_a_clear_hook_error(run_loop: RunLoop) -> None:
    async def later() -> None:
        return None

    class Sneaky:
        def pre_dispatch(self) -> Any:
            return later()  # a coroutine from a plain def: looplet cannot know to await it

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed, never "never awaited"
        with pytest.raises(HookError, match=r"awaitable .*`async def`") as info:
            run_loop(llm=MockLLMBackend([GREET]), tools=make_tools(), task="t", hooks=[Sneaky()])
    assert info.value.slot == "pre_dispatch"


# -- 3. observing slots observe -----------------------------------------------------------------


def test_pre_prompt_cannot_stop_the_run_and_says_so_once(run_loop: RunLoop) -> None:
    class Stopper:
        def pre_prompt(self) -> Any:
            return Stop("from pre_prompt")

    with pytest.warns(IgnoredDecisionWarning, match=r"stop.*should_stop") as caught:
        steps, traj = run_loop(
            llm=MockLLMBackend([GREET, GREET, DONE]),
            tools=make_tools(),
            task="t",
            hooks=[Stopper()],
        )
    assert traj.stop_reason is StopReason.DONE and len(steps) == 3
    assert len([w for w in caught if w.category is IgnoredDecisionWarning]) == 1


def test_post_dispatch_transforms_the_result_but_cannot_refuse_it(run_loop: RunLoop) -> None:
    seen: list[Any] = []

    class Replace:
        def post_dispatch(self, tool_result: ToolResult) -> Any:
            return ToolResult(tool_result.tool, data="replaced") if tool_result.ok else None

    class Refuse:
        def post_dispatch(self, tool_result: ToolResult) -> Any:
            seen.append(tool_result.data)  # sees the replacement of the hook before
            return Deny("too late")

    with pytest.warns(IgnoredDecisionWarning, match=r"block, permission.*pre_dispatch"):
        steps, traj = run_loop(
            llm=MockLLMBackend([GREET, DONE]),
            tools=make_tools(),
            task="t",
            hooks=[Replace(), Refuse()],
        )
    assert [s.tool_result.data for s in steps] == ["replaced", "replaced"]
    assert seen == ["replaced", "replaced"] and traj.stop_reason is StopReason.DONE


def test_a_decision_returned_from_on_loop_end_or_on_event_is_reported() -> None:
    class Late:
        def on_loop_end(self) -> Any:
            return Stop("after the end")

        def on_event(self) -> Any:
            return Block("events cannot block")

    with pytest.warns(IgnoredDecisionWarning) as caught:
        run_sync(llm=MockLLMBackend([DONE]), tools=make_tools(), task="t", hooks=[Late()])
    texts = sorted(str(w.message) for w in caught if w.category is IgnoredDecisionWarning)
    assert len(texts) == 2
    assert "Late.on_event" in texts[0] and "Late.on_loop_end" in texts[1]


# -- 4. each decision factory means one thing ---------------------------------------------------


def test_allow_continue_deny_and_block_are_distinct_decisions() -> None:
    assert Allow() != Continue() and Allow().permission == "allow"
    assert Continue().is_noop() and Continue().permission is None
    assert Continue("x") == InjectContext("x")  # the documented alias
    assert Deny("x") != Block("x")
    assert Deny("x").permission == "deny" and Block("x").permission is None
    assert Allow({"name": "Bob"}).updated_args == {"name": "Bob"}  # the original's call


def test_continue_lets_the_next_hook_decide_while_allow_decides(run_loop: RunLoop) -> None:
    class Note:
        def pre_dispatch(self, tool_call: ToolCall) -> Any:
            if tool_call.args.get("name") == "Carol":
                return Allow()  # decides: the guard below is not asked
            return Continue("noted")

    class Guard:
        def pre_dispatch(self, tool_call: ToolCall) -> Any:
            return Deny("not Alice") if tool_call.tool == "greet" else None

    carol = ToolCall("greet", {"name": "Carol"})
    llm = MockLLMBackend([GREET, carol, DONE])
    steps, _ = run_loop(llm=llm, tools=make_tools(), task="t", hooks=[Note(), Guard()])
    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert steps[1].tool_result.data == {"greeting": "Hello, Carol!"}
    assert "noted" in [m.content for m in llm.requests[1].messages]


def test_deny_is_a_permission_verdict_and_block_is_not(run_loop: RunLoop) -> None:
    class Gate:
        def pre_dispatch(self, tool_call: ToolCall) -> Any:
            if tool_call.args.get("name") == "Alice":
                return Deny("not allowed", retry=True)
            return Block("read the guest list first") if tool_call.tool == "greet" else None

    bob = ToolCall("greet", {"name": "Bob"})
    llm = MockLLMBackend([GREET, bob, DONE])
    steps, _ = run_loop(llm=llm, tools=make_tools(), task="t", hooks=[Gate()])
    denied, blocked = steps[0].tool_result.error_detail, steps[1].tool_result.error_detail
    assert denied is not None and blocked is not None
    assert (denied.kind, denied.retriable) == (ErrorKind.PERMISSION_DENIED, True)
    assert blocked.kind is ErrorKind.CANCELLED and "read the guest list first" in blocked.message
    assert steps[2].ok
