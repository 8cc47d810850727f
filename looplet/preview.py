"""``preview_prompt``: the exact request the next model call would send, without calling it.

For debugging a prompt (print it) and for tests (assert on it)::

    preview = preview_prompt("Greet Alice.", tools, config=LoopConfig(memory_sources=[...]))
    print(preview)                      # system prompt, memory, task, tools, settings
    preview.request                     # the LLMRequest the backend would receive

Give it what you would give :func:`~looplet.composable_loop` to see a new run's first
request, or a running loop (``LoopRun`` / ``AsyncLoopRun``, between two steps) to see the
request its next model call sends. Nothing is changed: the run's conversation, hooks and
state are left as they are, and no model is called (``llm`` may be left out). The memory
sources are read (that is how the preview shows their text as it is now).

Hooks may have side effects, so a preview runs none by default. The ones that may add text
to the request are listed in :attr:`PromptPreview.hooks_not_run` (a hook method annotated
``-> None`` cannot, and is not listed): ``pre_prompt`` hooks (their text ends every request
as a last user message) and, for a run not started yet, ``pre_loop`` hooks (their text joins
the first request). ``run_hooks=True`` runs the ``pre_prompt`` hooks (sync ones only, with
copies of the values the loop passes), so the preview includes their text; any side effect
they have then happens. ``pre_loop`` hooks are never run by a preview: they start things
(a provenance recording, a conversation's turn) that belong to the run itself.

What a preview cannot know: whether the run goes on at all (a ``should_stop`` hook may end
it), and, with a context budget, the compacted conversation: when the request measures over
the budget, :attr:`PromptPreview.over_budget` is true and the loop will compact the
conversation before sending (the memory and tools are kept as shown).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from looplet.backends.base import LLMRequest, ToolSchema
from looplet.errors import ConfigurationError, LoopletError
from looplet.messages import ConversationView, Message, render_task

if TYPE_CHECKING:
    from looplet.checkpoint import Checkpoint, FileCheckpointStore
    from looplet.config import LoopConfig
    from looplet.conversation import Conversation
    from looplet.run_state import RunState
    from looplet.state import AgentState
    from looplet.tools import BaseToolRegistry, ToolSpec

__all__ = ["PromptPreview", "preview_prompt"]

_RULE = "=" * 8


@dataclass(frozen=True, slots=True)
class PromptPreview:
    """The request the next model call would send, and what the preview could not run.

    ``str(preview)`` (and :meth:`text`) renders it for people.

    Attributes:
        request: the :class:`~looplet.backends.base.LLMRequest` itself: equal to the one the
            backend receives next.
        hooks_not_run: the hooks that may add text to this request and were not run
            (``"Briefing.pre_prompt"``).
        measured_tokens: with a context budget, the request's size as the loop measures it
            before sending; ``None`` without a budget.
        token_limit: with a context budget, the most the loop lets a request take.
    """

    request: LLMRequest
    hooks_not_run: tuple[str, ...] = ()
    measured_tokens: int | None = None
    token_limit: int | None = None

    @property
    def messages(self) -> list[Message]:
        """The messages, in order: system prompt, memory (when any), then the conversation."""
        return list(self.request.messages)

    @property
    def tools(self) -> list[ToolSchema]:
        """The tool schemas offered, as ``{"name", "description", "parameters"}``."""
        return list(self.request.tools)

    @property
    def system_prompt(self) -> str:
        """The run's system prompt (the first message's text, without the memory)."""
        for message in self.request.messages:
            if message.role == "system" and message.name != _memory_name():
                return message.content
        return ""

    @property
    def memory(self) -> str:
        """The memory message's text (``""`` when the run has none, or all sources are empty)."""
        for message in self.request.messages:
            if message.role == "system" and message.name == _memory_name():
                return message.content
        return ""

    @property
    def over_budget(self) -> bool:
        """Whether the request measures over the context budget (the loop compacts first)."""
        if self.measured_tokens is None or self.token_limit is None:
            return False
        return self.measured_tokens > self.token_limit

    def text(self) -> str:
        """The request for people: each message under a header, then the tools and settings."""
        request = self.request
        parts = [
            f"{_RULE} request for step {request.step}: {len(request.messages)} messages, "
            f"{len(request.tools)} tools {_RULE}"
        ]
        for message in request.messages:
            parts.append(f"--- {_message_header(message)} ---")
            body = message.content
            for call in message.tool_calls:
                arguments = (
                    call.raw_arguments
                    if call.raw_arguments is not None
                    else json.dumps(call.args, ensure_ascii=False, default=str)
                )
                body += f"{chr(10) if body else ''}-> {call.tool}({arguments}) [{call.call_id}]"
            parts.append(body)
        parts.append(f"--- tools ({len(request.tools)}) ---")
        for schema in request.tools:
            parameters = json.dumps(schema.get("parameters") or {}, ensure_ascii=False)
            parts.append(f"{schema['name']}: {schema.get('description', '')}\n  {parameters}")
        settings = f"max_tokens={request.max_tokens} temperature={request.temperature}"
        if request.cache is not None:
            settings += f" cache={request.cache!r}"
        parts.append(f"--- settings ---\n{settings}")
        if self.measured_tokens is not None:
            verdict = (
                "over the budget: the loop compacts the conversation before sending"
                if self.over_budget
                else "within the budget"
            )
            parts.append(f"context: {self.measured_tokens} of {self.token_limit} tokens, {verdict}")
        for hook in self.hooks_not_run:
            parts.append(
                f"note: {hook} was not run (it may add text to this request); "
                "preview_prompt(..., run_hooks=True) runs pre_prompt hooks"
            )
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text()


