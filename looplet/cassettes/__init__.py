"""Record a run's HTTP exchanges with a model provider once, then replay them offline.

:func:`use_cassette` records the requests the provider SDK makes (``openai``, ``anthropic``,
anything on ``httpx``/``httpx2``/``requests``/``aiohttp``) into a readable file, and replays
them later with no network and no API key. It is built on vcrpy's interception; looplet adds
the matching rules, errors that show what changed in a request, secrets kept off disk and a
file format that is quick to load (:mod:`looplet.cassettes.serializer`). Importing this
package imports neither vcrpy nor a provider SDK: they load when a cassette is created.

Example::

    from looplet.cassettes import use_cassette

    with use_cassette("cassettes/greet.yaml", record_mode="once"):
        for step in composable_loop(llm=OpenAIBackend(openai.OpenAI(), model="gpt-4o-mini"),
                                    tools=tools, task="Greet Alice."):
            print(step.pretty())

Needs ``pip install 'looplet[cassettes]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from looplet.cassettes.cassette import (
    RECORD_MODES,
    Cassette,
    RequestHook,
    ResponseHook,
    base_url_of,
)
from looplet.cassettes.diff import Change
from looplet.cassettes.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteExhaustedError,
    CassetteMismatchError,
    CassetteNotFoundError,
    CassetteUnsupportedFormatError,
)
from looplet.cassettes.matching import DEFAULT_MATCH_ON, DEFAULT_VOLATILE_FIELDS, MATCHER_NAMES
from looplet.cassettes.scrub import DEFAULT_SECRET_HEADERS, DEFAULT_SECRET_QUERY
from looplet.cassettes.volatile import DEFAULT_VOLATILE_HEADERS

__all__ = [
    "DEFAULT_MATCH_ON",
    "DEFAULT_SECRET_HEADERS",
    "DEFAULT_SECRET_QUERY",
    "DEFAULT_VOLATILE_FIELDS",
    "DEFAULT_VOLATILE_HEADERS",
    "MATCHER_NAMES",
    "RECORD_MODES",
    "Cassette",
    "CassetteCorruptError",
    "CassetteError",
    "CassetteExhaustedError",
    "CassetteMismatchError",
    "CassetteNotFoundError",
    "CassetteUnsupportedFormatError",
    "Change",
    "recorded_base_url",
    "use_cassette",
]


def recorded_base_url(path: str | os.PathLike[str], provider: str = "openai") -> str | None:
    """The base URL a cassette was recorded from, to point a client at when replaying it.

    Replay matches requests on their host, so a client replaying a cassette recorded from a
    local server (or a proxy) must use that server's address; nothing is sent there.

    Returns:
        ``scheme://host:port/prefix`` as the provider SDK takes it as ``base_url``, or
        ``None`` when the file is missing, unreadable, or holds no call of that provider.
    """
    from pathlib import Path

    from looplet.cassettes.serializer import load_interactions

    try:
        exchanges = load_interactions(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return base_url_of((exchange.request.uri for exchange in exchanges), provider)


def use_cassette(
    path: str | os.PathLike[str],
    record_mode: str = "none",
    *,
    match_on: Iterable[str | Callable[[Any, Any], Any]] = DEFAULT_MATCH_ON,
    ignore_fields: Iterable[str] = DEFAULT_VOLATILE_FIELDS,
    filter_headers: Iterable[str] = (),
    filter_query: Iterable[str] = (),
    volatile_headers: Iterable[str] = DEFAULT_VOLATILE_HEADERS,
    before_record: RequestHook | None = None,
    before_record_response: ResponseHook | None = None,
    allow_repeats: bool = False,
) -> Cassette:
    """A cassette at ``path``, to use as ``with use_cassette(...):`` or ``async with``.

    Inside the block, HTTP requests are answered from the cassette or sent and recorded,
    per ``record_mode``. Each recorded exchange is replayed at most once, the first unused
    one that matches (so identical requests replay in recorded order).

    Args:
        path: the cassette file; ``.yaml`` or ``.json`` (the content is JSON either way,
            which is also YAML). Its folder is created when it is first written.
        record_mode: ``"none"`` (the default) only replays: a missing file or an unrecorded
            request is an error. ``"once"`` records when the file is missing and otherwise
            behaves as ``"none"``. ``"new_episodes"`` replays what matches and records the
            rest, appended. ``"all"`` sends and records every request and replaces the file.
        match_on: what a request must share with a recorded one, as vcrpy matcher names
            (``method``, ``host``, ``path``, ``query``, ``uri``, ``body``, ``headers``...)
            or functions; ``json_body`` compares JSON bodies with key order, whitespace and
            ``ignore_fields`` ignored. The default is :data:`DEFAULT_MATCH_ON`; a cassette
            recorded by other vcrpy tools replays with ``["method", "path"]``.
        ignore_fields: request body fields ``json_body`` ignores (dotted for nested ones);
            :data:`DEFAULT_VOLATILE_FIELDS` says which and why.
        filter_headers: header names to remove before recording, besides
            :data:`DEFAULT_SECRET_HEADERS` and any name with a part like ``key``/``token``.
        filter_query: query parameters to remove, besides :data:`DEFAULT_SECRET_QUERY`.
        volatile_headers: header names (``*`` wildcards allowed) left out when the file is
            written, request and response, because they change on every call (the date,
            request ids, rate-limit counters...), so re-recording an unchanged run changes
            no byte of the file. :data:`DEFAULT_VOLATILE_HEADERS` says which and why; pass
            ``(*DEFAULT_VOLATILE_HEADERS, "x-mine")`` to add one, ``()`` to keep them all.
            Replay never needs them, and the headers it does need (``content-type``,
            ``retry-after``...) are written even if named. Files that hold them replay as
            before; a ``new_episodes`` recording rewrites the file without them.
        before_record: called with each vcrpy ``Request`` (``.method``, ``.uri``, ``.body``,
            ``.headers``) after the secrets are removed, before it is matched or recorded;
            returns it (changed or not), or ``None`` to let it through unrecorded.
        before_record_response: called with each response about to be recorded, a dict
            ``{"status": {"code", "message"}, "headers": {name: [values]}, "body":
            {"string": bytes}}``; returns it or ``None`` to not record the exchange.
        allow_repeats: replay an exchange again when the run repeats a request more often
            than the recording did.

    Raises:
        ConfigurationError: an unknown record mode or matcher name.
        MissingExtraError: vcrpy is not installed (``pip install 'looplet[cassettes]'``).

    Entering the block raises :class:`CassetteNotFoundError` (``"none"`` and no file) or
    :class:`CassetteCorruptError` (a file that does not load, with the line; its subclass
    :class:`CassetteUnsupportedFormatError` for another tool's format, named); requests
    inside it raise :class:`CassetteMismatchError` or :class:`CassetteExhaustedError`.
    """
    return Cassette(
        path,
        record_mode,
        match_on=tuple(match_on),
        ignore_fields=tuple(ignore_fields),
        filter_headers=filter_headers,
        filter_query=filter_query,
        volatile_headers=volatile_headers,
        before_record=before_record,
        before_record_response=before_record_response,
        allow_repeats=allow_repeats,
    )
