"""The Anthropic backends: :class:`AnthropicBackend` and :class:`AsyncAnthropicBackend`.

Both wrap an ``anthropic`` SDK client and speak the Messages API with native tool use. They
make their own bounded retries (the SDK's are turned off), so the retry policy, the attempt
count and the final :class:`~looplet.errors.LLMError` are looplet's, and can stream. The
translation to and from Anthropic JSON is in :mod:`looplet.backends._anthropic_convert`
(re-exported here), the assembling of stream events in :mod:`looplet.backends._anthropic_stream`,
and what every streaming backend shares (a broken stream's error, the ``on_token`` check) in
:mod:`looplet.backends._streaming`. The ``anthropic`` package is imported only when a backend
is built, so this module can be imported (and a missing extra reported) without it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from looplet.backends._anthropic_convert import (
    build_request_kwargs,
    from_anthropic_message,
    retry_after,
    to_anthropic_messages,
    to_anthropic_tools,
    to_llm_error,
)
from looplet.backends._anthropic_stream import AnthropicStreamAssembler
from looplet.backends._streaming import TokenCallback, check_on_token
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy, reraise_own_error
from looplet.errors import ConfigurationError, LLMError, MissingExtraError
from looplet.messages import Message
from looplet.types import Usage

if TYPE_CHECKING:
    import anthropic

__all__ = [
    "DEFAULT_MODEL",
    "AnthropicBackend",
    "AnthropicStreamAssembler",
    "AsyncAnthropicBackend",
    "build_request_kwargs",
    "from_anthropic_message",
    "to_anthropic_messages",
    "to_anthropic_tools",
    "to_llm_error",
]

#: The model :meth:`AnthropicBackend.from_env` uses when ``ANTHROPIC_MODEL`` is not set.
DEFAULT_MODEL = "claude-sonnet-5-5"


class _AnthropicBackendBase:
    """What the sync and async backends share: settings, request building, retry decisions."""

    def __init__(
        self,
        client: Any,
        *,
        model: str,
        default_max_tokens: int,
        retry: RetryPolicy,
        provider: str,
        stream: bool,
        on_token: TokenCallback | None,
        request_defaults: dict[str, Any],
    ) -> None:
        feature = type(self).__name__
        _require_anthropic(feature)
        import anthropic

        if not model:
            raise ConfigurationError(
                f"{feature} needs a model name, got {model!r}: pass "
                f"model={DEFAULT_MODEL!r} (or the model your server serves)."
            )
        check_on_token(feature, stream, on_token)
        self.model = model
        self.provider = provider
        self.retry = retry
        self.default_max_tokens = default_max_tokens
        self.request_defaults = request_defaults
        self.stream = stream
        self.on_token = on_token
        #: The token usage of the last successful call (``None`` before the first).
        self.last_usage: Usage | None = None
        self._sdk_error: type[Exception] = anthropic.APIError
        self._client = client.with_options(max_retries=0)
        self._send_temperature = _takes_temperature(self._client)

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

    def _assembler(self, request: LLMRequest) -> AnthropicStreamAssembler:
        return AnthropicStreamAssembler(
            on_chunk=request.on_chunk, on_token=self.on_token, provider=self.provider
        )

    def _after_stream(
        self, assembler: AnthropicStreamAssembler, failure: Exception | None, attempts: int
    ) -> LLMResponse | float:
        """The reply of a stream that ended, or the seconds to wait before retrying it.

        Raises:
            LLMError: giving up (``kind="stream_interrupted"`` once callbacks saw pieces).
        """
        if failure is None and assembler.complete:
            return self._finish(assembler.response())
        return self._decide(assembler.failure(failure, attempts), failure, attempts)

    def _wait_or_raise(self, exc: Exception, attempts: int) -> float:
        """Seconds to wait before retrying after ``exc``; raises the LLMError when giving up."""
        reraise_own_error(exc)
        return self._decide(to_llm_error(exc, attempts, provider=self.provider), exc, attempts)

    def _decide(self, error: LLMError, exc: Exception | None, attempts: int) -> float:
        after = retry_after(exc) if exc is not None else None
        wait = self.retry.delay(attempts, error.status, after) if error.retriable else None
        if wait is None:
            raise error from exc
        return wait

    def _finish(self, reply: Any) -> LLMResponse:
        response = reply if isinstance(reply, LLMResponse) else from_anthropic_message(reply)
        self.last_usage = response.usage
        return response

    def __repr__(self) -> str:
        streamed = ", stream=True" if self.stream else ""
        return f"{type(self).__name__}(model={self.model!r}, provider={self.provider!r}{streamed})"


class AnthropicBackend(_AnthropicBackendBase):
    """A synchronous backend for Anthropic's Messages API, with native tool use.

    The conversation goes in Anthropic's shape: the system prompt as the top-level ``system``,
    tool calls as ``tool_use`` blocks, a turn's tool results as one user message of
    ``tool_result`` blocks (:func:`to_anthropic_messages`). Transient failures (429, 5xx, 529
    overloaded, time-outs, connection errors) are retried per ``retry``, honouring
    ``retry-after``; others (400, 401, 403, 404) raise :class:`~looplet.errors.LLMError` after
    one request, with Anthropic's own message. The client's own retries are disabled. The
    request's ``temperature`` is sent only if the SDK's ``messages.create`` takes one (2.x
    does not).

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

    def __init__(
        self,
        client: anthropic.Anthropic,
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
            client,
            model=model,
            default_max_tokens=default_max_tokens,
            retry=retry,
            provider=provider,
            stream=stream,
            on_token=on_token,
            request_defaults=request_defaults,
        )

    @classmethod
    def from_env(cls, **kw: Any) -> Self:
        """A backend configured from ``ANTHROPIC_API_KEY`` (required), ``ANTHROPIC_BASE_URL``
        (optional: a proxy or compatible server, without ``/v1``) and ``ANTHROPIC_MODEL``
        (default :data:`DEFAULT_MODEL`); ``kw`` goes to the constructor and may override the
        model. Close the backend (or use it in ``with``) when done.

        Raises:
            ConfigurationError: ``ANTHROPIC_API_KEY`` is not set.
            MissingExtraError: the ``anthropic`` package is not installed.
        """
        _require_anthropic(cls.__name__)
        import anthropic

        return cls(anthropic.Anthropic(**_client_env(cls.__name__, kw)), **kw)

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` and return the reply, retrying transient failures.

        Raises:
            LLMError: the provider failed; ``.attempts`` says how many requests were sent.
                ``kind="stream_interrupted"``: a streamed reply broke off.
        """
        kwargs = self._request_kwargs(request)
        attempts = 0
        while True:
            attempts += 1
            if self.stream:
                outcome = self._stream_once(kwargs, request, attempts)
                if isinstance(outcome, LLMResponse):
                    return outcome
                time.sleep(outcome)
                continue
            try:
                message = self._client.messages.create(**kwargs)
            except self._sdk_error as exc:
                time.sleep(self._wait_or_raise(exc, attempts))
            else:
                return self._finish(message)

    def _stream_once(
        self, kwargs: dict[str, Any], request: LLMRequest, attempts: int
    ) -> LLMResponse | float:
        assembler = self._assembler(request)
        try:
            stream = self._client.messages.create(**kwargs)
        except self._sdk_error as exc:
            return self._wait_or_raise(exc, attempts)
        failure: Exception | None = None
        with stream:
            while True:
                try:
                    event = next(stream)
                except StopIteration:
                    break
                # Whatever breaks the reading (an error event, a cut connection: the SDK lets
                # the HTTP library's own errors through here) ends this attempt; a callback's
                # exception, raised by feed(), is not caught and ends the call.
                except Exception as exc:
                    failure = exc
                    break
                assembler.feed(event)
        return self._after_stream(assembler, failure, attempts)

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 2000,
        system_prompt: str = "",
        temperature: float = 0.2,
    ) -> str:
        """The original looplet interface: send ``prompt`` (and ``system_prompt`` as the system
        prompt), return the text. Kept for code written against looplet 0.1; new code calls
        :meth:`complete`."""
        messages = [Message.system(system_prompt)] if system_prompt else []
        messages.append(Message.user(prompt))
        request = LLMRequest(messages, max_tokens=max_tokens, temperature=temperature)
        return self.complete(request).text

    def close(self) -> None:
        """Close the client's connections; the backend (and the client) cannot be used after."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncAnthropicBackend(_AnthropicBackendBase):
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

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
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
            client,
            model=model,
            default_max_tokens=default_max_tokens,
            retry=retry,
            provider=provider,
            stream=stream,
            on_token=on_token,
            request_defaults=request_defaults,
        )

    @classmethod
    def from_env(cls, **kw: Any) -> Self:
        """A backend configured from the environment; see :meth:`AnthropicBackend.from_env`.

        Raises:
            ConfigurationError: ``ANTHROPIC_API_KEY`` is not set.
            MissingExtraError: the ``anthropic`` package is not installed.
        """
        _require_anthropic(cls.__name__)
        import anthropic

        return cls(anthropic.AsyncAnthropic(**_client_env(cls.__name__, kw)), **kw)

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` and return the reply, retrying transient failures.

        Raises:
            LLMError: the provider failed; ``.attempts`` says how many requests were sent.
                ``kind="stream_interrupted"``: a streamed reply broke off.
        """
        kwargs = self._request_kwargs(request)
        attempts = 0
        while True:
            attempts += 1
            if self.stream:
                outcome = await self._stream_once(kwargs, request, attempts)
                if isinstance(outcome, LLMResponse):
                    return outcome
                await asyncio.sleep(outcome)
                continue
            try:
                message = await self._client.messages.create(**kwargs)
            except self._sdk_error as exc:
                await asyncio.sleep(self._wait_or_raise(exc, attempts))
            else:
                return self._finish(message)

    async def _stream_once(
        self, kwargs: dict[str, Any], request: LLMRequest, attempts: int
    ) -> LLMResponse | float:
        assembler = self._assembler(request)
        try:
            stream = await self._client.messages.create(**kwargs)
        except self._sdk_error as exc:
            return self._wait_or_raise(exc, attempts)
        failure: Exception | None = None
        async with stream:
            while True:
                try:
                    event = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # as in AnthropicBackend._stream_once
                    failure = exc
                    break
                assembler.feed(event)
        return self._after_stream(assembler, failure, attempts)

    async def aclose(self) -> None:
        """Close the client's connections; the backend (and the client) cannot be used after."""
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _require_anthropic(feature: str) -> None:
    try:
        import anthropic  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("anthropic", "anthropic", feature) from exc


def _takes_temperature(client: Any) -> bool:
    # The anthropic 2.x SDK dropped `temperature` from messages.create (it has no sampling
    # parameters); older ones take it. Passing it to 2.x would be a TypeError.
    try:
        return "temperature" in inspect.signature(client.messages.create).parameters
    except (TypeError, ValueError):  # no signature to read: assume the classic API
        return True


def _client_env(feature: str, kw: dict[str, Any]) -> dict[str, Any]:
    """The client arguments from the environment; sets the model in ``kw`` if not given."""
    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        raise ConfigurationError(
            f"{feature}.from_env() needs ANTHROPIC_API_KEY, which is not set. Set it to your "
            "Anthropic API key (export ANTHROPIC_API_KEY=sk-ant-...). ANTHROPIC_BASE_URL points "
            "at a proxy or compatible server (its root, without /v1), and ANTHROPIC_MODEL "
            f"picks the model (default {DEFAULT_MODEL!r})."
        )
    kw.setdefault("model", os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL)
    return {"api_key": key, "base_url": os.environ.get("ANTHROPIC_BASE_URL") or None}
