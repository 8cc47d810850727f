"""A checkpointed agent run in its own process, for tests/test_resume_kill.py to kill and resume.

    python -m tests._checkpoint_agent WORKSPACE [--block-at N] [--pause-write-at N]
        [--crash-at K] [--fold] [--async]

The scripted model makes six ``tick`` calls (the third turn makes three at once: 3, 4, 5) and
then calls ``done``. Each ``tick(n)`` appends ``n`` and the process id to
``WORKSPACE/counter.txt``, so the file shows every time a tool ran, and in which process.
Checkpoints go to ``WORKSPACE/runs`` and every run resumes the newest one there, as a
crash-restarted agent would; before it starts, the process appends its id and the step of
that checkpoint (0: none) to ``WORKSPACE/processes.txt``. The final record is written to
``WORKSPACE/result.json``.

``--block-at N``: ``tick(N)`` writes its line, then ``started-N`` and waits (to be killed in
the middle of the step). ``--pause-write-at N``: half of the journal line of step N is
written, then ``writing-N`` appears and the process waits (to be killed in the middle of the
append). Either wait gives up after a while, so a test that died cannot leave the process
behind.

``--crash-at K`` (or ``OP:K``): the process kills itself with SIGKILL at its K-th checkpoint
file operation (or its K-th ``OP``: write, fsync, fdatasync, replace, unlink; only those on
files under ``runs`` count), before it is done, or for a write after writing half its bytes
(a torn line); the operation is logged to ``WORKSPACE/crashes.txt`` first. ``--fold``: the
journal is folded into a new snapshot after every checkpoint (not once it outgrows its
snapshot), so that every save goes through a fold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from looplet import (
    BaseToolRegistry,
    DefaultState,
    LoopConfig,
    ToolCall,
    ToolSpec,
    async_composable_loop,
    composable_loop,
)
from looplet.backends.base import LLMRequest
from looplet.checkpoint import FileCheckpointStore
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend

TASK = {"goal": "Tick six times, then finish."}
TURNS: list[list[ToolCall]] = [
    [ToolCall("tick", {"n": 1}, call_id="t1_0")],
    [ToolCall("tick", {"n": 2}, call_id="t2_0")],
    [ToolCall("tick", {"n": n}, call_id=f"t3_{n}") for n in (3, 4, 5)],
    [ToolCall("tick", {"n": 6}, call_id="t4_0")],
    [ToolCall("done", {"answer": "ticked 6 times"}, call_id="t5_0")],
]
_GIVE_UP_S = 30.0


def reply(request: LLMRequest) -> list[ToolCall]:
    """The model: its next turn is decided by the conversation so far, as a real one's is."""
    turn = sum(1 for m in request.messages if m.role == "assistant")
    return TURNS[turn]


def make_tools(workspace: Path, block_at: int | None = None) -> BaseToolRegistry:
    """``tick(n)``, which leaves a line in the counter file, and ``done``."""
    counter = workspace / "counter.txt"

    def tick(*, n: int) -> dict[str, int]:
        with counter.open("a") as file:
            file.write(f"{n} {os.getpid()}\n")
        if n == block_at:
            (workspace / f"started-{n}").write_text("")
            _wait_to_be_killed()
        return {"ticked": n}

    tools = BaseToolRegistry()
    tools.register(ToolSpec("tick", "Count one tick.", {"n": "int"}, tick))
    tools.register(ToolSpec("done", "Finish.", {"answer": "str"}, lambda *, answer: answer))
    return tools


