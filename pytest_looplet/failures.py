"""How a cassette failure is shown: what changed first, the user's own frames, and the exact
command that re-records the failing item.

A cassette error is raised deep inside the HTTP transport, under the provider SDK, httpx and
vcrpy; pytest's default report shows some ninety lines of their frames before the mismatch.
:func:`cassette_failure` rebuilds the report of such a failure from the frames of the user's
code alone, and replaces the generic hint of :mod:`looplet.cassettes.errors`
(``pytest --looplet-record-mode=MODE``, which on its own collects no eval) with the command for
this item: ``pytest --looplet-evals --looplet-record-mode=MODE 'file.py::eval_x'``.
"""

from __future__ import annotations

import re
import shlex
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TracebackEntry

__all__ = ["cassette_error_of", "cassette_failure", "rerecord_command"]

_GENERIC_HINT = re.compile(r"pytest --looplet-record-mode=(\w+)")
# Frames from here down are library frames: looplet's own, the plugin's, and installed packages.
_LIBRARY_DIRS = tuple(
    {
        str(Path(__file__).resolve().parent),
        str(Path(__file__).resolve().parent.parent / "looplet"),
        *(sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib")),
    }
)


def cassette_error_of(excinfo: ExceptionInfo[BaseException] | None) -> BaseException | None:
    """The cassette error ``excinfo`` holds, as itself or as the cause of what was raised."""
    if excinfo is None:
        return None
    errors = sys.modules.get("looplet.cassettes.errors")
    if errors is None:  # no cassette was ever used in this process
        return None
    error: BaseException | None = errors.cassette_error_in(excinfo.value)
    return error


def rerecord_command(item: pytest.Item, mode: str, *, evals: bool) -> str:
    """The command that runs only ``item`` with record mode ``mode``."""
    flags = "--looplet-evals " if evals else ""
    return f"pytest {flags}--looplet-record-mode={mode} {shlex.quote(item.nodeid)}"


def cassette_failure(
    item: pytest.Item, excinfo: ExceptionInfo[BaseException], error: BaseException, *, evals: bool
) -> object:
    """The ``longrepr`` for ``item`` failing with the cassette ``error``.

    The frames are the user's (the eval, its helpers and conftest fixtures); the message is
    the cassette error's own, with the plugin hint naming this item.
    """
    message = _GENERIC_HINT.sub(lambda m: rerecord_command(item, m[1], evals=evals), str(error))
    error.args = (message,)  # what pytest shows as the "E" lines and in the summary line
    user = excinfo.traceback.filter(_is_user_frame)
    excinfo.traceback = user if len(user) else excinfo.traceback[:1]
    if excinfo.value is not error:  # wrapped (by the SDK, say): show the cassette error itself
        return f"{_where(excinfo.traceback)}\n{type(error).__name__}: {message}"
    return excinfo.getrepr(style="short", chain=False, funcargs=False, truncate_locals=True)


def _is_user_frame(entry: TracebackEntry) -> bool:
    return not str(entry.path).startswith(_LIBRARY_DIRS)


def _where(entries: Iterable[TracebackEntry]) -> str:
    return "\n".join(
        f"{entry.path}:{entry.lineno + 1}: in {entry.name}\n    {str(entry.statement).strip()}"
        for entry in entries
    )
