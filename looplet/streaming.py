"""Streaming in the loop: ``composable_loop(..., stream=...)`` hands you the run as it happens.

``stream=`` takes one of:

* a function, called with each :class:`~looplet.hooks.LoopEvent` of the run, in order
  (``stream=print``, ``stream=events.append``, ``stream=my_queue.put_nowait``). In
  :func:`~looplet.loop.async_composable_loop` it may be ``async def``: it is awaited, in
  order, and gets a model call's token events once that call has returned (a backend hands
  them over synchronously); a plain function gets them live;
* an :class:`EventStream`, which you iterate *instead of* the run: ``async for event in
  events`` (or ``for event in events`` with :func:`~looplet.loop.composable_loop`). It runs
  the loop as you read, one step at a time, so it ends when the run ends.

The events are the ones every hook's ``on_event`` gets (one type, ``kind`` plus ``data``):
``loop_start`` (``task``), ``llm_call`` (``request``), ``llm_chunk`` (``chunk``, a
:class:`~looplet.backends.base.StreamChunk`: a piece of reply text in ``chunk.text``, or of a
tool call's arguments in ``chunk.arguments``), ``llm_response`` (``response``, with
``.usage``), ``step`` (``step``, each :class:`~looplet.types.Step` as it is recorded),
``compaction`` (``record``) and ``loop_end`` (``trajectory``, with ``.stop_reason``), always
last. A failed model call has an ``llm_call`` and no ``llm_response``.

Tokens flow only from a backend that streams. ``stream=`` turns streaming on for the run when
the backend is :class:`~looplet.backends.openai.OpenAIBackend` or
:class:`~looplet.backends.anthropic.AnthropicBackend` (or their async twins) built without
``stream=True``: the run uses a streaming copy, so its requests say ``"stream": true`` (a
cassette recorded without streaming does not match them) and the backend you passed is not
changed (its ``last_usage`` is still kept up to date). Other backends (the scripted
``MockLLMBackend``, your own) send no ``llm_chunk`` events; every other event still comes.

``StreamingHook`` (from :mod:`looplet.observe`) is importable from here too, as in the
original looplet; its emitters and event classes are gone (see ``docs/migration.md``).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

from looplet.errors import ConfigurationError
from looplet.hooks import LoopEvent
from looplet.observe import StreamingHook

if TYPE_CHECKING:
    import asyncio

    from looplet.backends.base import LLMRequest, LLMResponse
    from looplet.run_state import RunState
    from looplet.types import Trajectory

__all__ = ["EventStream", "LoopEvent", "StreamTarget", "StreamingHook"]


class EventStream:
    """The events of one run, to iterate while it runs: pass it as ``stream=``, then read it.

    Example::

        events = EventStream()
        run = async_composable_loop(llm=llm, tools=tools, task=task, stream=events)
        async for event in events:
            if event.kind == "llm_chunk":
                print(event.data["chunk"].text, end="", flush=True)
        print(run.trajectory.stop_reason)

    Iterating it *runs* the loop (do not iterate the run too: that raises a
    :class:`~looplet.errors.HookError` saying so); with ``composable_loop`` use a plain
    ``for``. It ends after the ``loop_end`` event, whatever ended the run. If the run failed
    (an :class:`~looplet.errors.LLMError`, a :class:`~looplet.errors.HookError`), that error
    is raised after ``loop_end``, as iterating the run would raise it.

    Back-pressure: the run advances one step at a time as you read, like the run itself. A
    step starts only once you have read every event before it, so what waits unread is at
    most the events of the step in progress (the pieces of one model reply, and the step).
    A reader that stops reading pauses the run after its current step; nothing blocks and
    no thread or task is left waiting. Close the iteration (``break`` in a ``for``; for
    ``async for``, ``aclose()`` on the iterator, ``contextlib.aclosing``, or garbage
    collection) and the run ends as ``cancelled``, its hooks told. Cancelling the task that
    reads cancels the model call in flight and ends the run as ``cancelled`` too.

    An ``EventStream`` serves one run, read once.
    """

    __slots__ = ("_loop_run", "_need", "_push", "_read", "_starts", "_state")

    def __init__(self) -> None:
        self._state: RunState | None = None
        self._need = ""
        self._read = False
        self._starts = 0
        self._loop_run: Any = None
        self._push: Callable[[LoopEvent], None] | None = None

    @property
    def trajectory(self) -> Trajectory:
        """The run's :class:`~looplet.types.Trajectory` (complete once the stream has ended)."""
        return self._attached().trajectory

    def __aiter__(self) -> AsyncIterator[LoopEvent]:
        """Run the loop of ``async_composable_loop(..., stream=self)``, yielding its events."""
        self._claim("async")
        return self._aevents()

    def __iter__(self) -> Iterator[LoopEvent]:
        """Run the loop of ``composable_loop(..., stream=self)``, yielding its events."""
        self._claim("sync")
        return self._events()

    # -- the hook side: what the run calls -------------------------------------------------

    def on_event(self, event: LoopEvent) -> None:
        """Take one event of the run (the stream is a hook of the run it was passed to)."""
        if event.kind == "loop_start":
            self._starts += 1
            if self._loop_run is None or self._starts > 1:
                raise ConfigurationError(
                    "this run streams to an EventStream, which runs it: iterate the stream "
                    "(`async for event in events`, or `for` with composable_loop) instead "
                    "of the run; the steps come as 'step' events, the trajectory is "
                    "events.trajectory."
                )
        push = self._push
        if push is not None:
            push(event)

    # -- the reader side -------------------------------------------------------------------

    def _attached(self) -> RunState:
        if self._state is None:
            raise ConfigurationError(
                "this EventStream is not attached to a run: pass it to the loop first, "
                "composable_loop(..., stream=events) or async_composable_loop(..., "
                "stream=events), then iterate it."
            )
        return self._state

    def _claim(self, how: str) -> None:
        self._attached()
        if self._need != how:
            loop, reader = (
                ("async_composable_loop", "async for event in events")
                if self._need == "async"
                else ("composable_loop", "for event in events")
            )
            raise ConfigurationError(
                f"this EventStream belongs to a run of {loop}: read it with `{reader}`."
            )
        if self._read:
            raise ConfigurationError(
                "this EventStream has been read already: an EventStream serves one run, "
                "once. Pass a new EventStream() to the next run."
            )
        self._read = True

    async def _aevents(self) -> AsyncIterator[LoopEvent]:
        import asyncio  # loaded by the async loop already

        from looplet.loop import AsyncLoopRun

        run = self._loop_run = AsyncLoopRun(self._attached())
        loop = asyncio.get_running_loop()
        owner = threading.get_ident()
        buffer: deque[LoopEvent] = deque()
        wake = asyncio.Event()

        def push(event: LoopEvent) -> None:
            buffer.append(event)
            if threading.get_ident() == owner:
                wake.set()
            else:  # a sync backend's chunks, from the worker thread that runs it
                with contextlib.suppress(RuntimeError):  # a closed event loop: no reader
                    loop.call_soon_threadsafe(wake.set)

        self._push = push
        step: asyncio.Task[bool] | None = None
        ended = False
        failure: Exception | None = None
        try:
            while True:
                while buffer:
                    yield buffer.popleft()
                if failure is not None:  # after loop_end, as iterating the run raises it
                    raise failure
                if ended:
                    return
                if step is None:  # everything so far was read: on to the next step
                    step = asyncio.ensure_future(_next_step(run))
                    step.add_done_callback(lambda _: wake.set())
                wake.clear()
                if not buffer and not step.done():
                    await wake.wait()
                if step.done():
                    finished, step = step, None
                    try:
                        ended = not finished.result()
                    except Exception as exc:  # the error that ended the run
                        failure = exc
        finally:
            self._push = None
            if not ended:  # left, cancelled or failed: closing an ended run does nothing
                await _abandon(run, step)

    def _events(self) -> Iterator[LoopEvent]:
        from looplet.loop import LoopRun

        run = self._loop_run = LoopRun(self._attached())
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._push = inbox.put
        stepper = _Stepper(run, inbox)
        ended = False
        try:
            while True:
                stepper.start()
                while (item := inbox.get()) is not _STEPPED:
                    if item is _FINISHED:
                        ended = True
                        return
                    if isinstance(item, _Failed):  # after loop_end, as the run raises it
                        ended = True
                        raise item.error
                    yield item
        finally:
            self._push = None
            if not ended:
                stepper.abandon()


