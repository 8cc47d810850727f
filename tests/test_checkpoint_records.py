"""A resumed run keeps its whole record: permission decisions and sub-agent runs come back.

The run "dies" by being abandoned after k steps, as in tests/test_checkpoint.py, and the
resumed trajectory is compared with an uninterrupted run's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from looplet import LoopConfig, StopReason, ToolCall, Trajectory, composable_loop
from looplet.checkpoint import FileCheckpointStore
from looplet.errors import CheckpointError, LoopletError
from looplet.permissions import PermissionEngine, PermissionHook, PermissionOutcome
from looplet.subagent import subagent_tool
from looplet.testing import MockLLMBackend
from tests.conftest import make_tools
from tests.test_checkpoint import TASK, run, strip


def engine() -> PermissionEngine:
    # Ann and Bob by an argument matcher, Cy by name; Di falls to the fail-closed default.
    return (
        PermissionEngine()
        .allow("greet", match={"name": re.compile("^(Ann|Bob)$")}, reason="friends")
        .allow("greet", match=lambda args: args.get("name") == "Cy", reason="Cy asked")
    )


def decisions(trajectory: Trajectory) -> list[tuple[Any, ...]]:
    """What a decision says, less the time it was taken (a rerun takes it anew)."""
    return [
        (d.tool, dict(d.args), d.decision, d.reason, d.decided_by, d.asked, d.step)
        + ((d.rule.decision, d.rule.tool, d.rule.reason, d.rule.describe()) if d.rule else ())
        for d in trajectory.permission_decisions
    ]


@pytest.mark.parametrize("stop_after", [1, 3])
def test_permission_decisions_taken_before_a_crash_survive_a_resume(
    tmp_path: Path, stop_after: int
) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    whole = run("sync", task=TASK, hooks=[PermissionHook(engine())])
    assert [d.allowed for d in whole.permission_decisions] == [True, True, True, False]

    cut = run("sync", task=TASK, hooks=[PermissionHook(engine())], checkpoint=store,
              stop_after=stop_after)  # fmt: skip
    saved = list(cut.permission_decisions)
    resumed = run("sync", hooks=[PermissionHook(engine())], checkpoint=store, resume=store)

    assert decisions(resumed) == decisions(whole)
    assert strip(resumed) == strip(whole)
    # The ones decided before the crash come back exactly, down to when they were taken.
    restored = resumed.permission_decisions[: len(saved)]
    assert [(d.at, d.args, d.decision) for d in restored] == [
        (d.at, d.args, d.decision) for d in saved
    ]


def test_a_restored_rule_with_a_matcher_says_so_and_cannot_decide(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    run("sync", task=TASK, hooks=[PermissionHook(engine())], checkpoint=store, stop_after=1)
    checkpoint = store.load_latest()
    (first,) = checkpoint.permission_decisions
    assert isinstance(first, PermissionOutcome) and first.rule is not None
    assert first.rule.describe() == "allow greet (with argument matcher)"
    assert callable(first.rule.match)
    with pytest.raises(LoopletError, match="matcher is code"):
        first.rule.match({"name": "Ann"})
    # A permission engine treats a matcher that raises as a denial: reusing it fails closed.
    reused = PermissionEngine([first.rule])
    outcome = reused.evaluate(ToolCall("greet", {"name": "Ann"}))
    assert not outcome.allowed and "matcher is code" in outcome.reason


def delegating_run(
    tmp_path: Path, *, stop_after: int | None = None, resume: bool = False
) -> Trajectory:
    """A parent that delegates twice to a helper sub-agent, greets, then finishes."""
    store = FileCheckpointStore(tmp_path / "runs")
    child_script = [
        ToolCall("greet", {"name": "Bob"}, call_id="cg"),
        ToolCall("done", {"answer": "Bob greeted"}, call_id="cd"),
    ]
    handle: dict[str, Any] = {}
    helper = subagent_tool(
        "helper",
        "Hand a task to a helper.",
        MockLLMBackend([_from_conversation(child_script)], cycle=True),
        make_tools(),
        parent=lambda: handle["loop"],
    )
    parent_script = [
        ToolCall("helper", {"task": "greet Bob"}, call_id="h1"),
        ToolCall("helper", {"task": "greet Bob again"}, call_id="h2"),
        ToolCall("greet", {"name": "Ann"}, call_id="g"),
        ToolCall("done", {"answer": "ok"}, call_id="d"),
    ]
    # The parent's model answers from the conversation, so a resumed run gets the same turns.
    llm = MockLLMBackend([_from_conversation(parent_script)], cycle=True)
    options: dict[str, Any] = {"config": LoopConfig(max_steps=10), "checkpoint": store}
    if resume:
        options["resume"] = store
    else:
        options["task"] = "parent task"
    loop = composable_loop(llm, tools=make_tools(helper=helper), **options)
    handle["loop"] = loop
    for n, _ in enumerate(loop, 1):
        if n == stop_after:
            break
    return loop.trajectory


def _from_conversation(script: list[ToolCall]) -> Any:
    """A model reply picked by how many turns the conversation has (so a resume replays it)."""
    return lambda request: [script[sum(m.role == "assistant" for m in request.messages)]]


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_sub_agent_runs_survive_a_resume_with_their_tokens(tmp_path: Path, stop_after: int) -> None:
    whole = delegating_run(tmp_path / "whole")
    assert whole.stop_reason is StopReason.DONE and len(whole.children) == 2

    delegating_run(tmp_path / "cut", stop_after=stop_after)
    resumed = delegating_run(tmp_path / "cut", resume=True)

    assert strip(resumed) == strip(whole)
    assert [c.parent_step for c in resumed.children] == [1, 2]
    assert [strip(c) for c in resumed.children] == [strip(c) for c in whole.children]
    assert resumed.total_usage == whole.total_usage
    assert resumed.total_llm_calls == whole.total_llm_calls
    assert "↳" in resumed.pretty()


def test_a_malformed_decision_or_child_is_named_by_its_place(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    run("sync", task=TASK, hooks=[PermissionHook(engine())], checkpoint=store, stop_after=1)
    (path,) = sorted(store.run_dir(store.runs()[0]).glob("step-*.json"))
    doc = json.loads(path.read_text())
    doc["permission_decisions"][0]["decision"] = "maybe"
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"permission_decisions\[0\]\.decision"):
        store.load_latest()
    doc["permission_decisions"] = []
    doc["children"] = [{"steps": "none"}]
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"children\[0\]\.steps: expected an array"):
        store.load_latest()


def test_checkpoints_written_before_these_records_existed_still_resume(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    run("sync", task=TASK, checkpoint=store, stop_after=2)
    (path,) = sorted(store.run_dir(store.runs()[0]).glob("step-*.json"))[-1:]
    doc = json.loads(path.read_text())
    del doc["permission_decisions"], doc["children"]
    path.write_text(json.dumps(doc))
    resumed = run("sync", checkpoint=store, resume=store)
    assert resumed.stop_reason is StopReason.DONE and resumed.permission_decisions == []


@pytest.mark.parametrize("stop_after", [2, 3, 4])
def test_a_context_budgets_calibration_survives_a_resume(tmp_path: Path, stop_after: int) -> None:
    from looplet import ToolSpec
    from looplet.backends.base import LLMRequest, LLMResponse
    from looplet.compact import ContextBudget
    from looplet.types import Usage

    def reader(request: LLMRequest) -> LLMResponse:
        # Reads parts in order; the provider counts three tokens per estimated one.
        last = [m.content for m in request.messages if m.role == "tool"]
        part = int(last[-1].split(":")[0]) + 1 if last else 0
        call = (
            ToolCall("done", {"answer": "read"}, call_id="d")
            if part == 6
            else ToolCall("read", {"part": part}, call_id=f"r{part}")
        )
        chars = sum(len(m.content) for m in request.messages)
        return LLMResponse(tool_calls=(call,), usage=Usage(3 * chars // 4, 5))

    tools = make_tools(
        read=ToolSpec("read", "Read.", {"part": "int"}, lambda *, part: f"{part}:" + "x" * 900)
    )
    config = LoopConfig(max_steps=10, context_budget=ContextBudget(max_tokens=2400))

    def go(store: FileCheckpointStore, stop: int = 0, **options: Any) -> Trajectory:
        loop = composable_loop(
            MockLLMBackend([reader], cycle=True), tools=tools, config=config, checkpoint=store,
            **options,
        )  # fmt: skip
        for n, _ in enumerate(loop, 1):
            if n == stop:
                break
        return loop.trajectory

    whole = go(FileCheckpointStore(tmp_path / "whole"), task=TASK)
    assert whole.stop_reason is StopReason.DONE and whole.compactions
    store = FileCheckpointStore(tmp_path / "cut")
    go(store, stop_after, task=TASK)
    saved = store.load_latest()
    assert saved.context_calibration is not None and saved.context_calibration[1] > 1.5
    resumed = go(store, resume=store)
    assert strip(resumed) == strip(whole)
    assert [c.to_dict() for c in resumed.compactions] == [c.to_dict() for c in whole.compactions]


def test_a_restored_calibration_is_clamped_and_a_bad_one_is_named(tmp_path: Path) -> None:
    from looplet.compact import ContextBudget, ContextMeter

    meter = ContextMeter(ContextBudget(max_tokens=1000))
    meter.calibrate(5000, 0.5)  # saved under a larger budget, and a scale below 1
    assert (meter.limit, meter.scale) == (1000, 1.0)
    meter.calibrate(700, 2.5)
    assert (meter.limit, meter.scale) == (700, 2.5)

    store = FileCheckpointStore(tmp_path / "runs")
    config = LoopConfig(max_steps=10, context_budget=ContextBudget(max_tokens=100_000))
    run("sync", task=TASK, config=config, checkpoint=store, stop_after=1)
    (path,) = sorted(store.run_dir(store.runs()[0]).glob("step-*.json"))
    doc = json.loads(path.read_text())
    assert doc["context_calibration"] == {"limit": 100_000, "scale": 1.0}
    doc["context_calibration"] = {"limit": 100, "scale": "big"}
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"context_calibration\.scale"):
        store.load_latest()
