"""The OpenAI backends: :class:`OpenAIBackend` and its async twin :class:`AsyncOpenAIBackend`.

Both wrap an ``openai`` SDK client and speak the Chat Completions API, so they also serve
OpenAI-compatible servers (Ollama, vLLM, LM Studio...) given a ``base_url`` and a
``provider`` name. They make their own bounded retries (the SDK's are turned off) so that the
retry policy, the attempt count and the final :class:`~looplet.errors.LLMError` are
looplet's. The translation to and from OpenAI JSON lives in
:mod:`looplet.backends._openai_convert` and is re-exported here; streaming is not here.

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
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy
from looplet.errors import ConfigurationError, MissingExtraError
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
        self.model = model
        self.provider = provider
        self.retry = retry
        self.default_max_tokens = default_max_tokens
        self.request_defaults = request_defaults
        #: The token usage of the last successful call (``None`` before the first).
        self.last_usage: Usage | None = None
        self._sdk_error: type[Exception] = openai.APIError

    def _request_kwargs(self, request: LLMRequest) -> dict[str, Any]:
        return build_request_kwargs(
            request,
            self.model,
            default_max_tokens=self.default_max_tokens,
            **self.request_defaults,
        )

    def _wait_or_raise(self, exc: Exception, attempts: int) -> float:
        """Seconds to wait before retrying after ``exc``; raises the LLMError when giving up."""
        error = to_llm_error(exc, attempts, provider=self.provider)
        wait = (
            self.retry.delay(attempts, error.status, _retry_after(exc)) if error.retriable else None
        )
        if wait is None:
            raise error from exc
        return wait

    def _finish(self, completion: ChatCompletion) -> LLMResponse:
        response = from_openai_completion(completion)
        self.last_usage = response.usage
        return response

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, provider={self.provider!r})"


class OpenAIBackend(_OpenAIBackendBase):
    """A synchronous backend for OpenAI's Chat Completions API and compatible servers.

    Transient failures (429, 5xx, time-outs, connection errors) are retried per ``retry``,
    honouring ``Retry-After``; anything else raises :class:`~looplet.errors.LLMError` after
    one request. The client's own retries are disabled so that only ``retry`` applies.

    Example::

        llm = OpenAIBackend(openai.OpenAI(), model="gpt-4o-mini")
        reply = llm.complete(LLMRequest([Message.user("Say hi")]))

    Args:
        client: an ``openai.OpenAI`` client (for a compatible server, built with its
            ``base_url``).
        model: the model to call.
        default_max_tokens: the output limit used when a request sets none.
        retry: when and how long to wait before retrying.
        provider: the name shown in errors (``"ollama"``, ``"vllm"``...).
        **request_defaults: extra arguments for every ``chat.completions.create`` call
            (``top_p``, ``tool_choice``, ``timeout``...).

    Raises:
        MissingExtraError: the ``openai`` package is not installed.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        model: str,
        default_max_tokens: int = 2000,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so sharing it is safe)
        provider: str = "openai",
        **request_defaults: Any,
    ) -> None:
        super().__init__(
            model=model,
            default_max_tokens=default_max_tokens,
            retry=retry,
            provider=provider,
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
        """
        kwargs = self._request_kwargs(request)
        attempts = 0
        while True:
            attempts += 1
            try:
                completion = self._client.chat.completions.create(**kwargs)
            except self._sdk_error as exc:
                time.sleep(self._wait_or_raise(exc, attempts))
            else:
                return self._finish(completion)

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

    It makes the same requests, retry decisions and errors; only the waiting is awaited.

    Example::

        llm = AsyncOpenAIBackend(openai.AsyncOpenAI(), model="gpt-4o-mini")
        reply = await llm.acomplete(LLMRequest([Message.user("Say hi")]))

    Args:
        client: an ``openai.AsyncOpenAI`` client.
        model, default_max_tokens, retry, provider, **request_defaults: as for
            :class:`OpenAIBackend`.

    Raises:
        MissingExtraError: the ``openai`` package is not installed.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        default_max_tokens: int = 2000,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so sharing it is safe)
        provider: str = "openai",
        **request_defaults: Any,
    ) -> None:
        super().__init__(
            model=model,
            default_max_tokens=default_max_tokens,
            retry=retry,
            provider=provider,
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
        """
        kwargs = self._request_kwargs(request)
        attempts = 0
        while True:
            attempts += 1
            try:
                completion = await self._client.chat.completions.create(**kwargs)
            except self._sdk_error as exc:
                await asyncio.sleep(self._wait_or_raise(exc, attempts))
            else:
                return self._finish(completion)

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
