"""The usage estimate of the scripted backends (:mod:`looplet.testing.mock`), O(1) a turn.

A reply's usage is a token per four characters: of the request's messages (input: each
message's text, and each tool call's name and ``json.dumps(args, default=str)``) and of the
reply's text form, ``format_text_reply`` (output). Both are counted without re-reading the
conversation or writing the text: :class:`PromptChars` adds only the messages a request has
that the last one of its run had not, and :func:`reply_chars` adds up the lengths of the
JSON parts the reply's text form would have. The numbers are those of counting the whole
request and writing the text (tests/test_mock_backend.py checks them turn by turn).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

from looplet.messages import ConversationView, Message, _json_encoder
from looplet.parse import _ENCODE
from looplet.types import ToolCall

__all__ = [
    "FILLED_CALL_CHARS",
    "REASONING_CHARS",
    "PromptChars",
    "json_chars",
    "messages_chars",
    "reply_chars",
    "string_chars",
]

# json.dumps(args, default=str), without building an encoder per call.
_args_json = _json_encoder(ensure_ascii=True, default=str)


class PromptChars:
    """The characters of a request's messages, each message of a run counted once.

    The loop sends each request a :class:`~looplet.messages.ConversationView` of its run's
    conversation, a list that only grows (compaction swaps in a new list). So the count of
    each list's first messages is kept, and a request adds only the messages since the last
    one: O(1) per turn, where counting the whole conversation again made a long run
    quadratic. Any other sequence of messages is counted whole.

    Needs no lock: a count is worked out from one read of its list's entry, and an entry (a
    tuple) is replaced whole, so concurrent calls can at worst make a later call count again.
    """

    __slots__ = ("_lists",)

    def __init__(self) -> None:
        # id(list) -> (the list itself, which keeps the id taken; messages counted; chars)
        self._lists: dict[int, tuple[list[Message], int, int]] = {}

    def __call__(self, messages: Sequence[Message]) -> int:
        """The characters of ``messages``."""
        if type(messages) is not ConversationView:
            return messages_chars(messages)
        # looplet's own view: read its list, prefix length and extra messages directly.
        items, end, extra = messages._items, messages._end, messages._extra
        known = self._lists.get(id(items))
        if known is not None and known[1] <= end:
            counted, chars = known[1], known[2]
        else:  # a new list, or an older request's shorter view: count from the start
            counted, chars = 0, 0
        if counted < end:
            for message in items[counted:end]:  # messages_chars, inline (it runs every turn)
                chars += len(message.content)
                if message.tool_calls:
                    for c in message.tool_calls:
                        chars += len(c.tool) + json_chars(
                            c.args, encode_basestring_ascii, _args_json
                        )
            if known is None or known[1] < end:
                self._lists[id(items)] = (items, end, chars)
        return chars + messages_chars(extra) if extra else chars

    def clear(self) -> None:
        """Forget every count."""
        self._lists.clear()


def messages_chars(messages: Iterable[Message]) -> int:
    """The input estimate's characters of ``messages``, counted whole."""
    chars = 0
    for message in messages:
        chars += len(message.content)
        if message.tool_calls:
            for c in message.tool_calls:
                chars += len(c.tool) + json_chars(c.args, encode_basestring_ascii, _args_json)
    return chars


def json_chars(
    value: Any,
    encode_string: Callable[[str], str] = encode_basestring,
    encode: Callable[[Any], str] = _ENCODE,
) -> int:
    """``len(encode(value))``; for a flat dict of strings, ints, booleans and ``None`` (the
    usual tool arguments), added up from its parts at about 60% of the cost of encoding it.

    ``encode_string`` is the string encoding ``encode`` uses for keys and values (ASCII-only
    or not), and ``encode``'s separators are ``", "`` and ``": "``. By default, the JSON of
    ``format_text_reply`` (not ASCII-only).
    """
    if type(value) is not dict:
        return len(encode(value))
    chars = 4 * len(value) or 2  # {} and, per item, ": " and ", " (one fewer ", ")
    for key, item in value.items():
        if type(key) is not str:
            return len(encode(value))
        kind = type(item)
        if kind is str:
            chars += len(encode_string(key)) + len(encode_string(item))
        elif kind is int:  # written as int.__repr__ writes it, as the encoder does
            chars += len(encode_string(key)) + len(int.__repr__(item))
        elif item is None or item is True:  # null, true
            chars += len(encode_string(key)) + 4
        elif item is False:
            chars += len(encode_string(key)) + 5
        else:  # floats, nested values, other types: as the encoder writes them
            return len(encode(value))
    return chars


def reply_chars(text: str, calls: Sequence[ToolCall]) -> int:
    """``len(format_text_reply(text, calls))``, without writing the reply: the output
    estimate is its length, and only ``generate`` needs the text itself."""
    if not calls:
        return len(text)
    if len(calls) == 1:  # the call's object, with "reasoning" last
        return _object_chars(calls[0], text or calls[0].reasoning)
    # {"tools": [call, call], "theory": note}
    chars = _BATCH_CHARS + _SEPARATOR_CHARS * (len(calls) - 1)
    for call in calls:
        chars += _object_chars(call, "")
    note = text or calls[0].reasoning
    return chars + _THEORY_CHARS + string_chars(note) if note else chars


def _object_chars(call: ToolCall, reasoning: str) -> int:
    """The length of format_text_reply's ``{"tool": T, "args": A, "call_id": C, "reasoning":
    R}`` for ``call`` (no ``call_id`` when it has none, no ``reasoning`` when empty)."""
    tool, args, call_id = call.tool, call.args, call.call_id
    if call.parse_error is not None and call.raw_arguments is not None:
        args = call.raw_arguments  # type: ignore[assignment]  # its arguments as received
    chars = (
        _CALL_CHARS
        + len(encode_basestring(tool) if type(tool) is str else _ENCODE(tool))
        + json_chars(args, encode_basestring, _ENCODE)
    )
    if call_id:
        chars += _CALL_ID_CHARS + string_chars(call_id)
    return chars + REASONING_CHARS + string_chars(reasoning) if reasoning else chars


def string_chars(value: Any) -> int:
    """The length of ``value``'s JSON as ``format_text_reply`` writes it (not ASCII-only)."""
    return len(encode_basestring(value) if type(value) is str else _ENCODE(value))


# The fixed parts of format_text_reply's JSON (its separators are ", " and ": ").
_CALL_CHARS = len('{"tool": ') + len(', "args": ') + len("}")
_CALL_ID_CHARS = len(', "call_id": ')
#: ... of a call whose id the mock filled in (``call_<turn>_<i>``: nothing in it is escaped)
FILLED_CALL_CHARS = _CALL_CHARS + _CALL_ID_CHARS + len('""')
#: The ``, "reasoning": `` before a call's reasoning.
REASONING_CHARS = len(', "reasoning": ')
_BATCH_CHARS = len('{"tools": [') + len("]}")
_SEPARATOR_CHARS = len(", ")
_THEORY_CHARS = len(', "theory": ')
