"""Observer hooks: watch a run as it happens without changing it.

:class:`StreamingHook` forwards the chunks of streamed model replies to your callbacks or a
queue. :class:`MetricsHook` counts steps, model calls, tokens, cost, time per tool and errors
by kind into a :class:`MetricsCollector`, and follows a run into its sub-agents
(:mod:`looplet.subagent`) through ``subagent_hook``. :class:`TracingHook` (spans, and their
OpenTelemetry export) lives in :mod:`looplet.tracing` and is importable from here too; it
loads on first use. Hooks that decide or change anything live with the features they serve
(permissions, compaction...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from looplet.backends.base import StreamChunk
from looplet.errors import ConfigurationError
from looplet.hooks import LoopEvent
from looplet.pricing import Prices, cost_usd
from looplet.types import Step, StopReason, Trajectory, Usage

if TYPE_CHECKING:
    from looplet.tracing import Span, Tracer, TracingHook

__all__ = ["MetricsCollector", "MetricsHook", "Span", "StreamingHook", "Tracer", "TracingHook"]

_RUN_FAILURES = (StopReason.LLM_ERROR, StopReason.HOOK_ERROR)


class StreamingHook:
    """Receives each chunk of a streamed reply while the model is still answering.

    Use it with a backend created with ``stream=True``; a backend that does not stream sends
    no chunks, and the hook then sees only whole replies through the loop's steps. For the
    whole run as it happens (model calls, steps, its end) to a function or an async
    iterator, with streaming turned on for you, pass ``stream=`` to the loop instead (see
    :mod:`looplet.streaming`).

    Example::

        hook = StreamingHook(on_text=lambda text: print(text, end="", flush=True))
        for step in composable_loop(llm=OpenAIBackend(client, model=m, stream=True),
                                    tools=tools, task=task, hooks=[hook]):
            ...

    Args:
        on_chunk: called with every :class:`~looplet.backends.base.StreamChunk`.
        on_text: called with the text of each chunk that carries text.
        queue: gets every chunk (``put_nowait``), then ``None`` when the run ends, so a
            consumer in another thread knows when to stop. A ``queue.Queue`` is safe from
            any thread; an ``asyncio.Queue`` only from its event loop's thread.
    """

    def __init__(
        self,
        on_chunk: Callable[[StreamChunk], None] | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
        queue: Any = None,
    ) -> None:
        if on_chunk is not None and not callable(on_chunk):
            raise ConfigurationError(
                f"StreamingHook(on_chunk) must be a callable taking each chunk, got "
                f"{type(on_chunk).__name__}. The original looplet's emitters are gone: pass "
                "on_chunk=, on_text= or queue= (see docs/migration.md)."
            )
        if queue is not None and not callable(getattr(queue, "put_nowait", None)):
            raise ConfigurationError(
                f"StreamingHook(queue=...) needs a queue with put_nowait(), such as "
                f"queue.Queue(); got {type(queue).__name__}"
            )
        self.on_chunk = on_chunk
        self.on_text = on_text
        self.queue = queue

    def on_event(self, event: LoopEvent) -> None:
        """Forward ``llm_chunk`` events (and, to a queue, the end of the run)."""
        if event.kind != "llm_chunk":
            if event.kind == "loop_end" and self.queue is not None:
                self.queue.put_nowait(None)
            return
        chunk: StreamChunk = event.data["chunk"]
        if self.on_chunk is not None:
            self.on_chunk(chunk)
        if self.on_text is not None and chunk.text:
            self.on_text(chunk.text)
        if self.queue is not None:
            self.queue.put_nowait(chunk)


# -- metrics ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Timing:
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0

    def add(self, ms: float, failed: bool = False) -> None:
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        self.errors += failed

    def to_dict(self) -> dict[str, Any]:
        mean = self.total_ms / self.count if self.count else 0.0
        return {
            "count": self.count,
            "errors": self.errors,
            "total_ms": round(self.total_ms, 3),
            "mean_ms": round(mean, 3),
            "max_ms": round(self.max_ms, 3),
        }


#: What :meth:`MetricsCollector.snapshot` counts per model (besides ``cost_usd``).
_MODEL_COUNTS = (
    "replies",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


class MetricsCollector:
    """Totals over one or more runs: what :class:`MetricsHook` fills and snapshots.

    Safe to share between runs in several threads. Read it with :meth:`snapshot`.

    Args:
        prices: the price table for cost (default :data:`looplet.pricing.PRICES`).
    """

    def __init__(self, prices: Prices | None = None) -> None:
        self.prices = prices
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self.runs = 0
            self.steps = 0
            self.model_calls = 0
            self.input_tokens = 0
            self.output_tokens = 0
            self.cache_read_tokens = 0
            self.cache_write_tokens = 0
            self.cost_usd = 0.0
            self.unpriced_calls = 0
            self.model_time = _Timing()
            self.models: dict[str, dict[str, Any]] = {}
            self.tools: dict[str, _Timing] = {}
            self.errors: dict[str, int] = {}
            self.stop_reasons: dict[str, int] = {}

    @property
    def total_llm_calls(self) -> int:
        """Model calls made (the original looplet's name for :attr:`model_calls`)."""
        return self.model_calls

    def record_model_call(self) -> None:
        """Count one model call that was sent (whether or not a reply came)."""
        with self._lock:
            self.model_calls += 1

    def record_model_reply(self, model: str, usage: Usage, duration_ms: float) -> None:
        """Add a reply: its tokens and cost (under ``model``) and the time it took."""
        cost = cost_usd(usage, model, self.prices)
        with self._lock:
            self.model_time.add(duration_ms)
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cache_read_tokens += usage.cache_read_tokens
            self.cache_write_tokens += usage.cache_write_tokens
            entry = self.models.get(model)
            if entry is None:
                entry = self.models[model] = dict.fromkeys(_MODEL_COUNTS, 0)
                entry["cost_usd"] = None
            entry["replies"] += 1
            entry["input_tokens"] += usage.input_tokens
            entry["output_tokens"] += usage.output_tokens
            entry["cache_read_tokens"] += usage.cache_read_tokens
            entry["cache_write_tokens"] += usage.cache_write_tokens
            if cost is None:
                self.unpriced_calls += 1
                return
            self.cost_usd += cost
            entry["cost_usd"] = round((entry["cost_usd"] or 0.0) + cost, 9)

    def record_step(self, step: Step) -> None:
        """Count a step: its tool's time, and its error kind if it failed."""
        result = step.tool_result
        kind = result.error_kind
        with self._lock:
            self.steps += 1
            timing = self.tools.setdefault(step.tool_call.tool, _Timing())
            timing.add(result.duration_ms, kind is not None)
            if kind is not None:
                self.errors[kind.value] = self.errors.get(kind.value, 0) + 1

    def record_run_start(self) -> None:
        """Count a run (a sub-agent's too)."""
        with self._lock:
            self.runs += 1

    def record_run_end(self, trajectory: Trajectory) -> None:
        """Count how a run ended; a provider or hook failure also counts as an error."""
        with self._lock:
            reason = trajectory.stop_reason
            name = reason.value if reason is not None else "running"
            self.stop_reasons[name] = self.stop_reasons.get(name, 0) + 1
            if reason in _RUN_FAILURES:
                self.errors[name] = self.errors.get(name, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, as a JSON-able dict (a copy: later runs do not change it)."""
        with self._lock:
            return {
                "runs": self.runs,
                "steps": self.steps,
                "model_calls": self.model_calls,
                "tokens": {
                    "input": self.input_tokens,
                    "output": self.output_tokens,
                    "total": self.input_tokens + self.output_tokens,
                    "cache_read": self.cache_read_tokens,
                    "cache_write": self.cache_write_tokens,
                },
                "cost_usd": round(self.cost_usd, 9),
                "unpriced_model_calls": self.unpriced_calls,
                "model_time": self.model_time.to_dict(),
                "models": {name: dict(m) for name, m in self.models.items()},
                "tools": {name: t.to_dict() for name, t in self.tools.items()},
                "errors": dict(self.errors),
                "stop_reasons": dict(self.stop_reasons),
            }


class MetricsHook:
    """Counts what runs do: steps, model calls, tokens, cost, time per tool, errors by kind.

    Example::

        metrics = MetricsHook()
        list(composable_loop(llm=llm, tools=tools, task=task, hooks=[metrics]))
        print(metrics.snapshot()["tokens"], metrics.snapshot()["tools"]["search"]["mean_ms"])

    One hook may watch many runs, one after the other; the totals add up. A sub-agent's
    model calls and steps are counted too. A model call is priced from the model its reply
    names (``LLMResponse.model``); replies with no price count as ``unpriced_model_calls``.

    Args:
        collector: where to count (a new :class:`MetricsCollector` by default); share one
            between hooks to add up runs that happen at the same time.
        prices: the price table, when no collector is given.
    """

    def __init__(
        self, collector: MetricsCollector | None = None, *, prices: Prices | None = None
    ) -> None:
        self.collector = collector if collector is not None else MetricsCollector(prices)
        self._call_started = 0.0

    def on_event(self, event: LoopEvent) -> None:
        """Count the event."""
        kind, data, metrics = event.kind, event.data, self.collector
        if kind == "llm_call":
            self._call_started = time.perf_counter()
            metrics.record_model_call()
        elif kind == "llm_response":
            ms = (time.perf_counter() - self._call_started) * 1000
            reply = data["response"]
            metrics.record_model_reply(reply.model, reply.usage, ms)
        elif kind == "step":
            metrics.record_step(data["step"])
        elif kind == "loop_start":
            metrics.record_run_start()
        elif kind == "loop_end":
            metrics.record_run_end(data["trajectory"])

    def snapshot(self) -> dict[str, Any]:
        """What has been counted, as a dict (see :meth:`MetricsCollector.snapshot`)."""
        return self.collector.snapshot()

    def subagent_hook(self, parent_step: int) -> MetricsHook:
        """The hook a sub-agent's run gets: it counts into the same collector."""
        return MetricsHook(self.collector)


def __getattr__(name: str) -> Any:
    # The tracing names load on first use: `import looplet` imports this module.
    if name in ("Span", "Tracer", "TracingHook"):
        import looplet.tracing

        return getattr(looplet.tracing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
