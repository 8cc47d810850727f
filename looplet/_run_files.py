"""The JSON form of a recorded run, and the provenance directory it is written to and read from.

Here live :class:`RecordedRun` and :class:`RecordedCall` (a run as plain JSON values, with its
one-page summary), :func:`write_run` and :func:`load_run` (the files of a provenance directory,
laid out as drawn in :mod:`looplet.provenance`), :class:`ProvenanceError`, and the JSON forms
of requests, replies, errors and settings in both directions. Nothing here records a live run
(:mod:`looplet.provenance`), hides secrets (:mod:`looplet._redact`) or replays a recording
(:mod:`looplet._replay`); this module imports none of those.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from looplet._reply_guard import utf8
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.config import LoopConfig
from looplet.errors import LLMError, LoopletError
from looplet.record.codec import FORMAT as RECORD
from looplet.record.codec import (
    DecodeError,
    check_format,
    decode_call,
    decode_list,
    decode_step,
    decode_trajectory,
    decode_usage,
    encode_call,
)
from looplet.types import Trajectory, _jsonable

__all__ = [
    "FORMAT",
    "ProvenanceError",
    "RecordedCall",
    "RecordedRun",
    "clip",
    "config_to_dict",
    "error_from_dict",
    "error_to_dict",
    "load_run",
    "plain",
    "request_to_dict",
    "response_from_dict",
    "response_to_dict",
    "run_files",
    "step_line",
    "write_run",
]

#: The ``format`` written to ``run.json``: 2 has ``trajectory.json`` in the run record's
#: form (:mod:`looplet.record.codec`), 1 had ``Trajectory.to_dict()``; both are read.
FORMAT: Final = "looplet-provenance/2"
_READS = frozenset({"looplet-provenance/1", FORMAT})

_MANIFEST = "manifest.jsonl"
_RUN = "run.json"
_TRAJECTORY = "trajectory.json"
_STEPS = "steps"
_CALL_FILE = re.compile(r"call_\d+\.(request|response)\.json")
_STEP_FILE = re.compile(r"step_(\d+)\.json")


class ProvenanceError(LoopletError):
    """A provenance directory cannot be used: it already holds a run, cannot be read, or
    cannot be written (the message names the file).

    Attributes:
        path: the directory (or the file in it) at fault.
    """

    def __init__(self, message: str, path: str | os.PathLike[str]) -> None:
        super().__init__(message)
        self.path = Path(path)


# -- the JSON form of a run -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One model call in its JSON form: what ``call_NNNN.*.json`` and the manifest hold.

    Attributes:
        index: 1-based position among the run's model calls.
        step: the number of the step the call was made for.
        request: ``{"messages", "tools", "max_tokens", "temperature", "step"}``.
        response: ``{"text", "tool_calls", "usage", "finish_reason", "model"}``, or ``None``.
        error: ``{"type", "message", ...}`` (an ``LLMError`` adds its fields), or ``None``.
        duration_ms: wall time of the call.
        started_at: when it started, ISO 8601 in UTC.
        provider: the backend's ``provider`` name.
    """

    index: int
    step: int
    request: dict[str, Any]
    response: dict[str, Any] | None
    error: dict[str, Any] | None
    duration_ms: float
    started_at: str
    provider: str

    def manifest_entry(self) -> dict[str, Any]:
        """The call's line in ``manifest.jsonl``."""
        reply = self.response or {}
        return {
            "call": self.index,
            "step": self.step,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "provider": self.provider,
            "model": reply.get("model", ""),
            "finish_reason": reply.get("finish_reason", ""),
            "usage": reply.get("usage"),
            "tool_calls": [c.get("tool") for c in reply.get("tool_calls", ())],
            "error": f"{self.error['type']}: {self.error['message']}" if self.error else None,
        }


