"""What checkpointing every step costs over a long run: bytes on disk and time per step.

Run by hand::

    python bench/checkpoint.py                 # one 1,000-step run per repetition, 3 repetitions
    python bench/checkpoint.py --steps 2000    # a longer run
    python bench/checkpoint.py --dir /mnt/x    # checkpoints on another drive (default: a temp dir)
    python bench/checkpoint.py --no-sync       # fsync made a no-op: the code's own cost alone

The model is a scripted in-process backend whose replies are all built before timing starts:
N-1 turns each calling ``read_file`` with a short note (a coding agent reading the files of a
project), then one ``done``. ``read_file`` returns about 120 characters of source text, so a
step adds about 0.7 KB to the run (the call and result in the step, the assistant turn and
the tool message in the conversation). The loop runs with
``checkpoint=FileCheckpointStore(dir)``, so every step is saved before it is handed over.

Reported, per repetition: the bytes and files the run left on disk, the size of its final
checkpoint as one document (``Checkpoint.to_json()`` of ``load_latest()``: the state a resume
restores), their ratio, and the time per step (wall time between steps handed over, the
checkpoint write included) in the first and the last quarter of the run, with their ratio;
then how long ``resume_loop_state(store)`` takes to read the run back. The figures are
medians over the repetitions. The goals: under 3x the final checkpoint on disk, and the last
quarter within 1.3x of the first.

Syncing to disk (fsync, fdatasync) is most of a save's time and swings with whatever else
the machine's disk is doing; ``--no-sync`` replaces both with no-ops for the whole run, so
that the time per step is the code's own (encoding, redaction, writing to the page cache),
steady enough to compare the quarters on a busy machine. Durability is then not measured.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from looplet import BaseToolRegistry, LoopConfig, StopReason, ToolCall, ToolSpec, composable_loop
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.checkpoint import FileCheckpointStore, resume_loop_state

GOAL_DISK = 3.0
GOAL_QUARTERS = 1.3
SOURCE = (
    "def refund(order, amount):\n"
    "    if order.status != 'paid':\n"
    "        raise RefundError(order.id)\n"
    "    return order.refund(amount)\n"
)


def read_file(*, path: str) -> dict[str, Any]:
    return {"path": path, "text": SOURCE}


def finish(*, answer: str) -> str:
    return answer


def make_tools() -> BaseToolRegistry:
    tools = BaseToolRegistry()
    tools.register(ToolSpec("read_file", "Read a file.", {"path": "str"}, read_file))
    tools.register(ToolSpec("done", "Finish.", {"answer": "str"}, finish))
    return tools


def script(n: int) -> tuple[LLMResponse, ...]:
    replies = [
        LLMResponse(
            text=f"Reading module {i} for the refund check.",
            tool_calls=(
                ToolCall("read_file", {"path": f"src/refunds/m{i:04d}.py"}, call_id=f"c{i}"),
            ),
        )
        for i in range(n - 1)
    ]
    replies.append(
        LLMResponse(tool_calls=(ToolCall("done", {"answer": "found it"}, call_id=f"c{n - 1}"),))
    )
    return tuple(replies)


class ScriptedBackend:
    def __init__(self, replies: tuple[LLMResponse, ...]) -> None:
        self._next = iter(replies).__next__

    def complete(self, request: LLMRequest) -> LLMResponse:
        return self._next()


def disk_usage(folder: Path) -> tuple[int, int]:
    """(bytes, files) under ``folder``: the files' sizes, as ``du --apparent-size`` adds them."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def one_run(n: int, parent: Path) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="looplet-bench-checkpoint-", dir=parent))
    try:
        store = FileCheckpointStore(directory)
        loop = composable_loop(
            llm=ScriptedBackend(script(n)),
            tools=make_tools(),
            config=LoopConfig(max_steps=n + 5),
            task={"goal": "Find where refunds are validated."},
            checkpoint=store,
        )
        gc.collect()
        times = []
        last = time.perf_counter()
        for _ in loop:
            now = time.perf_counter()
            times.append(now - last)
            last = now
        assert len(times) == n and loop.trajectory.stop_reason is StopReason.DONE
        size, files = disk_usage(directory)
        latest = store.load_latest()
        assert latest is not None and latest.step == n
        final = len(latest.to_json().encode())
        started = time.perf_counter()
        checkpoint = resume_loop_state(store, run_id=latest.run_id, step=n)
        load_s = time.perf_counter() - started
        assert checkpoint.step == n
        quarter = n // 4
        first = sum(times[:quarter]) / quarter
        fourth = sum(times[-quarter:]) / quarter
        return {
            "bytes": size,
            "files": files,
            "final": final,
            "disk_ratio": size / final,
            "first_ms": first * 1e3,
            "last_ms": fourth * 1e3,
            "quarter_ratio": fourth / first,
            "total_s": sum(times),
            "load_ms": load_s * 1e3,
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--no-sync", action="store_true", help="fsync and fdatasync do nothing")
    args = parser.parse_args()
    if args.no_sync:
        os.fsync = os.fdatasync = lambda fd: None
    rows = [one_run(args.steps, args.dir) for _ in range(args.runs)]
    synced = "fsync a no-op" if args.no_sync else "synced"
    print(f"{args.steps}-step checkpointed run, {args.runs} repetition(s), in {args.dir}, {synced}")
    print(
        f"{'run':<5}{'on disk MB':>11}{'files':>7}{'final MB':>10}{'disk/final':>12}"
        f"{'Q1 ms/step':>12}{'Q4 ms/step':>12}{'Q4/Q1':>8}{'run s':>8}{'load ms':>9}"
    )
    for i, r in enumerate(rows, 1):
        print(
            f"{i:<5}{r['bytes'] / 1e6:>11.2f}{r['files']:>7.0f}{r['final'] / 1e6:>10.3f}"
            f"{r['disk_ratio']:>11.2f}x{r['first_ms']:>12.3f}{r['last_ms']:>12.3f}"
            f"{r['quarter_ratio']:>7.2f}x{r['total_s']:>8.2f}{r['load_ms']:>9.1f}"
        )
    disk = statistics.median(r["disk_ratio"] for r in rows)
    quarters = statistics.median(r["quarter_ratio"] for r in rows)
    print(
        f"\nmedian: on disk {disk:.2f}x the final checkpoint (goal < {GOAL_DISK:.0f}x: "
        f"{'met' if disk < GOAL_DISK else 'NOT met'}); last quarter {quarters:.2f}x the first "
        f"(goal <= {GOAL_QUARTERS}x: {'met' if quarters <= GOAL_QUARTERS else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
