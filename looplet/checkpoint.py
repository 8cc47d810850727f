"""Checkpoints: save a run after every step, and resume it where it stopped.

``composable_loop(..., checkpoint=store)`` saves the run after each step's tool has run and
its step has been recorded, before the step is handed to the caller, and once more when the
run ends. ``resume=store`` continues the newest run in the store: the conversation, the
steps, the budget already used and the calls of the interrupted turn that were never
recorded come back, so no recorded step runs twice and no budget is granted twice. A tool
call runs again only if the process died after it started and before its step's checkpoint
reached the disk. A run that ended is not resumed (:class:`~looplet.errors.CheckpointError`,
or ``restart=True`` to start a new run instead).

A :class:`FileCheckpointStore` keeps a run in ``<dir>/<run_id>/``: a snapshot of the whole
run (``step-0001.json``, written atomically), then a journal (``step-0001.journal``) that
gains one line per checkpoint, synced to disk, holding only what the step changed; when the
journal outgrows its snapshot it is folded into a new one, so a run keeps about twice its
last checkpoint on disk and each save costs what its step added
(:mod:`looplet._checkpoint_journal`, :mod:`looplet._checkpoint_writer`). Every step stays
loadable (``load(run_id, step)``); folders written before the journal (a
``step-NNNN.json`` per step, ``step-NNNN.end.json`` at the end) are read as they are. The
documents are versioned JSON (``"format": "looplet-checkpoint/1"``); tool data that JSON
cannot hold is stored by its ``repr`` in a ``{"__looplet_repr__": ...}`` marker and comes
back as that dict. The trajectory's model turns (:attr:`~looplet.types.Trajectory.turns`:
a step's checkpoint holds every turn recorded so far, the one whose calls made the step, and
still pending, included), permission decisions and sub-agents' runs are saved too (a
permission rule's argument matcher, being code, comes back as a stand-in that refuses to
decide), and so is a context budget's calibration (the limit a provider's
refusal lowered, the provider's tokens per estimated one), and a run's session log
(``session_log=``, :mod:`looplet.session`): a resumed run goes on with it. Hooks, tools and
the agent state's own fields (other than ``steps`` and ``queries_used``) are not saved.
The checkpoint document lives in :mod:`looplet._checkpoint_doc`, the encoding of each value
in the run record's one codec, :mod:`looplet.record.codec`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from looplet import _checkpoint_doc as D
from looplet import _checkpoint_journal as J
from looplet._checkpoint_doc import FORMAT, Checkpoint
from looplet._checkpoint_writer import JournalWriter
from looplet._reply_guard import utf8
from looplet.errors import CheckpointError, ConfigurationError
from looplet.record.codec import DecodeError, decode_compaction, encode_data, has_repr_marker

if TYPE_CHECKING:
    from looplet.run_state import RunState

__all__ = ["FORMAT", "Checkpoint", "FileCheckpointStore", "resume_loop_state"]


@final
class FileCheckpointStore:
    """Checkpoints as files under one folder: ``<dir>/<run_id>/step-0001.json`` and its journal.

    A snapshot goes to a temporary file in the same folder, is flushed to disk, renamed over
    the target (``os.replace``) and the folder is synced, so a file is either the old one or
    the whole new one; a journal line is appended and synced, and counts only once it is
    whole (a line a crash cut short is ignored). Run ids must be plain names (letters,
    digits, ``.``, ``_``, ``-``): no separators, no ``..``, no absolute paths. One process
    writes a run at a time.

    Example::

        store = FileCheckpointStore(".looplet/runs")
        for step in composable_loop(llm=llm, tools=tools, task=task, checkpoint=store,
                                    resume=store):
            print(step.pretty())

    Attributes:
        directory: the folder.
        skipped: the files the last :meth:`load_latest` passed over (a snapshot, or a journal
            from its first damaged line on), with the reason.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.skipped: list[tuple[Path, str]] = []

    def __repr__(self) -> str:
        return f"FileCheckpointStore({str(self.directory)!r})"

    def run_dir(self, run_id: str) -> Path:
        """The folder of ``run_id`` (checked to be a plain name inside the store)."""
        if not isinstance(run_id, str) or not D.RUN_ID.match(run_id):
            raise CheckpointError(
                f"invalid run id {run_id!r}: a run id names a folder inside {self.directory}, "
                "so it may hold only letters, digits, '.', '_' and '-', must start with a "
                "letter or digit and have at most 128 characters (no path separators, no "
                "'..', not an absolute path). Pass a plain name such as 'refund-42'.",
                path=self.directory,
                run_id=str(run_id),
            )
        return self.directory / run_id

    def runs(self) -> list[str]:
        """The ids of the runs with at least one checkpoint, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name for p in self.directory.iterdir() if D.RUN_ID.match(p.name) and J.segments(p)
        )

    def save(self, checkpoint: Checkpoint) -> Path:
        """Write ``checkpoint`` atomically; return its path.

        Raises:
            CheckpointError: the write failed (disk full, no permission...); the file the
                checkpoint would replace, and every earlier one, are left as they were.
        """
        run_dir = self.run_dir(checkpoint.run_id)
        path = run_dir / checkpoint.file_name
        try:
            data = utf8(checkpoint.to_json())  # a lone surrogate is written as U+FFFD
        except (TypeError, ValueError) as exc:  # encode_data leaves none; a hand-built one may
            raise CheckpointError(
                f"cannot write checkpoint {path}: its data is not JSON ({exc}).",
                path=path,
                run_id=checkpoint.run_id,
                step=checkpoint.step,
            ) from exc
        try:
            if not run_dir.is_dir():
                run_dir.mkdir(parents=True, exist_ok=True)
                J.fsync_dir(run_dir.parent)
            J.write_atomically(path, data)
        except OSError as exc:
            earlier = [s.snapshot for s in J.segments(run_dir) if s.snapshot != path]
            kept = (
                f"the previous checkpoint, {earlier[0]}, is intact"
                if earlier
                else "no earlier checkpoint of this run exists"
            )
            raise self._write_error(path, exc, checkpoint.run_id, checkpoint.step, kept) from exc
        return path

    def load(self, run_id: str, step: int) -> Checkpoint:
        """The checkpoint taken after step ``step`` of ``run_id`` (not an end checkpoint).

        It is read from that step's snapshot, its journal line, or, for a step folded into a
        later snapshot, that snapshot's history of the steps before it.

        Raises:
            CheckpointError: the run has no checkpoint of that step (or no longer keeps it),
                or the file holding it cannot be read.
        """
        run_dir = self.run_dir(run_id)
        gone = ""
        for segment in J.segments(run_dir):
            if segment.ended:
                continue
            path = segment.snapshot
            try:
                replay = J.read_segment(segment, run_id, upto=(step, False))
                if segment.step > step:
                    found = J.from_history(replay, step)
                elif replay.checkpoint.step == step:
                    found = replay.checkpoint
                elif replay.damage is not None:
                    path = replay.damage[0]
                    raise D.BadFile(replay.damage[1])
                else:
                    found = None
            except J.NotKept:
                gone = (
                    f" (step {step} is recorded in {segment.snapshot.name}, but a context "
                    "compaction replaced the conversation after it)"
                )
                continue
            except D.BadFile as bad:
                raise CheckpointError(
                    f"cannot resume from {path}: {bad.reason}. Resume from another step of "
                    f"run {run_id!r}, or delete {run_dir} to start over.",
                    path=path,
                    run_id=run_id,
                    step=step,
                ) from None
            if found is not None:
                return found
        raise CheckpointError(
            f"no checkpoint of step {step} in {run_dir}: run {run_id!r} has these "
            f"checkpoints: {_kept(run_dir)}{gone}.",
            path=run_dir / f"step-{step:04d}.json",
            run_id=run_id,
            step=step,
        )

    def load_latest(self, run_id: str | None = None) -> Checkpoint | None:
        """The newest checkpoint that can be read, of ``run_id`` or else of the newest run.

        A newer snapshot that cannot be read, or a damaged journal line, is passed over with
        a warning (and listed in :attr:`skipped`); a last journal line that a crash cut short
        was never a checkpoint and is ignored. ``None`` when there is no checkpoint at all.

        Raises:
            CheckpointError: the run has checkpoints but none can be read.
        """
        self.skipped = []
        if run_id is None:
            run_id = self._newest_run()
            if run_id is None:
                return None
        run_dir = self.run_dir(run_id)
        found = J.segments(run_dir)
        for segment in found:
            try:
                replay = J.read_segment(segment, run_id)
            except D.BadFile as bad:
                self.skipped.append((segment.snapshot, bad.reason))
                continue
            if replay.damage is not None:
                self.skipped.append(replay.damage)
            checkpoint = replay.checkpoint
            if self.skipped:
                skipped = "; ".join(f"{p.name}: {why}" for p, why in self.skipped)
                warnings.warn(
                    f"skipped unreadable checkpoint(s) of run {run_id!r} in {run_dir} "
                    f"({skipped}); using step {checkpoint.step} from {_name(checkpoint)}, "
                    "the newest intact one.",
                    stacklevel=2,
                )
            return checkpoint
        if not found:
            return None
        newest, why = self.skipped[0]
        raise CheckpointError(
            f"cannot resume run {run_id!r}: none of its {len(found)} checkpoint(s) in "
            f"{run_dir} can be read; the newest, {newest.name}: {why}. Delete {run_dir} to "
            "start over.",
            path=newest,
            run_id=run_id,
        )

    def _newest_run(self) -> str | None:
        newest: tuple[int, str] | None = None
        for run_id in self.runs():
            files = [
                f for s in J.segments(self.directory / run_id) for f in (s.snapshot, s.journal)
            ]
            mtime = max(_mtime(f) for f in files)
            if newest is None or (mtime, run_id) > newest:
                newest = (mtime, run_id)
        return newest[1] if newest else None

    def _has_after(self, checkpoint: Checkpoint) -> bool:
        """Whether the run already has a checkpoint later than ``checkpoint``."""
        mine = (checkpoint.step, checkpoint.ended)
        segments = J.segments(self.run_dir(checkpoint.run_id))
        return any(J.latest_position(s) > mine for s in segments)

    def _write_error(
        self, path: Path, exc: OSError, run_id: str, step: int, kept: str
    ) -> CheckpointError:
        """The error of a failed write of ``path``; ``kept`` says what is still intact."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = f"free disk space on the drive of {self.directory}"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = f"make {path.parent} writable"
        else:
            fix = "fix the cause above"
        return CheckpointError(
            f"could not write checkpoint {path}: {exc}. The run was stopped; {kept}. "
            f"To go on, {fix}, then resume with resume={self!r}.",
            path=path,
            run_id=run_id,
            step=step,
        )


