"""The example agent under test: a greeter with a guard hook.

A real agent module as a user would write one: its tools, a hook that enforces a policy,
and a ``run_greeter`` entry point returning the run's ``Trajectory``.
"""

from __future__ import annotations

from typing import Any

from looplet import (
    BaseToolRegistry,
    Deny,
    HookDecision,
    LoopConfig,
    ToolCall,
    Trajectory,
    composable_loop,
    tool,
)

BLOCKED_NAMES = frozenset({"Mallory"})


@tool
def greet(name: str) -> dict[str, str]:
    """Greet someone by name.

    Args:
        name: who to greet.
    """
    return {"greeting": f"Hello, {name}!"}


@tool
def done(answer: str) -> dict[str, str]:
    """Finish the task.

    Args:
        answer: a one-line summary of what was done.
    """
    return {"answer": answer}


class NoBlockedNames:
    """Refuses to greet anyone on the block list; the model is told why."""

    def pre_dispatch(self, tool_call: ToolCall) -> HookDecision | None:
        if tool_call.tool == "greet" and tool_call.args.get("name") in BLOCKED_NAMES:
            return Deny(f"{tool_call.args['name']} is on the block list; do not greet them")
        return None


def build_tools() -> BaseToolRegistry:
    """The greeter's tools."""
    return BaseToolRegistry([greet, done])


def run_greeter(llm: Any, goal: str, *, max_steps: int = 5) -> Trajectory:
    """Run the greeter on ``goal`` and return the trajectory."""
    loop = composable_loop(
        llm=llm,
        tools=build_tools(),
        task={"goal": goal},
        hooks=[NoBlockedNames()],
        config=LoopConfig(max_steps=max_steps),
    )
    for step in loop:
        print(step.pretty())
    return loop.trajectory
