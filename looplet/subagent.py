"""Sub-agents: a run that starts a smaller run of its own, inside the parent's budget.

:func:`run_sub_loop` runs a child loop with its own tools and prompt and returns a summary of
what it found. The child never escapes its parent: every budget of the parent binds it. It
may use at most the steps and the model calls the parent has left (or its own limits, if
tighter); the steps it uses are then charged to the parent (``state.queries_used``), and its
model calls count against the parent's ``max_llm_calls`` (the engine checks
``Trajectory.total_llm_calls``), so parent and children together never pass the parent's
caps. A child that runs out stops with the stop reason its parent would use. It stops when
the parent's cancel token is set; and its :class:`~looplet.types.Trajectory` is
kept on the parent's (``children``, linked to the parent's step by ``parent_step``), so the
parent's record, ``to_dict()`` and provenance files hold it. Tokens and model calls stay on
each trajectory (``Trajectory.total_usage`` adds the children in). :func:`subagent_tool`
wraps this as a tool the parent's model can call. The loop itself knows nothing of
sub-agents.

Observer hooks of the parent follow it into the child when they offer a
``subagent_hook(parent_step)`` method (``MetricsHook`` and ``TracingHook`` do), so the
child's model calls and tool calls show up in the parent's metrics and nested in its trace.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from looplet.cancel import CancelToken
from looplet.config import LoopConfig
from looplet.errors import ConfigurationError, ErrorKind, LoopletError, ToolError
from looplet.loop import AsyncLoopRun, LoopRun, async_composable_loop, composable_loop
from looplet.run_state import RunState
from looplet.state import DefaultState
from looplet.tools import BaseToolRegistry, ToolContext, ToolSpec
from looplet.types import StopReason, Trajectory

__all__ = ["ParentRun", "SubagentResult", "arun_sub_loop", "run_sub_loop", "subagent_tool"]

#: What may be passed as a sub-agent's parent: the parent's loop (``composable_loop``'s
#: return value), its ``RunState``, or the ``ToolContext`` a tool receives.
ParentRun = RunState | LoopRun | AsyncLoopRun | ToolContext

#: Turns the child's trajectory into the text handed back to the parent.
Summarize = Callable[[Trajectory], str]

_FINISHED = (StopReason.DONE, StopReason.FINAL_TEXT)
_TASK_SCHEMA = {
    "type": "object",
    "properties": {
        "task": {
            "type": "string",
            "description": "What the sub-agent should do, with everything it needs to know.",
        }
    },
    "required": ["task"],
}


@dataclass(frozen=True, slots=True)
class SubagentResult:
    """What a sub-agent's run came to. ``str(result)`` is the summary.

    Attributes:
        summary: the child's answer (its done call's, or its final text), or
            ``summarize(trajectory)``; for a child that did not finish, why it stopped.
        trajectory: the child's full record (also on the parent's ``children``).
    """

    summary: str
    trajectory: Trajectory

    @property
    def ok(self) -> bool:
        """True when the child finished: it called done, or answered in plain text."""
        return self.trajectory.stop_reason in _FINISHED and self.trajectory.error is None

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the child's run ended."""
        return self.trajectory.stop_reason

    def __str__(self) -> str:
        return self.summary


@dataclass(slots=True)
class _Plan:
    """A child run, checked and built, ready to drive."""

    registry: BaseToolRegistry
    config: LoopConfig
    state: DefaultState
    hooks: list[object]
    parent: RunState | None
    parent_step: int | None


