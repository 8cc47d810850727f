"""Acceptance: a 200-step run over real HTTP stays within a small context budget in every
request it sends, and still finishes with every step yielded and recorded unchanged."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from looplet import LoopConfig, StopReason, ToolSpec, composable_loop
from looplet.backends import OpenAIBackend
from looplet.compact import (
    NOTE_PREFIX,
    ContextBudget,
    PruneCompact,
    SummarizeCompact,
    TruncateCompact,
    compact_chain,
    estimate_tokens,
)
from looplet.messages import Message, render_tool_result
from looplet.testing import RecordedRequest, ScriptedModelServer, call, text_reply, tool_reply
from looplet.types import Step, ToolCall
from tests.conftest import make_tools
from tests.test_compact import Events

STEPS = 200
MAX_TOKENS = 2_000


def read_tools() -> Any:
    """greet/done plus ``read_page``, whose output (~90 tokens) names the page's identifiers."""
    return make_tools(
        read=ToolSpec(
            name="read_page",
            description="Read page n of the ledger.",
            parameters={"n": "int"},
            execute=lambda *, n: {
                "page": n,
                "path": f"/ledger/2024/page-{n:03d}.txt",
                "text": f"Entry {n}: account ACC-{1000 + n} paid {n * 7}.00 EUR. " + "." * 200,
            },
        )
    )


def agent_script() -> Any:
    """A model that reads pages 1..199, then calls done; it answers summary requests too."""
    turn = 0

    def reply(request: RecordedRequest) -> Any:
        nonlocal turn
        if "tools" not in request.body:  # a SummarizeCompact request: no tools offered
            return text_reply("Goal: read the ledger. Findings: pages read so far are fine.")
        turn += 1
        if turn < STEPS:
            return tool_reply(call("read_page", {"n": turn}))
        return tool_reply(call("done", {"answer": f"read {STEPS - 1} pages"}))

    return reply


def wire_messages(body: dict[str, Any]) -> list[Message]:
    """The ``messages`` of an OpenAI request body, as looplet messages, to measure them."""
    out = []
    for m in body["messages"]:
        calls = tuple(
            ToolCall(
                c["function"]["name"], call_id=c["id"], raw_arguments=c["function"]["arguments"]
            )
            for c in m.get("tool_calls") or ()
        )
        out.append(Message(m["role"], m.get("content") or "", calls, m.get("tool_call_id", "")))
    return out


@pytest.mark.parametrize(
    "strategy",
    [
        None,
        TruncateCompact(keep_recent=3),
        compact_chain(PruneCompact(keep_recent=4), SummarizeCompact(max_summary_tokens=200)),
    ],
    ids=["default", "truncate", "prune-then-summarize"],
)
def test_200_steps_stay_within_the_budget_in_every_request_and_finish(strategy: Any) -> None:
    budget = ContextBudget(max_tokens=MAX_TOKENS, strategy=strategy)
    events = Events()
    with ScriptedModelServer([agent_script()] * (3 * STEPS)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini")
            config = LoopConfig(max_steps=STEPS, context_budget=budget)
            loop = composable_loop(
                llm=llm, tools=read_tools(), task="Read the ledger.", hooks=[events], config=config
            )
            yielded: list[Step] = list(loop)
        finally:
            client.close()
        bodies = [r.body for r in server.requests]

    traj = loop.trajectory
    assert traj.stop_reason is StopReason.DONE, traj.stop_detail
    assert len(yielded) == STEPS and traj.steps == yielded
    assert [s.number for s in yielded] == list(range(1, STEPS + 1))
    for n, step in enumerate(yielded[:-1], start=1):  # every result as the tool returned it
        assert step.tool_result.data["path"] == f"/ledger/2024/page-{n:03d}.txt"
        assert step.tool_result.data["text"].endswith("." * 200)

    sizes = [budget.count(wire_messages(body)) for body in bodies]
    assert max(sizes) <= MAX_TOKENS, f"request {sizes.index(max(sizes))} is {max(sizes)} tokens"
    whole = sum(estimate_tokens(render_tool_result(s.tool_result)) for s in yielded)
    assert whole > 5 * MAX_TOKENS  # without compaction the run could not have fitted
    assert bodies[-1]["messages"][2]["content"].startswith(NOTE_PREFIX)
    agent_calls = [b for b in bodies if "tools" in b]
    assert len(agent_calls) == STEPS
    # Compacting to `target` leaves headroom: a compaction every few steps, not every step.
    assert 0 < len(events.compactions) < STEPS // 4
    assert traj.llm_calls == len(bodies) == STEPS + sum(c.llm_calls for c in events.compactions)
