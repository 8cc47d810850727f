"""The engine's steps for keeping each model request within ``LoopConfig.context_budget``.

Used by :func:`looplet.engine.run_engine` only when a context budget is set: measure the
request, compact the conversation under pressure (the compaction service's own model calls go
through the driver like every other model request, like every other call), and compact-and-retry
once when the provider answers "context length exceeded". The strategies themselves live in
:mod:`looplet.compact`; the rest of the step engine in :mod:`looplet.engine`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from looplet._hook_calls import emit
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.engine import Effect, fail
from looplet.errors import ConfigurationError, LoopletError
from looplet.messages import ConversationView, Message
from looplet.run_state import RunState
from looplet.types import StopReason

if TYPE_CHECKING:
    from looplet.compact import ContextMeter

__all__ = ["call_within_budget", "compact_conversation"]


def call_within_budget(
    run: RunState, meter: ContextMeter, request: LLMRequest
) -> Generator[Effect, Any, Any]:
    """Send ``request`` within ``config.context_budget``; return the reply (or the error).

    Over the budget, the conversation is compacted first. If the provider still answers
    "context length exceeded", it is compacted again (to ``target`` of what was refused)
    and the request is sent once more; a second refusal is the reply. ``None`` means a
    model call of the compaction failed and the run has stopped.
    """
    from looplet.compact import is_context_overflow

    extra = _extra_messages(run, request)
    if meter.measure(run.messages, extra, request.tools) > meter.limit:
        changed = yield from compact_conversation(run, meter, "pressure", extra, request.tools)
        if changed is None:
            return None
        if changed:
            request = _rebased(request, run.messages, extra)
    reply = yield from _send(run, meter, request, extra)
    if not is_context_overflow(reply) or run.trajectory.total_llm_calls + 1 >= run.max_llm_calls:
        return reply
    refused = meter.measure(run.messages, extra, request.tools)
    meter.limit = max(1, min(meter.limit, refused - 1))
    trigger = "context_length_exceeded"
    changed = yield from compact_conversation(run, meter, trigger, extra, request.tools)
    if not changed:
        return None if changed is None else reply
    run.trajectory.llm_calls += 1  # the refused call; record_reply counts the retry
    return (yield from _send(run, meter, _rebased(request, run.messages, extra), extra))


def compact_conversation(
    run: RunState,
    meter: ContextMeter,
    trigger: str,
    extra: tuple[Message, ...],
    tools: Sequence[Any],
) -> Generator[Effect, Any, bool | None]:
    """Replace the run's conversation with a compacted one; the steps are not touched.

    The service's model calls (a summary) go through the driver like every other model request.
    Returns True if the conversation changed, False if nothing could be dropped, ``None``
    if a model call failed and ended the run.
    """
    from looplet.compact import CompactionRecord, check_turns, compact_steps

    service = meter.budget.resolved_strategy()
    old = run.messages
    steps = compact_steps(service, tuple(old), meter.room(extra, tools))
    calls = 0
    try:
        ask = next(steps)
        while True:
            reply = yield ask
            calls += 1
            run.trajectory.llm_calls += 1
            if isinstance(reply, LLMResponse):
                run.trajectory.usage = run.trajectory.usage + reply.usage
            ask = steps.send(reply)
    except StopIteration as stop:
        outcome = stop.value
    except ConfigurationError:
        raise
    except LoopletError as err:
        fail(run, StopReason.LLM_ERROR, err)
        return None
    new = list(outcome.messages)
    if new == old:
        return False
    check_turns(new, service)
    run.messages = run.trajectory.messages = new
    record = CompactionRecord(
        run.next_step,
        trigger,
        outcome.reason,
        outcome.before_tokens,
        outcome.after_tokens,
        len(old),
        len(new),
        calls,
    )
    run.compactions.append(record)
    if run.hooks.on_event:
        yield from emit(run.hooks, "compaction", record.step, record=record)
    return True


def _send(
    run: RunState, meter: ContextMeter, request: LLMRequest, extra: tuple[Message, ...]
) -> Generator[Effect, Any, Any]:
    if run.hooks.on_event:
        yield from emit(run.hooks, "llm_call", request.step, request=request)
    meter.sent(run.messages, extra, request.tools)
    reply = yield request
    meter.replied(reply)
    return reply


def _extra_messages(run: RunState, request: LLMRequest) -> tuple[Message, ...]:
    """The messages of ``request`` that are not in the conversation: the memory
    (:mod:`looplet.memory`) and this turn's ``pre_prompt`` context. They are counted with
    every request, and compaction, which sees only the conversation, never drops them."""
    view = request.messages
    if isinstance(view, ConversationView):
        return view.added
    return tuple(view[i] for i in range(len(run.messages), len(view)))


def _rebased(
    request: LLMRequest, messages: list[Message], extra: tuple[Message, ...]
) -> LLMRequest:
    view = request.messages
    if isinstance(view, ConversationView):  # the memory stays where it was, after the prompt
        return dataclasses.replace(request, messages=view.rebased(messages))
    return dataclasses.replace(request, messages=ConversationView(messages, None, extra))
