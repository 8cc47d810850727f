"""The sans-IO step engine: every decision of the loop, and no I/O.

:func:`run_engine` is a generator that *yields effects* and receives their outcomes:

* an :class:`~looplet.backends.base.LLMRequest`: the driver calls the backend with it and
  sends back an ``LLMResponse``, or the ``LLMError`` it failed with;
* a :class:`~looplet.tools.PreparedCall` (checked and permitted): the driver runs it and
  sends back its ``ToolResult``;
* ``RunTools(calls)``: the driver runs these prepared calls together and sends back their
  ``ToolResult``s, in order;
* a :class:`~looplet.types.Step`: the driver hands it to the caller and sends back ``None``;
* ``SaveCheckpoint(final)`` (only when ``RunState.checkpoint`` is set): the driver saves the
  run and sends back ``None``, or the ``CheckpointError`` the write failed with.

The engine never blocks, sleeps, or touches the network, so the sync driver
(:func:`looplet.loop.composable_loop`) and the async one share every line of it. When the run
ends the engine returns the :class:`~looplet.types.Trajectory`, or raises the error that
ended it (with ``.trajectory`` attached).

What does *not* live here: calling the backend, running tools (``looplet.loop``), hook
resolution and decision types (``looplet.hooks``), provider formats (``looplet.backends``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Sequence
from typing import Any

from looplet._reply_guard import clean_text, guard_reply
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.errors import (
    ErrorKind,
    HookError,
    LLMError,
    LoopletError,
    ToolError,
)
from looplet.hooks import HookDecision, decide, emit, observe
from looplet.messages import ConversationView, Message, render_task, render_tool_result
from looplet.run_state import RunState
from looplet.tools import PreparedCall
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory

__all__ = ["Effect", "RunState", "RunTools", "SaveCheckpoint", "run_engine"]


# The effects are plain slotted classes, cheap to build; a model call needs no wrapper: the
# engine yields the LLMRequest itself.
class RunTools:
    """Effect: run several prepared ``calls`` together; answer with their results, in order."""

    __slots__ = ("calls",)

    def __init__(self, calls: tuple[PreparedCall, ...]) -> None:
        self.calls = calls


class SaveCheckpoint:
    """Effect: save the run now (``final``: it has ended); answer None or a CheckpointError.

    Yielded after a step is recorded and before it is handed to the caller, so a resumed
    run never records it again; and once more when the run ends.
    """

    __slots__ = ("final",)

    def __init__(self, final: bool) -> None:
        self.final = final


class Rewritten:
    """A call a ``pre_dispatch`` hook rewrote, and the result it gets without running:
    refused (invalid arguments, a denial) or the implicit done.

    ``screen_call`` returns it so that the step records the call as it was judged, the
    rewritten one, with its ``result``; the engine does not yield it.
    """

    __slots__ = ("call", "result")

    def __init__(self, call: ToolCall, result: ToolResult) -> None:
        self.call = call
        self.result = result


#: What the engine yields: a model request, a tool call or a batch of them, a checkpoint,
#: or a step.
Effect = LLMRequest | PreparedCall | RunTools | SaveCheckpoint | Step


def run_engine(run: RunState) -> Generator[Effect, Any, Trajectory]:
    """Drive one run to its end, yielding effects for the driver to perform."""
    try:
        start_run(run)
        if run.trajectory.steps or run.pending_calls:  # restored from a checkpoint
            yield from resume_turn(run)
        while may_call_model(run):
            request = build_request(run)
            if request is None:
                break
            if run.meter is None:
                if run.hooks.on_event:
                    emit(run.hooks, "llm_call", request.step, request=request)
                reply = yield request
            else:
                from looplet._engine_budget import call_within_budget  # budgeted runs only

                reply = yield from call_within_budget(run, run.meter, request)
                if reply is None:
                    break
            calls = record_reply(run, reply)
            if len(calls) != 1:  # none (the run has stopped), or several
                yield from run_turn(run, calls)
                continue
            # One call, the common case: run here rather than in run_turn, whose grouping and
            # nested generator cost a noticeable share of every step (bench/step_overhead.py).
            outcome = screen_call(run, calls[0])
            if isinstance(outcome, PreparedCall):
                run.ctx.step = len(run.trajectory.steps) + 1
                step = record_step(run, outcome.call, (yield outcome))
            elif isinstance(outcome, Rewritten):
                step = record_step(run, outcome.call, outcome.result)
            else:
                step = record_step(run, calls[0], outcome)
            if run.checkpoint is not None:
                take_save_outcome(run, (yield SaveCheckpoint(final=False)))
            yield step
            after_step(run, step)
    except HookError as err:
        fail(run, StopReason.HOOK_ERROR, err)
    except GeneratorExit:
        set_stop(run, StopReason.CANCELLED, "the caller stopped iterating the loop")
        finish_run(run)
        raise
    trajectory = finish_run(run)
    if run.checkpoint is not None:
        take_save_outcome(run, (yield SaveCheckpoint(final=True)))
    if run.error is not None:
        raise run.error
    return trajectory


# -- the steps of a run, in the order they happen ----------------------------------------------


def start_run(run: RunState) -> None:
    """Lay down the system prompt and the task (unless resumed), then run ``pre_loop`` hooks."""
    config = run.config
    if not run.messages:
        task_text = (config.render_task or render_task)(run.trajectory.task)
        run.messages.append(Message.system(config.render_system_prompt()))
        run.messages.append(Message.user(task_text))
    if run.hooks.on_event:
        emit(run.hooks, "loop_start", 0, task=run.trajectory.task)
    if run.hooks.pre_loop:
        observe(run.hooks.pre_loop, run.hook_values, 0)


def resume_turn(run: RunState) -> Generator[Effect, Any, None]:
    """Go on from a checkpoint: settle its last step, then finish the interrupted turn.

    A step's checkpoint is taken before the run decides whether to go on after it, so that
    decision (``after_step``) is taken now. Then the turn's calls that were never recorded
    run, and only after them is the model asked again: its turn is already in the
    conversation, and asking again would spend a model call and could change the calls.
    """
    if run.trajectory.steps:
        after_step(run, run.trajectory.steps[-1])
    if run.pending_calls:
        yield from run_turn(run, tuple(run.pending_calls))


def may_call_model(run: RunState) -> bool:
    """Whether another model call is allowed; if not, set the exact stop reason."""
    trajectory = run.trajectory
    if trajectory.stop_reason is not None:
        return False
    token = run.config.cancel_token
    if token is not None and token.is_cancelled:
        set_stop(run, StopReason.CANCELLED, token.reason)
    elif run.state.queries_used >= run.max_steps:
        set_stop(run, StopReason.MAX_STEPS, f"{run.max_steps} steps used")
    elif trajectory.total_llm_calls >= run.max_llm_calls:  # sub-agents' calls count too
        set_stop(run, StopReason.MAX_LLM_CALLS, f"{run.max_llm_calls} model calls made")
    return trajectory.stop_reason is None


def build_request(run: RunState) -> LLMRequest | None:
    """The next model request: the conversation plus this turn's ``pre_prompt`` context."""
    step = len(run.trajectory.steps) + 1
    if run.pending_context:
        run.messages.append(Message.user("\n\n".join(run.pending_context)))
        run.pending_context.clear()
    extra: tuple[Message, ...] = ()
    if run.hooks.pre_prompt:
        values = run.hook_values
        values["step_num"] = step
        values["messages"] = ConversationView(run.messages)
        decisions = observe(run.hooks.pre_prompt, values, step)
        if stop := next((d.stop for d in decisions if d.stop is not None), None):
            set_stop(run, StopReason.HOOK_STOP, stop)
            return None
        texts = [d.additional_context for d in decisions if d.additional_context]
        if texts:
            extra = (Message.user("\n\n".join(texts)),)
    config = run.config
    messages = run.messages
    view = ConversationView(messages, len(messages), extra)
    hooks = run.hooks
    on_chunk = None
    if hooks.on_event:  # streamed chunks become "llm_chunk" events (see StreamingHook)
        on_chunk = lambda chunk: emit(hooks, "llm_chunk", step, chunk=chunk)  # noqa: E731
    return LLMRequest(
        view, run.tools.tool_schemas(), config.max_tokens, config.temperature, step, on_chunk
    )