@dataclass(slots=True)
class RecordedRun:
    """A recorded run in its JSON form: what a provenance directory holds.

    Get one from :func:`load_run` (a directory) or
    :meth:`~looplet.provenance.TrajectoryRecorder.to_run` (memory); hand it to
    :func:`replay_loop`, or print :meth:`summary`.

    Attributes:
        task: the task as given to the loop (``None`` when no trajectory hook saw the run).
        config: the :class:`~looplet.config.LoopConfig` settings that are plain values.
        calls: every model call, in order.
        steps: every step, as ``Step.to_dict()`` (its file adds the record's ``format``).
        trajectory: the run in the run record's form with its ``format``
            (:func:`looplet.record.codec.trajectory_document`; ``None`` when no trajectory
            hook saw the run). :meth:`to_trajectory` decodes it.
        path: the directory it was read from or written to, if any.
    """

    task: Any = None
    config: dict[str, Any] | None = None
    calls: list[RecordedCall] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    trajectory: dict[str, Any] | None = None
    path: Path | None = field(default=None, compare=False)

    def to_trajectory(self) -> Trajectory | None:
        """The recorded :class:`~looplet.types.Trajectory`, decoded (``None`` if none).

        Raises:
            ProvenanceError: the record is not one this looplet reads (names file and field).
        """
        if self.trajectory is None:
            return None
        try:
            check_format(self.trajectory, "looplet-record", RECORD, required=False)
            return decode_trajectory(self.trajectory, "")
        except DecodeError as exc:
            raise _not_a_record((self.path or Path(".")) / _TRAJECTORY, exc) from None

    @property
    def stop_reason(self) -> str | None:
        """Why the recorded run ended, as the loop said (``None`` if it did not end)."""
        return self.trajectory.get("stop_reason") if self.trajectory else None

    def loop_config(self) -> LoopConfig | None:
        """A ``LoopConfig`` with the recorded settings (``None`` when none were recorded).

        Settings that are not plain values (``render_task``, ``cancel_token``) are not
        recorded and take their defaults; pass your own config to the replay if they matter.
        """
        if self.config is None:
            return None
        names = {f.name for f in fields(LoopConfig)}
        return LoopConfig(**{k: v for k, v in self.config.items() if k in names})

    def summary(self) -> str:
        """A one-page text summary: the task, the stop reason, each step and each call."""
        lines = [f"run: {self.path}" if self.path else "run (in memory)"]
        lines.append(f"task: {clip(json.dumps(self.task, ensure_ascii=False), 200)}")
        traj = self.trajectory or {}
        detail = f" ({clip(traj['stop_detail'], 120)})" if traj.get("stop_detail") else ""
        tokens = (traj.get("usage") or {}).get("total_tokens", 0)
        lines.append(
            f"stopped: {traj.get('stop_reason') or 'not recorded'}{detail} · "
            f"{len(self.steps)} steps · {len(self.calls)} model calls · {tokens} tokens"
        )
        lines.append("steps:")
        lines += [f"  {step_line(s)}" for s in self.steps] or ["  (none)"]
        lines.append("model calls:")
        for call in self.calls:
            entry = call.manifest_entry()
            what = entry["error"] or ", ".join(entry["tool_calls"]) or "text reply"
            tokens = (entry["usage"] or {}).get("total_tokens", 0)
            lines.append(
                f"  #{call.index} step {call.step} · {call.duration_ms:.0f}ms · "
                f"{tokens} tokens · {clip(what, 100)}"
            )
        if not self.calls:
            lines.append("  (none)")
        return "\n".join(lines)


def step_line(step: Mapping[str, Any]) -> str:
    """One line for a recorded step: number, ✓ or ✗, the call, and the error if any."""
    result = step.get("tool_result") or {}
    mark = "✓" if result.get("error") is None else "✗"
    head = f"#{step.get('step')} {mark} {result.get('tool')}({result.get('args_summary', '')})"
    error = result.get("error")
    return head if error is None else f"{head} → ERROR: {clip(str(error), 100)}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``…`` when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the directory ----------------------------------------------------------------------------