def preview_prompt(
    task: Any = None,
    tools: BaseToolRegistry | Iterable[ToolSpec] | None = None,
    state: AgentState | None = None,
    session_log: Any = None,
    *,
    config: LoopConfig | None = None,
    step_number: int | None = None,
    llm: Any = None,
    context: Any = None,
    hooks: Iterable[object] | None = (),
    max_steps: int | None = None,
    system_prompt: str | None = None,
    resume: FileCheckpointStore | Checkpoint | None = None,
    conversation: Conversation | None = None,
    run_hooks: bool = False,
) -> PromptPreview:
    """The request the next model call would send, built without calling the model.

    Either the arguments of :func:`~looplet.composable_loop` (the first request of a new
    run; ``llm`` may be left out; with ``resume=``, the request the resumed run sends next;
    with ``conversation=``, the first request of the conversation's next turn), or a
    running loop as the only argument: ``preview_prompt(loop)`` between two steps shows
    what its next model call sends. The positional order ``(task, tools, state,
    session_log)`` and ``config=`` / ``step_number=`` are the original looplet's.

    Example::

        loop = composable_loop(llm, "Greet Alice.", tools, config=config)
        first = next(loop)
        print(preview_prompt(loop))     # what the second model call will send

    Args:
        task: the task of a new run, or a ``LoopRun`` / ``AsyncLoopRun`` to preview.
        tools: the tools (a registry or ``ToolSpec`` objects).
        state: the agent state (what memory sources are given).
        session_log: accepted for code written for the original looplet; the model sees the
            conversation here, not a session log, so it changes nothing.
        config: the run's settings (system prompt, memory sources, max_tokens...).
        step_number: the step the request is for, as a check: a new run's next request is
            step 1, a running loop's the step after its last; another number raises.
        llm: the backend (optional: it is not called, and does not change the request).
        context: handed to hooks, as in the loop.
        hooks: the run's hooks (see the module docstring for which run).
        max_steps: shorthand for ``LoopConfig(max_steps=...)``, as in the loop.
        system_prompt: shorthand for ``LoopConfig(system_prompt=...)``, as in the loop.
        resume: a checkpoint store or checkpoint, as in the loop.
        conversation: a :class:`~looplet.conversation.Conversation` to continue, as in the
            loop (it is not changed).
        run_hooks: run the ``pre_prompt`` hooks, so their text is in the preview (sync
            hooks only); ``pre_loop`` hooks are never run.

    Raises:
        ConfigurationError: bad arguments (as the loop would raise them); a running loop
            that sends no next request (it has ended, its done tool succeeded, its budget is
            spent); a loop in the middle of a turn whose calls are not all recorded yet
            (the request is known once they are); an async hook with ``run_hooks=True``.
        MemorySourceError: a memory source failed.
    """
    from looplet.loop import AsyncLoopRun, LoopRun, async_composable_loop

    if isinstance(task, LoopRun | AsyncLoopRun):
        given: tuple[object, ...] = (tools, state, session_log, config, llm, context)
        given += (max_steps, system_prompt, resume, conversation)
        if any(v is not None for v in given) or (hooks or ()) != ():
            raise ConfigurationError(
                "preview_prompt(loop) takes the running loop alone (with step_number= or "
                "run_hooks=): its tools, config and hooks are the run's own"
            )
        started = inspect.getgeneratorstate(task._engine) != inspect.GEN_CREATED
        return _preview_run(task._run, started, step_number, run_hooks)
    # A new run, built as the loop builds it (the async builder accepts sync and async
    # backends and hooks alike); its engine never starts.
    loop = async_composable_loop(
        llm if llm is not None else _NoModel(),
        task,
        tools,
        context,
        hooks,
        config,
        state,
        resume=resume,
        conversation=conversation,
        max_steps=max_steps,
        system_prompt=system_prompt,
    )
    return _preview_run(loop._run, False, step_number, run_hooks)


