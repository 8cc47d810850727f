"""The cassette: a ``with`` / ``async with`` block that records and replays HTTP exchanges.

:class:`Cassette` is what :func:`~looplet.cassettes.use_cassette` returns. Entering it loads
the file into a :class:`~looplet.cassettes.recorder.Recorder` and applies vcrpy's patches,
which route every HTTP request of ``httpx``, ``httpx2`` (the ``openai`` and ``anthropic``
SDKs), ``requests``, ``aiohttp``... to the recorder; leaving it removes the patches, writes
what was recorded and makes sure a request the cassette could not answer fails the block.
The matching rules are in :mod:`~looplet.cassettes.recorder` and
:mod:`~looplet.cassettes.matching`, the file format in :mod:`~looplet.cassettes.serializer`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, final

from looplet.cassettes.errors import CassetteError, cassette_error_in
from looplet.cassettes.matching import RequestMatcher
from looplet.cassettes.recorder import Recorder, RequestHook, ResponseHook
from looplet.cassettes.scrub import Scrubber
from looplet.cassettes.volatile import VolatileHeaders
from looplet.errors import ConfigurationError, MissingExtraError

__all__ = [
    "RECORD_MODES",
    "Cassette",
    "RequestHook",
    "ResponseHook",
    "absent_patchers",
    "base_url_of",
    "require_vcrpy",
]

#: The record modes: ``none`` replays only (an unrecorded request is an error); ``once``
#: records when the file is missing and replays only when it exists; ``new_episodes``
#: replays what matches and records the rest, appended; ``all`` records every request and
#: replaces the file.
RECORD_MODES: tuple[str, ...] = ("none", "once", "new_episodes", "all")

# The endpoint each provider's SDK appends to its base URL.
_ENDPOINTS = {"openai": "/chat/completions", "anthropic": "/v1/messages"}


def require_vcrpy() -> None:
    """Import vcrpy, or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        import vcr.patch  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("vcrpy", "cassettes", "looplet.cassettes") from exc


# vcrpy's patcher groups and the package each patches. vcrpy tries to import each group's
# package whenever a cassette is entered; a failed import searches the path again each time.
_PATCHED_PACKAGES = {
    "requests": "requests",
    "boto3": "botocore",
    "urllib3": "urllib3",
    "httplib2": "httplib2",
    "tornado": "tornado",
    "aiohttp": "aiohttp",
    "httpx": "httpx",
    "httpx2": "httpx2",
}


@functools.cache
def absent_patchers() -> tuple[str, ...]:
    """vcrpy's patcher groups whose package is not installed (looked up once a process).

    They would patch nothing; skipping them spares every cassette their failed imports.
    """
    import importlib.util

    import vcr.patch

    known = getattr(vcr.patch, "PATCHER_NAMES", ())  # vcrpy checks the names it is given
    return tuple(
        name
        for name, package in _PATCHED_PACKAGES.items()
        if name in known and importlib.util.find_spec(package) is None
    )


def base_url_of(uris: Iterable[str], provider: str) -> str | None:
    """The base URL of the first of ``uris`` that is a call of ``provider``'s API (the part
    before the endpoint its SDK appends), or ``None`` when none is."""
    endpoint = _ENDPOINTS[provider]
    for uri in uris:
        path = uri.split("?", 1)[0]
        if path.endswith(endpoint):
            return path[: -len(endpoint)]
    return None


