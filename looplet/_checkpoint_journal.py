"""The checkpoint journal on disk: a snapshot, then one appended line per checkpoint.

A run's folder in a :class:`~looplet.checkpoint.FileCheckpointStore`::

    step-0001.json      a snapshot: one whole checkpoint document (looplet._checkpoint_doc)
    step-0001.journal   the checkpoints taken after it, one line each

A checkpoint is one line appended to the journal and synced to disk (``fdatasync``): the
items added to the run's lists since the previous checkpoint (steps, messages, permission
decisions, sub-agent runs, compactions, the session log's entries, model turns) and the
fields that changed (budget used, usage, pending calls...), so that saving a step costs what
the step added, not the size of the run (:mod:`looplet._checkpoint_writer` works out the
difference). A line is the record's JSON, a tab and the CRC-32 of that JSON in hex, then a
newline. Only a whole line counts: a line a crash cut short (no newline) was never a
checkpoint and is ignored, and dropped before the next append; a whole line that fails its
checksum or its checks is damage, reported, and no line after it is read (each line adds to
the one before). The first line names the format, the run and the snapshot it follows.

When a journal outgrows its snapshot (and :data:`MIN_JOURNAL_BYTES`), it is folded into a
new snapshot of its last checkpoint, written atomically (temporary file, fsync, rename,
fsync of the folder); then the old snapshot and journal are deleted. So a run keeps about
twice its last checkpoint on disk at most, and each byte is folded a bounded number of times.
A folded snapshot keeps a ``history``: for every checkpoint before it, its step, the lengths
of its lists and the fields it changed, so that an earlier step can still be loaded by
cutting the lists short (they only grow), unless a list was replaced since (a context
compaction rewrites the conversation): then that step is no longer kept.

Folders written before the journal (``step-NNNN.json`` per step, ``step-NNNN.end.json`` at
the end) are snapshots without a journal; a run resumed from one goes on in a journal after
its newest file, and its older files are left as they are.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looplet import _checkpoint_doc as D
from looplet._checkpoint_doc import LISTS, BadFile, Checkpoint
from looplet._version import __version__
from looplet.record.codec import DecodeError, decode_list

__all__ = [
    "FIELDS",
    "JOURNAL_FORMAT",
    "MIN_JOURNAL_BYTES",
    "NotKept",
    "Replay",
    "Segment",
    "append",
    "fold",
    "frame",
    "from_history",
    "fsync_dir",
    "header",
    "latest_position",
    "read_segment",
    "read_snapshot",
    "segments",
    "tidy",
    "trim",
    "write_atomically",
]

#: The format on a journal's first line; a reader refuses any other.
JOURNAL_FORMAT = "looplet-journal/1"
#: A journal is folded into a new snapshot once it is larger than its snapshot and this.
MIN_JOURNAL_BYTES = 64 * 1024
#: The fields of a checkpoint a record carries when they change (besides step, ended,
#: created_at, and the lists, which it adds to).
FIELDS = (
    "queries_used", "llm_calls", "usage", "stop_reason", "stop_detail", "final_text",
    "tool_names", "pending_calls", "pending_context", "stop_requested", "max_steps",
    "context_calibration",
)  # fmt: skip
#: Later than any checkpoint: the place of a damaged line, whose step cannot be read.
AFTER_ALL = (sys.maxsize, True)

_FILE = re.compile(r"^step-(\d{4,})(\.end\.json|\.json|\.journal)$")


# -- the files of a run ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """A snapshot file and the journal that may follow it (never an end file's)."""

    snapshot: Path
    step: int
    ended: bool

    @property
    def journal(self) -> Path:
        """``step-0001.journal`` beside ``step-0001.json``."""
        return self.snapshot.with_name(f"step-{self.step:04d}.journal")

    @property
    def position(self) -> tuple[int, bool]:
        """Where the snapshot stands in the run: (step, ended)."""
        return self.step, self.ended


def segments(run_dir: Path) -> list[Segment]:
    """The snapshots of a run folder, newest first (a step's end file before the step's)."""
    found = []
    with contextlib.suppress(OSError):
        for path in run_dir.iterdir():
            match = _FILE.match(path.name)
            if match and match.group(2) != ".journal":
                found.append(Segment(path, int(match.group(1)), match.group(2) == ".end.json"))
    return sorted(found, key=lambda s: s.position, reverse=True)


def _journals(run_dir: Path) -> list[tuple[int, Path]]:
    found = []
    with contextlib.suppress(OSError):
        for path in run_dir.iterdir():
            match = _FILE.match(path.name)
            if match and match.group(2) == ".journal":
                found.append((int(match.group(1)), path))
    return found


def latest_position(segment: Segment) -> tuple[int, bool]:
    """The place of the last whole line of the segment's journal, else of its snapshot;
    :data:`AFTER_ALL` when a whole line is damaged (what it held is unknown)."""
    if segment.ended:
        return segment.position
    try:
        data = segment.journal.read_bytes()
    except FileNotFoundError:
        return segment.position
    except OSError:
        return AFTER_ALL
    position = segment.position
    for number, line in _lines(data):
        payload = _payload(line)
        if payload is None:
            return AFTER_ALL
        if number == 1:
            continue  # the header
        try:
            record = json.loads(payload)
            step, ended = record["step"], record["ended"]
        except (ValueError, TypeError, KeyError):
            return AFTER_ALL
        if type(step) is not int or type(ended) is not bool:
            return AFTER_ALL
        position = max(position, (step, ended))
    return position


# -- reading -----------------------------------------------------------------------------------


def read_snapshot(segment: Segment, run_id: str | None) -> dict[str, Any]:
    """A snapshot's document, its format and its name checked (its fields not yet).

    Raises:
        BadFile: the file cannot be read, is no checkpoint, or is not the one its name says.
    """
    try:
        data = segment.snapshot.read_bytes()
    except OSError as exc:
        raise BadFile(f"cannot be read ({exc})") from None
    doc = D.parse_document(data)
    found = (doc.get("run_id"), doc.get("step"), doc.get("ended", False))
    if run_id is not None and found != (run_id, segment.step, segment.ended):
        raise BadFile(
            f"it holds run {found[0]!r} step {found[1]} but is stored as "
            f"{run_id}/{segment.snapshot.name}: it was copied or renamed"
        )
    return doc


@dataclass(slots=True)
class Replay:
    """A segment read up to a checkpoint.

    Attributes:
        checkpoint: the checkpoint rebuilt (the last one, or the one asked for).
        history: a short record of every checkpoint up to it (see the module docstring).
        damage: the journal and why its first damaged line could not be read, if one was met.
    """

    checkpoint: Checkpoint
    history: list[dict[str, Any]]
    damage: tuple[Path, str] | None = None


class NotKept(Exception):
    """A step is older than a snapshot, and its conversation was replaced since."""


class _Damage(Exception):
    """Why a whole journal line cannot be read (one clause)."""


class _State:
    """A checkpoint being rebuilt: its lists (decoded, or as JSON with ``decoders`` None to
    fold them), its other fields as JSON, and those checked."""

    __slots__ = ("checked", "decoders", "doc", "lists")

    def __init__(
        self,
        doc: dict[str, Any],
        lists: dict[str, list[Any]],
        decoders: dict[str, Callable[[Any, str], Any]] | None,
    ) -> None:
        self.doc = {k: v for k, v in doc.items() if k not in LISTS}
        self.lists = lists
        self.decoders = decoders
        self.checked = D.scalar_fields(self.doc)


def read_segment(
    segment: Segment, run_id: str | None, *, upto: tuple[int, bool] | None = None
) -> Replay:
    """The snapshot, then each journal line up to ``upto`` (else to the end) laid over it.

    Raises:
        BadFile: the snapshot cannot be read (damage in the journal is reported, not raised).
    """
    doc = read_snapshot(segment, run_id)
    base = D.checkpoint_from_doc(doc, segment.snapshot)  # every field checked (not history)
    replay = Replay(base, _history(doc))
    if segment.ended or (upto is not None and upto < segment.position):
        return replay  # an end file has no journal; an earlier step needs only the history
    try:
        data = segment.journal.read_bytes()
    except FileNotFoundError:
        return replay
    except OSError as exc:
        replay.damage = (segment.journal, f"cannot be read ({exc})")
        return replay
    lists = {name: list(getattr(base, name)) for name in LISTS}
    state = _State(doc, lists, D.list_decoders())
    heads, damage = _lay(state, data, base.run_id, base.step, upto)
    if damage is not None:
        replay.damage = (segment.journal, damage)
    if heads:
        replay.history.extend(heads)
        replay.checkpoint = D.checkpoint_from_parts(
            base.run_id, state.checked, state.lists, segment.journal
        )
    return replay


def _lay(
    state: _State, data: bytes, run_id: str, after: int, upto: tuple[int, bool] | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Lay a journal's lines over ``state`` in order, up to ``upto``: the heads of the lines
    laid, and why the first damaged line could not be read (``None``: none was)."""
    heads = []
    for number, line in _lines(data):
        try:
            payload = _payload(line)
            if payload is None:
                raise _Damage("its checksum does not match: the line is damaged")
            record = json.loads(payload)
            if number == 1:
                _check_header(record, run_id, after)
                continue
            if upto is not None and _position(record, "") > upto:
                break
            heads.append(_apply(state, record))
        except _Damage as exc:
            reason = str(exc)
        except DecodeError as exc:
            reason = f"malformed record: {exc}"
        except ValueError as exc:
            reason = f"not valid JSON ({exc})"
        else:
            continue
        return heads, f"line {number}: {reason}"
    return heads, None


def from_history(replay: Replay, step: int) -> Checkpoint | None:
    """The checkpoint after step ``step`` as a snapshot's history records it, or ``None``;
    ``replay`` is the snapshot alone (:func:`read_segment` with ``upto`` before it).

    Raises:
        NotKept: the step is recorded, but a list was replaced after it.
        BadFile: the history is malformed.
    """
    snapshot = replay.checkpoint
    fields: dict[str, Any] = {}
    found: tuple[int, dict[str, Any]] | None = None
    try:
        for index, head in enumerate(replay.history):
            where = f"history[{index}]"
            changed = head.get("fields", {})
            if not isinstance(changed, dict):
                raise DecodeError(f"{where}.fields", "expected an object")
            fields.update(changed)
            if _position(head, where) == (step, False):
                found = index, {**fields, "step": step, "created_at": head.get("created_at", 0.0)}
        if found is None:
            return None
        index, doc = found
        if any(head.get("cut") for head in replay.history[index + 1 :]):
            raise NotKept(step)
        sizes = _sizes(replay.history[index], f"history[{index}]")
        checked = D.scalar_fields({**doc, "task": snapshot.task})
        lists = {
            name: list(getattr(snapshot, name)[:n]) for name, n in zip(LISTS, sizes, strict=True)
        }
        return D.checkpoint_from_parts(snapshot.run_id, checked, lists, snapshot.path)
    except DecodeError as exc:
        raise BadFile(f"malformed snapshot history: {exc}") from None


def _history(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The snapshot's history (taken out of ``doc``), or for an older snapshot, its own."""
    history = doc.pop("history", None)
    if history is None:
        head: dict[str, Any] = {k: doc[k] for k in ("step", "ended", "created_at") if k in doc}
        head["sizes"] = D.list_sizes([len(doc.get(name) or ()) for name in LISTS])
        head["fields"] = {k: doc[k] for k in FIELDS if k in doc}
        return [head]
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise BadFile("malformed checkpoint: field history: expected an array of objects")
    return history


def _check_header(record: Any, run_id: str, after: int) -> None:
    fmt = record.get("format") if isinstance(record, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("looplet-journal/"):
        raise _Damage(f'not a looplet journal (no "format": "{JOURNAL_FORMAT}")')
    if fmt != JOURNAL_FORMAT:
        raise _Damage(f"written in format {fmt!r} by a newer looplet: upgrade looplet to read it")
    if (record.get("run_id"), record.get("after")) != (run_id, after):
        raise _Damage(
            f"it follows run {record.get('run_id')!r} step {record.get('after')}, not this "
            f"snapshot (run {run_id!r} step {after}): it was copied or renamed"
        )


def _apply(state: _State, record: Any) -> dict[str, Any]:
    """Lay ``record`` over ``state`` (all of it, or nothing if it is malformed); its head."""
    if not isinstance(record, dict):
        raise DecodeError("record", "expected an object")
    sizes = _sizes(record, "")
    ops = record.get("lists", {})
    if not isinstance(ops, dict) or not set(ops) <= set(LISTS):
        raise DecodeError("lists", f"expected an object with keys among {LISTS}")
    decoders = state.decoders
    staged = []
    cut = False
    for name, size in zip(LISTS, sizes, strict=True):
        items = state.lists[name]
        op = ops.get(name)
        if op is None:
            keep, added = len(items), []
        elif (
            isinstance(op, list)
            and len(op) == 2
            and type(op[0]) is int
            and 0 <= op[0] <= len(items)
        ):
            keep = op[0]
            if decoders is not None:
                added = decode_list(op[1], f"lists.{name}[1]", decoders[name])
            elif isinstance(op[1], list):
                added = op[1]
            else:
                raise DecodeError(f"lists.{name}[1]", "expected an array")
        else:
            raise DecodeError(f"lists.{name}", f"expected [kept, items] with kept <= {len(items)}")
        if keep + len(added) != size:
            raise DecodeError("sizes", f"{name}: {size} recorded, {keep + len(added)} rebuilt")
        cut = cut or keep < len(items)
        staged.append((items, keep, added))
    changed = record.get("fields", {})
    if not isinstance(changed, dict) or not set(changed) <= set(FIELDS):
        raise DecodeError("fields", f"expected an object with keys among {FIELDS}")
    doc = {**state.doc, **changed}
    for key in ("step", "ended", "created_at"):
        doc[key] = record.get(key)
    checked = D.scalar_fields(doc)
    if checked["step"] != sizes[1]:
        raise DecodeError("step", f"is {checked['step']}, but {sizes[1]} steps are recorded")
    for items, keep, added in staged:  # all checked: now change the state
        del items[keep:]
        items.extend(added)
    state.doc, state.checked = doc, checked
    head = {k: v for k, v in record.items() if k != "lists"}
    if cut:
        head["cut"] = True
    return head


def _sizes(record: dict[str, Any], where: str) -> list[int]:
    sizes = record.get("sizes")
    if (
        not isinstance(sizes, list)
        or not len(LISTS) - D.OPTIONAL_LISTS <= len(sizes) <= len(LISTS)
        or not all(type(n) is int and n >= 0 for n in sizes)
    ):
        raise DecodeError(_at(where, "sizes"), f"expected {len(LISTS)} counts, got {sizes!r}")
    # The last ones (session log, turns) are left out while empty (D.list_sizes), as before.
    return [*sizes, *[0] * (len(LISTS) - len(sizes))]


def _position(record: Any, where: str) -> tuple[int, bool]:
    if not isinstance(record, dict):
        raise DecodeError(where or "record", "expected an object")
    step, ended = record.get("step"), record.get("ended")
    if type(step) is not int or step < 0 or type(ended) is not bool:
        raise DecodeError(
            _at(where, "step"), f"expected a step number and ended, got {step!r}, {ended!r}"
        )
    return step, ended


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# -- lines -------------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """One journal line: ``payload``, a tab, its CRC-32 in hex, a newline."""
    return b"%s\t%08x\n" % (payload, zlib.crc32(payload))


def header(run_id: str, after: int) -> bytes:
    """A journal's first line: its format, its run, the step of the snapshot it follows."""
    doc = {"format": JOURNAL_FORMAT, "run_id": run_id, "after": after}
    return frame(json.dumps(doc).encode())


def _payload(line: bytes) -> bytes | None:
    """The JSON of a whole line, or ``None`` if its checksum does not match."""
    payload, tab, checksum = line.rpartition(b"\t")
    if not tab or len(checksum) != 8:
        return None
    try:
        expected = int(checksum, 16)
    except ValueError:
        return None
    return payload if zlib.crc32(payload) == expected else None


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(number, line) of each whole line; a last line without its newline is one a crash
    cut short, never a checkpoint, and is left out."""
    start = number = 0
    while (end := data.find(b"\n", start)) >= 0:
        number += 1
        yield number, data[start:end]
        start = end + 1


# -- writing -----------------------------------------------------------------------------------


def append(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (made if need be, then its folder synced) and sync it."""
    made = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        # fdatasync: the data and the file's new length, without its times (fsync elsewhere)
        (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)
    finally:
        os.close(fd)
    if made:
        fsync_dir(path.parent)


def trim(journal: Path) -> int:
    """Drop a last line a crash cut short (made durable), so that the next append starts a
    line of its own; the journal's length after that (0 if there is none)."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return 0
    whole = data.rfind(b"\n") + 1
    if whole < len(data):
        with open(journal, "r+b") as file:
            file.truncate(whole)
            os.fsync(file.fileno())
    return whole


def fold(segment: Segment, run_id: str) -> tuple[Segment, int]:
    """A new snapshot of the segment's last checkpoint, its history kept; the old snapshot
    and journal deleted. Returns the new segment and its snapshot's size.

    It works on the JSON as written (every line redacted, and checked by its checksum): the
    lists are cut and extended, the fields replaced, and the result written, with no item
    decoded or encoded again, so that a fold costs little more than reading and writing the
    bytes. Reading a checkpoint back checks every field.

    Raises:
        OSError: the snapshot could not be written (the old files are then left as they were).
        BadFile: the segment cannot be read to its end (it is never folded past damage).
    """
    from looplet._reply_guard import utf8

    doc = read_snapshot(segment, run_id)
    lists = {name: doc.get(name, []) for name in LISTS}
    try:
        if not all(isinstance(items, list) for items in lists.values()):
            raise DecodeError("lists", "expected arrays")
        state = _State(doc, lists, None)
    except DecodeError as exc:
        raise BadFile(f"malformed checkpoint: {exc}") from None
    history = _history(doc)
    heads, damage = _lay(state, segment.journal.read_bytes(), run_id, segment.step, None)
    if damage is not None:
        raise BadFile(f"{segment.journal.name}: {damage}")
    if not heads or state.checked["ended"]:
        return segment, segment.snapshot.stat().st_size  # nothing to fold, or the run's end
    folded_doc = {**state.doc, **state.lists, "looplet_version": __version__}
    for name in LISTS[-D.OPTIONAL_LISTS :]:  # a run without a session log or turns: as before
        if not folded_doc.get(name):
            folded_doc.pop(name, None)
    folded_doc["history"] = history + heads
    data = utf8(json.dumps(folded_doc, ensure_ascii=False, allow_nan=False))
    step = state.checked["step"]
    folded = Segment(segment.snapshot.with_name(f"step-{step:04d}.json"), step, False)
    write_atomically(folded.snapshot, data)
    with contextlib.suppress(OSError):  # left over, it is deleted when the run next resumes
        _drop(segment)
    return folded, len(data)


def tidy(run_dir: Path, current: Segment | None) -> None:
    """Delete what a crash may have left: temporary files and, with the segment a run goes
    on in, the segments folded into it (older snapshots that have a journal) and journals
    whose snapshot is gone."""
    for stale in run_dir.glob(".step-*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    if current is None:
        return
    for step, journal in _journals(run_dir):
        snapshot = journal.with_name(f"step-{step:04d}.json")
        if step < current.step or not snapshot.exists():
            with contextlib.suppress(OSError):
                _drop(Segment(snapshot, step, False))


def _drop(segment: Segment) -> None:
    # The snapshot first: a journal without its snapshot is known to be stale.
    for path in (segment.snapshot, segment.journal):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    fsync_dir(segment.snapshot.parent)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file, fsync, rename, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; elsewhere the rename is all we have)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some file systems cannot sync a folder
            raise
    finally:
        os.close(fd)
