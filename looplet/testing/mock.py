"""Scripted in-process backends for unit tests of the loop: no network, no SDK.

:class:`MockLLMBackend` (``complete``) and :class:`AsyncMockLLMBackend` (``acomplete``) answer
each request with the next item of a script and record what they were asked. Both share one
implementation, :class:`_ScriptedBackend`; they differ only in being sync or async. For
provider code, test against real HTTP with :class:`~looplet.testing.ScriptedOpenAIServer`
instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, final

from looplet.backends.base import LLMRequest, LLMResponse
from looplet.errors import ConfigurationError, ScriptExhaustedError
from looplet.messages import Message
from looplet.parse import _calls_from_object, format_text_reply, parse_text_reply
from looplet.types import ToolCall, Usage

__all__ = ["AsyncMockLLMBackend", "MockLLMBackend", "MockReply"]

#: What one scripted item may be; see :class:`MockLLMBackend`.
MockReply: TypeAlias = (
    str
    | ToolCall
    | Sequence[ToolCall]
    | Mapping[str, Any]
    | LLMResponse
    | BaseException
    | Callable[[LLMRequest], Any]
)

_CHARS_PER_TOKEN = 4
_FORMS = (
    'a str (JSON-text protocol or plain text), a ToolCall, a list of ToolCalls, a dict {"tool": '
    '..., "args": ...}, an LLMResponse, an exception instance, or a callable taking the '
    "LLMRequest and returning one of these"
)


class _ScriptedBackend:
    """The state and reply logic shared by the sync and async mock backends."""

    def __init__(
        self, responses: Iterable[MockReply] = (), *, cycle: bool = False, provider: str = "mock"
    ) -> None:
        self.responses: list[MockReply] = list(responses)
        if cycle and not self.responses:
            raise ConfigurationError(
                f"{type(self).__name__}(cycle=True) needs at least one response to repeat"
            )
        self.cycle = cycle
        self.provider = provider
        self.calls: list[LLMRequest] = []
        self._lock = threading.Lock()

    @property
    def last_request(self) -> LLMRequest | None:
        """The last request received, or ``None`` before the first."""
        return self.calls[-1] if self.calls else None

    @property
    def last_prompt(self) -> str:
        """The text of the last ``user`` or ``tool`` message of the last request."""
        request = self.last_request
        if request is None:
            return ""
        for message in reversed(request.messages):
            if message.role in ("user", "tool"):
                return message.content
        return ""

    @property
    def last_system_prompt(self) -> str:
        """The system prompt of the last request."""
        request = self.last_request
        return request.system_prompt if request is not None else ""

    def reset(self) -> None:
        """Forget the recorded requests and start the script over."""
        with self._lock:
            self.calls.clear()

    def _next_reply(self, request: LLMRequest) -> tuple[LLMResponse, str]:
        """Record ``request``; the next reply and its raw text form (for ``generate``)."""
        with self._lock:
            self.calls.append(request)
            turn = len(self.calls) - 1
            if turn >= len(self.responses) and not self.cycle:
                raise ScriptExhaustedError(self.provider, len(self.responses))
            item: Any = self.responses[turn % len(self.responses)]
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item
        if callable(item) and not isinstance(item, BaseException | LLMResponse | ToolCall):
            item = item(request)
        if isinstance(item, BaseException):
            raise item
        return self._to_response(item, turn, request)

    def _to_response(self, item: Any, turn: int, request: LLMRequest) -> tuple[LLMResponse, str]:
        if isinstance(item, LLMResponse):
            return item, format_text_reply(item.text, item.tool_calls)
        raw: str | None = None
        if isinstance(item, str):
            raw = item
            text, calls = parse_text_reply(item, id_prefix=f"call_{turn}_")
        elif isinstance(item, ToolCall):
            text, calls = "", (item,)
        elif isinstance(item, Mapping) and ("tool" in item or "tools" in item):
            text, calls = "", _calls_from_object(item, id_prefix=f"call_{turn}_")
        elif isinstance(item, Sequence) and item and all(isinstance(c, ToolCall) for c in item):
            text, calls = "", tuple(item)
        else:
            raise ConfigurationError(
                f"{type(self).__name__}: reply {turn} of the script is {type(item).__name__} "
                f"{item!r}; expected {_FORMS}"
            )
        calls = tuple(
            c if c.call_id else dataclasses.replace(c, call_id=f"call_{turn}_{i}")
            for i, c in enumerate(calls)
        )
        if raw is None:
            raw = format_text_reply(text, calls)
        usage = Usage(_estimate(_request_chars(request.messages)), _estimate(len(raw)))
        response = LLMResponse(
            text=text,
            tool_calls=calls,
            usage=usage,
            finish_reason="tool_calls" if calls else "stop",
            model=self.provider,
        )
        return response, raw

    @staticmethod
    def _legacy_request(
        prompt: str, max_tokens: int, system_prompt: str, temperature: float
    ) -> LLMRequest:
        messages = [Message.system(system_prompt)] if system_prompt else []
        messages.append(Message.user(prompt))
        return LLMRequest(messages=messages, max_tokens=max_tokens, temperature=temperature)


@final
class MockLLMBackend(_ScriptedBackend):
    """A scripted synchronous backend: each ``complete`` returns the next scripted reply.

    A script item may be:

    * a ``str``: read with :func:`~looplet.parse.parse_text_reply`, so an original-looplet
      reply like ``'{"tool": "greet", "args": {"name": "Alice"}}'`` is a tool call and any
      other text is a plain-text reply;
    * a :class:`~looplet.types.ToolCall`, or a list of them (one turn calling several tools);
    * a dict ``{"tool": ..., "args": ...}`` (or a ``{"tools": [...]}`` batch);
    * an :class:`~looplet.backends.base.LLMResponse`, returned as is;
    * an exception instance, raised (e.g. ``LLMError("mock", "boom", status=500)``);
    * a callable taking the :class:`~looplet.backends.base.LLMRequest` and returning one of
      the above.

    Empty call ids are filled in as ``call_<turn>_<i>`` (both 0-based). Usage is a
    deterministic estimate: a token per four characters of the request's messages (input)
    and of the reply's text form (output).

    Args:
        responses: the script, one item per model call.
        cycle: start the script over when it runs out, instead of raising
            :class:`~looplet.errors.ScriptExhaustedError`.
        provider: the name on errors and ``LLMResponse.model``.

    Example::

        llm = MockLLMBackend(['{"tool": "greet", "args": {"name": "Alice"}}', "All done."])
        reply = llm.complete(LLMRequest(messages=[Message.user("Greet Alice")]))
    """

    def complete(self, request: LLMRequest) -> LLMResponse:
        """The next scripted reply to ``request``.

        Raises:
            ScriptExhaustedError: the script is used up and ``cycle`` is false.
        """
        return self._next_reply(request)[0]

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 2000,
        system_prompt: str = "",
        temperature: float = 0.2,
    ) -> str:
        """The next reply as raw text: the original looplet backend call.

        A scripted ``str`` is returned verbatim; other items are written in the JSON-text
        protocol (see :func:`~looplet.parse.format_text_reply`).
        """
        request = self._legacy_request(prompt, max_tokens, system_prompt, temperature)
        return self._next_reply(request)[1]


@final
class AsyncMockLLMBackend(_ScriptedBackend):
    """The async twin of :class:`MockLLMBackend`: ``await acomplete(request)``.

    Same script items, ids, usage, recording and exhaustion behaviour; each call yields to
    the event loop once, so concurrent runs interleave as with a real backend.
    """

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """The next scripted reply to ``request``.

        Raises:
            ScriptExhaustedError: the script is used up and ``cycle`` is false.
        """
        await asyncio.sleep(0)
        return self._next_reply(request)[0]

    async def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 2000,
        system_prompt: str = "",
        temperature: float = 0.2,
    ) -> str:
        """The next reply as raw text (the original looplet async backend call)."""
        await asyncio.sleep(0)
        request = self._legacy_request(prompt, max_tokens, system_prompt, temperature)
        return self._next_reply(request)[1]


def _request_chars(messages: Sequence[Message]) -> int:
    total = 0
    for message in messages:
        total += len(message.content)
        for c in message.tool_calls:
            total += len(c.tool) + len(json.dumps(c.args, default=str))
    return total


def _estimate(chars: int) -> int:
    return math.ceil(chars / _CHARS_PER_TOKEN)