def run_sub_loop(
    llm: Any,
    task: Any,
    tools: BaseToolRegistry | Iterable[ToolSpec],
    *,
    parent: ParentRun | None = None,
    max_steps: int = 5,
    system_prompt: str | None = None,
    hooks: Iterable[object] = (),
    config: LoopConfig | None = None,
    summarize: Summarize | None = None,
    context: Any = None,
) -> SubagentResult:
    """Run a child loop on ``task`` with its own ``tools``; return its summary and record.

    The child gets ``min(max_steps, steps the parent has left)`` steps, at most the model
    calls the parent has left, the parent's cancel token, and a ``done`` tool if ``tools``
    has none. Its failures (a provider error, a
    raising hook, running out of steps) come back as a result with ``ok`` false, never as
    an exception. Example, from inside a tool of the parent::

        def research(question: str, ctx: ToolContext) -> str:
            return str(run_sub_loop(llm, question, search_tools, parent=ctx, max_steps=4))

    Args:
        llm: the child's backend (``complete``).
        task: the child's task.
        tools: the child's tools (copied: the child's ``done`` is not added to yours).
        parent: the parent run; ``None`` runs a free-standing child.
        max_steps: the most steps the child may use.
        system_prompt: the child's system prompt (default: ``config``'s).
        hooks: the child's own hooks (the parent's observers that offer
            ``subagent_hook`` are added).
        config: the child's settings; ``max_steps``, ``cancel_token`` and
            ``system_prompt`` are set from the arguments above, and ``max_llm_calls`` is
            lowered to what the parent has left.
        summarize: builds the summary from the child's trajectory.
        context: handed to the child's hooks as ``context``.

    Raises:
        ConfigurationError: a bad argument (no tools, a non-backend ``llm``, a bad parent).
    """
    plan = _plan(tools, parent, max_steps, system_prompt, hooks, config)
    if isinstance(plan, SubagentResult):
        return plan
    loop = composable_loop(llm, task, plan.registry, context, plan.hooks, plan.config, plan.state)
    _link(plan, loop.trajectory)
    try:
        for _ in loop:
            pass
    except LoopletError:  # already on the trajectory (.error), which _finish reports
        pass
    finally:
        _charge(plan)
    return _finish(loop.trajectory, summarize)


async def arun_sub_loop(
    llm: Any,
    task: Any,
    tools: BaseToolRegistry | Iterable[ToolSpec],
    *,
    parent: ParentRun | None = None,
    max_steps: int = 5,
    system_prompt: str | None = None,
    hooks: Iterable[object] = (),
    config: LoopConfig | None = None,
    summarize: Summarize | None = None,
    context: Any = None,
) -> SubagentResult:
    """The async twin of :func:`run_sub_loop`: the child runs in ``async_composable_loop``."""
    plan = _plan(tools, parent, max_steps, system_prompt, hooks, config)
    if isinstance(plan, SubagentResult):
        return plan
    loop = async_composable_loop(
        llm, task, plan.registry, context, plan.hooks, plan.config, plan.state
    )
    _link(plan, loop.trajectory)
    try:
        async for _ in loop:
            pass
    except LoopletError:
        pass
    finally:
        _charge(plan)
    return _finish(loop.trajectory, summarize)


