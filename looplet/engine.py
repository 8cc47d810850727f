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
  run and sends back ``None``, or the ``CheckpointError`` the write failed with;
* an :class:`~looplet._hook_calls.AwaitHook` (only for an ``async def`` hook, which only the
  async loop accepts): the driver awaits it and sends back its return value, or throws in
  the ``HookError`` it raised. A function that calls hooks returns, when the slot has hooks,
  a generator that finishes its work (run with ``yield from``), and its value otherwise; the
  work of ``post_dispatch`` hooks may also yield a ``PreparedCall``, when an approval
  (:mod:`looplet.approval`) runs the call again.

The engine never blocks, sleeps, or touches the network, so the sync driver
(:func:`looplet.loop.composable_loop`) and the async one share every line of it. When the run
ends the engine returns the :class:`~looplet.types.Trajectory`, or raises the error that
ended it (with ``.trajectory`` attached).

What does *not* live here: calling the backend, running tools (``looplet.loop``), hook
resolution and decision types (``looplet.hooks``), provider formats (``looplet.backends``).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from types import GeneratorType
from typing import TYPE_CHECKING, Any, cast

from looplet._hook_calls import AwaitHook, emit, run_now
from looplet._reply_guard import clean_text, guard_reply
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.errors import (
    ErrorKind,
    HookError,
    LLMError,
    LoopletError,
    ToolError,
)
from looplet.messages import ConversationView, Message, render_task, render_tool_result
from looplet.run_state import RunState
from looplet.tools import PreparedCall
from looplet.types import _NO_USAGE, Step, StopReason, ToolCall, ToolResult, Trajectory, Turn

__all__ = [
    "AwaitHook",
    "CloseRun",
    "Effect",
    "RunState",
    "RunTools",
    "SaveCheckpoint",
    "run_engine",
]


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


class CloseRun(BaseException):
    """Thrown into the engine by ``AsyncLoopRun.aclose()`` when the run has async hooks: the
    run ends as ``cancelled`` like on ``close()``, but its ``on_loop_end`` and ``on_event``
    hooks can still be awaited (a closing generator cannot yield)."""


#: What the engine yields: a model request, a tool call or a batch of them, a checkpoint,
#: a step, or an async hook to await.
Effect = LLMRequest | PreparedCall | RunTools | SaveCheckpoint | Step | AwaitHook

#: Work a function hands back when it has hooks to call (see the module docstring); its
#: callers test ``type(x) is GeneratorType``, the cheapest test on the path without hooks.
if TYPE_CHECKING:  # (GeneratorType takes no subscript at run time)
    Pending = GeneratorType[AwaitHook | PreparedCall, Any, Any]


def later(work: Generator[AwaitHook | PreparedCall, Any, Any]) -> Pending:
    """``work`` as the ``Pending`` a hook-calling function returns."""
    return cast("Pending", work)


