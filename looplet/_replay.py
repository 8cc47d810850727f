"""Replaying a recorded run with no model, and saying where the replay differs.

:func:`replay_loop` (and its async twin :func:`areplay_loop`) runs the loop again over a
recording: :class:`ReplayBackend` serves the recorded replies in order, the tools really run,
and the :class:`ReplayReport` says whether the run came out the same, at which step a tool
first behaved differently (:class:`StepDivergence`), and at which model call the request the
loop built first differed from the recorded one (:class:`RequestDivergence`). The recording
it reads, and the files it comes from, live in :mod:`looplet._run_files`; the redaction applied
to the replay before comparing in :mod:`looplet._redact`; recording in :mod:`looplet.provenance`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from looplet._redact import Redactor
from looplet._run_files import (
    ProvenanceError,
    RecordedCall,
    RecordedRun,
    clip,
    config_to_dict,
    error_from_dict,
    load_run,
    plain,
    request_to_dict,
    response_from_dict,
    step_line,
)
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.config import LoopConfig
from looplet.errors import LLMError, LoopletError
from looplet.types import Trajectory

if TYPE_CHECKING:
    from looplet.cassettes.diff import Change
    from looplet.state import AgentState
    from looplet.tools import BaseToolRegistry, ToolSpec

__all__ = [
    "ReplayBackend",
    "ReplayExhaustedError",
    "ReplayReport",
    "RequestDivergence",
    "StepDivergence",
    "areplay_loop",
    "replay_loop",
]


class ReplayExhaustedError(LLMError):
    """The replayed loop asked for more model calls than the recording holds."""

    def __init__(self, recorded: int, where: str) -> None:
        super().__init__(
            "replay",
            f"the loop asked for model call {recorded + 1}, but {where} recorded only "
            f"{recorded}: the replayed run went on where the recorded one had stopped.",
            kind="replay_exhausted",
        )
        self.recorded = recorded


# -- divergences and the report ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepDivergence:
    """The first step of a replay that differs from the recording.

    Attributes:
        step: its number.
        recorded: the recorded step (``Step.to_dict()`` without durations), or ``None`` when
            the replay made a step the recording does not have.
        replayed: the replayed step, or ``None`` when the replay stopped before it.
        changes: where the two differ, field by field.
    """

    step: int
    recorded: dict[str, Any] | None
    replayed: dict[str, Any] | None
    changes: tuple[Change, ...] = ()

    def explain(self) -> str:
        """The divergence as text: the field differences, then both results."""
        from looplet.cassettes.diff import render_changes

        if self.replayed is None and self.recorded is not None:
            return f"step {self.step} was recorded, but the replay stopped before it:\n" + (
                f"  recorded: {step_line(self.recorded)}"
            )
        if self.recorded is None and self.replayed is not None:
            return f"step {self.step} was made by the replay, but is not in the recording:\n" + (
                f"  replayed: {step_line(self.replayed)}"
            )
        assert self.recorded is not None and self.replayed is not None
        tool = self.recorded.get("tool_call", {}).get("tool")
        lines = [f"step {self.step} ({tool}) differs from the recording:"]
        lines += render_changes(list(self.changes))
        lines.append(f"  recorded: {_result_text(self.recorded)}")
        lines.append(f"  replayed: {_result_text(self.replayed)}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class RequestDivergence:
    """The first model call whose request differs from the recorded one.

    Attributes:
        call: the call's 1-based index.
        step: the step it was made for.
        changes: where the requests differ (``messages[4].content``, ``tools[1]``...).
    """

    call: int
    step: int
    changes: tuple[Change, ...]

    def explain(self) -> str:
        """The divergence as text: the call, then each differing field."""
        from looplet.cassettes.diff import render_changes

        head = f"model call {self.call} (step {self.step}): the request differs from the recording:"
        return "\n".join([head, *render_changes(list(self.changes))])


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What :func:`replay_loop` found.

    Attributes:
        trajectory: the replayed run's trajectory.
        matches: the replay reproduced the recording: the same steps (durations aside), the
            same stop reason, the same requests, every recorded call used.
        first_divergence: the first step whose tool now behaves differently, else ``None``.
        request_divergence: the first model call whose request differs, else ``None``.
        recorded_stop_reason: the stop reason of the recording.
        calls_recorded: how many model calls the recording holds.
        calls_replayed: how many the replay asked for.
        error: the error that ended the replayed run (a recorded model failure replayed, a
            raising hook, :class:`ReplayExhaustedError`), else ``None``.
    """

    trajectory: Trajectory
    matches: bool
    first_divergence: StepDivergence | None
    request_divergence: RequestDivergence | None
    recorded_stop_reason: str | None
    calls_recorded: int
    calls_replayed: int
    error: LoopletError | None = None

    def explain(self) -> str:
        """A few lines saying whether the replay matched, and where it first did not."""
        reason = self.trajectory.stop_reason.value if self.trajectory.stop_reason else None
        if self.matches:
            return (
                f"replay matches the recording: {len(self.trajectory.steps)} steps, "
                f"{self.calls_replayed} model calls, stop reason {reason}"
            )
        lines = ["replay differs from the recording:"]
        if self.first_divergence is not None:
            lines.append(self.first_divergence.explain())
        if self.request_divergence is not None:
            lines.append(self.request_divergence.explain())
        if reason != self.recorded_stop_reason:
            lines.append(f"stop reason: recorded {self.recorded_stop_reason}, replayed {reason}")
        if self.calls_replayed != self.calls_recorded:
            lines.append(
                f"model calls: recorded {self.calls_recorded}, replayed {self.calls_replayed}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()


class ReplayBackend:
    """A backend that answers with a recording's replies, in order, with no network.

    Sync and async (``complete``/``acomplete``). A recorded failure is raised again. The
    requests it receives are kept on :attr:`requests`, for :func:`replay_loop` to compare
    with the recorded ones.

    Raises:
        ReplayExhaustedError: (from ``complete``) the loop asks for more calls than recorded.
    """

    def __init__(self, run: RecordedRun) -> None:
        self.run = run
        self.provider = run.calls[0].provider if run.calls else "replay"
        #: Every request received, its messages and tools frozen as they were.
        self.requests: list[LLMRequest] = []
        self._lock = threading.Lock()

    def complete(self, request: LLMRequest) -> LLMResponse:
        """The next recorded reply (or the recorded error, raised)."""
        frozen = LLMRequest(
            tuple(request.messages),
            tuple(request.tools),
            request.max_tokens,
            request.temperature,
            request.step,
        )
        with self._lock:
            index = len(self.requests)
            self.requests.append(frozen)
        calls = self.run.calls
        if index >= len(calls):
            raise ReplayExhaustedError(len(calls), str(self.run.path or "the recording"))
        recorded = calls[index]
        if recorded.error is not None:
            raise error_from_dict(recorded.error, recorded.provider)
        return response_from_dict(recorded.response or {})

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """The async form of :meth:`complete`."""
        return self.complete(request)


_RECORDED: Any = object()


def replay_loop(
    recording: RecordedRun | str | os.PathLike[str],
    *,
    tools: BaseToolRegistry | Iterable[ToolSpec],
    hooks: Iterable[object] | None = (),
    config: LoopConfig | None = None,
    task: Any = _RECORDED,
    state: AgentState | None = None,
    context: Any = None,
    secrets: Iterable[str] = (),
    secret_keys: Iterable[str] = (),
) -> ReplayReport:
    """Re-run a recorded run with no model: the recorded replies, the tools run again.

    Example::

        report = replay_loop("runs/refund-42", tools=make_tools())
        assert report.matches, report.explain()

    Args:
        recording: a provenance directory, or a :class:`RecordedRun`.
        tools: the tools to run (the code under test).
        hooks: hooks for the replayed loop.
        config: settings; defaults to the recorded ones (:meth:`RecordedRun.loop_config`).
        task: the task; defaults to the recorded one (redacted values stay redacted).
        state: the agent state, as for ``composable_loop``.
        context: handed to hooks, as for ``composable_loop``.
        secrets: what the recording sink was given as ``secrets``, so the replay is
            redacted the same way before it is compared.
        secret_keys: likewise, what the sink was given as ``secret_keys``.

    Returns:
        A :class:`ReplayReport`. A run that ends in an error (a recorded model failure, a
        raising hook, the recording running out) is reported on ``.error``, not raised.

    Raises:
        ProvenanceError: the directory cannot be read, or recorded no model call.
    """
    from looplet.loop import composable_loop

    run, backend, kwargs = _prepare(recording, tools, hooks, config, task, state, context)
    loop = composable_loop(backend, **kwargs)
    error: LoopletError | None = None
    try:
        for _ in loop:
            pass
    except LoopletError as exc:
        error = exc
    return _report(run, backend, loop.trajectory, error, kwargs["config"], (secrets, secret_keys))


async def areplay_loop(
    recording: RecordedRun | str | os.PathLike[str],
    *,
    tools: BaseToolRegistry | Iterable[ToolSpec],
    hooks: Iterable[object] | None = (),
    config: LoopConfig | None = None,
    task: Any = _RECORDED,
    state: AgentState | None = None,
    context: Any = None,
    secrets: Iterable[str] = (),
    secret_keys: Iterable[str] = (),
) -> ReplayReport:
    """The async twin of :func:`replay_loop`, over ``async_composable_loop``."""
    from looplet.loop import async_composable_loop

    run, backend, kwargs = _prepare(recording, tools, hooks, config, task, state, context)
    loop = async_composable_loop(backend, **kwargs)
    error: LoopletError | None = None
    try:
        async for _ in loop:
            pass
    except LoopletError as exc:
        error = exc
    return _report(run, backend, loop.trajectory, error, kwargs["config"], (secrets, secret_keys))


def _prepare(
    recording: RecordedRun | str | os.PathLike[str],
    tools: Any,
    hooks: Iterable[object] | None,
    config: LoopConfig | None,
    task: Any,
    state: AgentState | None,
    context: Any,
) -> tuple[RecordedRun, ReplayBackend, dict[str, Any]]:
    run = recording if isinstance(recording, RecordedRun) else load_run(recording)
    if not run.calls:
        raise ProvenanceError(
            f"{str(run.path or 'the recording')!r} holds no model call, so there is nothing to "
            "replay. Record with the backend wrapped: llm=sink.wrap_llm(llm).",
            run.path or ".",
        )
    kwargs = {
        "task": run.task if task is _RECORDED else task,
        "tools": tools,
        "hooks": hooks,
        "config": config if config is not None else run.loop_config(),
        "state": state,
        "context": context,
    }
    return run, ReplayBackend(run), kwargs


def _report(
    run: RecordedRun,
    backend: ReplayBackend,
    trajectory: Trajectory,
    error: LoopletError | None,
    config: LoopConfig | None,
    redaction: tuple[Iterable[str], Iterable[str]],
) -> ReplayReport:
    # Redact the replay as the recording was: learn its secrets from the whole run first,
    # so that a secret seen under a key (a tool's "token") is also replaced in the text
    # of later requests, exactly as on disk.
    requests = [plain(request_to_dict(r)) for r in backend.requests]
    steps = plain([s.to_dict() for s in trajectory.steps])
    redactor = Redactor(*redaction)
    used = config_to_dict(config or LoopConfig())
    redactor.learn([requests, steps, plain(trajectory.to_dict()), used])
    divergence = _first_divergence(
        [_comparable(s) for s in run.steps], [_comparable(s) for s in redactor.scrub(steps)]
    )
    request_divergence = _first_request_divergence(run.calls, redactor.scrub(requests))
    reason = trajectory.stop_reason.value if trajectory.stop_reason else None
    matches = (
        divergence is None
        and request_divergence is None
        and reason == run.stop_reason
        and len(requests) == len(run.calls)
    )
    return ReplayReport(
        trajectory=trajectory,
        matches=matches,
        first_divergence=divergence,
        request_divergence=request_divergence,
        recorded_stop_reason=run.stop_reason,
        calls_recorded=len(run.calls),
        calls_replayed=len(requests),
        error=error,
    )


def _first_request_divergence(
    recorded: list[RecordedCall], requests: list[dict[str, Any]]
) -> RequestDivergence | None:
    from looplet.cassettes.diff import diff_json

    for call, new in zip(recorded, requests, strict=False):
        changes = diff_json(call.request, new, limit=20)
        if changes:
            return RequestDivergence(call.index, int(new.get("step", 0)), tuple(changes))
    return None


def _comparable(step: dict[str, Any]) -> dict[str, Any]:
    """A step without its timing, which differs on every run."""
    result = {k: v for k, v in step.get("tool_result", {}).items() if k != "duration_ms"}
    return {**step, "tool_result": result}


def _first_divergence(
    recorded: list[dict[str, Any]], replayed: list[dict[str, Any]]
) -> StepDivergence | None:
    from looplet.cassettes.diff import diff_json

    for i in range(max(len(recorded), len(replayed))):
        old = recorded[i] if i < len(recorded) else None
        new = replayed[i] if i < len(replayed) else None
        if old is None or new is None:
            return StepDivergence(i + 1, old, new)
        changes = diff_json(old, new, limit=20)
        if changes:
            return StepDivergence(i + 1, old, new, tuple(changes))
    return None


def _result_text(step: Mapping[str, Any]) -> str:
    result = step.get("tool_result") or {}
    if result.get("error") is not None:
        return clip(f"ERROR: {result['error']}", 160)
    return clip(json.dumps(result.get("data"), ensure_ascii=False, sort_keys=True), 160)