def subagent_tool(
    name: str,
    description: str,
    llm: Any,
    tools: BaseToolRegistry | Iterable[ToolSpec],
    *,
    parent: ParentRun | Callable[[], ParentRun] | None = None,
    max_steps: int = 5,
    system_prompt: str | None = None,
    hooks: Iterable[object] = (),
    config: LoopConfig | None = None,
    summarize: Summarize | None = None,
) -> ToolSpec:
    """A tool that hands a task to a sub-agent and returns its summary.

    The tool takes one argument, ``task``. A child that does not finish makes the call fail
    (a ✗ step the parent's model reads, and goes on from). The tool is ``free``: the call
    itself uses no step, the child's steps are charged to the parent instead.

    Example::

        tools.register(subagent_tool("research", "Research a question.", llm, search_tools))

    Args:
        parent: the parent run, or a function returning it (for a loop built after the
            tool). ``None``: taken from the ``ToolContext`` the loop hands the tool.
        name: the tool's name, as the parent's model calls it.
        description: what the tool does, for the parent's model.
        llm: the child's model (sync or async backend).
        tools: the child's tools.
        max_steps: the child's own step limit (the parent's budget also binds it).
        system_prompt: the child's system prompt.
        hooks: the child's hooks.
        config: the child's settings.
        summarize: turns the child's trajectory into the tool's result.

    The arguments other than ``parent`` are as for :func:`run_sub_loop`.
    """
    options: dict[str, Any] = {
        "max_steps": max_steps,
        "system_prompt": system_prompt,
        "hooks": tuple(hooks),
        "config": config,
        "summarize": summarize,
    }
    child_tools = tools if isinstance(tools, BaseToolRegistry) else list(tools)

    def resolve(ctx: ToolContext) -> ParentRun:
        if parent is None:
            return ctx
        return parent() if callable(parent) else parent

    if hasattr(llm, "complete") or not hasattr(llm, "acomplete"):

        def execute(task: str, ctx: ToolContext) -> str:
            result = run_sub_loop(llm, task, child_tools, parent=resolve(ctx), **options)
            return _tool_outcome(name, result)

        return ToolSpec(name, description, _TASK_SCHEMA, execute, free=True)

    async def aexecute(task: str, ctx: ToolContext) -> str:
        result = await arun_sub_loop(llm, task, child_tools, parent=resolve(ctx), **options)
        return _tool_outcome(name, result)

    return ToolSpec(name, description, _TASK_SCHEMA, aexecute, free=True)


# -- the parts of a child run ---------------------------------------------------------------


def _plan(
    tools: BaseToolRegistry | Iterable[ToolSpec],
    parent: ParentRun | None,
    max_steps: int,
    system_prompt: str | None,
    hooks: Iterable[object],
    config: LoopConfig | None,
) -> _Plan | SubagentResult:
    """Check the arguments and build the child's run; a result if it cannot run at all."""
    run, ctx = _parent_of(parent)
    config = config if config is not None else LoopConfig()
    parent_step = _parent_step(run, ctx)
    steps, calls = max_steps, config.max_llm_calls
    if run is not None:
        # Every budget of the parent binds the child: the tighter of its own and what is left.
        steps = min(max_steps, run.max_steps - run.state.queries_used)
        if steps < 1:
            return _not_run(run, parent_step, StopReason.MAX_STEPS, "steps")
        calls = min(config.llm_call_cap(steps), run.max_llm_calls - run.trajectory.total_llm_calls)
        if calls < 1:
            return _not_run(run, parent_step, StopReason.MAX_LLM_CALLS, "model calls")
    parent_token = ctx.cancel_token if ctx is not None else None
    config = dataclasses.replace(
        config,
        max_steps=steps,
        max_llm_calls=calls,
        cancel_token=_link_tokens(config.cancel_token, parent_token),
        system_prompt=system_prompt if system_prompt is not None else config.system_prompt,
    )
    child_hooks = list(hooks)
    if run is not None:
        for hook in run.hooks.hooks:
            make = getattr(hook, "subagent_hook", None)
            if callable(make) and (child := make(parent_step)) is not None:
                child_hooks.append(child)
    registry = _child_registry(tools, config.done_tool)
    return _Plan(registry, config, DefaultState(max_steps=steps), child_hooks, run, parent_step)


def _not_run(
    run: RunState, parent_step: int | None, reason: StopReason, what: str
) -> SubagentResult:
    """The result of a child the parent has no budget left for: recorded, never run."""
    trajectory = Trajectory(
        task=None,
        stop_reason=reason,
        stop_detail=f"the parent run has no {what} left for a sub-agent",
        parent_step=parent_step,
    )
    run.trajectory.children.append(trajectory)
    return SubagentResult(trajectory.stop_detail, trajectory)


def _parent_of(parent: ParentRun | None) -> tuple[RunState | None, ToolContext | None]:
    if parent is None:
        return None, None
    if isinstance(parent, LoopRun | AsyncLoopRun):
        parent = parent._run
    if isinstance(parent, RunState):
        return parent, parent.ctx
    if isinstance(parent, ToolContext):
        # ToolContext.run (the RunState of the run that called the tool), where the loop
        # provides it; without it the child still inherits the cancel token.
        run = getattr(parent, "run", None)
        return (run if isinstance(run, RunState) else None), parent
    raise ConfigurationError(
        f"parent must be the parent's loop (composable_loop(...)), its RunState or the "
        f"ToolContext a tool receives; got {type(parent).__name__} {parent!r:.80}"
    )


