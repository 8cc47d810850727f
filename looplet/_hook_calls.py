"""Calling a slot's hooks: the generators the engine runs with ``yield from`` (see hooks.py).

Each yields an :class:`AwaitHook` for every ``async def`` hook (the async driver awaits it
and sends back the return value, or throws the ``HookError`` it raised) and returns what the
slot decided. With only sync hooks none ever yields, so the sync loop drives them at no
cost beyond the generator, and the engine creates one only when the slot has hooks.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Mapping
from typing import Any

from looplet.errors import HookError
from looplet.hooks import BoundHook, HookDecision, LoopEvent, ResolvedHooks

__all__ = ["AwaitHook", "call_ignoring", "decide", "emit", "observe", "run_now"]


class AwaitHook:
    """Effect: await an ``async def`` hook; answer with its return value.

    The async driver awaits ``awaitable`` and sends the value back, or throws
    :meth:`error` of what it raised into the engine. The sync loop never sees one: it
    refuses async hooks when the run starts.
    """

    __slots__ = ("awaitable", "bound", "step")

    def __init__(self, bound: BoundHook, awaitable: Any, step: int) -> None:
        self.bound = bound
        self.awaitable = awaitable
        self.step = step

    def error(self, exc: Exception) -> HookError:
        """The HookError for ``exc``, raised while awaiting the hook."""
        err = HookError(self.bound.hook, self.bound.slot, self.step, exc)
        err.__cause__ = exc
        return err


def decide(
    hooks: tuple[BoundHook, ...], values: Mapping[str, Any], step: int, notes: list[str]
) -> Generator[AwaitHook, Any, HookDecision | None]:
    """Run a decide slot: the first hook with a decision wins; text from every hook asked
    (``Continue(text)``, ``InjectContext``) is appended to ``notes``."""
    for bound in hooks:
        value = bound(values, step)
        if bound.is_async:
            value = yield AwaitHook(bound, value, step)
        decision = bound.decision(value, step)
        if decision is None:
            continue
        if decision.additional_context:
            notes.append(decision.additional_context)
        for name in bound.decisive:
            if getattr(decision, name) is not None:
                return decision
    return None


def observe(
    hooks: tuple[BoundHook, ...], values: Mapping[str, Any], step: int
) -> Generator[AwaitHook, Any, list[HookDecision]]:
    """Run an observe or transform slot: every hook runs; their decisions are returned."""
    out: list[HookDecision] = []
    for bound in hooks:
        value = bound(values, step)
        if bound.is_async:
            value = yield AwaitHook(bound, value, step)
        decision = bound.decision(value, step)
        if decision is not None:
            out.append(decision)
    return out


def call_ignoring(
    bound: BoundHook, values: Mapping[str, Any], step: int
) -> Generator[AwaitHook, Any, None]:
    """Call one hook of a slot that ignores return values (``on_loop_end``, ``on_event``)."""
    value = bound(values, step)
    if bound.is_async:
        value = yield AwaitHook(bound, value, step)
    bound.ignore(value, step)


def emit(
    hooks: ResolvedHooks, kind: str, step_num: int, **data: Any
) -> Generator[AwaitHook, Any, None]:
    """Deliver a :class:`LoopEvent` to every ``on_event`` hook."""
    values = {"event": LoopEvent(kind, step_num, data)}
    for bound in hooks.on_event:
        yield from call_ignoring(bound, values, step_num)


def run_now(pending: Generator[AwaitHook, Any, Any]) -> Any:
    """Drive ``pending`` where nothing can await (a closing generator, a stream callback):
    an async hook met there gets a HookError saying so, its coroutine closed unawaited."""
    try:
        effect = pending.send(None)
        while True:
            awaitable = effect.awaitable
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            reason = RuntimeError(
                "an async hook cannot be awaited here: the run was closed without "
                "`await run.aclose()` (or by garbage collection), so nothing awaits it"
            )
            effect = pending.throw(effect.error(reason))
    except StopIteration as done:
        return done.value
