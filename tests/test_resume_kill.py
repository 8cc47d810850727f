"""Acceptance: a run killed with SIGKILL and resumed in a new process ends as if never killed.

tests/_checkpoint_agent.py runs the agent in a child process (six ``tick`` steps, three of
them in one turn, then ``done``); each tool call leaves a line in a counter file. The child
is killed in the middle of a tool, or in the middle of a checkpoint write, then the agent is
run again in a new process with ``resume=``. The resumed record (steps, stop reason,
messages, budget) must equal an uninterrupted run's, and the counter must show that only
the call whose step was never durably recorded ran twice.
"""

from __future__ import annotations

import json
import os
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
    return Counter(int(line) for line in (workspace / "counter.txt").read_text().split())


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


def test_killed_mid_checkpoint_write_resumes_from_the_previous_checkpoint(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    workspace = tmp_path / "killed"
    kill_when(workspace / "writing-5", start_agent(workspace, "--pause-write-at", "5"))

    run_dir = next((workspace / "runs").iterdir())
    assert not (run_dir / "step-0005.json").exists()
    assert [p.name for p in run_dir.glob(".step-0005.json.*.tmp")]  # the write cut short
    saved = FileCheckpointStore(workspace / "runs").load_latest()
    assert saved is not None and saved.step == 4

    resumed = resume_agent(workspace, "--async")

    assert_same_run(resumed, uninterrupted)
    # tick(5) ran, but its checkpoint never reached the disk: it ran once more, nothing else.
    assert ticks(workspace) == Counter({1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 1})
    assert resumed["model_requests"] == 2
    assert not list(run_dir.glob("*.tmp"))  # the resumed run cleared the left-over file
    assert sorted(p.name for p in run_dir.iterdir())[-2:] == [
        "step-0007.end.json",
        "step-0007.json",
    ]


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