def resume_loop_state(
    source: FileCheckpointStore | Checkpoint | str | os.PathLike[str],
    *,
    run_id: str | None = None,
    step: int | None = None,
) -> Checkpoint:
    """The checkpoint to resume a run from, checked: pass it to ``composable_loop(resume=)``.

    ``source`` is a store (its newest intact checkpoint, of ``run_id`` if given, or the one
    after ``step``), a checkpoint file's path (a snapshot: that checkpoint; a journal: its
    last), or a :class:`Checkpoint`.

    Example::

        checkpoint = resume_loop_state(store, run_id="7f3a", step=11)
        for step in composable_loop(llm, tools=tools, checkpoint=store, resume=checkpoint):
            print(step.pretty())

    Raises:
        CheckpointError: there is nothing to resume, the file cannot be read, or the run
            has already ended (a finished run is never resumed silently).
    """
    if isinstance(source, Checkpoint):
        checkpoint = source
    elif isinstance(source, FileCheckpointStore):
        if step is not None:
            if run_id is None:
                raise CheckpointError(
                    f"resume_loop_state(step={step}) needs run_id= too: step {step} of which "
                    f"run? The runs in {source.directory}: {', '.join(source.runs()) or 'none'}.",
                    path=source.directory,
                )
            checkpoint = source.load(run_id, step)
        else:
            found = source.load_latest(run_id)
            if found is None:
                of_run = f" of run {run_id!r}" if run_id else ""
                raise CheckpointError(
                    f"nothing to resume: {source.directory} holds no checkpoint{of_run}. Run "
                    f"with checkpoint={source!r} to save one after every step.",
                    path=source.directory,
                    run_id=run_id,
                )
            checkpoint = found
    else:
        path = Path(source)
        try:
            checkpoint = _read_path(path)
        except D.BadFile as bad:
            raise CheckpointError(f"cannot resume from {path}: {bad.reason}.", path=path) from None
    if checkpoint.ended:
        raise _ended_error(checkpoint)
    return checkpoint


