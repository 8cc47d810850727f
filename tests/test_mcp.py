"""MCPToolAdapter / AsyncMCPToolAdapter against real MCP server processes.

The servers live in tests/mcp_servers/: ``sdk_tools.py`` and ``sdk_paged.py`` are built with
the official MCP SDK (a test-only dependency); ``raw_server.py`` misbehaves on purpose using
only the standard library. Every test checks that the server process is gone afterwards.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from looplet import (
    BaseToolRegistry,
    ConfigurationError,
    ErrorKind,
    StopReason,
    ToolCall,
    ToolError,
    async_composable_loop,
)
from looplet.mcp import SUPPORTED_PROTOCOL_VERSIONS, AsyncMCPToolAdapter, MCPError, MCPToolAdapter
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from tests.conftest import make_tools, run_async, run_sync

SERVERS = Path(__file__).resolve().parent / "mcp_servers"
SHORT = 0.5  # the timeout set by tests that wait for one on purpose
HAVE_SDK = importlib.util.find_spec("mcp") is not None

Adapter = MCPToolAdapter | AsyncMCPToolAdapter


def server(name: str, *args: str) -> list[str]:
    """The argument list that starts tests/mcp_servers/<name>.py with this interpreter."""
    if name.startswith("sdk_") and not HAVE_SDK:
        pytest.skip("the SDK-built servers need the test-only 'mcp' package (the dev extra)")
    return [sys.executable, str(SERVERS / f"{name}.py"), *args]


def assert_stopped(adapter: Adapter) -> None:
    """The server process has exited and been reaped, and nothing of its group still runs."""
    assert adapter.returncode is not None
    if os.name == "posix" and adapter.pid is not None:
        deadline = time.monotonic() + 2  # a SIGKILL takes a moment to land
        while live_group_members(adapter.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert live_group_members(adapter.pid) == []


def live_group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies (killed children stay zombies
    until init reaps them, which can take a second)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: any member, zombie or not, counts
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # it exited while we looked
            continue
        fields = stat.rpartition(")")[2].split()
        if fields and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def call_error(adapter: MCPToolAdapter, name: str, **arguments: Any) -> ToolError:
    with pytest.raises(ToolError) as info:
        adapter.call_tool(name, arguments)
    return info.value


@pytest.fixture(scope="module")
def sdk() -> Iterator[MCPToolAdapter]:
    """One well-behaved SDK server for the tests that do not kill it."""
    with MCPToolAdapter(server("sdk_tools")) as adapter:
        yield adapter
    assert_stopped(adapter)


@pytest.fixture
def raw() -> Iterator[MCPToolAdapter]:
    """A fresh raw server, with garbage on its stdout from the start."""
    with MCPToolAdapter(server("raw_server", "--banner")) as adapter:
        yield adapter
    assert_stopped(adapter)


# --------------------------------------------------------------------------- a good server


def test_sdk_server_tools_become_specs_with_full_input_schemas(sdk: MCPToolAdapter) -> None:
    specs = {spec.name: spec for spec in sdk.tools()}
    assert list(specs) == ["add", "echo", "forecast", "fail", "crash"]
    assert sdk.protocol_version == SUPPORTED_PROTOCOL_VERSIONS[0]
    assert sdk.server_info["name"] == "looplet-test-tools"
    echo = specs["echo"]
    assert echo.description == "Repeat a text."
    # Nothing is flattened: defaults, titles and required flags survive.
    assert echo.schema["properties"]["times"] == {"default": 1, "title": "Times", "type": "integer"}
    assert echo.required_parameters() == ["text"]
    assert echo.spec_text().startswith("echo(text: str")


def test_call_returns_structured_content_when_the_server_sends_it(sdk: MCPToolAdapter) -> None:
    assert sdk.call_tool("forecast", {"city": "Oslo"}) == {"city": "Oslo", "celsius": 21}
    assert sdk.call_tool("add", {"a": 2, "b": 3}) == {"result": 5}


def test_is_error_result_raises_execution_error_with_the_servers_text(sdk: MCPToolAdapter) -> None:
    error = call_error(sdk, "fail", reason="no budget")
    assert error.kind is ErrorKind.EXECUTION
    assert error.message == "Error executing tool fail: refused: no budget"
    assert error.context["tool"] == "fail"


def test_registry_checks_arguments_against_the_mcp_schema(sdk: MCPToolAdapter) -> None:
    registry = BaseToolRegistry(sdk.tools())
    bad = registry.dispatch(ToolCall("add", {"a": "two", "b": 3}))
    assert bad.error_kind is ErrorKind.VALIDATION
    good = registry.dispatch(ToolCall("echo", {"text": "hi", "times": 2}))
    assert good.ok and good.data == {"result": "hi hi"}


def test_calls_from_several_threads_get_their_own_answers(sdk: MCPToolAdapter) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        sums = list(pool.map(lambda n: sdk.call_tool("add", {"a": n, "b": 1}), range(24)))
    assert sums == [{"result": n + 1} for n in range(24)]


def test_tools_list_follows_next_cursor_and_applies_the_prefix() -> None:
    with MCPToolAdapter(server("sdk_paged"), name_prefix="paged.") as adapter:
        names = [spec.name for spec in adapter.tools()]
        # Five tools over three pages; '.' is not allowed in a tool name, so it becomes '_'.
        assert names == [f"paged_tool_{n}" for n in range(5)]
        registry = BaseToolRegistry()
        assert adapter.register_all(registry) == adapter.tools()
        result = registry.dispatch(ToolCall("paged_tool_3", {"x": 7}))
        assert result.data == 'tool 3 called with {"x": 7}'  # text content, joined
    assert_stopped(adapter)


def test_tools_starts_the_server_and_close_stops_it() -> None:
    adapter = MCPToolAdapter(server("raw_server"))
    assert adapter.returncode is None and adapter.pid is None
    assert len(adapter.tools()) == 8
    assert adapter.returncode is None
    adapter.close()
    assert_stopped(adapter)
    adapter.close()  # twice is fine
    error = call_error(adapter, "echo", text="x")
    assert error.kind is ErrorKind.EXECUTION and "closed" in error.message
    with pytest.raises(MCPError, match="closed"):
        adapter.start()


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_close_stops_a_server_that_ignores_stdin_closing_and_its_children() -> None:
    adapter = MCPToolAdapter(server("raw_server", "--child", "--linger"))
    adapter.start()
    start = time.monotonic()
    adapter.close()  # stdin closed, a grace period, then SIGTERM to the process group
    assert 1.5 < time.monotonic() - start < 5
    assert adapter.returncode == -15
    assert_stopped(adapter)  # the child, in the same group, is gone too


def test_env_and_cwd_reach_the_server(tmp_path: Path) -> None:
    env = {"LOOPLET_MCP_TEST": "from the test"}
    with MCPToolAdapter(server("raw_server"), env=env, cwd=tmp_path) as adapter:
        where = json.loads(adapter.call_tool("where"))
    assert where == {"cwd": str(tmp_path), "env": "from the test"}


def test_an_older_version_chosen_by_the_server_is_accepted(raw: MCPToolAdapter) -> None:
    assert raw.protocol_version == "2025-06-18"
    assert raw.server_info == {"name": "raw", "version": "1.0"}


def test_non_text_content_is_described_not_dropped(raw: MCPToolAdapter) -> None:
    assert raw.call_tool("image") == "[image content, image/png]"


# --------------------------------------------------------------------------- failures in calls


def test_server_dying_mid_call_reports_exit_code_and_stderr_then_fails_fast() -> None:
    with MCPToolAdapter(server("sdk_tools")) as adapter:
        error = call_error(adapter, "crash")
        assert error.kind is ErrorKind.EXECUTION
        assert "exited with code 3 during tools/call 'crash'" in error.message
        assert "fatal: simulated crash in the crash tool" in error.message
        assert error.context["exit_code"] == 3
        later = call_error(adapter, "add", a=1, b=2)  # fails at once: nothing is sent
        assert later.kind is ErrorKind.EXECUTION
        assert "'add' was not called" in later.message and "exited with code 3" in later.message
    assert_stopped(adapter)


def test_a_call_without_answer_times_out_and_the_server_is_killed(raw: MCPToolAdapter) -> None:
    raw.timeout = SHORT
    start = time.monotonic()
    error = call_error(raw, "hang", text="x")
    assert SHORT <= time.monotonic() - start < SHORT + 2
    assert error.kind is ErrorKind.TIMEOUT
    assert "did not answer tools/call 'hang' within 0.5s" in error.message
    assert_stopped(raw)
    later = call_error(raw, "echo", text="x")
    assert later.kind is ErrorKind.EXECUTION and "within 0.5s" in later.message


def test_garbage_on_stdout_is_skipped(raw: MCPToolAdapter) -> None:
    # The banner came before initialize's answer; echo prints a debug line before its own.
    assert raw.call_tool("echo", {"text": "still works"}) == "still works"


def test_response_with_an_unknown_id_is_ignored(raw: MCPToolAdapter) -> None:
    assert raw.call_tool("stray") == "the real answer"


def test_timeout_names_what_was_skipped_while_waiting(raw: MCPToolAdapter) -> None:
    raw.call_tool("echo", {"text": "x"})
    raw.timeout = SHORT
    error = call_error(raw, "misdirected")
    assert error.kind is ErrorKind.TIMEOUT
    assert error.context["unmatched_response_ids"] == ["not-4"]
    assert error.context["skipped_lines"] == 3
    assert "'Starting raw server v1.0 ...'" in error.message
    assert "log to stderr" in error.message


def test_server_requests_get_method_not_found_except_ping(raw: MCPToolAdapter) -> None:
    answers = json.loads(raw.call_tool("ask_client"))
    assert answers["srv-1"] == {"jsonrpc": "2.0", "result": {}}
    assert answers["srv-2"]["error"]["code"] == -32601


def test_stderr_is_drained_and_only_its_tail_kept() -> None:
    # 512 KiB of stderr before the initialize answer: far more than a pipe holds.
    command = server("raw_server", "--stderr-flood", "512")
    with MCPToolAdapter(command) as adapter:
        adapter.timeout = SHORT
        error = call_error(adapter, "hang")
    tail = error.context["stderr_tail"]
    assert tail.endswith("last stderr line")
    assert len(tail.splitlines()) <= 12 and len(tail) < 16_000
    assert_stopped(adapter)


# --------------------------------------------------------------------------- failures to start


def test_a_missing_program_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="'looplet-no-such-mcp-server' was not found"):
        MCPToolAdapter(["looplet-no-such-mcp-server", "--stdio"]).start()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": "python server.py"}, "argument list"),
        ({"command": []}, "non-empty list"),
        ({"command": ["x"], "timeout": 0}, "positive number"),
        ({"command": ["x"], "env": {"N": 1}}, "'N' maps to 1"),
        ({"command": ["x"], "cwd": "/no/such/dir"}, "not an existing directory"),
    ],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MCPToolAdapter(**kwargs)


def test_no_valid_answer_to_initialize_is_a_clear_error() -> None:
    adapter = MCPToolAdapter(server("raw_server", "--banner", "--mute"), timeout=SHORT)
    with pytest.raises(MCPError, match=r"did not answer initialize within 0\.5s") as info:
        adapter.start()
    assert "2 line(s) that are not JSON-RPC messages" in str(info.value)
    assert_stopped(adapter)


def test_an_unsupported_protocol_version_is_a_clear_error() -> None:
    adapter = MCPToolAdapter(server("raw_server", "--version", "1999-01-01"))
    with pytest.raises(MCPError, match="protocol version '1999-01-01', which looplet does not"):
        adapter.start()
    assert_stopped(adapter)


def test_a_server_exiting_at_start_shows_its_exit_code_and_stderr() -> None:
    code = "import sys; sys.stderr.write('config file missing\\n'); sys.exit(2)"
    adapter = MCPToolAdapter([sys.executable, "-c", code])
    with pytest.raises(MCPError, match="exited with code 2 during initialize") as info:
        adapter.start()
    assert info.value.returncode == 2
    assert info.value.stderr_tail == "config file missing"
    assert_stopped(adapter)


# --------------------------------------------------------------------------- in the loop

SCRIPT = [
    ToolCall("add", {"a": 2, "b": 3}),
    ToolCall("fail", {"reason": "no"}),
    ToolCall("crash", {}),
    ToolCall("add", {"a": 1, "b": 1}),
    ToolCall("done", {"answer": "finished"}),
]
EXPECTED_STEPS = [
    "#1 ✓ add(a=2, b=3) → 1 keys",
    "#2 ✗ fail(reason='no') → ERROR: execution: Error executing tool fail: refused: no",
    "#3 ✗ crash() → ERROR: execution: MCP server",
    "#4 ✗ add(a=1, b=1) → ERROR: execution: tool 'add' was not called",
    "#5 ✓ done(answer='finished') → 1 keys",
]


def check_steps(steps: list[Any], trajectory: Any) -> None:
    lines = [step.pretty() for step in steps]
    assert len(lines) == len(EXPECTED_STEPS)
    for line, expected in zip(lines, EXPECTED_STEPS, strict=True):
        assert line.startswith(expected), line
    assert steps[0].tool_result.data == {"result": 5}
    assert trajectory.stop_reason is StopReason.DONE


def test_mcp_tools_drive_composable_loop() -> None:
    with MCPToolAdapter(server("sdk_tools")) as adapter:
        tools = make_tools()
        adapter.register_all(tools)
        steps, trajectory = run_sync(llm=MockLLMBackend(SCRIPT), tools=tools, task="add")
    check_steps(steps, trajectory)
    assert_stopped(adapter)


def test_async_mcp_tools_drive_async_composable_loop() -> None:
    async def go() -> tuple[list[Any], Any]:
        async with AsyncMCPToolAdapter(server("sdk_tools")) as adapter:
            tools = make_tools()
            specs = adapter.register_all(tools)
            assert all(spec.is_async for spec in specs)
            loop = async_composable_loop(llm=AsyncMockLLMBackend(SCRIPT), tools=tools, task="add")
            steps = [step async for step in loop]
        assert_stopped(adapter)
        return steps, loop.trajectory

    check_steps(*asyncio.run(go()))


def test_sync_adapter_tools_also_work_under_the_async_loop() -> None:
    script = [ToolCall("echo", {"text": "hi"}), ToolCall("done", {"answer": "ok"})]
    with MCPToolAdapter(server("raw_server")) as adapter:
        tools = make_tools(**{spec.name: spec for spec in adapter.tools()})
        steps, _ = run_async(llm=MockLLMBackend(script), tools=tools, task="echo")
    assert [step.tool_result.data for step in steps] == ["hi", {"answer": "ok"}]


# --------------------------------------------------------------------------- the async adapter


def test_async_adapter_pages_times_out_answers_server_requests_and_stops() -> None:
    async def go() -> None:
        async with AsyncMCPToolAdapter(server("sdk_paged"), name_prefix="p_") as paged:
            assert [spec.name for spec in paged.tools()] == [f"p_tool_{n}" for n in range(5)]
            assert await paged.call_tool("tool_0", {"x": 1}) == 'tool 0 called with {"x": 1}'
        assert_stopped(paged)

        async with AsyncMCPToolAdapter(server("raw_server", "--banner")) as raw:
            answers = json.loads(await raw.call_tool("ask_client"))
            assert answers["srv-1"]["result"] == {}
            assert answers["srv-2"]["error"]["code"] == -32601
            assert await raw.call_tool("stray") == "the real answer"
            raw.timeout = SHORT
            with pytest.raises(ToolError) as info:
                await raw.call_tool("hang")
            assert info.value.kind is ErrorKind.TIMEOUT
            assert "did not answer tools/call 'hang' within 0.5s" in info.value.message
            assert_stopped(raw)
            with pytest.raises(ToolError, match="was not called"):
                await raw.call_tool("echo", {"text": "x"})

    asyncio.run(go())


def test_async_adapter_start_failures() -> None:
    async def go() -> None:
        with pytest.raises(ConfigurationError, match="'looplet-no-such-mcp-server' was not"):
            await AsyncMCPToolAdapter(["looplet-no-such-mcp-server"]).start()
        mute = AsyncMCPToolAdapter(server("raw_server", "--mute"), timeout=SHORT)
        with pytest.raises(MCPError, match="did not answer initialize"):
            await mute.start()
        assert_stopped(mute)
        unstarted = AsyncMCPToolAdapter(server("raw_server"))
        with pytest.raises(MCPError, match="not started"):
            unstarted.tools()

    asyncio.run(go())


# --------------------------------------------------------------------------- the wire format


def test_each_message_is_one_json_line_without_headers() -> None:
    from looplet._jsonrpc import JsonRpcSession

    session = JsonRpcSession()
    request_id, line = session.request("tools/call", {"name": "echo", "text": "two\nlines"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert not line.startswith(b"Content-Length")
    assert json.loads(line) == {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "echo", "text": "two\nlines"},
    }


def test_session_reads_batches_and_skips_json_that_is_not_jsonrpc() -> None:
    from looplet._jsonrpc import JsonRpcSession, Reply

    session = JsonRpcSession()
    first, _ = session.request("a")
    second, _ = session.request("b")
    batch = [
        {"jsonrpc": "2.0", "id": second, "result": 2},
        {"jsonrpc": "2.0", "id": first, "error": {"code": -1, "message": "no"}},
        {"jsonrpc": "2.0", "method": "notifications/progress"},
    ]
    assert session.receive(json.dumps(batch).encode()) == [
        Reply(second, result=2),
        Reply(first, error={"code": -1, "message": "no"}),
    ]
    assert session.receive(b'{"id": 1, "result": 1}\n') == []  # no "jsonrpc": "2.0"
    assert session.receive(json.dumps({"jsonrpc": "2.0", "id": first, "result": 3}).encode()) == []
    assert session.notes() == {
        "skipped_lines": 1,
        "skipped_samples": ['{"id": 1, "result": 1}'],
        "unmatched_response_ids": [first],
    }
