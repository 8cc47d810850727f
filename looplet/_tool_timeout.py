"""Running a tool call under its time limit and the run's cancel token (for ``looplet.tools``).

A call whose tool sets ``ToolSpec.timeout_s`` (or whose loop sets ``tool_timeout_s``), or whose
run has a cancel token, is not simply called: the registry waits for it and stops waiting at
the deadline or when the token is cancelled, whichever comes first. The call then fails with
a ``timeout`` or ``cancelled`` :class:`~looplet.errors.ToolError` (raised here, so the
registry records it like any failure) and the run goes on, or, cancelled, ends.

* An async tool runs as a task under ``asyncio.wait``; if the wait ends first, the task is
  cancelled. The sync registry does the same inside ``asyncio.run``.
* A sync tool runs in a worker: a daemon thread from a small pool that reuses idle threads
  (one left idle for a minute exits). The sync registry waits on a ``threading.Event``, the
  async registry on a future; the tool's end and the token's ``cancel()`` both wake it.

Python cannot stop a thread. A sync tool that overruns keeps running in its worker until it
returns, and what it returns then is dropped; the workers are daemon threads, so it does not
keep the process from exiting. A tool that should stop early polls ``ctx.cancel_token``.

A cancel that comes from inside the running call (the tool, or a sub-agent it runs, cancels
the run itself) does not stop the wait: the call is returning, and its step is recorded as it
ends. The calls in progress are known from a context variable that each worker and task
inherits, so the rule holds through nested loops.

Calls with neither a limit nor a token never come here: they run inline (no thread, no task),
which keeps the loop's per-step cost unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from looplet.errors import ErrorKind, ToolError

if TYPE_CHECKING:
    import asyncio

    from looplet.tools import PreparedCall

__all__ = ["arun_bounded", "run_bounded", "timeout_problem"]

#: How long an idle worker waits for another call before its thread ends.
_IDLE_SECONDS = 60.0

#: The bounded calls the current code runs inside (outermost first), by marker object.
_calls_in_progress: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "looplet_calls_in_progress", default=()
)


def _unless_inside(call: object, wake: Callable[[], object]) -> Callable[[], None]:
    """``wake``, skipped when the cancel comes from inside ``call`` (which is returning)."""

    def on_cancel() -> None:
        if call not in _calls_in_progress.get():
            wake()

    return on_cancel


def timeout_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a time limit in seconds; ``None`` if it is fine."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds or None, got {type(value).__name__} {value!r}"
    if not 0 < value < float("inf"):  # also rejects NaN
        return f"must be a positive, finite number of seconds (None: no limit), got {value!r}"
    return None


# -- the two drivers' entry points -------------------------------------------------------------


def run_bounded(prepared: PreparedCall) -> Any:
    """Run ``prepared`` from sync code under its limit and token; the tool's return value.

    Raises the tool's own exception, or a ToolError (``timeout``, ``cancelled``) when the
    wait ended first.
    """
    spec = prepared.spec
    if spec.is_async:
        import asyncio

        return asyncio.run(_await_task(spec.execute(**prepared.kwargs), prepared))
    import threading

    wake = threading.Event()
    job = _Job(partial(spec.execute, **prepared.kwargs), wake.set)
    token = prepared.cancel_token
    remove = token.on_cancel(_unless_inside(job, wake.set)) if token is not None else None
    try:
        _workers().submit(job)
        wake.wait(prepared.timeout_s)
    finally:
        if remove is not None:
            remove()
    return job.outcome(prepared)


async def arun_bounded(prepared: PreparedCall) -> Any:
    """Like :func:`run_bounded`, awaiting: the async registry's way to run ``prepared``."""
    spec = prepared.spec
    if spec.is_async:
        return await _await_task(spec.execute(**prepared.kwargs), prepared)
    import asyncio

    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    job = _Job(partial(spec.execute, **prepared.kwargs), partial(_wake_from, loop, finished))
    _workers().submit(job)
    # A cancelled awaiting task stops waiting here; the worker runs on, its result dropped.
    await _wait(loop, finished, prepared, job)
    return job.outcome(prepared)


async def _await_task(coro: Coroutine[Any, Any, Any], prepared: PreparedCall) -> Any:
    """Run an async tool as a task; cancel it if the limit or the token comes first."""
    import asyncio

    loop = asyncio.get_running_loop()
    marker = object()
    context = contextvars.copy_context()
    context.run(_enter, marker)
    task = loop.create_task(coro, context=context)
    try:
        finished = await _wait(loop, task, prepared, marker)
    except BaseException:  # the awaiting task was cancelled: so is the tool
        _cancel(task)
        raise
    if finished:
        return task.result()  # the tool's value, or its exception
    _cancel(task)
    raise _stopped(prepared, "cancelled the tool")


