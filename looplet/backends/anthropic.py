"""The Anthropic backends: :class:`AnthropicBackend` and :class:`AsyncAnthropicBackend`.

Both wrap an ``anthropic`` SDK client and speak the Messages API with native tool use. They
make their own bounded retries (the SDK's are turned off), so the retry policy, the attempt
count and the final :class:`~looplet.errors.LLMError` are looplet's, and can stream. The
translation to and from Anthropic JSON is in :mod:`looplet.backends._anthropic_convert`
(re-exported here), the assembling of stream events in :mod:`looplet.backends._anthropic_stream`,
what every streaming backend shares (a broken stream's error, the ``on_token`` check) in
:mod:`looplet.backends._streaming`, and what every SDK-client backend shares (the checks, the
retry loop and its decisions, the sync and async drivers, ``close``) in
:mod:`looplet.backends._sdk`; this module fills in what is Anthropic's. The ``anthropic``
package is imported only when a backend is built, so this module can be imported (and a
missing extra reported) without it.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import TYPE_CHECKING, Any, Generic, Self

from looplet.backends._anthropic_convert import (
    build_request_kwargs,
    from_anthropic_message,
    place_cache_controls,
    to_anthropic_messages,
    to_anthropic_tools,
    to_llm_error,
)
from looplet.backends._anthropic_stream import AnthropicStreamAssembler
from looplet.backends._sdk import AsyncSDKBackend, ClientT, SDKBackend, SyncSDKBackend
from looplet.backends._streaming import TokenCallback
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy
from looplet.errors import ConfigurationError, LLMError

if TYPE_CHECKING:
    import anthropic  # noqa: F401 (the quoted base classes below name it)

__all__ = [
    "DEFAULT_MODEL",
    "AnthropicBackend",
    "AnthropicStreamAssembler",
    "AsyncAnthropicBackend",
    "build_request_kwargs",
    "from_anthropic_message",
    "place_cache_controls",
    "to_anthropic_messages",
    "to_anthropic_tools",
    "to_llm_error",
]

#: The model :meth:`AnthropicBackend.from_env` uses when ``ANTHROPIC_MODEL`` is not set.
DEFAULT_MODEL = "claude-sonnet-5-5"


class _AnthropicBackendBase(SDKBackend, Generic[ClientT]):
    """What the sync and async backends share: the constructor, and Anthropic's side of
    :class:`~looplet.backends._sdk.SDKBackend` (requests, replies, errors, the environment)."""

    _sdk = "anthropic"
    _default_model = DEFAULT_MODEL
    _assembler_class = AnthropicStreamAssembler

    def __init__(
        self,
        client: ClientT,
        *,
        model: str,
        default_max_tokens: int = 2000,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so sharing it is safe)
        provider: str = "anthropic",
        stream: bool = False,
        on_token: TokenCallback | None = None,
        **request_defaults: Any,
    ) -> None:
        super().__init__(
            client, model, default_max_tokens, retry, provider, stream, on_token, request_defaults
        )
        self._send_temperature = _takes_temperature(self._client)

    @classmethod
    def from_env(cls, **kw: Any) -> Self:
        """A backend configured from ``ANTHROPIC_API_KEY`` (required), ``ANTHROPIC_BASE_URL``
        (optional: a proxy or compatible server, without ``/v1``) and ``ANTHROPIC_MODEL``
        (default :data:`DEFAULT_MODEL`); ``kw`` goes to the constructor and may override the
        model. Close the backend (or use it in ``with``; ``async with`` for
        :class:`AsyncAnthropicBackend`) when done.

        Raises:
            ConfigurationError: ``ANTHROPIC_API_KEY`` is not set.
            MissingExtraError: the ``anthropic`` package is not installed.
        """
        return cls._from_env(kw)

    @classmethod
    def _client_env(cls, kw: dict[str, Any]) -> dict[str, Any]:
        key = os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigurationError(
                f"{cls.__name__}.from_env() needs ANTHROPIC_API_KEY, which is not set. Set it "
                "to your Anthropic API key (export ANTHROPIC_API_KEY=sk-ant-...). "
                "ANTHROPIC_BASE_URL points at a proxy or compatible server (its root, without "
                "/v1), and ANTHROPIC_MODEL picks the model "
                f"(default {DEFAULT_MODEL!r})."
            )
        kw.setdefault("model", os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL)
        return {"api_key": key, "base_url": os.environ.get("ANTHROPIC_BASE_URL") or None}

    def _request_kwargs(self, request: LLMRequest) -> dict[str, Any]:
        kwargs = build_request_kwargs(
            request,
            self.model,
            default_max_tokens=self.default_max_tokens,
            send_temperature=self._send_temperature,
            **self.request_defaults,
        )
        if self.stream:
            kwargs["stream"] = True
        return kwargs

    def _create(self, kwargs: dict[str, Any]) -> Any:
        return self._client.messages.create(**kwargs)

    def _from_reply(self, reply: Any) -> LLMResponse:
        return from_anthropic_message(reply)

    def _to_llm_error(self, exc: Exception, attempts: int) -> LLMError:
        return to_llm_error(exc, attempts, provider=self.provider)

    def _stream_result(
        self, assembler: AnthropicStreamAssembler, failure: Exception | None, attempts: int
    ) -> LLMResponse | LLMError:
        # A stream cut before message_stop is an error too: the reply may be cut short.
        if failure is None and assembler.complete:
            return assembler.response()
        return assembler.failure(failure, attempts)


class AnthropicBackend(_AnthropicBackendBase["anthropic.Anthropic"], SyncSDKBackend):
    """A synchronous backend for Anthropic's Messages API, with native tool use.

    The conversation goes in Anthropic's shape: the system prompt as the top-level ``system``,
    tool calls as ``tool_use`` blocks, a turn's tool results as one user message of
    ``tool_result`` blocks (:func:`to_anthropic_messages`). Transient failures (429, 5xx, 529
    overloaded, time-outs, connection errors) are retried per ``retry``, honouring
    ``retry-after``; others (400, 401, 403, 404) raise :class:`~looplet.errors.LLMError` after
    one request, with Anthropic's own message. The client's own retries are disabled. The
    request's ``temperature`` is sent only if the SDK's ``messages.create`` takes one (0.x
    does; 1.0 and later do not).

    With a cache policy on the request (``LoopConfig(cache_policy=CachePolicy())``, see
    :mod:`looplet.cache`), the tools, system prompt, memory and conversation carry
    ``cache_control`` breakpoints (:func:`place_cache_controls`); the reply's cache reads and
    writes are in ``usage.cache_read_tokens`` / ``cache_write_tokens``, and
    ``usage.input_tokens`` counts them too (the whole prompt).

    With ``stream=True`` the reply is streamed: each piece of text or tool input goes to
    ``request.on_chunk`` (set by the loop when a hook such as
    :class:`~looplet.observe.StreamingHook` listens) and each text piece to ``on_token``, and
    :meth:`complete` returns the same :class:`LLMResponse` as without streaming. A failure
    before any piece reached a callback is retried as usual; a failure after (or a stream
    cut before ``message_stop``) raises ``LLMError(kind="stream_interrupted")`` at once.

    Example::

        llm = AnthropicBackend(anthropic.Anthropic(), model="claude-sonnet-5-5")
        reply = llm.complete(LLMRequest([Message.user("Say hi")]))

    Args:
        client: an ``anthropic.Anthropic`` client.
        model: the model to call.
        default_max_tokens: the output limit used when a request sets none (the Messages
            API requires one).
        retry: when and how long to wait before retrying.
        provider: the name shown in errors.
        stream: stream the reply instead of waiting for it whole.
        on_token: with ``stream=True``, called with each piece of reply text as it arrives.
        **request_defaults: extra arguments for every ``messages.create`` call
            (``tool_choice``, ``metadata``, ``timeout``, ``extra_body``...).

    Raises:
        MissingExtraError: the ``anthropic`` package is not installed.
        ConfigurationError: no model, or ``on_token`` without ``stream=True``.
    """

    _client_class = "Anthropic"

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # this module's ``time``, which a test may replace


class AsyncAnthropicBackend(_AnthropicBackendBase["anthropic.AsyncAnthropic"], AsyncSDKBackend):
    """The asynchronous twin of :class:`AnthropicBackend`, wrapping an ``AsyncAnthropic``.

    Same requests, retry decisions, errors and streaming; only the waiting is awaited.
    ``on_token`` and ``request.on_chunk`` stay plain functions.

    Example::

        llm = AsyncAnthropicBackend(anthropic.AsyncAnthropic(), model="claude-sonnet-5-5")
        reply = await llm.acomplete(LLMRequest([Message.user("Say hi")]))

    Args:
        client: an ``anthropic.AsyncAnthropic`` client.
        model, default_max_tokens, retry, provider, stream, on_token, **request_defaults: as
            for :class:`AnthropicBackend`.

    Raises:
        MissingExtraError: the ``anthropic`` package is not installed.
        ConfigurationError: no model, or ``on_token`` without ``stream=True``.
    """

    _client_class = "AsyncAnthropic"


def _takes_temperature(client: Any) -> bool:
    # The anthropic SDK dropped `temperature` from messages.create in 1.0 (it has no sampling
    # parameters); 0.x takes it. Passing it to 1.0 or later would be a TypeError.
    try:
        return "temperature" in inspect.signature(client.messages.create).parameters
    except (TypeError, ValueError):  # no signature to read: assume the classic API
        return True
