"""Saving a run as it goes: a snapshot first, then one journal record per checkpoint.

:class:`JournalWriter` is what ``RunState.checkpoint`` holds when a run is given
``checkpoint=store``. Its first save writes the whole run as a snapshot
(``FileCheckpointStore.save``); every later one appends a record to the journal that
follows it (:mod:`looplet._checkpoint_journal`) holding only what changed since the save
before: the items each list gained, and the fields whose value changed. So a save encodes
the new step, its messages and its model turn, never the whole run again.

It knows what it wrote from the lists themselves: the same list object, no shorter, with the
same item where it stopped, has only been appended to. Anything else (the new conversation a
context compaction builds, a sub-agent's run still going when its parent saved) is written
again from the last place known to be unchanged. Each record is redacted
(:mod:`looplet._redact`) before it is written, like every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from looplet import _checkpoint_journal as J
from looplet._checkpoint_doc import LISTS, BadFile, Checkpoint, checkpoint_doc, list_sizes
from looplet._redact import TextRedactor, credentials_generation
from looplet.errors import CheckpointError
from looplet.record.codec import (
    encode_compaction,
    encode_data,
    encode_message,
    encode_permission,
    encode_step,
    encode_trajectory,
    encode_turn,
)

if TYPE_CHECKING:
    from looplet.checkpoint import FileCheckpointStore
    from looplet.run_state import RunState

__all__ = ["JournalWriter", "snapshot"]

#: What the writer remembers of a list: the list, how many of its items are settled (will
#: not change), how many it has written, and the last settled item (to see it is still there).
_Tracked = tuple[list[Any], int, int, Any]
_UNSET: Any = object()


def snapshot(run: RunState, run_id: str, final: bool, *, lists: bool = True) -> Checkpoint:
    """The checkpoint of ``run`` as it is now (``final``: it has ended); with ``lists=False``
    only its fields, its lists and task left empty (what a journal record compares)."""
    trajectory = run.trajectory
    return Checkpoint(
        run_id=run_id,
        step=len(trajectory.steps),
        ended=final,
        task=encode_data(trajectory.task) if lists else None,
        messages=tuple(run.messages) if lists else (),
        steps=tuple(trajectory.steps) if lists else (),
        # Calls screened with their group but not yet recorded are charged again on resume.
        queries_used=run.state.queries_used - run.charged_pending,
        llm_calls=trajectory.llm_calls,
        usage=trajectory.usage,
        stop_reason=trajectory.stop_reason,
        stop_detail=trajectory.stop_detail,
        final_text=trajectory.final_text,
        tool_names=tuple(sorted(run.tools.tool_names)),
        pending_calls=tuple(run.pending_calls),
        pending_context=tuple(run.pending_context),
        stop_requested=run.stop_requested,
        max_steps=run.max_steps,
        compactions=tuple(r.to_dict() for r in run.compactions) if lists else (),
        permission_decisions=tuple(trajectory.permission_decisions) if lists else (),
        children=tuple(trajectory.children) if lists else (),
        context_calibration=None if run.meter is None else (run.meter.limit, run.meter.scale),
        created_at=time.time(),
        session_log_data=tuple(e.to_dict() for e in session_entries(run)) if lists else (),
        turns=tuple(trajectory.turns) if lists else (),
    )


def session_entries(run: RunState) -> list[Any]:
    """The entries of the run's session log (``session_log=``), else an empty list."""
    session = sys.modules.get("looplet.session")  # no run has a log before it is loaded
    log = session.log_of(run) if session is not None else None
    return log.entries if log is not None else []


