"""ToolSpec, @tool and BaseToolRegistry: registration, dispatch, errors, batches, async."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Literal

import pytest

from looplet.cancel import CancelToken
from looplet.errors import ConfigurationError, ErrorKind, ToolError, ToolRegistrationError
from looplet.tools import (
    BaseToolRegistry,
    PreparedCall,
    ToolContext,
    ToolSpec,
    classify_exception,
    tool,
)
from looplet.types import ToolCall, ToolResult


def _greet_spec() -> ToolSpec:
    return ToolSpec(
        name="greet",
        description="Greet someone.",
        parameters={"name": "str"},
        execute=lambda *, name: {"greeting": f"Hello, {name}!"},
    )


class Counter:
    """A tool body that counts its calls, to prove a tool did (not) run."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        return kwargs


def _counted(counter: Counter, parameters: Any = None, name: str = "count") -> BaseToolRegistry:
    spec = ToolSpec(name=name, description="Count.", parameters=parameters, execute=counter)
    return BaseToolRegistry([spec])


# --------------------------------------------------------------------------- ToolSpec


def test_readme_example_registers_and_dispatches() -> None:
    tools = BaseToolRegistry()
    tools.register(_greet_spec())
    result = tools.dispatch(ToolCall("greet", {"name": "Alice"}, call_id="c1"))
    assert result.ok
    assert result.data == {"greeting": "Hello, Alice!"}
    assert result.call_id == "c1"
    assert result.args_summary == "name='Alice'"
    assert result.duration_ms > 0


def test_toolspec_keeps_parameters_and_normalises_the_schema_once() -> None:
    params = {"name": "str", "times": "int?"}
    spec = ToolSpec(name="greet", description="Greet.", parameters=params, execute=print)
    assert spec.parameters is params
    assert spec.to_json_schema() is spec.schema
    assert spec.schema["required"] == ["name"]
    assert spec.parameter_names() == ["name", "times"]
    assert spec.required_parameters() == ["name"]
    assert spec.to_api_schema() == {
        "name": "greet",
        "description": "Greet.",
        "parameters": spec.schema,
    }


def test_spec_text_shows_signature_and_description() -> None:
    assert _greet_spec().spec_text() == "greet(name: str) - Greet someone."


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dotted.name"])
def test_invalid_tool_name_is_rejected_with_the_rule(name: str) -> None:
    with pytest.raises(ToolRegistrationError) as info:
        ToolSpec(name=name, description="d", parameters=None, execute=print)
    assert repr(name) in str(info.value)


def test_invalid_tool_name_suggests_a_valid_one() -> None:
    with pytest.raises(ToolRegistrationError, match=r"letters, digits.*'my_tool'"):
        ToolSpec(name="my tool", description="d", parameters=None, execute=print)


def test_non_callable_execute_is_rejected() -> None:
    with pytest.raises(ToolRegistrationError, match="'t': execute must be a callable"):
        ToolSpec(name="t", description="d", parameters=None, execute="print")  # type: ignore[arg-type]


def test_bad_simple_parameters_fail_at_construction() -> None:
    with pytest.raises(ToolRegistrationError, match=r"'t'.*'n'.*'intt'.*Did you mean 'int'"):
        ToolSpec(name="t", description="d", parameters={"n": "intt"}, execute=print)


# --------------------------------------------------------------------------- @tool


def test_tool_decorator_builds_spec_from_hints_docstring_and_defaults() -> None:
    @tool
    def search(query: str, limit: int = 5, mode: Literal["a", "b"] = "a") -> list[str]:
        """Search the index
        for documents.

        Args:
            query: what to look for.
        """
        return [query] * limit

    assert isinstance(search, ToolSpec)
    assert search.name == "search"
    assert search.description == "Search the index for documents."
    assert search.schema["required"] == ["query"]
    assert search.schema["properties"]["query"]["description"] == "what to look for."
    assert search.schema["properties"]["mode"]["enum"] == ["a", "b"]
    assert search.spec_text().startswith("search(query: str, limit?: int, mode?: 'a' | 'b')")


def test_tool_decorated_function_is_still_callable() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert add(2, 3) == 5
    assert add(a=1, b=1) == 2


