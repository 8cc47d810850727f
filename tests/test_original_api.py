"""Code written against the original looplet 0.1.7 (its README, tutorial, hook guide and
docstrings), run unchanged against this version: names, import paths and call shapes.

Each test body is written the way the original documents its API (``parameters={"path":
"file path"}``, ``MockLLMBackend.calls == 1``, ``engine.deny("bash", arg_matcher=...)``,
``from looplet.types import DefaultState``...). What is gone must say so and point at
``docs/migration.md``, which must list every original public name.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from looplet import (
    BaseToolRegistry,
    DefaultState,
    ErrorKind,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolSpec,
    composable_loop,
)
from looplet._moved import GONE
from looplet.errors import ConfigurationError, ToolRegistrationError
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend

ROOT = Path(__file__).resolve().parent.parent

#: looplet.__all__ of the original 0.1.7, in its order.
ORIGINAL_ALL = [
    "__version__",
    "composable_loop",
    "LoopConfig",
    "LoopHook",
    "Step",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "BaseToolRegistry",
    "Skill",
    "DefaultState",
    "LLMBackend",
    "HookDecision",
    "Allow",
    "Block",
    "Continue",
    "Deny",
    "Stop",
    "InjectContext",
    "preview_prompt",
    "OpenAIBackend",
    "AnthropicBackend",
    "NativeToolBackend",
    "MCPToolAdapter",
    "CompactService",
    "CompactOutcome",
    "TruncateCompact",
    "SummarizeCompact",
    "PruneToolResults",
    "compact_chain",
    "run_compact",
    "ContextBudget",
    "ThresholdCompactHook",
    "CachePolicy",
    "StaticMemorySource",
    "CallableMemorySource",
    "ApprovalHook",
    "PermissionEngine",
    "PermissionHook",
    "PermissionRule",
    "PermissionDecision",
    "FileCheckpointStore",
    "TrajectoryRecorder",
    "ProvenanceSink",
    "replay_loop",
    "StreamingHook",
    "Tracer",
    "TracingHook",
    "MetricsCollector",
    "MetricsHook",
    "EvalHook",
    "EvalContext",
    "EvalResult",
    "eval_discover",
    "eval_run",
    "eval_run_batch",
    "eval_mark",
    "eval_cli",
    "MockLLMBackend",
    "AsyncMockLLMBackend",
    "DomainAdapter",
    "emit_event",
    "LifecycleEvent",
    "EventPayload",
    "CancelToken",
    "ToolContext",
    "ToolError",
    "ErrorKind",
    "SessionLog",
    "Conversation",
    "Message",
    "run_sub_loop",
    "AgentPreset",
    "coding_agent_preset",
    "research_agent_preset",
    "minimal_preset",
]


def reply(tool: str, **args: Any) -> str:
    """One model turn in the original's JSON-text protocol."""
    import json

    return json.dumps({"tool": tool, "args": args, "reasoning": f"call {tool}"})


def echo_tools() -> BaseToolRegistry:
    tools = BaseToolRegistry()
    tools.register(
        ToolSpec(
            name="echo",
            description="Echo the text back.",
            parameters={"text": "text to echo"},
            execute=lambda *, text: {"echo": text},
        )
    )
    tools.register(
        ToolSpec(
            name="done",
            description="Finish.",
            parameters={"answer": "the final answer"},
            execute=lambda *, answer: {"answer": answer},
        )
    )
    return tools


# --------------------------------------------------------------------------- 1. parameters


def test_description_strings_are_string_parameters_and_run_in_the_loop() -> None:
    llm = MockLLMBackend(responses=[reply("echo", text="hi"), reply("done", answer="ok")])
    steps = list(
        composable_loop(
            llm=llm,
            tools=echo_tools(),
            state=DefaultState(max_steps=5),
            config=LoopConfig(max_steps=5),
            task={"goal": "Echo hi, then finish."},
        )
    )
    assert [s.pretty().split(" [")[0] for s in steps] == [
        "#1 ✓ echo(text='hi') → 1 keys",
        "#2 ✓ done(answer='ok') → 1 keys",
    ]
    assert steps[0].tool_result.error_message is None and not steps[0].tool_result.error_retriable
    offered = {t["name"]: t["parameters"] for t in llm.requests[0].tools}
    assert offered["echo"]["properties"] == {
        "text": {"type": "string", "description": "text to echo"}
    }
    assert offered["echo"]["required"] == ["text"]


