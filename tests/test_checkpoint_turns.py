"""Checkpoints keep the model turns: a resumed run's ``Trajectory.turns`` has every turn once.

A step-N checkpoint holds every turn recorded by then: the turns up to and including the one
whose calls made step N (its calls after step N still pending). A resumed run runs those
pending calls without asking the model again, so that turn is not made twice; a model call
whose first step never reached the disk is lost with its ``llm_calls`` count and made again.
Each journal line carries only the turns added since the line before.

The agent is tests/_checkpoint_agent.py's (six ``tick`` steps, three of them in one turn,
then ``done``), with a model that reports different tokens for each turn. Run as a module,
this file is the child process the SIGKILL tests kill::

    python -m tests.test_checkpoint_turns WORKSPACE [--block-at N] [--crash-at SPEC]
        [--fold] [--async]

It resumes the newest run in ``WORKSPACE/runs`` and writes ``WORKSPACE/result.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from looplet import DefaultState, LoopConfig, Trajectory, async_composable_loop, composable_loop
from looplet._checkpoint_doc import checkpoint_doc, list_sizes
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.checkpoint import Checkpoint, FileCheckpointStore, resume_loop_state
from looplet.record.codec import decode_turn
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from looplet.types import Turn, Usage
from tests import _checkpoint_agent as agent
from tests.test_resume_kill import kill_when

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent
DEADLINE_S = 20.0


def usage_of(turn: int) -> Usage:
    """The tokens the model reports for its ``turn``-th reply (each turn's differ)."""
    return Usage(input_tokens=100 + 10 * turn, output_tokens=5 + turn)


def reply(request: LLMRequest) -> LLMResponse:
    """The agent's model: its next turn (and tokens) decided by the conversation so far."""
    turn = sum(1 for m in request.messages if m.role == "assistant")
    return LLMResponse(tool_calls=tuple(agent.TURNS[turn]), usage=usage_of(turn))


def shape(turns: list[Turn] | tuple[Turn, ...]) -> list[tuple[int, int, Usage]]:
    """What a resumed run must reproduce of its turns: all but their durations."""
    return [(t.step, t.calls, t.usage) for t in turns]


def run_agent(
    workspace: Path, *, block_at: int | None = None, use_async: bool = False
) -> dict[str, Any]:
    """Run (or resume) the agent in ``workspace``; return its turns and what they explain."""
    workspace.mkdir(parents=True, exist_ok=True)
    store = FileCheckpointStore(workspace / "runs")
    tools = agent.make_tools(workspace, block_at)
    config = LoopConfig(max_steps=10)
    options: dict[str, Any] = {"checkpoint": store, "resume": store}
    if use_async:
        allm = AsyncMockLLMBackend([reply], cycle=True)

        async def go() -> Trajectory:
            loop = async_composable_loop(
                allm, agent.TASK, tools, state=DefaultState(max_steps=10), config=config, **options
            )
            async for _ in loop:
                pass
            return loop.trajectory

        trajectory = asyncio.run(go())
        requests = allm.calls
    else:
        llm = MockLLMBackend([reply], cycle=True)
        loop = composable_loop(
            llm, agent.TASK, tools, state=DefaultState(max_steps=10), config=config, **options
        )
        for _ in loop:
            pass
        trajectory = loop.trajectory
        requests = llm.calls
    turn_of = [trajectory.turn_of(n) for n in range(1, len(trajectory.steps) + 1)]
    return {
        "turns": [t.to_dict() for t in trajectory.turns],
        "turn_of": [t.step if t is not None else None for t in turn_of],
        "usage": trajectory.usage.to_dict(),
        "llm_calls": trajectory.llm_calls,
        "model_requests": requests,
        "stop_reason": trajectory.stop_reason,
    }


def without_durations(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in t.items() if k != "duration_ms"} for t in turns]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.test_checkpoint_turns")
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--block-at", type=int)
    parser.add_argument("--crash-at")
    parser.add_argument("--fold", action="store_true")
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args(argv)
    args.workspace.mkdir(parents=True, exist_ok=True)
    if args.fold:
        agent.fold_after_every_checkpoint()
    if args.crash_at is not None:
        agent.crash_at(args.workspace, args.crash_at)
    result = run_agent(args.workspace, block_at=args.block_at, use_async=args.use_async)
    (args.workspace / "result.json").write_text(json.dumps(result))
    return 0


# -- the tests -----------------------------------------------------------------------------


def child(workspace: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tests.test_checkpoint_turns", str(workspace), *args],
        cwd=ROOT,
        capture_output=True,
        timeout=DEADLINE_S,
    )