async def _next_step(run: Any) -> bool:
    """Advance ``run`` by one step: True, or False when it has ended."""
    try:
        await run.__anext__()
    except StopAsyncIteration:
        return False
    return True


async def _abandon(run: Any, step: asyncio.Task[bool] | None) -> None:
    """End a run its reader left: cancel the step in flight, then close the run (it ends as
    ``cancelled`` and its hooks are told)."""
    import asyncio

    if step is not None and not step.done():
        step.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # (what it ended with)
            await step
    await run.aclose()


#: Markers the sync stream's step thread puts after a step's events.
_STEPPED = object()
_FINISHED = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stepper:
    """Runs one step of a sync run at a time, each in a thread of its own, so that the
    reader gets a model reply's pieces while the backend is still receiving them. No thread
    waits between steps: a reader that stops reading leaves none behind."""

    __slots__ = ("_abandoned", "_flight", "_inbox", "_lock", "_run")

    def __init__(self, run: Any, inbox: queue.SimpleQueue[Any]) -> None:
        self._run = run
        self._inbox = inbox
        self._lock = threading.Lock()
        self._flight = False
        self._abandoned = False

    def start(self) -> None:
        """Start the next step."""
        self._flight = True
        threading.Thread(target=self._step, name="looplet-stream", daemon=False).start()

    def _step(self) -> None:
        try:
            next(self._run)
            self._inbox.put(_STEPPED)
        except StopIteration:
            self._inbox.put(_FINISHED)
        except BaseException as exc:
            self._inbox.put(_Failed(exc))
        with self._lock:
            self._flight = False
            close = self._abandoned
        if close:
            self._run.close()

    def abandon(self) -> None:
        """End the run for a reader that stopped: now, or when the step in flight is over."""
        with self._lock:
            self._abandoned = True
            if self._flight:
                return
        self._run.close()


