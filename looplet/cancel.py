"""CancelToken: a thread-safe flag that stops a run, and wakes whoever waits on its tools."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

__all__ = ["CancelToken"]


class CancelToken:
    """A flag that anyone may set to stop a run.

    The loop checks it before every model call and every tool call, and stops waiting for a
    tool that is running when it is set (the call is recorded as ``cancelled``); a tool may
    poll it through ``ctx.cancel_token`` to stop long work early. It may be set from any
    thread: the flag is a single attribute store, which is atomic, and the callbacks of
    :meth:`on_cancel` are taken from a list one atomic ``pop`` at a time (a
    ``threading.Event`` would cost its import at start-up for nothing most runs need).

    Example::

        token = CancelToken()
        config = LoopConfig(cancel_token=token)
        loop = composable_loop(llm=llm, tools=tools, task=task, config=config)
        # elsewhere: token.cancel("user pressed stop")
    """

    __slots__ = ("_callbacks", "_cancelled", "reason")

    def __init__(self) -> None:
        self._cancelled = False
        self.reason = ""
        self._callbacks: list[Callable[[], object]] = []

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop; ``reason`` ends up in ``Trajectory.stop_detail``.

        Then runs the :meth:`on_cancel` callbacks, in this thread. If one raises, the others
        still run and the first exception is raised afterwards.
        """
        self.reason = reason  # set first, so a reader that sees the flag sees the reason
        self._cancelled = True
        callbacks, failure = self._callbacks, None
        while callbacks:
            try:
                callback = callbacks.pop()  # atomic: each callback is taken by one thread
            except IndexError:  # another thread took the last one
                break
            try:
                callback()
            except Exception as exc:
                if failure is None:
                    failure = exc
        if failure is not None:
            raise failure

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` once when the token is cancelled (at once if it already is).

        The loop uses this to stop waiting for a running tool. The callback runs in the
        thread that calls :meth:`cancel`; keep it short. Returns a function that unregisters
        it (harmless after the callback has run).
        """
        callbacks = self._callbacks
        callbacks.append(callback)
        if self.is_cancelled:  # cancelled before or while registering: run it, exactly once
            try:
                callbacks.remove(callback)
            except ValueError:  # cancel() took it, and runs it
                pass
            else:
                callback()
        return lambda: _discard(callbacks, callback)

    @property
    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        """Raise a ``cancelled`` :class:`~looplet.errors.ToolError` if the token is set: a
        one-line check point for a long tool (the step is recorded as cancelled)."""
        if self._cancelled:
            from looplet.errors import ErrorKind, ToolError

            raise ToolError(ErrorKind.CANCELLED, f"cancelled: {self.reason}")

    def __bool__(self) -> bool:
        return self._cancelled


def _discard(callbacks: list[Callable[[], object]], callback: Callable[[], object]) -> None:
    with contextlib.suppress(ValueError):  # already run, or already removed
        callbacks.remove(callback)