def _preview_run(
    run: RunState, started: bool, step_number: int | None, run_hooks: bool
) -> PromptPreview:
    """The next request of ``run`` (``started``: its engine has run), the run unchanged.

    It is :func:`looplet.engine.build_request`'s request, built without its one change to
    the run (adding the waiting hook text to the conversation): that text is added to the
    view instead, in the same place, so the messages are the same.
    """
    if (why := _no_request(run)) is not None:
        raise ConfigurationError(f"preview_prompt: the run sends no more model requests: {why}")
    config = run.config
    messages = run.messages
    if not messages:  # start_run's opening, built aside
        task_text = (config.render_task or render_task)(run.trajectory.task)
        messages = [Message("system", config.render_system_prompt()), Message("user", task_text)]
    if open_calls := _unanswered(messages):
        raise ConfigurationError(
            f"preview_prompt: the run is in the middle of a model turn ({open_calls} of its "
            "tool calls not recorded yet), so the next request is not known; preview it "
            "once the turn's last step has been taken"
        )
    step = len(run.trajectory.steps) + 1
    if step_number is not None and step_number != step:
        raise ConfigurationError(
            f"preview_prompt(step_number={step_number}): the run's next request is for step "
            f"{step}; to see a later step's request, run the loop to it and call "
            "preview_prompt(loop)"
        )
    hooks = run.hooks
    not_run: list[str] = []
    pending = list(run.pending_context)
    if not started:  # pre_loop hooks start things (recordings, turns): never run here
        not_run += (_name(b) for b in hooks.pre_loop if _may_add_text(b))
    extra: tuple[Message, ...] = (Message.user("\n\n".join(pending)),) if pending else ()
    if hooks.pre_prompt:
        if run_hooks:
            values = dict(run.hook_values)
            values["step_num"] = step
            values["messages"] = ConversationView(messages, None, extra)
            texts = [
                d.additional_context
                for d in _run_sync(_observe(hooks.pre_prompt, values, step))
                if d.additional_context
            ]
            if texts:
                extra += (Message.user("\n\n".join(texts)),)
        else:
            not_run += (_name(b) for b in hooks.pre_prompt if _may_add_text(b))
    view: ConversationView
    if config.memory_sources:
        from looplet.memory import memory_view

        view = memory_view(run, messages, len(messages), extra, step)
    else:
        view = ConversationView(messages, len(messages), extra)
    tools = run.tools.tool_schemas()
    request = LLMRequest(
        view, tools, config.max_tokens, config.temperature, step, None, config.cache_policy
    )
    measured = limit = None
    if run.meter is not None:  # as call_within_budget measures (this only caches counts)
        if messages is run.messages:
            measured = run.meter.measure(messages, view.added, tools)
        else:
            measured = run.meter.budget.count(view) + run.meter.overhead((), tools)
        limit = run.meter.limit
    return PromptPreview(request, tuple(not_run), measured, limit)


