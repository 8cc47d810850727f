"""The example agent under test: a greeter with a guard hook.

A real agent module as a user would write one: its tools and a hook that enforces a policy.
"""

from __future__ import annotations

from looplet import (
    BaseToolRegistry,
    Deny,
    HookDecision,
    ToolCall,
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