def test_types_descriptions_and_optional_descriptions_mix() -> None:
    spec = ToolSpec(
        name="read",
        description="Read a file.",
        parameters={"path": "file path", "limit": "int?", "encoding": "(optional) the encoding"},
        execute=lambda **kw: kw,
    )
    assert spec.schema["properties"]["path"] == {"type": "string", "description": "file path"}
    assert spec.schema["properties"]["limit"] == {"type": "integer"}
    assert spec.required_parameters() == ["path"]
    assert spec.parameter_names() == ["path", "limit", "encoding"]
    assert not spec.is_json_schema
    assert "read(" in spec.spec_text()


@pytest.mark.parametrize(
    ("typo", "meant"), [("strr", "str"), ("integr", "integer"), ("dcit", "dict")]
)
def test_a_one_word_typo_of_a_type_is_still_refused(typo: str, meant: str) -> None:
    with pytest.raises(ToolRegistrationError, match=rf"'{typo}'\. Did you mean '{meant}'\?"):
        ToolSpec(name="t", description="d", parameters={"x": typo}, execute=print)


# --------------------------------------------------------------------------- 2. import paths


def test_the_original_submodule_imports_work() -> None:
    import looplet
    from looplet.conversation import Message
    from looplet.loop import LoopConfig as LoopConfigFromLoop
    from looplet.loop import LoopHook
    from looplet.loop import composable_loop as loop_from_loop
    from looplet.parse import (
        parse_multi_tool_calls,
        parse_native_tool_use,
        parse_tool_call,
        to_text,
    )
    from looplet.streaming import StreamingHook
    from looplet.tools import BaseToolRegistry as Registry
    from looplet.tools import ToolSpec as Spec
    from looplet.tools import register_think_tool
    from looplet.types import (
        AgentState,
        CancelToken,
        LLMBackend,
        Step,
        ToolContext,
        ToolError,
        ToolResult,
    )
    from looplet.types import (
        DefaultState as State,
    )
    from looplet.types import (
        ErrorKind as Kind,
    )
    from looplet.types import (
        ToolCall as Call,
    )

    for module in ("looplet.session", "looplet.context", "looplet.presets"):
        importlib.import_module(module)
    assert (LoopConfigFromLoop, loop_from_loop, Spec, Registry) == (
        LoopConfig,
        composable_loop,
        ToolSpec,
        BaseToolRegistry,
    )
    assert (State, Kind, Call) == (DefaultState, ErrorKind, ToolCall)
    with pytest.deprecated_call():  # moved to their modules; the original's names still work
        assert Message is looplet.Message and StreamingHook is looplet.StreamingHook
        assert LLMBackend is looplet.LLMBackend
    assert LoopHook is looplet.LoopHook
    assert isinstance(State(), AgentState)
    assert {CancelToken, ToolContext, ToolError, ToolResult, Step} <= {
        getattr(looplet, n)
        for n in ("CancelToken", "ToolContext", "ToolError", "ToolResult", "Step")
    }
    assert callable(register_think_tool) and callable(to_text)
    calls = parse_multi_tool_calls(
        '{"tools": [{"tool": "a", "args": {}}, {"tool": "b"}], "theory": "t"}'
    )
    assert [(c.tool, c.args, c.reasoning) for c in calls] == [("a", {}, "t"), ("b", {}, "t")]
    call = parse_tool_call('```json\n{"tool": "greet", "args": {"name": "Al"}}\n```')
    assert call is not None and (call.tool, call.args) == ("greet", {"name": "Al"})
    assert parse_tool_call("no call here") is None
    native = parse_native_tool_use(
        [
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "t1", "name": "greet", "input": {"name": "Al"}},
        ]
    )
    assert [(c.tool, c.args, c.call_id) for c in native] == [("greet", {"name": "Al"}, "t1")]
    assert (
        to_text(
            [{"type": "text", "text": "a"}, {"type": "tool_use"}, {"type": "text", "text": "b"}]
        )
        == "ab"
    )


