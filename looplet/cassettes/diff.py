"""Structural diffs of JSON values, for the messages of cassette mismatch errors.

:func:`diff_json` compares a recorded request body with a new one and names each difference
by its path (``messages[3].content`` changed, ``tools[1]`` added, ``model`` changed);
:func:`render_changes` turns the differences into the short lines an error message shows,
cutting long strings down to the part around their first difference. Pure Python, no I/O;
which request is compared with which is decided in :mod:`looplet.cassettes.matching`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Change", "diff_json", "render_changes", "shorten_pair"]

#: How many characters of a string or value an error message shows.
_WIDTH = 72
#: Characters kept before the first difference when a long string is cut.
_LEAD = 24


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two JSON values.

    Attributes:
        path: where it is, as in Python (``messages[3].content``, ``tools[1]``); ``""`` for the
            whole value.
        kind: ``"changed"``, ``"added"`` (only in the new value) or ``"removed"`` (only in the
            recorded one).
        old: the recorded value (``None`` when added).
        new: the new value (``None`` when removed).
    """

    path: str
    kind: Literal["changed", "added", "removed"]
    old: Any = None
    new: Any = None


def diff_json(old: Any, new: Any, *, limit: int = 50) -> list[Change]:
    """The differences between ``old`` and ``new`` (parsed JSON), at most ``limit`` of them.

    Objects are compared key by key, whatever the key order. Arrays of the same length are
    compared item by item; when the length differs, items are aligned first so that one
    inserted message shows as one ``added`` item rather than as every later item changed.
    ``1`` and ``1.0`` are equal, as in JSON; ``1`` and ``true`` are not.
    """
    changes: list[Change] = []
    _diff(old, new, "", changes, limit)
    return changes


def render_changes(changes: list[Change], *, limit: int = 6, indent: str = "    ") -> list[str]:
    """The lines showing ``changes`` in an error message: a path, then ``-`` old / ``+`` new."""
    lines: list[str] = []
    for change in changes[:limit]:
        where = change.path or "the body"
        if change.kind == "added":
            lines.append(f"{indent}{where} added: {_short(change.new)}")
        elif change.kind == "removed":
            lines.append(f"{indent}{where} removed: {_short(change.old)}")
        else:
            old, new = _pair(change.old, change.new)
            lines += [f"{indent}{where} changed:", f"{indent}- {old}", f"{indent}+ {new}"]
    if len(changes) > limit:
        lines.append(f"{indent}... and {len(changes) - limit} more differences")
    return lines


def shorten_pair(old: str, new: str, width: int = _WIDTH) -> tuple[str, str]:
    """``repr`` of two strings, cut to ``width`` around their first difference.

    Both are cut at the same offset so the difference lines up; ``…`` marks a cut.
    """
    if len(old) <= width and len(new) <= width:
        return repr(old), repr(new)
    first = next(
        (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
        min(len(old), len(new)),
    )
    start = max(0, first - _LEAD)
    return _window(old, start, width), _window(new, start, width)


def _window(text: str, start: int, width: int) -> str:
    part = text[start : start + width]
    head = "…" if start > 0 else ""
    tail = "…" if start + width < len(text) else ""
    return repr(head + part + tail)


def _pair(old: Any, new: Any) -> tuple[str, str]:
    if isinstance(old, str) and isinstance(new, str):
        return shorten_pair(old, new)
    return _short(old), _short(new)


def _short(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def _diff(old: Any, new: Any, path: str, out: list[Change], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in old.items():
            where = _key_path(path, key)
            if key not in new:
                out.append(Change(where, "removed", old=value))
            else:
                _diff(value, new[key], where, out, limit)
        for key, value in new.items():
            if key not in old:
                out.append(Change(_key_path(path, key), "added", new=value))
    elif isinstance(old, list) and isinstance(new, list):
        _diff_lists(old, new, path, out, limit)
    elif not _same_scalar(old, new):
        out.append(Change(path, "changed", old=old, new=new))


def _diff_lists(old: list[Any], new: list[Any], path: str, out: list[Change], limit: int) -> None:
    if len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{path}[{i}]", out, limit)
        return
    import difflib  # only on the error path: it costs ~2 ms to import

    matcher = difflib.SequenceMatcher(
        None, [_canonical(x) for x in old], [_canonical(x) for x in new], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1)
        for k in range(paired):
            _diff(old[i1 + k], new[j1 + k], f"{path}[{j1 + k}]", out, limit)
        for i in range(i1 + paired, i2):
            out.append(Change(f"{path}[{i}]", "removed", old=old[i]))
        for j in range(j1 + paired, j2):
            out.append(Change(f"{path}[{j}]", "added", new=new[j]))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _same_scalar(old: Any, new: Any) -> bool:
    # bool is an int in Python but not in JSON: true != 1.
    return bool(old == new and isinstance(old, bool) == isinstance(new, bool))


def _key_path(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"