def test_tool_decorator_options_override_defaults() -> None:
    @tool(name="find", description="Find things.", concurrent_safe=True, free=True)
    def search(query: str) -> str:
        return query

    assert search.name == "find"
    assert search.description == "Find things."
    assert search.concurrent_safe
    assert search.free


def test_tool_without_any_description_is_rejected() -> None:
    def undocumented(x: int) -> int:
        return x

    with pytest.raises(ToolRegistrationError, match="'undocumented' has no description"):
        tool(undocumented)


def test_tool_decorator_on_async_function_marks_it_async() -> None:
    @tool
    async def fetch(url: str, retries: int = 1) -> str:
        """Fetch a page."""
        return url

    assert fetch.is_async
    assert fetch.schema["required"] == ["url"]
    assert BaseToolRegistry([fetch]).dispatch(ToolCall("fetch", {"url": "u"})).data == "u"


def test_tool_with_unsupported_hint_names_the_parameter() -> None:
    def bad(items: set[str]) -> None:
        """Take a set."""

    with pytest.raises(ToolRegistrationError, match=r"'items'.*set"):
        tool(bad)


# --------------------------------------------------------------------------- registry


def test_duplicate_registration_names_the_tool() -> None:
    tools = BaseToolRegistry([_greet_spec()])
    with pytest.raises(ToolRegistrationError, match="'greet' is already registered"):
        tools.register(_greet_spec())
    assert len(tools) == 1


def test_register_accepts_tool_decorated_functions_and_keeps_order() -> None:
    @tool
    def zeta() -> str:
        """Last letter."""
        return "z"

    tools = BaseToolRegistry()
    tools.register_all([zeta, _greet_spec()])
    assert tools.tool_names == ["zeta", "greet"]
    assert [spec.name for spec in tools] == ["zeta", "greet"]
    assert "greet" in tools
    assert "nope" not in tools
    assert tools.get("zeta") is zeta
    assert tools.get("nope") is None


def test_register_rejects_non_callables() -> None:
    with pytest.raises(ToolRegistrationError, match="expects a ToolSpec"):
        BaseToolRegistry().register(42)  # type: ignore[arg-type]


def test_tool_schemas_are_cached_and_refreshed_on_register() -> None:
    tools = BaseToolRegistry([_greet_spec()])
    first = tools.tool_schemas()
    assert list(first) == [_greet_spec().to_api_schema()]
    assert tools.tool_schemas() is first  # built once, not per model call
    tools.register(ToolSpec(name="done", description="Finish.", parameters=None, execute=print))
    assert [s["name"] for s in tools.tool_schemas()] == ["greet", "done"]


def test_catalog_text_lists_every_tool() -> None:
    tools = BaseToolRegistry([_greet_spec()])
    tools.register(
        ToolSpec(name="done", description="Finish.", parameters={"answer": "str"}, execute=print)
    )
    assert tools.tool_catalog_text() == (
        "greet(name: str) - Greet someone.\ndone(answer: str) - Finish."
    )


def test_is_free_and_is_concurrent_safe() -> None:
    spec = ToolSpec("think", "Think.", None, print, concurrent_safe=True, free=True)
    tools = BaseToolRegistry([spec, _greet_spec()])
    assert tools.is_free("think")
    assert tools.is_concurrent_safe("think")
    assert not tools.is_free("greet")
    assert not tools.is_concurrent_safe("greet")
    assert not tools.is_free("unknown")


# --------------------------------------------------------------------------- dispatch failures


def test_unknown_tool_names_registered_tools_and_suggests_closest() -> None:
    tools = BaseToolRegistry([_greet_spec()])
    for name in ("search", "done"):
        tools.register(ToolSpec(name, f"{name}.", None, print))
    result = tools.dispatch(ToolCall("serach"))
    assert result.error_kind is ErrorKind.UNKNOWN_TOOL
    assert result.error_detail is not None
    assert result.error_detail.message == (
        "the model called 'serach', which is not registered. "
        "Registered tools: greet, search, done. Did you mean 'search'?"
    )


