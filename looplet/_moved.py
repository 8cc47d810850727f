"""Names of the original looplet 0.1.7 that this version does not have, and why.

A module that kept its original import path (``looplet.session``, ``looplet.presets``...) or
the package itself calls :func:`missing` from its ``__getattr__``: asking for one of these
names raises :class:`NotAvailableError` (an ``ImportError``, so that ``from looplet.session
import SessionLog`` shows the reason instead of Python's bare "cannot import name"), saying
what replaced it and pointing at ``docs/migration.md``, whose table lists the same names.
Any other unknown name is a plain ``AttributeError``. Loaded only on such a miss.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["GONE", "NotAvailableError", "missing"]

_PRESETS = (
    "not yet: presets are not part of this version; looplet.examples.coding_agent builds a "
    "coding agent confined to one folder from plain parts (tools, PermissionEngine, "
    "LoopConfig) that you can copy."
)
_EMITTERS = (
    "deliberately gone: streamed text reaches StreamingHook(on_chunk=..., on_text=..., "
    "queue=...) and every lifecycle event reaches a hook's on_event(event: LoopEvent)."
)
_EVENTS = (
    "deliberately gone: a hook's on_event receives a LoopEvent(kind, step_num, data); kind is "
    "one of loop_start, llm_call, llm_chunk, llm_response, step, compaction, loop_end."
)
_SESSION_LOG = (
    "deliberately gone: the Trajectory is the record of a run; a hook's session_log argument "
    "is its list of Steps (trajectory.steps), and the model sees real tool messages."
)
_CONVERSATION = (
    "deliberately gone: the conversation is a list of looplet.messages.Message (system, user, "
    "assistant with tool_calls, tool) that the loop keeps, sends and checkpoints itself."
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
    "looplet.preview_prompt": (
        "deliberately gone: there is no per-turn prompt template to preview; run the loop "
        "with a MockLLMBackend and read what it was sent on llm.requests[i].messages."
    ),
    "looplet.NativeToolBackend": (
        "deliberately gone: every backend is native now; LLMBackend.complete(LLMRequest) "
        "returns the tool calls on LLMResponse.tool_calls."
    ),
    "looplet.run_compact": (
        "deliberately gone: the loop runs compaction itself when LoopConfig.context_budget is "
        "set; a CompactService's compact(messages, budget=, llm=) returns a CompactOutcome."
    ),
    "looplet.ThresholdCompactHook": _CONTEXT_HOOKS,
    "looplet.CachePolicy": (
        "not yet: no provider prompt-caching controls (in 0.1.7 no backend applied them either)."
    ),
    "looplet.StaticMemorySource": (
        "not yet as a memory source: put standing text in LoopConfig.system_prompt or in a "
        "Skill's memory, or return it from a pre_prompt hook for one request."
    ),
    "looplet.CallableMemorySource": (
        "not yet as a memory source: a pre_prompt hook returning text adds it to the next "
        "request; a Skill's memory may be a callable."
    ),
    "looplet.ApprovalHook": (
        "deliberately gone: approvals are PermissionEngine ASK rules with an ask_handler, "
        "asked once per call before the tool runs (PermissionHook(engine))."
    ),
    "looplet.DomainAdapter": _DOMAIN,
    "looplet.emit_event": (
        "deliberately gone: the loop delivers every event to each hook's on_event; hooks do "
        "not emit events."
    ),
    "looplet.LifecycleEvent": _EVENTS,
    "looplet.EventPayload": _EVENTS,
    "looplet.SessionLog": _SESSION_LOG,
    "looplet.Conversation": _CONVERSATION,
    "looplet.AgentPreset": _PRESETS,
    "looplet.coding_agent_preset": _PRESETS,
    "looplet.research_agent_preset": _PRESETS,
    "looplet.minimal_preset": _PRESETS,
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
    "looplet.conversation.Conversation": _CONVERSATION,
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
    # looplet.session
    "looplet.session.SessionLog": _SESSION_LOG,
    "looplet.session.LogEntry": _SESSION_LOG,
    # looplet.context
    "looplet.context.ContextPressureHook": _CONTEXT_HOOKS,
    "looplet.context.ContextManagerHook": _CONTEXT_HOOKS,
    # looplet.presets
    "looplet.presets.AgentPreset": _PRESETS,
    "looplet.presets.coding_agent_preset": _PRESETS,
    "looplet.presets.research_agent_preset": _PRESETS,
    "looplet.presets.minimal_preset": _PRESETS,
    # looplet.streaming: StreamingHook is kept; the emitters and event classes are not
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
