"""Tracing: a span per run, per model call and per tool call, kept in memory or sent on.

:class:`TracingHook` watches a run and records :class:`Span` objects in a :class:`Tracer`:
model and tool calls nest under their run, and a sub-agent's run (:mod:`looplet.subagent`)
under the tool call that started it. The tracer keeps every span (``.spans``), hands each
finished one to an exporter function, and, when asked, mirrors them as OpenTelemetry spans
(the ``otel`` extra; ``opentelemetry`` is imported only then). Span and attribute names follow
OpenTelemetry's generative-AI conventions (``chat``, ``execute_tool <name>``,
``gen_ai.usage.input_tokens``...). Counting (steps, tokens, cost) is
:class:`looplet.observe.MetricsHook`'s job, not this module's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from looplet.errors import ConfigurationError, MissingExtraError
from looplet.hooks import LoopEvent
from looplet.types import Step, StopReason, ToolCall, Trajectory

__all__ = ["Span", "Tracer", "TracingHook"]

_RUN_FAILURES = (StopReason.LLM_ERROR, StopReason.HOOK_ERROR)


@dataclass(slots=True, eq=False)
class Span:
    """One timed piece of a run: the run itself, a model call, a tool call.

    Attributes:
        name: ``looplet.run``, ``chat`` or ``execute_tool <tool>`` (OpenTelemetry's names).
        kind: ``run``, ``llm``, ``tool`` or ``compaction``.
        span_id: 16 hex digits; ``parent_id`` is the enclosing span's (``None`` for a run
            that is not a sub-agent's).
        trace_id: 32 hex digits, shared by every span of one top-level run.
        start_ns, end_ns: wall-clock times in nanoseconds since the epoch (``end_ns`` is
            ``None`` while the span is open).
        attributes: what happened (model, tokens, tool name, step, ok...).
        status: ``"ok"`` or ``"error"`` once ended (``"unset"`` while open).
        error: what went wrong, when ``status`` is ``"error"``.
    """

    name: str
    kind: str
    span_id: str
    parent_id: str | None
    trace_id: str
    start_ns: int
    end_ns: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "unset"
    error: str = ""

    @property
    def duration_ms(self) -> float:
        """How long the span lasted (0 while open)."""
        return (self.end_ns - self.start_ns) / 1e6 if self.end_ns is not None else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form of the span."""
        return {
            "name": self.name,
            "kind": self.kind,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "trace_id": self.trace_id,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ms": round(self.duration_ms, 3),
            "attributes": dict(self.attributes),
            "status": self.status,
            "error": self.error,
        }


class Tracer:
    """Keeps spans in memory and hands each finished one to the exporters.

    Args:
        exporter: called with each :class:`Span` as it ends; or an OpenTelemetry
            ``SpanExporter`` (such as the SDK's ``InMemorySpanExporter``), which then gets
            every span through an SDK tracer provider of its own.
        use_otel: also send spans to OpenTelemetry, through ``tracer_provider`` or the
            global provider (``opentelemetry.trace.get_tracer``).
        tracer_provider: the OpenTelemetry provider to use with ``use_otel``.

    Raises:
        MissingExtraError: OpenTelemetry is asked for and not installed (``looplet[otel]``).
    """

    def __init__(
        self, exporter: Any = None, *, use_otel: bool = False, tracer_provider: Any = None
    ) -> None:
        self.spans: list[Span] = []
        self._callback: Callable[[Span], None] | None = None
        self._otel: _OtelBridge | None = None
        self._lock = threading.Lock()
        if exporter is not None and callable(exporter):
            self._callback = exporter
        elif exporter is not None:
            if not callable(getattr(exporter, "export", None)):
                raise ConfigurationError(
                    f"exporter must be a function taking a Span, or an OpenTelemetry "
                    f"SpanExporter; got {type(exporter).__name__}"
                )
            tracer_provider = _sdk_provider(exporter)
            use_otel = True
        if use_otel or tracer_provider is not None:
            self._otel = _OtelBridge(tracer_provider)

    def start(
        self, name: str, kind: str, parent: Span | None, attributes: Mapping[str, Any] = {}
    ) -> Span:
        """Open a span under ``parent`` (a new trace if ``None``)."""
        trace_id = parent.trace_id if parent is not None else os.urandom(16).hex()
        span = Span(
            name,
            kind,
            os.urandom(8).hex(),
            parent.span_id if parent is not None else None,
            trace_id,
            time.time_ns(),
            attributes=dict(attributes),
        )
        with self._lock:
            self.spans.append(span)
        if self._otel is not None:
            self._otel.start(span, parent)
        return span

    def end(
        self, span: Span, *, error: str | None = None, attributes: Mapping[str, Any] = {}
    ) -> Span:
        """Close ``span`` (``error``: it failed), add ``attributes``, and export it."""
        span.end_ns = time.time_ns()
        span.attributes.update(attributes)
        span.status, span.error = ("error", error) if error is not None else ("ok", "")
        if self._otel is not None:
            self._otel.end(span)
        if self._callback is not None:
            self._callback(span)
        return span

    def children(self, span: Span) -> list[Span]:
        """The spans directly under ``span``, in the order they started."""
        return [s for s in self.spans if s.parent_id == span.span_id]

    def roots(self) -> list[Span]:
        """The spans with no parent (one per top-level run)."""
        return [s for s in self.spans if s.parent_id is None]


class TracingHook:
    """Records spans for a run: one for the run, one per model call, one per tool call.

    Spans nest: model and tool calls sit under their run, and a sub-agent's run under the
    tool call that started it. They stay in memory (:attr:`spans`) and, if asked, go to
    OpenTelemetry as they end. One hook traces one run at a time; runs one after the other
    are separate traces.

    Example::

        tracing = TracingHook(use_otel=True)  # spans go to your OpenTelemetry SDK too
        list(composable_loop(llm=llm, tools=tools, task=task, hooks=[tracing]))
        run = tracing.tracer.roots()[0]

    Args:
        exporter: as for :class:`Tracer`.
        use_otel: as for :class:`Tracer`.
        tracer_provider: as for :class:`Tracer`.
        tracer: the tracer to record into (a new one by default); as in the original
            looplet, it may also be passed first, ``TracingHook(tracer)``.

    Raises:
        MissingExtraError: OpenTelemetry is asked for and not installed (``looplet[otel]``).
    """

    def __init__(
        self,
        exporter: Any = None,
        *,
        use_otel: bool = False,
        tracer_provider: Any = None,
        tracer: Tracer | None = None,
    ) -> None:
        if isinstance(exporter, Tracer) and tracer is None:  # the original's TracingHook(tracer)
            exporter, tracer = None, exporter
        if tracer is None:
            tracer = Tracer(exporter, use_otel=use_otel, tracer_provider=tracer_provider)
        self.tracer = tracer
        self._parent: Span | None = None  # a sub-agent's: the tool span that started it
        self._run: Span | None = None
        self._llm: Span | None = None
        self._tools: dict[str, Span] = {}

    @property
    def spans(self) -> list[Span]:
        """Every span recorded, in the order they started."""
        return self.tracer.spans

    def pre_dispatch(self, tool_call: ToolCall, step_num: int) -> None:
        """Open the tool call's span just before it runs (no opinion on the call)."""
        attributes: dict[str, Any] = {
            "gen_ai.tool.name": tool_call.tool,
            "gen_ai.tool.call.id": tool_call.call_id,
            "looplet.step": step_num,
        }
        name = f"execute_tool {tool_call.tool}"
        self._tools[tool_call.call_id] = self.tracer.start(name, "tool", self._run, attributes)

    def on_event(self, event: LoopEvent) -> None:
        """Open and close spans as the run goes."""
        kind, data, tracer = event.kind, event.data, self.tracer
        if kind == "loop_start":
            task = {"looplet.task": str(data.get("task"))[:200]}
            self._run = tracer.start("looplet.run", "run", self._parent, task)
        elif kind == "llm_call":
            request = data["request"]
            attributes = {"looplet.step": event.step_num, "looplet.messages": len(request.messages)}
            self._llm = tracer.start("chat", "llm", self._run, attributes)
        elif kind == "llm_response" and self._llm is not None:
            tracer.end(self._llm, attributes=_reply_attributes(data["response"]))
            self._llm = None
        elif kind == "step":
            self._end_tool(data["step"])
        elif kind == "compaction":
            record = data["record"]
            span = tracer.start("looplet.compaction", "compaction", self._run, record.to_dict())
            tracer.end(span)
        elif kind == "loop_end":
            self._end_run(data["trajectory"])

    def subagent_hook(self, parent_step: int) -> TracingHook:
        """The hook a sub-agent's run gets: same tracer, its run under the calling tool."""
        child = TracingHook(tracer=self.tracer)
        open_tools = [
            s for s in self._tools.values() if s.attributes.get("looplet.step") == parent_step
        ]
        child._parent = open_tools[-1] if open_tools else self._run
        return child

    def _end_tool(self, step: Step) -> None:
        result = step.tool_result
        span = self._tools.pop(step.tool_call.call_id, None)
        if span is None:  # never ran (unknown tool, bad arguments, denied): no time spent
            attributes = {"gen_ai.tool.name": step.tool_call.tool, "looplet.step": step.number}
            span = self.tracer.start(f"execute_tool {step.tool_call.tool}", "tool", self._run)
            span.attributes.update(attributes)
        kind = result.error_kind
        attributes = {"looplet.step": step.number, "looplet.tool.ok": kind is None}
        if kind is not None:
            attributes["error.type"] = kind.value
        self.tracer.end(span, error=result.error, attributes=attributes)

    def _end_run(self, trajectory: Trajectory) -> None:
        why = trajectory.stop_detail or "the run ended before this finished"
        if self._llm is not None:
            self.tracer.end(self._llm, error=why)
            self._llm = None
        for span in self._tools.values():
            self.tracer.end(span, error=why)
        self._tools.clear()
        if self._run is None:
            return
        reason = trajectory.stop_reason
        failed = trajectory.error is not None or reason in _RUN_FAILURES
        attributes = {
            "looplet.stop_reason": reason.value if reason is not None else "",
            "looplet.steps": len(trajectory.steps),
            "looplet.llm_calls": trajectory.llm_calls,
            "gen_ai.usage.input_tokens": trajectory.usage.input_tokens,
            "gen_ai.usage.output_tokens": trajectory.usage.output_tokens,
        }
        error = trajectory.stop_detail or str(reason) if failed else None
        self.tracer.end(self._run, error=error, attributes=attributes)
        self._run = None


def _reply_attributes(reply: Any) -> dict[str, Any]:
    return {
        "gen_ai.response.model": reply.model,
        "gen_ai.usage.input_tokens": reply.usage.input_tokens,
        "gen_ai.usage.output_tokens": reply.usage.output_tokens,
        "gen_ai.response.finish_reasons": reply.finish_reason,
        "looplet.tool_calls": len(reply.tool_calls),
    }


# -- OpenTelemetry, imported only when asked for ----------------------------------------------


class _OtelBridge:
    """Mirrors each looplet span as an OpenTelemetry span: opened and closed with it."""

    def __init__(self, provider: Any) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise MissingExtraError("opentelemetry-api", "otel", "OpenTelemetry export") from None
        self._trace = trace
        source = provider if provider is not None else trace
        self._tracer = source.get_tracer("looplet")
        self._open: dict[str, Any] = {}

    def start(self, span: Span, parent: Span | None) -> None:
        otel_parent = self._open.get(parent.span_id) if parent is not None else None
        context = self._trace.set_span_in_context(otel_parent) if otel_parent else None
        self._open[span.span_id] = self._tracer.start_span(
            span.name, context=context, start_time=span.start_ns, attributes=_plain(span)
        )

    def end(self, span: Span) -> None:
        otel = self._open.pop(span.span_id, None)
        if otel is None:
            return
        otel.set_attributes(_plain(span))
        code = self._trace.StatusCode.ERROR if span.status == "error" else self._trace.StatusCode.OK
        otel.set_status(self._trace.Status(code, span.error or None))
        otel.end(end_time=span.end_ns)


def _plain(span: Span) -> dict[str, Any]:
    """The span's attributes as OpenTelemetry takes them: str, bool, int or float."""
    out: dict[str, Any] = {"looplet.kind": span.kind}
    for key, value in span.attributes.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


def _sdk_provider(exporter: Any) -> Any:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    except ImportError:
        raise MissingExtraError(
            "opentelemetry-sdk", "otel", "exporting to an OpenTelemetry SpanExporter"
        ) from None
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
