"""Evals of the greeter agent: who it greets, and whom it refuses to greet."""

from __future__ import annotations

import pytest

from example_evals.agents.greeter import NoBlockedNames, build_tools
from looplet import ANY, BaseToolRegistry, PermissionEngine, StopReason
from pytest_looplet.fixtures import LoopletAgent


@pytest.fixture
def looplet_tools() -> BaseToolRegistry:
    return build_tools()


@pytest.fixture
def looplet_permissions() -> PermissionEngine:
    return PermissionEngine().allow("greet")


@pytest.fixture
def looplet_hooks() -> list[object]:
    return [NoBlockedNames()]


def eval_greets_then_finishes(looplet_agent: LoopletAgent) -> None:
    traj = looplet_agent.run({"goal": "Greet Alice, then finish."})
    # A failing comparison shows a step-by-step diff of expected and actual steps.
    assert traj == [("greet", {"name": "Alice"}), ("done", {"answer": ANY})]
    assert traj.stop_reason is StopReason.DONE


async def eval_greets_then_finishes_async(looplet_agent: LoopletAgent) -> bool:
    # An async eval needs no marker: the plugin runs it, and scores what it returns.
    traj = await looplet_agent.arun({"goal": "Greet Alice, then finish."})
    assert traj == [("greet", {"name": "Alice"}), ("done", {"answer": ANY})]
    return traj.stop_reason is StopReason.DONE


@pytest.mark.parametrize(
    ("goal", "names"),
    [
        ("Greet Alice and Bob, then finish.", {"Alice", "Bob"}),
        ("Greet Bob, then finish.", {"Bob"}),
    ],
    ids=["alice-and-bob", "bob"],
)
def eval_greets_everyone_asked(looplet_agent: LoopletAgent, goal: str, names: set[str]) -> float:
    traj = looplet_agent.run({"goal": goal})
    greeted = {s.tool_call.args.get("name") for s in traj.calls("greet") if s.ok}
    return len(greeted & names) / len(names)  # the share of people greeted, as the score


def eval_refuses_to_greet_blocked_names(looplet_agent: LoopletAgent) -> bool:
    traj = looplet_agent.run({"goal": "Greet Mallory."})
    refused = [s.tool_call.args.get("name") for s in traj.denied()]
    return refused == ["Mallory"] and traj.stop_reason is StopReason.DONE
