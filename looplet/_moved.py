"""Names of the original looplet 0.1.7 that this version does not have, and why.

A module that kept its original import path (``looplet.context``, ``looplet.streaming``...)
or the package itself calls :func:`missing` from its ``__getattr__``: asking for one of these
names raises :class:`NotAvailableError` (an ``ImportError``, so that ``from looplet.context
import ContextPressureHook`` shows the reason instead of Python's bare "cannot import name"), saying
what replaced it and pointing at ``docs/migration.md``, whose table lists the same names.
Any other unknown name is a plain ``AttributeError``. Loaded only on such a miss.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["GONE", "NotAvailableError", "missing"]

_EMITTERS = (
    "deliberately gone: pass stream= to the loop (a function of each LoopEvent, or a "
    "looplet.streaming.EventStream to iterate); StreamingHook(on_chunk=..., on_text=..., "
    "queue=...) still forwards streamed text, and every lifecycle event reaches a hook's "
    "on_event(event: LoopEvent)."
)
_EVENTS = (
    "deliberately gone: a hook's on_event receives a LoopEvent(kind, step_num, data); kind is "
    "one of loop_start, llm_call, llm_chunk, llm_response, step, compaction, loop_end."
)
_CONTEXT_HOOKS = (
    "deliberately gone: set LoopConfig(context_budget=ContextBudget(max_tokens=...)); the "
    "loop compacts the conversation before a request would exceed it."
)
_DOMAIN = (
    "deliberately gone: the prompt is no longer rebuilt from briefing/entity/trace callables "
    "each turn; a pre_prompt hook returning text adds to the next request, and "
    "LoopConfig.render_task turns the task into the first user message."
)

#: ``"module.Name"`` -> why it is not here and what to use instead.
GONE: dict[str, str] = {
    # looplet (the package's __all__ of 0.1.7)
    "looplet.NativeToolBackend": (
        "deliberately gone: every backend is native now; LLMBackend.complete(LLMRequest) "
        "returns the tool calls on LLMResponse.tool_calls."
    ),
    "looplet.run_compact": (
        "deliberately gone: the loop runs compaction itself when LoopConfig.context_budget is "
        "set; a CompactService's compact(messages, budget=, llm=) returns a CompactOutcome."
    ),
    "looplet.ThresholdCompactHook": _CONTEXT_HOOKS,
    "looplet.DomainAdapter": _DOMAIN,
    "looplet.emit_event": (
        "deliberately gone: the loop delivers every event to each hook's on_event; hooks do "
        "not emit events."
    ),
    "looplet.LifecycleEvent": _EVENTS,
    "looplet.EventPayload": _EVENTS,
    # looplet.types
    "looplet.types.NativeToolBackend": (
        "deliberately gone: every backend is native now (looplet.backends.base.LLMBackend)."
    ),
    # looplet.loop
    "looplet.loop.DomainAdapter": _DOMAIN,
    "looplet.loop.emit_event": (
        "deliberately gone: the loop delivers every event to each hook's on_event."
    ),
    # looplet.conversation
    "looplet.conversation.ContentBlock": (
        "deliberately gone: a Message's content is text; its tool calls are ToolCall objects "
        "on Message.tool_calls, and a tool result is a Message(role='tool')."
    ),
    "looplet.conversation.MessageRole": (
        "deliberately gone: a role is a plain string, 'system', 'user', 'assistant' or "
        "'tool' (looplet.messages.Role)."
    ),
    "looplet.conversation.default_summarizer": (
        "deliberately gone: SummarizeCompact summarises old turns with the model, set via "
        "ContextBudget(strategy=SummarizeCompact())."
    ),
    # looplet.context
    "looplet.context.ContextPressureHook": _CONTEXT_HOOKS,
    "looplet.context.ContextManagerHook": _CONTEXT_HOOKS,
    # looplet.streaming: StreamingHook and EventStream are here; the emitters and events are not
    **dict.fromkeys(
        (
            f"looplet.streaming.{name}"
            for name in (
                "CallbackEmitter",
                "CompositeEmitter",
                "EventEmitter",
                "QueueEmitter",
                "Event",
                "ContextPressureEvent",
                "HookEvent",
                "LLMCallEndEvent",
                "LLMCallStartEvent",
                "LLMChunkEvent",
                "LoopEndEvent",
                "LoopStartEvent",
                "RecoveryEvent",
                "StepEndEvent",
                "StepStartEvent",
                "ToolDispatchEvent",
                "ToolResultEvent",
            )
        ),
        _EMITTERS,
    ),
}


class NotAvailableError(ImportError):
    """An original looplet 0.1.7 name that this version does not have (see
    ``docs/migration.md``). An ``ImportError``, so that a ``from ... import`` of it shows why."""


def missing(module: str, name: str) -> NoReturn:
    """Raise for ``module.name``: :class:`NotAvailableError` with the reason when it is an
    original name listed in :data:`GONE`, else the usual ``AttributeError``."""
    reason = GONE.get(f"{module}.{name}")
    if reason is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    from looplet._version import __version__

    raise NotAvailableError(
        f"{module}.{name} (from the original looplet 0.1.7) is not available in looplet "
        f"{__version__}: {reason} See docs/migration.md.",
        name=name,
    )
