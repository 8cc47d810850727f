"""Agent state: what the loop keeps about a run that hooks may read (steps, budget)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from looplet.types import Step

__all__ = ["AgentState", "DefaultState"]


@runtime_checkable
class AgentState(Protocol):
    """What the loop needs of a state object; :class:`DefaultState` is the stock one."""

    steps: list[Step]
    queries_used: int
    max_steps: int


@dataclass(slots=True)
class DefaultState:
    """The stock agent state: the steps so far and the step budget.

    Pass one to the loop to read it from hooks or after the run; when both a state and a
    ``LoopConfig`` set ``max_steps``, the smaller applies.

    Attributes (in the original looplet's order):
        steps: every step of the run, in order.
        queries_used: how many steps counted against the budget (free tools and calls that
            never ran do not).
        max_steps: the step budget.
        metadata: free-form data for hooks and tools.
    """

    steps: list[Step] = field(default_factory=list)
    queries_used: int = 0
    max_steps: int = 15
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def step_count(self) -> int:
        """How many steps the run has taken."""
        return len(self.steps)

    @property
    def budget_remaining(self) -> int:
        """How many more counted steps the budget allows."""
        return max(self.max_steps - self.queries_used, 0)

    def context_summary(self, last: int = 5) -> str:
        """The last ``last`` steps, one ``Step.pretty()`` line each."""
        return "\n".join(s.pretty() for s in self.steps[-last:])

    def snapshot(self) -> dict[str, Any]:
        """A small JSON-able summary: step count, budget, metadata keys."""
        return {
            "step_count": self.step_count,
            "queries_used": self.queries_used,
            "max_steps": self.max_steps,
            "budget_remaining": self.budget_remaining,
            "metadata_keys": sorted(self.metadata),
        }
