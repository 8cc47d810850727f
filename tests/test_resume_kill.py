"""Acceptance: a run killed with SIGKILL and resumed in a new process ends as if never killed.

tests/_checkpoint_agent.py runs the agent in a child process (six ``tick`` steps, three of
them in one turn, then ``done``); each tool call leaves a line in a counter file. The child
is killed in the middle of a tool, or in the middle of a journal append, or again and again
at checkpoint file operations (writes, syncs, renames, deletes, a journal fold included),
then the agent is run again in a new process with ``resume=``. The resumed record (steps,
stop reason, messages, budget) must equal an uninterrupted run's, and the counter must show
that only the call whose step was never durably recorded ran twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from looplet.checkpoint import FileCheckpointStore
from tests._checkpoint_agent import run_agent

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL to kill the child process"
)

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 20.0


def start_agent(workspace: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests._checkpoint_agent", str(workspace), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_when(marker: Path, child: subprocess.Popen[bytes]) -> None:
    """Wait (polling, with a deadline) until ``marker`` exists, then SIGKILL the child."""
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not marker.exists():
            if child.poll() is not None:
                _, err = child.communicate()
                pytest.fail(f"the agent exited ({child.returncode}) before {marker.name}:\n{err!r}")
            if time.monotonic() > deadline:
                pytest.fail(f"{marker.name} did not appear within {DEADLINE_S}s")
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL


def resume_agent(workspace: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests._checkpoint_agent", str(workspace), *args],
        cwd=ROOT,
        capture_output=True,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads((workspace / "result.json").read_text())
    return result


def ticks(workspace: Path) -> Counter[int]:
    lines = (workspace / "counter.txt").read_text().splitlines()
    return Counter(int(line.split()[0]) for line in lines)


def assert_same_run(resumed: dict[str, Any], uninterrupted: dict[str, Any]) -> None:
    for key in ("steps", "stop_reason", "stop_detail", "messages", "usage"):
        assert resumed[key] == uninterrupted[key], key
    # The budget: no step and no model call was granted twice.
    assert resumed["queries_used"] == uninterrupted["queries_used"] == 6
    assert resumed["llm_calls"] == uninterrupted["llm_calls"] == 5


@pytest.fixture
def uninterrupted(tmp_path: Path) -> dict[str, Any]:
    result = run_agent(tmp_path / "uninterrupted")
    assert result["stop_reason"] == "done"
    assert ticks(tmp_path / "uninterrupted") == Counter(range(1, 7))
    return result


def test_killed_mid_tool_resumes_the_turn_and_reruns_only_the_unrecorded_call(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    workspace = tmp_path / "killed"
    kill_when(workspace / "started-4", start_agent(workspace, "--block-at", "4"))

    # On disk: step 3, the first call of the turn [3, 4, 5]; 4 and 5 are still to record.
    saved = FileCheckpointStore(workspace / "runs").load_latest()
    assert saved is not None
    assert (saved.step, saved.ended) == (3, False)
    assert [c.args["n"] for c in saved.pending_calls] == [4, 5]

    resumed = resume_agent(workspace)

    assert_same_run(resumed, uninterrupted)
    # tick(4) had started but its step was never recorded: it ran once more; nothing else did.
    assert ticks(workspace) == Counter({1: 1, 2: 1, 3: 1, 4: 2, 5: 1, 6: 1})
    # The turn was finished from the checkpoint: the model was asked only for turns 4 and 5.
    assert resumed["model_requests"] == 2


def test_killed_mid_journal_append_resumes_from_the_previous_checkpoint(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    workspace = tmp_path / "killed"
    kill_when(workspace / "writing-5", start_agent(workspace, "--pause-write-at", "5"))

    run_dir = next((workspace / "runs").iterdir())
    journal = run_dir / "step-0001.journal"
    assert not journal.read_bytes().endswith(b"\n")  # half of step 5's line: cut short
    saved = FileCheckpointStore(workspace / "runs").load_latest()  # (no warning: not damage)
    assert saved is not None and (saved.step, saved.ended) == (4, False)

    resumed = resume_agent(workspace, "--async")

    assert_same_run(resumed, uninterrupted)
    # tick(5) ran, but its checkpoint never reached the disk: it ran once more, nothing else.
    assert ticks(workspace) == Counter({1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 1})
    assert resumed["model_requests"] == 2
    # The cut line was dropped before the next append: a header, steps 2 to 7, the end.
    assert len(journal.read_bytes().split(b"\n")[:-1]) == 1 + 6 + 1
    assert sorted(p.name for p in run_dir.iterdir()) == ["step-0001.journal", "step-0001.json"]
    store = FileCheckpointStore(workspace / "runs")
    assert [store.load(run_dir.name, n).step for n in range(1, 8)] == list(range(1, 8))


def assert_no_step_lost_or_run_twice(workspace: Path) -> None:
    """Each process resumed right after the last step on disk and ran the ticks after it in
    order: it ran again only the step its predecessor died in before that step's checkpoint
    was durable (tick n is step n), and the durable record never went back."""
    processes = [tuple(map(int, line.split())) for line in read_lines(workspace, "processes.txt")]
    ran: dict[int, list[int]] = {}
    for line in read_lines(workspace, "counter.txt"):
        tick, pid = map(int, line.split())
        ran.setdefault(pid, []).append(tick)
    durable = recorded = 0  # what the process before surely recorded, and at most recorded
    for pid, resumed_at in processes:
        assert durable <= resumed_at <= recorded, (pid, resumed_at, durable, recorded)
        mine = ran.get(pid, [])
        assert mine == list(range(resumed_at + 1, resumed_at + 1 + len(mine))), (pid, mine)
        last = mine[-1] if mine else resumed_at
        durable = max(resumed_at, last - 1)  # a tick starts once the step before is on disk
        recorded = 7 if last >= 6 else last  # after tick 6 comes done, step 7
    assert sorted(set(ticks(workspace))) == list(range(1, 7))


def read_lines(workspace: Path, name: str) -> list[str]:
    path = workspace / name
    return path.read_text().splitlines() if path.exists() else []


def stored_run(workspace: Path) -> dict[str, Any]:
    """What assert_same_run compares, read from the run's last checkpoint on disk."""
    checkpoint = FileCheckpointStore(workspace / "runs").load_latest()
    assert checkpoint is not None and checkpoint.ended
    trajectory = checkpoint.trajectory()
    steps = [s.to_dict() for s in trajectory.steps]
    for step in steps:
        step["tool_result"].pop("duration_ms")
    return {
        "steps": steps,
        "stop_reason": trajectory.stop_reason,
        "stop_detail": trajectory.stop_detail,
        "messages": [m.to_dict() for m in trajectory.messages],
        "usage": trajectory.usage.to_dict(),
        "queries_used": checkpoint.queries_used,
        "llm_calls": checkpoint.llm_calls,
    }