def test_unknown_tool_in_empty_registry_says_none_registered() -> None:
    result = BaseToolRegistry().dispatch(ToolCall("greet"))
    assert result.error_kind is ErrorKind.UNKNOWN_TOOL
    assert result.error is not None
    assert "no tools are registered" in result.error
    assert "register(ToolSpec" in result.error


def test_parse_error_becomes_parse_failure_quoting_raw_text_and_not_run() -> None:
    counter = Counter()
    tools = _counted(counter, {"name": "str"})
    raw = '{"name": "Al' + "x" * 400
    call = ToolCall("count", raw_arguments=raw, parse_error="Unterminated string")
    result = tools.dispatch(call)
    assert result.error_kind is ErrorKind.PARSE
    assert result.error is not None
    assert "not valid JSON" in result.error
    assert "Unterminated string" in result.error
    assert '{"name": "Alxx' in result.error
    assert "x" * 300 not in result.error
    assert "JSON object" in result.error
    assert counter.calls == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, "missing required argument 'name'"),
        ({"name": "a", "nmae": "b"}, "unexpected argument 'nmae' (did you mean 'name'?)"),
        ({"name": 3}, "argument 'name': expected string, got int (3)"),
        ({"name": "a", "n": "3"}, "argument 'n': expected integer, got str ('3')"),
    ],
)
def test_bad_arguments_become_validation_failure_and_tool_is_not_run(
    args: dict[str, Any], expected: str
) -> None:
    counter = Counter()
    tools = _counted(counter, {"name": "str", "n": "int?"})
    result = tools.dispatch(ToolCall("count", args))
    assert result.error_kind is ErrorKind.VALIDATION
    assert result.error is not None
    assert expected in result.error
    assert "count(name: str, n?: int)" in result.error
    assert counter.calls == 0


def test_check_call_reports_without_running() -> None:
    counter = Counter()
    tools = _counted(counter, {"name": "str"})
    problem = tools.check_call(ToolCall("count", {}))
    assert problem is not None
    assert problem.kind is ErrorKind.VALIDATION
    assert tools.check_call(ToolCall("count", {"name": "a"})) is None
    assert counter.calls == 0


def test_double_underscore_arguments_are_stripped_before_validation() -> None:
    counter = Counter()
    tools = _counted(counter, {"name": "str"})
    result = tools.dispatch(ToolCall("count", {"name": "a", "__reasoning": "because"}))
    assert result.ok, result.error
    assert result.data == {"name": "a"}


def _raiser(exc: BaseException) -> BaseToolRegistry:
    def boom() -> None:
        raise exc

    return BaseToolRegistry([ToolSpec("boom", "Raise.", None, boom)])


@pytest.mark.parametrize(
    ("exc", "kind", "retriable"),
    [
        (ValueError("bad value"), ErrorKind.VALIDATION, False),
        (KeyError("k"), ErrorKind.VALIDATION, False),
        (RuntimeError("broken"), ErrorKind.EXECUTION, False),
        (json.JSONDecodeError("Expecting value", "x", 0), ErrorKind.PARSE, False),
        (TimeoutError("slow"), ErrorKind.TIMEOUT, True),
        (PermissionError("no"), ErrorKind.PERMISSION_DENIED, False),
        (ConnectionError("down"), ErrorKind.NETWORK, True),
        (asyncio.CancelledError(), ErrorKind.CANCELLED, False),
    ],
)
def test_tool_exception_becomes_the_right_error_kind(
    exc: BaseException, kind: ErrorKind, retriable: bool
) -> None:
    result = _raiser(exc).dispatch(ToolCall("boom"))
    assert result.error_kind is kind
    assert result.error_detail is not None
    assert result.error_detail.retriable is retriable
    assert result.error_detail.message.startswith(type(exc).__name__)


def test_exception_message_has_type_and_text() -> None:
    result = _raiser(RuntimeError("disk full")).dispatch(ToolCall("boom"))
    assert result.error == "execution: RuntimeError: disk full"


def test_rate_limit_exception_is_recognised_by_class_name() -> None:
    class RateLimitError(Exception):
        pass

    error = classify_exception(RateLimitError("429"))
    assert error.kind is ErrorKind.RATE_LIMIT
    assert error.retriable


