"""Hooks: slot resolution, decisions in every slot, and the one policy for a raising hook."""

from __future__ import annotations

from typing import Any

import pytest

from looplet import (
    Allow,
    Block,
    Deny,
    ErrorKind,
    HookError,
    InjectContext,
    LoopConfig,
    Stop,
    StopReason,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from looplet.errors import HookRegistrationError
from looplet.hooks import SLOTS, resolve_hooks
from looplet.testing import MockLLMBackend
from tests.conftest import RunLoop, make_tools, run_sync

GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "ok"})


def test_hook_methods_take_any_subset_of_the_slot_arguments(run_loop: RunLoop) -> None:
    seen: list[tuple[str, Any]] = []

    class Observer:
        def pre_loop(self, task: Any) -> None:
            seen.append(("pre_loop", task))

        def pre_dispatch(self, step_num: int, tool_call: ToolCall) -> None:
            seen.append(("pre_dispatch", (step_num, tool_call.tool)))

        def post_dispatch(self, tool_result: ToolResult) -> None:
            seen.append(("post_dispatch", tool_result.data))

        def on_loop_end(
            self, state: Any, session_log: Any, context: Any, llm: Any, trajectory: Any
        ) -> None:
            seen.append(("on_loop_end", (context, len(session_log), trajectory.stop_reason)))

    run_loop(
        llm=MockLLMBackend([GREET, DONE]),
        tools=make_tools(),
        task="T",
        hooks=[Observer()],
        context="ctx",
    )
    assert seen == [
        ("pre_loop", "T"),
        ("pre_dispatch", (1, "greet")),
        ("post_dispatch", {"greeting": "Hello, Alice!"}),
        ("pre_dispatch", (2, "done")),
        ("post_dispatch", {"answer": "ok"}),
        ("on_loop_end", ("ctx", 2, StopReason.DONE)),
    ]


def test_hooks_are_resolved_once_not_looked_up_every_step() -> None:
    lookups: list[str] = []

    class Counting:
        def __getattribute__(self, name: str) -> Any:
            if name in SLOTS:
                lookups.append(name)
            return object.__getattribute__(self, name)

        def post_dispatch(self, tool_result: ToolResult) -> None:
            pass

    llm = MockLLMBackend([GREET] * 10 + [DONE])
    run_sync(llm=llm, tools=make_tools(), task="t", hooks=[Counting()])
    after_ten_steps = len(lookups)
    run_sync(
        llm=MockLLMBackend([GREET] * 30 + [DONE]),
        tools=make_tools(),
        task="t",
        hooks=[Counting()],
        config=LoopConfig(max_steps=40),
    )
    assert len(lookups) == 2 * after_ten_steps  # the same count per run, whatever its length


def test_misspelled_slot_is_an_error_naming_the_nearest_slot() -> None:
    class Typo:
        def pre_dispach(self, tool_call: ToolCall) -> None:
            pass

    with pytest.raises(HookRegistrationError, match=r"'pre_dispach'.*Did you mean 'pre_dispatch'"):
        resolve_hooks([Typo()])


def test_unknown_parameter_is_an_error_naming_what_the_slot_provides() -> None:
    class Wrong:
        def post_dispatch(self, result: ToolResult) -> None:
            pass

    with pytest.raises(HookRegistrationError, match=r"'result'.*tool_result"):
        resolve_hooks([Wrong()])


def test_object_with_no_slot_is_an_error() -> None:
    class Nothing:
        pass

    with pytest.raises(HookRegistrationError, match="implements none"):
        resolve_hooks([Nothing()])


@pytest.mark.parametrize(
    "slot",
    [
        "pre_loop",
        "pre_prompt",
        "pre_dispatch",
        "check_permission",
        "post_dispatch",
        "should_stop",
        "on_event",
    ],
)
def test_a_raising_hook_ends_the_run_with_hook_error_in_every_slot(
    slot: str, run_loop: RunLoop
) -> None:
    ended: list[Any] = []

    class Boom:
        pass

    def raise_it(**kwargs: Any) -> None:
        raise RuntimeError("kaput")

    boom = Boom()
    setattr(boom, slot, raise_it)

    class Survivor:
        def on_loop_end(self, trajectory: Any) -> None:
            ended.append(trajectory.stop_reason)

    with pytest.raises(HookError) as info:
        run_loop(
            llm=MockLLMBackend([GREET, DONE]),
            tools=make_tools(),
            task="t",
            hooks=[boom, Survivor()],
        )
    err = info.value
    assert f"Boom.{slot}()" in str(err) and "RuntimeError: kaput" in str(err)
    assert err.slot == slot and isinstance(err.__cause__, RuntimeError)
    assert err.trajectory is not None
    assert err.trajectory.stop_reason is StopReason.HOOK_ERROR
    assert ended == [StopReason.HOOK_ERROR]  # the other hooks still see the end


