"""Keeping secrets out of cassette files.

A :class:`Scrubber` removes credentials from each exchange before it is stored: headers that
carry keys, tokens or cookies (:data:`DEFAULT_SECRET_HEADERS`, and any header whose name has
a part like ``key``, ``token``, ``auth``, ``secret``, ``cookie``), key-like query parameters
(:data:`DEFAULT_SECRET_QUERY`), and then every other occurrence of a removed value (a server
that echoes the key in an error body, say), which becomes ``<redacted>``. Users add header and
parameter names with ``filter_headers``/``filter_query``, and anything else with a
``before_record`` hook. Headers are never matched, so removing them does not affect replay.
The requests it handles are vcrpy's; it imports nothing itself.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["DEFAULT_SECRET_HEADERS", "DEFAULT_SECRET_QUERY", "REDACTED", "Scrubber"]

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

#: What a secret value found elsewhere in an exchange is replaced with.
REDACTED = "<redacted>"

# A header is secret when one part of its name (split on - and _) is one of these, so
# x-goog-api-key, ocp-apim-subscription-key, x-amz-security-token are caught without a list.
# "tokens" is not "token": x-ratelimit-remaining-tokens stays.
_SECRET_PARTS = frozenset(
    {"apikey", "auth", "authorization", "cookie", "credential", "credentials", "key"}
    | {"password", "secret", "session", "signature", "token"}
)
_SPLIT = re.compile(r"[-_]")
# Values shorter than this are not searched for elsewhere: too likely to occur by chance.
_MIN_SECRET = 6
_SCHEMES = ("bearer ", "basic ", "token ")


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

    @property
    def has_secrets(self) -> bool:
        """Whether a secret value was seen, to be looked for in bodies and URLs."""
        return bool(self._secrets)

    def is_secret_header(self, name: str) -> bool:
        """Whether the header ``name`` is removed."""
        lower = name.lower()
        return lower in self._headers or not _SECRET_PARTS.isdisjoint(_SPLIT.split(lower))

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
        if self._secrets and isinstance(body, bytes | str):
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
        if self._secrets and isinstance(raw, bytes | str):
            body["string"] = redacted = self._redact(raw)
            if len(redacted) != len(raw):
                _set_content_length(headers, len(redacted))
        return {**response, "headers": headers, "body": body}

    def _clean_uri(self, uri: str) -> str:
        parts = urlsplit(uri)
        if not parts.query and not self._secrets:
            return uri
        query = parts.query
        if query:
            kept = []
            for name, value in parse_qsl(query, keep_blank_values=True):
                if name.lower() in self._query:
                    self._remember(value)
                else:
                    kept.append((name, value))
            query = urlencode(kept)
        clean = urlunsplit(parts._replace(query=query))
        return self._redact(clean) if self._secrets else clean

    def _remember(self, value: Any) -> None:
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        for scheme in _SCHEMES:
            if text.lower().startswith(scheme):
                text = text[len(scheme) :]
        text = text.strip()
        if len(text) >= _MIN_SECRET:
            self._secrets.add(text)

    def _redact(self, data: Any) -> Any:
        # Longest first, so a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if isinstance(data, bytes):
                data = data.replace(secret.encode(), REDACTED.encode())
            else:
                data = data.replace(secret, REDACTED)
        return data


def _set_content_length(headers: dict[str, Any], length: int) -> None:
    for name in headers:
        if name.lower() == "content-length":
            headers[name] = [str(length)]