def run_engine(run: RunState) -> Generator[Effect, Any, Trajectory]:
    """Drive one run to its end, yielding effects for the driver to perform."""
    closed = False
    clock = time.perf_counter  # a local: read twice a model call, to time the turn
    # Asked once: a run never changes its hooks (most runs have none).
    prompt_hooks, event_hooks = bool(run.hooks.pre_prompt), bool(run.hooks.on_event)
    if prompt_hooks or event_hooks:
        from looplet._engine_hooks import ask_pre_prompt, tell_reply  # runs with hooks only
    try:
        if type(started := start_run(run)) is GeneratorType:  # loop_start, pre_loop hooks
            yield from started
        calls: Sequence[ToolCall] = ()
        if run.trajectory.steps or run.pending_calls:  # restored from a checkpoint
            calls = yield from resumed_calls(run)
        while True:
            # The turn: screen, run and record each call, yielding a step for each. This is
            # the one place a turn runs (a resumed run's unfinished one too). The calls run
            # in groups (next_group): a group is screened, run together, then recorded in
            # order, so a caller that stops iterating stops the later groups from running;
            # once the run has stopped, the remaining calls are recorded as not run. A turn's
            # only call (the common case) is yielded as its PreparedCall, with no grouping
            # or batch, outside the grouping loop. The turn is inline rather than a nested
            # generator: delegating to one cost every step about 1 µs (bench/step_overhead.py).
            if len(calls) == 1:
                outcome = screen_call(run, calls[0])
                if type(outcome) is GeneratorType:  # hooks to decide on the call
                    outcome = yield from outcome
                if isinstance(outcome, PreparedCall):
                    run.ctx.step = len(run.trajectory.steps) + 1
                    step = record_step(run, outcome.call, (yield outcome))
                else:
                    step = record_unrun(run, calls[0], outcome)
                if type(step) is GeneratorType:  # post_dispatch or on_event hooks
                    step = yield from step
                if run.checkpoint is not None:
                    take_save_outcome(run, (yield SaveCheckpoint(final=False)))
                yield step
                if (pending := after_step(run, step)) is not None:  # should_stop hooks
                    yield from pending
            else:
                index, count = 0, len(calls)
                while index < count:
                    group = next_group(run, calls, index)
                    index += len(group)
                    outcomes, charges = yield from screen_group(run, group)
                    to_run = tuple(o for o in outcomes if type(o) is PreparedCall)
                    ran: Sequence[ToolResult] = ()
                    if to_run:
                        run.ctx.step = len(run.trajectory.steps) + 1
                        ran = yield RunTools(to_run)
                    results = iter(ran)
                    for call, outcome, charge in zip(group, outcomes, charges, strict=True):
                        run.charged_pending -= charge
                        if isinstance(outcome, PreparedCall):
                            step = record_step(run, outcome.call, next(results))
                        else:
                            step = record_unrun(run, call, outcome)
                        if type(step) is GeneratorType:
                            step = yield from step
                        if run.checkpoint is not None:
                            take_save_outcome(run, (yield SaveCheckpoint(final=False)))
                        yield step
                        if (pending := after_step(run, step)) is not None:
                            yield from pending
            if not may_call_model(run):
                break
            request = (yield from ask_pre_prompt(run)) if prompt_hooks else build_request(run)
            if run.meter is None:
                if event_hooks:
                    yield from emit(run.hooks, "llm_call", request.step, request=request)
                sent = clock()  # the turn's time (a clock read is no I/O)
                reply = yield request
            else:
                from looplet._engine_budget import call_within_budget  # budgeted runs only

                sent = clock()
                reply = yield from call_within_budget(run, run.meter, request)
                if reply is None:
                    break
            ms = (clock() - sent) * 1000
            if event_hooks:
                calls = record_reply(run, reply, request, ms)
                yield from tell_reply(run, request)
            else:
                calls = record_reply(run, reply, None, ms)
    except HookError as err:
        fail(run, StopReason.HOOK_ERROR, err)
    except GeneratorExit:
        set_stop(run, StopReason.CANCELLED, "the caller stopped iterating the loop")
        if type(ending := finish_run(run)) is GeneratorType:
            # A closing generator cannot yield; the end's hooks yield only AwaitHook.
            run_now(cast("Generator[AwaitHook, Any, Any]", ending))
        raise
    except CloseRun:  # aclose() of a run with async hooks: the same end, awaited
        set_stop(run, StopReason.CANCELLED, "the caller stopped iterating the loop")
        closed = True
    trajectory = finish_run(run)
    if type(trajectory) is GeneratorType:  # on_loop_end or on_event hooks
        trajectory = yield from trajectory
    if closed:
        return trajectory
    if run.checkpoint is not None:
        take_save_outcome(run, (yield SaveCheckpoint(final=True)))
    if run.error is not None:
        raise run.error
    return trajectory


# -- the steps of a run, in the order they happen ----------------------------------------------


def start_run(run: RunState) -> Pending | None:
    """Lay down the system prompt and the task (unless resumed); with ``on_event`` or
    ``pre_loop`` hooks, the work that runs them (``_engine_hooks.start_with_hooks``: their
    text joins the first model call)."""
    if not run.messages:
        config = run.config
        task_text = (config.render_task or render_task)(run.trajectory.task)
        run.messages += (
            Message("system", config.render_system_prompt()),
            Message("user", task_text),
        )
        run.call_ids = set()  # a new run has used no call id (a resumed one: record_reply)
    if run.hooks.on_event or run.hooks.pre_loop:
        from looplet._engine_hooks import start_with_hooks

        return later(start_with_hooks(run))
    return None