def test_raising_on_loop_end_is_raised_after_the_run_keeps_its_stop_reason() -> None:
    class Boom:
        def on_loop_end(self) -> None:
            raise ValueError("report failed")

    with pytest.raises(HookError, match="on_loop_end") as info:
        run_sync(llm=MockLLMBackend([DONE]), tools=make_tools(), task="t", hooks=[Boom()])
    assert info.value.trajectory is not None
    assert info.value.trajectory.stop_reason is StopReason.DONE


def test_hook_error_after_a_step_keeps_the_step(run_loop: RunLoop) -> None:
    class Boom:
        def should_stop(self, step_num: int) -> bool:
            raise RuntimeError("bad")

    with pytest.raises(HookError) as info:
        run_loop(llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task="t", hooks=[Boom()])
    assert info.value.step == 1
    assert info.value.trajectory is not None and info.value.trajectory.tools == ["greet"]


def test_wrong_return_type_is_a_hook_error_saying_what_is_allowed() -> None:
    class Weird:
        def pre_dispatch(self) -> int:
            return 7

    with pytest.raises(HookError, match="returned int 7; pre_dispatch hooks return None"):
        run_sync(llm=MockLLMBackend([GREET]), tools=make_tools(), task="t", hooks=[Weird()])


def test_pre_dispatch_deny_blocks_the_tool_and_tells_the_model(run_loop: RunLoop) -> None:
    ran: list[str] = []
    tools = make_tools(
        shout=ToolSpec(
            name="shout",
            description="Shout.",
            parameters={"name": "str"},
            execute=lambda *, name: ran.append(name),
        )
    )

    class Guard:
        def pre_dispatch(self, tool_call: ToolCall) -> Any:
            return Deny("no greeting strangers") if tool_call.tool == "shout" else None

    llm = MockLLMBackend([ToolCall("shout", {"name": "Alice"}), DONE])
    steps, _ = run_loop(llm=llm, tools=tools, task="t", hooks=[Guard()])
    assert ran == []
    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert "no greeting strangers" in list(llm.requests[1].messages)[-1].content


def test_check_permission_false_denies_and_first_denial_wins(run_loop: RunLoop) -> None:
    order: list[str] = []

    class Yes:
        def check_permission(self, tool_call: ToolCall) -> bool:
            order.append("yes")
            return True

    class No:
        def check_permission(self, tool_call: ToolCall) -> bool:
            order.append("no")
            return tool_call.tool != "greet"

    steps, _ = run_loop(
        llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task="t", hooks=[Yes(), No()]
    )
    assert order[:2] == ["yes", "no"]
    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert steps[1].ok


def test_pre_dispatch_can_rewrite_arguments_or_answer_instead(run_loop: RunLoop) -> None:
    from looplet import HookDecision

    class Rewrite:
        def pre_dispatch(self, tool_call: ToolCall) -> Any:
            if tool_call.tool == "greet":
                return HookDecision(updated_args={"name": "Bob"})
            return ToolResult("done", data={"answer": "cached"})

    steps, traj = run_loop(
        llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task="t", hooks=[Rewrite()]
    )
    assert steps[0].tool_result.data == {"greeting": "Hello, Bob!"}
    assert steps[0].tool_call.args == {"name": "Bob"}
    assert steps[1].tool_result.data == {"answer": "cached"}
    assert traj.stop_reason is StopReason.DONE


def test_rewritten_arguments_are_checked_before_permission_hooks_see_them(
    run_loop: RunLoop,
) -> None:
    from looplet import HookDecision

    seen: list[dict[str, Any]] = []

    class Rewrite:
        def pre_dispatch(self, tool_call: ToolCall) -> Any:
            if tool_call.tool == "greet":
                new = {"name": 7} if tool_call.args["name"] == "Alice" else {"name": "Bob"}
                return HookDecision(updated_args=new)
            return None

    class Watch:
        def check_permission(self, tool_call: ToolCall) -> bool:
            seen.append(dict(tool_call.args))
            return True

    steps, _ = run_loop(
        llm=MockLLMBackend([GREET, '{"tool": "greet", "args": {"name": "Carol"}}', DONE]),
        tools=make_tools(),
        task="t",
        hooks=[Rewrite(), Watch()],
    )
    # The rewrite to a wrongly typed argument fails validation and is never shown for
    # permission; the valid rewrite is what the permission hook sees and what runs.
    assert steps[0].tool_result.error_kind is ErrorKind.VALIDATION
    assert steps[1].tool_result.data == {"greeting": "Hello, Bob!"}
    assert seen == [{"name": "Bob"}, {"answer": "ok"}]


def test_post_dispatch_context_reaches_the_next_model_call(run_loop: RunLoop) -> None:
    class Note:
        def post_dispatch(self, tool_call: ToolCall) -> Any:
            return InjectContext("Remember: be brief.") if tool_call.tool == "greet" else None

    llm = MockLLMBackend([GREET, DONE])
    run_loop(llm=llm, tools=make_tools(), task="t", hooks=[Note()])
    last = list(llm.requests[1].messages)[-1]
    assert (last.role, last.content) == ("user", "Remember: be brief.")


