"""Headers that differ on every recording, left out of cassette files so re-records diff cleanly.

Users keep cassettes in git and review re-records. A provider's reply carries headers that
change on every call (the date, request ids, timings, rate-limit counters) and an SDK's
request carries a few that change per attempt or per machine; written verbatim, they make
re-recording an unchanged run a diff of dozens of lines. Replay never reads them (headers
are not matched, and the SDKs only log request ids), so the writer leaves them out:
:data:`DEFAULT_VOLATILE_HEADERS` lists them, and ``use_cassette(..., volatile_headers=...)``
replaces the list. Files that still hold such headers load and replay as before.

The headers a replay needs (:data:`REPLAY_HEADERS`: the body's type, encoding and length,
the retry hints the SDKs and looplet's backends obey) are always written, whatever the list
says: a cassette must stay replayable. Pure Python, no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from looplet.errors import ConfigurationError

__all__ = ["DEFAULT_VOLATILE_HEADERS", "REPLAY_HEADERS", "VolatileHeaders"]

#: Header names (any case; ``*`` matches any run of characters) the cassette writer leaves
#: out, request and response, because they change from one recording to the next while
#: the API's behaviour does not:
#:
#: * ``date``: the time of the reply.
#: * ``*request-id``, ``*requestid``: per-call ids (OpenAI's ``x-request-id``, Anthropic's
#:   ``request-id``, Azure's ``apim-request-id``, Bedrock's ``x-amzn-requestid``...).
#: * ``cf-ray``: Cloudflare's per-request id, in front of OpenAI and Anthropic.
#: * ``openai-processing-ms``, ``x-envoy-upstream-service-time``, ``server-timing``: how long
#:   the server took.
#: * ``x-ratelimit-*``, ``anthropic-ratelimit-*``: remaining-quota counters and reset times.
#: * ``set-cookie``: per-session load-balancer cookies (also removed as a secret).
#: * ``traceparent``, ``tracestate``, ``sentry-trace``, ``x-amzn-trace-id``: random trace ids
#:   that tracing instrumentation adds to requests.
#: * ``idempotency-key``, ``x-stainless-retry-count``: per attempt, so a flaky network
#:   changes them.
#: * ``x-stainless-os``, ``x-stainless-arch``, ``x-stainless-runtime``,
#:   ``x-stainless-runtime-version``: the recording machine, which differs between the people
#:   who re-record, not what was asked.
#:
#: Kept on purpose: ``user-agent``, ``x-stainless-package-version`` and
#: ``x-stainless-lang`` (which SDK, which version recorded the file: an SDK upgrade is a real
#: change worth seeing in review), ``anthropic-version``, the timeouts, and the response's
#: ``content-*`` and ``retry-after*`` (see :data:`REPLAY_HEADERS`).
#:
#: To leave out one more, pass ``volatile_headers=(*DEFAULT_VOLATILE_HEADERS, "x-mine")``;
#: to keep them all, as before, ``volatile_headers=()``.
DEFAULT_VOLATILE_HEADERS: tuple[str, ...] = (
    "*request-id",
    "*requestid",
    "anthropic-ratelimit-*",
    "cf-ray",
    "date",
    "idempotency-key",
    "openai-processing-ms",
    "sentry-trace",
    "server-timing",
    "set-cookie",
    "traceparent",
    "tracestate",
    "x-amzn-trace-id",
    "x-envoy-upstream-service-time",
    "x-ratelimit-*",
    "x-stainless-arch",
    "x-stainless-os",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
)

#: Headers always written, even when a volatile pattern names them: the body's type,
#: encoding and length (a file from vcrpy may hold a gzipped body that needs its
#: ``content-encoding``), the chunked framing of a stream, a redirect's target, and the
#: retry hints the SDKs and looplet's backends read when a recorded error replays.
REPLAY_HEADERS: frozenset[str] = frozenset(
    {
        "content-encoding",
        "content-length",
        "content-type",
        "location",
        "retry-after",
        "retry-after-ms",
        "transfer-encoding",
        "x-should-retry",
    }
)


class VolatileHeaders:
    """Decides which header names the cassette writer leaves out.

    Args:
        patterns: header names, any case, with shell-style wildcards (``x-ratelimit-*``).

    Raises:
        ConfigurationError: ``patterns`` is a single string, or holds something else.
    """

    __slots__ = ("_cache", "_pattern", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str):  # a str is iterable: "date" would drop d, a, t, e
            raise ConfigurationError(
                f"volatile_headers must be a list of header names, not the string "
                f"{patterns!r}; pass ({patterns!r},) or (*DEFAULT_VOLATILE_HEADERS, {patterns!r})"
            )
        self.patterns: tuple[str, ...] = tuple(patterns)
        for pattern in self.patterns:
            if not isinstance(pattern, str):
                raise ConfigurationError(
                    f"volatile_headers holds {pattern!r}; it takes header names (str)"
                )
        regex = "|".join(fnmatch.translate(p.lower()) for p in self.patterns)
        self._pattern = re.compile(regex) if regex else None
        # Few distinct names per cassette, so each is decided once.
        self._cache: dict[str, bool] = {}

    def drops(self, name: str) -> bool:
        """Whether the header ``name`` is left out of the file."""
        dropped = self._cache.get(name)
        if dropped is None:
            lower = name.lower()
            dropped = (
                self._pattern is not None
                and lower not in REPLAY_HEADERS
                and self._pattern.match(lower) is not None
            )
            self._cache[name] = dropped
        return dropped

    def __repr__(self) -> str:
        return f"VolatileHeaders({self.patterns!r})"
