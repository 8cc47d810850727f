"""Assembling a streamed Anthropic reply: events in, one :class:`LLMResponse` out.

:class:`AnthropicStreamAssembler` is fed the SDK's raw stream events (``message_start``,
``content_block_start``/``_delta``/``_stop``, ``message_delta``, ``message_stop``) one at a
time. It hands each piece of text and of tool input JSON to the callbacks as it arrives and
at the end builds the same :class:`~looplet.backends.base.LLMResponse` that
:func:`~looplet.backends._anthropic_convert.from_anthropic_message` builds from the whole
reply. No I/O: the sync and async backends in :mod:`looplet.backends.anthropic` share all of
it and differ only in how they read the events; opening the stream and retrying are theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from looplet.backends._anthropic_convert import (
    reasoning_of_turn,
    to_llm_error,
    tool_call_from_anthropic,
    usage_from_anthropic,
)
from looplet.backends._streaming import ChunkDelivery, TokenCallback, interrupted_error
from looplet.backends.base import ChunkCallback, LLMResponse, StreamChunk
from looplet.errors import LLMError
from looplet.types import Usage

__all__ = ["AnthropicStreamAssembler"]


@dataclass(slots=True)
class _Block:
    """One content block of the reply, as its pieces arrive."""

    kind: str
    parts: list[str] = field(default_factory=list)  # text, or the input's JSON text
    call_index: int = -1  # for tool_use: the call's position among the reply's calls
    call_id: str = ""
    name: str = ""
    start_input: object = None  # for tool_use: the input sent with content_block_start


class AnthropicStreamAssembler(ChunkDelivery):
    """Builds one :class:`LLMResponse` from the events of a streamed Messages reply.

    Text blocks are joined in order; each ``tool_use`` block becomes a call whose input is
    its ``input_json_delta`` pieces joined and decoded (or, with no pieces, the ``input`` it
    started with). Usage and the model come from ``message_start``, the stop reason and the
    final output tokens from ``message_delta``. A thinking block's ``thinking_delta`` pieces
    are kept for the calls' ``reasoning`` (as in the non-streaming path) but not handed to
    the callbacks. Events and blocks of other kinds (``ping``, redacted thinking) are skipped.

    Example::

        assembler = AnthropicStreamAssembler(on_token=print)
        for event in client.messages.create(**kwargs, stream=True):
            assembler.feed(event)
        reply = assembler.response()

    Args:
        on_chunk: called with a :class:`StreamChunk` for each piece of text or of a call:
            first ``tool_index``, ``tool_name`` and ``call_id``, then ``arguments`` pieces.
        on_token: called with the text of each text piece.
        provider: the name shown in errors.
    """

    def __init__(
        self,
        *,
        on_chunk: ChunkCallback | None = None,
        on_token: TokenCallback | None = None,
        provider: str = "anthropic",
    ) -> None:
        super().__init__(on_chunk, on_token)
        self.provider = provider
        #: Whether ``message_stop`` arrived: without it the reply may be cut short.
        self.complete = False
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._usage = Usage()
        self._stop_reason = ""
        self._model = ""

    def feed(self, event: Any) -> None:
        """Take in the next event and pass its pieces to the callbacks.

        Raises:
            Exception: whatever a callback raises, unchanged.
        """
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            self._delta(event.index, event.delta)
        elif kind == "content_block_start":
            self._start(event.index, event.content_block)
        elif kind == "message_start":
            message = event.message
            self._model = _str(getattr(message, "model", ""))
            self._usage = usage_from_anthropic(getattr(message, "usage", None))
        elif kind == "message_delta":
            self._stop_reason = _str(getattr(event.delta, "stop_reason", "")) or self._stop_reason
            self._update_usage(getattr(event, "usage", None))
        elif kind == "message_stop":
            self.complete = True

    def response(self) -> LLMResponse:
        """The reply assembled from the events fed so far."""
        blocks = [self._blocks[i] for i in sorted(self._blocks)]
        text = "".join("".join(b.parts) for b in blocks if b.kind == "text")
        thinking = ["".join(b.parts) for b in blocks if b.kind == "thinking"]
        reasoning = reasoning_of_turn(thinking, text)
        calls = tuple(
            tool_call_from_anthropic(
                b.name,
                "".join(b.parts) if b.parts else b.start_input,
                b.call_id,
                reasoning=reasoning,
            )
            for b in blocks
            if b.kind == "tool_use"
        )
        return LLMResponse(
            text=text,
            tool_calls=calls,
            usage=self._usage,
            finish_reason=self._stop_reason,
            model=self._model,
        )

    def failure(self, exc: Exception | None, attempts: int) -> LLMError:
        """The error for a stream that broke (``exc``) or ended before ``message_stop``
        (``None``).

        Before any piece reached a callback it is the plain error (retriable or not, as for
        an unstreamed call). After, it is ``kind="stream_interrupted"`` and not retriable,
        since a retry would hand the callbacks those pieces again.

        Args:
            exc: what the SDK (or the HTTP library under it) raised while the stream was read.
            attempts: how many requests were sent.
        """
        if exc is not None:
            error = to_llm_error(exc, attempts, provider=self.provider)
        else:
            error = LLMError(
                self.provider,
                "the stream ended before its message_stop event; the reply may be cut short",
                retriable=True,
                attempts=attempts,
                kind="connection_error",
            )
        if not self.delivered:
            return error
        return interrupted_error(
            self.provider,
            error.provider_message,
            self.delivered,
            attempts=attempts,
            status=error.status,
        )

    def _start(self, index: int, content: Any) -> None:
        kind = _str(getattr(content, "type", ""))
        block = self._blocks[index] = _Block(kind)
        if kind == "text":
            self._add_text(block, _str(getattr(content, "text", "")))
        elif kind == "thinking":
            self._add_thinking(block, _str(getattr(content, "thinking", "")))
        elif kind == "tool_use":
            block.call_index = self._calls
            self._calls += 1
            block.call_id = _str(getattr(content, "id", ""))
            block.name = _str(getattr(content, "name", ""))
            block.start_input = getattr(content, "input", None)
            chunk = StreamChunk(
                tool_index=block.call_index, tool_name=block.name, call_id=block.call_id
            )
            self._deliver(chunk)

    def _delta(self, index: int, delta: Any) -> None:
        block = self._blocks.get(index)
        if block is None:
            return  # a delta for a block that never started: nothing to attach it to
        kind = getattr(delta, "type", None)
        if kind == "text_delta" and block.kind == "text":
            self._add_text(block, _str(getattr(delta, "text", "")))
        elif kind == "thinking_delta" and block.kind == "thinking":
            self._add_thinking(block, _str(getattr(delta, "thinking", "")))
        elif kind == "input_json_delta" and block.kind == "tool_use":
            piece = _str(getattr(delta, "partial_json", ""))
            if piece:
                block.parts.append(piece)
                self._deliver(StreamChunk(tool_index=block.call_index, arguments=piece))

    def _add_text(self, block: _Block, text: str) -> None:
        if text:
            block.parts.append(text)
            self._deliver(StreamChunk(text=text))

    @staticmethod
    def _add_thinking(block: _Block, text: str) -> None:
        # Thinking is not reply text, so no callback sees it.
        if text:
            block.parts.append(text)

    def _update_usage(self, usage: Any) -> None:
        # message_delta counts are cumulative; the input and cache counts are there only in
        # newer API versions, so each one replaces message_start's only when present.
        if usage is None:
            return
        now = self._usage
        read = _int_or(getattr(usage, "cache_read_input_tokens", None), now.cache_read_tokens)
        written = _int_or(
            getattr(usage, "cache_creation_input_tokens", None), now.cache_write_tokens
        )
        fresh = _int_or(getattr(usage, "input_tokens", None), now.uncached_input_tokens)
        output = _int_or(getattr(usage, "output_tokens", None), now.output_tokens)
        self._usage = Usage(fresh + read + written, output, read, written)


def _int_or(value: object, default: int) -> int:
    return value if isinstance(value, int) else default


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
