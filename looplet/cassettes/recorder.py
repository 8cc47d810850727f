"""The recorder: what vcrpy's patches call to answer, or record, each HTTP request.

vcrpy patches the HTTP libraries (``httpx``, ``httpx2``, ``requests``, ``aiohttp``...) to hand
every request to a cassette object through a small interface: ``can_play_response_for``,
``play_response``, ``append``, ``filter_request``, ``write_protected``. :class:`Recorder`
implements it with looplet's rules: the record modes, each exchange played once and in
order, keyed matching (:mod:`~looplet.cassettes.matching`), secrets removed before anything
is stored (:mod:`~looplet.cassettes.scrub`), and mismatch errors that say what changed. The
public object, the ``with`` block around a recorder, is :mod:`~looplet.cassettes.cassette`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from looplet.cassettes.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteExhaustedError,
    CassetteMismatchError,
    CassetteNotFoundError,
    CassetteUnsupportedFormatError,
)
from looplet.cassettes.matching import RequestMatcher
from looplet.cassettes.scrub import Scrubber
from looplet.cassettes.serializer import (
    CassetteFormatError,
    StoredExchange,
    dump_interactions,
    load_interactions,
)
from looplet.cassettes.volatile import VolatileHeaders

__all__ = ["Exchange", "Recorder", "RequestHook", "ResponseHook"]

#: ``before_record``: a vcrpy ``Request`` in, the same (changed or not) or ``None`` out.
RequestHook = Callable[[Any], Any]
#: ``before_record_response``: vcrpy's response dict in, the same or ``None`` out.
ResponseHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class Exchange:
    """One request and its response, loaded from the file or recorded in this block.

    ``route`` is the request's key without the body, set at once; ``key``, which needs the
    body normalised and encoded, is computed the first time a request of the same route is
    compared with it (:meth:`Recorder._key_of`), then kept.
    """

    __slots__ = ("_response", "key", "loaded", "request", "route", "used")

    def __init__(
        self,
        request: Any,
        response: dict[str, Any] | StoredExchange,
        route: tuple[Hashable, ...],
        loaded: bool,
        key: tuple[Hashable, ...] | None = None,
    ) -> None:
        self.request = request
        self._response = response
        self.route = route
        self.key = key
        self.loaded = loaded
        # Recorded now means used now: a second identical request must be recorded too.
        self.used = not loaded

    @property
    def response(self) -> dict[str, Any]:
        """vcrpy's response dict; decoded from the file when first played or saved."""
        if isinstance(self._response, StoredExchange):
            self._response = self._response.response()
        return self._response


