"""Scripted in-process backends for unit tests of the loop: no network, no SDK.

:class:`MockLLMBackend` (``complete``) and :class:`AsyncMockLLMBackend` (``acomplete``) answer
each request with the next item of a script and record what they were asked. Both share one
implementation, :class:`_ScriptedBackend`; they differ only in being sync or async. For
provider code, test against real HTTP with :class:`~looplet.testing.ScriptedModelServer`
instead.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, final

from looplet.backends.base import LLMRequest, LLMResponse
from looplet.errors import ConfigurationError, ScriptExhaustedError
from looplet.messages import Message
from looplet.parse import _calls_from_object, format_text_reply, parse_text_reply
from looplet.testing._mock_usage import (
    FILLED_CALL_CHARS,
    REASONING_CHARS,
    PromptChars,
    json_chars,
    reply_chars,
    string_chars,
)
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
        #: Every request received, in order (``calls`` is how many).
        self.requests: list[LLMRequest] = []
        self._lock = threading.Lock()
        self._prompt_chars = PromptChars()

    @property
    def calls(self) -> int:
        """How many times the model was called (the original looplet's counter); the
        requests themselves are on :attr:`requests`."""
        return len(self.requests)

    @property
    def last_request(self) -> LLMRequest | None:
        """The last request received, or ``None`` before the first."""
        return self.requests[-1] if self.requests else None

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
            self.requests.clear()
            self._prompt_chars.clear()

    def _next_reply(self, request: LLMRequest) -> tuple[LLMResponse, str | None]:
        """Record ``request``; the next reply, and the raw text of a ``str`` item (for
        ``generate``; ``None`` for other items, which :meth:`_raw` writes when asked)."""
        lock = self._lock  # the one lock of a turn: it pairs each request with its turn
        lock.acquire()  # not `with`, which costs twice as much (this runs every turn)
        try:
            requests = self.requests
            turn = len(requests)
            requests.append(request)
            responses = self.responses
            if turn < len(responses):
                item: Any = responses[turn]
            elif self.cycle:
                item = responses[turn % len(responses)]
            else:
                raise ScriptExhaustedError(self.provider, len(responses))
        finally:
            lock.release()
        text: str = ""
        calls: tuple[ToolCall, ...]
        raw: str | None = None
        if type(item) is ToolCall and not item.call_id and item.parse_error is None:
            # The usual item, inline as it runs every turn: _with_call_id, and the output
            # estimate as reply_chars counts it ({"tool", "args", "call_id"[, "reasoning"]}).
            call_id = f"call_{turn}_0"
            tool, args, reasoning = item.tool, item.args, item.reasoning
            calls = (ToolCall(tool, args, reasoning, call_id, item.raw_arguments, None),)
            output = FILLED_CALL_CHARS + len(call_id) + string_chars(tool) + json_chars(args)
            if reasoning:
                output += REASONING_CHARS + string_chars(reasoning)
        else:
            if isinstance(item, type) and issubclass(item, BaseException):
                raise item
            if callable(item) and not isinstance(item, BaseException | LLMResponse | ToolCall):
                item = item(request)
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, LLMResponse):
                return item, None
            text, calls, raw = self._read_item(item, turn)
            # The text form is written only for ``generate``; the estimate needs its length.
            output = len(raw) if raw is not None else reply_chars(text, calls)
        # A token per four characters, rounded up: math.ceil(chars / 4), in integers.
        prompt = self._prompt_chars(request.messages)
        usage = Usage(-(-prompt // _CHARS_PER_TOKEN), -(-output // _CHARS_PER_TOKEN))
        return LLMResponse(
            text, calls, usage, "tool_calls" if calls else "stop", self.provider
        ), raw

    def _read_item(self, item: Any, turn: int) -> tuple[str, tuple[ToolCall, ...], str | None]:
        """A script item's text, calls (ids filled in) and raw text (a ``str`` item's own)."""
        raw: str | None = None
        calls: tuple[ToolCall, ...]
        if isinstance(item, ToolCall):
            text, calls = "", (item,)
        elif isinstance(item, str):
            raw = item
            text, calls = parse_text_reply(item, id_prefix=f"call_{turn}_")
        elif isinstance(item, Mapping) and ("tool" in item or "tools" in item):
            text, calls = "", _calls_from_object(item, id_prefix=f"call_{turn}_")
        elif isinstance(item, Sequence) and item and all(isinstance(c, ToolCall) for c in item):
            text, calls = "", tuple(item)
        else:
            raise ConfigurationError(
                f"{type(self).__name__}: reply {turn} of the script is {type(item).__name__} "
                f"{item!r}; expected {_FORMS}"
            )
        return text, _with_call_ids(calls, turn), raw

    @staticmethod
    def _raw(reply: tuple[LLMResponse, str | None]) -> str:
        """The raw text of a reply of :meth:`_next_reply`."""
        response, raw = reply
        return raw if raw is not None else format_text_reply(response.text, response.tool_calls)

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

    Attributes:
        requests: every :class:`~looplet.backends.base.LLMRequest` received, in order.
        calls: how many times the model was called (``len(requests)``), as in the original.
        last_prompt, last_system_prompt: the last request's user text and system prompt.

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
        return self._raw(self._next_reply(request))


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
        await _yield_once()  # as a real backend's network wait would
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
        await _yield_once()
        request = self._legacy_request(prompt, max_tokens, system_prompt, temperature)
        return self._raw(self._next_reply(request))


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    """Hand the event loop one turn: ``await asyncio.sleep(0)`` is this very ``yield``, behind
    a coroutine of its own (and this needs no ``asyncio`` at import)."""
    yield


def _with_call_ids(calls: tuple[ToolCall, ...], turn: int) -> tuple[ToolCall, ...]:
    """``calls`` with each empty call id filled in as ``call_<turn>_<i>``."""
    if len(calls) == 1:  # the usual turn, without building a generator
        call = calls[0]
        return calls if call.call_id else (_with_call_id(call, f"call_{turn}_0"),)
    return tuple(
        c if c.call_id else _with_call_id(c, f"call_{turn}_{i}") for i, c in enumerate(calls)
    )


def _with_call_id(call: ToolCall, call_id: str) -> ToolCall:
    # dataclasses.replace(call, call_id=call_id), at a sixth of its cost (_next_reply has its
    # own copy); tests/test_mock_backend.py checks that every field is carried over.
    return ToolCall(
        call.tool, call.args, call.reasoning, call_id, call.raw_arguments, call.parse_error
    )