def test_pre_prompt_text_is_shown_for_that_call_only(run_loop: RunLoop) -> None:
    class Clock:
        def pre_prompt(self, step_num: int) -> str:
            return f"It is step {step_num}."

    llm = MockLLMBackend([GREET, DONE])
    _, traj = run_loop(llm=llm, tools=make_tools(), task="t", hooks=[Clock()])
    assert list(llm.requests[0].messages)[-1].content == "It is step 1."
    assert list(llm.requests[1].messages)[-1].content == "It is step 2."
    assert not any(m.content.startswith("It is step") for m in traj.messages)


def test_check_done_can_refuse_and_the_model_is_told_why(run_loop: RunLoop) -> None:
    class Gate:
        def __init__(self) -> None:
            self.greeted = False

        def post_dispatch(self, tool_call: ToolCall) -> None:
            self.greeted = self.greeted or tool_call.tool == "greet"

        def check_done(self) -> str | None:
            return None if self.greeted else "greet Alice first"

    llm = MockLLMBackend([DONE, GREET, DONE])
    steps, traj = run_loop(llm=llm, tools=make_tools(), task="t", hooks=[Gate()])
    assert steps[0].tool_result.error_kind is ErrorKind.DONE_REJECTED
    assert "greet Alice first" in list(llm.requests[1].messages)[-1].content
    assert traj.tools == ["done", "greet", "done"] and traj.stop_reason is StopReason.DONE


def test_should_stop_ends_with_hook_stop(run_loop: RunLoop) -> None:
    class AfterTwo:
        def should_stop(self, step_num: int) -> Any:
            return Stop("enough") if step_num == 2 else None

    steps, traj = run_loop(
        llm=MockLLMBackend([GREET], cycle=True), tools=make_tools(), task="t", hooks=[AfterTwo()]
    )
    assert len(steps) == 2
    assert (traj.stop_reason, traj.stop_detail) == (StopReason.HOOK_STOP, "enough")


def test_block_and_allow_factories_have_the_documented_flags() -> None:
    assert Block("x").is_block() and not Block("x").is_stop()
    assert Deny("x").is_block()
    assert not Allow().is_block() and not Allow().is_noop()
    assert Stop("why").is_stop() and Stop("why").stop == "why"


def test_on_event_sees_the_lifecycle_in_order() -> None:
    kinds: list[str] = []

    class Events:
        def on_event(self, event: Any) -> None:
            kinds.append(event.kind)

    run_sync(llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task="t", hooks=[Events()])
    assert kinds == [
        "loop_start",
        "llm_call",
        "llm_response",
        "step",
        "llm_call",
        "llm_response",
        "step",
        "loop_end",
    ]


def test_streaming_hook_receives_chunks_from_a_streaming_backend() -> None:
    from looplet.backends.base import LLMRequest, LLMResponse, StreamChunk
    from looplet.observe import StreamingHook

    class Streamer:
        def __init__(self) -> None:
            self.replies = [GREET, DONE]

        def complete(self, request: LLMRequest) -> LLMResponse:
            call = self.replies.pop(0)
            if request.on_chunk is not None:
                request.on_chunk(StreamChunk(text="Let me "))
                request.on_chunk(StreamChunk(text="do that."))
                request.on_chunk(StreamChunk(tool_index=0, tool_name=call.tool, arguments="{"))
            return LLMResponse(text="Let me do that.", tool_calls=(call,))

    texts: list[str] = []
    chunks: list[StreamChunk] = []
    hook = StreamingHook(chunks.append, on_text=texts.append)
    _, traj = run_sync(llm=Streamer(), tools=make_tools(), task="t", hooks=[hook])
    assert texts == ["Let me ", "do that."] * 2
    assert [c.tool_name for c in chunks if c.tool_index is not None] == ["greet", "done"]
    assert traj.stop_reason is StopReason.DONE


def test_a_streaming_hook_that_raises_ends_the_run_as_hook_error() -> None:
    from looplet.backends.base import LLMRequest, LLMResponse, StreamChunk
    from looplet.observe import StreamingHook

    class Streamer:
        def complete(self, request: LLMRequest) -> LLMResponse:
            if request.on_chunk is not None:
                request.on_chunk(StreamChunk(text="x"))
            return LLMResponse(tool_calls=(DONE,))

    def explode(text: str) -> None:
        raise RuntimeError("terminal gone")

    with pytest.raises(HookError, match=r"StreamingHook\.on_event") as info:
        run_sync(
            llm=Streamer(), tools=make_tools(), task="t", hooks=[StreamingHook(on_text=explode)]
        )
    assert info.value.trajectory is not None
    assert info.value.trajectory.stop_reason is StopReason.HOOK_ERROR


def test_on_loop_end_sees_the_error_that_ended_the_run() -> None:
    from looplet import LLMError

    seen: list[Any] = []

    class Watch:
        def on_loop_end(self, trajectory: Any) -> None:
            seen.append(trajectory.error)

    boom = LLMError("mock", "down", status=503)
    with pytest.raises(LLMError):
        run_sync(llm=MockLLMBackend([boom]), tools=make_tools(), task="t", hooks=[Watch()])
    assert seen == [boom]
