"""MCP time-outs cover the whole call, writing the request included.

``raw_server.py --deaf`` answers ``initialize`` and ``tools/list``, then stops reading its
stdin for good. A request larger than the pipe buffer then blocks whoever writes it; before
the fix the write came before the clock started and a call blocked forever. Each call here
runs under a watchdog thread so that old behaviour fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from looplet import ConfigurationError, ErrorKind, StopReason, ToolCall, ToolError
from looplet.mcp import AsyncMCPToolAdapter, MCPToolAdapter
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from tests.conftest import make_tools, run_sync
from tests.test_mcp import SHORT, assert_stopped, server

BIG = "x" * (2 << 20)  # 2 MiB: far more than a pipe (64 KiB on Linux) holds
WATCHDOG = 30.0  # generous: only a call that never returns trips it
T = TypeVar("T")


def within_watchdog(run: Callable[[], T]) -> T:
    """``run()`` on a daemon thread; fails the test if it has not returned after WATCHDOG s."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run()
        except BaseException as exc:  # handed to the test's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="mcp-watchdog", daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    if thread.is_alive():
        pytest.fail(f"the MCP call was still blocked after {WATCHDOG:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def deaf_server() -> list[str]:
    return server("raw_server", "--deaf")


def raised(call: Callable[[], object]) -> ToolError:
    """The ToolError ``call()`` raises."""
    with pytest.raises(ToolError) as info:
        call()
    return info.value


def check_not_read(error: ToolError, timeout: float) -> None:
    assert error.kind is ErrorKind.TIMEOUT
    assert f"did not read the request tools/call 'echo' within {timeout:g}s" in error.message
    assert "so it was stopped" in error.message
    assert "deaf: no longer reading stdin" in error.message  # its stderr tail
    assert error.context["timeout"] == timeout and error.context["tool"] == "echo"


def check_fails_fast(error: ToolError) -> None:
    assert error.kind is ErrorKind.EXECUTION
    assert "'echo' was not called" in error.message and "did not read the request" in error.message


# --------------------------------------------------------------------------- sync adapter


def test_a_request_the_server_does_not_read_times_out_and_stops_it() -> None:
    with MCPToolAdapter(deaf_server(), timeout=SHORT) as adapter:
        error = within_watchdog(lambda: raised(lambda: adapter.call_tool("echo", {"text": BIG})))
        check_not_read(error, SHORT)
        assert_stopped(adapter)
        later = within_watchdog(lambda: raised(lambda: adapter.call_tool("echo", {"text": "x"})))
        check_fails_fast(later)
    assert_stopped(adapter)


def test_a_per_call_timeout_overrides_the_adapters() -> None:
    with MCPToolAdapter(deaf_server(), timeout=600) as adapter:
        with pytest.raises(ConfigurationError, match="positive number of seconds, got -1"):
            adapter.call_tool("echo", {"text": "x"}, timeout=-1)
        error = within_watchdog(
            lambda: raised(lambda: adapter.call_tool("echo", {"text": BIG}, timeout=SHORT))
        )
        check_not_read(error, SHORT)
        assert adapter.timeout == 600  # the adapter's own is unchanged
    assert_stopped(adapter)


def test_a_small_request_it_does_not_read_times_out_waiting_for_the_answer() -> None:
    # The request fits in the pipe, so the write succeeds; the wait for the answer times out.
    with MCPToolAdapter(deaf_server(), timeout=SHORT) as adapter:
        error = within_watchdog(lambda: raised(lambda: adapter.call_tool("echo", {"text": "x"})))
        assert error.kind is ErrorKind.TIMEOUT
        assert "did not answer tools/call 'echo' within 0.5s" in error.message
    assert_stopped(adapter)


def test_calls_queued_behind_a_blocked_write_keep_their_own_deadlines() -> None:
    with MCPToolAdapter(deaf_server(), timeout=SHORT) as adapter:
        start = threading.Barrier(4)
        errors: list[ToolError] = []

        def call() -> None:
            start.wait()
            errors.append(raised(lambda: adapter.call_tool("echo", {"text": BIG})))

        def all_calls() -> None:
            threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        within_watchdog(all_calls)
        assert len(errors) == 4
        # Each timed out itself, or (started after the first one stopped the server) failed fast.
        assert any(error.kind is ErrorKind.TIMEOUT for error in errors)
        assert all("did not read the request tools/call 'echo'" in e.message for e in errors)
    assert_stopped(adapter)


def test_a_server_that_does_not_read_our_answers_to_its_requests_is_stopped() -> None:
    # The reader thread answers each of its pings; once the pipe is full, it waits for the
    # server only the adapter's timeout (the call itself would wait longer).
    with MCPToolAdapter(server("raw_server"), timeout=SHORT) as adapter:
        error = within_watchdog(
            lambda: raised(lambda: adapter.call_tool("ping_flood", timeout=WATCHDOG / 2))
        )
        assert error.kind is ErrorKind.TIMEOUT
        assert "did not read our answer to its request within 0.5s" in error.message
        assert error.context["tool"] == "ping_flood"
    assert_stopped(adapter)


def test_the_loop_records_the_timeout_and_goes_on() -> None:
    script = [ToolCall("echo", {"text": BIG}), ToolCall("done", {"answer": "went on"})]
    with MCPToolAdapter(deaf_server(), timeout=SHORT) as adapter:
        tools = make_tools()
        adapter.register_all(tools)
        steps, trajectory = within_watchdog(
            lambda: run_sync(llm=MockLLMBackend(script), tools=tools, task="echo")
        )
    assert [step.tool_result.error_kind for step in steps] == [ErrorKind.TIMEOUT, None]
    assert steps[1].tool_result.data == {"answer": "went on"}
    assert trajectory.stop_reason is StopReason.DONE
    assert_stopped(adapter)


# --------------------------------------------------------------------------- async adapter


def test_async_a_request_the_server_does_not_read_times_out_and_stops_it() -> None:
    async def go() -> None:
        async with AsyncMCPToolAdapter(deaf_server(), timeout=600) as adapter:
            with pytest.raises(ToolError) as info:
                await adapter.call_tool("echo", {"text": BIG}, timeout=SHORT)
            check_not_read(info.value, SHORT)
            assert_stopped(adapter)
            with pytest.raises(ToolError) as info:
                await adapter.call_tool("echo", {"text": "x"})
            check_fails_fast(info.value)

    within_watchdog(lambda: asyncio.run(go()))


def test_async_concurrent_calls_behind_a_blocked_write_time_out() -> None:
    async def go() -> list[BaseException | None]:
        async with AsyncMCPToolAdapter(deaf_server(), timeout=SHORT) as adapter:
            calls = [adapter.call_tool("echo", {"text": BIG}) for _ in range(3)]
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert_stopped(adapter)
        return results

    errors = within_watchdog(lambda: asyncio.run(go()))
    assert all(isinstance(error, ToolError) for error in errors)
    for error in errors:
        assert isinstance(error, ToolError)
        assert error.kind is ErrorKind.TIMEOUT
        assert "did not read the request tools/call 'echo' within 0.5s" in error.message


def test_async_loop_records_the_timeout_and_goes_on() -> None:
    from looplet import async_composable_loop

    script = [ToolCall("echo", {"text": BIG}), ToolCall("done", {"answer": "went on"})]

    async def go() -> tuple[list[Any], Any]:
        async with AsyncMCPToolAdapter(deaf_server(), timeout=SHORT) as adapter:
            tools = make_tools()
            adapter.register_all(tools)
            loop = async_composable_loop(llm=AsyncMockLLMBackend(script), tools=tools, task="x")
            steps = [step async for step in loop]
        assert_stopped(adapter)
        return steps, loop.trajectory

    steps, trajectory = within_watchdog(lambda: asyncio.run(go()))
    assert [step.tool_result.error_kind for step in steps] == [ErrorKind.TIMEOUT, None]
    assert trajectory.stop_reason is StopReason.DONE
