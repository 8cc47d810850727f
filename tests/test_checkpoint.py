"""Checkpoints: what is saved and when, sound resume over both drivers, and every bad input.

A run "dies" here by being abandoned after k steps (its step-k checkpoint is written before
step k is handed over) or by a tool raising a BaseException the loop does not catch. The
scripted model answers from the conversation (how many assistant turns it has), so a resumed
run gets the same replies an uninterrupted one did. The SIGKILL version of these is
tests/test_resume_kill.py.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from looplet import (
    BaseToolRegistry,
    ConfigurationError,
    DefaultState,
    ErrorKind,
    InjectContext,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolSpec,
    Trajectory,
    async_composable_loop,
    composable_loop,
)
from looplet.backends.base import LLMRequest
from looplet.checkpoint import FORMAT, Checkpoint, FileCheckpointStore, resume_loop_state
from looplet.errors import CheckpointError
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from tests.conftest import make_tools

TASK = {"goal": "Greet three people, then finish."}


def greet(name: str, call_id: str) -> ToolCall:
    return ToolCall("greet", {"name": name}, call_id=call_id)


DONE = ToolCall("done", {"answer": "Greeted all."}, call_id="d")
# Five steps in three turns; the second turn makes three calls.
TURNS: list[list[ToolCall]] = [
    [greet("Ann", "a")],
    [greet("Bob", "b"), greet("Cy", "c"), greet("Di", "e")],
    [DONE],
]


class Model:
    """A scripted model whose next turn is decided by the conversation (sync and async)."""

    def __init__(self, turns: Sequence[Sequence[ToolCall]] = TURNS) -> None:
        self.turns = turns

    def reply(self, request: LLMRequest) -> list[ToolCall]:
        return list(self.turns[sum(1 for m in request.messages if m.role == "assistant")])

    def sync(self) -> MockLLMBackend:
        return MockLLMBackend([self.reply], cycle=True)

    def async_(self) -> AsyncMockLLMBackend:
        return AsyncMockLLMBackend([self.reply], cycle=True)


class Crash(BaseException):
    """Stands for the process dying: the loop catches no BaseException from a tool."""


def strip(trajectory: Trajectory) -> dict[str, Any]:
    """What a resumed run must reproduce: steps (without timing), messages, stop, budget."""
    steps = []
    for step in trajectory.steps:
        d = step.to_dict()
        d["tool_result"].pop("duration_ms")
        steps.append(d)
    return {
        "steps": steps,
        "messages": [m.to_dict() for m in trajectory.messages],
        "stop": (trajectory.stop_reason, trajectory.stop_detail),
        "llm_calls": trajectory.llm_calls,
        "usage": trajectory.usage,
    }


def run(driver: str, *, stop_after: int | None = None, **kwargs: Any) -> Trajectory:
    """Run a loop with ``driver``; with ``stop_after``, abandon it after that many steps."""
    kwargs.setdefault("tools", make_tools())
    kwargs.setdefault("config", LoopConfig(max_steps=10))
    model = kwargs.pop("model", Model())
    if driver == "sync":
        loop = composable_loop(model.sync(), **kwargs)
        for n, _ in enumerate(loop, 1):
            if n == stop_after:
                break
        return loop.trajectory

    async def go() -> Trajectory:
        aloop = async_composable_loop(model.async_(), **kwargs)
        n = 0
        async for _ in aloop:
            n += 1
            if n == stop_after:
                break
        return aloop.trajectory

    return asyncio.run(go())


@pytest.fixture
def store(tmp_path: Path) -> FileCheckpointStore:
    return FileCheckpointStore(tmp_path / "runs")


@pytest.fixture
def uninterrupted() -> dict[str, Any]:
    return strip(run("sync", task=TASK))


def only_run_dir(store: FileCheckpointStore) -> Path:
    (run_id,) = store.runs()
    return store.run_dir(run_id)


# -- what is saved, and when -----------------------------------------------------------------


def test_a_checkpoint_is_written_after_every_step_and_at_the_end(
    store: FileCheckpointStore,
) -> None:
    trajectory = run("sync", task=TASK, checkpoint=store)
    assert trajectory.stop_reason is StopReason.DONE
    run_dir = only_run_dir(store)
    # A snapshot of step 1; then a journal: its header, a line per step, one for the end.
    assert sorted(p.name for p in run_dir.iterdir()) == ["step-0001.journal", "step-0001.json"]
    assert len((run_dir / "step-0001.journal").read_bytes().splitlines()) == 1 + 4 + 1
    doc = json.loads((run_dir / "step-0001.json").read_text())
    assert doc["format"] == FORMAT == "looplet-checkpoint/1"
    assert (doc["step"], doc["ended"], doc["stop_reason"]) == (1, False, None)
    second = store.load(store.runs()[0], 2)
    assert (second.step, second.ended, second.stop_reason) == (2, False, None)
    assert [c.call_id for c in second.pending_calls] == ["c", "e"]
    assert (second.queries_used, second.llm_calls) == (2, 2)
    assert second.tool_names == ("done", "greet")
    roles = [m.role for m in second.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool"]
    end = store.load_latest()
    assert end is not None
    assert (end.step, end.ended, end.stop_reason, end.pending_calls) == (
        5,
        True,
        StopReason.DONE,
        (),
    )


def test_the_checkpoint_of_a_step_exists_before_the_caller_sees_the_step(
    store: FileCheckpointStore,
) -> None:
    loop = composable_loop(Model().sync(), task=TASK, tools=make_tools(), checkpoint=store)
    for step in loop:
        saved = FileCheckpointStore(store.directory).load_latest()  # read from the disk anew
        assert saved is not None and (saved.step, saved.ended) == (step.number, False)


def test_a_checkpoint_round_trips_exactly(store: FileCheckpointStore) -> None:
    bad_args = ToolCall("greet", call_id="x", raw_arguments='{"name": ', parse_error="cut")
    model = Model([[greet("Ann", "a"), ToolCall("nope", {}, call_id="n"), bad_args], [DONE]])
    run("sync", task=TASK, checkpoint=store, model=model)
    for n in range(1, 5):
        checkpoint = store.load(store.runs()[0], n)
        assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    for path in only_run_dir(store).iterdir():  # a snapshot's path, or a journal's (its last)
        checkpoint = resume_loop_state(path) if path.suffix == ".json" else store.load_latest()
        assert checkpoint is not None
        assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    last = store.load(store.runs()[0], 4)
    assert last.steps[1].tool_result.error_detail is not None
    assert last.steps[1].tool_result.error_detail.kind is ErrorKind.UNKNOWN_TOOL
    assert last.steps[2].tool_call == bad_args


def test_tool_data_that_json_cannot_hold_is_stored_by_repr_with_a_marker(
    store: FileCheckpointStore,
) -> None:
    class Order:
        def __repr__(self) -> str:
            return "Order(1042)"

    tools = make_tools(
        fetch=ToolSpec(
            "fetch",
            "Fetch.",
            None,
            lambda: {"order": Order(), "pair": (1, 2), "n": float("nan"), "ok": [True, None]},
        )
    )
    model = Model([[ToolCall("fetch", {}, call_id="f")], [DONE]])
    run("sync", task=TASK, tools=tools, checkpoint=store, model=model)
    data = store.load(store.runs()[0], 1).steps[0].tool_result.data
    assert data["order"]["__looplet_repr__"] == "Order(1042)"
    assert data["order"]["type"].endswith("Order")
    assert data["n"] == {"__looplet_repr__": "nan", "type": "builtins.float"}
    assert (data["pair"], data["ok"]) == ([1, 2], [True, None])


# -- resuming --------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("stop_after", [1, 2, 3, 4, 5])
def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(
    store: FileCheckpointStore, uninterrupted: dict[str, Any], driver: str, stop_after: int
) -> None:
    state = DefaultState(max_steps=10)
    run("sync", task=TASK, checkpoint=store, stop_after=stop_after)
    resumed = run(driver, state=state, checkpoint=store, resume=store)
    assert strip(resumed) == uninterrupted
    assert state.queries_used == 4  # the four greets (done does not count), once each
    assert resumed.task == TASK  # taken from the checkpoint when not given


def test_sync_and_async_resume_give_identical_trajectories(tmp_path: Path) -> None:
    first = FileCheckpointStore(tmp_path / "a")
    run("sync", task=TASK, checkpoint=first, stop_after=2)
    checkpoint = resume_loop_state(first)
    by_sync = run("sync", resume=checkpoint)
    by_async = run("async", resume=checkpoint)
    assert strip(by_sync) == strip(by_async)
    assert by_sync.steps[-1].tool_call.tool == "done"


def test_the_rest_of_an_interrupted_turn_runs_without_asking_the_model_again(
    store: FileCheckpointStore, uninterrupted: dict[str, Any]
) -> None:
    run("sync", task=TASK, checkpoint=store, stop_after=2)  # after Bob; Cy and Di pending
    llm = Model().sync()
    loop = composable_loop(llm, tools=make_tools(), checkpoint=store, resume=store)
    steps = list(loop)
    assert [s.tool_call.args.get("name") for s in steps] == ["Cy", "Di", None]
    assert llm.calls == 1  # only the turn after the interrupted one
    assert strip(loop.trajectory) == uninterrupted


def test_a_call_killed_mid_tool_runs_again_and_nothing_else_does(
    store: FileCheckpointStore,
) -> None:
    ran: list[str] = []
    crash_on = ["Cy"]

    def greet_tool(*, name: str) -> str:
        ran.append(name)
        if name in crash_on:
            crash_on.remove(name)
            raise Crash
        return f"Hello, {name}!"

    def tools() -> BaseToolRegistry:
        return make_tools(hi=ToolSpec("hi", "Greet.", {"name": "str"}, greet_tool))

    model = Model([[ToolCall("hi", {"name": n}, call_id=n) for n in ("Ann", "Bob", "Cy")], [DONE]])
    with pytest.raises(Crash):
        run("sync", task=TASK, tools=tools(), checkpoint=store, model=model)
    resumed = run("sync", tools=tools(), checkpoint=store, resume=store, model=model)
    assert ran == ["Ann", "Bob", "Cy", "Cy"]
    assert [s.tool_result.data for s in resumed.steps[:3]] == [
        f"Hello, {n}!" for n in ("Ann", "Bob", "Cy")
    ]


def test_calls_screened_with_their_group_are_not_charged_twice(store: FileCheckpointStore) -> None:
    tools = make_tools(
        look=ToolSpec("look", "Look.", {"at": "str"}, lambda *, at: at, concurrent_safe=True)
    )
    looks = [ToolCall("look", {"at": x}, call_id=x) for x in "xyz"]
    model = Model([looks, [DONE]])
    whole_state = DefaultState(max_steps=10)
    whole = run("sync", task=TASK, tools=tools, state=whole_state, model=model)
    run("sync", task=TASK, tools=tools, checkpoint=store, stop_after=1, model=model)
    assert resume_loop_state(store).queries_used == 1  # y and z were charged, not recorded
    state = DefaultState(max_steps=10)
    resumed = run("sync", tools=tools, state=state, checkpoint=store, resume=store, model=model)
    assert strip(resumed) == strip(whole)
    assert state.queries_used == whole_state.queries_used == 3


def test_the_budget_used_is_not_granted_again(store: FileCheckpointStore) -> None:
    model = Model([[greet(n, n)] for n in ("Ann", "Bob", "Cy", "Di")])
    config = LoopConfig(max_steps=3)
    run("sync", task=TASK, config=config, checkpoint=store, stop_after=2, model=model)
    resumed = run("sync", config=config, checkpoint=store, resume=store, model=model)
    assert [s.tool_call.args["name"] for s in resumed.steps] == ["Ann", "Bob", "Cy"]
    assert resumed.stop_reason is StopReason.MAX_STEPS
    assert resumed.llm_calls == 3


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_a_budget_spent_in_the_middle_of_a_turn_resumes_to_the_same_end(
    store: FileCheckpointStore, stop_after: int
) -> None:
    model = Model([[greet(n, n) for n in ("Ann", "Bob", "Cy")], [DONE]])
    config = LoopConfig(max_steps=2)
    whole = run("sync", task=TASK, config=config, model=model)
    assert whole.steps[2].tool_result.error_kind is ErrorKind.CANCELLED  # Cy: not run
    run("sync", task=TASK, config=config, checkpoint=store, stop_after=stop_after, model=model)
    resumed = run("sync", config=config, checkpoint=store, resume=store, model=model)
    assert strip(resumed) == strip(whole)
    assert resumed.stop_reason is StopReason.MAX_STEPS


@pytest.mark.parametrize("stop_after", [2, 5])
def test_a_compacted_conversation_and_its_compactions_survive_a_resume(
    store: FileCheckpointStore, stop_after: int
) -> None:
    from looplet.compact import ContextBudget

    class Reader(Model):
        def reply(self, request: LLMRequest) -> list[ToolCall]:
            # The next part follows the last one read (old turns may have been compacted away).
            last = [m.content for m in request.messages if m.role == "tool"]
            part = int(last[-1].split(":")[0]) + 1 if last else 0
            return [DONE] if part == 6 else [ToolCall("read", {"part": part}, call_id=f"r{part}")]

    tools = make_tools(
        read=ToolSpec("read", "Read.", {"part": "int"}, lambda *, part: f"{part}:" + "x" * 1500)
    )
    budget = ContextBudget(max_tokens=1200, use_reported_usage=False)
    config = LoopConfig(max_steps=10, context_budget=budget)
    whole = run("sync", task=TASK, tools=tools, config=config, model=Reader())
    assert whole.stop_reason is StopReason.DONE and len(whole.compactions) >= 2
    options: dict[str, Any] = {"tools": tools, "config": config, "checkpoint": store}
    run("sync", task=TASK, model=Reader(), stop_after=stop_after, **options)
    resumed = run("sync", model=Reader(), resume=store, **options)
    assert strip(resumed) == strip(whole)
    assert resumed.compactions == whole.compactions


def test_hook_context_waiting_for_the_next_turn_survives_a_resume(
    store: FileCheckpointStore,
) -> None:
    class Note:
        def post_dispatch(self, step_num: int) -> Any:
            return InjectContext(f"noted step {step_num}") if step_num == 4 else None

    whole = run("sync", task=TASK, hooks=[Note()])
    run("sync", task=TASK, hooks=[Note()], checkpoint=store, stop_after=4)
    assert resume_loop_state(store).pending_context == ("noted step 4",)
    resumed = run("sync", hooks=[Note()], checkpoint=store, resume=store)
    assert strip(resumed) == strip(whole)
    assert any(m.content == "noted step 4" for m in resumed.messages)


def test_a_run_whose_last_step_was_saved_but_not_its_end_finishes_without_work(
    store: FileCheckpointStore, uninterrupted: dict[str, Any]
) -> None:
    run("sync", task=TASK, checkpoint=store)
    journal = only_run_dir(store) / "step-0001.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]))  # the end's line never reached the disk
    llm = Model().sync()
    loop = composable_loop(llm, tools=make_tools(), checkpoint=store, resume=store)
    assert list(loop) == []
    assert strip(loop.trajectory) == uninterrupted
    assert llm.requests == []
    end = store.load_latest()
    assert end is not None and (end.step, end.ended) == (5, True)


def test_an_empty_store_starts_a_new_run(store: FileCheckpointStore) -> None:
    trajectory = run("sync", task=TASK, checkpoint=store, resume=store)
    assert trajectory.stop_reason is StopReason.DONE and len(trajectory.steps) == 5


def test_a_finished_run_is_not_resumed_and_restart_starts_a_new_one(
    store: FileCheckpointStore,
) -> None:
    run("sync", task=TASK, checkpoint=store)
    first = store.runs()[0]
    with pytest.raises(CheckpointError) as info:
        run("sync", task=TASK, checkpoint=store, resume=store)
    message = str(info.value)
    assert f"{first!r} already ended at step 5 (stop reason 'done'" in message
    assert "step-0001.journal at step 5 (its end)" in message and "restart=True" in message
    assert f"resume_loop_state({store!r}, run_id={first!r}, step=5)" in message
    with pytest.raises(CheckpointError, match="already ended"):
        resume_loop_state(store)

    again = run("sync", task=TASK, checkpoint=store, resume=store, restart=True)
    assert len(again.steps) == 5
    assert len(store.runs()) == 2


def test_resuming_an_older_checkpoint_keeps_the_later_ones_as_another_run(
    store: FileCheckpointStore,
) -> None:
    run("sync", task=TASK, checkpoint=store)
    first = store.runs()[0]
    older = resume_loop_state(store, run_id=first, step=3)
    resumed = run("sync", checkpoint=store, resume=older)
    assert resumed.stop_reason is StopReason.DONE
    assert len(store.runs()) == 2
    kept = store.load_latest(first)  # the first run is left as it was
    assert kept is not None and (kept.step, kept.ended) == (5, True)


def test_a_new_run_does_not_overwrite_a_run_with_the_same_session_id(
    store: FileCheckpointStore,
) -> None:
    config = LoopConfig(max_steps=10, session_id="refund-42")
    run("sync", task=TASK, config=config, checkpoint=store)
    assert store.runs() == ["refund-42"]
    with pytest.raises(CheckpointError, match="'refund-42' already has checkpoints"):
        run("sync", task=TASK, config=config, checkpoint=store)


def test_a_different_task_is_refused(store: FileCheckpointStore) -> None:
    run("sync", task=TASK, checkpoint=store, stop_after=1)
    with pytest.raises(CheckpointError, match="the task differs"):
        run("sync", task={"goal": "Something else."}, resume=store)


def test_a_different_tool_set_is_refused_listing_the_differences(
    store: FileCheckpointStore,
) -> None:
    run("sync", task=TASK, checkpoint=store, stop_after=1)
    tools = BaseToolRegistry()
    tools.register(ToolSpec("wave", "Wave.", None, lambda: "~"))
    tools.register(ToolSpec("done", "Finish.", {"answer": "str"}, lambda *, answer: answer))
    with pytest.raises(CheckpointError) as info:
        run("sync", tools=tools, resume=store)
    assert "Missing now: greet. Added since: wave." in str(info.value)
    assert "step-0001.json" in str(info.value)


def test_bad_arguments_are_configuration_errors(store: FileCheckpointStore) -> None:
    with pytest.raises(ConfigurationError, match="restart=True only applies with resume="):
        run("sync", task=TASK, restart=True)
    with pytest.raises(ConfigurationError, match="checkpoint= takes a FileCheckpointStore"):
        run("sync", task=TASK, checkpoint="runs")
    with pytest.raises(ConfigurationError, match="resume= takes a FileCheckpointStore"):
        run("sync", task=TASK, resume="runs/step-0001.json")


# -- bad files: tests/test_checkpoint_journal.py ------------------------------------------------


def test_nothing_to_resume_names_the_folder(store: FileCheckpointStore) -> None:
    with pytest.raises(CheckpointError, match=r"nothing to resume: .* holds no checkpoint"):
        resume_loop_state(store)
    with pytest.raises(CheckpointError, match="needs run_id= too"):
        resume_loop_state(store, step=3)


@pytest.mark.parametrize("run_id", ["../evil", "/etc", "a/b", "a\\b", "..", ".", "", ".hidden"])
def test_run_ids_cannot_leave_the_store(store: FileCheckpointStore, run_id: str) -> None:
    with pytest.raises(CheckpointError, match="invalid run id"):
        store.run_dir(run_id)
    with pytest.raises(CheckpointError, match="invalid run id"):
        store.save(Checkpoint(run_id=run_id, step=1))
    with pytest.raises(CheckpointError, match="invalid run id"):
        store.load_latest(run_id)
    with pytest.raises(CheckpointError, match="invalid run id"):
        run("sync", task=TASK, config=LoopConfig(session_id=run_id or "/"), checkpoint=store)
    assert not (store.directory.parent / "evil").exists()


# -- failed writes -----------------------------------------------------------------------------


def fail_journal_write(monkeypatch: pytest.MonkeyPatch, line_holds: bytes) -> None:
    """Make the append of the journal line holding ``line_holds`` fail: a full disk."""
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if line_holds in bytes(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_full_disk_stops_the_run_and_keeps_the_previous_checkpoint(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    fail_journal_write(monkeypatch, b'{"step":3,')
    with pytest.raises(CheckpointError) as info:
        run(driver, task=TASK, checkpoint=store)
    error = info.value
    message = str(error)
    run_dir = only_run_dir(store)
    assert f"could not write checkpoint {run_dir / 'step-0001.journal'}" in message
    assert "No space left on device" in message
    assert "the checkpoints up to step 2 are intact" in message
    assert "free disk space" in message and f"resume={store!r}" in message
    assert (error.path, error.step) == (run_dir / "step-0001.journal", 3)
    assert error.trajectory is not None and len(error.trajectory.steps) >= 3
    assert error.trajectory.stop_reason is StopReason.CANCELLED
    saved = FileCheckpointStore(store.directory).load_latest()
    assert saved is not None and (saved.step, saved.ended) == (2, False)

    monkeypatch.undo()
    resumed = run(driver, checkpoint=store, resume=store)
    assert resumed.stop_reason is StopReason.DONE and len(resumed.steps) == 5


def test_a_failed_end_checkpoint_is_raised_and_the_run_can_still_be_closed(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_journal_write(monkeypatch, b'"ended":true')
    with pytest.raises(CheckpointError, match=r"step-0001\.journal: .*No space left") as info:
        run("sync", task=TASK, checkpoint=store)
    assert info.value.trajectory is not None
    assert info.value.trajectory.stop_reason is StopReason.DONE  # the run itself had ended
    assert info.value.trajectory.error is info.value

    monkeypatch.undo()
    llm = Model().sync()
    loop = composable_loop(llm, tools=make_tools(), checkpoint=store, resume=store)
    assert list(loop) == [] and llm.requests == []
    assert loop.trajectory.stop_reason is StopReason.DONE
    end = store.load_latest()
    assert end is not None and (end.step, end.ended) == (5, True)


def test_no_permission_to_write_is_a_clear_error(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(CheckpointError) as info:
        run("sync", task=TASK, checkpoint=store)
    message = str(info.value)
    assert "step-0001.json: [Errno 13] Permission denied" in message
    assert "no earlier checkpoint of this run exists" in message and "writable" in message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_folder_stops_the_run(store: FileCheckpointStore) -> None:
    run("sync", task=TASK, checkpoint=store, stop_after=1)
    run_dir = only_run_dir(store)
    run_dir.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="Permission denied"):
            run("sync", checkpoint=store, resume=store)
    finally:
        run_dir.chmod(0o700)
    assert [p.name for p in run_dir.iterdir()] == ["step-0001.json"]


def test_load_latest_picks_the_newest_run(store: FileCheckpointStore) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run("sync", task=TASK, config=LoopConfig(session_id="old"), checkpoint=store, stop_after=1)
        run("sync", task=TASK, config=LoopConfig(session_id="new"), checkpoint=store, stop_after=2)
    latest = store.load_latest()
    assert latest is not None and (latest.run_id, latest.step) == ("new", 2)
    older = store.load_latest("old")
    assert older is not None and older.step == 1
    assert store.load_latest("missing") is None
    assert store.runs() == ["new", "old"]
    assert resume_loop_state(store, run_id="old").trajectory().steps[0].number == 1