def resumed_calls(run: RunState) -> Generator[AwaitHook, Any, tuple[ToolCall, ...]]:
    """Go on from a checkpoint: settle its last step, then return the interrupted turn's
    calls that were never recorded (the engine runs them as a turn).

    A step's checkpoint is taken before the run decides whether to go on after it, so that
    decision (``after_step``) is taken now. The unrecorded calls run before the model is
    asked again: its turn is already in the conversation, and asking again would spend a
    model call and could change the calls.
    """
    steps = run.trajectory.steps
    if steps and (pending := after_step(run, steps[-1])) is not None:
        yield from pending
    return tuple(run.pending_calls)


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
    elif (
        trajectory.total_llm_calls if trajectory.children else trajectory.llm_calls
    ) >= run.max_llm_calls:  # sub-agents' calls count too
        set_stop(run, StopReason.MAX_LLM_CALLS, f"{run.max_llm_calls} model calls made")
    return trajectory.stop_reason is None


def build_request(run: RunState, extra: tuple[Message, ...] = ()) -> LLMRequest:
    """The next model request: the conversation plus ``extra``, this call's ``pre_prompt``
    text (see :func:`looplet._engine_hooks.ask_pre_prompt`), with the memory (re-read now:
    :mod:`looplet.memory`) after the system prompt. :func:`looplet.preview.preview_prompt`
    builds the same request without changing the run; keep the two in step."""
    if run.pending_context:
        flush_context(run)
    step = len(run.trajectory.steps) + 1
    config = run.config
    messages = run.messages
    if config.memory_sources:  # a run without memory does not load looplet.memory
        from looplet.memory import memory_view

        view = memory_view(run, messages, len(messages), extra, step)
    else:
        view = ConversationView(messages, len(messages), extra)
    on_chunk = None
    if run.hooks.on_event:  # streamed chunks become "llm_chunk" events (see StreamingHook)
        from looplet._engine_hooks import CallEvents

        on_chunk = CallEvents(run.hooks, step)
    return LLMRequest(
        view,
        run.tools.tool_schemas(),
        config.max_tokens,
        config.temperature,
        step,
        on_chunk,
        config.cache_policy,
    )


def flush_context(run: RunState) -> None:
    """Add the hooks' text waiting for the next model call to the conversation."""
    if run.pending_context:
        run.messages.append(Message.user("\n\n".join(run.pending_context)))
        run.pending_context.clear()


def record_reply(
    run: RunState,
    reply: LLMResponse | BaseException,
    request: LLMRequest | None = None,
    ms: float = 0.0,
) -> tuple[ToolCall, ...]:
    """Record the model's turn; return its tool calls (none: the run has stopped).

    ``reply`` is what the driver got: normally an ``LLMResponse``, or the error the call
    failed with; anything else a backend returned is an ``LLMError`` (``_reply_guard``).
    Given the ``request`` (a run with ``on_event`` hooks), the recorded reply is kept for
    them on its :class:`~looplet._engine_hooks.CallEvents`. The turn is added to
    ``trajectory.turns`` (:class:`~looplet.types.Turn`) with ``ms``, the model call's time.
    """
    trajectory = run.trajectory
    trajectory.llm_calls += 1
    if isinstance(reply, BaseException):
        trajectory.turns.append(Turn(len(trajectory.steps) + 1, 0, _NO_USAGE, ms))
        if isinstance(reply, HookError):  # raised by a hook receiving a streamed chunk
            fail(run, StopReason.HOOK_ERROR, reply)
        else:
            error = reply if isinstance(reply, LoopletError) else LLMError("backend", repr(reply))
            fail(run, StopReason.LLM_ERROR, error)
        return ()
    seen = run.call_ids
    if seen is None:  # a new run, or one resumed from a checkpoint: the ids so far
        seen = run.call_ids = {c.call_id for m in run.messages for c in m.tool_calls}
    # Made safe where it enters: not an LLMResponse, bad arguments, lone surrogates, ids.
    checked = guard_reply(reply, run.llm, seen, trajectory.llm_calls)
    if isinstance(checked, LLMError):
        trajectory.turns.append(Turn(len(trajectory.steps) + 1, 0, _NO_USAGE, ms))
        fail(run, StopReason.LLM_ERROR, checked)
        return ()
    reply = checked
    usage = reply.usage
    if usage.input_tokens or usage.output_tokens:
        trajectory.usage = trajectory.usage + usage
    calls = reply.tool_calls
    # Positional, the reply's own Usage kept: the one allocation a turn adds.
    trajectory.turns.append(Turn(len(trajectory.steps) + 1, len(calls), usage, ms))
    run.messages.append(Message("assistant", reply.text, calls))  # (Message.assistant)
    if run.checkpoint is not None:  # only a checkpoint needs the turn's unrecorded calls
        run.pending_calls[:] = calls
    if not calls:
        trajectory.final_text = reply.text
        set_stop(run, StopReason.FINAL_TEXT, reply.text[:200])
    if request is not None:
        from looplet._engine_hooks import CallEvents

        if isinstance(events := request.on_chunk, CallEvents):
            events.response = reply
    return calls