def test_tool_error_raised_by_tool_passes_through() -> None:
    raised = ToolError(ErrorKind.PERMISSION_DENIED, "outside workspace", context={"p": "/"})
    result = _raiser(raised).dispatch(ToolCall("boom"))
    assert result.error_detail is raised


# --------------------------------------------------------------------------- ctx and cancel


def test_ctx_is_injected_only_when_the_tool_has_a_ctx_parameter() -> None:
    seen: list[Any] = []

    def with_ctx(*, ctx: ToolContext) -> None:
        seen.append(ctx)

    tools = BaseToolRegistry(
        [
            ToolSpec("with_ctx", "Uses ctx.", None, with_ctx),
            ToolSpec("plain", "No ctx.", None, dict),
        ]
    )
    ctx = ToolContext(session_id="s1")
    assert tools.dispatch(ToolCall("with_ctx"), ctx=ctx).ok
    assert seen == [ctx]
    plain = tools.dispatch(ToolCall("plain"), ctx=ctx)
    assert plain.ok, plain.error
    assert plain.data == {}


def test_default_ctx_is_built_when_none_is_given() -> None:
    seen: list[Any] = []
    tools = BaseToolRegistry([ToolSpec("t", "T.", None, lambda ctx: seen.append(ctx))])
    assert tools.dispatch(ToolCall("t")).ok
    assert isinstance(seen[0], ToolContext)
    assert seen[0].workspace_root == seen[0].cwd


def test_cancelled_token_gives_cancelled_result_without_running() -> None:
    counter = Counter()
    tools = _counted(counter)
    token = CancelToken()
    token.cancel("user pressed stop")
    result = tools.dispatch(ToolCall("count"), ctx=ToolContext(cancel_token=token))
    assert result.error_kind is ErrorKind.CANCELLED
    assert result.error is not None
    assert "user pressed stop" in result.error
    assert counter.calls == 0


def test_a_prepared_call_runs_later_with_clean_kwargs_and_its_ctx() -> None:
    seen: list[Any] = []

    def note(*, text: str, ctx: ToolContext) -> str:
        seen.append(ctx)
        return text.upper()

    tools = BaseToolRegistry([ToolSpec("note", "Note.", {"text": "str"}, note)])
    ctx = ToolContext(session_id="s1")
    prepared = tools.prepare(ToolCall("note", {"text": "hi", "__theory__": "t"}), ctx)
    assert isinstance(prepared, PreparedCall)
    assert dict(prepared.kwargs) == {"text": "hi", "ctx": ctx}  # bookkeeping dropped
    assert seen == []  # preparing runs nothing
    result = tools.run_prepared(prepared)
    assert (result.ok, result.data, seen) == (True, "HI", [ctx])
    assert "note(text='hi'" in repr(prepared)


def test_prepare_returns_the_failure_instead_of_a_prepared_call() -> None:
    tools = BaseToolRegistry([_greet_spec()])
    bad = tools.prepare(ToolCall("greet", {"name": 3}))
    assert isinstance(bad, ToolResult) and bad.error_kind is ErrorKind.VALIDATION
    unknown = tools.prepare(ToolCall("greeet"))
    assert isinstance(unknown, ToolResult) and unknown.error_kind is ErrorKind.UNKNOWN_TOOL


def test_a_call_cancelled_after_it_was_prepared_does_not_run() -> None:
    counter = Counter()
    tools = _counted(counter)
    token = CancelToken()
    prepared = tools.prepare(ToolCall("count"), ToolContext(cancel_token=token))
    assert isinstance(prepared, PreparedCall)
    token.cancel("stopped between screening and running")
    result = tools.run_prepared(prepared)
    assert result.error_kind is ErrorKind.CANCELLED and counter.calls == 0
    assert result.error is not None and "between screening" in result.error
    again = asyncio.run(tools.arun_prepared(prepared))
    assert again.error_kind is ErrorKind.CANCELLED and counter.calls == 0