def test_the_original_submodules_load_lazily_and_without_cycles() -> None:
    """``looplet.types`` and ``looplet.tools`` load their original names only when asked."""
    script = (
        "import sys; import looplet.types, looplet.tools\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('looplet'))))\n"
        "from looplet.types import DefaultState, LLMBackend\n"
        "from looplet.tools import register_think_tool, tools_from\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    first, second = out.stdout.split("\n")[:2]
    assert not {"looplet.state", "looplet.backends.base", "looplet.toolkit"} & set(first.split())
    assert second == "ok"


@pytest.mark.parametrize("qualified", sorted(GONE))
def test_a_gone_name_says_why_and_points_at_the_migration_notes(qualified: str) -> None:
    module, name = qualified.rsplit(".", 1)
    with pytest.raises(ImportError) as info:
        exec(f"from {module} import {name}", {})
    message = str(info.value)
    assert f"{module}.{name}" in message and "not available" in message
    assert "docs/migration.md" in message


def test_an_unknown_name_is_still_a_plain_attribute_error() -> None:
    import looplet.session

    with pytest.raises(AttributeError, match="no_such_thing"):
        looplet.session.no_such_thing  # noqa: B018


def test_the_migration_notes_list_every_original_name_and_every_gone_one() -> None:
    notes = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", notes))
    assert len(ORIGINAL_ALL) == 76
    assert not set(ORIGINAL_ALL) - listed
    assert not {q.rsplit(".", 1)[1] for q in GONE} - listed


# --------------------------------------------------------------------------- 3. same names


def test_mock_backend_calls_is_the_original_counter() -> None:
    llm = MockLLMBackend(responses=["step 1", "step 2"])
    assert llm.generate("hi") == "step 1"
    assert llm.calls == 1
    assert llm.generate("again", system_prompt="Be brief.") == "step 2"
    assert (llm.calls, llm.last_prompt, llm.last_system_prompt) == (2, "again", "Be brief.")
    assert [r.messages[-1].content for r in llm.requests] == ["hi", "again"]
    llm.reset()
    assert llm.calls == 0 and llm.requests == []
    assert llm.generate("hi") == "step 1"


def test_async_mock_backend_calls_is_the_original_counter() -> None:
    llm = AsyncMockLLMBackend(responses=["step 1"])
    assert asyncio.run(llm.generate("hi")) == "step 1"
    assert llm.calls == 1 and llm.last_prompt == "hi"


def test_the_testing_module_example_runs_and_counts_model_calls() -> None:
    llm = MockLLMBackend(
        responses=[
            '{"tool": "add", "args": {"a": 1, "b": 2}, "reasoning": "sum"}',
            '{"tool": "done", "args": {"summary": "3"}, "reasoning": "finished"}',
        ]
    )
    tools = BaseToolRegistry()
    tools.register(
        ToolSpec(
            name="add",
            description="Add.",
            parameters={"a": "int", "b": "int"},
            execute=lambda *, a, b: a + b,
        )
    )
    from looplet.tools import register_done_tool

    register_done_tool(tools)
    steps = list(composable_loop(llm, {"goal": "add"}, tools))
    assert [s.pretty().split(" [")[0] for s in steps] == [
        "#1 ✓ add(a=1, b=2) → 3",
        "#2 ✓ done(summary='3') → 2 keys",
    ]
    assert steps[1].tool_result.data == {"status": "completed", "summary": "3"}
    assert llm.calls == 2


def test_permission_engine_as_the_original_documents_it() -> None:
    from looplet import PermissionDecision, PermissionEngine, PermissionHook

    engine = PermissionEngine(default=PermissionDecision.ALLOW)
    engine.deny("bash", arg_matcher=lambda a: "rm -rf" in a.get("cmd", ""), reason="no rm -rf")
    tools = BaseToolRegistry()
    tools.register(
        ToolSpec(
            name="bash",
            description="Run.",
            parameters={"cmd": "the command"},
            execute=lambda *, cmd: cmd,
        )
    )
    tools.register(
        ToolSpec(
            name="done",
            description="Finish.",
            parameters={"answer": "str"},
            execute=lambda *, answer: answer,
        )
    )
    llm = MockLLMBackend(
        [reply("bash", cmd="ls"), reply("bash", cmd="rm -rf /"), reply("done", answer="ok")]
    )
    steps = list(
        composable_loop(
            llm=llm,
            tools=tools,
            state=DefaultState(max_steps=5),
            task={"goal": "clean"},
            hooks=[PermissionHook(engine)],
        )
    )
    assert [s.tool_result.error_kind for s in steps] == [None, ErrorKind.PERMISSION_DENIED, None]
    assert engine.denials == [
        {"tool": "bash", "args": {"cmd": "rm -rf /"}, "rule": "bash", "reason": "no rm -rf"}
    ]
    outcome = engine.evaluate(ToolCall("bash", {"cmd": "rm -rf ~"}))
    assert outcome.denied and not outcome.allowed and outcome.decision is PermissionDecision.DENY
    assert outcome.rule is not None and outcome.rule.reason == "no rm -rf"


def test_permission_rules_are_built_as_in_the_original() -> None:
    from looplet import PermissionDecision, PermissionEngine

    with pytest.deprecated_call(match="from looplet.permissions import PermissionRule"):
        from looplet import PermissionRule

    by_keyword = PermissionRule(
        tool="bash", decision=PermissionDecision.DENY, arg_matcher=lambda a: True, reason="r"
    )
    by_position = PermissionRule("bash", PermissionDecision.DENY)
    assert by_keyword.matches(ToolCall("bash", {})) and not by_keyword.matches(ToolCall("ls", {}))
    assert (by_position.tool, by_position.decision) == ("bash", PermissionDecision.DENY)
    assert PermissionRule("bash", "allow").decision is PermissionDecision.ALLOW
    engine = PermissionEngine(rules=[by_keyword], default=PermissionDecision.ALLOW)
    assert engine.evaluate(ToolCall("bash", {"x": 1})).denied
    with pytest.raises(TypeError, match="tool and decision swapped"):
        PermissionRule(PermissionDecision.DENY, "bash")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="match= or arg_matcher="):
        PermissionEngine().allow("x", match={"a": 1}, arg_matcher=lambda a: True)