def record_reply(run: RunState, reply: LLMResponse | BaseException) -> tuple[ToolCall, ...]:
    """Record the model's turn; return its tool calls (none: the run has stopped).

    ``reply`` is what the driver got: normally an ``LLMResponse``, or the error the call
    failed with; anything else a backend returned is an ``LLMError`` (``_reply_guard``).
    """
    trajectory = run.trajectory
    trajectory.llm_calls += 1
    if isinstance(reply, BaseException):
        if isinstance(reply, HookError):  # raised by a hook receiving a streamed chunk
            fail(run, StopReason.HOOK_ERROR, reply)
            return ()
        error = reply if isinstance(reply, LoopletError) else LLMError("backend", repr(reply))
        fail(run, StopReason.LLM_ERROR, error)
        return ()
    seen = run.call_ids
    if seen is None:  # a new run, or one resumed from a checkpoint: the ids so far
        seen = run.call_ids = {c.call_id for m in run.messages for c in m.tool_calls}
    # Made safe where it enters: not an LLMResponse, bad arguments, lone surrogates, ids.
    checked = guard_reply(reply, run.llm, seen, trajectory.llm_calls)
    if isinstance(checked, LLMError):
        fail(run, StopReason.LLM_ERROR, checked)
        return ()
    reply = checked
    usage = reply.usage
    if usage.input_tokens or usage.output_tokens:
        trajectory.usage = trajectory.usage + usage
    calls = reply.tool_calls
    run.messages.append(Message("assistant", reply.text, calls))
    if run.checkpoint is not None:  # only a checkpoint needs the turn's unrecorded calls
        run.pending_calls[:] = calls
    if run.hooks.on_event:
        emit(run.hooks, "llm_response", len(trajectory.steps) + 1, response=reply)
    if not calls:
        trajectory.final_text = reply.text
        set_stop(run, StopReason.FINAL_TEXT, reply.text[:200])
    return calls


