"""How a new request is matched with a recorded one, and how the closest one is found.

A :class:`RequestMatcher` turns ``match_on`` (vcrpy matcher names, plus looplet's
``json_body``) into a *key*: a tuple with one part per matcher. A recorded request's key is
computed once, when the cassette is loaded or the exchange recorded, so replaying a request
is one normalisation of its body and one dictionary look-up, never a re-parse of recorded
bodies. Matchers that cannot give a key (vcrpy's ``body`` and ``headers``, or a callable
``(r1, r2)`` raising ``AssertionError``) run on the few requests with the same key.

When nothing matches, :meth:`RequestMatcher.closest` picks the recorded request nearest to
the new one and says what changed, for :class:`~looplet.cassettes.CassetteMismatchError`.
The cassette itself (modes, playing, recording) is in :mod:`looplet.cassettes.cassette`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from looplet.cassettes.diff import Change, diff_json
from looplet.cassettes.loopback import is_loopback, without_loopback_port
from looplet.errors import ConfigurationError

__all__ = [
    "DEFAULT_MATCH_ON",
    "DEFAULT_VOLATILE_FIELDS",
    "MATCHER_NAMES",
    "NOT_JSON",
    "RequestMatcher",
    "parse_json_body",
]

#: What a request must share with a recorded one to replay it: the method, the host (not
#: the port: a loopback server gets a new one each run), the path, and the JSON body once
#: normalised (key order, whitespace and :data:`DEFAULT_VOLATILE_FIELDS` ignored). Headers
#: are never matched, so a cassette recorded by an older SDK still replays.
DEFAULT_MATCH_ON: tuple[str, ...] = ("method", "host", "path", "json_body")

#: Top-level request fields left out of ``json_body`` matching: they identify the caller or
#: tune delivery, not what the model is asked. ``metadata``/``user``/``safety_identifier``
#: (often per-run ids), ``prompt_cache_key``, ``service_tier``, ``store`` and
#: ``stream_options`` (whether a usage chunk is streamed; SDK versions differ). ``seed`` is
#: matched: it is a sampling choice; add it (``ignore_fields=(*DEFAULT_VOLATILE_FIELDS,
#: "seed")``) if yours is random per run. A dotted name (``metadata.run_id``) removes a
#: nested key only.
DEFAULT_VOLATILE_FIELDS: tuple[str, ...] = (
    "metadata",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
    "store",
    "stream_options",
    "user",
)

#: The names ``match_on`` accepts: vcrpy's matchers, and looplet's ``json_body``.
MATCHER_NAMES: tuple[str, ...] = (
    "body",
    "headers",
    "host",
    "json_body",
    "method",
    "path",
    "port",
    "query",
    "raw_body",
    "scheme",
    "uri",
    "url",
)


# One encoder for every key: json.dumps with options builds a new one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


#: What :func:`parse_json_body` returns for a body that is not a JSON object or array.
NOT_JSON: Any = _NotJson()

_Keyer = Callable[[Any, Any], Hashable]
_Extra = Callable[[Any, Any], Any]


def parse_json_body(body: bytes | str | None) -> Any:
    """The parsed body when it is a JSON object or array, else :data:`NOT_JSON`."""
    if not body:
        return NOT_JSON
    head = body[:64].lstrip()[:1]
    if head not in (b"{", b"[", "{", "["):
        return NOT_JSON
    try:
        return json.loads(body)
    except ValueError:  # UnicodeDecodeError is one
        return NOT_JSON


class RequestMatcher:
    """Keys requests by ``match_on`` and finds the closest recorded one when none matches.

    Args:
        match_on: matcher names (see :data:`MATCHER_NAMES`) or vcrpy-style callables
            ``(request, recorded)`` that raise ``AssertionError`` or return ``False``.
        ignore_fields: JSON body fields ``json_body`` leaves out (dotted for nested keys).

    Raises:
        ConfigurationError: an unknown matcher name, naming the valid ones.
    """

    def __init__(self, match_on: Iterable[str | _Extra], ignore_fields: Iterable[str]) -> None:
        #: The keyed matchers' names in key order: the route's, then ``json_body`` if used.
        self.names: list[str] = []
        self._keyers: list[_Keyer] = []
        self._extras: list[_Extra] = []
        self._ignore = tuple(tuple(field.split(".")) for field in ignore_fields)
        self.matches_body = False
        for item in match_on:
            if callable(item):
                self._extras.append(item)
            elif item == "json_body":
                self.matches_body = True
            else:
                self._add(item)
        if self.matches_body:
            self.names.append("json_body")
        #: How many leading parts of a key are the route (everything but ``json_body``).
        self.route_length = len(self._keyers)

    def _add(self, name: str) -> None:
        keyers: dict[str, _Keyer] = {
            "method": lambda r, _: r.method,
            "scheme": lambda r, _: r.scheme,
            "host": lambda r, _: r.host,
            "port": lambda r, _: None if is_loopback(r.host) else r.port,
            "path": lambda r, _: r.path or "/",
            "query": lambda r, _: tuple(r.query),
            "uri": lambda r, _: _normalised_uri(r),
            "url": lambda r, _: _normalised_uri(r),
            "raw_body": lambda r, _: _raw(r),
        }
        if name in keyers:
            self.names.append(name)
            self._keyers.append(keyers[name])
        elif name in ("body", "headers"):
            from vcr import matchers  # imported with the cassette, never by looplet itself

            self._extras.append(getattr(matchers, name))
        else:
            import difflib

            near = difflib.get_close_matches(str(name), MATCHER_NAMES, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ConfigurationError(
                f"unknown matcher {name!r} in match_on.{hint} Valid names: "
                f"{', '.join(MATCHER_NAMES)}; or pass a function (request, recorded) that "
                "raises AssertionError when they differ."
            )

    @property
    def has_extras(self) -> bool:
        """Whether some matchers give no key (and may read headers)."""
        return bool(self._extras)

    def route(self, request: Any) -> tuple[Hashable, ...]:
        """The key without the body: cheap, so every recorded request gets one at load."""
        return tuple(keyer(request, None) for keyer in self._keyers)

    def key(self, request: Any, parsed: Any = None) -> tuple[Hashable, ...]:
        """The request's key; ``parsed`` is its body already parsed, when the caller has it.

        The route comes first (:attr:`route_length` parts), then the normalised body.
        """
        route = self.route(request)
        return (*route, self._body_key(request, parsed)) if self.matches_body else route

    def extras_match(self, request: Any, recorded: Any) -> bool:
        """Whether the matchers that give no key accept ``request`` for ``recorded``."""
        for extra in self._extras:
            try:
                if extra(request, recorded) is False:
                    return False
            except AssertionError:
                return False
        return True

    def normalised_body(self, body: bytes | str | None, parsed: Any = None) -> Any:
        """The body as ``json_body`` compares it: parsed, volatile fields removed."""
        value = parse_json_body(body) if parsed is None else parsed
        if value is NOT_JSON or not isinstance(value, dict):
            return value
        for field in self._ignore:
            value = _without(value, field)
        return value

    def _body_key(self, request: Any, parsed: Any) -> Hashable:
        if parsed is None:
            parsed = parse_json_body(_raw(request))
        if parsed is NOT_JSON:
            return ("raw", _raw(request))
        value = self.normalised_body(None, parsed)
        return _CANONICAL.encode(value)

    def closest(
        self, request: Any, key: tuple[Hashable, ...], candidates: Sequence[tuple[int, Any, Any]]
    ) -> tuple[int, list[Change], list[Change]] | None:
        """The recorded request nearest to ``request``, and what changed.

        ``candidates`` are ``(number, recorded request, its key)``, in cassette order. The
        nearest differs in the fewest matchers, then in the fewest body fields, then comes
        first. Returns ``(number, body changes, other changes)``, or ``None`` if there are no
        candidates.
        """
        best: tuple[tuple[int, int, int], int, list[Change], list[Change]] | None = None
        new_body: Any = NOT_JSON
        if self.matches_body:
            new_body = self.normalised_body(_raw(request))
        for order, (number, recorded, recorded_key) in enumerate(candidates[:_MAX_COMPARED]):
            other = self._request_changes(key, recorded_key)
            body: list[Change] = []
            if self.matches_body:
                body = self._body_changes(new_body, request, recorded)
            score = (len(other) + (not self.extras_match(request, recorded)), len(body), order)
            if best is None or score < best[0]:
                best = (score, number, body, other)
        if best is None:
            return None
        return best[1], best[2], best[3]

    def _request_changes(
        self, key: tuple[Hashable, ...], recorded: tuple[Hashable, ...]
    ) -> list[Change]:
        n = self.route_length
        return [
            Change(f"request {name}", "changed", old=old, new=new)
            for name, old, new in zip(self.names[:n], recorded[:n], key[:n], strict=True)
            if old != new
        ]

    def _body_changes(self, new_body: Any, request: Any, recorded: Any) -> list[Change]:
        old_body = self.normalised_body(_raw(recorded))
        if old_body is NOT_JSON or new_body is NOT_JSON:
            if _raw(recorded) == _raw(request):
                return []
            return [Change("", "changed", old=_text(recorded), new=_text(request))]
        return diff_json(old_body, new_body)


# Comparing a request with every unused exchange of a big cassette would make the error
# path slow; the closest is nearly always among the first unused ones.
_MAX_COMPARED = 50


def _without(value: dict[str, Any], field: tuple[str, ...]) -> dict[str, Any]:
    """``value`` without the nested key ``field``, copying only what changes."""
    head = field[0]
    if head not in value:
        return value
    if len(field) == 1:
        return {k: v for k, v in value.items() if k != head}
    inner = value[head]
    if not isinstance(inner, dict):
        return value
    return {**value, head: _without(inner, field[1:])}


def _normalised_uri(request: Any) -> str:
    # As vcrpy's uri matcher: "https://host" and "https://host/" are the same URI; and a
    # loopback server's port is not part of it (see looplet.cassettes.loopback).
    uri: str = without_loopback_port(request.uri)
    if request.parsed_uri.path:
        return uri
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(uri)._replace(path="/"))


def _raw(request: Any) -> bytes:
    # vcrpy keeps file-like and iterator bodies (other HTTP libraries) joined in body_bytes.
    body = getattr(request, "body_bytes", request.body)
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _text(request: Any) -> str:
    return _raw(request).decode("utf-8", "replace")