def test_hooks_from_the_tutorial_and_the_hook_guide() -> None:
    from looplet import HookDecision, InjectContext

    class MinimumEvidenceGate:  # HOOK_GUIDE.md, verbatim
        def __init__(self, min_tools: int = 3):
            self.min_tools = min_tools

        def check_done(self, state, session_log, context, step_num):  # type: ignore[no-untyped-def]
            if len(state.steps) < self.min_tools:
                return (
                    f"Insufficient evidence: only {len(state.steps)} tools called. "
                    f"Call at least {self.min_tools} before concluding."
                )
            return None  # allow done()

    class DedupHook:  # HOOK_GUIDE.md, verbatim
        def __init__(self):  # type: ignore[no-untyped-def]
            self._seen: set[str] = set()

        def post_dispatch(self, state, session_log, tool_call, tool_result, step_num):  # type: ignore[no-untyped-def]
            key = f"{tool_call.tool}:{sorted(tool_call.args.items())}"
            if key in self._seen:
                return f"⚠ DUPLICATE: You already called {tool_call.tool} with these args."
            self._seen.add(key)
            return None

    class BudgetWarningHook:  # HOOK_GUIDE.md
        def pre_prompt(self, state, session_log, context, step_num):  # type: ignore[no-untyped-def]
            remaining = state.budget_remaining
            return f"Budget alert: {remaining} steps remaining." if remaining <= 5 else None

    class TutorialGuardrail:  # docs/tutorial.md, step 3
        def post_dispatch(self, state, session_log, tool_call, tool_result, step_num):  # type: ignore[no-untyped-def]
            if tool_call.tool == "write" and "test_" not in tool_call.args.get("file_path", ""):
                return InjectContext("You wrote code but no tests. Write tests first.")
            return None

        def check_done(self, state, session_log, context, step_num):  # type: ignore[no-untyped-def]
            if len(state.steps) < 4:
                return HookDecision(block="Not done yet — run tests first.")
            return None

    llm = MockLLMBackend(
        [
            reply("echo", text="a"),
            reply("echo", text="a"),
            reply("done", answer="early"),
            reply("echo", text="b"),
            reply("done", answer="ok"),
        ]
    )
    hooks = [MinimumEvidenceGate(), DedupHook(), BudgetWarningHook(), TutorialGuardrail()]
    loop = composable_loop(
        llm=llm,
        tools=echo_tools(),
        task={"goal": "x"},
        hooks=hooks,
        state=DefaultState(max_steps=5),
    )
    steps = list(loop)
    assert [(s.tool_call.tool, s.tool_result.error_kind) for s in steps] == [
        ("echo", None),
        ("echo", None),
        ("done", ErrorKind.DONE_REJECTED),
        ("echo", None),
        ("done", None),
    ]
    assert loop.trajectory.stop_reason is StopReason.DONE
    told = [m.content for m in llm.requests[3].messages]
    assert any("Insufficient evidence: only 2 tools called" in t for t in told)
    assert any("DUPLICATE" in m.content for m in llm.requests[2].messages)
    assert any("Budget alert" in m.content for m in llm.requests[0].messages)