def test_run_group_runs_prepared_calls_together_and_keeps_order() -> None:
    tools = _meeting_registry(threading.Barrier(2, timeout=5))
    prepared = [tools.prepare(ToolCall("meet", {"i": i})) for i in (0, 1)]
    assert all(isinstance(p, PreparedCall) for p in prepared)
    runnable = [p for p in prepared if isinstance(p, PreparedCall)]
    assert [r.data for r in tools.run_group(runnable)] == [0, 1]
    async_results = asyncio.run(
        tools.arun_group([p for p in prepared if isinstance(p, PreparedCall)])
    )
    assert [r.error for r in async_results] == [None, None]  # to_thread: they meet too
    assert tools.run_group([]) == []


def test_report_progress_calls_the_listener() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    ToolContext(on_progress=lambda m, d: events.append((m, d))).report_progress("half", done=5)
    ToolContext().report_progress("nobody listens")
    assert events == [("half", {"done": 5})]


# --------------------------------------------------------------------------- batches


def _meeting_registry(barrier: threading.Barrier) -> BaseToolRegistry:
    def meet(*, i: int) -> int:
        barrier.wait()  # raises BrokenBarrierError after 5 s if the other call is not running
        return i

    def solo(*, i: int) -> int:
        return i

    return BaseToolRegistry(
        [
            ToolSpec("meet", "Meet.", {"i": "int"}, meet, concurrent_safe=True),
            ToolSpec("solo", "Alone.", {"i": "int"}, solo),
        ]
    )


def test_dispatch_batch_runs_concurrent_safe_calls_together_and_keeps_order() -> None:
    tools = _meeting_registry(threading.Barrier(2, timeout=5))
    calls = [
        ToolCall("meet", {"i": 0}),
        ToolCall("meet", {"i": 1}),
        ToolCall("solo", {"i": 2}),
        ToolCall("meet", {"i": 3}),
        ToolCall("meet", {"i": 4}),
    ]
    results = tools.dispatch_batch(calls)
    assert [r.error for r in results] == [None] * 5
    assert [r.data for r in results] == [0, 1, 2, 3, 4]
    assert [r.tool for r in results] == ["meet", "meet", "solo", "meet", "meet"]