def run_turn(run: RunState, calls: Sequence[ToolCall]) -> Generator[Effect, Any, None]:
    """Screen, run and record every call of one model turn, yielding a step for each.

    Consecutive calls of concurrent-safe tools run together; any other call runs alone, so
    a caller that stops iterating after a step stops the later calls from running. Once the
    run has stopped, the turn's remaining calls are recorded as not run (never dropped).
    """
    index = 0
    while index < len(calls):
        group = next_group(run, calls, index)
        index += len(group)
        outcomes, charges = screen_group(run, group)
        to_run = tuple(o for o in outcomes if isinstance(o, PreparedCall))
        ran: list[ToolResult] = []
        if to_run:
            run.ctx.step = run.next_step
            ran = yield RunTools(to_run)
        ran_iter = iter(ran)
        for call, outcome, charge in zip(group, outcomes, charges, strict=True):
            run.charged_pending -= charge
            if isinstance(outcome, PreparedCall):
                step = record_step(run, outcome.call, next(ran_iter))
            elif isinstance(outcome, Rewritten):
                step = record_step(run, outcome.call, outcome.result)
            else:
                step = record_step(run, call, outcome)
            if run.checkpoint is not None:
                take_save_outcome(run, (yield SaveCheckpoint(final=False)))
            yield step
            after_step(run, step)


def screen_group(
    run: RunState, group: Sequence[ToolCall]
) -> tuple[list[PreparedCall | ToolResult | Rewritten], list[int]]:
    """Screen each call of a group; also say how much budget each one was charged."""
    outcomes: list[PreparedCall | ToolResult | Rewritten] = []
    charges: list[int] = []
    for call in group:
        used = run.state.queries_used
        outcomes.append(screen_call(run, call))
        charges.append(run.state.queries_used - used)
    run.charged_pending = sum(charges)
    return outcomes, charges


def next_group(run: RunState, calls: Sequence[ToolCall], start: int) -> Sequence[ToolCall]:
    """The calls starting at ``start`` that may run together (at least one)."""
    if not run.config.concurrent_dispatch or run.stopped:
        return calls[start : start + 1]
    end = start
    while end < len(calls) and run.tools.is_concurrent_safe(calls[end].tool):
        end += 1
    return calls[start : max(end, start + 1)]


