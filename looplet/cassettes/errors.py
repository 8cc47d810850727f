"""The errors a cassette raises, each saying which file, what went wrong and how to fix it.

The hierarchy (under :class:`looplet.errors.LoopletError`)::

    CassetteError                 base: anything wrong with a cassette; ``.path`` names the file
    ├── CassetteNotFoundError     record_mode 'none' and the file does not exist (or is empty)
    ├── CassetteCorruptError      the file cannot be read: bad JSON/YAML (``.line``), bad shape
    │   └── CassetteUnsupportedFormatError  another tool's cassette format: which, what to do
    ├── CassetteMismatchError     a request matches no recorded one; shows what changed
    └── CassetteExhaustedError    every recorded exchange is used and the run asked for more

Mismatch and exhausted errors are raised inside the HTTP transport, where the provider SDK
may wrap them; :class:`~looplet.cassettes.Cassette` keeps the last one on ``.last_error``
and raises it again when its ``with`` block ends, so it always reaches the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from looplet.errors import LoopletError

if TYPE_CHECKING:
    from looplet.cassettes.diff import Change

__all__ = [
    "CassetteCorruptError",
    "CassetteError",
    "CassetteExhaustedError",
    "CassetteMismatchError",
    "CassetteNotFoundError",
    "CassetteUnsupportedFormatError",
]


def rerecord_hint(path: str) -> str:
    """The two ways to re-record ``path``: the ``use_cassette`` argument and the plugin flag."""
    return (
        f"  use_cassette({path!r}, record_mode='all')\n"
        "  or, with the pytest plugin: pytest --looplet-record-mode=all"
    )


class CassetteError(LoopletError):
    """Base class of the cassette errors; ``.path`` is the cassette file as given."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


def cassette_error_in(exc: BaseException) -> CassetteError | None:
    """The :class:`CassetteError` that ``exc`` is or was raised from (its ``__cause__`` or
    ``__context__`` chain), or ``None``: a provider SDK may wrap the one its transport raised.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, CassetteError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class CassetteNotFoundError(CassetteError):
    """``record_mode='none'`` replays only, and the cassette file does not exist or is empty."""

    def __init__(self, *, path: str, empty: bool = False) -> None:
        what = "is empty" if empty else "does not exist"
        super().__init__(
            f"cassette {path} {what}, and record_mode 'none' only replays. Record it once "
            f"against the real provider:\n"
            f"  use_cassette({path!r}, record_mode='once')  (records when the file is missing)\n"
            "  or, with the pytest plugin: pytest --looplet-record-mode=once",
            path=path,
        )
        self.empty = empty


class CassetteCorruptError(CassetteError):
    """The cassette file cannot be loaded.

    Attributes:
        reason: what is wrong, in the parser's words or naming the bad interaction.
        line: the 1-based line of a syntax error, or ``None`` for a shape error.
        column: the 1-based column of a syntax error, or ``None``.
    """

    def __init__(
        self, *, path: str, reason: str, line: int | None = None, column: int | None = None
    ) -> None:
        where = f" (line {line}, column {column})" if line is not None else ""
        cut = (
            " The file was probably cut short or edited by hand."
            if line is not None
            else " Was it edited by hand?"
        )
        super().__init__(
            f"cannot load cassette {path}{where}: {reason}.{cut} Restore it from version "
            f"control, or delete it and record it again:\n{rerecord_hint(path)}",
            path=path,
        )
        self.reason = reason
        self.line = line
        self.column = column


class CassetteUnsupportedFormatError(CassetteCorruptError):
    """The file is a cassette in a format looplet does not replay (another tool's, or a newer
    looplet's); the message names the format and what to do.

    Attributes:
        format: the format recognised, e.g. ``"Ruby VCR or Betamax cassette"``.
        advice: what to do about it.
    """

    def __init__(self, *, path: str, format: str, advice: str) -> None:
        CassetteError.__init__(
            self,
            f"cannot load cassette {path}: it is a {format}, a format looplet does not "
            f"replay. {advice}",
            path=path,
        )
        self.format = format
        self.advice = advice
        self.reason = f"a {format}"
        self.line = None
        self.column = None


class CassetteMismatchError(CassetteError):
    """A request matches none of the cassette's unused exchanges.

    The message shows the request, the closest recorded one and what changed between them.

    Attributes:
        position: the 1-based number of the request in this run (exchanges answered + 1).
        recorded: how many exchanges the cassette holds.
        request: ``"POST https://..."``, the request that did not match.
        closest: the 1-based number of the closest recorded exchange, or ``None``.
        changes: what differs in the body, as :class:`~looplet.cassettes.diff.Change`.
        request_changes: what differs outside the body (method, host, path...), same form.
    """

    def __init__(
        self,
        *,
        path: str,
        position: int,
        recorded: int,
        request: str,
        closest: int | None,
        changes: list[Change],
        request_changes: list[Change],
        notes: tuple[str, ...] = (),
    ) -> None:
        from looplet.cassettes.diff import render_changes

        lines = [
            f"request {position} of {recorded} does not match cassette {path}",
            f"  {request}",
        ]
        if closest is not None:
            lines.append(f"  closest recorded request: exchange {closest}; what changed:")
            lines += render_changes(request_changes + changes)
        lines += [f"  {note}" for note in notes]
        lines.append(
            "The request changed since the cassette was recorded. If that is intended, "
            "re-record it:"
        )
        lines.append(rerecord_hint(path))
        super().__init__("\n".join(lines), path=path)
        self.position = position
        self.recorded = recorded
        self.request = request
        self.closest = closest
        self.changes = changes
        self.request_changes = request_changes


class CassetteExhaustedError(CassetteError):
    """The run made more requests than the cassette recorded.

    Attributes:
        position: the 1-based number of the request that found nothing left.
        recorded: how many exchanges the cassette holds.
        used: how many of them this run used (all of them, unless repeats were allowed).
        request: ``"POST https://..."``, the request that found nothing left.
    """

    def __init__(self, *, path: str, position: int, recorded: int, used: int, request: str) -> None:
        exchanges = "exchange" if recorded == 1 else "exchanges"
        super().__init__(
            f"request {position} found no exchange left in cassette {path}: it holds "
            f"{recorded} recorded {exchanges} and this run used {used}.\n  {request}\n"
            "The run makes more requests than when it was recorded (an extra step, a "
            "retry?). If that is intended, re-record it:\n" + rerecord_hint(path),
            path=path,
        )
        self.position = position
        self.recorded = recorded
        self.used = used
        self.request = request
