"""Provenance: a reviewable record of every model call and step of a run, to read or replay.

:class:`TrajectoryRecorder` records one run in memory: :meth:`~TrajectoryRecorder.wrap_llm`
returns a backend that keeps the exact :class:`~looplet.backends.base.LLMRequest` of every
model call with its reply or error and timing, and :meth:`~TrajectoryRecorder.trajectory_hook`
returns a hook that keeps the task, each step as it happens and, at the end, the trajectory
with the stop reason the loop set. :class:`ProvenanceSink` builds on it and writes the record
to a directory of pretty-printed JSON files, so two runs compare with ``diff -r``::

    run.json                   format, looplet version, the LoopConfig's plain settings
    manifest.jsonl             one line per model call: step, timing, usage, finish, error
    call_0001.request.json     the request the model saw: messages, tools, limits
    call_0001.response.json    its reply, or {"error": {...}}
    steps/step_0001.json       Step.to_dict() (the step in the run record's form, trimmed)
                               with the record's format, "looplet-record/1"
    trajectory.json            the whole run in the run record's form (looplet.record.codec):
                               task, steps, messages, stop reason, usage, permissions, sub-runs

Nothing is cut short, and no secret is written: API-key-like strings and the values of
key-like names (``api_key``, ``token``, ``password``...) become ``<redacted>``.

This module is the public surface and holds the recording side only. The JSON form of a run
and reading a directory back (:func:`load_run`, :class:`RecordedRun`) live in
:mod:`looplet._run_files`, redaction in :mod:`looplet._redact`, and re-running a recording
with no model (:func:`replay_loop`) in :mod:`looplet._replay`; their public names are
exported here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, final

from looplet._redact import REDACTED, Redactor
from looplet._replay import (
    ReplayBackend,
    ReplayExhaustedError,
    ReplayReport,
    RequestDivergence,
    StepDivergence,
    areplay_loop,
    replay_loop,
)
from looplet._reply_guard import guard_reply
from looplet._run_files import (
    FORMAT,
    ProvenanceError,
    RecordedCall,
    RecordedRun,
    config_to_dict,
    error_to_dict,
    load_run,
    plain,
    request_to_dict,
    response_to_dict,
    run_files,
    write_run,
)
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.config import LoopConfig
from looplet.errors import ConfigurationError, LLMError
from looplet.hooks import LoopEvent
from looplet.record.codec import trajectory_document
from looplet.types import Step, Trajectory, _jsonable

__all__ = [
    "FORMAT",
    "REDACTED",
    "AsyncRecordingBackend",
    "LLMCall",
    "ProvenanceError",
    "ProvenanceSink",
    "RecordedCall",
    "RecordedRun",
    "RecordingBackend",
    "ReplayBackend",
    "ReplayExhaustedError",
    "ReplayReport",
    "RequestDivergence",
    "StepDivergence",
    "TrajectoryRecorder",
    "areplay_loop",
    "load_run",
    "replay_loop",
]


# -- what is recorded -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One model call as it happened (in memory, unredacted).

    Attributes:
        index: 1-based position among the run's model calls.
        step: the number of the step the call was made for (``LLMRequest.step``).
        request: the request, with its messages and tools frozen at the time of the call.
        response: the reply, or ``None`` when the call failed.
        error: what the backend raised, or ``None``.
        duration_ms: wall time of the call.
        started_at: when it started (seconds since the epoch).
        provider: the backend's ``provider`` name (or class name).
    """

    index: int
    step: int
    request: LLMRequest
    response: LLMResponse | None
    error: BaseException | None
    duration_ms: float
    started_at: float
    provider: str

    def to_recorded(self) -> RecordedCall:
        """The JSON form of this call, as written to disk (before redaction)."""
        started = datetime.fromtimestamp(self.started_at, UTC).isoformat(timespec="milliseconds")
        return RecordedCall(
            index=self.index,
            step=self.step,
            request=plain(request_to_dict(self.request)),
            response=(
                plain(response_to_dict(self.response)) if self.response is not None else None
            ),
            error=plain(error_to_dict(self.error)) if self.error is not None else None,
            duration_ms=round(self.duration_ms, 3),
            started_at=started.replace("+00:00", "Z"),
            provider=self.provider,
        )


# -- recording --------------------------------------------------------------------------------


