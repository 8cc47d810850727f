"""The script of the loopback server: what each request is answered with.

A script is a list of items, served one per ``POST /v1/chat/completions`` (or Anthropic's
``POST /v1/messages``: one script drives either SDK) in order. Items are
built with :func:`text_reply`, :func:`tool_reply` (made of :func:`call`), :func:`error_reply`,
:func:`slow_reply` and :func:`cut_stream`; a plain ``str`` is shorthand for a text reply, a
``dict`` is the JSON form below, and a callable receives the :class:`RecordedRequest` and
returns an item. The server and its wire format live in :mod:`looplet.testing._server` and
:mod:`looplet.testing._wire`.

The JSON form (``--script FILE.json`` of the command line, or a ``dict`` item)::

    {"text": "Hello!"}
    {"tool_calls": [{"name": "greet", "arguments": {"name": "Alice"}}], "text": "optional"}
    {"tool_calls": [{"name": "greet", "arguments": "{\\"name\\": \\"Al", "id": "call_x"}]}
    {"error": {"status": 429, "message": "slow down", "type": "rate_limit_error",
               "retry_after": 1}}
    {"delay": 2.5, "then": {"text": "late"}}
    {"cut_after": 5, "then": {"text": "Hello there"}, "ending": "error"}

``text_reply``/``tool_calls`` items may also carry ``"usage": {"prompt_tokens": 12,
"completion_tokens": 3}``, with ``"cache_read_tokens"`` and ``"cache_write_tokens"`` (the
parts of ``prompt_tokens`` read from and written to the prompt cache) when a test needs them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from looplet.errors import ConfigurationError
from looplet.types import Usage

__all__ = [
    "RecordedRequest",
    "ScriptItem",
    "ScriptedCall",
    "ScriptedError",
    "ScriptedReply",
    "SlowReply",
    "StreamCut",
    "call",
    "cut_stream",
    "error_reply",
    "normalize_item",
    "script_from_json",
    "slow_reply",
    "text_reply",
    "tool_reply",
]


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the server received, as it arrived.

    Attributes:
        method: ``"POST"``, ``"GET"``...
        path: the request path with its query string (``/v1/chat/completions``).
        headers: the headers, keys in lower case (the last value wins when repeated).
        body: the body decoded as JSON, or ``None`` when it is empty or not JSON.
        raw: the body's bytes.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One tool call of a scripted reply; build it with :func:`call`.

    Attributes:
        name: the function name.
        arguments: the ``function.arguments`` string sent (JSON, or deliberately malformed).
        id: the call id, or ``None`` to let the server number it (``call_<reply>_<i>``).
    """

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    """A successful completion: text, tool calls, or both; see :func:`text_reply`."""

    text: str = ""
    tool_calls: tuple[ScriptedCall, ...] = ()
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class ScriptedError:
    """An error response (OpenAI- or Anthropic-style by endpoint); see :func:`error_reply`."""

    status: int
    message: str
    type: str = "server_error"
    code: str | None = None
    param: str | None = None
    retry_after: str | None = None


#: How a :func:`cut_stream` stream ends, after its first chunks.
STREAM_ENDINGS = ("cut", "error", "no_finish")


@dataclass(frozen=True, slots=True)
class StreamCut:
    """A streamed reply that breaks off after ``after`` chunks; see :func:`cut_stream`."""

    after: int
    then: ScriptedReply
    ending: str = "cut"


@dataclass(frozen=True, slots=True)
class SlowReply:
    """Wait ``seconds`` (less if the server stops), then answer with ``then``."""

    seconds: float
    then: ScriptedReply | ScriptedError | StreamCut


#: What a script item may be before it is normalised.
ScriptItem: TypeAlias = (
    ScriptedReply
    | ScriptedError
    | SlowReply
    | StreamCut
    | str
    | Mapping[str, Any]
    | Callable[[RecordedRequest], Any]
)
_Served: TypeAlias = ScriptedReply | ScriptedError | SlowReply | StreamCut
#: The normalised items that are not callables (a callable item is resolved per request).
SERVED_TYPES = (ScriptedReply, ScriptedError, SlowReply, StreamCut)
_UsageLike: TypeAlias = Usage | Mapping[str, int] | None

_FORMS = (
    "text_reply(...), tool_reply(call(...)), error_reply(...), slow_reply(...), "
    'cut_stream(...), a str, a dict in the JSON form ({"text": ...}, {"tool_calls": [...]}, '
    '{"error": {...}}, {"delay": s, "then": {...}}, {"cut_after": n, "then": {...}}), or a '
    "callable taking the RecordedRequest"
)