@final
class Cassette:
    """A recorded set of HTTP exchanges, active inside a ``with`` or ``async with`` block.

    Built by :func:`~looplet.cassettes.use_cassette`, which documents the arguments. Each
    time the block is entered the file is read again; when it ends, what was recorded is
    written (atomically: a temporary file, then a rename).

    A request the cassette cannot answer raises :class:`CassetteMismatchError` or
    :class:`CassetteExhaustedError` inside the HTTP transport. An SDK may wrap it (the
    ``anthropic`` SDK raises ``APIConnectionError`` from it) and the loop turns a backend's
    exception into an ``LLMError``, so the error is also kept on :attr:`last_error` and
    raised again when the block ends, in place of the exception it caused. It is raised even
    if the code in the block caught it: a run that missed a recorded answer was no replay.

    Attributes:
        path: the cassette file.
        record_mode: one of :data:`RECORD_MODES`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        record_mode: str,
        *,
        match_on: Iterable[Any],
        ignore_fields: Iterable[str],
        filter_headers: Iterable[str],
        filter_query: Iterable[str],
        volatile_headers: Iterable[str],
        before_record: RequestHook | None,
        before_record_response: ResponseHook | None,
        allow_repeats: bool,
    ) -> None:
        if record_mode not in RECORD_MODES:
            raise ConfigurationError(
                f"record_mode {record_mode!r} is not one of {', '.join(map(repr, RECORD_MODES))}"
                ": 'none' replays only, 'once' records a missing cassette, 'new_episodes' "
                "records what is not in it yet, 'all' records everything again."
            )
        require_vcrpy()
        self.path = Path(path)
        self.record_mode = record_mode
        self._matcher = RequestMatcher(match_on, ignore_fields)
        self._filter_headers = tuple(filter_headers)
        self._filter_query = tuple(filter_query)
        self._volatile = VolatileHeaders(volatile_headers)
        self._before_record = before_record
        self._before_record_response = before_record_response
        self._allow_repeats = allow_repeats
        self._recorder: Recorder | None = None
        self._patches: contextlib.ExitStack | None = None

    # -- the block -------------------------------------------------------------------------

    def __enter__(self) -> Cassette:
        if self._patches is not None:
            raise ConfigurationError(
                f"cassette {self.path} is already in use: a Cassette is not re-entrant; "
                "call use_cassette() again for a second one"
            )
        from vcr.patch import CassettePatcherBuilder

        recorder = Recorder(
            str(self.path),
            self.record_mode,
            self._matcher,
            Scrubber(self._filter_headers, self._filter_query),
            self._volatile,
            before_record=self._before_record,
            before_record_response=self._before_record_response,
            allow_repeats=self._allow_repeats,
        )
        recorder.skip_patchers = absent_patchers()
        with contextlib.ExitStack() as patches:
            for patcher in CassettePatcherBuilder(recorder).build():
                patches.enter_context(patcher)
            self._patches = patches.pop_all()  # kept applied until __exit__
        self._recorder = recorder
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        recorder, patches = self._recorder, self._patches
        if recorder is None or patches is None:
            return
        self._patches = None
        patches.close()
        recorder.save()  # also after an error: a recorded provider error is worth keeping
        failure = recorder.failure
        if failure is None or isinstance(exc, CassetteError):
            return
        if exc is not None and not isinstance(exc, Exception):
            return  # KeyboardInterrupt, SystemExit...: never replaced
        error = failure()  # a new instance, so no cycle with the exception it caused
        error.trajectory = getattr(exc, "trajectory", None)
        if exc is None or cassette_error_in(exc) is not None:
            raise error from None
        raise error from exc

    async def __aenter__(self) -> Cassette:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- what tests read -------------------------------------------------------------------

    @property
    def last_error(self) -> CassetteError | None:
        """The last mismatch or exhausted error of this block (or the last one), if any."""
        return self._recorder.last_error if self._recorder else None

    def __len__(self) -> int:
        """How many exchanges the cassette holds (loaded, plus recorded in this block)."""
        return len(self._recorder.exchanges) if self._recorder else 0

    def recorded_base_url(self, provider: str = "openai") -> str | None:
        """The base URL the cassette's calls of ``provider`` were recorded from, as
        :func:`~looplet.cassettes.recorded_base_url` reads it from the file; inside the block
        from the exchanges already loaded, so the file is not read a second time."""
        if self._recorder is None:
            from looplet.cassettes import recorded_base_url

            return recorded_base_url(self.path, provider)
        return base_url_of((e.request.uri for e in self._recorder.exchanges), provider)

    @property
    def played(self) -> int:
        """How many recorded exchanges this block (or the last) replayed."""
        return self._recorder.played if self._recorder else 0

    @property
    def new(self) -> int:
        """How many exchanges this block (or the last) recorded."""
        return self._recorder.new if self._recorder else 0

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, record_mode={self.record_mode!r})"
