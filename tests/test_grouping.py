"""Which calls of a turn run at the same time: one rule (BaseToolRegistry.next_group), used by
the loop and by dispatch_batch alike."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from looplet import (
    BaseToolRegistry,
    LoopConfig,
    ToolCall,
    ToolSpec,
    async_composable_loop,
    composable_loop,
)
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend


class RecordingRegistry(BaseToolRegistry):
    """Remembers every group it was asked for, as tool names."""

    def __init__(self) -> None:
        super().__init__(
            [
                ToolSpec("look", "Look.", {"at": "str"}, lambda *, at: at, concurrent_safe=True),
                ToolSpec("edit", "Edit.", {"at": "str"}, lambda *, at: at),
                ToolSpec("done", "Finish.", {"answer": "str"}, lambda *, answer: answer),
            ]
        )
        self.groups: list[list[str]] = []

    def next_group(self, calls: Sequence[ToolCall], start: int) -> Sequence[ToolCall]:
        group = super().next_group(calls, start)
        self.groups.append([c.tool for c in group])
        return group


def look(at: str) -> ToolCall:
    return ToolCall("look", {"at": at})


TURN = [
    look("a"),
    look("b"),
    ToolCall("edit", {"at": "c"}),
    look("d"),
    ToolCall("look", raw_arguments="{bad", parse_error="Expecting value"),
    look("f"),
    ToolCall("nope"),
    look("h"),
]
#: consecutive concurrent-safe calls together (a call whose arguments failed to parse is
#: still one of them: it is not run, the others are), every other call alone
EXPECTED = [["look", "look"], ["edit"], ["look", "look", "look"], ["nope"], ["look"]]


def test_the_rule() -> None:
    tools = RecordingRegistry()
    start, groups = 0, []
    while start < len(TURN):
        group = BaseToolRegistry.next_group(tools, TURN, start)
        groups.append([c.tool for c in group])
        start += len(group)
    assert groups == EXPECTED
    assert tools.next_group([ToolCall("edit")], 0) == [ToolCall("edit")]  # never empty


def test_the_loop_and_dispatch_batch_group_by_the_same_rule() -> None:
    batch = RecordingRegistry()
    results = batch.dispatch_batch(TURN)
    assert batch.groups == EXPECTED
    assert [r.ok for r in results] == [True, True, True, True, False, True, False, True]

    looped = RecordingRegistry()
    llm = MockLLMBackend([TURN, ToolCall("done", {"answer": "ok"})])
    steps = list(composable_loop(llm=llm, tools=looped, task="t"))
    assert looped.groups == EXPECTED  # the last turn's single done call needs no grouping
    assert [s.ok for s in steps] == [True, True, True, True, False, True, False, True, True]

    async def run_async() -> list[bool]:
        llm = AsyncMockLLMBackend([TURN, ToolCall("done", {"answer": "ok"})])
        loop = async_composable_loop(llm=llm, tools=aloop_tools, task="t")
        return [s.ok async for s in loop]

    aloop_tools = RecordingRegistry()
    assert asyncio.run(run_async())[:8] == [s.ok for s in steps[:8]]
    assert aloop_tools.groups == EXPECTED


def test_without_concurrent_dispatch_every_call_is_alone() -> None:
    tools = RecordingRegistry()
    llm = MockLLMBackend([TURN, ToolCall("done", {"answer": "ok"})])
    config = LoopConfig(concurrent_dispatch=False)
    steps = list(composable_loop(llm=llm, tools=tools, task="t", config=config))
    assert len(steps) == len(TURN) + 1 and tools.groups == []  # the registry's rule unused