# -- wiring into the loop (called by looplet.loop.new_run) -------------------------------------


def attach_checkpoints(
    run: RunState,
    store: FileCheckpointStore | None,
    resume: FileCheckpointStore | Checkpoint | None,
    *,
    restart: bool,
    task_given: bool,
) -> None:
    """Restore ``run`` from ``resume`` (if there is a run to continue), and save to ``store``."""
    if store is not None and not isinstance(store, FileCheckpointStore):
        raise ConfigurationError(
            f"checkpoint= takes a FileCheckpointStore, got {type(store).__name__}: "
            "checkpoint=FileCheckpointStore('.looplet/runs')"
        )
    if resume is not None and not isinstance(resume, FileCheckpointStore | Checkpoint):
        raise ConfigurationError(
            f"resume= takes a FileCheckpointStore or a Checkpoint, got {type(resume).__name__}; "
            "for a file, pass resume=resume_loop_state(path)"
        )
    if restart and resume is None:
        raise ConfigurationError(
            "restart=True only applies with resume=: it starts a new run when the run to "
            "resume has already ended."
        )
    checkpoint = resume.load_latest() if isinstance(resume, FileCheckpointStore) else resume
    if checkpoint is not None and checkpoint.ended:
        if not restart:
            raise _ended_error(checkpoint)
        checkpoint = None
    if checkpoint is not None:
        _restore(run, checkpoint, task_given)
    if store is not None:
        run.checkpoint = _writer(run, store, checkpoint)


