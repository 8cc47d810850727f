"""RunState: everything a run carries from one step to the next.

The step engine (:mod:`looplet.engine`) reads and updates it; the drivers
(:mod:`looplet.loop`) build it; a checkpoint (:mod:`looplet.checkpoint`) saves and restores
it; a sub-agent reaches its parent's through ``ToolContext.run``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from looplet.config import LoopConfig
from looplet.errors import LoopletError
from looplet.hooks import ResolvedHooks
from looplet.messages import Message
from looplet.state import AgentState
from looplet.tools import BaseToolRegistry, ToolContext
from looplet.types import ToolCall, Trajectory

if TYPE_CHECKING:  # looplet.compact loads when a run has a context budget
    from looplet.compact import CompactionRecord, ContextMeter

__all__ = ["RunState"]


class RunState:
    """Everything that survives from one step to the next. A checkpoint serialises it.

    A plain class rather than a dataclass: one is built per run, and nothing compares,
    copies or lists its fields (and a dataclass costs ~0.6 ms more at ``import looplet``).
    """

    __slots__ = (
        "call_ids",
        "charged_pending",
        "checkpoint",
        "compactions",
        "config",
        "context",
        "ctx",
        "error",
        "hook_values",
        "hooks",
        "llm",
        "max_llm_calls",
        "max_steps",
        "messages",
        "meter",
        "pending_calls",
        "pending_context",
        "started",
        "state",
        "stop_requested",
        "tools",
        "trajectory",
    )

    def __init__(
        self,
        llm: Any,
        tools: BaseToolRegistry,
        config: LoopConfig,
        state: AgentState,
        hooks: ResolvedHooks,
        context: Any,
        trajectory: Trajectory,
        ctx: ToolContext,
        hook_values: dict[str, Any],
    ) -> None:
        # Positional: one call builds a RunState (looplet.loop.new_run), and calling a class
        # with eleven keywords cost about 1 µs more per run (bench/step_overhead.py, N=10).
        max_steps = config.max_steps
        own_limit = getattr(state, "max_steps", max_steps)  # the smaller of the two applies
        if own_limit < max_steps:
            max_steps = own_limit
        self.llm = llm
        self.tools = tools
        self.config = config
        self.state = state
        self.hooks = hooks
        self.context = context
        self.trajectory = trajectory
        self.ctx = ctx
        #: The step budget: the smaller of ``config.max_steps`` and ``state.max_steps``.
        self.max_steps = max_steps
        #: The hard cap on model calls (``LoopConfig.llm_call_cap``).
        self.max_llm_calls = config.llm_call_cap(max_steps)
        #: The values hook methods are called with, by parameter name (empty for a run
        #: without hooks: nothing else reads them).
        self.hook_values = hook_values
        #: The conversation: append-only, and the very list that ``trajectory.messages``
        #: is; a compaction replaces it (in both places) with a new list.
        self.messages: list[Message] = trajectory.messages
        #: ``pre_prompt``/``post_dispatch`` context waiting for the next model call.
        self.pending_context: list[str] = []
        #: A ``post_dispatch`` hook's stop, taken once its step is recorded.
        self.stop_requested: str | None = None
        #: The calls of the current model turn not yet recorded as steps, in order: kept
        #: only for checkpoints (nothing else reads them). A run resumed from a checkpoint
        #: runs these before it asks the model again.
        self.pending_calls: list[ToolCall] = []
        #: How many of ``pending_calls`` are already counted in ``state.queries_used``
        #: (screened with their group, not yet recorded): a checkpoint leaves them out.
        self.charged_pending = 0
        #: Every call id used in the conversation, so none is used twice (built on the
        #: first reply, from the messages: a resumed run has ids already).
        self.call_ids: set[str] | None = None
        #: Saves checkpoints for the driver (``looplet.checkpoint``); ``None``: none taken.
        self.checkpoint: Any = None
        #: The error that ended the run, raised by the driver once the run has finished.
        self.error: LoopletError | None = None
        self.started = time.perf_counter()
        #: Every compaction of the conversation, in order (``Trajectory.compactions``).
        self.compactions: list[CompactionRecord] = trajectory.compactions
        #: The prompt's measure against ``config.context_budget`` (``None``: no budget).
        self.meter: ContextMeter | None = None
        if config.context_budget is not None:
            from looplet.compact import ContextMeter

            self.meter = ContextMeter(config.context_budget)

    @property
    def stopped(self) -> bool:
        """True once a stop reason is set."""
        return self.trajectory.stop_reason is not None

    @property
    def next_step(self) -> int:
        """The number the next step will get."""
        return len(self.trajectory.steps) + 1
