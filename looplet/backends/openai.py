"""The OpenAI backends: :class:`OpenAIBackend` and its async twin :class:`AsyncOpenAIBackend`.

Both wrap an ``openai`` SDK client and speak the Chat Completions API, so they also serve
OpenAI-compatible servers (Ollama, vLLM, LM Studio...) given a ``base_url`` and a
``provider`` name. They make their own bounded retries (the SDK's are turned off) so that the
retry policy, the attempt count and the final :class:`~looplet.errors.LLMError` are
looplet's. With ``stream=True`` they stream the reply, handing text and tool-call pieces to
callbacks as they arrive, and return the same :class:`LLMResponse` as without. The translation
to and from OpenAI JSON lives in :mod:`looplet.backends._openai_convert` (re-exported here),
the assembling of streamed chunks in :mod:`looplet.backends._openai_stream`, what every
streaming backend shares (a broken stream's error, the ``on_token`` check) in
:mod:`looplet.backends._streaming`, and what every SDK-client backend shares (the checks, the
retry loop and its decisions, the sync and async drivers, ``close``) in
:mod:`looplet.backends._sdk`; this module fills in what is OpenAI's.

The ``openai`` package is imported only when a backend is built, so this module can be
imported (and a missing extra reported) without it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Generic, Self

from looplet.backends._openai_convert import (
    build_request_kwargs,
    from_openai_completion,
    to_llm_error,
    to_openai_messages,
    to_openai_tools,
)
from looplet.backends._openai_stream import StreamAssembler
from looplet.backends._sdk import AsyncSDKBackend, ClientT, SDKBackend, SyncSDKBackend
from looplet.backends._streaming import TokenCallback, as_stream_failure, broken_connection_error
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy
from looplet.errors import ConfigurationError, LLMError

if TYPE_CHECKING:
    import openai  # noqa: F401 (the quoted base classes below name it)

__all__ = [
    "DEFAULT_MODEL",
    "AsyncOpenAIBackend",
    "OpenAIBackend",
    "build_request_kwargs",
    "from_openai_completion",
    "to_llm_error",
    "to_openai_messages",
    "to_openai_tools",
]

#: The model :meth:`OpenAIBackend.from_env` uses when ``OPENAI_MODEL`` is not set.
DEFAULT_MODEL = "gpt-4o-mini"


class _OpenAIBackendBase(SDKBackend, Generic[ClientT]):
    """What the sync and async backends share: the constructor, and OpenAI's side of
    :class:`~looplet.backends._sdk.SDKBackend` (requests, replies, errors, the environment)."""

    _sdk = "openai"
    _default_model = DEFAULT_MODEL
    _assembler_class = StreamAssembler

    def __init__(
        self,
        client: ClientT,
        *,
        model: str,
        default_max_tokens: int = 2000,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so sharing it is safe)
        provider: str = "openai",
        stream: bool = False,
        on_token: TokenCallback | None = None,
        **request_defaults: Any,
    ) -> None:
        super().__init__(
            client, model, default_max_tokens, retry, provider, stream, on_token, request_defaults
        )

    @classmethod
    def from_env(cls, **kw: Any) -> Self:
        """A backend configured from the environment variables the ``openai`` SDK reads.

        Reads ``OPENAI_API_KEY`` (required), ``OPENAI_BASE_URL`` (optional) and
        ``OPENAI_MODEL`` (default ``gpt-4o-mini``); ``kw`` goes to the constructor and may
        override the model. Close the backend (or use it in ``with``; ``async with`` for
        :class:`AsyncOpenAIBackend`) when done.

        Raises:
            ConfigurationError: ``OPENAI_API_KEY`` is not set.
            MissingExtraError: the ``openai`` package is not installed.
        """
        return cls._from_env(kw)

    @classmethod
    def _client_env(cls, kw: dict[str, Any]) -> dict[str, Any]:
        _check_env(cls.__name__, kw)
        return {}  # the SDK's client reads OPENAI_API_KEY and OPENAI_BASE_URL itself

    def _request_kwargs(self, request: LLMRequest) -> dict[str, Any]:
        kwargs = build_request_kwargs(
            request,
            self.model,
            default_max_tokens=self.default_max_tokens,
            **self.request_defaults,
        )
        if self.stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {
                **(kwargs.get("stream_options") or {}),
                "include_usage": True,
            }
        return kwargs

    def _create(self, kwargs: dict[str, Any]) -> Any:
        return self._client.chat.completions.create(**kwargs)

    def _from_reply(self, reply: Any) -> LLMResponse:
        return from_openai_completion(reply)

    def _to_llm_error(self, exc: Exception, attempts: int) -> LLMError:
        if isinstance(exc, self._sdk_error):
            return to_llm_error(exc, attempts, provider=self.provider)
        # Only reading a stream catches more than the SDK's errors: what else it raised is
        # the HTTP library's (or a garbled event's) and means the stream broke.
        return broken_connection_error(self.provider, exc, attempts)

    def _stream_result(
        self, assembler: StreamAssembler, failure: Exception | None, attempts: int
    ) -> LLMResponse | LLMError:
        """The reply of a stream that ended, or the error it broke with.

        Raises:
            LLMError: ``kind="stream_interrupted"``, when the stream ended without a
                ``finish_reason``.
        """
        if failure is None:
            return assembler.response(attempts=attempts)
        return as_stream_failure(self._to_llm_error(failure, attempts), assembler.delivered)


class OpenAIBackend(_OpenAIBackendBase["openai.OpenAI"], SyncSDKBackend):
    """A synchronous backend for OpenAI's Chat Completions API and compatible servers.

    Transient failures (429, 5xx, time-outs, connection errors) are retried per ``retry``,
    honouring ``Retry-After``; anything else raises :class:`~looplet.errors.LLMError` after
    one request. The client's own retries are disabled so that only ``retry`` applies.

    With ``stream=True`` the reply is streamed: each piece of text or tool-call arguments goes
    to ``request.on_chunk`` (set by the loop when a hook such as
    :class:`~looplet.observe.StreamingHook` listens) and each text piece to ``on_token``, and
    :meth:`complete` returns the same :class:`LLMResponse` as without streaming. A failure
    before any piece reached a callback is retried as usual; a failure after, or a stream
    that ends without a ``finish_reason``, raises ``LLMError(kind="stream_interrupted")`` at
    once, since a retry would hand the callbacks the same pieces again.

    Example::

        llm = OpenAIBackend(openai.OpenAI(), model="gpt-4o-mini")
        reply = llm.complete(LLMRequest([Message.user("Say hi")]))
        talker = OpenAIBackend(openai.OpenAI(), model="gpt-4o-mini", stream=True, on_token=print)

    Args:
        client: an ``openai.OpenAI`` client (for a compatible server, built with its
            ``base_url``).
        model: the model to call.
        default_max_tokens: the output limit used when a request sets none.
        retry: when and how long to wait before retrying.
        provider: the name shown in errors (``"ollama"``, ``"vllm"``...).
        stream: stream the reply (``stream=True`` with ``include_usage``) instead of waiting
            for it whole.
        on_token: with ``stream=True``, called with each piece of reply text as it arrives.
        **request_defaults: extra arguments for every ``chat.completions.create`` call
            (``top_p``, ``tool_choice``, ``timeout``...).

    Raises:
        MissingExtraError: the ``openai`` package is not installed.
        ConfigurationError: ``on_token`` is given without ``stream=True``, or is not callable.
    """

    _client_class = "OpenAI"

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # this module's ``time``, which a test may replace


class AsyncOpenAIBackend(_OpenAIBackendBase["openai.AsyncOpenAI"], AsyncSDKBackend):
    """The asynchronous twin of :class:`OpenAIBackend`, wrapping an ``openai.AsyncOpenAI``.

    It makes the same requests, retry decisions and errors, and streams the same way; only
    the waiting is awaited. ``on_token`` and ``request.on_chunk`` stay plain functions.

    Example::

        llm = AsyncOpenAIBackend(openai.AsyncOpenAI(), model="gpt-4o-mini")
        reply = await llm.acomplete(LLMRequest([Message.user("Say hi")]))

    Args:
        client: an ``openai.AsyncOpenAI`` client.
        model, default_max_tokens, retry, provider, stream, on_token, **request_defaults: as
            for :class:`OpenAIBackend`.

    Raises:
        MissingExtraError: the ``openai`` package is not installed.
        ConfigurationError: ``on_token`` is given without ``stream=True``, or is not callable.
    """

    _client_class = "AsyncOpenAI"


def _check_env(feature: str, kw: dict[str, Any]) -> None:
    if not os.environ.get("OPENAI_API_KEY"):
        raise ConfigurationError(
            f"{feature}.from_env() needs OPENAI_API_KEY, which is not set. Set it to your API "
            "key (export OPENAI_API_KEY=sk-...); for a local OpenAI-compatible server that "
            "needs no key, set it to any value and point OPENAI_BASE_URL at the server "
            "(e.g. http://localhost:11434/v1). OPENAI_MODEL picks the model "
            f"(default {DEFAULT_MODEL!r})."
        )
    kw.setdefault("model", os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL)