def call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
) -> ScriptedCall:
    """A tool call for :func:`tool_reply`.

    Args:
        name: the function name the "model" calls.
        arguments: a mapping (sent JSON-encoded) or a raw string sent exactly as given, so a
            test can script malformed arguments: ``call("greet", '{"name": "Al')``.
        id: the call id; by default the server numbers calls ``call_<reply>_<i>``.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"call() needs a non-empty function name, got {name!r}")
    if arguments is None:
        raw = "{}"
    elif isinstance(arguments, str):
        raw = arguments
    elif isinstance(arguments, Mapping):
        raw = json.dumps(dict(arguments), ensure_ascii=False)
    else:
        raise ConfigurationError(
            f"call({name!r}, ...): arguments must be a mapping or a raw JSON string, "
            f"got {type(arguments).__name__}: {arguments!r}"
        )
    return ScriptedCall(name, raw, id)


def text_reply(text: str, *, usage: _UsageLike = None) -> ScriptedReply:
    """A plain-text completion (``finish_reason`` ``"stop"``; Anthropic: ``"end_turn"``).

    Args:
        text: the assistant's content.
        usage: the token counts to report, as a :class:`~looplet.types.Usage` or
            ``{"prompt_tokens", "completion_tokens"}`` (optionally ``"cache_read_tokens"``
            and ``"cache_write_tokens"``); by default a deterministic estimate from the
            request and reply sizes (about four characters a token), with no cache figures.
            Cache figures go on the wire as each API reports them: OpenAI's
            ``usage.prompt_tokens_details.cached_tokens`` (reads; OpenAI reports no
            writes), Anthropic's ``cache_read_input_tokens`` and
            ``cache_creation_input_tokens`` (with ``input_tokens`` the rest of the prompt),
            streamed or not, so the SDKs and looplet's backends read back the same
            :class:`~looplet.types.Usage`.
    """
    return ScriptedReply(text=str(text), usage=_usage(usage))


def tool_reply(*calls: ScriptedCall, text: str = "", usage: _UsageLike = None) -> ScriptedReply:
    """A completion that calls tools (``finish_reason`` ``"tool_calls"``; Anthropic:
    ``tool_use`` blocks and ``stop_reason`` ``"tool_use"``).

    Example::

        tool_reply(call("greet", {"name": "Alice"}), call("done", {"answer": "hi"}))
        tool_reply(call("done", {}), usage=Usage(2000, 20, cache_read_tokens=1800))

    Args:
        calls: the tool calls, each made with :func:`call`.
        text: text sent with the calls.
        usage: the token counts to report, cache figures included; see :func:`text_reply`.
    """
    if not calls:
        raise ConfigurationError(
            'tool_reply() needs at least one call(...), e.g. tool_reply(call("done", {})); '
            "use text_reply() for a reply without tool calls"
        )
    for i, item in enumerate(calls):
        if not isinstance(item, ScriptedCall):
            raise ConfigurationError(
                f"tool_reply(): argument {i} must be made with call(name, arguments), "
                f"got {type(item).__name__}: {item!r}"
            )
    return ScriptedReply(text=text, tool_calls=tuple(calls), usage=_usage(usage))


def error_reply(
    status: int,
    message: str,
    *,
    type: str = "server_error",
    code: str | None = None,
    param: str | None = None,
    retry_after: float | str | None = None,
) -> ScriptedError:
    """An error response with an OpenAI-style body ``{"error": {"message", "type", ...}}``,
    or on ``/v1/messages`` Anthropic's ``{"type": "error", "error": {"type", "message"}}``.

    Args:
        status: the HTTP status, 400 to 599 (401, 429 and 500 map to the SDK's
            ``AuthenticationError``, ``RateLimitError`` and ``InternalServerError``).
        message: the ``error.message`` text.
        type: the ``error.type`` (``"rate_limit_error"``, ``"invalid_request_error"``...).
            On ``/v1/messages`` the default becomes Anthropic's type for ``status``
            (``"overloaded_error"`` for 529, ``"api_error"`` for other 5xx...).
        code: the ``error.code``, if any.
        param: the ``error.param``, if any.
        retry_after: sent as the ``Retry-After`` header when given (seconds).
    """
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ConfigurationError(
            f"error_reply() needs an HTTP error status 400-599, got {status!r}"
        )
    after = None if retry_after is None else _format_seconds(retry_after)
    return ScriptedError(status, str(message), type, code, param, after)


def slow_reply(seconds: float, then: ScriptItem) -> SlowReply:
    """Answer with ``then`` after ``seconds``, to test client time-outs.

    The wait ends early when the server stops, and the connection is then closed unanswered,
    so a test never waits for the full delay. ``then`` may be a reply, an error or a
    :func:`cut_stream`.
    """
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"slow_reply() needs a delay in seconds >= 0, got {seconds!r}")
    inner = normalize_item(then, "slow_reply(then=...)")
    if isinstance(inner, SlowReply) or callable(inner):
        raise ConfigurationError(
            "slow_reply(then=...) must be a reply, an error or a cut_stream, not another "
            "slow_reply or a callable; a callable item may itself return slow_reply(...)"
        )
    return SlowReply(float(seconds), inner)


def cut_stream(after: int, then: ScriptItem, *, ending: str = "cut") -> StreamCut:
    """A streamed reply that breaks off after its first ``after`` chunks, to test how a client
    copes with a stream that fails part-way.

    When the request streams, the server sends the first ``after`` chunks of ``then``'s stream
    (OpenAI: ``chat.completion.chunk`` objects, the first one carrying only the role;
    Anthropic: events, ``message_start`` and ``ping`` first), then ends it as ``ending`` says:

    - ``"cut"``: closes the connection in the middle of the response body.
    - ``"error"``: sends an error event and ends the body (OpenAI: a ``data:`` line holding an
      ``{"error": {...}}`` object; Anthropic: ``event: error`` with an ``overloaded_error``).
    - ``"no_finish"``: ends the body cleanly but without the stream's finish (OpenAI: ``data:
      [DONE]`` with no chunk carrying a ``finish_reason``; Anthropic: no ``message_stop``).

    An ``after`` past the end of the stream sends all of it (for ``"no_finish"``, all that
    comes before its finish). A request that does not stream is answered with ``then`` whole.

    Example::

        cut_stream(5, text_reply("Hello there, Alice."), ending="error")

    Args:
        after: how many chunks (or events) to send before the ending, 0 or more.
        then: the reply whose stream is cut: a :func:`text_reply`, a :func:`tool_reply`, a
            ``str`` or their JSON form.
        ending: ``"cut"``, ``"error"`` or ``"no_finish"``.
    """
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ConfigurationError(
            f"cut_stream() needs the number of chunks to send before the break, an int >= 0, "
            f"got {after!r}"
        )
    if ending not in STREAM_ENDINGS:
        raise ConfigurationError(
            f"cut_stream(ending={ending!r}): expected one of {', '.join(map(repr, STREAM_ENDINGS))}"
        )
    reply = normalize_item(then, "cut_stream(then=...)")
    if not isinstance(reply, ScriptedReply):
        raise ConfigurationError(
            "cut_stream(then=...) must be a reply (text_reply(...), tool_reply(...), a str), "
            f"got {type(reply).__name__}; a callable item may itself return cut_stream(...)"
        )
    return StreamCut(after, reply, ending)


def normalize_item(item: Any, where: str) -> _Served | Callable[[RecordedRequest], Any]:
    """``item`` as a reply, an error, a slow reply, a cut stream, or a callable left to call
    per request.

    Raises:
        ConfigurationError: ``item`` is none of the accepted forms; ``where`` says which.
    """
    if isinstance(item, SERVED_TYPES):
        return item
    if isinstance(item, str):
        return ScriptedReply(text=item)
    if isinstance(item, Mapping):
        return _from_json_form(item, where)
    if callable(item):
        return item  # type: ignore[no-any-return]
    raise ConfigurationError(f"{where} is {type(item).__name__} {item!r}; expected {_FORMS}")


def script_from_json(data: Any, source: str = "the script") -> list[ScriptItem]:
    """The items of a script given in the JSON form (a list of objects), validated.

    Raises:
        ConfigurationError: ``data`` is not a list, or an item is malformed; the message
            names the item's index in ``source``.
    """
    if not isinstance(data, list):
        raise ConfigurationError(
            f"{source} must be a JSON array of items, got {type(data).__name__}"
        )
    items: list[ScriptItem] = []
    for i, raw in enumerate(data):
        if not isinstance(raw, Mapping | str):
            raise ConfigurationError(
                f"item {i} of {source} must be an object or a string, got {raw!r}"
            )
        normalised = normalize_item(raw, f"item {i} of {source}")
        assert not callable(normalised)  # JSON cannot hold a callable
        items.append(normalised)
    return items


def _from_json_form(obj: Mapping[str, Any], where: str) -> _Served:
    keys = set(obj)
    if "error" in keys:
        _only(obj, {"error"}, where)
        err = obj["error"]
        if not isinstance(err, Mapping) or "status" not in err or "message" not in err:
            raise ConfigurationError(
                f'{where}: "error" must be {{"status": 500, "message": "...", ...}}, got {err!r}'
            )
        _only(err, {"status", "message", "type", "code", "param", "retry_after"}, where)
        return error_reply(
            err["status"],
            err["message"],
            type=err.get("type", "server_error"),
            code=err.get("code"),
            param=err.get("param"),
            retry_after=err.get("retry_after"),
        )
    if "delay" in keys:
        _only(obj, {"delay", "then"}, where)
        if "then" not in obj:
            raise ConfigurationError(f'{where}: "delay" needs a "then" item to answer with')
        return slow_reply(obj["delay"], obj["then"])
    if "cut_after" in keys:
        _only(obj, {"cut_after", "then", "ending"}, where)
        if "then" not in obj:
            raise ConfigurationError(f'{where}: "cut_after" needs a "then" reply to stream')
        try:
            return cut_stream(obj["cut_after"], obj["then"], ending=obj.get("ending", "cut"))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
    if "text" in keys or "tool_calls" in keys:
        _only(obj, {"text", "tool_calls", "usage"}, where)
        text = obj.get("text", "")
        if not isinstance(text, str):
            raise ConfigurationError(f'{where}: "text" must be a string, got {text!r}')
        raw_calls = obj.get("tool_calls", [])
        if not isinstance(raw_calls, list):
            raise ConfigurationError(f'{where}: "tool_calls" must be a list, got {raw_calls!r}')
        calls = tuple(
            _call_from_json(c, f"{where}, tool call {j}") for j, c in enumerate(raw_calls)
        )
        return ScriptedReply(text, calls, _usage(obj.get("usage")))
    raise ConfigurationError(
        f"{where}: {dict(obj)!r} has none of the keys "
        '"text", "tool_calls", "error", "delay" or "cut_after"; expected ' + _FORMS
    )


def _call_from_json(raw: Any, where: str) -> ScriptedCall:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ConfigurationError(
            f'{where} must be {{"name": "greet", "arguments": {{...}} or "raw"}}, got {raw!r}'
        )
    _only(raw, {"name", "arguments", "id"}, where)
    return call(raw["name"], raw.get("arguments"), id=raw.get("id"))


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed here: {', '.join(map(repr, sorted(allowed)))}"
        )


#: The keys a usage mapping may have, each with the Usage field it sets.
_USAGE_KEYS = {
    "prompt_tokens": "input_tokens",
    "input_tokens": "input_tokens",
    "completion_tokens": "output_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
}


def _usage(value: _UsageLike) -> Usage | None:
    if value is None:
        return None
    if isinstance(value, Usage):
        usage = value
    elif isinstance(value, Mapping):
        usage = _usage_from_mapping(value)
    else:
        raise ConfigurationError(
            "usage must be a looplet Usage or {'prompt_tokens': int, 'completion_tokens': "
            f"int}}, got {value!r}"
        )
    counts = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
    )
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts):
        raise ConfigurationError(f"usage token counts must be ints >= 0, got {usage!r}")
    if usage.cache_read_tokens + usage.cache_write_tokens > usage.input_tokens:
        raise ConfigurationError(
            f"usage {usage!r}: cache_read_tokens + cache_write_tokens "
            f"({usage.cache_read_tokens} + {usage.cache_write_tokens}) exceed input_tokens "
            f"({usage.input_tokens}); input_tokens counts the whole prompt, cached parts "
            "included, so make it at least their sum"
        )
    return usage


def _usage_from_mapping(value: Mapping[str, Any]) -> Usage:
    unknown = sorted(set(value) - set(_USAGE_KEYS) - {"total_tokens"})
    if unknown:
        raise ConfigurationError(
            f"usage {dict(value)!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(map(repr, _USAGE_KEYS))}"
        )
    fields: dict[str, Any] = {}
    for key, field_name in _USAGE_KEYS.items():
        if key in value:
            if field_name in fields:
                raise ConfigurationError(
                    f"usage {dict(value)!r} gives {field_name} twice; use one of "
                    f"{', '.join(repr(k) for k, f in _USAGE_KEYS.items() if f == field_name)}"
                )
            fields[field_name] = value[key]
    return Usage(**fields)


def _format_seconds(value: float | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
