"""`EvalContext`: what a grader reads about one run, built from a live trajectory or a saved one.

A grader is ``def eval_x(ctx)`` (or ``(ctx, llm)``); ``ctx`` holds the task, the steps, the
final output and the :class:`~looplet.types.Trajectory` itself, so the same trajectory
queries (``ctx.trajectory.called("greet")``) work here as in pytest. A saved run is the
directory :class:`~looplet.provenance.ProvenanceSink` writes: ``trajectory.json`` (the whole
run in the run record's form, :mod:`looplet.record.codec`, or an older
``Trajectory.to_dict()``) when present, else ``steps/*.json`` (one ``Step.to_dict()`` each),
every field checked by that codec; :func:`find_run_dirs` finds the runs under a folder.
Under pytest, ``--looplet-runs DIR`` makes each saved run the ``looplet_run`` (alias ``ctx``)
fixture of the evals, one item per run (:mod:`pytest_looplet.runs`).
Discovering and running graders outside pytest live in :mod:`looplet.evals.discover` and
:mod:`looplet.evals.runner`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from looplet.errors import LoopletError
from looplet.record.codec import (
    FORMAT,
    DecodeError,
    check_format,
    decode_step,
    decode_trajectory,
    json_object,
)
from looplet.types import Step, StopReason, Trajectory

__all__ = ["EvalContext", "TrajectoryLoadError", "find_run_dirs", "is_run_dir"]

T = TypeVar("T")
TRAJECTORY_FILE = "trajectory.json"
STEPS_DIR = "steps"


class TrajectoryLoadError(LoopletError, ValueError):
    """A saved run cannot be read: a file is missing, not JSON, or not a trajectory or step.

    Attributes:
        path: the file or directory at fault.
    """

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"cannot read the saved run at {path}: {problem}")


@dataclass(frozen=True)
class EvalContext:
    """One run as a grader sees it.

    >>> ctx = EvalContext.from_trajectory(trajectory)
    >>> ctx.tool_sequence, ctx.final_output

    Attributes:
        steps: every step of the run, in order.
        task: the task the run was given (``None`` when the saved run did not keep it).
        final_output: the accepted done call's arguments; else the model's final text;
            else ``None``.
        metadata: anything else about the run (the saved run's ``metadata``, its ``path``).
        trajectory: the run's :class:`~looplet.types.Trajectory` (decoded, for a saved run,
            from its ``trajectory.json``: messages, permission decisions and sub-agents'
            runs included; from ``steps/*.json`` only its steps).
        session_log_text: the steps as ``Step.pretty()`` lines (the original looplet's
            field; filled in from ``steps`` when not given).
    """

    steps: Sequence[Step] = ()
    task: Any = None
    final_output: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    trajectory: Trajectory | None = None
    session_log_text: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", list(self.steps))
        object.__setattr__(self, "metadata", dict(self.metadata))
        if not self.session_log_text:
            text = "\n".join(step.pretty() for step in self.steps)
            object.__setattr__(self, "session_log_text", text)

    @property
    def tool_sequence(self) -> list[str]:
        """The names of the tools called, in order."""
        return [step.tool_call.tool for step in self.steps]

    @property
    def errors(self) -> list[Step]:
        """The steps whose tool call failed."""
        return [step for step in self.steps if step.tool_result.error is not None]

    @property
    def step_count(self) -> int:
        """How many steps the run took."""
        return len(self.steps)

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the run ended, or ``None`` when that is not known (a run saved as steps only)."""
        return self.trajectory.stop_reason if self.trajectory is not None else None

    @classmethod
    def from_trajectory(
        cls,
        trajectory: Trajectory,
        *,
        done_tool: str = "done",
        metadata: Mapping[str, Any] | None = None,
    ) -> EvalContext:
        """The context of a finished run: its task, steps and final output.

        Args:
            trajectory: what the loop returned (or ``LoopRun.trajectory``).
            done_tool: the done tool's name, used only when the stop reason is unknown.
            metadata: the context's :attr:`metadata`.
        """
        return cls(
            steps=trajectory.steps,
            task=trajectory.task,
            final_output=final_output_of(trajectory, done_tool),
            metadata=metadata or {},
            trajectory=trajectory,
        )

    @classmethod
    def from_trajectory_dir(cls, path: str | Path, *, done_tool: str = "done") -> EvalContext:
        """The context of a run saved on disk.

        Reads ``trajectory.json`` when the directory has one, else the ``steps/*.json``
        files (ordered by their step number; task and stop reason are then unknown).

        Raises:
            TrajectoryLoadError: the directory holds neither, or a file is not valid JSON
                or not the shape looplet saves.
        """
        root = Path(path)
        trajectory, metadata = _load_run(root)
        metadata = {**metadata, "path": str(root)}
        return cls.from_trajectory(trajectory, done_tool=done_tool, metadata=metadata)


def final_output_of(trajectory: Trajectory, done_tool: str = "done") -> Any:
    """What the run answered: the accepted done call's arguments, else its final text.

    A run that stopped with ``done`` ended on the done call, so its last step's arguments
    are the answer. When the stop reason is unknown, the last successful ``done_tool`` call
    is taken; a refused done call (an error step) never counts.
    """
    steps = trajectory.steps
    if trajectory.stop_reason is StopReason.DONE and steps:
        return dict(steps[-1].tool_call.args)
    if trajectory.stop_reason is None:
        for step in reversed(steps):
            if step.tool_call.tool == done_tool and step.ok:
                return dict(step.tool_call.args)
    return trajectory.final_text or None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a saved run: it has ``trajectory.json`` or ``steps/*.json``."""
    if (path / TRAJECTORY_FILE).is_file():
        return True
    steps = path / STEPS_DIR
    return steps.is_dir() and any(steps.glob("*.json"))


def find_run_dirs(root: Path) -> list[Path]:
    """``[root]`` if it is a saved run, else every saved run below it, sorted (a run's own
    subfolders and folders starting with ``.`` are not searched)."""
    if is_run_dir(root):
        return [root]
    found: list[Path] = []
    for here, dirs, _files in os.walk(root):
        path = Path(here)
        if path != root and is_run_dir(path):
            found.append(path)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


# -- reading a saved run ------------------------------------------------------------------------


def _load_run(root: Path) -> tuple[Trajectory, dict[str, Any]]:
    if not root.is_dir():
        raise TrajectoryLoadError(root, "no such directory")
    file = root / TRAJECTORY_FILE
    if file.is_file():
        data = _read_json(file)
        trajectory = _decode(file, data, _trajectory)
        metadata = data.get("metadata")
        return trajectory, dict(metadata) if isinstance(metadata, Mapping) else {}
    files = sorted((root / STEPS_DIR).glob("*.json")) if (root / STEPS_DIR).is_dir() else []
    if not files:
        raise TrajectoryLoadError(
            root, f"it holds neither {TRAJECTORY_FILE} nor {STEPS_DIR}/*.json"
        )
    steps = sorted((_decode(f, _read_json(f), _step) for f in files), key=lambda s: s.number)
    return Trajectory(steps=steps), {}


def _trajectory(data: Any, where: str) -> Trajectory:
    check_format(json_object(data, where), "looplet-record", FORMAT, required=False)
    return decode_trajectory(data, where)


def _step(data: Any, where: str) -> Step:
    check_format(json_object(data, where), "looplet-record", FORMAT, required=False)
    return decode_step(data, where)


def _decode(file: Path, data: Any, decode: Callable[[Any, str], T]) -> T:
    """``data`` decoded by the run record's codec; a bad field named with its file and fix."""
    try:
        return decode(data, "")
    except DecodeError as exc:
        where = exc.where or "the document"
        hint = (
            " (a step needs 'tool_call' {'tool', 'args'} and 'tool_result' objects, as "
            "Step.to_dict() writes them)"
            if "tool_call" in where or "tool_result" in where
            else ""
        )
        raise TrajectoryLoadError(
            file,
            f"not a looplet run file: field {where}: {exc.problem}{hint}; write it with "
            "ProvenanceSink (or Step.to_dict()), or fix that field",
        ) from None


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TrajectoryLoadError(
            file, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except UnicodeDecodeError as exc:  # binary data, or another program's file
        raise TrajectoryLoadError(
            file,
            f"not a looplet run file: it is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start})",
        ) from exc
    except (OSError, RecursionError) as exc:
        deep = "not a looplet run file: its JSON is nested too deep"
        why = deep if isinstance(exc, RecursionError) else exc.strerror or str(exc)
        raise TrajectoryLoadError(file, why) from exc