def test_dispatch_batch_reports_failures_in_place() -> None:
    tools = BaseToolRegistry([_greet_spec()])
    results = tools.dispatch_batch(
        [ToolCall("greet", {"name": "a"}), ToolCall("nope"), ToolCall("greet", {"name": "b"})]
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error_kind is ErrorKind.UNKNOWN_TOOL


def test_dispatch_batch_rejects_zero_workers() -> None:
    with pytest.raises(ConfigurationError, match="max_workers"):
        BaseToolRegistry().dispatch_batch([], max_workers=0)


# --------------------------------------------------------------------------- async


def test_adispatch_awaits_async_tools() -> None:
    @tool
    async def double(n: int) -> int:
        """Double a number."""
        await asyncio.sleep(0)
        return n * 2

    result = asyncio.run(BaseToolRegistry([double]).adispatch(ToolCall("double", {"n": 21})))
    assert result.ok, result.error
    assert result.data == 42


def test_adispatch_runs_sync_tools_off_the_event_loop_thread() -> None:
    tools = BaseToolRegistry([ToolSpec("where", "Thread id.", None, threading.get_ident)])

    async def main() -> tuple[int, Any]:
        result = await tools.adispatch(ToolCall("where"))
        return threading.get_ident(), result.data

    loop_thread, tool_thread = asyncio.run(main())
    assert isinstance(tool_thread, int)
    assert tool_thread != loop_thread


def test_adispatch_shares_the_checks_of_dispatch() -> None:
    counter = Counter()
    tools = _counted(counter, {"name": "str"})
    result = asyncio.run(tools.adispatch(ToolCall("count", {"name": 1})))
    assert result.error_kind is ErrorKind.VALIDATION
    assert counter.calls == 0


def test_adispatch_classifies_async_tool_exceptions() -> None:
    @tool
    async def fail() -> None:
        """Fail."""
        raise TimeoutError("upstream")

    result = asyncio.run(BaseToolRegistry([fail]).adispatch(ToolCall("fail")))
    assert result.error_kind is ErrorKind.TIMEOUT


def test_sync_dispatch_runs_async_tools() -> None:
    @tool
    async def hello(name: str) -> str:
        """Say hello."""
        await asyncio.sleep(0)
        return f"hi {name}"

    assert BaseToolRegistry([hello]).dispatch(ToolCall("hello", {"name": "a"})).data == "hi a"


def test_sync_dispatch_of_async_tool_inside_running_loop_says_use_async() -> None:
    runs: list[int] = []

    @tool
    async def hello() -> None:
        """Say hello."""
        runs.append(1)

    async def main() -> Any:
        return BaseToolRegistry([hello]).dispatch(ToolCall("hello"))

    result = asyncio.run(main())
    assert result.error_kind is ErrorKind.EXECUTION
    assert "adispatch" in result.error_detail.message
    assert runs == []


def test_adispatch_batch_runs_concurrent_safe_async_calls_together_in_order() -> None:
    async def main() -> list[Any]:
        arrived = 0
        both_here = asyncio.Event()

        async def meet(*, i: int) -> int:
            nonlocal arrived
            arrived += 1
            if arrived == 2:
                both_here.set()
            await asyncio.wait_for(both_here.wait(), timeout=5)
            return i

        tools = BaseToolRegistry(
            [
                ToolSpec("meet", "Meet.", {"i": "int"}, meet, concurrent_safe=True),
                ToolSpec("solo", "Alone.", {"i": "int"}, lambda *, i: i),
            ]
        )
        calls = [
            ToolCall("meet", {"i": 0}),
            ToolCall("meet", {"i": 1}),
            ToolCall("solo", {"i": 2}),
        ]
        return await tools.adispatch_batch(calls)

    results = asyncio.run(main())
    assert [r.error for r in results] == [None, None, None]
    assert [r.data for r in results] == [0, 1, 2]


def test_adispatch_batch_runs_sync_concurrent_safe_tools_in_parallel_threads() -> None:
    tools = _meeting_registry(threading.Barrier(2, timeout=5))
    calls = [ToolCall("meet", {"i": 0}), ToolCall("meet", {"i": 1})]
    results = asyncio.run(tools.adispatch_batch(calls))
    assert [r.data for r in results] == [0, 1]


# --------------------------------------------------------------------------- subclasses


class LoggingRegistry(BaseToolRegistry):
    """Customises dispatch() the way code written for the original registry does."""

    def __init__(self, tools: Any = ()) -> None:
        super().__init__(tools)
        self.log: list[str] = []

    def dispatch(self, call: ToolCall, *, ctx: ToolContext | None = None) -> ToolResult:  # type: ignore[override]
        self.log.append(f"sync {call.tool} step={ctx.step if ctx else None}")
        return super().dispatch(call, ctx=ctx)

    async def adispatch(self, call: ToolCall, *, ctx: ToolContext | None = None) -> ToolResult:  # type: ignore[override]
        self.log.append(f"async {call.tool}")
        return await super().adispatch(call, ctx=ctx)


def test_the_loop_runs_calls_through_a_subclass_dispatch() -> None:
    from looplet import LoopConfig, async_composable_loop, composable_loop
    from looplet.testing import AsyncMockLLMBackend, MockLLMBackend

    script = [ToolCall("greet", {"name": "Ann"}), ToolCall("greet", {"name": "Bo"})]
    tools = LoggingRegistry([_greet_spec()])
    loop = composable_loop(
        llm=MockLLMBackend(script), tools=tools, task="t", config=LoopConfig(max_steps=2)
    )
    steps = list(loop)
    assert [s.tool_result.data for s in steps] == [
        {"greeting": "Hello, Ann!"},
        {"greeting": "Hello, Bo!"},
    ]
    assert tools.log == ["sync greet step=1", "sync greet step=2"]

    async def run_async() -> list[Any]:
        run = async_composable_loop(
            llm=AsyncMockLLMBackend(script), tools=tools, task="t", config=LoopConfig(max_steps=2)
        )
        return [s async for s in run]

    assert len(asyncio.run(run_async())) == 2
    assert tools.log[2:] == ["async greet", "async greet"]
    # A plain registry is not rerouted: the loop runs its prepared calls directly.
    assert BaseToolRegistry.run_prepared is not LoggingRegistry.run_prepared
    assert tools.dispatch(ToolCall("greet", {"name": "Cy"})).data == {"greeting": "Hello, Cy!"}