def test_hook_decisions_as_the_original_builds_and_reads_them() -> None:
    from looplet import Allow, Block, Continue, Deny, Stop

    assert Block("x").is_block() and not Block("x").is_stop()
    assert Deny("no", retry=True).is_block()
    # As in the original: Continue() is an explicit no-op, Allow() a permission verdict.
    assert Stop("why").is_stop() and Continue().is_noop() is True
    assert Allow() != Continue() and not Allow().is_noop()
    assert Allow(updated_args={"text": "rewritten"}).updated_args == {"text": "rewritten"}

    class Rewrite:
        def pre_dispatch(self, state, session_log, tool_call, step_num):  # type: ignore[no-untyped-def]
            if tool_call.args.get("text") == "hi":
                return Allow(updated_args={"text": "HI"})
            return Continue(additional_context="checked by Rewrite")

    llm = MockLLMBackend(
        [reply("echo", text="hi"), reply("echo", text="ho"), reply("done", answer="ok")]
    )
    steps = list(composable_loop(llm=llm, tools=echo_tools(), task="t", hooks=[Rewrite()]))
    assert [s.tool_result.data for s in steps] == [{"echo": "HI"}, {"echo": "ho"}, {"answer": "ok"}]
    assert "checked by Rewrite" not in [m.content for m in llm.requests[1].messages]
    assert "checked by Rewrite" in [m.content for m in llm.requests[2].messages]


def test_tool_context_cancel_token_and_results_as_in_the_original() -> None:
    from looplet import CancelToken, ToolContext

    progress: list[tuple[str, dict[str, Any]]] = []
    token = CancelToken()

    def long_job(ctx: ToolContext) -> str:
        ctx.report_progress("indexing", {"pct": 50})
        token.cancel()
        ctx.cancel_token and ctx.cancel_token.raise_if_cancelled()
        return "never"

    def flaky() -> None:
        raise ConnectionError("down")

    tools = BaseToolRegistry()
    tools.register(ToolSpec(name="long_job", description="Work.", parameters={}, execute=long_job))
    tools.register(ToolSpec(name="flaky", description="Fail.", parameters={}, execute=flaky))
    ctx = ToolContext(
        cancel_token=token, on_progress=lambda stage, data: progress.append((stage, data))
    )
    result = tools.dispatch(ToolCall("long_job", {}), ctx=ctx)
    assert progress == [("indexing", {"pct": 50})]
    assert token.is_cancelled and result.error_kind is ErrorKind.CANCELLED
    failed = tools.dispatch(ToolCall("flaky", {}))
    assert failed.error_kind is ErrorKind.NETWORK and failed.error_retriable
    assert failed.error_message == "ConnectionError: down"


def test_loop_positional_arguments_and_state_field_order_of_the_original() -> None:
    state = DefaultState([], 0, 5)
    assert (state.steps, state.queries_used, state.max_steps) == ([], 0, 5)
    llm = MockLLMBackend([reply("echo", text="x"), reply("done", answer="ok")])
    loop = composable_loop(
        llm, {"goal": "x"}, echo_tools(), None, [], LoopConfig(max_steps=5), state
    )
    assert len(list(loop)) == 2 and len(state.steps) == 2


def test_tracing_hook_takes_the_tracer_first() -> None:
    with pytest.deprecated_call(match="from looplet.tracing import"):
        from looplet import Tracer, TracingHook

    tracer = Tracer()
    hook = TracingHook(tracer)
    assert hook.tracer is tracer
    list(
        composable_loop(
            llm=MockLLMBackend([reply("done", answer="ok")]),
            tools=echo_tools(),
            task="t",
            hooks=[hook],
        )
    )
    assert len(tracer.roots()) == 1