def _no_request(run: RunState) -> str | None:
    """Why ``run`` sends no next request, or ``None`` when it does (``may_call_model``'s
    checks, and the ones ``after_step`` makes on the step just handed out, unchanged)."""
    trajectory = run.trajectory
    if trajectory.stop_reason is not None:
        return f"it has ended (stop_reason {trajectory.stop_reason.value!r})"
    steps = trajectory.steps
    if steps:
        last = steps[-1]
        if last.tool_call.tool == run.config.done_tool and last.tool_result.error is None:
            return f"its done tool ({run.config.done_tool!r}) succeeded at step {last.number}"
    if run.stop_requested is not None:
        return f"a hook asked it to stop ({run.stop_requested})"
    token = run.config.cancel_token
    if token is not None and token.is_cancelled:
        return "its cancel token is set"
    if run.state.queries_used >= run.max_steps:
        return f"its step budget is spent ({run.max_steps} steps used)"
    calls = trajectory.total_llm_calls if trajectory.children else trajectory.llm_calls
    if calls >= run.max_llm_calls:
        return f"its model-call cap is reached ({run.max_llm_calls} calls)"
    return None


def _unanswered(messages: Sequence[Message]) -> int:
    """How many calls of the last model turn have no tool message yet."""
    answered: set[str] = set()
    for message in reversed(messages):
        if message.role == "tool":
            answered.add(message.tool_call_id)
        elif message.role == "assistant":
            return sum(1 for c in message.tool_calls if c.call_id not in answered)
        else:
            return 0
    return 0


def _observe(hooks: Any, values: dict[str, Any], step: int) -> Generator[Any, Any, list[Any]]:
    from looplet._hook_calls import observe

    return observe(hooks, values, step)


def _run_sync(pending: Generator[Any, Any, list[Any]]) -> list[Any]:
    """Drive a hook slot's work; an ``async def`` hook cannot run here."""
    try:
        effect = pending.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    awaitable = effect.awaitable
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    pending.close()
    bound = effect.bound
    raise ConfigurationError(
        f"preview_prompt(run_hooks=True): hook {type(bound.hook).__name__}.{bound.slot}() is "
        "async and cannot be run here; preview with run_hooks=False (it is then listed in "
        "hooks_not_run)"
    )


def _message_header(message: Message) -> str:
    if message.role == "tool":
        failed = ", error" if message.is_error else ""
        return f"tool {message.name} [{message.tool_call_id}{failed}]"
    if message.name:
        return f"{message.role} ({message.name})"
    return message.role


def _name(bound: Any) -> str:
    return f"{type(bound.hook).__name__}.{bound.slot}"


def _may_add_text(bound: Any) -> bool:
    """Whether a hook method may return text: any but one annotated ``-> None``."""
    returns = getattr(bound.fn, "__annotations__", {}).get("return", inspect.Parameter.empty)
    return returns not in (None, "None")


def _memory_name() -> str:
    from looplet.memory import MEMORY_NAME

    return MEMORY_NAME


class _NoModel:
    """The backend of a previewed new run when none is given: never called."""

    provider = "preview"

    def complete(self, request: LLMRequest) -> Any:
        raise LoopletError("preview_prompt makes no model call")

    async def acomplete(self, request: LLMRequest) -> Any:
        raise LoopletError("preview_prompt makes no model call")
