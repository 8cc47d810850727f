"""Keeping secrets out of cassette files.

A :class:`Scrubber` removes credentials from each exchange before it is stored: headers that
carry keys, tokens or cookies (:data:`DEFAULT_SECRET_HEADERS`, and any header whose name has
a part like ``key``, ``token``, ``auth``, ``secret``, ``cookie``), key-like query parameters
(:data:`DEFAULT_SECRET_QUERY`), and then every other occurrence of a removed value (a server
that echoes the key in an error body, say), of a credential in use and of a key-shaped string,
which becomes ``<redacted>``; the rules are :mod:`looplet._redact`'s, the same as for every
other file looplet writes. Users add header and parameter names with
``filter_headers``/``filter_query``, and anything else with a ``before_record`` hook. Headers
are never matched, so removing them does not affect replay. The requests it handles are
vcrpy's; it does not import vcrpy itself.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from looplet._redact import (
    REDACTED,
    TextRedactor,
    credential_in,
    credentials_generation,
    is_secret_name,
)

__all__ = ["DEFAULT_SECRET_HEADERS", "DEFAULT_SECRET_QUERY", "REDACTED", "Scrubber"]

_T = TypeVar("_T")

#: Headers always removed, request and response: credentials, cookies, and the account
#: identifiers OpenAI and Anthropic send.
DEFAULT_SECRET_HEADERS: tuple[str, ...] = (
    "anthropic-organization-id",
    "api-key",
    "authorization",
    "cookie",
    "openai-organization",
    "openai-project",
    "proxy-authorization",
    "set-cookie",
    "x-api-key",
)

#: Query parameters always removed from recorded URLs (compared case-insensitively).
DEFAULT_SECRET_QUERY: tuple[str, ...] = (
    "access_token",
    "api-key",
    "api_key",
    "apikey",
    "auth",
    "client_secret",
    "key",
    "password",
    "secret",
    "sig",
    "signature",
    "token",
)

# A header is secret when a word of its name is a secret word (looplet._redact), so
# x-goog-api-key, ocp-apim-subscription-key, x-amz-security-token are caught without a list;
# for headers "session" is one too (a session id is as good as the key).
_HEADER_WORDS = ("session",)


class Scrubber:
    """Removes credentials from vcrpy requests and response dicts, remembering what it saw.

    Args:
        filter_headers: more header names to remove (any case).
        filter_query: more query parameter names to remove (any case).
    """

    def __init__(self, filter_headers: Iterable[str] = (), filter_query: Iterable[str] = ()):
        self._headers = frozenset(h.lower() for h in (*DEFAULT_SECRET_HEADERS, *filter_headers))
        self._query = frozenset(q.lower() for q in (*DEFAULT_SECRET_QUERY, *filter_query))
        self._secrets: set[str] = set()
        self._texts: TextRedactor | None = None
        self._texts_key = (-1, 0)

    def changes(self, request: Any) -> bool:
        """Whether scrubbing changes the vcrpy ``request``'s URI or body (headers aside)."""
        body = request.body
        if isinstance(body, bytes | str) and self._redact(body) != body:
            return True
        return bool(self._redact(request.uri) != request.uri)

    def is_secret_header(self, name: str) -> bool:
        """Whether the header ``name`` is removed."""
        lower = name.lower()
        return lower in self._headers or is_secret_name(lower, _HEADER_WORDS)

    def request(self, request: Any) -> Any:
        """A copy of the vcrpy ``request`` without secret headers, parameters or values."""
        clean = copy.copy(request)
        headers = {}
        for name, value in request.headers.items():
            if self.is_secret_header(name):
                self._remember(value)
            else:
                headers[name] = value
        clean.headers = headers
        clean.uri = self._clean_uri(request.uri)
        body = request.body
        if isinstance(body, bytes | str):
            clean.body = self._redact(body)
        return clean

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """A copy of the vcrpy ``response`` dict without secret headers or values."""
        headers = {}
        for name, values in response.get("headers", {}).items():
            if self.is_secret_header(name):
                for value in values if isinstance(values, list) else [values]:
                    self._remember(value)
            else:
                headers[name] = values
        body = dict(response.get("body") or {})
        raw = body.get("string")
        if isinstance(raw, bytes | str):
            body["string"] = redacted = self._redact(raw)
            if len(redacted) != len(raw):
                _set_content_length(headers, len(redacted))
        return {**response, "headers": headers, "body": body}

    def _clean_uri(self, uri: str) -> str:
        parts = urlsplit(uri)
        if not parts.query:
            return self._redact(uri)
        kept = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name.lower() in self._query:
                self._remember(value)
            else:
                kept.append((name, value))
        return self._redact(urlunsplit(parts._replace(query=urlencode(kept))))

    def _remember(self, value: Any) -> None:
        secret = credential_in(value if isinstance(value, bytes) else str(value))
        if secret is not None:
            self._secrets.add(secret)

    def _redact(self, data: _T) -> _T:
        # One TextRedactor while the secrets stay the same: building one reads the
        # environment, and replay scrubs every request.
        key = (credentials_generation(), len(self._secrets))
        if self._texts is None or key != self._texts_key:
            self._texts, self._texts_key = TextRedactor(self._secrets), key
        return self._texts.data(data)


def _set_content_length(headers: dict[str, Any], length: int) -> None:
    for name in headers:
        if name.lower() == "content-length":
            headers[name] = [str(length)]