def _writer(run: RunState, store: FileCheckpointStore, resumed: Checkpoint | None) -> JournalWriter:
    """What saves ``run``: in the journal ``resumed`` was read from if it is the run's last
    checkpoint, else from a new snapshot at its next save."""
    run_id = _writer_run_id(run, store, resumed)
    segment = None
    if resumed is not None and run_id == resumed.run_id:
        run_dir = store.run_dir(run_id)
        newest = next(iter(J.segments(run_dir)), None)
        if newest is not None and resumed.path in (newest.snapshot, newest.journal):
            segment = newest
        J.tidy(run_dir, segment)  # what a process killed mid-write left
    try:
        return JournalWriter(store, run_id, run, resumed, segment)
    except OSError as exc:
        raise CheckpointError(
            f"cannot go on with the checkpoint journal of run {run_id!r} in "
            f"{store.run_dir(run_id)}: {exc}.",
            path=store.run_dir(run_id),
            run_id=run_id,
        ) from exc


def _restore(run: RunState, checkpoint: Checkpoint, task_given: bool) -> None:
    _check_tools(run, checkpoint)
    trajectory = run.trajectory
    if task_given:
        _check_task(trajectory.task, checkpoint)
    else:
        trajectory.task = run.hook_values["task"] = checkpoint.task
    trajectory.steps.extend(checkpoint.steps)
    if run.state.steps is not trajectory.steps:
        run.state.steps[:] = checkpoint.steps
    run.state.queries_used = checkpoint.queries_used
    run.messages.extend(checkpoint.messages)
    trajectory.llm_calls = checkpoint.llm_calls
    trajectory.usage = checkpoint.usage
    trajectory.stop_reason = checkpoint.stop_reason
    trajectory.stop_detail = checkpoint.stop_detail
    trajectory.final_text = checkpoint.final_text
    run.pending_calls[:] = checkpoint.pending_calls
    run.pending_context[:] = checkpoint.pending_context
    run.stop_requested = checkpoint.stop_requested
    if checkpoint.compactions:
        run.compactions.extend(_compactions(checkpoint))
    trajectory.permission_decisions.extend(checkpoint.permission_decisions)
    trajectory.children.extend(checkpoint.children)
    trajectory.turns.extend(checkpoint.turns)  # the interrupted turn's once: not asked again
    if run.meter is not None and checkpoint.context_calibration is not None:
        run.meter.calibrate(*checkpoint.context_calibration)
    if checkpoint.session_log_data or "looplet.session" in sys.modules:
        from looplet.session import restore_session_log  # runs with a session log only

        restore_session_log(run, checkpoint)


def _compactions(checkpoint: Checkpoint) -> list[Any]:
    try:
        return [
            decode_compaction(c, f"compactions[{i}]") for i, c in enumerate(checkpoint.compactions)
        ]
    except DecodeError as exc:
        raise CheckpointError(
            f"cannot resume from {_where(checkpoint)}: malformed checkpoint: {exc}.",
            path=checkpoint.path,
            run_id=checkpoint.run_id,
            step=checkpoint.step,
        ) from None


def _writer_run_id(run: RunState, store: FileCheckpointStore, resumed: Checkpoint | None) -> str:
    if resumed is not None:
        store.run_dir(resumed.run_id)  # checked to be a plain name
        if not store._has_after(resumed):
            return resumed.run_id
        # Resuming an older checkpoint: the later ones stay, and this run becomes a new one.
        return uuid.uuid4().hex[:12]
    run_id = run.config.session_id or uuid.uuid4().hex[:12]
    if J.segments(store.run_dir(run_id)):
        raise CheckpointError(
            f"run {run_id!r} already has checkpoints in {store.run_dir(run_id)}: a new run "
            f"would overwrite them. Continue it with resume={store!r}, or give this run "
            "another LoopConfig.session_id.",
            path=store.run_dir(run_id),
            run_id=run_id,
        )
    return run_id


