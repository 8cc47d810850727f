"""The conversation the model sees, in a provider-neutral form.

A run's conversation is a list of :class:`Message`: the system prompt, the task as the first
user message, then for every turn the assistant's reply (text and tool calls) followed by one
``tool`` message per tool call holding the result. Backends translate this list into their
provider's request format (OpenAI tool messages, Anthropic ``tool_result`` blocks); nothing
here knows about a provider.
"""

from __future__ import annotations

import _thread
import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, overload

from looplet._value_type import value_type
from looplet.types import ToolCall, ToolResult, _jsonable

__all__ = [
    "ConversationView",
    "InsertedView",
    "Message",
    "Role",
    "render_task",
    "render_tool_result",
]

Role = Literal["system", "user", "assistant", "tool"]

#: How much of a tool's output is sent back to the model by default (characters).
DEFAULT_MAX_RESULT_CHARS = 20_000


def _json_encoder(
    ensure_ascii: bool = False, default: Callable[[Any], Any] | None = None
) -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=..., default=...).encode``, with the same output, faster.

    Every tool result is encoded, and ``encode`` builds a new C encoder on every call, which
    is most of its cost for the small results tools usually return (bench/step_overhead.py:
    ~1.1 µs against ~0.3 µs). Here the C encoder is built once, with the same arguments
    ``JSONEncoder.iterencode`` passes it, except that it keeps no circular-reference
    markers (they cannot be shared between calls); data that recurses too deep is handed
    to the full encoder, which reports a circular reference as ``ValueError`` as usual.
    Where the C encoder is missing or differs, the full encoder is used as is.
    """
    import json
    import json.encoder

    full = json.JSONEncoder(ensure_ascii=ensure_ascii, default=default)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator in this Python
        return full.encode
    sample = {"a": [1.5, None, "é", True]}
    encoder = json.encoder
    strings = encoder.encode_basestring_ascii if ensure_ascii else encoder.encode_basestring
    try:
        fast = make(None, full.default, strings, None, ": ", ", ", False, False, True)
        same = "".join(fast(sample, 0)) == full.encode(sample)
    except Exception:  # the accelerator takes other arguments in this Python
        same = False
    if not same:
        return full.encode
    join = "".join

    def encode(data: Any) -> str:
        try:
            return join(fast(data, 0))
        except RecursionError:  # maybe a circular reference: let the full encoder say so
            return full.encode(data)

    return encode


_EncoderOptions = tuple[bool, Callable[[Any], Any] | None]
_SHARED_ENCODERS: dict[_EncoderOptions, Callable[[Any], str]] = {}
_SHARED_ENCODERS_LOCK = _thread.allocate_lock()
_PLAIN_JSON: _EncoderOptions = (False, None)  # json.dumps(..., ensure_ascii=False)


def _shared_encoder(
    ensure_ascii: bool = False, default: Callable[[Any], Any] | None = None
) -> Callable[[Any], str]:
    """The :func:`_json_encoder` for these options, built once and shared by every caller.

    Built on first use, so that ``import looplet`` does not load ``json``; under a lock, so
    that threads asking at the same time get one encoder. It is kept for the process (a
    ``default`` function is a key: pass a module-level one, not a new lambda per call).
    """
    try:
        return _SHARED_ENCODERS[ensure_ascii, default]
    except KeyError:
        pass
    with _SHARED_ENCODERS_LOCK:
        encoder = _SHARED_ENCODERS.get((ensure_ascii, default))
        if encoder is None:
            encoder = _json_encoder(ensure_ascii, default)
            _SHARED_ENCODERS[ensure_ascii, default] = encoder
        return encoder


@value_type
class Message:
    """One message of the conversation.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: the text (for ``tool``: the rendered result the model reads).
        tool_calls: for ``assistant``: the calls the model made in this turn.
        tool_call_id: for ``tool``: the id of the call this message answers.
        name: for ``tool``: the tool's name.
        is_error: for ``tool``: whether the result is a failure.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""
    is_error: bool = False

    @classmethod
    def system(cls, text: str) -> Message:
        """A system message."""
        return cls("system", text)

    @classmethod
    def user(cls, text: str) -> Message:
        """A user message."""
        return cls("user", text)

    # The factories below are how the loop builds its messages (one per model turn and one
    # per tool result). They pass the fields positionally, in field order: a class called
    # with keywords costs about 0.25 µs more (tests/test_value_types.py checks each field).

    @classmethod
    def assistant(cls, text: str = "", tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        """An assistant turn: text, tool calls, or both."""
        return cls("assistant", text, tool_calls)

    @classmethod
    def tool_result(cls, result: ToolResult, content: str) -> Message:
        """The message that hands ``result`` (rendered as ``content``) back to the model: its
        call's id, its tool's name, and whether it is an error come from ``result``."""
        return cls("tool", content, (), result.call_id, result.tool, result.error is not None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, leaving out empty fields."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        if self.is_error:
            out["is_error"] = True
        return out


class ConversationView(Sequence[Message]):
    """A read-only view of the first ``end`` messages of an append-only list, plus extras.

    The loop hands each model request a view instead of a copy: the run's conversation only
    ever grows (compaction swaps in a new list), so a prefix view stays exact, and building a
    request costs O(1) however long the run is.
    """

    __slots__ = ("_end", "_extra", "_items")

    def __init__(
        self, items: list[Message], end: int | None = None, extra: tuple[Message, ...] = ()
    ) -> None:
        self._items = items
        self._end = len(items) if end is None else end
        self._extra = extra

    def __len__(self) -> int:
        return self._end + len(self._extra)

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        if isinstance(index, slice):
            return list(self)[index]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("conversation index out of range")
        return self._at_index(index)

    def _at_index(self, index: int) -> Message:
        """The message at ``index``, known to be in range (what a subclass shows differently)."""
        if index < self._end:
            return self._items[index]
        return self._extra[index - self._end]

    def __iter__(self) -> Iterator[Message]:
        return itertools.chain(itertools.islice(self._items, self._end), self._extra)

    def __repr__(self) -> str:
        return f"ConversationView({len(self)} messages)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def added(self) -> tuple[Message, ...]:
        """The messages this view shows that are not in its list (they are sent, not kept)."""
        return self._extra

    def rebased(self, items: list[Message]) -> ConversationView:
        """The same view over all of ``items`` (a compacted conversation), with the same
        added messages in the same places."""
        return ConversationView(items, None, self._extra)


class InsertedView(ConversationView):
    """A :class:`ConversationView` that also shows ``inserted`` messages right after the
    list's first ``at`` messages: the run's memory (:mod:`looplet.memory`), placed after the
    system prompt of every request and never stored in the conversation.

    A subclass, so that a request without inserted messages (every run without memory
    sources) pays nothing for them.
    """

    __slots__ = ("_at", "_inserted")

    def __init__(
        self,
        items: list[Message],
        end: int | None,
        extra: tuple[Message, ...],
        inserted: tuple[Message, ...],
        at: int,
    ) -> None:
        super().__init__(items, end, extra)
        self._inserted = inserted
        self._at = min(at, self._end)

    def __len__(self) -> int:
        return self._end + len(self._inserted) + len(self._extra)

    def _at_index(self, index: int) -> Message:
        at, shown = self._at, len(self._inserted)
        if index < at:
            return self._items[index]
        if index < at + shown:
            return self._inserted[index - at]
        return super()._at_index(index - shown)

    def __iter__(self) -> Iterator[Message]:
        items, at = self._items, self._at
        return itertools.chain(
            itertools.islice(items, at),
            self._inserted,
            itertools.islice(items, at, self._end),
            self._extra,
        )

    @property
    def added(self) -> tuple[Message, ...]:
        """The inserted messages, then the extra ones: sent, not kept."""
        return self._inserted + self._extra

    def rebased(self, items: list[Message]) -> ConversationView:
        """The same view over all of ``items``, the inserted messages after its first ``at``."""
        return InsertedView(items, None, self._extra, self._inserted, self._at)


def render_task(task: Any) -> str:
    """The task as the text of the first user message.

    A string is used as is; a mapping becomes ``key: value`` lines (non-string values as
    JSON); a dataclass is treated as its fields; anything else is ``str(task)``.
    """
    if isinstance(task, str):
        return task
    if type(task) is not dict and dataclasses.is_dataclass(task) and not isinstance(task, type):
        task = dataclasses.asdict(task)
    if type(task) is dict or isinstance(task, Mapping):  # a dict skips the ABC check
        lines = []
        for key, value in task.items():
            text = value if isinstance(value, str) else _shared_encoder()(_jsonable(value))
            lines.append(f"{key}: {text}")
        return "\n".join(lines)
    return str(task)


def render_tool_result(result: ToolResult, max_chars: int = DEFAULT_MAX_RESULT_CHARS) -> str:
    """The text the model reads for ``result``: the data as JSON, or the error and its kind.

    Output longer than ``max_chars`` is cut, and the cut is stated so the model knows.
    """
    if result.error is not None:
        detail = result.error_detail
        if detail is not None:
            text = f"ERROR [{detail.kind.value}]: {detail.message}"
            if detail.retriable:
                text += " (retriable: the same call may succeed if repeated)"
        else:
            text = f"ERROR: {result.error}"
    elif isinstance(result.data, str):
        text = result.data
    elif result.data is None:
        text = "null"
    else:
        # The look-up _shared_encoder() makes, inline: this runs on every loop step.
        encode = _SHARED_ENCODERS.get(_PLAIN_JSON) or _shared_encoder()
        try:
            text = encode(result.data)
        except (TypeError, ValueError, RecursionError):  # not JSON, circular, too deep
            text = encode(_jsonable(result.data))
    if len(text) > max_chars:
        cut = len(text) - max_chars
        text = text[:max_chars] + f"\n[... {cut} more characters cut by looplet]"
    return text