# Where successive processes die. "OP:K": at the process's K-th OP on a checkpoint file, "K":
# at its K-th one of any kind; a write dies halfway through (a torn line). With --fold every
# save ends in a fold: a new snapshot written (fsync, replace, fsync of the folder), then
# the old snapshot and journal deleted (unlink, unlink).
CAMPAIGNS = {
    "at each step of a fold": ["replace:2", "unlink:2", "unlink:3", "fsync:4", "write:2", "8"],
    "at random operations": [str(k) for k in random.Random(20261207).choices(range(1, 14), k=8)],
}


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_killed_again_and_again_at_checkpoint_operations_no_step_is_lost_or_run_twice(
    tmp_path: Path, uninterrupted: dict[str, Any], campaign: str
) -> None:
    workspace = tmp_path / "crashes"
    finished = False
    for n, spec in enumerate([*CAMPAIGNS[campaign], None]):
        args = ["--fold", *(["--async"] if n % 2 else [])]
        if spec is not None:
            args += ["--crash-at", spec]
        done = subprocess.run(
            [sys.executable, "-m", "tests._checkpoint_agent", str(workspace), *args],
            cwd=ROOT,
            capture_output=True,
            timeout=DEADLINE_S,
        )
        if done.returncode == 0:
            finished = True
            break
        if done.returncode != -signal.SIGKILL:  # only a run whose end is on disk may refuse
            assert b"already ended at step 7" in done.stderr, done.stderr.decode()
            break

    crashes = read_lines(workspace, "crashes.txt")
    assert len(crashes) >= 4, crashes  # (a process may finish before its crash point)
    if campaign == "at each step of a fold":
        assert {c.split()[0] for c in crashes} >= {"replace", "unlink", "fsync", "write"}
    assert_no_step_lost_or_run_twice(workspace)
    assert_same_run(stored_run(workspace), uninterrupted)
    if finished:  # the last process tidied what the others left, then folded cleanly
        (run_dir,) = (workspace / "runs").iterdir()
        assert sorted(p.name for p in run_dir.iterdir()) == ["step-0007.journal", "step-0007.json"]


def test_a_resumed_run_that_finished_is_not_run_again(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    workspace = tmp_path / "uninterrupted"  # the fixture's finished run
    done = subprocess.run(
        [sys.executable, "-m", "tests._checkpoint_agent", str(workspace)],
        cwd=ROOT,
        capture_output=True,
        timeout=DEADLINE_S,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode != 0
    assert b"CheckpointError" in done.stderr and b"already ended at step 7" in done.stderr
    assert ticks(workspace) == Counter(range(1, 7))