# -- stream=: what the loop accepts --------------------------------------------------------

#: What ``stream=`` accepts: a function of each event (it may be ``async def`` in the async
#: loop), or an :class:`EventStream` to iterate.
StreamTarget: TypeAlias = Callable[[LoopEvent], object] | EventStream


class StreamCallback:
    """The hook that hands each event to a ``stream=`` function."""

    __slots__ = ("target",)

    def __init__(self, target: Callable[[LoopEvent], object]) -> None:
        self.target = target

    def on_event(self, event: LoopEvent) -> None:
        """Call the function with ``event`` (what it returns is ignored)."""
        self.target(event)


class AsyncStreamCallback:
    """The hook that awaits an ``async def`` ``stream=`` function with each event."""

    __slots__ = ("target",)

    def __init__(self, target: Callable[[LoopEvent], Awaitable[object]]) -> None:
        self.target = target

    async def on_event(self, event: LoopEvent) -> None:
        """Await the function with ``event`` (what it returns is ignored)."""
        await self.target(event)


def attach_stream(run: RunState, target: object, need: str) -> None:
    """Make ``run`` (built by :func:`looplet.loop.new_run`) hand its events to ``target``.

    What ``composable_loop(..., stream=target)`` calls; ``need`` is ``"sync"`` or
    ``"async"``, the loop that drives the run. The stream is a hook, after the caller's, and
    an SDK backend built without ``stream=True`` is replaced, for this run, by a streaming
    copy (see the module's docstring).

    Raises:
        ConfigurationError: ``target`` is not a function or an :class:`EventStream`, an
            ``async def`` function is given to the sync loop, or the stream is in use.
    """
    from looplet.loop import add_run_hooks

    hook: object
    if isinstance(target, EventStream):
        if target._state is not None:
            raise ConfigurationError(
                "this EventStream is already attached to a run: an EventStream serves one "
                "run. Pass a new EventStream() to each run."
            )
        target._state, target._need = run, need
        hook = target
    elif isinstance(target, bool) or not callable(target):
        raise ConfigurationError(
            f"stream= takes a function of each event or an EventStream, got "
            f"{type(target).__name__} {target!r}. For an iterator: events = EventStream(); "
            "run = async_composable_loop(..., stream=events); async for event in events: ..."
        )
    elif _is_async(target):
        if need != "async":
            raise ConfigurationError(
                f"stream={_name(target)} is async def: the sync loop cannot await it. Use "
                "async_composable_loop, or pass a plain function."
            )
        hook = AsyncStreamCallback(target)
    else:
        hook = StreamCallback(target)
    add_run_hooks(run, (hook,), need)
    run.llm = _streaming(run.llm)


def _is_async(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return False
    return inspect.iscoroutinefunction(type(fn).__call__)  # a callable object


def _name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or type(fn).__name__)


# -- turning streaming on for one run ------------------------------------------------------


def _streaming(llm: Any) -> Any:
    """``llm``, or a streaming view of it when it is an SDK backend built without streaming."""
    if getattr(llm, "stream", None) is not False:
        return llm
    from looplet.backends._sdk import AsyncSDKBackend, SyncSDKBackend

    if isinstance(llm, SyncSDKBackend):
        return _StreamingBackend(llm)
    if isinstance(llm, AsyncSDKBackend):
        return _AsyncStreamingBackend(llm)
    return llm


class _Streamed:
    """An SDK backend, streamed for one run: calls go to a copy of it with ``stream=True``;
    everything else (``model``, ``provider``...) is the backend's own, and its
    ``last_usage`` follows the copy's."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._copy = copy.copy(backend)  # shares the client; only the copy streams
        self._copy.stream = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def __repr__(self) -> str:
        return f"{self._copy!r} (streamed for this run)"


class _StreamingBackend(_Streamed):
    """A sync SDK backend, streamed for one run."""

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request``, streamed; see the backend's ``complete``."""
        response: LLMResponse = self._copy.complete(request)
        self._backend.last_usage = self._copy.last_usage
        return response


class _AsyncStreamingBackend(_Streamed):
    """An async SDK backend, streamed for one run."""

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request``, streamed; see the backend's ``acomplete``."""
        response: LLMResponse = await self._copy.acomplete(request)
        self._backend.last_usage = self._copy.last_usage
        return response


def __getattr__(name: str) -> Any:
    from looplet._moved import missing

    missing(__name__, name)
