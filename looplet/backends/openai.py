"""The OpenAI backends: :class:`OpenAIBackend` and its async twin :class:`AsyncOpenAIBackend`.

Both wrap an ``openai`` SDK client and speak the Chat Completions API, so they also serve
OpenAI-compatible servers (Ollama, vLLM, LM Studio...) given a ``base_url`` and a
``provider`` name. They make their own bounded retries (the SDK's are turned off) so that the
retry policy, the attempt count and the final :class:`~looplet.errors.LLMError` are
looplet's. With ``stream=True`` they stream the reply, handing text and tool-call pieces to
callbacks as they arrive, and return the same :class:`LLMResponse` as without. The translation
to and from OpenAI JSON lives in :mod:`looplet.backends._openai_convert` (re-exported here),
the assembling of streamed chunks in :mod:`looplet.backends._openai_stream`, and what every
streaming backend shares (a broken stream's error, the ``on_token`` check) in
:mod:`looplet.backends._streaming`.

The ``openai`` package is imported only when a backend is built, so this module can be
imported (and a missing extra reported) without it.
"""

from __future__ import annotations

import asyncio
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from looplet.backends._openai_convert import (
    build_request_kwargs,
    from_openai_completion,
    to_llm_error,
    to_openai_messages,
    to_openai_tools,
)
from looplet.backends._openai_stream import StreamAssembler
from looplet.backends._streaming import (
    TokenCallback,
    broken_connection_error,
    check_on_token,
    interrupted_error,
)
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy, reraise_own_error
from looplet.errors import ConfigurationError, LLMError, MissingExtraError
from looplet.messages import Message
from looplet.types import Usage

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion

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