def screen_call(run: RunState, call: ToolCall) -> PreparedCall | ToolResult | Rewritten:
    """Decide what happens to one call before it runs.

    Returns the prepared call to run (arguments possibly rewritten by a hook), or the result
    to record instead: a malformed or unknown call, invalid arguments, a refused done, a
    hook's own result, a denial, or "not run" once the run has stopped or the budget is spent.
    A call a hook rewrote that does not run comes back as :class:`Rewritten`, so the step
    shows the arguments that were judged.
    """
    if run.trajectory.stop_reason is not None:
        return _not_run(call, f"the run stopped ({run.trajectory.stop_reason}) before this call")
    done_tool = run.config.done_tool
    is_done = call.tool == done_tool
    # A done tool the caller did not register: it succeeds with its arguments as its data.
    implicit_done = is_done and run.tools.get(call.tool) is None
    prepared: PreparedCall | ToolResult | None = None
    spec = None
    rewritten = False
    if not implicit_done:
        prepared = run.tools.prepare(call, run.ctx)
        if isinstance(prepared, ToolResult):
            return prepared
        spec = prepared.spec
    counts = not is_done and spec is not None and not spec.free
    if counts and run.state.queries_used >= run.max_steps:
        set_stop(run, StopReason.MAX_STEPS, f"{run.max_steps} steps used")
        return _not_run(call, f"the step budget (max_steps={run.max_steps}) is used up")
    hooks = run.hooks
    if hooks.any_dispatch_hooks:
        step = len(run.trajectory.steps) + 1
        values = run.hook_values
        values["tool_call"] = call
        values["step_num"] = step
        if is_done and hooks.check_done:
            verdict = decide(hooks.check_done, values, step)
            if verdict is not None and verdict.is_block():
                reason = verdict.block or "refused by a check_done hook"
                return ToolResult.failure(call, ToolError(ErrorKind.DONE_REJECTED, reason))
        screened = apply_pre_dispatch(run, call, step)
        if isinstance(screened, ToolResult):
            return screened
        rewritten = screened is not call
        if rewritten:  # a hook rewrote the arguments: check them again
            call = screened
            values["tool_call"] = call
            prepared = None if implicit_done else run.tools.prepare(call, run.ctx)
            if isinstance(prepared, ToolResult):
                return Rewritten(call, prepared)
        if (denied := check_permissions(run, call, step)) is not None:
            return Rewritten(call, denied) if rewritten else denied
    if prepared is None:  # the implicit done
        done = ToolResult(done_tool, call.args_summary(), call.args, call_id=call.call_id)
        return Rewritten(call, done) if rewritten else done
    if counts:
        run.state.queries_used += 1
    return prepared


def apply_pre_dispatch(run: RunState, call: ToolCall, step: int) -> ToolCall | ToolResult:
    """Run ``pre_dispatch`` hooks on ``call``: the call to go on with (a new one if a hook
    rewrote its arguments), or the result to record instead of running it."""
    decision = decide(run.hooks.pre_dispatch, run.hook_values, step)
    if decision is None:
        return call
    if decision.additional_context:  # Continue(text) / InjectContext(text): noted for the model
        run.pending_context.append(decision.additional_context)
    if decision.stop is not None:
        set_stop(run, StopReason.HOOK_STOP, decision.stop)
        return _not_run(call, f"a hook stopped the run: {decision.stop}")
    if decision.updated_result is not None:
        return dataclasses.replace(decision.updated_result, call_id=call.call_id)
    if decision.is_block():
        return _denied(call, decision, "pre_dispatch")
    if decision.updated_args is not None:
        return dataclasses.replace(call, args=dict(decision.updated_args))
    return call


def check_permissions(run: RunState, call: ToolCall, step: int) -> ToolResult | None:
    """Ask each ``check_permission`` hook about ``call``; the first refusal is the result."""
    for bound in run.hooks.check_permission:
        verdict = decide((bound,), run.hook_values, step)
        if verdict is not None and verdict.is_block():
            return _denied(call, verdict, f"{type(bound.hook).__name__}.check_permission")
    return None


def record_step(run: RunState, call: ToolCall, result: ToolResult) -> Step:
    """Let ``post_dispatch`` hooks see (or replace) the result, then record the step."""
    steps = run.trajectory.steps
    step_num = len(steps) + 1
    hooks = run.hooks
    if hooks.post_dispatch:
        values = run.hook_values
        values["tool_call"] = call
        values["step_num"] = step_num
        for bound in hooks.post_dispatch:
            values["tool_result"] = result
            decisions = observe((bound,), values, step_num)
            for d in decisions:
                if d.updated_result is not None:
                    result = dataclasses.replace(d.updated_result, call_id=call.call_id)
                if d.additional_context:
                    run.pending_context.append(d.additional_context)
                if d.stop is not None and run.stop_requested is None:
                    run.stop_requested = d.stop
    step = Step(step_num, call, result)
    steps.append(step)
    if run.state.steps is not steps:
        run.state.steps.append(step)
    if run.pending_calls:
        del run.pending_calls[:1]  # calls are recorded in the turn's order
    content = render_tool_result(result, run.config.max_result_chars)
    if not content.isascii():  # a tool's lone surrogate would fail the next request
        content = clean_text(content)
    run.messages.append(
        Message("tool", content, (), result.call_id, result.tool, result.error is not None)
    )
    if hooks.on_event:
        emit(hooks, "step", step_num, step=step)
    return step