class Recorder:
    """The cassette as vcrpy's patches see it: answers or records each request."""

    # vcrpy's patches read these.
    custom_patches: tuple[Any, ...] = ()
    skip_patchers: tuple[str, ...] = ()

    def __init__(
        self,
        path: str,
        mode: str,
        matcher: RequestMatcher,
        scrubber: Scrubber,
        volatile: VolatileHeaders,
        *,
        before_record: RequestHook | None,
        before_record_response: ResponseHook | None,
        allow_repeats: bool,
    ) -> None:
        self._path = path  # vcrpy names its patched classes after it
        self._mode = mode
        self._matcher = matcher
        self._scrubber = scrubber
        self._volatile = volatile
        self._before_record = before_record
        self._before_record_response = before_record_response
        self._allow_repeats = allow_repeats
        #: The last mismatch or exhausted error raised, for :attr:`Cassette.last_error`.
        self.last_error: CassetteError | None = None
        self._lock = threading.RLock()
        self._pending: tuple[Any, Exchange] | None = None
        self.exchanges: list[Exchange] = []
        # Unused loaded exchanges by route, in cassette order: where a request looks first.
        self._unused: dict[tuple[Hashable, ...], list[Exchange]] = {}
        self.played = 0
        self.new = 0
        self.failure: Callable[[], CassetteError] | None = None
        exists = self._load()
        if self._mode == "none" and not exists:
            raise CassetteNotFoundError(path=self._path, empty=Path(path).is_file())
        self._replay_only = self._mode == "none" or (self._mode == "once" and exists)

    # -- loading and saving ----------------------------------------------------------------

    def _load(self) -> bool:
        """Read the file; whether it exists with content. ``all`` never reads it."""
        if self._mode == "all":
            return Path(self._path).is_file()  # replaced whatever it holds, even if corrupt
        try:
            text = Path(self._path).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):  # no such file (a file on its path)
            return False
        except (OSError, UnicodeDecodeError) as exc:
            raise CassetteCorruptError(path=self._path, reason=f"unreadable: {exc}") from None
        if not text.strip():
            return False
        try:
            loaded = load_interactions(text)
        except CassetteFormatError as exc:
            if exc.unsupported is not None:
                kind, advice = exc.unsupported
                raise CassetteUnsupportedFormatError(
                    path=self._path, format=kind, advice=advice
                ) from None
            raise CassetteCorruptError(
                path=self._path, reason=exc.reason, line=exc.line, column=exc.column
            ) from None
        for item in loaded:
            route = self._matcher.route(item.request)
            self._add(Exchange(item.request, item, route, loaded=True))
        return True

    def save(self) -> None:
        """Write the cassette if this block recorded something.

        Volatile headers are left out of every exchange written, the loaded ones too: a
        ``new_episodes`` recording cleans an older file once, and only at the write, so
        the hooks see (and replay in this block uses) the headers as received.
        """
        if not self.new:
            return
        text = dump_interactions(
            ((_request_dict(e.request), e.response) for e in self.exchanges), self._volatile
        )
        path = Path(self._path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:  # a read-only folder, a file where the folder should be...
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise _write_error(self._path, exc) from None

    # -- vcrpy's interface -----------------------------------------------------------------

    @property
    def write_protected(self) -> bool:
        return self._replay_only

    def filter_request(self, request: Any) -> Any:
        """The request as stored and matched: secrets removed, then the user's hook."""
        with self._lock:
            clean = self._scrubber.request(request)
            hook = self._before_record
            return hook(clean) if hook is not None else clean

    def _for_matching(self, request: Any) -> Any:
        """The request as matched: as stored, but copied only when that changes the match."""
        if (
            self._before_record is None
            and not self._matcher.has_extras
            and "?" not in request.uri
            and not self._scrubber.changes(request)
        ):
            return request  # only headers would change, and they are not matched
        return self.filter_request(request)

    def can_play_response_for(self, request: Any) -> bool:
        """Whether to answer from the cassette; raises when it must and cannot."""
        with self._lock:
            clean = self._for_matching(request)
            if clean is None or self._mode == "all":
                return False  # a request the hook drops goes to the network, unrecorded
            key = self._key(clean)
            exchange = self._find(clean, key)
            if exchange is not None:
                self._pending = (request, exchange)
                return True
            if self._replay_only:
                self.failure = self._failure_for(clean, key)
                error = self.failure()
                self.last_error = error
                raise error
            return False

    def play_response(self, request: Any) -> dict[str, Any]:
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is not None and pending[0] is request:
                exchange = pending[1]
            else:  # not after can_play_response_for: find it again
                clean = self._for_matching(request)
                found = self._find(clean, self._key(clean))
                if found is None:
                    raise self._failure_for(clean, self._key(clean))()
                exchange = found
            if not exchange.used:
                exchange.used = True
                self._unused[exchange.route].remove(exchange)
            self.played += 1
            return exchange.response

    def append(self, request: Any, response: dict[str, Any]) -> None:
        """Record an exchange that went to the network."""
        from vcr.filters import decode_response

        with self._lock:
            clean = self.filter_request(request)
            if clean is None:
                return
            stored: dict[str, Any] | None = self._scrubber.response(decode_response(response))
            hook = self._before_record_response
            if hook is not None and stored is not None:
                stored = hook(stored)
            if stored is None:
                return
            # A secret first seen in the response's headers may sit in the request: again.
            clean = self._scrubber.request(clean)
            key = self._key(clean)
            route = key[: self._matcher.route_length]
            self._add(Exchange(clean, stored, route, loaded=False, key=key))
            self.new += 1

    def find_requests_with_most_matches(
        self, request: Any
    ) -> list[tuple[Any, list[str], list[Any]]]:
        """vcrpy's aiohttp patch replays a redirect with the recorded requests this returns."""
        with self._lock:
            key = self._key(self._for_matching(request))
            return [(e.request, [], []) for e in self.exchanges if self._key_of(e) == key]

    # -- matching --------------------------------------------------------------------------

    def _key(self, request: Any) -> tuple[Hashable, ...]:
        return self._matcher.key(request)

    def _key_of(self, exchange: Exchange) -> tuple[Hashable, ...]:
        """The exchange's key, computed once: its body is normalised only here."""
        if exchange.key is None:
            exchange.key = self._matcher.key(exchange.request, exchange.request.parsed)
        return exchange.key

    def _add(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        if not exchange.used:
            self._unused.setdefault(exchange.route, []).append(exchange)

    def _find(self, request: Any, key: tuple[Hashable, ...]) -> Exchange | None:
        # In a faithful replay the first unused exchange of the route is the one.
        for exchange in self._unused.get(key[: self._matcher.route_length], ()):
            if self._key_of(exchange) == key and self._matcher.extras_match(
                request, exchange.request
            ):
                return exchange
        if self._allow_repeats:
            for exchange in self.exchanges:
                if self._key_of(exchange) == key and self._matcher.extras_match(
                    request, exchange.request
                ):
                    return exchange
        return None

    def _failure_for(self, request: Any, key: Any) -> Callable[[], CassetteError]:
        """A factory of the error for ``request``: each call builds a new instance."""
        loaded = [e for e in self.exchanges if e.loaded]
        position = self.played + self.new + 1
        line = f"{request.method} {request.uri}"
        unused = [(i, e.request, self._key_of(e)) for i, e in enumerate(loaded, 1) if not e.used]
        if not unused:
            used = sum(e.used for e in loaded)

            def exhausted() -> CassetteError:
                return CassetteExhaustedError(
                    path=self._path,
                    position=position,
                    recorded=len(loaded),
                    used=used,
                    request=line,
                )

            return exhausted
        found = self._matcher.closest(request, key, unused)
        closest, changes, request_changes = found if found else (None, [], [])
        notes = self._notes(request, key, loaded)

        def mismatch() -> CassetteError:
            return CassetteMismatchError(
                path=self._path,
                position=position,
                recorded=len(loaded),
                request=line,
                closest=closest,
                changes=changes,
                request_changes=request_changes,
                notes=notes,
            )

        return mismatch

    def _notes(self, request: Any, key: Any, loaded: list[Exchange]) -> tuple[str, ...]:
        for number, exchange in enumerate(loaded, 1):
            if exchange.used and self._key_of(exchange) == key:
                return (
                    f"It is the same as exchange {number}, which this run already used: the "
                    "run repeats a request the recording made once (pass allow_repeats=True "
                    "to replay an exchange more than once).",
                )
        return ()


def _request_dict(request: Any) -> dict[str, Any]:
    return {
        "method": request.method,
        "uri": request.uri,
        "body": request.body_bytes,
        "headers": dict(request.headers.items()),
    }


def _write_error(path: str, exc: OSError) -> CassetteError:
    return CassetteError(
        f"cannot write cassette {path}: {exc.strerror or exc}. Record it into a folder you "
        f"can write to, or replay only, without writing:\n"
        f"  use_cassette({path!r}, record_mode='none')\n"
        "  or, with the pytest plugin: pytest --looplet-record-mode=none",
        path=path,
    )