class TrajectoryRecorder:
    """Records one run in memory: every model call, the task, each step, the trajectory.

    Wrap the backend with :meth:`wrap_llm` and pass :meth:`trajectory_hook` to the loop::

        recorder = TrajectoryRecorder()
        loop = composable_loop(llm=recorder.wrap_llm(llm), tools=tools, task=task,
                               hooks=[recorder.trajectory_hook()])

    then read :attr:`calls`, :attr:`steps`, :attr:`trajectory`, or :meth:`to_run` for the
    JSON form that :class:`ProvenanceSink` writes and :func:`replay_loop` re-runs. One
    recorder records one run.

    Args:
        secrets: more values to redact wherever they appear (a password the tools use...).
        secret_keys: more key names whose values are redacted (any case).
    """

    def __init__(self, *, secrets: Iterable[str] = (), secret_keys: Iterable[str] = ()) -> None:
        self.task: Any = None
        self.config: LoopConfig | None = None
        self.trajectory: Trajectory | None = None
        self.steps: list[Step] = []
        self._calls: list[LLMCall] = []
        self._secrets = tuple(secrets)
        self._secret_keys = tuple(secret_keys)
        self._started = False
        self._next_index = 0
        self._lock = threading.Lock()

    @property
    def calls(self) -> list[LLMCall]:
        """The model calls made so far, in order."""
        with self._lock:
            return sorted(self._calls, key=lambda c: c.index)

    def wrap_llm(self, llm: Any) -> RecordingBackend | AsyncRecordingBackend:
        """A backend that forwards to ``llm`` and records every call.

        It has ``complete`` if ``llm`` has, and ``acomplete`` if ``llm`` has, so the sync and
        async loops call it exactly as they would call ``llm``. A backend written against
        the original looplet (``generate(prompt)``) is adapted first.

        Raises:
            ConfigurationError: ``llm`` has none of ``complete``, ``acomplete``, ``generate``.
        """
        has_sync, has_async = hasattr(llm, "complete"), hasattr(llm, "acomplete")
        if not (has_sync or has_async):
            generate = getattr(llm, "generate", None)
            if not callable(generate):
                raise ConfigurationError(
                    f"wrap_llm needs a model backend with complete(request) or "
                    f"acomplete(request) (or the original generate(prompt)); got "
                    f"{type(llm).__name__}, which has none of them."
                )
            import inspect

            from looplet.backends.legacy import LegacyTextBackend

            is_async = inspect.iscoroutinefunction(generate)
            llm, has_sync, has_async = LegacyTextBackend(llm), not is_async, True
        if has_sync and has_async:
            return _DualRecordingBackend(llm, self)
        if has_sync:
            return RecordingBackend(llm, self)
        return AsyncRecordingBackend(llm, self)

    def trajectory_hook(self) -> object:
        """A hook for the loop that records the task, each step and the final trajectory."""
        return _RecorderHook(self)

    def to_run(self, *, redact: bool = True) -> RecordedRun:
        """The record in its JSON form, secrets redacted unless ``redact`` is false."""
        traj = self.trajectory
        run = RecordedRun(
            task=plain(_jsonable(self.task)),
            config=plain(config_to_dict(self.config)) if self.config is not None else None,
            calls=[c.to_recorded() for c in self.calls],
            steps=[s.to_dict() for s in self.steps],
            trajectory=trajectory_document(traj) if traj is not None else None,
        )
        return Redactor(self._secrets, self._secret_keys).run(run) if redact else run

    # -- called by the recording backends and the hook

    def _open(self, request: LLMRequest, provider: str) -> _PendingCall:
        with self._lock:
            self._next_index += 1
            index = self._next_index
        frozen = LLMRequest(
            tuple(request.messages),
            tuple(request.tools),
            request.max_tokens,
            request.temperature,
            request.step,
        )
        return _PendingCall(self, index, frozen, provider)

    def _add_call(self, call: LLMCall) -> None:
        with self._lock:
            self._calls.append(call)

    def _start(self, task: Any) -> None:
        if self._started:
            raise ProvenanceError(
                f"{type(self).__name__} already recorded a run; it records one run only. "
                "Make a new one for each run.",
                getattr(self, "path", "."),
            )
        self._started = True
        self.task = task

    def _finished(self) -> None:
        """The loop ended (``on_loop_end``); the sink writes its files here."""


class _PendingCall:
    """A model call in flight; :meth:`close` records it. Shared by sync and async backends."""

    __slots__ = ("index", "provider", "recorder", "request", "started", "t0")

    def __init__(
        self, recorder: TrajectoryRecorder, index: int, request: LLMRequest, provider: str
    ) -> None:
        self.recorder = recorder
        self.index = index
        self.request = request
        self.provider = provider
        self.started = time.time()
        self.t0 = time.perf_counter()

    def close(
        self,
        response: LLMResponse | None = None,
        error: BaseException | None = None,
        backend: object = None,
    ) -> None:
        duration = (time.perf_counter() - self.t0) * 1000
        if response is not None:
            checked = guard_reply(response, backend, set(), 0)
            if isinstance(checked, LLMError):  # the loop ends the run with it: record it
                error, response = checked, None
        self.recorder._add_call(
            LLMCall(
                self.index,
                self.request.step,
                self.request,
                response,
                error,
                duration,
                self.started,
                self.provider,
            )
        )


