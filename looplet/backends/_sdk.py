"""What the SDK-client backends share: checks, bounded retries, streaming, ``from_env``, close.

The OpenAI and Anthropic backends (:mod:`looplet.backends.openai`,
:mod:`looplet.backends.anthropic`) wrap a provider SDK client the same way: they check their
settings when built, turn the SDK's own retries off and make bounded ones of their own, can
stream the reply into an assembler, and close the client. That scaffolding lives here once,
drawn as STYLE §6 draws sync and async: one pure core and two thin drivers.

- :class:`SDKBackend` is the core. :meth:`~SDKBackend._attempts` numbers a call's attempts
  (a streamed one gets a fresh assembler), and what each attempt ends with (a reply, an SDK
  error, a stream that ended or broke) goes through pure methods that return the reply or the
  seconds to wait, or raise the :class:`~looplet.errors.LLMError` that ends the call.
- :class:`SyncSDKBackend` and :class:`AsyncSDKBackend` are the drivers: they send an attempt,
  read its stream and wait before the next, and differ only in ``await``.
- A provider gives the public ``__init__`` and ``from_env``; sets ``_sdk``,
  ``_default_model``, ``_client_class`` and ``_assembler_class``; and fills in the hooks
  ``_client_env``, ``_request_kwargs``, ``_create``, ``_from_reply``, ``_to_llm_error`` and
  ``_stream_result``.

The translation of SDK errors the providers share (:func:`sdk_llm_error`, :func:`retry_after`)
is here too. No provider SDK is imported until a backend is built.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar

from looplet._redact import remember_credential
from looplet.backends._streaming import TokenCallback, check_on_token
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy, reraise_own_error
from looplet.errors import ConfigurationError, LLMError, MissingExtraError
from looplet.messages import Message
from looplet.types import Usage

__all__ = [
    "Assembler",
    "AsyncSDKBackend",
    "Attempt",
    "ClientT",
    "SDKBackend",
    "SyncSDKBackend",
    "retry_after",
    "sdk_llm_error",
]

#: The SDK client a backend wraps (``openai.OpenAI``, ``anthropic.AsyncAnthropic``...).
ClientT = TypeVar("ClientT")


class Assembler(Protocol):
    """What a driver needs of a provider's stream assembler: something to feed each piece."""

    def feed(self, piece: Any) -> None:
        """Take in the next piece of the stream and pass it on to the callbacks."""
        ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request of a call.

    Attributes:
        number: which attempt it is, from 1 (what an error's ``attempts`` says).
        kwargs: the SDK call's keyword arguments, the same for every attempt.
        assembler: with ``stream=True``, a fresh assembler for this attempt's stream.
    """

    number: int
    kwargs: dict[str, Any]
    assembler: Assembler | None = None


class SDKBackend:
    """The pure core of a backend wrapping a provider SDK client (see the module docstring).

    Nothing here sleeps or sends: the drivers (:class:`SyncSDKBackend`,
    :class:`AsyncSDKBackend`) do, and ask this core what each outcome means.
    """

    #: The SDK's module name, which is also the name of the extra that installs it.
    _sdk: ClassVar[str]
    #: The model the "needs a model name" error suggests.
    _default_model: ClassVar[str]
    #: The name of the SDK's client class that ``from_env`` builds (``"AsyncOpenAI"``...).
    _client_class: ClassVar[str]
    #: The provider's stream assembler, built with ``on_chunk``, ``on_token`` and ``provider``.
    _assembler_class: ClassVar[Callable[..., Assembler]]

    def __init__(
        self,
        client: Any,
        model: str,
        default_max_tokens: int,
        retry: RetryPolicy,
        provider: str,
        stream: bool,
        on_token: TokenCallback | None,
        request_defaults: dict[str, Any],
    ) -> None:
        feature = type(self).__name__
        sdk = self._import_sdk()
        if not model:
            raise ConfigurationError(
                f"{feature} needs a model name, got {model!r}: pass "
                f"model={self._default_model!r} (or the model your server serves)."
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
        self._sdk_error: type[Exception] = sdk.APIError
        # The SDK's own retries are off, so that only ``retry`` applies (a client built with
        # none is used as it is: a copy costs a new client object per backend).
        self._client: Any = (
            client
            if getattr(client, "max_retries", None) == 0
            else client.with_options(max_retries=0)
        )
        # The key in use must not reach a report or a file, even if a gateway echoes it.
        remember_credential(getattr(client, "api_key", None))
        remember_credential(getattr(client, "auth_token", None))

    @classmethod
    def _import_sdk(cls) -> ModuleType:
        """The provider SDK's module.

        Raises:
            MissingExtraError: it is not installed (naming the backend class and the extra).
        """
        try:
            return importlib.import_module(cls._sdk)
        except ImportError as exc:
            raise MissingExtraError(cls._sdk, cls._sdk, cls.__name__) from exc

    @classmethod
    def _from_env(cls, kw: dict[str, Any]) -> Self:
        """A backend around a new SDK ``_client_class`` client, built from the environment.

        ``kw`` (the constructor's keywords) gets the model from the environment unless it
        names one, and the client the arguments :meth:`_client_env` reads.
        """
        sdk = cls._import_sdk()
        client_args = cls._client_env(kw)
        return cls(getattr(sdk, cls._client_class)(**client_args), **kw)

    # -- The hooks a provider fills in. ------------------------------------------------------

    @classmethod
    def _client_env(cls, kw: dict[str, Any]) -> dict[str, Any]:
        """The client's arguments from the environment; sets ``kw["model"]`` if not given.

        Raises:
            ConfigurationError: a variable the provider needs is not set.
        """
        raise NotImplementedError

    def _request_kwargs(self, request: LLMRequest) -> dict[str, Any]:
        """The SDK call's keyword arguments for ``request`` (with ``stream`` when streaming)."""
        raise NotImplementedError

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """Call the SDK's ``create``: the reply or stream (an awaitable of it, for an async
        client)."""
        raise NotImplementedError

    def _from_reply(self, reply: Any) -> LLMResponse:
        """The :class:`LLMResponse` of a whole (not streamed) reply."""
        raise NotImplementedError

    def _to_llm_error(self, exc: Exception, attempts: int) -> LLMError:
        """The :class:`LLMError` for ``exc``, raised by the SDK (or, while a stream was read,
        by the HTTP library under it)."""
        raise NotImplementedError

    def _stream_result(
        self, assembler: Any, failure: Exception | None, attempts: int
    ) -> LLMResponse | LLMError:
        """The reply of a stream that ended (``failure`` is ``None``), or the error to decide on.

        The error for a stream that broke after its callbacks received pieces must be
        ``kind="stream_interrupted"`` and not retriable: a retry would deliver them again.
        """
        raise NotImplementedError

    # -- The core: attempts, and what their outcomes mean. -----------------------------------

    def _attempts(self, request: LLMRequest) -> Iterator[Attempt]:
        """The attempts of one call, numbered from 1; the driver stops at a reply or an error."""
        kwargs = self._request_kwargs(request)
        for number in itertools.count(1):
            yield Attempt(number, kwargs, self._assembler(request) if self.stream else None)

    def _assembler(self, request: LLMRequest) -> Assembler:
        """A fresh assembler for one streamed attempt of ``request``."""
        return self._assembler_class(
            on_chunk=request.on_chunk, on_token=self.on_token, provider=self.provider
        )

    def _finish(self, response: LLMResponse) -> LLMResponse:
        self.last_usage = response.usage
        return response

    def _wait_or_raise(self, exc: Exception, attempts: int) -> float:
        """Seconds to wait before retrying after the SDK raised ``exc``.

        Raises:
            LLMError: giving up.
            LoopletError: the one ``exc`` wraps (see :func:`reraise_own_error`).
        """
        reraise_own_error(exc)
        return self._decide(self._to_llm_error(exc, attempts), exc, attempts)

    def _after_stream(self, attempt: Attempt, failure: Exception | None) -> LLMResponse | float:
        """The reply of a stream that ended, or the seconds to wait before retrying it.

        Raises:
            LLMError: giving up (``kind="stream_interrupted"`` once callbacks saw pieces).
            LoopletError: one of looplet's own that the SDK wrapped while the stream was read
                (a cassette mismatch): it is raised as it is, for both providers.
        """
        if failure is not None:
            reraise_own_error(failure)
        result = self._stream_result(attempt.assembler, failure, attempt.number)
        if isinstance(result, LLMResponse):
            return self._finish(result)
        return self._decide(result, failure, attempt.number)

    def _decide(self, error: LLMError, exc: Exception | None, attempts: int) -> float:
        """Seconds to wait before the next attempt after ``error``; raises it when giving up."""
        wait = (
            self.retry.delay(attempts, error.status, retry_after(exc)) if error.retriable else None
        )
        if wait is None:
            raise error from exc
        return wait

    def __repr__(self) -> str:
        streamed = ", stream=True" if self.stream else ""
        return f"{type(self).__name__}(model={self.model!r}, provider={self.provider!r}{streamed})"


class SyncSDKBackend(SDKBackend):
    """The synchronous driver: sends each attempt, reads its stream, sleeps in between."""

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` and return the reply, retrying transient failures.

        Raises:
            LLMError: the provider failed; ``.attempts`` says how many requests were sent.
                ``kind="stream_interrupted"``: a streamed reply broke off.
        """
        attempts = self._attempts(request)
        while not isinstance(outcome := self._send_once(next(attempts)), LLMResponse):
            self._sleep(outcome)
        return outcome

    def _send_once(self, attempt: Attempt) -> LLMResponse | float:
        """One attempt: the reply, or the seconds to wait before the next one."""
        try:
            reply = self._create(attempt.kwargs)
        except self._sdk_error as exc:
            return self._wait_or_raise(exc, attempt.number)
        if attempt.assembler is None:
            return self._finish(self._from_reply(reply))
        failure: Exception | None = None
        with reply:
            while True:
                try:
                    piece = next(reply)
                except StopIteration:
                    break
                # Whatever breaks the reading (an error event, a cut connection: some SDKs let
                # the HTTP library's own errors through) ends this attempt; a callback's
                # exception, raised by feed(), is not caught and ends the call unchanged.
                except Exception as exc:
                    failure = exc
                    break
                attempt.assembler.feed(piece)
        return self._after_stream(attempt, failure)

    def _sleep(self, seconds: float) -> None:
        """Wait before the next attempt. A provider module overrides it to call its own
        ``time.sleep``, so that a test replacing that module's ``time`` sees the waits."""
        time.sleep(seconds)

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


class AsyncSDKBackend(SDKBackend):
    """The asynchronous driver: :class:`SyncSDKBackend` with the waiting awaited.

    ``on_token`` and ``request.on_chunk`` stay plain functions.
    """

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` and return the reply, retrying transient failures.

        Raises:
            LLMError: the provider failed; ``.attempts`` says how many requests were sent.
                ``kind="stream_interrupted"``: a streamed reply broke off.
        """
        attempts = self._attempts(request)
        while not isinstance(outcome := await self._send_once(next(attempts)), LLMResponse):
            await asyncio.sleep(outcome)
        return outcome

    async def _send_once(self, attempt: Attempt) -> LLMResponse | float:
        """One attempt: the reply, or the seconds to wait before the next one."""
        try:
            reply = await self._create(attempt.kwargs)
        except self._sdk_error as exc:
            return self._wait_or_raise(exc, attempt.number)
        if attempt.assembler is None:
            return self._finish(self._from_reply(reply))
        failure: Exception | None = None
        async with reply:
            while True:
                try:
                    piece = await anext(reply)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # as in SyncSDKBackend._send_once
                    failure = exc
                    break
                attempt.assembler.feed(piece)
        return self._after_stream(attempt, failure)

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


def sdk_llm_error(
    sdk: ModuleType,
    exc: Exception,
    attempts: int,
    *,
    provider: str,
    status_error: Callable[[Any], tuple[int | None, str]],
) -> LLMError:
    """The :class:`LLMError` for ``exc``, raised by the SDK module ``sdk``.

    The ``openai`` and ``anthropic`` SDKs name their errors alike. An ``APIStatusError`` gets
    the status and the provider's own message that ``status_error`` reads from it, and is
    retriable when :meth:`RetryPolicy.is_retriable` says so; an ``APITimeoutError`` has
    ``kind="timeout"`` and an ``APIConnectionError`` ``kind="connection_error"``, both
    retriable, without a status, and naming their cause. Anything else is a reply the SDK
    could not read (``kind="invalid_response"``), which will not read the next time either.
    """
    if isinstance(exc, sdk.APIStatusError):
        status, message = status_error(exc)
        return LLMError(
            provider,
            message,
            status=status,
            retriable=RetryPolicy.is_retriable(status),
            attempts=attempts,
        )
    if isinstance(exc, sdk.APITimeoutError):
        return LLMError(
            provider, _with_cause(exc), retriable=True, attempts=attempts, kind="timeout"
        )
    if isinstance(exc, sdk.APIConnectionError):
        return LLMError(
            provider, _with_cause(exc), retriable=True, attempts=attempts, kind="connection_error"
        )
    return LLMError(
        provider,
        f"{type(exc).__name__}: {exc}",
        retriable=False,
        attempts=attempts,
        kind="invalid_response",
    )


def retry_after(exc: BaseException | None) -> str | None:
    """The wait the server asked for, in seconds as text (``retry-after-ms`` first, as the
    SDKs read it), or ``None``."""
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


def _with_cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{exc} ({type(cause).__name__}: {cause})" if cause is not None else str(exc)