def write_run(run: RecordedRun, path: str | os.PathLike[str]) -> None:
    """Write ``run``'s files into ``path``, each one whole (temp file, then rename).

    A lone surrogate in the text is written as U+FFFD, so every file is valid UTF-8.

    Raises:
        ProvenanceError: a folder or file cannot be written (no temporary file is left).
    """
    from looplet._version import __version__

    root = Path(path)
    _mkdir(root)
    meta = {"format": FORMAT, "looplet_version": __version__, "config": run.config}
    _write(root / _RUN, _dump(meta))
    for call in run.calls:
        stem = f"call_{call.index:04d}"
        _write(root / f"{stem}.request.json", _dump(call.request))
        body = call.response if call.response is not None else {"error": call.error}
        _write(root / f"{stem}.response.json", _dump(body))
    lines = [json.dumps(c.manifest_entry(), ensure_ascii=False) for c in run.calls]
    _write(root / _MANIFEST, "".join(line + "\n" for line in lines))
    if run.steps:
        _mkdir(root / _STEPS)
        for step in run.steps:
            step_file = root / _STEPS / f"step_{step['step']:04d}.json"
            _write(step_file, _dump({"format": RECORD, **step}))
    if run.trajectory is not None:
        _write(root / _TRAJECTORY, _dump(run.trajectory))
    run.path = root


def load_run(path: str | os.PathLike[str]) -> RecordedRun:
    """Read the run recorded in the directory ``path`` (by a ``ProvenanceSink``).

    Raises:
        ProvenanceError: ``path`` is not a provenance directory, or one of its files is
            missing or not valid JSON (the message names the file).
    """
    root = Path(path)
    manifest = root / _MANIFEST
    if not manifest.is_file():
        raise ProvenanceError(
            f"{str(root)!r} is not a provenance directory: it has no {_MANIFEST}. "
            "Record a run into it with ProvenanceSink(path).",
            root,
        )
    meta = _read(root / _RUN) if (root / _RUN).is_file() else {}
    if meta.get("format", FORMAT) not in _READS:
        raise ProvenanceError(
            f"{str(root / _RUN)!r} has format {meta.get('format')!r}; this version of "
            f"looplet reads {' and '.join(sorted(_READS))}: upgrade looplet to read it.",
            root / _RUN,
        )
    calls = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise ProvenanceError(f"{str(manifest)!r} line {number}: {exc}", manifest) from exc
            calls.append(_load_call(root, entry))
    numbered = [(_STEP_FILE.fullmatch(p.name), p) for p in (root / _STEPS).glob("step_*.json")]
    step_files = sorted((int(m.group(1)), p) for m, p in numbered if m)
    trajectory = _read(root / _TRAJECTORY) if (root / _TRAJECTORY).is_file() else None
    run = RecordedRun(
        task=trajectory.get("task") if trajectory else None,
        config=meta.get("config"),
        calls=calls,
        steps=[_read_step(p) for _, p in step_files],
        trajectory=trajectory,
        path=root,
    )
    run.to_trajectory()  # checks every field now, naming a bad one and its file
    return run


def run_files(root: Path) -> list[Path]:
    """The files of a recorded run in ``root`` (none if it holds no run)."""
    if not root.is_dir():
        return []
    found = [root / name for name in (_RUN, _MANIFEST, _TRAJECTORY) if (root / name).is_file()]
    found += sorted(p for p in root.iterdir() if _CALL_FILE.fullmatch(p.name))
    found += sorted(p for p in (root / _STEPS).glob("step_*.json") if p.is_file())
    return found


def _read_step(path: Path) -> dict[str, Any]:
    """A step file, checked by the run record's codec (its ``format`` taken out)."""
    step = _read(path)
    try:
        check_format(step, "looplet-record", RECORD, required=False)
        decode_step(step, "")
    except DecodeError as exc:
        raise _not_a_record(path, exc) from None
    step.pop("format", None)
    return step


def _not_a_record(path: Path, exc: DecodeError) -> ProvenanceError:
    return ProvenanceError(
        f"{str(path)!r}: {exc}. It is not a run record this looplet can read: record the run "
        "again, or fix that field.",
        path,
    )