def _check_tools(run: RunState, checkpoint: Checkpoint) -> None:
    now, then = set(run.tools.tool_names), set(checkpoint.tool_names)
    if now == then:
        return
    missing, added = sorted(then - now), sorted(now - then)
    raise CheckpointError(
        f"cannot resume from {_where(checkpoint)}: run {checkpoint.run_id!r} was checkpointed "
        f"with a different tool set. Missing now: {', '.join(missing) or 'none'}. Added since: "
        f"{', '.join(added) or 'none'}. Its conversation uses the tools it had: resume with "
        "the same tools, or start a new run without resume=.",
        path=checkpoint.path,
        run_id=checkpoint.run_id,
        step=checkpoint.step,
    )


def _check_task(task: Any, checkpoint: Checkpoint) -> None:
    given = encode_data(task)
    if has_repr_marker(given) or has_repr_marker(checkpoint.task):
        return  # reprs of objects need not compare equal across processes
    if given != checkpoint.task:
        raise CheckpointError(
            f"cannot resume from {_where(checkpoint)}: the task differs from the checkpointed "
            f"run's. Checkpoint: {_clip(checkpoint.task)}; given: {_clip(given)}. Pass the same "
            "task (or none, to take the checkpoint's), or start a new run without resume=.",
            path=checkpoint.path,
            run_id=checkpoint.run_id,
            step=checkpoint.step,
        )


def _ended_error(checkpoint: Checkpoint) -> CheckpointError:
    reason = checkpoint.stop_reason.value if checkpoint.stop_reason else "unknown"
    detail = f": {checkpoint.stop_detail[:120]}" if checkpoint.stop_detail else ""
    retry = ""
    if checkpoint.step and checkpoint.path is not None:
        store = FileCheckpointStore(checkpoint.path.parent.parent)
        retry = (
            " To continue from before its end anyway, resume from its last step: "
            f"resume_loop_state({store!r}, run_id={checkpoint.run_id!r}, step={checkpoint.step})."
        )
    return CheckpointError(
        f"cannot resume from {_where(checkpoint)}: run {checkpoint.run_id!r} already ended at "
        f"step {checkpoint.step} (stop reason {reason!r}{detail}), so resuming it would run a "
        f"finished task again. To start a new run of the task, pass restart=True.{retry}",
        path=checkpoint.path,
        run_id=checkpoint.run_id,
        step=checkpoint.step,
    )


# -- files -------------------------------------------------------------------------------------


def _read_path(path: Path) -> Checkpoint:
    """The checkpoint in a snapshot file, or the last one of a journal file."""
    match = re.match(r"^step-(\d{4,})\.journal$", path.name)
    if match is None:
        try:
            return D.decode_checkpoint(path.read_bytes(), path)
        except OSError as exc:
            raise D.BadFile(f"cannot be read ({exc})") from None
    step = int(match.group(1))
    segment = J.Segment(path.with_name(f"step-{step:04d}.json"), step, False)
    if not path.is_file():
        raise D.BadFile("no such journal")
    replay = J.read_segment(segment, None)
    if replay.damage is not None:
        raise D.BadFile(replay.damage[1])
    return replay.checkpoint


def _kept(run_dir: Path) -> str:
    """The checkpoint files of a run folder, oldest first, with how far each journal goes."""
    described = []
    for segment in reversed(J.segments(run_dir)):
        last = J.latest_position(segment)
        if last == segment.position:
            described.append(segment.snapshot.name)
            continue
        upto = "damaged" if last == J.AFTER_ALL else f"to step {last[0]}{', ended' * last[1]}"
        described.append(f"{segment.snapshot.name} and {segment.journal.name} ({upto})")
    return ", ".join(described) or "none"


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _name(checkpoint: Checkpoint) -> str:
    return checkpoint.path.name if checkpoint.path is not None else "memory"


def _where(checkpoint: Checkpoint) -> str:
    if checkpoint.path is not None and checkpoint.path.suffix == ".journal":
        end = " (its end)" if checkpoint.ended else ""
        return f"{checkpoint.path} at step {checkpoint.step}{end}"
    if checkpoint.path is not None:
        return str(checkpoint.path)
    return f"the checkpoint of run {checkpoint.run_id!r} at step {checkpoint.step}"


def _clip(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."
