"""LoopConfig: the settings of one run (budgets, prompt, done tool, limits)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from looplet.cancel import CancelToken
from looplet.errors import ConfigurationError
from looplet.messages import DEFAULT_MAX_RESULT_CHARS

if TYPE_CHECKING:  # each loads only when its setting is used
    from looplet.cache import CachePolicy
    from looplet.compact import ContextBudget
    from looplet.memory import MemorySource

__all__ = ["DEFAULT_SYSTEM_PROMPT", "LoopConfig"]

DEFAULT_SYSTEM_PROMPT = (
    "You are an agent that completes the user's task by calling the tools you are given. "
    "Call one or more tools per turn, read their results, and continue until the task is "
    "complete. When it is, call the `{done_tool}` tool with your answer."
)


@dataclass(slots=True)
class LoopConfig:
    """Settings for :func:`~looplet.composable_loop`.

    Attributes:
        max_steps: how many tool calls may run. Calls of ``free`` tools, and calls that
            never ran (malformed, unknown tool, invalid arguments, denied, a refused done)
            do not count.
        max_tokens: the output token limit of each model call.
        system_prompt: the system message; ``{done_tool}`` is replaced by the done tool's
            name. ``None`` uses :data:`DEFAULT_SYSTEM_PROMPT`.
        temperature: sampling temperature (``None``: the provider's default).
        done_tool: the tool whose successful call ends the run with stop reason ``done``.
        max_llm_calls: a hard cap on model calls, so a model that only calls free tools or
            keeps making bad calls still stops. ``None``: ``max(2 * max_steps, max_steps + 10)``.
        max_result_chars: how much of one tool result is sent back to the model.
        concurrent_dispatch: run consecutive calls of ``concurrent_safe`` tools together (the
            rule: :meth:`~looplet.tools.BaseToolRegistry.next_group`); ``False``: one by one.
        cancel_token: set it from anywhere to stop the run (stop reason ``cancelled``); a
            tool running then is no longer waited for and is recorded as ``cancelled``.
            With a token, sync tools run in a worker thread so that the wait can end.
        render_task: turns the task into the first user message (default:
            :func:`looplet.messages.render_task`).
        workspace_root: the folder tools are told to work in (``ToolContext.workspace_root``).
        session_id: an id for this run, handed to tools (``ToolContext.session_id``).
        context_budget: how large each request's prompt may get; above it the conversation
            is compacted, and a provider's "context length exceeded" is answered by
            compacting and retrying once (see :class:`~looplet.compact.ContextBudget`).
            ``None``: the conversation is sent whole.
        tool_timeout_s: how many seconds a tool call may run before the loop stops waiting
            for it and records a ``timeout`` error, for tools that set no
            ``ToolSpec.timeout_s`` of their own. ``None``: no limit.
        memory_sources: standing text the model sees on every request (see
            :mod:`looplet.memory`): rendered after the system prompt, re-read before each
            model call, counted by the context budget.
        cache_policy: where to place prompt-cache breakpoints (see :mod:`looplet.cache`);
            ``None``: no cache controls are sent.
    """

    max_steps: int = 15
    max_tokens: int = 2000
    system_prompt: str | None = None
    temperature: float | None = 0.2
    done_tool: str = "done"
    max_llm_calls: int | None = None
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS
    concurrent_dispatch: bool = True
    cancel_token: CancelToken | None = None
    render_task: Callable[[Any], str] | None = None
    workspace_root: str | None = None
    session_id: str = ""
    context_budget: ContextBudget | None = None
    tool_timeout_s: float | None = None
    memory_sources: Sequence[MemorySource] = ()
    cache_policy: CachePolicy | None = None

    def __post_init__(self) -> None:
        # type() is int first: the common case costs one test per field (no getattr, no loop)
        if not (
            type(self.max_steps) is int
            and type(self.max_tokens) is int
            and type(self.max_result_chars) is int
            and self.max_steps > 0
            and self.max_tokens > 0
            and self.max_result_chars > 0
        ):
            for name in ("max_steps", "max_tokens", "max_result_chars"):
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ConfigurationError(
                        f"LoopConfig.{name} must be a positive int, got {value!r}"
                    )
        if self.max_llm_calls is not None and (
            not isinstance(self.max_llm_calls, int) or self.max_llm_calls < 1
        ):
            raise ConfigurationError(
                f"LoopConfig.max_llm_calls must be a positive int or None, "
                f"got {self.max_llm_calls!r}"
            )
        if self.tool_timeout_s is not None:
            from looplet._tool_timeout import timeout_problem  # loaded only when a limit is set

            if problem := timeout_problem(self.tool_timeout_s):
                raise ConfigurationError(
                    f"LoopConfig.tool_timeout_s {problem}; e.g. tool_timeout_s=60.0"
                )
        if self.cache_policy is not None and not _is_cache_policy(self.cache_policy):
            raise ConfigurationError(
                f"LoopConfig.cache_policy must be a looplet.cache.CachePolicy or None, got "
                f"{self.cache_policy!r}; e.g. cache_policy=CachePolicy()"
            )
        if self.memory_sources:  # checked (and made a tuple) by looplet.memory, loaded only then
            from looplet.memory import check_memory_sources

            self.memory_sources = check_memory_sources(self.memory_sources)
        if self.context_budget is not None and not _is_budget(self.context_budget):
            raise ConfigurationError(
                f"LoopConfig.context_budget must be a ContextBudget or None, got "
                f"{self.context_budget!r}; e.g. ContextBudget(max_tokens=16_000)"
            )

    def llm_call_cap(self, max_steps: int) -> int:
        """The hard cap on model calls for a run allowed ``max_steps`` steps."""
        if self.max_llm_calls is not None:
            return self.max_llm_calls
        return max(2 * max_steps, max_steps + 10)

    def render_system_prompt(self) -> str:
        """The system prompt with ``{done_tool}`` filled in."""
        template = DEFAULT_SYSTEM_PROMPT if self.system_prompt is None else self.system_prompt
        return template.replace("{done_tool}", self.done_tool)


def _is_budget(value: object) -> bool:
    from looplet.compact import ContextBudget

    return isinstance(value, ContextBudget)


def _is_cache_policy(value: object) -> bool:
    from looplet.cache import CachePolicy

    return isinstance(value, CachePolicy)