def _load_call(root: Path, entry: Mapping[str, Any]) -> RecordedCall:
    index = int(entry["call"])
    stem = f"call_{index:04d}"
    body = _read(root / f"{stem}.response.json")
    error = body["error"] if set(body) == {"error"} else None
    return RecordedCall(
        index=index,
        step=int(entry.get("step", 0)),
        request=_read(root / f"{stem}.request.json"),
        response=None if error is not None else body,
        error=error,
        duration_ms=float(entry.get("duration_ms", 0.0)),
        started_at=str(entry.get("started_at", "")),
        provider=str(entry.get("provider", "")),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ProvenanceError(
            f"{str(path)!r} is missing: the manifest names a model call whose file is gone, "
            "so the provenance directory is incomplete.",
            path,
        ) from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProvenanceError(
            f"{str(path)!r} is not valid JSON ({exc}); the file was edited or cut short.", path
        ) from exc
    if not isinstance(value, dict):
        raise ProvenanceError(f"{str(path)!r} holds a {type(value).__name__}, not an object", path)
    return value


def _write(path: Path, text: str) -> None:
    # temp file + os.replace: a reader never sees half a file, even if the process dies.
    # A lone surrogate (in a raw reply or a tool's result) is written as U+FFFD.
    data = utf8(text)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from exc


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> ProvenanceError:
    return ProvenanceError(
        f"cannot write {str(path)!r}: {exc.strerror or exc}. Record the run into a directory "
        "you can write to.",
        path,
    )


def _dump(value: Any) -> str:
    # Keys keep the order looplet's to_dict gives them (fixed, so diffs stay quiet) and the
    # order the model and the caller gave theirs: a task's keys render in that order.
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


# -- JSON forms of requests, replies, errors, config ------------------------------------------


def plain(value: Any) -> Any:
    """``value`` exactly as it reads back from JSON (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(_jsonable(value)))


def request_to_dict(request: LLMRequest) -> dict[str, Any]:
    """The JSON form of a model request: messages, tools, limits and step."""
    return {
        "messages": [m.to_dict() for m in request.messages],
        "tools": [_jsonable(t) for t in request.tools],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "step": request.step,
    }


def response_to_dict(response: LLMResponse) -> dict[str, Any]:
    """The JSON form of a reply; tool calls keep their raw argument text."""
    return {
        "text": response.text,
        "tool_calls": [encode_call(call) for call in response.tool_calls],
        "usage": response.usage.to_dict(),
        "finish_reason": response.finish_reason,
        "model": response.model,
    }


def error_to_dict(error: BaseException) -> dict[str, Any]:
    """The JSON form of what a backend raised (an ``LLMError`` keeps all its fields)."""
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, LLMError):
        data |= {
            "provider": error.provider,
            "provider_message": error.provider_message,
            "status": error.status,
            "kind": error.kind,
            "retriable": error.retriable,
            "attempts": error.attempts,
        }
    return data


def config_to_dict(config: LoopConfig) -> dict[str, Any]:
    """The settings of ``config`` that are plain values (callables and tokens are left out)."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if value is None or isinstance(value, str | int | float | bool):
            out[f.name] = value
    return out


def response_from_dict(data: Mapping[str, Any]) -> LLMResponse:
    """The reply that :func:`response_to_dict` wrote."""
    return LLMResponse(
        text=data.get("text", ""),
        tool_calls=tuple(decode_list(data.get("tool_calls", []), "tool_calls", decode_call)),
        usage=decode_usage(data.get("usage") or {}, "usage"),
        finish_reason=data.get("finish_reason", ""),
        model=data.get("model", ""),
    )


def error_from_dict(data: Mapping[str, Any], provider: str) -> LLMError:
    """The error the loop saw for a recorded failure.

    An ``LLMError`` comes back with the same fields (so the same message); any other
    exception as the ``LLMError`` the loop wrapped it in (``looplet.loop._backend_failure``).
    """
    if "provider_message" in data:
        return LLMError(
            data["provider"],
            data["provider_message"],
            status=data.get("status"),
            retriable=bool(data.get("retriable", False)),
            attempts=int(data.get("attempts", 1)),
            kind=data.get("kind", ""),
        )
    return LLMError(provider, f"{data['type']}: {data['message']}", kind="backend_error")