def _parent_step(run: RunState | None, ctx: ToolContext | None) -> int | None:
    if ctx is not None and ctx.step:
        return ctx.step
    return run.next_step if run is not None else None


def _link(plan: _Plan, trajectory: Trajectory) -> None:
    # Linked before the child runs, so a parent checkpoint or flush mid-run already holds it.
    trajectory.parent_step = plan.parent_step
    if plan.parent is not None:
        plan.parent.trajectory.children.append(trajectory)


def _charge(plan: _Plan) -> None:
    if plan.parent is not None:
        plan.parent.state.queries_used += plan.state.queries_used


def _finish(trajectory: Trajectory, summarize: Summarize | None) -> SubagentResult:
    if summarize is not None:
        return SubagentResult(summarize(trajectory), trajectory)
    return SubagentResult(_summary(trajectory), trajectory)


def _summary(trajectory: Trajectory) -> str:
    """The child's answer; for a child that did not finish, why it stopped."""
    reason = trajectory.stop_reason
    if reason is StopReason.FINAL_TEXT and trajectory.error is None:
        return trajectory.final_text
    if reason is StopReason.DONE and trajectory.steps:
        return _answer(trajectory.steps[-1].tool_result.data)
    why = f"{reason.value if reason else 'unfinished'}: {trajectory.stop_detail}"
    text = f"stopped ({why}) after {len(trajectory.steps)} steps"
    if trajectory.steps:
        text += f"; its last step: {trajectory.steps[-1].pretty()}"
    return text


def _answer(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        if len(data) == 1:
            return _answer(next(iter(data.values())))
        for key in ("answer", "summary", "result"):
            if key in data:
                return _answer(data[key])
    try:
        return json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(data)


def _tool_outcome(name: str, result: SubagentResult) -> str:
    if result.ok:
        return result.summary
    kind = ErrorKind.CANCELLED if result.stop_reason is StopReason.CANCELLED else None
    raise ToolError(
        kind or ErrorKind.EXECUTION,
        f"sub-agent {name!r} did not finish: {result.summary}",
        context={"stop_reason": str(result.stop_reason), "steps": len(result.trajectory.steps)},
    )


def _child_registry(
    tools: BaseToolRegistry | Iterable[ToolSpec], done_tool: str
) -> BaseToolRegistry:
    registry = BaseToolRegistry(list(tools))
    if done_tool not in registry:
        registry.register(
            ToolSpec(
                done_tool,
                "Finish: give your answer to the agent that asked.",
                {"answer": "str"},
                lambda *, answer: {"answer": answer},
            )
        )
    return registry


def _link_tokens(own: CancelToken | None, parent: CancelToken | None) -> CancelToken | None:
    if own is None or parent is None or own is parent:
        return own if own is not None else parent
    return _LinkedToken(own, parent)


class _LinkedToken(CancelToken):
    """A child's token when it has its own: cancelled by either its own or the parent's."""

    __slots__ = ("_sources",)

    def __init__(self, *sources: CancelToken) -> None:
        super().__init__()
        self._sources = sources

    @property
    def is_cancelled(self) -> bool:
        """True once this token, or any token it is linked to, is cancelled."""
        if self._cancelled:
            return True
        for source in self._sources:
            if source.is_cancelled:
                self.reason = source.reason
                return True
        return False

    def __bool__(self) -> bool:
        return self.is_cancelled

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback`` when this token or a linked one is cancelled (maybe once each)."""
        removers = [CancelToken.on_cancel(self, callback)]
        removers += [source.on_cancel(callback) for source in self._sources]

        def remove() -> None:
            for each in removers:
                each()

        return remove
