"""PermissionEngine and PermissionHook: fail-closed rules, one ask per call, a full audit log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from looplet import ErrorKind, StopReason, ToolCall, ToolSpec
from looplet.permissions import (
    PermissionDecision,
    PermissionEngine,
    PermissionHook,
    PermissionRule,
)
from looplet.testing import MockLLMBackend
from tests.conftest import RunLoop, make_tools, run_sync

ALLOW, DENY = PermissionDecision.ALLOW, PermissionDecision.DENY


def decide(engine: PermissionEngine, tool: str, **args: Any) -> PermissionDecision:
    return engine.evaluate(ToolCall(tool, args)).decision


def test_unmatched_calls_are_denied_by_default() -> None:
    engine = PermissionEngine().allow("read_file")
    assert decide(engine, "read_file", path="a") is ALLOW
    assert decide(engine, "delete_file", path="a") is DENY
    assert engine.audit_log[-1].decided_by == "default"


def test_first_matching_rule_wins_and_globs_match_tools() -> None:
    engine = PermissionEngine().deny("fs_delete").allow("fs_*").deny("*")
    assert decide(engine, "fs_read") is ALLOW
    assert decide(engine, "fs_delete") is DENY
    assert decide(engine, "shell") is DENY
    assert engine.audit_log[1].rule == PermissionRule("fs_delete", DENY)


def test_argument_matchers_exact_regex_predicate_and_callable() -> None:
    engine = (
        PermissionEngine()
        .deny("write_file", match={"path": re.compile(r"^/etc/")}, reason="system file")
        .allow("write_file", match={"mode": "text", "size": lambda n: n < 100})
        .allow("run", match=lambda args: args.get("cmd") == "ls")
    )
    assert decide(engine, "write_file", path="/etc/passwd", mode="text", size=1) is DENY
    assert engine.audit_log[-1].reason == "system file"
    assert decide(engine, "write_file", path="a.txt", mode="text", size=10) is ALLOW
    assert decide(engine, "write_file", path="a.txt", mode="text", size=1000) is DENY
    assert decide(engine, "write_file", path="a.txt", size=10) is DENY  # missing argument
    assert decide(engine, "run", cmd="ls") is ALLOW
    assert decide(engine, "run", cmd="rm -rf /") is DENY


def test_a_matcher_that_raises_denies_and_says_why() -> None:
    engine = PermissionEngine().allow("calc", match={"n": lambda n: n > 0})
    assert decide(engine, "calc", n="three") is DENY
    outcome = engine.audit_log[-1]
    assert outcome.decided_by == "error" and "TypeError" in outcome.reason


def test_the_ask_handler_is_asked_exactly_once_per_call() -> None:
    asked: list[str] = []

    def human(call: ToolCall, rule: PermissionRule) -> str:
        asked.append(call.tool)
        return "allow" if call.args.get("path") == "notes.txt" else "deny"

    engine = PermissionEngine(ask_handler=human).ask("delete_file", reason="deleting")
    tools = make_tools(
        delete_file=ToolSpec(
            name="delete_file",
            description="Delete.",
            parameters={"path": "str"},
            execute=lambda *, path: {"deleted": path},
        )
    )
    calls = [ToolCall("delete_file", {"path": "notes.txt"}), ToolCall("delete_file", {"path": "x"})]
    llm = MockLLMBackend([calls[0], calls[1], ToolCall("done", {"answer": "ok"})])
    steps, traj = run_sync(llm=llm, tools=tools, task="t", hooks=[PermissionHook(engine)])
    assert asked == ["delete_file", "delete_file"]
    assert [s.ok for s in steps] == [True, False, True]
    assert steps[1].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert [(d.tool, d.decision, d.asked) for d in traj.permission_decisions] == [
        ("delete_file", ALLOW, True),
        ("delete_file", DENY, True),
    ]


def test_a_raising_ask_handler_denies_and_the_run_goes_on(run_loop: RunLoop) -> None:
    def broken(call: ToolCall, rule: PermissionRule) -> str:
        raise ConnectionError("approval service down")

    engine = PermissionEngine(ask_handler=broken).ask("greet")
    llm = MockLLMBackend([ToolCall("greet", {"name": "A"}), ToolCall("done", {"answer": "ok"})])
    steps, traj = run_loop(llm=llm, tools=make_tools(), task="t", hooks=[PermissionHook(engine)])
    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert "approval service down" in (steps[0].tool_result.error or "")
    assert traj.stop_reason is StopReason.DONE


def test_ask_without_a_handler_denies() -> None:
    engine = PermissionEngine().ask("greet")
    assert decide(engine, "greet", name="A") is DENY
    assert "no ask_handler" in engine.audit_log[-1].reason


@pytest.mark.parametrize(("answer", "expected"), [(True, "allow"), (False, "deny"), (1, "deny")])
def test_an_ask_handler_may_answer_true_or_false_as_an_approval_handler_does(
    answer: Any, expected: str
) -> None:
    engine = PermissionEngine(ask_handler=lambda call, rule: answer).ask("greet")
    assert decide(engine, "greet", name="A").value == expected
    assert engine.audit_log[-1].decided_by == "ask_handler"


def test_denial_reaches_the_model_and_every_decision_is_logged(tmp_path: Path) -> None:
    engine = (
        PermissionEngine().allow("greet", match={"name": "Alice"}).deny("greet", reason="strangers")
    )
    script = [
        ToolCall("greet", {"name": "Alice"}),
        ToolCall("greet", {"name": "Eve"}),
        ToolCall("done", {"answer": "ok"}),
    ]
    llm = MockLLMBackend(script)
    steps, traj = run_sync(llm=llm, tools=make_tools(), task="t", hooks=[PermissionHook(engine)])
    assert [s.ok for s in steps] == [True, False, True]
    assert "strangers" in llm.requests[2].messages[-1].content
    assert len(engine.audit_log) == 2  # done is exempt, so only the two greets
    assert [d.decision for d in traj.permission_decisions] == [ALLOW, DENY]
    path = engine.write_audit_log(tmp_path / "audit.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["args"]["name"], d["decision"], d["step"]) for d in lines] == [
        ("Alice", "allow", 1),
        ("Eve", "deny", 2),
    ]
    assert len(engine.denials) == 1


def test_a_fail_closed_engine_can_guard_done_too() -> None:
    engine = PermissionEngine()
    llm = MockLLMBackend([ToolCall("done", {"answer": "ok"})], cycle=True)
    steps, traj = run_sync(
        llm=llm, tools=make_tools(), task="t", hooks=[PermissionHook(engine, guard_done=True)]
    )
    assert not steps[0].ok and traj.stop_reason is StopReason.MAX_LLM_CALLS


def test_bad_rules_are_rejected_when_added() -> None:
    with pytest.raises(TypeError, match="tool name"):
        PermissionEngine().allow("")
    with pytest.raises(TypeError, match="match="):
        PermissionEngine().allow("x", match="path")  # type: ignore[arg-type]


def test_a_rule_naming_a_missing_tool_is_warned_about_at_setup() -> None:
    import warnings

    engine = PermissionEngine().allow("gret").allow("g*").deny("delete_file")
    llm = MockLLMBackend([ToolCall("done", {"answer": "ok"})])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_sync(llm=llm, tools=make_tools(), task="t", hooks=[PermissionHook(engine)])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "'gret'" in messages[0] and "Did you mean 'greet'" in messages[0]
    assert "'delete_file'" in messages[1]  # globs like 'g*' are not checked
