"""CancelToken: a thread-safe flag that stops a run between steps."""

from __future__ import annotations

__all__ = ["CancelToken"]


class CancelToken:
    """A flag that anyone may set to stop a run.

    The loop checks it before every model call and every tool call; a tool may poll it
    through ``ctx.cancel_token`` to stop long work early. It may be set from any thread: it
    is a single attribute store, which is atomic (a ``threading.Event`` would cost its import
    at start-up for nothing the loop needs).

    Example::

        token = CancelToken()
        config = LoopConfig(cancel_token=token)
        loop = composable_loop(llm=llm, tools=tools, task=task, config=config)
        # elsewhere: token.cancel("user pressed stop")
    """

    __slots__ = ("_cancelled", "reason")

    def __init__(self) -> None:
        self._cancelled = False
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop; ``reason`` ends up in ``Trajectory.stop_detail``."""
        self.reason = reason  # set first, so a reader that sees the flag sees the reason
        self._cancelled = True

    @property
    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._cancelled

    def __bool__(self) -> bool:
        return self._cancelled