def test_streaming_hook_given_an_emitter_says_what_replaced_it() -> None:
    from looplet.streaming import StreamingHook

    class CallbackEmitter:  # what the original's StreamingHook(emitter) took
        def emit(self, event: object) -> None: ...

    with pytest.raises(ConfigurationError, match=r"emitters are gone.*on_text"):
        StreamingHook(CallbackEmitter())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- 4. conveniences


def test_composable_loop_max_steps_shorthand_leaves_the_config_alone() -> None:
    config = LoopConfig(max_steps=10)
    llm = MockLLMBackend([reply("echo", text="again")], cycle=True)
    loop = composable_loop(
        llm=llm, tools=echo_tools(), task="t", config=config, max_steps=2, system_prompt="Echo."
    )
    assert len(list(loop)) == 2
    assert loop.trajectory.stop_reason is StopReason.MAX_STEPS
    assert config.max_steps == 10 and config.system_prompt is None
    assert llm.requests[0].system_prompt == "Echo."
    with pytest.raises(ConfigurationError, match="max_steps must be a positive int"):
        composable_loop(llm=llm, tools=echo_tools(), task="t", max_steps=0)


def test_async_composable_loop_takes_the_shorthands_too() -> None:
    from looplet import async_composable_loop

    async def go() -> int:
        llm = AsyncMockLLMBackend([reply("echo", text="again")], cycle=True)
        loop = async_composable_loop(llm=llm, tools=echo_tools(), task="t", max_steps=3)
        return len([s async for s in loop])

    assert asyncio.run(go()) == 3


def greet(name: str) -> dict[str, str]:
    """Greet someone."""
    return {"greeting": f"Hello, {name}!"}


def test_tools_from_functions_with_think_and_done() -> None:
    from looplet import tool, tools_from

    @tool
    def shout(text: str) -> str:
        """Shout the text."""
        return text.upper()

    tools = tools_from([greet, shout], include_think=True, include_done=True)
    assert tools.tool_names == ["greet", "shout", "think", "done"]
    assert tools.is_free("think") and not tools.is_free("greet")
    llm = MockLLMBackend(
        [
            reply("think", analysis="plan"),
            reply("greet", name="Al"),
            reply("done", summary="greeted"),
        ]
    )
    loop = composable_loop(llm=llm, tools=tools, task="Greet Al", max_steps=1)
    assert [s.tool_call.tool for s in loop] == ["think", "greet"]  # think used no step
    assert loop.trajectory.stop_reason is StopReason.MAX_STEPS
    llm = MockLLMBackend([reply("greet", name="Al"), reply("done", summary="greeted")])
    steps = list(composable_loop(llm=llm, tools=tools, task="Greet Al"))
    assert steps[1].tool_result.data == {"status": "completed", "summary": "greeted"}


def test_tools_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from looplet import tools_from

    (tmp_path / "agent_tools.py").write_text(
        textwrap.dedent(
            '''
            from os.path import join  # imported: not a tool
            from looplet import tool

            LIMIT = 3  # a constant: not a tool

            @tool
            def search(query: str) -> list[str]:
                """Search the notes."""
                return [query]

            def lookup(key: str) -> str:
                """Look a key up."""
                return key

            def _helper() -> None:
                pass
            '''
        )
    )
    (tmp_path / "no_tools.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("agent_tools")
    assert tools_from(module, include_done=True).tool_names == ["search", "lookup", "done"]
    with pytest.raises(ToolRegistrationError, match="'no_tools' has no tools"):
        tools_from(importlib.import_module("no_tools"))
    with pytest.raises(ToolRegistrationError, match="wrap a single tool in a list"):
        tools_from(greet)  # type: ignore[arg-type]


def test_register_done_tool_refuses_a_second_done() -> None:
    from looplet import register_done_tool

    tools = BaseToolRegistry()
    spec = register_done_tool(tools, name="finish", parameters={"answer": "str"})
    assert tools.tool_names == ["finish"] and spec.required_parameters() == ["answer"]
    with pytest.raises(ToolRegistrationError, match="'finish' is already registered"):
        register_done_tool(tools, name="finish")
