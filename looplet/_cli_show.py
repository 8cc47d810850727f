"""``looplet show PATH``: a one-page summary of a run, its session log at the centre.

``PATH`` is a saved run or a provenance folder (``trajectory.json`` or ``steps/*.json``), a
checkpoint store, one run's checkpoint folder in it, or a checkpoint file. A checkpoint
shows the session log it kept (notes included); any other run shows the log of its steps
(:meth:`looplet.session.SessionLog.from_trajectory`). Long logs show their first and last
entries (``--full``: every one; ``--compact``: the bounded form, newest kept). Every text
is redacted (:mod:`looplet._redact`) before it is cut short and printed, so no fragment of
a secret is shown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplet._eval_command import RunFileError, UsageError

if TYPE_CHECKING:
    from looplet.session import LogEntry, SessionLog
    from looplet.types import Trajectory

__all__ = ["add_show_command"]

_SHOW_HEAD = 20
_SHOW_TAIL = 15
_TASK_LINES = 8
_LINE_CHARS = 160
_COMPACT_CHARS = 2000


def add_show_command(commands: Any) -> None:
    """Add ``show`` to the ``looplet`` command's subparsers."""
    show = commands.add_parser(
        "show",
        help="summarise a saved run or a checkpoint, with its session log",
        description="Print a one-page summary of a run: a saved run or provenance folder, "
        "a checkpoint store, a run's checkpoint folder or a checkpoint file. The steps are "
        "the run's session log (with its notes, for a checkpoint that kept one).",
    )
    show.add_argument(
        "dir",
        metavar="PATH",
        type=Path,
        help="a run directory, a checkpoint store or run folder, or a checkpoint file",
    )
    form = show.add_mutually_exclusive_group()
    form.add_argument(
        "--full", action="store_true", help="every entry of the session log, none left out"
    )
    form.add_argument(
        "--compact",
        nargs="?",
        const=_COMPACT_CHARS,
        type=_chars,
        metavar="CHARS",
        help=f"the session log in at most CHARS characters (default {_COMPACT_CHARS}), "
        "the newest entries kept",
    )
    show.set_defaults(command="show", run=run_show, usage=show.format_usage())


def run_show(args: argparse.Namespace) -> int:
    """``looplet show``: print the summary; the exit status."""
    path: Path = args.dir
    header, trajectory, log, final_output, checkpointed = _read(path)
    from looplet._redact import TextRedactor

    redact = TextRedactor()
    for line in header:
        print(redact(line))
    lines = _log_lines(log, args.full, args.compact)
    steps = len(trajectory.steps)
    print(f"steps ({steps}):")
    for line in lines:
        print("  " + _clip(redact(line)))
    if trajectory.stop_reason is None and checkpointed:
        print(f"stopped: not yet (checkpointed after step {steps}; resume=store goes on)")
    elif trajectory.stop_reason is None:
        print("stopped: unknown (the run was saved as steps only)")
    else:
        shown = _clip(redact(trajectory.stop_detail), 100)
        detail = f" ({shown})" if trajectory.stop_detail else ""
        print(f"stopped: {trajectory.stop_reason.value}{detail}")
    usage = trajectory.usage
    print(
        f"model calls: {trajectory.llm_calls} · tokens: {usage.total_tokens} "
        f"({usage.input_tokens} in, {usage.output_tokens} out) · {trajectory.elapsed_ms:.0f}ms"
    )
    errors = sum(1 for step in trajectory.steps if not step.ok)
    if errors:
        print(f"failed steps: {errors}")
    if final_output is not None:
        print("final output: " + _clip(redact(_compact(final_output))))
    return 0


def _read(path: Path) -> tuple[list[str], Trajectory, SessionLog, Any, bool]:
    """The header lines, record, session log and final output of what ``path`` holds, and
    whether it is a checkpoint."""
    from looplet.evals.context import is_run_dir

    if path.is_dir() and is_run_dir(path):
        return (*_saved_run(path), False)
    if not path.exists():
        raise UsageError(f"PATH {str(path)!r} does not exist")
    checkpoint, header = _checkpoint(path)
    from looplet.evals.context import final_output_of

    trajectory = checkpoint.trajectory()
    lines = [f"run: {path}", *header, "task: " + _task_text(trajectory.task)]
    return lines, trajectory, checkpoint.session_log, final_output_of(trajectory), True


