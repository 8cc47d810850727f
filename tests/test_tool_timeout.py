"""Tool time limits and cancelling a run while a tool runs: over both drivers.

A blocked tool waits on ``release``, an event every test sets when it ends, so no worker
thread outlives its test. Each run goes through ``finishes``, which runs the loop in a
thread and fails (instead of hanging) if the loop keeps waiting for a blocked tool.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from looplet import (
    BaseToolRegistry,
    CancelToken,
    ConfigurationError,
    ErrorKind,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolContext,
    ToolSpec,
    tool,
)
from looplet.errors import ToolRegistrationError
from looplet.subagent import run_sub_loop
from looplet.testing import MockLLMBackend
from looplet.types import Step
from tests.conftest import RunLoop, make_tools

T = TypeVar("T")
DONE = ToolCall("done", {"answer": "finished"})
#: How long a test waits for a loop that should have stopped waiting long ago.
GENEROUS = 60.0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set when the test ends: frees every tool still blocked on it."""
    event = threading.Event()
    yield event
    event.set()


def finishes(run: Callable[..., T], release: threading.Event, **kwargs: Any) -> T:
    """Run the loop in a thread; fail if it is still waiting after GENEROUS seconds."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = run(**kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(GENEROUS)
    hung = thread.is_alive()
    release.set()  # free the blocked tool either way
    assert not hung, "the loop kept waiting for a blocked tool"
    if "error" in box:
        raise box["error"]
    return box["out"]  # type: ignore[no-any-return]


def blocking(
    release: threading.Event, started: threading.Event | None = None, **options: Any
) -> ToolSpec:
    """A sync tool ``wait`` that blocks until ``release`` is set."""

    def wait(*, x: str) -> str:
        if started is not None:
            started.set()
        release.wait(GENEROUS)
        return x

    return ToolSpec("wait", "Block.", {"x": "str"}, wait, **options)


def async_blocking(
    cancelled: list[str], started: threading.Event | None = None, **options: Any
) -> ToolSpec:
    """An async tool ``await_`` that sleeps for a minute and notes being cancelled."""

    async def wait(*, x: str) -> str:
        if started is not None:
            started.set()
        try:
            await asyncio.sleep(GENEROUS)
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return x

    return ToolSpec("await_", "Block.", {"x": "str"}, wait, **options)


def kinds(steps: list[Step]) -> list[ErrorKind | None]:
    return [s.tool_result.error_detail.kind if s.tool_result.error_detail else None for s in steps]


# -- time limits -------------------------------------------------------------------------------


def test_sync_tool_over_its_limit_is_a_timeout_step_and_the_run_goes_on(
    run_loop: RunLoop, release: threading.Event
) -> None:
    tools = make_tools(wait=blocking(release, timeout_s=0.5))
    steps, traj = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([ToolCall("wait", {"x": "a"}), DONE]),
        tools=tools,
        task="t",
    )
    assert kinds(steps) == [ErrorKind.TIMEOUT, None]
    error = steps[0].tool_result.error_detail
    assert error is not None and error.retriable
    assert error.context == {"tool": "wait", "timeout_s": 0.5, "limit_from": "tool"}
    assert "'wait'" in error.message and "0.5 s" in error.message
    assert "timeout_s=" in error.message  # how to raise it
    assert traj.stop_reason is StopReason.DONE


def test_async_tool_over_its_limit_is_cancelled(
    run_loop: RunLoop, release: threading.Event
) -> None:
    cancelled: list[str] = []
    tools = make_tools(wait=async_blocking(cancelled, timeout_s=0.5))
    steps, traj = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([ToolCall("await_", {"x": "a"}), DONE]),
        tools=tools,
        task="t",
    )
    assert kinds(steps) == [ErrorKind.TIMEOUT, None]
    assert cancelled == ["a"]  # the tool itself was cancelled, not merely left behind
    assert traj.stop_reason is StopReason.DONE


def test_loop_wide_default_applies_to_tools_without_a_limit(
    run_loop: RunLoop, release: threading.Event
) -> None:
    tools = make_tools(wait=blocking(release))
    steps, traj = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([ToolCall("wait", {"x": "a"}), ToolCall("greet", {"name": "B"}), DONE]),
        tools=tools,
        task="t",
        config=LoopConfig(tool_timeout_s=0.5),
    )
    assert kinds(steps) == [ErrorKind.TIMEOUT, None, None]
    error = steps[0].tool_result.error_detail
    assert error is not None and error.context["limit_from"] == "loop"
    assert "LoopConfig(tool_timeout_s=" in error.message
    assert traj.stop_reason is StopReason.DONE


def test_a_tools_own_limit_wins_over_the_loop_default(
    run_loop: RunLoop, release: threading.Event
) -> None:
    def nap(*, x: str) -> str:
        release.wait(1.0)  # longer than the loop's limit, far inside the tool's own
        return x

    tools = make_tools(
        nap=ToolSpec("nap", "Nap.", {"x": "str"}, nap, timeout_s=GENEROUS),
        wait=blocking(release, timeout_s=0.3),
    )
    steps, _ = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([ToolCall("nap", {"x": "a"}), ToolCall("wait", {"x": "b"}), DONE]),
        tools=tools,
        task="t",
        config=LoopConfig(tool_timeout_s=0.2),
    )
    assert kinds(steps) == [None, ErrorKind.TIMEOUT, None]
    assert steps[0].tool_result.data == "a"
    error = steps[1].tool_result.error_detail
    assert error is not None and error.context["timeout_s"] == 0.3  # its own, not the loop's


def test_concurrent_group_keeps_each_calls_limit(
    run_loop: RunLoop, release: threading.Event
) -> None:
    def fetch(*, url: str) -> str:
        if url == "slow":
            release.wait(GENEROUS)
        return url

    tools = make_tools(
        fetch=ToolSpec(
            "fetch", "Fetch.", {"url": "str"}, fetch, concurrent_safe=True, timeout_s=0.5
        )
    )
    turn = [ToolCall("fetch", {"url": u}) for u in ("fast", "slow", "quick")]
    steps, traj = finishes(
        run_loop, release, llm=MockLLMBackend([turn, DONE]), tools=tools, task="t"
    )
    assert kinds(steps) == [None, ErrorKind.TIMEOUT, None, None]
    assert [s.tool_result.data for s in steps[:3]] == ["fast", None, "quick"]
    assert traj.stop_reason is StopReason.DONE


def test_dispatch_outside_a_loop_keeps_the_limit(release: threading.Event) -> None:
    registry = BaseToolRegistry([blocking(release, timeout_s=0.3)])
    result = registry.dispatch(ToolCall("wait", {"x": "a"}))
    assert result.error_detail is not None and result.error_detail.kind is ErrorKind.TIMEOUT
    registry = BaseToolRegistry([blocking(release)])
    ctx = ToolContext(tool_timeout_s=0.3)
    outcome = asyncio.run(registry.adispatch(ToolCall("wait", {"x": "a"}), ctx=ctx))
    assert outcome.error_detail is not None and outcome.error_detail.kind is ErrorKind.TIMEOUT


def test_calls_without_limit_or_token_run_in_the_callers_thread() -> None:
    seen: list[threading.Thread] = []
    registry = BaseToolRegistry(
        [ToolSpec("where", "Where.", None, lambda: seen.append(threading.current_thread()))]
    )
    registry.dispatch(ToolCall("where", {}))
    registry.dispatch(ToolCall("where", {}), ctx=ToolContext(tool_timeout_s=30))
    assert seen[0] is threading.current_thread()  # the hot path: no thread hop
    assert seen[1] is not threading.current_thread()  # a limit: in a worker


def test_workers_are_reused_not_one_thread_per_call() -> None:
    ran_in: list[threading.Thread] = []
    registry = BaseToolRegistry(
        [ToolSpec("where", "Where.", None, lambda: ran_in.append(threading.current_thread()))]
    )
    ctx = ToolContext(tool_timeout_s=30)
    workers_before = sum(t.name == "looplet-tool" for t in threading.enumerate())
    for _ in range(20):
        assert registry.dispatch(ToolCall("where", {}), ctx=ctx).ok
    assert len(ran_in) == 20
    assert len(set(ran_in)) <= workers_before + 1
    assert all(t.daemon for t in ran_in)  # an abandoned tool cannot keep the process alive


def test_a_worker_sees_context_variables_and_the_tools_errors_are_classified() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def read(*, fail: bool) -> str:
        if fail:
            raise ValueError("bad input")
        return var.get()

    registry = BaseToolRegistry([ToolSpec("read", "Read.", {"fail": "bool"}, read, timeout_s=30)])
    var.set("caller's")
    assert registry.dispatch(ToolCall("read", {"fail": False})).data == "caller's"
    failed = registry.dispatch(ToolCall("read", {"fail": True}))
    assert failed.error_detail is not None and failed.error_detail.kind is ErrorKind.VALIDATION
    assert "bad input" in failed.error_detail.message


def test_the_worker_pool_still_works_in_a_forked_child() -> None:
    registry = BaseToolRegistry([ToolSpec("echo", "Echo.", {"x": "str"}, lambda *, x: x)])
    ctx = ToolContext(tool_timeout_s=30)
    assert registry.dispatch(ToolCall("echo", {"x": "a"}), ctx=ctx).data == "a"  # pool exists
    child = multiprocessing.get_context("fork").Process(target=_echo_in_child)
    child.start()
    child.join(GENEROUS)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0  # not a hang waiting for the parent's (absent) workers


def _echo_in_child() -> None:
    registry = BaseToolRegistry([ToolSpec("echo", "Echo.", {"x": "str"}, lambda *, x: x)])
    result = registry.dispatch(ToolCall("echo", {"x": "b"}), ctx=ToolContext(tool_timeout_s=5))
    raise SystemExit(0 if result.data == "b" else 1)


# -- bad limits --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 0.0, math.inf, math.nan, "5", True])
def test_bad_limits_are_clear_errors(bad: Any) -> None:
    with pytest.raises(ToolRegistrationError, match=r"tool 'slow': timeout_s .*seconds"):
        ToolSpec("slow", "Slow.", None, lambda: None, timeout_s=bad)
    with pytest.raises(ToolRegistrationError, match="'slow'"):
        tool(name="slow", timeout_s=bad)(lambda: None)
    with pytest.raises(ConfigurationError, match=r"LoopConfig.tool_timeout_s .*seconds"):
        LoopConfig(tool_timeout_s=bad)


def test_whole_and_fractional_seconds_are_accepted() -> None:
    assert ToolSpec("a", "A.", None, lambda: None, timeout_s=2).timeout_s == 2
    assert LoopConfig(tool_timeout_s=0.25).tool_timeout_s == 0.25

    @tool(timeout_s=1.5)
    def slow() -> None:
        """Slow."""

    assert slow.timeout_s == 1.5


# -- cancelling while a tool runs --------------------------------------------------------------


def cancel_once_started(token: CancelToken, started: threading.Event) -> threading.Thread:
    """Cancel ``token`` from another thread as soon as the tool has started."""

    def cancel() -> None:
        if started.wait(GENEROUS):
            token.cancel("user pressed stop")

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_cancel_stops_waiting_for_a_blocked_sync_tool(
    run_loop: RunLoop, release: threading.Event
) -> None:
    token, started = CancelToken(), threading.Event()
    tools = make_tools(wait=blocking(release, started))
    canceller = cancel_once_started(token, started)
    steps, traj = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([[ToolCall("wait", {"x": "a"}), ToolCall("greet", {"name": "B"})]]),
        tools=tools,
        task="t",
        config=LoopConfig(cancel_token=token),
    )
    canceller.join(GENEROUS)
    assert kinds(steps) == [ErrorKind.CANCELLED, ErrorKind.CANCELLED]
    error = steps[0].tool_result.error_detail
    assert error is not None and error.context == {"tool": "wait", "reason": "user pressed stop"}
    assert "while it ran" in error.message
    assert traj.stop_reason is StopReason.CANCELLED and traj.stop_detail == "user pressed stop"


def test_cancel_stops_a_running_async_tool(run_loop: RunLoop, release: threading.Event) -> None:
    token, started = CancelToken(), threading.Event()
    cancelled: list[str] = []
    tools = make_tools(wait=async_blocking(cancelled, started))
    canceller = cancel_once_started(token, started)
    steps, traj = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([ToolCall("await_", {"x": "a"}), DONE]),
        tools=tools,
        task="t",
        config=LoopConfig(cancel_token=token),
    )
    canceller.join(GENEROUS)
    assert kinds(steps) == [ErrorKind.CANCELLED]
    assert cancelled == ["a"]
    assert traj.stop_reason is StopReason.CANCELLED


@pytest.mark.parametrize("is_async", [False, True], ids=["sync-tool", "async-tool"])
def test_a_tool_that_cancels_the_run_itself_still_gets_its_step(
    run_loop: RunLoop, release: threading.Event, is_async: bool
) -> None:
    # The tool is returning when it cancels: the loop records its result, then stops. The
    # pause after cancel() gives a loop that wrongly stopped waiting the time to do so.
    token = CancelToken()

    def stop_then_return() -> str:
        token.cancel("the tool asked to stop")
        release.wait(0.3)
        return "kept"

    async def astop_then_return() -> str:
        token.cancel("the tool asked to stop")
        await asyncio.sleep(0.3)
        return "kept"

    fn = astop_then_return if is_async else stop_then_return
    tools = make_tools(stop=ToolSpec("stop", "Stop the run.", {}, fn))
    steps, traj = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([ToolCall("stop", {}), DONE]),
        tools=tools,
        task="t",
        config=LoopConfig(cancel_token=token),
    )
    assert kinds(steps) == [None] and steps[0].tool_result.data == "kept"
    assert traj.stop_reason is StopReason.CANCELLED


def test_cancel_stops_a_blocked_call_in_a_concurrent_group(
    run_loop: RunLoop, release: threading.Event
) -> None:
    token, started = CancelToken(), threading.Event()

    def fetch(*, url: str) -> str:
        if url == "slow":
            started.set()
            release.wait(GENEROUS)
        return url

    tools = make_tools(
        fetch=ToolSpec("fetch", "Fetch.", {"url": "str"}, fetch, concurrent_safe=True)
    )
    canceller = cancel_once_started(token, started)
    turn = [ToolCall("fetch", {"url": u}) for u in ("fast", "slow")]
    steps, traj = finishes(
        run_loop,
        release,
        llm=MockLLMBackend([turn, DONE]),
        tools=tools,
        task="t",
        config=LoopConfig(cancel_token=token),
    )
    canceller.join(GENEROUS)
    assert kinds(steps) == [None, ErrorKind.CANCELLED]
    assert traj.stop_reason is StopReason.CANCELLED


def test_cancelling_the_parent_wakes_a_sub_agent_with_its_own_token(
    release: threading.Event,
) -> None:
    parent_token, started = CancelToken(), threading.Event()
    child_tools = [blocking(release, started)]
    canceller = cancel_once_started(parent_token, started)

    def run(**_: Any) -> Any:
        return run_sub_loop(
            MockLLMBackend([ToolCall("wait", {"x": "a"}), DONE]),
            "t",
            child_tools,
            parent=ToolContext(cancel_token=parent_token),
            config=LoopConfig(cancel_token=CancelToken()),  # linked to the parent's
        )

    result = finishes(run, release)
    canceller.join(GENEROUS)
    assert result.stop_reason is StopReason.CANCELLED
    assert kinds(result.trajectory.steps) == [ErrorKind.CANCELLED]


# -- CancelToken.on_cancel ---------------------------------------------------------------------


def test_on_cancel_runs_each_callback_once_and_can_be_undone() -> None:
    token, calls = CancelToken(), list[str]()
    token.on_cancel(lambda: calls.append("a"))
    remove = token.on_cancel(lambda: calls.append("removed"))
    remove()
    token.cancel()
    token.cancel()
    assert calls == ["a"]
    token.on_cancel(lambda: calls.append("late"))  # already cancelled: runs at once
    assert calls == ["a", "late"]


def test_a_raising_callback_does_not_stop_the_others() -> None:
    token, calls = CancelToken(), list[str]()

    def boom() -> None:
        raise RuntimeError("boom")

    token.on_cancel(lambda: calls.append("first"))
    token.on_cancel(boom)
    token.on_cancel(lambda: calls.append("last"))
    with pytest.raises(RuntimeError, match="boom"):
        token.cancel("stop")
    assert sorted(calls) == ["first", "last"] and token.is_cancelled
