"""A checkpointed agent run in its own process, for tests/test_resume_kill.py to kill and resume.

    python -m tests._checkpoint_agent WORKSPACE [--block-at N] [--pause-write-at N] [--async]

The scripted model makes six ``tick`` calls (the third turn makes three at once: 3, 4, 5) and
then calls ``done``. Each ``tick(n)`` appends ``n`` to ``WORKSPACE/counter.txt``, so the file
shows every time a tool ran. Checkpoints go to ``WORKSPACE/runs`` and every run resumes the
newest one there, as a crash-restarted agent would. The final record is written to
``WORKSPACE/result.json``.

``--block-at N``: ``tick(N)`` writes its line, then ``started-N`` and waits (to be killed in
the middle of the step). ``--pause-write-at N``: the checkpoint of step N is written to its
temporary file, then ``writing-N`` appears and the process waits before ``os.replace`` (to be
killed in the middle of the write). Either wait gives up after a while, so a test that died
cannot leave the process behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
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
            file.write(f"{n}\n")
        if n == block_at:
            (workspace / f"started-{n}").write_text("")
            _wait_to_be_killed()
        return {"ticked": n}

    tools = BaseToolRegistry()
    tools.register(ToolSpec("tick", "Count one tick.", {"n": "int"}, tick))
    tools.register(ToolSpec("done", "Finish.", {"answer": "str"}, lambda *, answer: answer))
    return tools


def pause_checkpoint_write(workspace: Path, step: int) -> None:
    """Make the write of step ``step``'s checkpoint stop between the temp file and the rename."""
    real_replace: Callable[..., None] = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst).name == f"step-{step:04d}.json":
            (workspace / f"writing-{step}").write_text(str(src))
            _wait_to_be_killed()
        real_replace(src, dst, *args, **kwargs)

    os.replace = replace


def run_agent(
    workspace: Path, *, block_at: int | None = None, use_async: bool = False
) -> dict[str, Any]:
    """Run (or resume) the agent in ``workspace``; return what the test compares."""
    workspace.mkdir(parents=True, exist_ok=True)
    store = FileCheckpointStore(workspace / "runs")
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
        requests = len(allm.calls)
    else:
        llm = MockLLMBackend([reply], cycle=True)
        loop = composable_loop(llm, TASK, tools, state=state, config=config, **options)
        for _ in loop:
            pass
        trajectory = loop.trajectory
        requests = len(llm.calls)
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
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args(argv)
    args.workspace.mkdir(parents=True, exist_ok=True)
    if args.pause_write_at is not None:
        pause_checkpoint_write(args.workspace, args.pause_write_at)
    result = run_agent(args.workspace, block_at=args.block_at, use_async=args.use_async)
    (args.workspace / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
