"""Assembling a streamed Chat Completion: chunks in, one :class:`LLMResponse` out.

:class:`StreamAssembler` is fed the SDK's ``ChatCompletionChunk`` objects one at a time. It
hands each piece of text and of tool-call arguments to the callbacks as it arrives, and at the
end builds the same :class:`~looplet.backends.base.LLMResponse` that
:func:`~looplet.backends._openai_convert.from_openai_completion` builds from a whole reply. It
performs no I/O, so the sync and async backends in :mod:`looplet.backends.openai` share every
line of it and differ only in ``for`` against ``async for``; opening, closing and retrying the
stream are theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from looplet.backends._openai_convert import as_str, usage_from_openai
from looplet.backends._streaming import ChunkDelivery, TokenCallback, interrupted_error
from looplet.backends.base import ChunkCallback, LLMResponse, StreamChunk
from looplet.parse import tool_call_from_openai
from looplet.types import Usage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

__all__ = ["StreamAssembler"]


@dataclass(slots=True)
class _PartialCall:
    """A tool call whose fragments are still arriving."""

    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAssembler(ChunkDelivery):
    """Builds one :class:`LLMResponse` from the chunks of a streamed Chat Completion.

    Only the first choice (``index`` 0) is kept, as in the non-streaming path. Text pieces
    are joined; tool-call fragments are grouped by their ``index``, their arguments
    concatenated, and the id and name taken from the first fragment that carries them. The
    usage comes from the chunk that reports it (the last one, with
    ``stream_options={"include_usage": True}``).

    Example::

        assembler = StreamAssembler(on_token=print)
        for chunk in stream:
            assembler.feed(chunk)
        reply = assembler.response()

    Args:
        on_chunk: called with a :class:`StreamChunk` for every piece of text or tool call.
        on_token: called with the text of every text piece.
        provider: the name shown in errors.
    """

    def __init__(
        self,
        *,
        on_chunk: ChunkCallback | None = None,
        on_token: TokenCallback | None = None,
        provider: str = "openai",
    ) -> None:
        super().__init__(on_chunk, on_token)
        self.provider = provider
        self._text: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._usage = Usage()
        self._finish_reason = ""
        self._model = ""

    def feed(self, chunk: ChatCompletionChunk) -> None:
        """Take in the next chunk and pass its pieces to the callbacks.

        Raises:
            Exception: whatever a callback raises, unchanged.
        """
        if not self._model:
            self._model = as_str(chunk.model)
        if chunk.usage is not None:
            self._usage = usage_from_openai(chunk.usage)
        for choice in chunk.choices or ():
            if (choice.index or 0) != 0:
                continue
            delta = choice.delta
            if delta is not None:
                text = as_str(delta.content)
                if text:
                    self._text.append(text)
                    self._deliver(StreamChunk(text=text))
                for fragment in delta.tool_calls or ():
                    self._add_fragment(fragment)
            if choice.finish_reason:
                self._finish_reason = as_str(choice.finish_reason)

    def response(self, *, attempts: int = 1) -> LLMResponse:
        """The assembled reply, once the stream has ended.

        Tool-call arguments are decoded by :func:`looplet.parse.tool_call_from_openai`, so
        arguments that are not valid JSON give a call with ``parse_error`` set, and every call
        gets the reply's text as its ``reasoning``, as in the non-streaming path.

        Args:
            attempts: how many requests were sent, shown in the error.

        Raises:
            LLMError: of kind ``"stream_interrupted"`` when no chunk gave a ``finish_reason``:
                the stream ended early and the reply may be cut short.
        """
        if not self._finish_reason:
            raise interrupted_error(
                self.provider, "it ended without a finish_reason", self.delivered, attempts=attempts
            )
        text = "".join(self._text)
        calls = tuple(
            tool_call_from_openai(call.name, "".join(call.arguments), call.call_id, reasoning=text)
            for _, call in sorted(self._calls.items())
        )
        return LLMResponse(
            text=text,
            tool_calls=calls,
            usage=self._usage,
            finish_reason=self._finish_reason,
            model=self._model,
        )

    def _add_fragment(self, fragment: Any) -> None:
        index = self._index_of(fragment)
        call = self._calls.setdefault(index, _PartialCall())
        call_id = as_str(fragment.id)
        function = fragment.function
        name = as_str(function.name) if function is not None else ""
        arguments = as_str(function.arguments) if function is not None else ""
        # Some servers repeat the id and name on every fragment: only the first counts.
        call.call_id = call.call_id or call_id
        call.name = call.name or name
        call.arguments.append(arguments)
        if call_id or name or arguments:
            self._deliver(
                StreamChunk(tool_index=index, tool_name=name, call_id=call_id, arguments=arguments)
            )

    def _index_of(self, fragment: Any) -> int:
        index = fragment.index
        if isinstance(index, int):
            return index
        # Some OpenAI-compatible servers leave the index out: a fragment with an id then
        # opens a new call, one without continues the last.
        if fragment.id or not self._calls:
            return max(self._calls, default=-1) + 1
        return max(self._calls)