class _RecorderBase:
    __slots__ = ("backend", "provider", "recorder")

    def __init__(self, backend: Any, recorder: TrajectoryRecorder) -> None:
        self.backend = backend
        self.recorder = recorder
        self.provider: str = getattr(backend, "provider", None) or type(backend).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend!r})"


class RecordingBackend(_RecorderBase):
    """A sync backend that forwards each request to ``backend`` and records the call."""

    __slots__ = ()

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Forward ``request``; record it with the reply or the error (which is re-raised)."""
        pending = self.recorder._open(request, self.provider)
        try:
            response: LLMResponse = self.backend.complete(request)
        except BaseException as exc:
            pending.close(error=exc)
            raise
        pending.close(response=response, backend=self.backend)
        return response


class AsyncRecordingBackend(_RecorderBase):
    """The async twin of :class:`RecordingBackend`: ``await acomplete(request)``."""

    __slots__ = ()

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Forward ``request``; record it with the reply or the error (which is re-raised)."""
        pending = self.recorder._open(request, self.provider)
        try:
            response: LLMResponse = await self.backend.acomplete(request)
        except BaseException as exc:
            pending.close(error=exc)
            raise
        pending.close(response=response, backend=self.backend)
        return response


class _DualRecordingBackend(RecordingBackend, AsyncRecordingBackend):
    """For a backend with both ``complete`` and ``acomplete``."""

    __slots__ = ()


class _RecorderHook:
    """The hook :meth:`TrajectoryRecorder.trajectory_hook` returns."""

    def __init__(self, recorder: TrajectoryRecorder) -> None:
        self._recorder = recorder

    def __repr__(self) -> str:
        return f"trajectory_hook({type(self._recorder).__name__})"

    def pre_loop(self, trajectory: Trajectory, config: LoopConfig) -> None:
        # Kept from the start, so a flush() during the run writes what is known so far.
        self._recorder.trajectory = trajectory
        self._recorder.config = config

    def on_event(self, event: LoopEvent) -> None:
        if event.kind == "step":
            self._recorder.steps.append(event.data["step"])
        elif event.kind == "loop_start":
            self._recorder._start(event.data.get("task"))

    def on_loop_end(self, trajectory: Trajectory, config: LoopConfig, task: Any) -> None:
        recorder = self._recorder
        recorder.trajectory, recorder.config, recorder.task = trajectory, config, task
        recorder._finished()


# -- the directory ----------------------------------------------------------------------------


@final
class ProvenanceSink(TrajectoryRecorder):
    """Records a run like :class:`TrajectoryRecorder` and writes it to the directory ``path``.

    The files are written when the loop ends (by the trajectory hook, however the run
    ends) and by each :meth:`flush`. Example::

        sink = ProvenanceSink("runs/refund-42")
        for step in composable_loop(llm=sink.wrap_llm(llm), tools=tools, task=task,
                                    hooks=[sink.trajectory_hook()]):
            ...

    Args:
        path: the directory; created if missing.
        overwrite: replace a run already recorded there (its files are deleted now).
        secrets: more values to redact wherever they appear.
        secret_keys: more key names whose values are redacted.

    Raises:
        ProvenanceError: ``path`` already holds a run and ``overwrite`` is false, or it is
            a file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        secrets: Iterable[str] = (),
        secret_keys: Iterable[str] = (),
    ) -> None:
        super().__init__(secrets=secrets, secret_keys=secret_keys)
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ProvenanceError(
                f"provenance path {str(self.path)!r} is a file, not a directory.", self.path
            )
        held = run_files(self.path)
        if held and not overwrite:
            raise ProvenanceError(
                f"{str(self.path)!r} already holds a recorded run ({held[0].name}, ...). "
                "Record into a new directory, or pass ProvenanceSink(path, overwrite=True) "
                "to replace it.",
                self.path,
            )
        for old in held:
            old.unlink()

    def flush(self) -> Path:
        """Write everything recorded so far (again, whole); return the directory."""
        write_run(self.to_run(), self.path)
        return self.path

    def summary(self) -> str:
        """The one-page summary of what is recorded (see :meth:`RecordedRun.summary`)."""
        run = self.to_run()
        run.path = self.path
        return run.summary()

    def _finished(self) -> None:
        self.flush()