def after_step(run: RunState, step: Step) -> None:
    """Decide whether the run ends after ``step``: done, a hook's stop, or cancellation."""
    if run.trajectory.stop_reason is not None:
        return
    if step.tool_call.tool == run.config.done_tool and step.tool_result.error is None:
        set_stop(run, StopReason.DONE, _done_detail(step.tool_result.data))
        return
    if run.stop_requested is not None:
        set_stop(run, StopReason.HOOK_STOP, run.stop_requested)
        return
    if run.hooks.should_stop:
        values = run.hook_values
        values["step"] = step
        values["step_num"] = step.number
        values["new_entities"] = []
        verdict = decide(run.hooks.should_stop, values, step.number)
        if verdict is not None and verdict.is_stop():
            set_stop(run, StopReason.HOOK_STOP, verdict.stop or "")
            return
    token = run.config.cancel_token
    if token is not None and token.is_cancelled:
        set_stop(run, StopReason.CANCELLED, token.reason)


def finish_run(run: RunState) -> Trajectory:
    """Close the record and run ``on_loop_end`` hooks (all of them, even if one raises)."""
    trajectory = run.trajectory
    if trajectory.stop_reason is None:  # only reachable through an unexpected exit path
        set_stop(run, StopReason.CANCELLED, "the loop ended unexpectedly")
    trajectory.elapsed_ms = (time.perf_counter() - run.started) * 1000
    # ctx.run points back at this run (for sub-agent tools); break the cycle now, so a
    # finished run is freed by reference counting instead of waiting for the cyclic GC.
    if run.ctx.run is run:
        run.ctx.run = None
    failed_hook = run.error.hook if isinstance(run.error, HookError) else None
    if run.error is not None:  # before the hooks, so on_loop_end sees why the run failed
        trajectory.error = run.error
        run.error.trajectory = trajectory
    run.hook_values["trajectory"] = trajectory
    for bound in run.hooks.on_loop_end:
        if bound.hook is failed_hook:
            continue
        try:
            bound(run.hook_values, len(trajectory.steps))
        except HookError as err:
            if run.error is None:
                run.error = err
    emit_safely(run)
    if run.error is not None:
        trajectory.error = run.error
        run.error.trajectory = trajectory
    return trajectory


def emit_safely(run: RunState) -> None:
    """Deliver ``loop_end``; a raising listener is recorded unless an error already is."""
    if not run.hooks.on_event:
        return
    try:
        emit(run.hooks, "loop_end", len(run.trajectory.steps), trajectory=run.trajectory)
    except HookError as err:
        if run.error is None:
            run.error = err


# -- small helpers ----------------------------------------------------------------------------


def set_stop(run: RunState, reason: StopReason, detail: str = "") -> None:
    """Record why the run ends; the first reason set is the one kept."""
    if run.trajectory.stop_reason is None:
        run.trajectory.stop_reason = reason
        run.trajectory.stop_detail = detail


def fail(run: RunState, reason: StopReason, error: LoopletError) -> None:
    """End the run because of ``error``, which the driver will raise."""
    set_stop(run, reason, str(error))
    if run.error is None:
        run.error = error


def take_save_outcome(run: RunState, outcome: object) -> None:
    """Take the driver's answer to ``SaveCheckpoint``: a failed write ends the run.

    The run stops (``cancelled``, the error's message as detail) and raises the
    ``CheckpointError``; no further checkpoint is tried, so the last one written stays the
    one to resume from.
    """
    if not isinstance(outcome, BaseException):
        return
    if isinstance(outcome, LoopletError):
        error = outcome
    else:
        error = LoopletError(f"saving a checkpoint failed: {outcome!r}")
    run.checkpoint = None
    fail(run, StopReason.CANCELLED, error)
    if run.error is error:  # the final checkpoint comes after finish_run filled these in
        run.trajectory.error = error
        error.trajectory = run.trajectory


def _not_run(call: ToolCall, why: str) -> ToolResult:
    return ToolResult.failure(call, ToolError(ErrorKind.CANCELLED, f"not run: {why}"))


def _denied(call: ToolCall, decision: HookDecision, where: str) -> ToolResult:
    reason = decision.block or f"denied by {where}"
    retry = bool(decision.metadata.get("retry", False))
    return ToolResult.failure(call, ToolError(ErrorKind.PERMISSION_DENIED, reason, retriable=retry))


def _done_detail(data: Any) -> str:
    if isinstance(data, dict) and len(data) == 1:
        (data,) = data.values()
    return str(data)[:200] if data is not None else ""