def pause_checkpoint_write(workspace: Path, step: int) -> None:
    """Make the append of step ``step``'s journal line stop halfway through the line."""
    real_write: Callable[[int, Any], int] = os.write

    def write(fd: int, data: Any) -> int:
        if b'{"step":%d,' % step in bytes(data):
            real_write(fd, bytes(data)[: len(data) // 2])
            (workspace / f"writing-{step}").write_text("")
            _wait_to_be_killed()
        return real_write(fd, data)

    os.write = write


def crash_at(workspace: Path, spec: str) -> None:
    """SIGKILL this process at a checkpoint file operation: ``spec`` is ``K`` or ``OP:K``."""
    kind, _, number = spec.rpartition(":")
    k = int(number)
    runs = str(workspace / "runs")
    fds: set[int] = set()
    seen: Counter[str] = Counter()
    real = {name: getattr(os, name) for name in ("open", "write", "fsync", "replace", "unlink")}
    real["fdatasync"] = getattr(os, "fdatasync", os.fsync)

    def ours(target: Any) -> bool:
        return (target in fds) if isinstance(target, int) else str(target).startswith(runs)

    def crash_point(name: str, target: Any) -> bool:
        seen[name] += 1
        seen[""] += 1
        if seen[kind] != k or (kind and kind != name):
            return False
        with (workspace / "crashes.txt").open("a") as log:
            log.write(f"{name} {'fd' if isinstance(target, int) else Path(target).name}\n")
        if name != "write":
            os.kill(os.getpid(), signal.SIGKILL)
        return True

    def open_(path: Any, *args: Any, **kwargs: Any) -> int:
        fd: int = real["open"](path, *args, **kwargs)
        if str(path).startswith(runs):
            fds.add(fd)
        return fd

    def write(fd: int, data: Any) -> int:
        if fd in fds and crash_point("write", fd):
            real["write"](fd, bytes(data)[: len(data) // 2])  # a torn line reaches the file
            os.kill(os.getpid(), signal.SIGKILL)
        return int(real["write"](fd, data))

    def wrap(name: str) -> Callable[..., Any]:
        def call(target: Any, *args: Any) -> Any:
            if ours(target):
                crash_point(name, str(args[0]) if name == "replace" else target)
            return real[name](target, *args)

        return call

    os.open = open_
    os.write = write
    for name in ("fsync", "fdatasync", "replace", "unlink"):
        if hasattr(os, name):
            setattr(os, name, wrap(name))


def fold_after_every_checkpoint() -> None:
    """Make the writer fold its journal into a new snapshot after every journal line."""
    from looplet._checkpoint_writer import JournalWriter

    real_append = JournalWriter._append

    def append(self: JournalWriter, *args: Any) -> None:
        self._fold_at = 0
        real_append(self, *args)

    JournalWriter._append = append  # type: ignore[assignment]


def run_agent(
    workspace: Path, *, block_at: int | None = None, use_async: bool = False
) -> dict[str, Any]:
    """Run (or resume) the agent in ``workspace``; return what the test compares."""
    workspace.mkdir(parents=True, exist_ok=True)
    store = FileCheckpointStore(workspace / "runs")
    latest = store.load_latest()
    with (workspace / "processes.txt").open("a") as file:
        file.write(f"{os.getpid()} {latest.step if latest else 0}\n")
    tools = make_tools(workspace, block_at)
    state = DefaultState(max_steps=10)
    config = LoopConfig(max_steps=10)
    options: dict[str, Any] = {"checkpoint": store, "resume": store}
    if use_async:
        allm = AsyncMockLLMBackend([reply], cycle=True)

        async def go() -> Any:
            loop = async_composable_loop(allm, TASK, tools, state=state, config=config, **options)
            async for _ in loop:
                pass
            return loop.trajectory

        trajectory = asyncio.run(go())
        requests = allm.calls
    else:
        llm = MockLLMBackend([reply], cycle=True)
        loop = composable_loop(llm, TASK, tools, state=state, config=config, **options)
        for _ in loop:
            pass
        trajectory = loop.trajectory
        requests = llm.calls
    return {
        "steps": [_without_duration(s.to_dict()) for s in trajectory.steps],
        "stop_reason": trajectory.stop_reason,
        "stop_detail": trajectory.stop_detail,
        "messages": [m.to_dict() for m in trajectory.messages],
        "queries_used": state.queries_used,
        "llm_calls": trajectory.llm_calls,
        "usage": trajectory.usage.to_dict(),
        "model_requests": requests,
    }


def _without_duration(step: dict[str, Any]) -> dict[str, Any]:
    step["tool_result"].pop("duration_ms")
    return step


def _wait_to_be_killed() -> None:
    deadline = time.monotonic() + _GIVE_UP_S
    while time.monotonic() < deadline:
        time.sleep(0.01)
    sys.stderr.write("tests._checkpoint_agent: nobody killed this process; giving up\n")
    os._exit(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests._checkpoint_agent")
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--block-at", type=int)
    parser.add_argument("--pause-write-at", type=int)
    parser.add_argument("--crash-at")
    parser.add_argument("--fold", action="store_true")
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args(argv)
    args.workspace.mkdir(parents=True, exist_ok=True)
    if args.pause_write_at is not None:
        pause_checkpoint_write(args.workspace, args.pause_write_at)
    if args.fold:
        fold_after_every_checkpoint()
    if args.crash_at is not None:
        crash_at(args.workspace, args.crash_at)
    result = run_agent(args.workspace, block_at=args.block_at, use_async=args.use_async)
    (args.workspace / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
