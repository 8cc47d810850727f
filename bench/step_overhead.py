"""The loop's own cost per step, against a hand-written minimal loop.

Run by hand::

    python bench/step_overhead.py                 # the table (about 20 s)
    python bench/step_overhead.py --cpu           # CPU time instead of wall time
    python bench/step_overhead.py --profile       # plus cProfile of one N=1000 sync run
    python bench/step_overhead.py --profile-mock  # ... and of one on MockLLMBackend

The model is a scripted in-process backend whose replies (and call ids) are all built before
timing starts, so what is measured is looplet itself: building each request, recording the
reply, checking and dispatching the tool call, rendering the result and recording the step.
The tools are the README's ``greet`` and ``done``.

The *reference* is the least a tool-calling loop can do with the same replies: a list of
message dicts, a dict lookup of the tool function, calling it, and appending an assistant
dict and a tool-result dict holding ``json.dumps`` of the result.

Two more rows run the same agent on :class:`looplet.testing.MockLLMBackend` (and its async
twin), as a test of an agent would: its script holds one ``ToolCall`` per turn, without call
ids (the mock fills them in and estimates usage); the goal is at most 2x the loop with the
minimal scripted model.

Each figure is the median, over several repetitions (after warm-up), of the wall time of
whole runs (setup included) divided by the number of steps. The rows of one size repeat in
turn (one repetition of each, then the next), so a slow spell of the machine weighs on every
row of a ratio. The garbage collector stays on, as it would in real use, and is emptied
before each repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from looplet import (
    BaseToolRegistry,
    DefaultState,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolSpec,
    async_composable_loop,
    composable_loop,
)
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend

SIZES = (10, 100, 1000)
#: Steps timed per repetition (each repetition runs the loop 2000 // N times).
STEPS_PER_REP = 2000
REPEATS = 11
WARMUP = 2
GOAL_RATIO = 3.0
GOAL_GROWTH = 1.3
GOAL_MOCK_RATIO = 2.0
#: Wall time by default; ``--cpu`` switches to the process's CPU time (all its threads), which
#: a busy machine disturbs less.
clock = time.perf_counter


# -- the agent: the README's tools and a scripted model ---------------------------------------


def greet(*, name: str) -> dict[str, str]:
    return {"greeting": f"Hello, {name}!"}


def finish(*, answer: str) -> dict[str, str]:
    return {"answer": answer}


async def agreet(*, name: str) -> dict[str, str]:
    return {"greeting": f"Hello, {name}!"}


async def afinish(*, answer: str) -> dict[str, str]:
    return {"answer": answer}


def make_tools(async_tools: bool = False) -> BaseToolRegistry:
    tools = BaseToolRegistry()
    tools.register(
        ToolSpec(
            name="greet",
            description="Greet someone.",
            parameters={"name": "str"},
            execute=agreet if async_tools else greet,
        )
    )
    tools.register(
        ToolSpec(
            name="done",
            description="Finish.",
            parameters={"answer": "str"},
            execute=afinish if async_tools else finish,
        )
    )
    return tools


def script(n: int) -> tuple[LLMResponse, ...]:
    """``n - 1`` greet turns then a done turn, each with its own call id."""
    replies = [
        LLMResponse(tool_calls=(ToolCall("greet", {"name": "Alice"}, call_id=f"call_{i}"),))
        for i in range(n - 1)
    ]
    replies.append(
        LLMResponse(tool_calls=(ToolCall("done", {"answer": "ok"}, call_id=f"call_{n - 1}"),))
    )
    return tuple(replies)


def mock_script(n: int) -> list[ToolCall]:
    """``n - 1`` greet calls then a done call, as a test scripts MockLLMBackend: no call ids."""
    calls = [ToolCall("greet", {"name": "Alice"}) for _ in range(n - 1)]
    return [*calls, ToolCall("done", {"answer": "ok"})]


class ScriptedBackend:
    """Hands back prebuilt replies in order; costs one attribute read and an index."""

    __slots__ = ("_next", "_replies")

    def __init__(self, replies: tuple[LLMResponse, ...]) -> None:
        self._replies = replies
        self._next = iter(replies).__next__

    def complete(self, request: LLMRequest) -> LLMResponse:
        return self._next()


class AsyncScriptedBackend:
    __slots__ = ("_next", "_replies")

    def __init__(self, replies: tuple[LLMResponse, ...]) -> None:
        self._replies = replies
        self._next = iter(replies).__next__

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        return self._next()


class YieldingScriptedBackend(AsyncScriptedBackend):
    """:class:`AsyncScriptedBackend` that hands the event loop one turn per call, as
    ``AsyncMockLLMBackend`` does by design (and a real backend's network wait would)."""

    __slots__ = ()

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        await asyncio.sleep(0)
        return self._next()


# -- one run of each loop ---------------------------------------------------------------------


def run_looplet(replies: tuple[LLMResponse, ...], tools: BaseToolRegistry) -> int:
    n = len(replies)
    loop = composable_loop(
        llm=ScriptedBackend(replies),
        tools=tools,
        state=DefaultState(max_steps=n + 5),
        config=LoopConfig(max_steps=n + 5),
        task={"goal": "Greet Alice, then finish."},
    )
    steps = 0
    for _ in loop:
        steps += 1
    return steps


async def arun_looplet(
    replies: tuple[LLMResponse, ...], tools: BaseToolRegistry, yielding: bool = False
) -> int:
    n = len(replies)
    loop = async_composable_loop(
        llm=(YieldingScriptedBackend if yielding else AsyncScriptedBackend)(replies),
        tools=tools,
        state=DefaultState(max_steps=n + 5),
        config=LoopConfig(max_steps=n + 5),
        task={"goal": "Greet Alice, then finish."},
    )
    steps = 0
    async for _ in loop:
        steps += 1
    return steps


def run_mock(items: list[ToolCall], tools: BaseToolRegistry) -> int:
    n = len(items)
    loop = composable_loop(
        llm=MockLLMBackend(items),
        tools=tools,
        state=DefaultState(max_steps=n + 5),
        config=LoopConfig(max_steps=n + 5),
        task={"goal": "Greet Alice, then finish."},
    )
    steps = 0
    for _ in loop:
        steps += 1
    return steps


async def arun_mock(items: list[ToolCall], tools: BaseToolRegistry) -> int:
    n = len(items)
    loop = async_composable_loop(
        llm=AsyncMockLLMBackend(items),
        tools=tools,
        state=DefaultState(max_steps=n + 5),
        config=LoopConfig(max_steps=n + 5),
        task={"goal": "Greet Alice, then finish."},
    )
    steps = 0
    async for _ in loop:
        steps += 1
    return steps


REF_TOOLS: dict[str, Callable[..., Any]] = {"greet": greet, "done": finish}
AREF_TOOLS: dict[str, Callable[..., Any]] = {"greet": agreet, "done": afinish}


def run_reference(replies: tuple[LLMResponse, ...]) -> int:
    backend = ScriptedBackend(replies)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "goal: Greet Alice, then finish."},
    ]
    steps = 0
    while True:
        reply = backend.complete(None)  # type: ignore[arg-type]
        messages.append(
            {"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls}
        )
        for call in reply.tool_calls:
            result = REF_TOOLS[call.tool](**call.args)
            messages.append(
                {"role": "tool", "tool_call_id": call.call_id, "content": json.dumps(result)}
            )
            steps += 1
            if call.tool == "done":
                return steps


async def arun_reference(replies: tuple[LLMResponse, ...]) -> int:
    backend = AsyncScriptedBackend(replies)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "goal: Greet Alice, then finish."},
    ]
    steps = 0
    while True:
        reply = await backend.acomplete(None)  # type: ignore[arg-type]
        messages.append(
            {"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls}
        )
        for call in reply.tool_calls:
            result = await AREF_TOOLS[call.tool](**call.args)
            messages.append(
                {"role": "tool", "tool_call_id": call.call_id, "content": json.dumps(result)}
            )
            steps += 1
            if call.tool == "done":
                return steps


# -- timing -----------------------------------------------------------------------------------


def per_step_us(
    runs: dict[str, Callable[[], int]], n: int, repeats: int = REPEATS
) -> dict[str, float]:
    """Per row, the median over ``repeats`` of (time of whole runs) / (steps taken), in µs.

    The rows take turns: one repetition of each, then the next round.
    """
    count = max(1, STEPS_PER_REP // n)
    for run in runs.values():
        for _ in range(WARMUP):
            assert run() == n
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = clock()
            for _ in range(count):
                run()
            samples[name].append((clock() - start) / (count * n) * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


async def aper_step_us(
    runs: dict[str, Callable[[], Any]], n: int, repeats: int = REPEATS
) -> dict[str, float]:
    """:func:`per_step_us` for async runs, in the running event loop."""
    count = max(1, STEPS_PER_REP // n)
    for run in runs.values():
        for _ in range(WARMUP):
            assert await run() == n
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = clock()
            for _ in range(count):
                await run()
            samples[name].append((clock() - start) / (count * n) * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def check_correct() -> None:
    """The looplet run must end with ``done`` after exactly N steps (else timings lie)."""
    replies = script(10)
    loop = composable_loop(
        llm=ScriptedBackend(replies), tools=make_tools(), config=LoopConfig(max_steps=15), task="t"
    )
    steps = list(loop)
    assert len(steps) == 10 and all(s.ok for s in steps), [s.pretty() for s in steps]
    assert loop.trajectory.stop_reason is StopReason.DONE, loop.trajectory.stop_reason


def measure() -> dict[str, dict[int, float]]:
    sync_tools, async_tools = make_tools(), make_tools(async_tools=True)
    rows: dict[str, dict[int, float]] = {
        "reference (sync)": {},
        "looplet sync": {},
        "looplet sync, MockLLMBackend": {},
        "reference (async)": {},
        "looplet async, async tools": {},
        "looplet async, AsyncMock": {},
        "looplet async, model yields": {},
        "looplet async, sync tools": {},
    }

    def store(figures: dict[str, float], n: int) -> None:
        for name, us in figures.items():
            rows[name][n] = us

    for n in SIZES:
        replies, items = script(n), mock_script(n)
        runs = {
            "reference (sync)": partial(run_reference, replies),
            "looplet sync": partial(run_looplet, replies, sync_tools),
            "looplet sync, MockLLMBackend": partial(run_mock, items, sync_tools),
        }
        store(per_step_us(runs, n), n)

    async def async_rows() -> None:
        for n in SIZES:
            replies, items = script(n), mock_script(n)
            runs = {
                "reference (async)": partial(arun_reference, replies),
                "looplet async, async tools": partial(arun_looplet, replies, async_tools),
                "looplet async, AsyncMock": partial(arun_mock, items, async_tools),
                "looplet async, model yields": partial(arun_looplet, replies, async_tools, True),
            }
            store(await aper_step_us(runs, n), n)
            # Sync tools go through asyncio.to_thread (a thread hop per call): fewer repeats.
            hop = {"looplet async, sync tools": partial(arun_looplet, replies, sync_tools)}
            store(await aper_step_us(hop, n, repeats=7), n)

    asyncio.run(async_rows())
    return rows


def print_table(rows: dict[str, dict[int, float]]) -> None:
    head = "".join(f"{'N=' + str(n):>11}" for n in SIZES)
    kind = "CPU" if clock is time.process_time else "wall"
    print(f"\nper-step {kind} time, µs (median of {REPEATS} repetitions, setup included)")
    print(f"{'loop':<30}{head}{'growth 1000/100':>18}")
    for name, by_n in rows.items():
        cells = "".join(f"{by_n[n]:>11.2f}" for n in SIZES)
        growth = by_n[1000] / by_n[100]
        print(f"{name:<30}{cells}{growth:>17.2f}x")

    print(f"\nratio to the reference (goal ≤ {GOAL_RATIO:.0f}x) and growth (goal ≤ {GOAL_GROWTH}x)")
    pairs = [
        ("looplet sync", "reference (sync)"),
        ("looplet async, async tools", "reference (async)"),
        ("looplet async, sync tools", "reference (async)"),
    ]
    for name, ref in pairs:
        ratios = [rows[name][n] / rows[ref][n] for n in SIZES]
        cells = "".join(f"{r:>10.1f}x" for r in ratios)
        growth = rows[name][1000] / rows[name][100]
        if name == "looplet async, sync tools":
            print(f"{name:<30}{cells}   no goal: a thread hop per call (see below)")
            continue
        ratio_ok = "met" if max(ratios) <= GOAL_RATIO else "NOT met"
        growth_ok = "met" if growth <= GOAL_GROWTH else "NOT met"
        print(f"{name:<30}{cells}   ratio {ratio_ok}, growth {growth:.2f}x {growth_ok}")
    print(
        "(the async loop runs sync tools through asyncio.to_thread, so that a slow one never\n"
        " blocks the event loop; that hop is the row's cost, and it swings by 2x between runs)"
    )

    print(
        f"\nthe scripted test backends against the minimal scripted model "
        f"(goal ≤ {GOAL_MOCK_RATIO:.0f}x at N=1000; growth ≤ {GOAL_GROWTH}x)"
    )
    mocks = [
        ("looplet sync, MockLLMBackend", "looplet sync"),
        ("looplet async, AsyncMock", "looplet async, async tools"),
    ]
    for name, base in mocks:
        ratios = [rows[name][n] / rows[base][n] for n in SIZES]
        cells = "".join(f"{r:>10.1f}x" for r in ratios)
        growth = rows[name][1000] / rows[name][100]
        ratio_ok = "met" if ratios[-1] <= GOAL_MOCK_RATIO else "NOT met"
        growth_ok = "met" if growth <= GOAL_GROWTH else "NOT met"
        print(f"{name:<30}{cells}   ratio {ratio_ok}, growth {growth:.2f}x {growth_ok}")
    ratios = [
        rows["looplet async, AsyncMock"][n] / rows["looplet async, model yields"][n] for n in SIZES
    ]
    cells = "".join(f"{r:>10.1f}x" for r in ratios)
    print(
        f"{'  (vs a model that yields)':<30}{cells}   AsyncMock yields to the event loop by design"
    )


def profile(mock: bool = False) -> None:
    """cProfile one N=1000 sync run (on MockLLMBackend with ``mock``); print the top 15 by
    cumulative and by own time.

    Times are per step (profiled, so inflated several-fold: read the shares, not the µs).
    """
    n = 1000
    tools = make_tools()
    run: Callable[[], int] = (
        partial(run_mock, mock_script(n), tools) if mock else partial(run_looplet, script(n), tools)
    )
    run()  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []  # (name, calls, own s, cumulative s)
    for (file, line, func), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}" if line else "~"
        rows.append((f"{func} ({where})", calls, own, cum))
    # The whole run: the largest cumulative figure (own times alone miss profiler gaps).
    total = max(stats.total_tt, max(r[3] for r in rows))  # type: ignore[attr-defined]
    for index, title in ((3, "cumulative time"), (2, "own time")):
        print(
            f"\ncProfile, one N={n} sync run{' on MockLLMBackend' if mock else ''}, top 15 by "
            f"{title} "
            f"(profiled total {total * 1e3:.0f} ms = {total / n * 1e6:.0f} µs/step)"
        )
        print(
            f"{'function':<52}{'calls/step':>11}{'own µs':>9}{'own %':>7}{'cum µs':>9}{'cum %':>7}"
        )
        for name, calls, own, cum in sorted(rows, key=lambda r: r[index], reverse=True)[:15]:
            print(
                f"{name[:51]:<52}{calls / n:>11.1f}{own / n * 1e6:>9.2f}"
                f"{own / total * 100:>6.1f}%{cum / n * 1e6:>9.2f}{cum / total * 100:>6.1f}%"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="also cProfile one N=1000 sync run")
    parser.add_argument(
        "--profile-mock", action="store_true", help="also cProfile one on MockLLMBackend"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="time CPU (time.process_time), not wall time"
    )
    args = parser.parse_args()
    if args.cpu:
        global clock
        clock = time.process_time
    check_correct()
    started = time.perf_counter()
    print_table(measure())
    print(f"\n(measured in {time.perf_counter() - started:.1f} s; Python {sys.version.split()[0]})")
    if args.profile:
        profile()
    if args.profile_mock:
        profile(mock=True)


if __name__ == "__main__":
    main()