class _OpenAIBackendBase:
    """What the sync and async backends share: settings, request building, retry decisions."""

    def __init__(
        self,
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
        _require_openai(feature)
        import openai

        if not model:
            raise ConfigurationError(
                f"{feature} needs a model name, got {model!r}: pass model='gpt-4o-mini' "
                "(or the model your server serves)."
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
        self._sdk_error: type[Exception] = openai.APIError

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

    def _assembler(self, request: LLMRequest) -> StreamAssembler:
        """A fresh assembler for one streamed attempt."""
        return StreamAssembler(
            on_chunk=request.on_chunk, on_token=self.on_token, provider=self.provider
        )

    def _after_stream(
        self, assembler: StreamAssembler, failure: Exception | None, attempts: int
    ) -> LLMResponse | float:
        """The reply of a stream that ended, or the seconds to wait before retrying it.

        Raises:
            LLMError: giving up (``kind="stream_interrupted"`` once callbacks saw pieces, or
                when the stream ended without a ``finish_reason``).
        """
        if failure is None:
            return self._finish(assembler, attempts)
        return self._wait_or_raise(failure, attempts, assembler)

    def _wait_or_raise(
        self, exc: Exception, attempts: int, assembler: StreamAssembler | None = None
    ) -> float:
        """Seconds to wait before retrying after ``exc``; raises the LLMError when giving up.

        A stream that failed after its callbacks received pieces is never retried (they would
        receive them twice): that raises ``LLMError(kind="stream_interrupted")``.
        """
        reraise_own_error(exc)
        error = self._to_llm_error(exc, attempts)
        if assembler is not None and assembler.delivered:
            raise interrupted_error(
                self.provider,
                error.provider_message,
                assembler.delivered,
                attempts=attempts,
                status=error.status,
            ) from exc
        wait = (
            self.retry.delay(attempts, error.status, _retry_after(exc)) if error.retriable else None
        )
        if wait is None:
            raise error from exc
        return wait

    def _to_llm_error(self, exc: Exception, attempts: int) -> LLMError:
        if isinstance(exc, self._sdk_error):
            return to_llm_error(exc, attempts, provider=self.provider)
        # Only reading a stream catches more than the SDK's errors: what else it raised is
        # the HTTP library's (or a garbled event's) and means the stream broke.
        return broken_connection_error(self.provider, exc, attempts)

    def _finish(self, reply: ChatCompletion | StreamAssembler, attempts: int) -> LLMResponse:
        if isinstance(reply, StreamAssembler):
            response = reply.response(attempts=attempts)
        else:
            response = from_openai_completion(reply)
        self.last_usage = response.usage
        return response

    def __repr__(self) -> str:
        streamed = ", stream=True" if self.stream else ""
        return f"{type(self).__name__}(model={self.model!r}, provider={self.provider!r}{streamed})"


class OpenAIBackend(_OpenAIBackendBase):
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

    def __init__(
        self,
        client: openai.OpenAI,
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
            model=model,
            default_max_tokens=default_max_tokens,
            retry=retry,
            provider=provider,
            stream=stream,
            on_token=on_token,
            request_defaults=request_defaults,
        )
        self._client = client.with_options(max_retries=0)

    @classmethod
    def from_env(cls, **kw: Any) -> Self:
        """A backend configured from the environment variables the ``openai`` SDK reads.

        Reads ``OPENAI_API_KEY`` (required), ``OPENAI_BASE_URL`` (optional) and
        ``OPENAI_MODEL`` (default ``gpt-4o-mini``); ``kw`` goes to the constructor and may
        override the model. Close the backend (or use it in ``with``) when done.

        Raises:
            ConfigurationError: ``OPENAI_API_KEY`` is not set.
            MissingExtraError: the ``openai`` package is not installed.
        """
        _require_openai(cls.__name__)
        _check_env(cls.__name__, kw)
        import openai

        return cls(openai.OpenAI(), **kw)

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
                completion = self._client.chat.completions.create(**kwargs)
            except self._sdk_error as exc:
                time.sleep(self._wait_or_raise(exc, attempts))
            else:
                return self._finish(completion, attempts)

    def _stream_once(
        self, kwargs: dict[str, Any], request: LLMRequest, attempts: int
    ) -> LLMResponse | float:
        """One streamed attempt: the reply, or the seconds to wait before the next one."""
        assembler = self._assembler(request)
        try:
            chunks = self._client.chat.completions.create(**kwargs)
        except self._sdk_error as exc:
            return self._wait_or_raise(exc, attempts)
        failure: Exception | None = None
        with chunks:
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                # Whatever breaks the reading (an error event, a cut connection: older SDKs let
                # the HTTP library's own errors through) ends this attempt; a callback's
                # exception, raised by feed(), is not caught and ends the call unchanged.
                except Exception as exc:
                    failure = exc
                    break
                assembler.feed(chunk)
        return self._after_stream(assembler, failure, attempts)

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 2000,
        system_prompt: str = "",
        temperature: float = 0.2,
    ) -> str:
        """The original looplet interface: send ``prompt`` as one user message, return the text.

        ``system_prompt``, when given, goes first as a system message. Kept for code written
        against looplet 0.1; new code calls :meth:`complete`.
        """
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


class AsyncOpenAIBackend(_OpenAIBackendBase):
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

    def __init__(
        self,
        client: openai.AsyncOpenAI,
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
            model=model,
            default_max_tokens=default_max_tokens,
            retry=retry,
            provider=provider,
            stream=stream,
            on_token=on_token,
            request_defaults=request_defaults,
        )
        self._client = client.with_options(max_retries=0)

    @classmethod
    def from_env(cls, **kw: Any) -> Self:
        """A backend configured from the environment; see :meth:`OpenAIBackend.from_env`.

        Raises:
            ConfigurationError: ``OPENAI_API_KEY`` is not set.
            MissingExtraError: the ``openai`` package is not installed.
        """
        _require_openai(cls.__name__)
        _check_env(cls.__name__, kw)
        import openai

        return cls(openai.AsyncOpenAI(), **kw)

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
                completion = await self._client.chat.completions.create(**kwargs)
            except self._sdk_error as exc:
                await asyncio.sleep(self._wait_or_raise(exc, attempts))
            else:
                return self._finish(completion, attempts)

    async def _stream_once(
        self, kwargs: dict[str, Any], request: LLMRequest, attempts: int
    ) -> LLMResponse | float:
        """One streamed attempt: the reply, or the seconds to wait before the next one."""
        assembler = self._assembler(request)
        try:
            chunks = await self._client.chat.completions.create(**kwargs)
        except self._sdk_error as exc:
            return self._wait_or_raise(exc, attempts)
        failure: Exception | None = None
        async with chunks:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # as in OpenAIBackend._stream_once
                    failure = exc
                    break
                assembler.feed(chunk)
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


def _require_openai(feature: str) -> None:
    try:
        import openai  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("openai", "openai", feature) from exc


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


def _retry_after(exc: Exception) -> str | None:
    """The wait the server asked for, in seconds as text (``retry-after-ms`` first, as the SDK)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return str(float(millis) / 1000)
        except ValueError:
            pass  # malformed: fall back to retry-after
    value = headers.get("retry-after")
    return str(value) if value is not None else None