def record_unrun(run: RunState, call: ToolCall, outcome: ToolResult | Rewritten) -> Step | Pending:
    """Record a call that did not run, with the result screening gave it (a call a hook
    rewrote is recorded as it was judged)."""
    if type(outcome) is Rewritten:
        return record_step(run, outcome.call, outcome.result)
    return record_step(run, call, outcome)  # type: ignore[arg-type]


def screen_group(
    run: RunState, group: Sequence[ToolCall]
) -> Generator[AwaitHook, Any, tuple[list[PreparedCall | ToolResult | Rewritten], list[int]]]:
    """Screen each call of a group; also say how much budget each one was charged."""
    outcomes: list[PreparedCall | ToolResult | Rewritten] = []
    charges: list[int] = []
    for call in group:
        used = run.state.queries_used
        outcome = screen_call(run, call)
        if type(outcome) is GeneratorType:  # hooks to decide on the call
            outcome = yield from outcome
        outcomes.append(outcome)
        charges.append(run.state.queries_used - used)
    run.charged_pending = sum(charges)
    return outcomes, charges


def next_group(run: RunState, calls: Sequence[ToolCall], start: int) -> Sequence[ToolCall]:
    """The calls starting at ``start`` that run together (at least one).

    The rule is the registry's (:meth:`~looplet.tools.BaseToolRegistry.next_group`), its one
    home; the run adds only that with ``LoopConfig(concurrent_dispatch=False)``, or once the
    run has stopped (its calls are then recorded as not run), every call is alone.
    """
    if not run.config.concurrent_dispatch or run.stopped:
        return calls[start : start + 1]
    return run.tools.next_group(calls, start)


def screen_call(run: RunState, call: ToolCall) -> PreparedCall | ToolResult | Rewritten | Pending:
    """Decide what happens to one call before it runs.

    Returns the prepared call to run (arguments possibly rewritten by a hook), or the result
    to record instead: a malformed or unknown call, invalid arguments, a refused done, a
    hook's own result, a denial, or "not run" once the run has stopped or the budget is spent.
    A call a hook rewrote that does not run comes back as :class:`Rewritten`, so the step
    shows the arguments that were judged. With dispatch hooks: the work that asks them
    (:func:`looplet._engine_hooks.ask_dispatch_hooks`) and returns one of those.
    """
    if run.trajectory.stop_reason is not None:
        return not_run(call, f"the run stopped ({run.trajectory.stop_reason}) before this call")
    is_done = call.tool == run.config.done_tool
    prepared: PreparedCall | None = None
    counts = False
    # A done tool the caller did not register (the implicit done): it succeeds with its
    # arguments as its data.
    if not is_done or run.tools.get(call.tool) is not None:
        checked = run.tools.prepare(call, run.ctx)
        if isinstance(checked, ToolResult):
            return checked
        prepared = checked
        counts = not is_done and not prepared.spec.free
    if counts and run.state.queries_used >= run.max_steps:
        set_stop(run, StopReason.MAX_STEPS, f"{run.max_steps} steps used")
        return not_run(call, f"the step budget (max_steps={run.max_steps}) is used up")
    if run.hooks.any_dispatch_hooks:
        from looplet._engine_hooks import ask_dispatch_hooks  # runs with hooks only

        return later(ask_dispatch_hooks(run, call, prepared, is_done, counts))
    if prepared is not None:  # admit(), inline: this is every step's path
        if counts:
            run.state.queries_used += 1
        return prepared
    return admit(run, call, prepared, counts, False)