async def _wait(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[Any],
    prepared: PreparedCall,
    call: object,
) -> bool:
    """Wait for ``waiter`` until the call's deadline or its token; whether it finished.

    ``call`` marks the call in progress: a cancel from inside it does not end the wait.
    """
    import asyncio

    token = prepared.cancel_token
    if token is None:
        await asyncio.wait((waiter,), timeout=prepared.timeout_s)
        return waiter.done()
    cancelled = loop.create_future()
    remove = token.on_cancel(_unless_inside(call, partial(_wake_from, loop, cancelled)))
    try:
        await asyncio.wait(
            (waiter, cancelled), timeout=prepared.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        remove()
        cancelled.cancel()
    return waiter.done()


# -- why a call was stopped --------------------------------------------------------------------


def _stopped(prepared: PreparedCall, what_happened: str) -> ToolError:
    """The error of a call the loop stopped waiting for: cancelled if the token is, else late."""
    name = prepared.spec.name
    token = prepared.cancel_token
    if token is not None and token.is_cancelled:
        return ToolError(
            ErrorKind.CANCELLED,
            f"tool {name!r} was stopped while it ran: the run was cancelled ({token.reason}); "
            f"the loop {what_happened}.",
            context={"tool": name, "reason": token.reason},
        )
    limit = prepared.timeout_s
    own = prepared.spec.timeout_s is not None
    setting = (
        "its ToolSpec(timeout_s=...) or @tool(timeout_s=...)"
        if own
        else "LoopConfig(tool_timeout_s=...), or give the tool its own ToolSpec(timeout_s=...)"
    )
    return ToolError(
        ErrorKind.TIMEOUT,
        f"tool {name!r} did not finish within its time limit of {limit:g} s; the loop "
        f"{what_happened}. If it needs longer, raise {setting}.",
        retriable=True,
        context={"tool": name, "timeout_s": limit, "limit_from": "tool" if own else "loop"},
    )


# -- sync tools in worker threads --------------------------------------------------------------


class _Job:
    """One sync tool call handed to a worker: the function, then its outcome."""

    __slots__ = ("context", "error", "finished", "fn", "result", "wake")

    def __init__(self, fn: Callable[[], Any], wake: Callable[[], object]) -> None:
        self.fn = fn
        self.wake = wake
        # The tool sees the caller's context variables, as in to_thread, and knows it runs
        # inside this call.
        self.context = contextvars.copy_context()
        self.context.run(_enter, self)
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        """Run the function (in a worker) and wake whoever waits."""
        try:
            self.result = self.context.run(self.fn)
        except BaseException as exc:  # handed to the waiting thread, which raises it
            self.error = exc
        self.finished = True
        self.wake()

    def outcome(self, prepared: PreparedCall) -> Any:
        """The tool's value, its exception raised, or the error saying why nobody waited."""
        if not self.finished:
            raise _stopped(
                prepared,
                "stopped waiting for it (it may still be running in a "
                "worker thread; what it returns will be dropped)",
            )
        if self.error is not None:
            raise self.error
        return self.result


class _Workers:
    """Daemon threads that run jobs: an idle one takes the next, else a new one starts.

    ``_idle`` counts the idle workers nobody has claimed: ``submit`` claims one or starts a
    thread, so there is always a worker for every queued job; a worker idle for
    ``_IDLE_SECONDS`` ends only if it can take an unclaimed idle slot (else a job is coming).
    """

    def __init__(self) -> None:
        import queue
        import threading

        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._empty = queue.Empty
        self._thread = threading.Thread

    def submit(self, job: _Job) -> None:
        """Run ``job`` in an idle worker, or in a new one."""
        if not self._idle.acquire(blocking=False):
            # Started before the job is queued: if no thread can start, the call fails now
            # (the error is the tool call's) instead of running some time later.
            self._thread(target=self._work, name="looplet-tool", daemon=True).start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_SECONDS)
            except self._empty:
                if self._idle.acquire(blocking=False):
                    return
                continue  # a submitter claimed this worker: its job is on the way
            job.run()
            del job  # drop the call's arguments and result while idle
            self._idle.release()


_pool: _Workers | None = None


def _workers() -> _Workers:
    global _pool
    if _pool is None:  # two threads racing here make two pools: harmless, each serves its jobs
        _pool = _Workers()
        os.register_at_fork(after_in_child=_forget_workers)
    return _pool


def _forget_workers() -> None:
    """In a forked child the workers' threads do not exist: start a new pool when needed."""
    global _pool
    _pool = None


def _enter(call: object) -> None:
    """In the current context: code from here on runs inside ``call``."""
    _calls_in_progress.set((*_calls_in_progress.get(), call))


# -- asyncio helpers ---------------------------------------------------------------------------

#: Tasks of async tools that were cancelled and have not finished unwinding yet.
_unwinding: set[asyncio.Task[Any]] = set()


def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and let it unwind on its own; the loop does not wait for it."""
    if task.done():
        return
    task.cancel()
    _unwinding.add(task)
    task.add_done_callback(_unwound)


def _unwound(task: asyncio.Task[Any]) -> None:
    _unwinding.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


def _wake_from(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
    """From any thread: resolve ``future`` in its loop (if anybody still waits on it)."""
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