class JournalWriter:
    """Saves one run to a store: a snapshot, then a journal record per checkpoint."""

    __slots__ = (
        "_environ",
        "_fields",
        "_fold_at",
        "_journal_bytes",
        "_lists",
        "_redactor",
        "_segment",
        "run_id",
        "store",
    )

    def __init__(
        self,
        store: FileCheckpointStore,
        run_id: str,
        run: RunState,
        resumed: Checkpoint | None = None,
        segment: J.Segment | None = None,
    ) -> None:
        """``segment``: the journal to go on with (the one ``resumed`` was read from), if any.

        Raises:
            OSError: that journal could not be read or its cut-short last line dropped.
        """
        self.store = store
        self.run_id = run_id
        self._segment = segment
        self._lists = _track(run)
        self._fields = _fields(resumed) if resumed is not None else {}
        if resumed is not None and len(resumed.session_log_data) != self._lists[_LOG][2]:
            # The log was rebuilt from the steps (the checkpoint kept none): write it whole.
            self._lists[_LOG] = (self._lists[_LOG][0], 0, 0, None)
        self._journal_bytes = self._fold_at = 0
        self._redactor: TextRedactor | None = None
        self._environ: tuple[int, dict[Any, Any]] | None = None
        if segment is not None:
            self._journal_bytes = J.trim(segment.journal)
            self._fold_at = max(J.MIN_JOURNAL_BYTES, segment.snapshot.stat().st_size)

    def save(self, run: RunState, final: bool) -> CheckpointError | None:
        """Save ``run`` now; the error of a failed write is returned for the engine."""
        try:
            if self._segment is None:
                self._start(run, final)
            else:
                self._append(run, final, self._segment)
        except CheckpointError as err:
            return err
        return None

    def _start(self, run: RunState, final: bool) -> None:
        checkpoint = snapshot(run, self.run_id, final)
        path = self.store.save(checkpoint)
        self._segment = J.Segment(path, checkpoint.step, final)
        self._lists = _track(run)
        self._fields = _fields(checkpoint)
        self._journal_bytes = 0
        try:
            self._fold_at = max(J.MIN_JOURNAL_BYTES, path.stat().st_size)
        except OSError:
            self._fold_at = J.MIN_JOURNAL_BYTES

    def _append(self, run: RunState, final: bool, segment: J.Segment) -> None:
        from looplet._reply_guard import utf8

        now = snapshot(run, self.run_id, final, lists=False)
        fields = _fields(now)
        record: dict[str, Any] = {"step": now.step, "ended": final, "created_at": now.created_at}
        ops: dict[str, Any] = {}
        tracked: dict[str, _Tracked] = {}
        for name, items, encode in _lists_of(run):
            op, tracked[name] = _diff(self._lists[name], items, encode, name)
            if op is not None:
                ops[name] = op
        record["sizes"] = list_sizes([tracked[name][2] for name in LISTS])
        if ops:
            record["lists"] = ops
        changed = {k: v for k, v in fields.items() if self._fields.get(k, _UNSET) != v}
        if changed:
            record["fields"] = changed
        journal = segment.journal
        try:
            text = json.dumps(
                self._redact(record), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            )
            line = J.frame(utf8(text))
        except (TypeError, ValueError) as exc:  # encode_data leaves none; a hand-built one may
            raise CheckpointError(
                f"cannot write checkpoint {journal} (step {now.step}): its data is not JSON "
                f"({exc}).",
                path=journal,
                run_id=self.run_id,
                step=now.step,
            ) from exc
        if self._journal_bytes == 0:
            line = J.header(self.run_id, segment.step) + line
        try:
            J.append(journal, line)
        except OSError as exc:
            kept = f"the checkpoints up to step {self._lists['steps'][2]} are intact"
            raise self.store._write_error(journal, exc, self.run_id, now.step, kept) from exc
        self._journal_bytes += len(line)
        self._lists, self._fields = tracked, fields
        if not final and now.step > segment.step and self._journal_bytes > self._fold_at:
            self._fold(segment)

    def _redact(self, record: dict[str, Any]) -> dict[str, Any]:
        # A TextRedactor reads the environment when made (about 0.2 ms, as much as the rest
        # of a save): keep one while the credentials it knows of stay the same.
        environ = getattr(os.environ, "_data", None)  # CPython's own dict: copied in 1 µs
        key = None if environ is None else (credentials_generation(), dict(environ))
        if self._redactor is None or key is None or key != self._environ:
            self._redactor, self._environ = TextRedactor(), key
        return self._redactor.data(record)

    def _fold(self, segment: J.Segment) -> None:
        try:
            folded, size = J.fold(segment, self.run_id)
        except (OSError, BadFile) as exc:
            # This step's checkpoint is safe in the journal; only disk space waits for the fold.
            self._fold_at = 2 * self._journal_bytes
            warnings.warn(
                f"could not fold the checkpoint journal {segment.journal} into a snapshot "
                f"({exc}); the run goes on, and the fold is tried again when the journal "
                "has doubled",
                stacklevel=2,
            )
            return
        if folded == segment:  # nothing was folded (the writer never asks for that)
            self._fold_at = 2 * self._journal_bytes
            return
        self._segment, self._journal_bytes = folded, 0
        self._fold_at = max(J.MIN_JOURNAL_BYTES, size)


def _lists_of(run: RunState) -> tuple[tuple[str, list[Any], Callable[[Any], Any]], ...]:
    """The run's lists in :data:`LISTS` order, each with its encoder."""
    trajectory = run.trajectory
    return (
        ("messages", run.messages, encode_message),
        ("steps", trajectory.steps, encode_step),
        ("permission_decisions", trajectory.permission_decisions, encode_permission),
        ("children", trajectory.children, encode_trajectory),
        ("compactions", run.compactions, encode_compaction),
        (_LOG, session_entries(run), _encode_entry),
        ("turns", trajectory.turns, encode_turn),
    )


_LOG = "session_log_data"


def _encode_entry(entry: Any) -> dict[str, Any]:
    return entry.to_dict()  # type: ignore[no-any-return]


def _track(run: RunState) -> dict[str, _Tracked]:
    return {name: _tracked(name, items) for name, items, _ in _lists_of(run)}


def _tracked(name: str, items: list[Any]) -> _Tracked:
    settled = len(items)
    if name == "children":  # a sub-agent's run still going may change: not settled yet
        settled = next((i for i, c in enumerate(items) if c.stop_reason is None), settled)
    return items, settled, len(items), items[settled - 1] if settled else None


def _diff(
    before: _Tracked, items: list[Any], encode: Callable[[Any], Any], name: str
) -> tuple[list[Any] | None, _Tracked]:
    """The record's operation on a list, ``[kept, new items]`` (``None``: unchanged)."""
    known, settled, written, last = before
    if items is known and len(items) >= settled and (not settled or items[settled - 1] is last):
        keep = settled
    else:  # replaced, or changed where it had stopped: write it whole
        keep = 0
    after = _tracked(name, items)
    if keep == written == len(items):
        return None, after
    return [keep, [encode(item) for item in items[keep:]]], after


def _fields(checkpoint: Checkpoint) -> dict[str, Any]:
    """The JSON of the checkpoint's fields that a record carries when they change."""
    if any(getattr(checkpoint, name) for name in LISTS):
        checkpoint = dataclasses.replace(
            checkpoint,
            messages=(),
            steps=(),
            permission_decisions=(),
            children=(),
            compactions=(),
            session_log_data=(),
            turns=(),
        )
    doc = checkpoint_doc(checkpoint)
    return {key: doc[key] for key in J.FIELDS}