def admit(
    run: RunState,
    call: ToolCall,
    prepared: PreparedCall | None,
    counts: bool,
    rewritten: bool,
) -> PreparedCall | ToolResult | Rewritten:
    """The call passed every check: charge it to the budget and run it (``prepared``), or
    succeed at once as the implicit done (``prepared`` is ``None``)."""
    if prepared is None:  # the implicit done
        done = ToolResult.success(call, call.args)
        return Rewritten(call, done) if rewritten else done
    if counts:
        run.state.queries_used += 1
    return prepared


def record_step(
    run: RunState, call: ToolCall, result: ToolResult, hooks_asked: bool = False
) -> Step | Pending:
    """Record the step of ``call`` with ``result``. With ``post_dispatch`` or ``on_event``
    hooks (not yet ``hooks_asked``): the work that lets them see (or replace) the result
    first and tells them of the step after (``_engine_hooks.record_step_with_hooks``)."""
    hooks = run.hooks
    if not hooks_asked and (hooks.post_dispatch or hooks.on_event):
        from looplet._engine_hooks import record_step_with_hooks

        return later(record_step_with_hooks(run, call, result))
    steps = run.trajectory.steps
    step_num = len(steps) + 1
    step = Step(step_num, call, result)
    steps.append(step)
    if run.state.steps is not steps:
        run.state.steps.append(step)
    if run.pending_calls:
        del run.pending_calls[:1]  # calls are recorded in the turn's order
    content = render_tool_result(result, run.config.max_result_chars)
    if not content.isascii():  # a tool's lone surrogate would fail the next request
        content = clean_text(content)
    # Message.tool_result, inline: this runs on every step.
    run.messages.append(
        Message("tool", content, (), result.call_id, result.tool, result.error is not None)
    )
    return step


def after_step(run: RunState, step: Step) -> Pending | None:
    """Decide whether the run ends after ``step``: done, a hook's stop, or cancellation.

    With ``should_stop`` hooks to ask, the work that asks them (after a cancellation, they
    are not asked: the run ends as ``cancelled``).
    """
    if run.trajectory.stop_reason is not None:
        return None
    if step.tool_call.tool == run.config.done_tool and step.tool_result.error is None:
        set_stop(run, StopReason.DONE, _done_detail(step.tool_result.data))
        return None
    if run.stop_requested is not None:
        set_stop(run, StopReason.HOOK_STOP, run.stop_requested)
        return None
    token = run.config.cancel_token
    if token is not None and token.is_cancelled:
        set_stop(run, StopReason.CANCELLED, token.reason)
        return None
    if run.hooks.should_stop:
        from looplet._engine_hooks import ask_should_stop

        return later(ask_should_stop(run, step))
    return None


def finish_run(run: RunState) -> Trajectory | Pending:
    """Close the record; with ``on_loop_end`` or ``on_event`` hooks, the work that runs
    them (``_engine_hooks.end_with_hooks``) and returns the trajectory."""
    trajectory = run.trajectory
    if trajectory.stop_reason is None:  # only reachable through an unexpected exit path
        set_stop(run, StopReason.CANCELLED, "the loop ended unexpectedly")
    trajectory.elapsed_ms = (time.perf_counter() - run.started) * 1000
    # ctx.run points back at this run (for sub-agent tools); break the cycle now, so a
    # finished run is freed by reference counting instead of waiting for the cyclic GC.
    if run.ctx.run is run:
        run.ctx.run = None
    if run.error is not None:  # before the hooks, so on_loop_end sees why the run failed
        trajectory.error = run.error
        run.error.trajectory = trajectory
    if run.hooks.on_loop_end or run.hooks.on_event:
        from looplet._engine_hooks import end_with_hooks

        return later(end_with_hooks(run))
    return trajectory


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


def not_run(call: ToolCall, why: str) -> ToolResult:
    """The result of a call that was not run, saying ``why`` (kind ``cancelled``)."""
    return ToolResult.failure(call, ToolError(ErrorKind.CANCELLED, f"not run: {why}"))


def _done_detail(data: Any) -> str:
    if isinstance(data, dict) and len(data) == 1:
        (data,) = data.values()
    return str(data)[:200] if data is not None else ""
