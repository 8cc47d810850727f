"""What a model backend is: the request the loop sends, the reply it gets, and retries.

A backend turns one :class:`LLMRequest` (the neutral conversation plus tool schemas) into one
provider request, and the provider's reply into an :class:`LLMResponse` (text, tool calls,
usage, finish reason). The loop never sees provider JSON. Retry decisions are pure functions
here, shared by every sync and async backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from looplet._value_type import value_type
from looplet.messages import Message
from looplet.types import ToolCall, Usage

if TYPE_CHECKING:  # looplet.cache loads only when a run sets a cache policy
    from looplet.cache import CachePolicy

__all__ = [
    "AsyncLLMBackend",
    "ChunkCallback",
    "LLMBackend",
    "LLMRequest",
    "LLMResponse",
    "RetryPolicy",
    "StreamChunk",
    "ToolSchema",
    "reraise_own_error",
]

#: A tool as offered to the model: ``{"name", "description", "parameters": <JSON Schema>}``.
ToolSchema = Mapping[str, Any]


@value_type
class StreamChunk:
    """One piece of a streamed reply, as a streaming backend receives it.

    Attributes:
        text: new reply text (empty for a tool-call piece).
        tool_index: for a tool-call piece, the call's position in the reply.
        tool_name: for a tool-call piece, the tool's name (usually only on its first piece).
        call_id: for a tool-call piece, the provider's call id (usually only on its first).
        arguments: for a tool-call piece, the next fragment of the arguments' JSON text.
    """

    text: str = ""
    tool_index: int | None = None
    tool_name: str = ""
    call_id: str = ""
    arguments: str = ""


#: Receives each :class:`StreamChunk` of a streamed reply as it arrives.
ChunkCallback = Callable[[StreamChunk], None]


@value_type
class LLMRequest:
    """Everything one model call needs.

    Attributes:
        messages: the conversation so far, system prompt first.
        tools: the tools offered, as ``{"name", "description", "parameters"}``.
        max_tokens: the output token limit.
        temperature: sampling temperature (``None`` for the provider's default).
        step: the number of the next step (for logging and recording).
        on_chunk: called with each :class:`StreamChunk` by a backend that streams; the loop
            sets it when a hook listens (``StreamingHook``). Backends that do not stream
            ignore it.
        cache: where the backend should place prompt-cache breakpoints
            (:class:`~looplet.cache.CachePolicy`); ``None``: none. Backends whose provider
            caches on its own (OpenAI) ignore it.
    """

    messages: Sequence[Message]
    tools: Sequence[ToolSchema] = ()
    max_tokens: int = 2000
    temperature: float | None = None
    step: int = 0
    on_chunk: ChunkCallback | None = field(default=None, compare=False, repr=False)
    cache: CachePolicy | None = None

    @property
    def system_prompt(self) -> str:
        """The text of the system messages, joined."""
        return "\n\n".join(m.content for m in self.messages if m.role == "system")


@value_type
class LLMResponse:
    """The model's reply, provider-neutral.

    Attributes:
        text: the reply's text (may be empty when it only calls tools).
        tool_calls: the tool calls, in the order the model made them.
        usage: the tokens this call used.
        finish_reason: the provider's reason for ending the reply (``stop``, ``tool_calls``...).
        model: the model that answered, as the provider reports it.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = ""
    model: str = ""


@runtime_checkable
class LLMBackend(Protocol):
    """A synchronous model backend. Implement ``complete``."""

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` to the model and return its reply.

        Raises:
            LLMError: the provider failed (after any retries the backend makes).
        """
        ...


@runtime_checkable
class AsyncLLMBackend(Protocol):
    """An asynchronous model backend. Implement ``acomplete``."""

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` to the model and return its reply.

        Raises:
            LLMError: the provider failed (after any retries the backend makes).
        """
        ...


def reraise_own_error(exc: BaseException) -> None:
    """Re-raise a looplet error that an SDK wrapped as its own connection error.

    Errors raised below the SDK by looplet itself (a cassette that does not match the request,
    for example) reach a backend wrapped in the SDK's ``APIConnectionError``; they are not
    provider failures, so they must surface unchanged and never be retried.
    """
    from looplet.errors import LLMError, LoopletError

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, LoopletError) and not isinstance(cause, LLMError):
        raise cause


_RETRIABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


@value_type
class RetryPolicy:
    """When and how long to wait before retrying a failed model call.

    Transient failures (429, 5xx, connection errors, time-outs) are retried up to
    ``max_retries`` times with exponential backoff and jitter, honouring the provider's
    ``Retry-After`` up to ``max_delay``; anything else (400, 401, 403, 404...) fails at once.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    @staticmethod
    def is_retriable(status: int | None) -> bool:
        """Whether a failure with this HTTP status (``None``: no response) may be retried."""
        return status is None or status in _RETRIABLE_STATUS

    def delay(
        self, attempt: int, status: int | None, retry_after: str | None = None
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

        Args:
            attempt: how many attempts have failed so far (1 after the first failure).
            status: the failed attempt's HTTP status, ``None`` for no response.
            retry_after: the response's ``Retry-After`` header, if any.
        """
        if attempt > self.max_retries or not self.is_retriable(status):
            return None
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.max_delay)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        backoff: float = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        import random

        return backoff * (0.5 + random.random() / 2)
