"""The run record's one codec (looplet.record.codec): lossless, versioned, checked.

Round trips run over many seeded random shapes (unicode, nested args, tool errors with every
field, permission decisions with rules, compactions, sub-agents' runs with their own steps);
damaged documents must fail as a DecodeError naming the field, never as a KeyError or a
TypeError. Files written before the codec (tests/data/record_v1, written by looplet 0.2.0:
checkpoints with their journal, provenance directories, the report's trajectory) still load.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

from looplet import LoopConfig, StopReason, ToolCall, ToolSpec, Trajectory, composable_loop
from looplet.checkpoint import FileCheckpointStore
from looplet.compact import CompactionRecord
from looplet.errors import ErrorKind, LoopletError, ToolError
from looplet.evals import EvalContext
from looplet.evals.context import TrajectoryLoadError
from looplet.messages import Message
from looplet.permissions import (
    PermissionDecision,
    PermissionEngine,
    PermissionHook,
    PermissionOutcome,
    PermissionRule,
)
from looplet.provenance import ProvenanceError, ProvenanceSink, load_run
from looplet.record import codec
from looplet.record.codec import (
    REPR_MARKER,
    DecodeError,
    decode_trajectory,
    encode_trajectory,
    trajectory_document,
)
from looplet.testing import MockLLMBackend
from looplet.types import Step, ToolResult, Usage
from pytest_looplet.scoring import trajectory_json
from tests.conftest import make_tools

DATA = Path(__file__).parent / "data" / "record_v1"
TEXTS = ["", "plain", "ünïcode ✓ 日本 😀", "a lone surrogate, already replaced: \ufffd", "x" * 300]


# -- random values of every type ---------------------------------------------------------------


def text(rng: random.Random) -> str:
    return rng.choice(TEXTS) + rng.choice(["", str(rng.randrange(1000))])


def data(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 3 else 6)
    leaves = [None, True, rng.randrange(-5, 10**12), rng.uniform(-1e6, 1e6), text(rng), 0.5]
    if pick < 6:
        return leaves[pick]
    if pick < 8:
        return {text(rng): data(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [data(rng, depth + 1) for _ in range(rng.randrange(4))]


def call(rng: random.Random) -> ToolCall:
    raw = rng.choice([None, '{"a": 1}', '{"broken'])
    return ToolCall(
        rng.choice(["greet", "fs_read", "über_tool"]),
        {text(rng): data(rng) for _ in range(rng.randrange(4))},
        rng.choice(["", text(rng)]),
        rng.choice(["", f"call_{rng.randrange(99)}"]),
        raw,
        "Unterminated string" if raw == '{"broken' else None,
    )


def result(rng: random.Random, of: ToolCall) -> ToolResult:
    if rng.random() < 0.4:
        kind = rng.choice(list(ErrorKind))
        error = ToolError(kind, text(rng) or "failed", rng.random() < 0.5, {"n": data(rng)})
        return ToolResult.failure(of, error, duration_ms=rng.uniform(0, 1e4))
    duration = rng.uniform(0, 1e4)
    return ToolResult(of.tool, of.args_summary(), data(rng), None, None, duration, of.call_id)


def permission(rng: random.Random) -> PermissionOutcome:
    rule = rng.choice(
        [None, PermissionRule("greet", PermissionDecision.ASK, reason=text(rng)), None]
    )
    return PermissionOutcome(
        tool="greet",
        args={"name": text(rng)},
        decision=rng.choice([PermissionDecision.ALLOW, PermissionDecision.DENY]),
        rule=rule,
        reason=text(rng),
        decided_by=rng.choice(["rule", "default", "ask_handler"]),
        asked=rng.random() < 0.5,
        at=rng.uniform(0, 2e9),
        step=rng.randrange(20),
    )


def compaction(rng: random.Random) -> CompactionRecord:
    counts = [rng.randrange(10**6) for _ in range(5)]
    trigger = rng.choice(["pressure", "context_length_exceeded"])
    return CompactionRecord(rng.randrange(50), trigger, text(rng), *counts)


def message(rng: random.Random) -> Message:
    role: Literal["system", "user", "assistant", "tool"] = rng.choice(
        ["system", "user", "assistant", "tool"]
    )
    calls = tuple(call(rng) for _ in range(rng.randrange(3))) if role == "assistant" else ()
    is_tool = role == "tool"
    return Message(
        role, text(rng), calls, "c1" if is_tool else "", "", is_tool and rng.random() < 0.5
    )


def trajectory(rng: random.Random, depth: int = 0) -> Trajectory:
    steps = []
    for n in range(1, rng.randrange(6) + 1):
        c = call(rng)
        steps.append(Step(n, c, result(rng, c)))
    children = [trajectory(rng, depth + 1) for _ in range(rng.randrange(3) if depth < 2 else 0)]
    return Trajectory(
        task=data(rng),
        steps=steps,
        stop_reason=rng.choice([None, *StopReason]),
        stop_detail=text(rng),
        llm_calls=rng.randrange(30),
        usage=Usage(rng.randrange(10**6), rng.randrange(10**6)),
        messages=[message(rng) for _ in range(rng.randrange(6))],
        elapsed_ms=rng.uniform(0, 1e6),
        final_text=text(rng),
        permission_decisions=[permission(rng) for _ in range(rng.randrange(3))],
        compactions=[compaction(rng) for _ in range(rng.randrange(3))],
        children=children,
        parent_step=None if depth == 0 else rng.randrange(1, 9),
    )


def through_a_file(value: Any) -> Any:
    """What a reader gets back: the JSON text looplet writes, read again."""
    return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))


# -- lossless ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(60))
def test_every_value_of_a_run_decodes_to_an_equal_value(seed: int) -> None:
    rng = random.Random(seed)
    original = trajectory(rng)
    assert decode_trajectory(through_a_file(encode_trajectory(original)), "") == original
    for step in original.steps:
        assert codec.decode_step(through_a_file(codec.encode_step(step)), "s") == step
    for m in original.messages:
        assert codec.decode_message(through_a_file(codec.encode_message(m)), "m") == m
    for p in original.permission_decisions:
        assert codec.decode_permission(through_a_file(codec.encode_permission(p)), "p") == p
    for c in original.compactions:
        assert codec.decode_compaction(through_a_file(codec.encode_compaction(c)), "c") == c


def test_what_cannot_come_back_is_documented_and_marked() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "Odd(7)"

    nested: list[Any] = []
    nested.append(nested)  # a list holding itself
    rule = PermissionRule("greet", PermissionDecision.ALLOW, match=lambda args: True)
    outcome = PermissionOutcome("greet", {}, PermissionDecision.ALLOW, rule, "fits", "rule")
    run = Trajectory(
        steps=[Step(1, ToolCall("t", {"o": Odd()}), ToolResult("t", data=[Odd(), nested, 1e400]))],
        error=ValueError("bad"),
        permission_decisions=[outcome],
    )
    back = decode_trajectory(through_a_file(encode_trajectory(run)), "")
    marker = back.steps[0].tool_call.args["o"]
    assert marker[REPR_MARKER] == "Odd(7)" and marker["type"].endswith(".<locals>.Odd")
    odd, loop, inf = back.steps[0].tool_result.data
    assert odd[REPR_MARKER] == "Odd(7)" and inf == {REPR_MARKER: "inf", "type": "builtins.float"}
    assert codec.has_repr_marker(loop)  # cut where JSON readers would give up
    assert isinstance(back.error, LoopletError) and str(back.error) == "ValueError: bad"
    restored = back.permission_decisions[0].rule
    assert restored is not None and restored.describe() == "allow greet (with argument matcher)"
    with pytest.raises(LoopletError, match="matcher is code"):
        restored.match({})


# -- versioned and checked ----------------------------------------------------------------------


def test_a_document_names_its_format_and_a_newer_one_is_refused_with_the_fix() -> None:
    doc = trajectory_document(trajectory(random.Random(1)))
    assert next(iter(doc)) == "format" and doc["format"] == "looplet-record/1"
    codec.check_format(doc, "looplet-record", codec.FORMAT, required=True)
    with pytest.raises(DecodeError, match=r"newer looplet.*upgrade looplet") as info:
        codec.check_format(
            {"format": "looplet-record/2"}, "looplet-record", codec.FORMAT, required=True
        )
    assert info.value.where == "format"
    with pytest.raises(DecodeError, match="not a looplet looplet-record file"):
        codec.check_format({"format": "other/1"}, "looplet-record", codec.FORMAT, required=True)


def _mutations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _mutations(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _mutations(item, (*path, i))
    return found


@pytest.mark.parametrize("seed", range(40))
def test_a_damaged_record_fails_as_a_decode_error_naming_the_field(seed: int) -> None:
    rng = random.Random(seed)
    doc = encode_trajectory(trajectory(rng))
    for _ in range(25):
        damaged = json.loads(json.dumps(doc))
        path = rng.choice(_mutations(damaged)[1:])
        parent = damaged
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.3 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = rng.choice([None, "x", -1, 2.5, [], {}, True])
        try:
            decode_trajectory(damaged, "")
        except DecodeError as exc:  # nothing else may escape: no KeyError, no TypeError
            assert exc.where and exc.problem
            first = str(path[0])
            assert exc.where.startswith(first), (exc.where, path)


def test_a_bad_field_is_named_by_its_whole_path() -> None:
    run = Trajectory(
        children=[
            Trajectory(
                steps=[
                    Step(
                        1,
                        ToolCall("t"),
                        ToolResult.failure(ToolCall("t"), ToolError("timeout", "slow")),
                    )
                ]
            )
        ]
    )
    doc = encode_trajectory(run)
    doc["children"][0]["steps"][0]["tool_result"]["error_detail"]["kind"] = "melted"
    with pytest.raises(DecodeError, match="unknown error kind 'melted'") as info:
        decode_trajectory(doc, "")
    assert info.value.where == "children[0].steps[0].tool_result.error_detail.kind"


# -- one codec everywhere --------------------------------------------------------------------


def test_import_looplet_does_not_import_the_codec() -> None:
    code = "import sys, looplet; print(any(m.startswith('looplet.record') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_views_are_the_codec_form_trimmed() -> None:
    c = ToolCall("greet", {"name": "Ann"}, "why", "c1", raw_arguments='{"name": "Ann"}')
    step = Step(3, c, ToolResult("greet", "name='Ann'", {"ok": True}, duration_ms=1.23456789))
    full = codec.encode_step(step)
    view = step.to_dict()
    assert full["tool_call"]["raw_arguments"] == '{"name": "Ann"}'
    assert "raw_arguments" not in view["tool_call"]  # args say it all
    assert view["tool_result"]["duration_ms"] == 1.235
    full["tool_call"].pop("raw_arguments")
    full["tool_result"]["duration_ms"] = 1.235
    assert view == full
    row = json.loads(trajectory_json(Trajectory(steps=[step])))["steps"][0]
    assert row == {
        "n": 3,
        "tool": "greet",
        "args": '{"name": "Ann"}',
        "ok": True,
        "result": '{"ok": true}',
        "error": None,
        "ms": 1.2,
        "reasoning": "why",
    }


def decisions(run: Trajectory) -> list[tuple[Any, ...]]:
    """Every field of the permission decisions; a rule by its fields and ``describe()`` (its
    matcher, being code, comes back as a stand-in)."""
    return [
        (d.tool, d.args, d.decision, d.reason, d.decided_by, d.asked, d.at, d.step)
        + ((d.rule.tool, d.rule.decision, d.rule.reason, d.rule.describe()) if d.rule else ())
        for d in run.permission_decisions
    ]


def _recorded_run(tmp_path: Path) -> tuple[Trajectory, Path, FileCheckpointStore]:
    """A run with a tool error, a denial, unicode and a compaction, checkpointed and recorded."""
    from looplet.compact import ContextBudget

    read = ToolSpec("read", "Read.", {"part": "int"}, lambda *, part: f"{part}:ü" + "x" * 1500)

    def boom(*, why: str) -> None:
        raise ToolError("execution", f"boom {why}", True, {"why": why, "n": [1.5, None]})

    script = [
        [ToolCall("greet", {"name": "Ann"}, call_id="g1")],
        [ToolCall("greet", {"name": "Di"}, call_id="g2")],
        [ToolCall("read", {"part": 0}, call_id="r0")],
        [ToolCall("boom", {"why": "ü"}, call_id="b1")],
        [ToolCall("read", {"part": 2}, call_id="r2")],
        [ToolCall("read", {"part": 3}, call_id="r3")],
        [ToolCall("done", {"answer": "fini ✓"}, call_id="d")],
    ]
    engine = PermissionEngine(
        [
            PermissionRule("greet", PermissionDecision.DENY, match={"name": "Di"}),
            PermissionRule("greet", PermissionDecision.ALLOW, reason="Ann ✓"),
            PermissionRule("read", PermissionDecision.ALLOW),
            PermissionRule("boom", PermissionDecision.ALLOW),
            PermissionRule("done", PermissionDecision.ALLOW),
        ]
    )
    sink = ProvenanceSink(tmp_path / "run")
    store = FileCheckpointStore(tmp_path / "checkpoints")
    llm = MockLLMBackend(
        [lambda r: script[sum(m.role == "assistant" for m in r.messages)]], cycle=True
    )
    loop = composable_loop(
        sink.wrap_llm(llm),
        task={"goal": "read ✓"},
        tools=make_tools(read=read, boom=ToolSpec("boom", "Fails.", {"why": "str"}, boom)),
        hooks=[PermissionHook(engine), sink.trajectory_hook()],
        config=LoopConfig(
            max_steps=10, context_budget=ContextBudget(max_tokens=1200, use_reported_usage=False)
        ),
        checkpoint=store,
    )
    list(loop)
    return loop.trajectory, tmp_path / "run", store


def test_a_recorded_run_and_its_checkpoints_read_back_as_the_run_was(tmp_path: Path) -> None:
    live, run_dir, store = _recorded_run(tmp_path)
    assert live.compactions and live.permission_decisions and not live.steps[1].ok
    assert live.steps[3].tool_result.error_detail == ToolError(
        "execution", "boom ü", True, {"why": "ü", "n": [1.5, None]}
    )
    # The saved run that `looplet eval` and `looplet show` read: the whole record.
    ctx = EvalContext.from_trajectory_dir(run_dir)
    assert ctx.trajectory is not None
    assert ctx.trajectory.messages == live.messages
    assert ctx.trajectory.steps == live.steps
    assert decisions(ctx.trajectory) == decisions(live)
    assert [d.rule.match is None for d in ctx.trajectory.permission_decisions if d.rule] == [
        d.rule.match is None for d in live.permission_decisions if d.rule
    ]
    assert ctx.trajectory.compactions == live.compactions
    assert (ctx.trajectory.usage, ctx.trajectory.elapsed_ms) == (live.usage, live.elapsed_ms)
    assert load_run(run_dir).to_trajectory() == ctx.trajectory
    step_file = json.loads((run_dir / "steps" / "step_0002.json").read_text(encoding="utf-8"))
    assert step_file == {"format": "looplet-record/1", **live.steps[1].to_dict()}
    assert load_run(run_dir).steps == [s.to_dict() for s in live.steps]
    # The checkpoint holds the same values through the same codec.
    checkpoint = store.load_latest()
    assert checkpoint is not None
    assert list(checkpoint.steps) == live.steps and list(checkpoint.messages) == live.messages
    assert [CompactionRecord(**c) for c in checkpoint.compactions] == live.compactions


def test_a_bad_saved_run_names_the_file_the_field_and_the_fix(tmp_path: Path) -> None:
    _, run_dir, _ = _recorded_run(tmp_path)
    file = run_dir / "trajectory.json"
    doc = json.loads(file.read_text(encoding="utf-8"))
    doc["steps"][1]["tool_result"]["error_detail"]["retriable"] = "maybe"
    file.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(
        TrajectoryLoadError, match=r"steps\[1\]\.tool_result\.error_detail\.retriable"
    ) as info:
        EvalContext.from_trajectory_dir(run_dir)
    assert info.value.path == file and "fix that field" in str(info.value)
    with pytest.raises(ProvenanceError, match=r"trajectory\.json.*retriable.*record the run again"):
        load_run(run_dir)
    doc["steps"][1]["tool_result"]["error_detail"]["retriable"] = True
    doc["format"] = "looplet-record/9"
    file.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(TrajectoryLoadError, match=r"newer looplet.*upgrade looplet"):
        EvalContext.from_trajectory_dir(run_dir)
    file.unlink()  # the steps alone: each file is checked too
    step_file = run_dir / "steps" / "step_0003.json"
    step = json.loads(step_file.read_text(encoding="utf-8"))
    step_file.write_text(json.dumps({**step, "step": -3}), encoding="utf-8")
    with pytest.raises(TrajectoryLoadError, match="field step: expected a non-negative") as info:
        EvalContext.from_trajectory_dir(run_dir)
    assert info.value.path == step_file
    with pytest.raises(ProvenanceError, match=r"step_0003\.json.*field step"):
        load_run(run_dir)


# -- files written before the codec still load ------------------------------------------------


def _expected(name: str) -> dict[str, Any]:
    return json.loads((DATA / name / "expected.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["kitchen", "compacting"])
def test_checkpoints_written_before_the_codec_load(tmp_path: Path, name: str) -> None:
    shutil.copytree(DATA / name / "checkpoints", tmp_path / "runs")
    store = FileCheckpointStore(tmp_path / "runs")
    whole = decode_trajectory(_expected(name)["trajectory"], "expected")
    (run_id,) = store.runs()
    checkpoint = store.load_latest(run_id)
    assert checkpoint is not None and checkpoint.ended and not store.skipped
    assert list(checkpoint.steps) == whole.steps
    assert list(checkpoint.children) == whole.children
    assert [CompactionRecord(**c) for c in checkpoint.compactions] == whole.compactions
    assert decisions(checkpoint.trajectory()) == decisions(whole)
    assert (checkpoint.usage, checkpoint.stop_reason) == (whole.usage, whole.stop_reason)
    for step in range(1, len(whole.steps) + 1):  # every step of the journal reads back
        assert list(store.load(run_id, step).steps) == whole.steps[:step]


@pytest.mark.parametrize("name", ["kitchen", "compacting"])
def test_provenance_dirs_written_before_the_codec_load(name: str) -> None:
    run_dir = DATA / name / "provenance"
    then = decode_trajectory(_expected(name)["to_dict"], "expected")  # Trajectory.to_dict()
    recorded = load_run(run_dir)
    assert (
        json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["format"]
        == "looplet-provenance/1"
    )
    assert recorded.to_trajectory() == then
    ctx = EvalContext.from_trajectory_dir(run_dir)
    assert ctx.trajectory == then and ctx.steps == then.steps
    assert ctx.trajectory.messages and ctx.stop_reason is StopReason.DONE
    lossless = decode_trajectory(_expected(name)["trajectory"], "expected")
    assert [(s.tool_call, s.tool_result.error_detail) for s in ctx.steps] == [
        (s.tool_call, s.tool_result.error_detail) for s in lossless.steps
    ]
    assert "steps:" in recorded.summary()


@pytest.mark.parametrize("name", ["kitchen", "compacting"])
def test_the_report_trajectory_keeps_the_keys_it_was_written_with(name: str) -> None:
    old = json.loads((DATA / name / "report_trajectory.json").read_text(encoding="utf-8"))
    run = decode_trajectory(_expected(name)["trajectory"], "expected")
    run.elapsed_ms = old["elapsed_ms"]
    new = json.loads(trajectory_json(run, old["model"]))
    assert list(new) == list(old)
    # A step may gain keys (the model's turn and text, permission, error kind), after the old.
    assert [list(s)[: len(b)] for s, b in zip(new["steps"], old["steps"], strict=True)] == [
        list(s) for s in old["steps"]
    ]
    for before, now in zip(old["steps"], new["steps"], strict=True):
        if "Odd(7)" in str(before["result"]):  # kept by its repr, now marked as such
            assert "Odd(7)" in now["result"] and REPR_MARKER in now["result"]
            continue
        assert {k: now[k] for k in before} | {"ms": None} == {**before, "ms": None}
