"""What the streaming backends share: the ``on_token`` callback and what a broken stream means.

Each provider assembles its own stream (:mod:`looplet.backends._openai_stream`,
:mod:`looplet.backends._anthropic_stream`), but the rules around it are the same for all: a
stream that breaks after some of its pieces reached a callback is not retried (a retry would
hand the callbacks those pieces a second time) and fails with one
``LLMError(kind="stream_interrupted")``; ``on_token`` must be a function and needs
``stream=True``. Those rules live here once. No I/O and no provider SDK.
"""

from __future__ import annotations

from collections.abc import Callable

from looplet.backends.base import ChunkCallback, StreamChunk
from looplet.errors import ConfigurationError, LLMError

__all__ = [
    "STREAM_INTERRUPTED",
    "ChunkDelivery",
    "TokenCallback",
    "as_stream_failure",
    "broken_connection_error",
    "check_on_token",
    "interrupted_error",
]

#: Receives each piece of streamed reply text (the backends' ``on_token``).
TokenCallback = Callable[[str], None]

#: The :attr:`LLMError.kind <looplet.errors.LLMError.kind>` of a stream that broke mid-way.
STREAM_INTERRUPTED = "stream_interrupted"


class ChunkDelivery:
    """Hands a stream's pieces to ``on_chunk`` and ``on_token``, counting what was seen.

    The base of each provider's stream assembler. ``delivered`` counts the pieces a
    callback received: once it is above 0, a failed stream must not be retried (the
    callbacks would see those pieces a second time). A piece no callback receives is not
    counted, so it never stands in the way of a retry.
    """

    def __init__(self, on_chunk: ChunkCallback | None, on_token: TokenCallback | None) -> None:
        #: How many pieces the callbacks received.
        self.delivered = 0
        self._on_chunk = on_chunk
        self._on_token = on_token

    def _deliver(self, piece: StreamChunk) -> None:
        on_token = self._on_token if piece.text else None
        if self._on_chunk is None and on_token is None:
            return
        self.delivered += 1
        if self._on_chunk is not None:
            self._on_chunk(piece)
        if on_token is not None:
            on_token(piece.text)


def interrupted_error(
    provider: str, detail: str, delivered: int, *, attempts: int, status: int | None = None
) -> LLMError:
    """The error for a stream that broke after ``delivered`` pieces reached the callbacks.

    It is never retriable: once a piece was delivered, a retry would deliver it again.

    Args:
        provider: the name shown in the error.
        detail: what went wrong (the provider's own message, when it sent one).
        delivered: how many pieces the callbacks had received.
        attempts: how many requests were sent.
        status: the HTTP status, when the failure had one.
    """
    message = f"the stream broke after {delivered} chunk{'' if delivered == 1 else 's'}: {detail}"
    if delivered:
        message += " (not retried: the callbacks had already received those chunks)"
    return LLMError(
        provider,
        message,
        status=status,
        retriable=False,
        attempts=attempts,
        kind=STREAM_INTERRUPTED,
    )


def as_stream_failure(error: LLMError, delivered: int) -> LLMError:
    """The error a stream that failed with ``error`` ends its attempt with.

    ``error`` itself when no piece had reached the callbacks (a retry is then safe, if
    ``error`` is retriable); after ``delivered`` pieces, the :func:`interrupted_error` for it.
    """
    if not delivered:
        return error
    return interrupted_error(
        error.provider,
        error.provider_message,
        delivered,
        attempts=error.attempts,
        status=error.status,
    )


def broken_connection_error(provider: str, exc: BaseException, attempts: int) -> LLMError:
    """The retriable error for ``exc``, raised by the HTTP library while a stream was read.

    For what the provider SDK lets through unwrapped (the ``openai`` SDK up to 3.13 passes the
    HTTP library's own errors on a cut connection; newer ones wrap them in ``APIConnectionError``).
    """
    return LLMError(
        provider,
        f"the connection broke while the reply was being read ({type(exc).__name__}: {exc})",
        retriable=True,
        attempts=attempts,
        kind="connection_error",
    )


def check_on_token(feature: str, stream: bool, on_token: object) -> None:
    """Reject an ``on_token`` that is not callable, or given to a backend that does not stream.

    Args:
        feature: the backend class's name, shown in the message.
        stream: the backend's ``stream`` setting.
        on_token: what was passed as ``on_token`` (``None``: nothing to check).

    Raises:
        ConfigurationError: naming ``feature`` and the fix.
    """
    if on_token is None:
        return
    if not callable(on_token):
        raise ConfigurationError(
            f"{feature}(on_token=...) must be a function taking each piece of reply text, got "
            f"{type(on_token).__name__} {on_token!r}"
        )
    if not stream:
        raise ConfigurationError(
            f"{feature}(on_token=...) is only called while a reply streams, and stream is "
            f"{stream!r}: pass stream=True as well."
        )