def _saved_run(path: Path) -> tuple[list[str], Trajectory, SessionLog, Any]:
    from looplet.evals.context import EvalContext, TrajectoryLoadError
    from looplet.session import SessionLog

    try:
        ctx = EvalContext.from_trajectory_dir(path)
    except TrajectoryLoadError as exc:
        raise RunFileError(str(exc)) from exc
    trajectory = ctx.trajectory
    assert trajectory is not None  # from_trajectory_dir always rebuilds one
    log = SessionLog.from_trajectory(trajectory)
    return [f"run: {path}", "task: " + _task_text(ctx.task)], trajectory, log, ctx.final_output


def _checkpoint(path: Path) -> tuple[Any, list[str]]:
    """The checkpoint ``path`` names (the newest of a store or run folder), with a line
    saying which it is."""
    import warnings

    checkpoint: Any
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checkpoint, others = _load(path)
    if checkpoint is None:
        raise RunFileError(f"no checkpoint can be read in {path}")
    state = "ended" if checkpoint.ended else "not ended, resumable"
    lines = [f"checkpoint: run {checkpoint.run_id!r} after step {checkpoint.step} ({state})"]
    # What the store skipped (a damaged file) is said as a line, not a Python warning.
    lines.extend(f"warning: {w.message}" for w in caught if issubclass(w.category, UserWarning))
    if others:
        lines.append(f"other runs here: {', '.join(others)} (looplet show {path}/RUN_ID)")
    return checkpoint, lines


def _load(path: Path) -> tuple[Any, list[str]]:
    """The checkpoint ``path`` names and the other runs of its store."""
    from looplet import _checkpoint_doc as D
    from looplet import _checkpoint_journal as J
    from looplet.checkpoint import FileCheckpointStore, _read_path
    from looplet.errors import CheckpointError

    checkpoint: Any
    try:
        if path.is_file():
            try:
                checkpoint = _read_path(path)
            except D.BadFile as bad:
                raise RunFileError(f"cannot read checkpoint {path}: {bad.reason}") from None
            others: list[str] = []
        elif J.segments(path):  # one run's folder
            found = FileCheckpointStore(path.parent).load_latest(path.name)
            checkpoint, others = found, []
        else:
            store = FileCheckpointStore(path)
            runs = store.runs()
            if not runs:
                raise UsageError(
                    f"{str(path)!r} is not a saved run or a checkpoint: it holds no "
                    "trajectory.json, steps/*.json or checkpoint files (step-0001.json)"
                )
            found = store.load_latest()
            checkpoint = found
            others = [r for r in runs if found is None or r != found.run_id]
    except CheckpointError as exc:
        raise RunFileError(str(exc)) from None
    return checkpoint, others


def _log_lines(log: SessionLog, full: bool, compact: int | None) -> list[str]:
    """The session log's lines, its stop left out (the summary says it)."""
    entries: list[LogEntry] = [e for e in log.entries if e.kind != "stop"]
    if compact is not None:
        return log.render_compact(entries, max_chars=compact).splitlines()
    label = "highlights"
    rendered = [e.render(highlights_label=label).splitlines() for e in entries]
    hidden = len(rendered) - _SHOW_HEAD - _SHOW_TAIL
    if full or hidden <= 0:
        return [line for lines in rendered for line in lines]
    head = [line for lines in rendered[:_SHOW_HEAD] for line in lines]
    tail = [line for lines in rendered[-_SHOW_TAIL:] for line in lines]
    return [*head, f"... {hidden} more entries (--full shows them) ...", *tail]


def _chars(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of characters") from None
    if value < 40:
        raise argparse.ArgumentTypeError(f"{value} is too few characters (at least 40)")
    return value


def _task_text(task: Any) -> str:
    if task is None:
        return "(not saved)"
    from looplet._redact import TextRedactor
    from looplet.messages import render_task

    # Redacted before it is cut: a secret cut short is no longer recognised.
    lines = TextRedactor()(render_task(task)).splitlines() or [""]
    shown = [_clip(line) for line in lines[:_TASK_LINES]]
    if len(lines) > _TASK_LINES:
        shown.append(f"... ({len(lines) - _TASK_LINES} more lines)")
    return shown[0] if len(shown) == 1 else "\n" + "\n".join("  " + line for line in shown)


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _clip(text: str, limit: int = _LINE_CHARS) -> str:
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."
