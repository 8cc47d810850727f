"""`EvalContext`: what a grader reads about one run, built from a live trajectory or a saved one.

A grader is ``def eval_x(ctx)`` (or ``(ctx, llm)``); ``ctx`` holds the task, the steps, the
final output and the :class:`~looplet.types.Trajectory` itself, so the same trajectory
queries (``ctx.trajectory.called("greet")``) work here as in pytest. A saved run is the
directory :class:`~looplet.provenance.ProvenanceSink` writes: ``trajectory.json``
(``Trajectory.to_dict()``) when present, else ``steps/*.json`` (one ``Step.to_dict()`` each).
Discovering and running graders live in :mod:`looplet.evals.discover` and
:mod:`looplet.evals.runner`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looplet.errors import ErrorKind, LoopletError, ToolError
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Usage

__all__ = ["EvalContext", "TrajectoryLoadError", "is_run_dir"]

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
        trajectory: the run's :class:`~looplet.types.Trajectory` (rebuilt, for a saved run,
            from what was saved: steps, stop reason, usage, final text; not the messages).
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


# -- reading a saved run ------------------------------------------------------------------------


def _load_run(root: Path) -> tuple[Trajectory, dict[str, Any]]:
    if not root.is_dir():
        raise TrajectoryLoadError(root, "no such directory")
    file = root / TRAJECTORY_FILE
    if file.is_file():
        data = _read_json(file)
        if not isinstance(data, Mapping) or not isinstance(data.get("steps", []), list):
            raise TrajectoryLoadError(file, "expected an object with a 'steps' list")
        steps = [_step(file, item) for item in data.get("steps", [])]
        metadata = data.get("metadata")
        return _trajectory(file, data, steps), dict(metadata) if isinstance(
            metadata, Mapping
        ) else {}
    files = sorted((root / STEPS_DIR).glob("*.json")) if (root / STEPS_DIR).is_dir() else []
    if not files:
        raise TrajectoryLoadError(
            root, f"it holds neither {TRAJECTORY_FILE} nor {STEPS_DIR}/*.json"
        )
    steps = sorted((_step(f, _read_json(f)) for f in files), key=lambda s: s.number)
    return Trajectory(steps=steps), {}


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


def _trajectory(file: Path, data: Mapping[str, Any], steps: list[Step]) -> Trajectory:
    reason = data.get("stop_reason")
    try:
        stop_reason = StopReason(reason) if reason is not None else None
    except ValueError:
        valid = ", ".join(r.value for r in StopReason)
        raise TrajectoryLoadError(
            file, f"unknown stop_reason {reason!r} (one of {valid})"
        ) from None
    usage = data.get("usage") or {}
    try:
        return Trajectory(
            task=data.get("task"),
            steps=steps,
            stop_reason=stop_reason,
            stop_detail=str(data.get("stop_detail") or ""),
            llm_calls=int(data.get("llm_calls") or 0),
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            elapsed_ms=float(data.get("elapsed_ms") or 0.0),
            final_text=str(data.get("final_text") or ""),
        )
    except (AttributeError, TypeError, ValueError) as exc:  # a field of the wrong type
        raise TrajectoryLoadError(
            file, f"not a looplet run file: {type(exc).__name__}: {exc}"
        ) from exc


def _step(file: Path, data: Any) -> Step:
    """A :class:`Step` from ``Step.to_dict()`` (``step_num`` is accepted for ``step``)."""
    try:
        call, result = data["tool_call"], data["tool_result"]
        number = int(data.get("step", data.get("step_num", 0)))
        tool_call = ToolCall(
            tool=str(call["tool"]),
            args=dict(call.get("args") or {}),
            reasoning=str(call.get("reasoning") or ""),
            call_id=str(call.get("call_id") or ""),
            raw_arguments=call.get("raw_arguments"),
            parse_error=call.get("parse_error"),
        )
        tool_result = ToolResult(
            tool=str(result.get("tool", tool_call.tool)),
            args_summary=str(result.get("args_summary") or tool_call.args_summary()),
            data=result.get("data"),
            error=result.get("error"),
            error_detail=_tool_error(result.get("error_detail")),
            duration_ms=float(result.get("duration_ms") or 0.0),
            call_id=str(result.get("call_id") or ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        shown = repr(data)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise TrajectoryLoadError(
            file,
            f"a step needs 'tool_call' {{'tool', 'args'}} and 'tool_result' objects "
            f"(Step.to_dict()); got {shown} ({type(exc).__name__}: {exc})",
        ) from exc
    return Step(number, tool_call, tool_result)


def _tool_error(data: Any) -> ToolError | None:
    if not isinstance(data, Mapping):
        return None
    try:
        kind = ErrorKind(data.get("kind", ErrorKind.EXECUTION))
    except ValueError:
        kind = ErrorKind.EXECUTION
    return ToolError(
        kind,
        str(data.get("message", "")),
        bool(data.get("retriable", False)),
        dict(data.get("context") or {}),
    )
