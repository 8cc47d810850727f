"""The engine's steps that call hooks (see ``engine.py``; loaded by runs with hooks only).

Each is a generator the engine runs with ``yield from``: every ``async def`` hook becomes an
:class:`~looplet._hook_calls.AwaitHook` effect for the async driver, and with sync hooks
none ever yields. What each slot does with a hook's answer is the table in ``hooks.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any, cast

from looplet._hook_calls import AwaitHook, call_ignoring, decide, emit, observe
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.engine import (
    Rewritten,
    admit,
    build_request,
    flush_context,
    not_run,
    record_step,
    set_stop,
)
from looplet.errors import ErrorKind, HookError, ToolError
from looplet.hooks import BoundHook, HookDecision, LoopEvent, ResolvedHooks
from looplet.messages import ConversationView, Message
from looplet.run_state import RunState
from looplet.tools import PreparedCall
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory

__all__ = [
    "CallEvents",
    "ask_dispatch_hooks",
    "ask_pre_prompt",
    "ask_should_stop",
    "end_with_hooks",
    "record_step_with_hooks",
    "run_again",
    "start_with_hooks",
    "tell_reply",
]


def start_with_hooks(run: RunState) -> Generator[AwaitHook, Any, None]:
    """Tell the ``on_event`` hooks the run starts, then run the ``pre_loop`` hooks (their
    text joins the first model call)."""
    if run.hooks.on_event:
        yield from emit(run.hooks, "loop_start", 0, task=run.trajectory.task)
    if run.hooks.pre_loop:
        for decision in (yield from observe(run.hooks.pre_loop, run.hook_values, 0)):
            if decision.additional_context:
                run.pending_context.append(decision.additional_context)


def ask_pre_prompt(run: RunState) -> Generator[AwaitHook, Any, LLMRequest]:
    """Run the ``pre_prompt`` hooks (they observe: only their text is taken, shown in this
    call alone), then build the request."""
    flush_context(run)  # first, so that the hooks' `messages` show it
    step = len(run.trajectory.steps) + 1
    values = run.hook_values
    values["step_num"] = step
    values["messages"] = ConversationView(run.messages)
    decisions = yield from observe(run.hooks.pre_prompt, values, step)
    texts = [d.additional_context for d in decisions if d.additional_context]
    return build_request(run, (Message.user("\n\n".join(texts)),) if texts else ())


class CallEvents:
    """The events of one model call, for a run with ``on_event`` hooks; it is the request's
    ``on_chunk``. Each streamed chunk is an ``llm_chunk`` event, delivered at once to sync
    hooks and kept in ``deferred`` for async ones (a backend calls ``on_chunk``
    synchronously); :func:`tell_reply` delivers those, then ``llm_response`` with the reply
    :func:`record_reply` kept in ``response``."""

    __slots__ = ("deferred", "hooks", "response", "step")

    def __init__(self, hooks: ResolvedHooks, step: int) -> None:
        self.hooks = hooks
        self.step = step
        self.deferred: list[tuple[BoundHook, dict[str, Any]]] = []
        self.response: LLMResponse | None = None

    def __call__(self, chunk: Any) -> None:
        """Deliver one chunk."""
        values = {"event": LoopEvent("llm_chunk", self.step, {"chunk": chunk})}
        for bound in self.hooks.on_event:
            if bound.is_async:
                self.deferred.append((bound, values))
            else:
                bound.ignore(bound(values, self.step), self.step)


def tell_reply(run: RunState, request: LLMRequest) -> Generator[AwaitHook, Any, None]:
    """Deliver the async hooks' ``llm_chunk`` events of ``request``, then ``llm_response``
    (when a reply was recorded)."""
    events = request.on_chunk
    if not isinstance(events, CallEvents):
        return
    for bound, values in events.deferred:
        yield from call_ignoring(bound, values, events.step)
    events.deferred.clear()
    if events.response is not None:
        response, events.response = events.response, None
        step = len(run.trajectory.steps) + 1
        yield from emit(run.hooks, "llm_response", step, response=response)


def ask_dispatch_hooks(
    run: RunState, call: ToolCall, prepared: PreparedCall | None, is_done: bool, counts: bool
) -> Generator[AwaitHook, Any, PreparedCall | ToolResult | Rewritten]:
    """:func:`screen_call`'s hook part: ``check_done`` (for the done tool), ``pre_dispatch``
    (which may rewrite the arguments: they are checked again), then ``check_permission``."""
    hooks = run.hooks
    step = len(run.trajectory.steps) + 1
    values = run.hook_values
    values["tool_call"] = call
    values["step_num"] = step
    if is_done and hooks.check_done:
        verdict = yield from decide(hooks.check_done, values, step, run.pending_context)
        if verdict is not None and verdict.is_block():
            reason = verdict.block or "refused by a check_done hook"
            return ToolResult.failure(call, ToolError(ErrorKind.DONE_REJECTED, reason))
    rewritten = False
    if hooks.pre_dispatch:
        screened = yield from apply_pre_dispatch(run, call, step)
        if isinstance(screened, ToolResult):
            return screened
        rewritten = screened is not call
        if rewritten:  # a hook rewrote the arguments: check them again
            call = screened
            values["tool_call"] = call
            if prepared is not None:  # (None: the implicit done, never prepared)
                again = run.tools.prepare(call, run.ctx)
                if isinstance(again, ToolResult):
                    return Rewritten(call, again)
                prepared = again
    denied = (yield from check_permissions(run, call, step)) if hooks.check_permission else None
    if denied is not None:
        return Rewritten(call, denied) if rewritten else denied
    return admit(run, call, prepared, counts, rewritten)


def apply_pre_dispatch(
    run: RunState, call: ToolCall, step: int
) -> Generator[AwaitHook, Any, ToolCall | ToolResult]:
    """Run ``pre_dispatch`` hooks on ``call``: the call to go on with (a new one if a hook
    rewrote its arguments), or the result to record instead of running it."""
    hooks = run.hooks.pre_dispatch
    decision = yield from decide(hooks, run.hook_values, step, run.pending_context)
    if decision is None:
        return call
    if decision.stop is not None:
        set_stop(run, StopReason.HOOK_STOP, decision.stop)
        return not_run(call, f"a hook stopped the run: {decision.stop}")
    if decision.updated_result is not None:
        return dataclasses.replace(decision.updated_result, call_id=call.call_id)
    if decision.permission == "deny":  # Deny: a permission verdict
        return _denied(call, decision, "pre_dispatch")
    if decision.block is not None:  # Block: not run, with no verdict on permission
        return not_run(call, f"blocked by a pre_dispatch hook: {decision.block}")
    if decision.updated_args is not None:
        return dataclasses.replace(call, args=dict(decision.updated_args))
    return call


def check_permissions(
    run: RunState, call: ToolCall, step: int
) -> Generator[AwaitHook, Any, ToolResult | None]:
    """Ask each ``check_permission`` hook about ``call``; the first refusal is the result."""
    for bound in run.hooks.check_permission:
        verdict = yield from decide((bound,), run.hook_values, step, run.pending_context)
        if verdict is not None and verdict.is_block():
            return _denied(call, verdict, f"{type(bound.hook).__name__}.check_permission")
    return None


def record_step_with_hooks(
    run: RunState, call: ToolCall, result: ToolResult
) -> Generator[AwaitHook | PreparedCall, Any, Step]:
    """``post_dispatch`` hooks transform the result, each seeing the one before's (a
    ``ToolResult`` replaces it, ``Stop`` ends the run after this step, text joins the next
    call, an ``approval`` runs the call again and the same hook sees the new result); then
    the step is recorded and ``on_event`` hooks are told."""
    hooks = run.hooks
    step_num = len(run.trajectory.steps) + 1
    if hooks.post_dispatch:
        values = run.hook_values
        values["tool_call"] = call
        values["step_num"] = step_num
        for bound in hooks.post_dispatch:
            reruns = 0
            while True:
                values["tool_result"] = result
                granted = None
                for d in (yield from observe((bound,), values, step_num)):
                    if d.updated_result is not None:
                        result = dataclasses.replace(d.updated_result, call_id=call.call_id)
                    if d.additional_context:
                        run.pending_context.append(d.additional_context)
                    if d.stop is not None and run.stop_requested is None:
                        run.stop_requested = d.stop
                    if d.approval is not None:
                        granted = d.approval
                if granted is None or reruns >= MAX_RERUNS or run.stop_requested is not None:
                    break
                reruns += 1
                result = yield from run_again(run, call, granted)
    step = cast(Step, record_step(run, call, result, hooks_asked=True))
    if hooks.on_event:
        yield from emit(hooks, "step", step_num, step=step)
    return step


#: How many times ``post_dispatch`` hooks may run one call again (each ``approval``).
MAX_RERUNS = 8


def run_again(
    run: RunState, call: ToolCall, approval: Any
) -> Generator[PreparedCall, Any, ToolResult]:
    """Run ``call`` again, approved: its tool sees ``approval`` as ``ctx.approval`` (on a
    copy of the run's context, so calls running together do not see each other's). The
    driver runs the yielded :class:`PreparedCall` as any other; the budget is not charged
    again: it is the same call."""
    ctx = dataclasses.replace(run.ctx, approval=approval)
    prepared = run.tools.prepare(call, ctx)
    if isinstance(prepared, ToolResult):  # cancelled meanwhile
        return prepared
    result: ToolResult = yield prepared
    return result


def ask_should_stop(run: RunState, step: Step) -> Generator[AwaitHook, Any, None]:
    """Ask the ``should_stop`` hooks whether the run ends after ``step``."""
    values = run.hook_values
    values["step"] = step
    values["step_num"] = step.number
    values["new_entities"] = []
    hooks = run.hooks.should_stop
    verdict = yield from decide(hooks, values, step.number, run.pending_context)
    if verdict is not None and verdict.is_stop():
        set_stop(run, StopReason.HOOK_STOP, verdict.stop or "")


def end_with_hooks(run: RunState) -> Generator[AwaitHook, Any, Trajectory]:
    """Run every ``on_loop_end`` hook (but the one whose error ended the run), then deliver
    ``loop_end``; a raising hook is recorded as the run's error unless one already is."""
    trajectory = run.trajectory
    failed_hook = run.error.hook if isinstance(run.error, HookError) else None
    values = run.hook_values
    values["trajectory"] = trajectory
    for bound in run.hooks.on_loop_end:
        if bound.hook is failed_hook:
            continue
        try:
            yield from call_ignoring(bound, values, len(trajectory.steps))
        except HookError as err:
            if run.error is None:
                run.error = err
    if run.hooks.on_event:
        try:
            yield from emit(run.hooks, "loop_end", len(trajectory.steps), trajectory=trajectory)
        except HookError as err:
            if run.error is None:
                run.error = err
    if run.error is not None:
        trajectory.error = run.error
        run.error.trajectory = trajectory
    return trajectory


def _denied(call: ToolCall, decision: HookDecision, where: str) -> ToolResult:
    reason = decision.block or f"denied by {where}"
    retry = bool(decision.metadata.get("retry", False))
    return ToolResult.failure(call, ToolError(ErrorKind.PERMISSION_DENIED, reason, retriable=retry))