def result_of(workspace: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((workspace / "result.json").read_text())
    return result


@pytest.fixture
def uninterrupted(tmp_path: Path) -> dict[str, Any]:
    result = run_agent(tmp_path / "uninterrupted")
    # Five turns: ticks 1 and 2, ticks 3-5 at once, tick 6, done (step 7).
    assert [(t["step"], t["calls"]) for t in result["turns"]] == [
        (1, 1), (2, 1), (3, 3), (6, 1), (7, 1)
    ]  # fmt: skip
    assert result["turn_of"] == [1, 2, 3, 3, 3, 6, 7]
    return result


def assert_same_turns(resumed: dict[str, Any], uninterrupted: dict[str, Any]) -> None:
    assert without_durations(resumed["turns"]) == without_durations(uninterrupted["turns"])
    assert resumed["turn_of"] == uninterrupted["turn_of"]
    assert resumed["usage"] == uninterrupted["usage"]
    assert resumed["llm_calls"] == uninterrupted["llm_calls"] == 5


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_run_killed_mid_turn_resumes_with_every_turn_once(
    tmp_path: Path, uninterrupted: dict[str, Any], driver: str
) -> None:
    workspace = tmp_path / "killed"
    started = subprocess.Popen(
        [sys.executable, "-m", "tests.test_checkpoint_turns", str(workspace), "--block-at", "4"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    kill_when(workspace / "started-4", started)

    # On disk: step 3, the first call of the third turn, whose calls 4 and 5 are pending.
    saved = FileCheckpointStore(workspace / "runs").load_latest()
    assert saved is not None and (saved.step, saved.ended) == (3, False)
    assert [c.args["n"] for c in saved.pending_calls] == [4, 5]
    assert [(t.step, t.calls) for t in saved.turns] == [(1, 1), (2, 1), (3, 3)]

    done = child(workspace, *(["--async"] if driver == "async" else []))
    assert done.returncode == 0, done.stderr.decode()
    resumed = result_of(workspace)

    assert_same_turns(resumed, uninterrupted)
    # The third turn was finished from the checkpoint, not asked again: two model requests.
    assert resumed["model_requests"] == 2
    # The turns made before the kill came back as they were, their durations included.
    assert resumed["turns"][:3] == [t.to_dict() for t in saved.turns]
    # The run's end, on disk, holds the same turns.
    end = FileCheckpointStore(workspace / "runs").load_latest()
    assert end is not None and end.ended
    assert [t.to_dict() for t in end.turns] == resumed["turns"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_a_run_killed_again_and_again_at_checkpoint_operations_ends_with_the_same_turns(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    workspace = tmp_path / "crashes"
    # With --fold every save ends in a fold (fsync, replace, fsync of the folder, unlink x2):
    # processes die in the middle of journal appends and folds, some of them mid-turn.
    specs = ["replace:2", "unlink:3", "write:3", "fsync:4", "write:2", "6"]
    finished = None
    for n, spec in enumerate([*specs, None]):
        args = ["--fold", *(["--async"] if n % 2 else [])]
        done = child(workspace, *args, *(["--crash-at", spec] if spec else []))
        if done.returncode == 0:
            finished = result_of(workspace)
            break
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert len((workspace / "crashes.txt").read_text().splitlines()) >= 4
    assert finished is not None
    assert_same_turns(finished, uninterrupted)
    end = FileCheckpointStore(workspace / "runs").load_latest()
    assert end is not None and end.ended
    assert without_durations([t.to_dict() for t in end.turns]) == without_durations(
        uninterrupted["turns"]
    )


def run_in_process(store: FileCheckpointStore, stop_after: int | None = None) -> Trajectory:
    """The agent, checkpointed to ``store``; with ``stop_after``, abandoned after that step
    (its step's checkpoint is on disk, its end's never written)."""
    llm = MockLLMBackend([reply], cycle=True)
    store.directory.parent.mkdir(parents=True, exist_ok=True)  # the tools' counter file's
    tools = agent.make_tools(store.directory.parent)
    options: dict[str, Any] = {"checkpoint": store, "config": LoopConfig(max_steps=10)}
    if stop_after is None and store.runs():
        options["resume"] = store
    loop = composable_loop(llm, agent.TASK, tools, **options)
    for n, _ in enumerate(loop, 1):
        if n == stop_after:
            break
    return loop.trajectory


@pytest.mark.parametrize("stop_after", [1, 3, 4, 5, 6])
def test_a_resumed_run_has_the_turns_of_an_uninterrupted_one_and_no_duplicate(
    tmp_path: Path, stop_after: int
) -> None:
    whole = run_in_process(FileCheckpointStore(tmp_path / "whole" / "runs"))
    store = FileCheckpointStore(tmp_path / "cut" / "runs")
    cut = run_in_process(store, stop_after)
    resumed = run_in_process(store)

    assert shape(resumed.turns) == shape(whole.turns)
    assert resumed.turns[: len(cut.turns)] == cut.turns  # the same turns, durations and all
    # The turns' tokens add up to the run's, as in a run never interrupted.
    assert sum((t.usage for t in resumed.turns), Usage()) == resumed.usage == whole.usage
    assert [resumed.turn_of(n) for n in range(1, 8)] == [
        resumed.turns[i] for i in (0, 1, 2, 2, 2, 3, 4)
    ]
    # The resumed run went on in the same journal, writing only the turns it made.
    snapshot, records = journal_records(store)
    written = len(snapshot["turns"]) + sum(
        len(r["lists"]["turns"][1]) for r in records if "turns" in r.get("lists", {})
    )
    assert written == len(whole.turns) == 5


def journal_records(store: FileCheckpointStore) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's snapshot document and its journal's records (the header left out)."""
    (run_id,) = store.runs()
    run_dir = store.run_dir(run_id)
    snapshot = json.loads((run_dir / "step-0001.json").read_text())
    lines = (run_dir / "step-0001.journal").read_bytes().splitlines()
    return snapshot, [json.loads(line.rpartition(b"\t")[0]) for line in lines[1:]]


def test_each_journal_line_carries_only_the_turns_added_since_the_line_before(
    tmp_path: Path,
) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    whole = run_in_process(store)
    snapshot, records = journal_records(store)

    first = [decode_turn(t, "turns") for t in snapshot["turns"]]
    assert first == whole.turns[:1]
    written = list(first)
    for record in records:
        size = record["sizes"][-1]
        op = record.get("lists", {}).get("turns")
        if op is None:
            assert size == len(written)  # no turn made since: no turn written
            continue
        kept, added = op
        assert kept == len(written) and added  # appended only, never written again
        written += [decode_turn(t, "turns") for t in added]
        assert size == len(written)
    assert written == whole.turns  # every turn written once, exactly
    steps_with_turns = [r["step"] for r in records if "turns" in r.get("lists", {})]
    assert steps_with_turns == [2, 3, 6, 7]  # steps 4 and 5 ran calls of step 3's turn


@pytest.mark.parametrize("fold", [False, True], ids=["journal", "folded"])
def test_the_checkpoint_of_each_step_holds_the_turns_up_to_that_steps_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fold: bool
) -> None:
    if fold:  # every line folded at once: earlier steps are read from a snapshot's history
        from tests.test_checkpoint_journal import fold_after_every_checkpoint

        fold_after_every_checkpoint(monkeypatch)
    store = FileCheckpointStore(tmp_path / "runs")
    whole = run_in_process(store)
    (run_id,) = store.runs()
    for n in range(1, 8):
        checkpoint = store.load(run_id, n)
        assert checkpoint.turns == tuple(t for t in whole.turns if t.step <= n), n
        assert checkpoint.llm_calls == len(checkpoint.turns)
        assert checkpoint.trajectory().turns == list(checkpoint.turns)
    end = store.load_latest(run_id)
    assert end is not None and end.ended and end.turns == tuple(whole.turns)

    # Resuming from an older step goes on from its turns (a new run: the later ones stay).
    resumed = composable_loop(
        MockLLMBackend([reply], cycle=True),
        tools=agent.make_tools(tmp_path),
        checkpoint=store,
        resume=resume_loop_state(store, run_id=run_id, step=4),
    )
    for _ in resumed:
        pass
    assert shape(resumed.trajectory.turns) == shape(whole.turns)


def test_a_checkpoint_without_turns_writes_no_turns_key_and_sizes_as_before() -> None:
    assert "turns" not in checkpoint_doc(Checkpoint("r", 0))
    assert checkpoint_doc(Checkpoint("r", 0, turns=(Turn(1, 0),)))["turns"] == [
        {"step": 1, "calls": 0, "usage": {"input_tokens": 0, "output_tokens": 0,
                                          "total_tokens": 0}, "duration_ms": 0.0}
    ]  # fmt: skip
    # messages, steps, decisions, children, compactions; then the session log's, the turns'.
    assert list_sizes([3, 1, 0, 0, 0, 0, 0]) == [3, 1, 0, 0, 0]
    assert list_sizes([3, 1, 0, 0, 0, 2, 0]) == [3, 1, 0, 0, 0, 2]
    assert list_sizes([3, 1, 0, 0, 0, 0, 1]) == [3, 1, 0, 0, 0, 0, 1]


def test_a_checkpoint_whose_turn_starts_after_its_steps_is_refused() -> None:
    from looplet.errors import CheckpointError

    good = Checkpoint("r", 0, tool_names=("t",), turns=(Turn(1, 1),))
    assert Checkpoint.from_json(good.to_json()).turns == good.turns
    bad = Checkpoint("r", 0, tool_names=("t",), turns=(Turn(3, 1),))
    with pytest.raises(CheckpointError, match=r"turns\[0\]\.step: .*is 3, after step 0"):
        Checkpoint.from_json(bad.to_json())


def test_folders_written_before_turns_were_kept_still_load_and_resume(tmp_path: Path) -> None:
    from tests.test_checkpoint import TASK, Model, strip
    from tests.test_checkpoint import run as run_greeter

    for record in ("kitchen", "compacting"):
        (folder,) = (DATA / "data" / "record_v1" / record / "checkpoints").iterdir()
        old = FileCheckpointStore(folder.parent)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            checkpoint = old.load_latest(folder.name)
        assert checkpoint is not None and checkpoint.step > 0 and checkpoint.turns == ()

    whole = run_greeter("sync", task=TASK)
    shutil.copytree(DATA / "checkpoints_v1", tmp_path / "runs")
    store = FileCheckpointStore(tmp_path / "runs")
    opened = resume_loop_state(store, run_id="legacy-open")
    assert opened.step == 2 and opened.turns == ()
    resumed = run_greeter("sync", checkpoint=store, resume=opened, model=Model())
    assert strip(resumed) == strip(whole)
    # Only the turns made since it resumed: the legacy checkpoint kept none.
    assert shape(resumed.turns) == shape(whole.turns[2:])
    assert [len(store.load("legacy-open", n).turns) for n in range(1, 6)] == [0, 0, 0, 0, 1]
    end = store.load_latest("legacy-open")
    assert end is not None and end.turns == tuple(resumed.turns)


@pytest.mark.parametrize("stop_after", [1, 3])
def test_a_compacting_run_resumes_with_its_turns(tmp_path: Path, stop_after: int) -> None:
    from looplet import ToolCall, ToolSpec
    from looplet.compact import ContextBudget
    from tests.conftest import make_tools
    from tests.test_checkpoint import DONE, TASK, Model
    from tests.test_checkpoint import run as run_greeter

    class Reader(Model):
        def reply(self, request: LLMRequest) -> Any:
            last = [m.content for m in request.messages if m.role == "tool"]
            part = int(last[-1].split(":")[0]) + 1 if last else 0
            calls = [DONE] if part == 6 else [ToolCall("read", {"part": part}, call_id=f"r{part}")]
            return LLMResponse(tool_calls=tuple(calls), usage=usage_of(part))

    tools = make_tools(
        read=ToolSpec("read", "Read.", {"part": "int"}, lambda *, part: f"{part}:" + "x" * 1500)
    )
    budget = ContextBudget(max_tokens=1200, use_reported_usage=False)
    config = LoopConfig(max_steps=10, context_budget=budget)
    whole = run_greeter("sync", task=TASK, tools=tools, config=config, model=Reader())
    assert len(whole.compactions) >= 2 and len(whole.turns) == 7
    store = FileCheckpointStore(tmp_path / "runs")
    options: dict[str, Any] = {"tools": tools, "config": config, "checkpoint": store}
    run_greeter("sync", task=TASK, model=Reader(), stop_after=stop_after, **options)
    resumed = run_greeter("sync", model=Reader(), resume=store, **options)
    assert resumed.compactions == whole.compactions
    assert shape(resumed.turns) == shape(whole.turns)


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_a_run_with_sub_agents_resumes_with_its_turns_and_theirs(
    tmp_path: Path, stop_after: int
) -> None:
    from tests.test_checkpoint_records import delegating_run

    whole = delegating_run(tmp_path / "whole")
    assert len(whole.turns) == 4 and len(whole.children) == 2
    delegating_run(tmp_path / "cut", stop_after=stop_after)
    resumed = delegating_run(tmp_path / "cut", resume=True)
    assert shape(resumed.turns) == shape(whole.turns)
    assert [shape(c.turns) for c in resumed.children] == [shape(c.turns) for c in whole.children]
    assert resumed.turn_of(2) == resumed.turns[1]


if __name__ == "__main__":
    sys.exit(main())
