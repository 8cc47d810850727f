"""Observers: streamed chunks to a queue, metrics of runs, and spans (in memory and OTel)."""

from __future__ import annotations

import queue
import subprocess
import sys
from typing import Any

import pytest

from looplet import LLMError, ToolCall, ToolSpec, Trajectory, composable_loop
from looplet.backends.base import LLMRequest, LLMResponse, StreamChunk
from looplet.errors import ConfigurationError, MissingExtraError
from looplet.observe import MetricsCollector, MetricsHook, StreamingHook, TracingHook
from looplet.pricing import PRICES, cost_usd, price_of
from looplet.subagent import subagent_tool
from looplet.testing import MockLLMBackend
from looplet.tracing import Span, Tracer
from looplet.types import Usage
from tests.conftest import make_tools, run_sync

GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "ok"})


def boom() -> None:
    raise RuntimeError("boom")


def tools_with_failures() -> Any:
    return make_tools(boom=ToolSpec("boom", "Fail.", None, boom))


# -- streaming ---------------------------------------------------------------------------------


def streamed(text: str) -> Any:
    def reply(request: LLMRequest) -> str:
        assert request.on_chunk is not None
        for piece in (text[:3], text[3:]):
            request.on_chunk(StreamChunk(text=piece))
        return text

    return reply


def test_a_queue_gets_every_chunk_then_none_when_the_run_ends() -> None:
    chunks: queue.Queue[StreamChunk | None] = queue.Queue()
    texts: list[str] = []
    hook = StreamingHook(queue=chunks, on_text=texts.append)
    run_sync(llm=MockLLMBackend([streamed("Hello there")]), tools=make_tools(), hooks=[hook])

    got = [chunks.get_nowait() for _ in range(chunks.qsize())]
    assert [c.text if c else None for c in got] == ["Hel", "lo there", None]
    assert texts == ["Hel", "lo there"]


def test_a_queue_without_put_nowait_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"put_nowait\(\)"):
        StreamingHook(queue=[])


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_count_steps_model_calls_and_the_tokens_of_the_run() -> None:
    metrics = MetricsHook()
    _, traj = run_sync(
        llm=MockLLMBackend([GREET, [GREET, GREET], DONE]), tools=make_tools(), hooks=[metrics]
    )
    snap = metrics.snapshot()
    assert snap["runs"] == 1 and snap["steps"] == 4 == len(traj.steps)
    assert snap["model_calls"] == 3 == traj.llm_calls == metrics.collector.total_llm_calls
    assert snap["tokens"] == {
        "input": traj.usage.input_tokens,
        "output": traj.usage.output_tokens,
        "total": traj.usage.total_tokens,
        "cache_read": 0,
        "cache_write": 0,
    }
    assert snap["tokens"]["total"] > 0
    assert snap["stop_reasons"] == {"done": 1} and snap["errors"] == {}
    assert snap["model_time"]["count"] == 3


def test_metrics_show_the_cache_reads_and_writes_the_discounted_cost_comes_from() -> None:
    # The cost saw the prompt-cache discount, but the snapshot did not say why: the cached
    # tokens were nowhere in it.
    cached = Usage(2000, 20, cache_read_tokens=1800, cache_write_tokens=150)
    metrics = MetricsHook()
    metrics.collector.record_model_reply("claude-sonnet-4", cached, 1.0)
    metrics.collector.record_model_reply("claude-sonnet-4", cached, 1.0)
    snap = metrics.snapshot()
    assert snap["tokens"]["cache_read"] == 3600 and snap["tokens"]["cache_write"] == 300
    model = snap["models"]["claude-sonnet-4"]
    assert model["cache_read_tokens"] == 3600 and model["cache_write_tokens"] == 300
    assert snap["cost_usd"] == round(2 * cost_usd(cached, "claude-sonnet-4"), 9)


def test_time_per_tool_is_counted_from_each_step() -> None:
    metrics = MetricsHook()
    _, traj = run_sync(
        llm=MockLLMBackend([GREET, GREET, GREET, DONE]), tools=make_tools(), hooks=[metrics]
    )
    greet = metrics.snapshot()["tools"]["greet"]
    durations = [s.tool_result.duration_ms for s in traj.calls("greet")]
    assert greet["count"] == 3 and greet["errors"] == 0
    assert greet["total_ms"] == round(sum(durations), 3)
    assert greet["max_ms"] == round(max(durations), 3)
    assert greet["mean_ms"] == round(sum(durations) / 3, 3)
    assert metrics.snapshot()["tools"]["done"]["count"] == 1


def test_errors_are_counted_by_kind_for_tools_and_for_the_run() -> None:
    metrics = MetricsHook()
    script = [
        ToolCall("nope", {}),
        ToolCall("greet", {"name": 3}),
        ToolCall("boom", {}),
        LLMError("mock", "down", status=503),
    ]
    with pytest.raises(LLMError):
        run_sync(llm=MockLLMBackend(script), tools=tools_with_failures(), hooks=[metrics])
    snap = metrics.snapshot()
    assert snap["errors"] == {
        "unknown_tool": 1,
        "validation": 1,
        "execution": 1,
        "llm_error": 1,
    }
    assert snap["tools"]["boom"]["errors"] == 1 and snap["stop_reasons"] == {"llm_error": 1}
    assert snap["model_calls"] == 4 and snap["model_time"]["count"] == 3


def priced(model: str, tokens_in: int, tokens_out: int, call: ToolCall) -> LLMResponse:
    return LLMResponse(tool_calls=(call,), usage=Usage(tokens_in, tokens_out), model=model)


def test_cost_comes_from_the_price_table_by_the_model_each_reply_names() -> None:
    metrics = MetricsHook()
    script = [
        priced("gpt-4o-mini-2024-07-18", 1_000_000, 0, GREET),
        priced("claude-sonnet-4-20250514", 0, 1_000_000, GREET),
        priced("my-local-model", 500, 500, DONE),
    ]
    run_sync(llm=MockLLMBackend(script), tools=make_tools(), hooks=[metrics])
    snap = metrics.snapshot()
    assert snap["cost_usd"] == pytest.approx(0.15 + 15.00)
    assert snap["unpriced_model_calls"] == 1
    assert snap["models"]["gpt-4o-mini-2024-07-18"]["cost_usd"] == pytest.approx(0.15)
    assert snap["models"]["my-local-model"] == {
        "replies": 1,
        "input_tokens": 500,
        "output_tokens": 500,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": None,
    }

    own = MetricsHook(prices={"my-local-model": (1.0, 3.0)})
    run_sync(llm=MockLLMBackend(script[2:]), tools=make_tools(), hooks=[own])
    assert own.snapshot()["cost_usd"] == pytest.approx((500 * 1.0 + 500 * 3.0) / 1e6)


def test_one_collector_adds_up_runs_and_a_snapshot_is_a_copy() -> None:
    collector = MetricsCollector()
    first = MetricsHook(collector)
    run_sync(llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), hooks=[first])
    before = first.snapshot()
    run_sync(llm=MockLLMBackend([DONE]), tools=make_tools(), hooks=[MetricsHook(collector)])
    after = collector.snapshot()
    assert before["runs"] == 1 and before["steps"] == 2
    assert after["runs"] == 2 and after["steps"] == 3 and after["stop_reasons"] == {"done": 2}
    collector.reset()
    assert collector.snapshot()["runs"] == 0 and collector.snapshot()["tools"] == {}


def test_a_sub_agents_model_calls_and_steps_count_in_the_parents_metrics() -> None:
    metrics = MetricsHook()
    handle: dict[str, Any] = {}
    child = MockLLMBackend([GREET, DONE])
    helper = subagent_tool(
        "helper", "Delegate.", child, make_tools(), parent=lambda: handle["loop"]
    )
    loop = composable_loop(
        MockLLMBackend([ToolCall("helper", {"task": "greet"}), DONE]),
        "t",
        make_tools(helper=helper),
        hooks=[metrics],
    )
    handle["loop"] = loop
    list(loop)
    snap = metrics.snapshot()
    assert snap["runs"] == 2 and snap["model_calls"] == 4 and snap["steps"] == 4
    assert snap["tools"]["greet"]["count"] == 1 and snap["tools"]["helper"]["count"] == 1
    assert snap["tokens"]["total"] == loop.trajectory.total_usage.total_tokens


def test_price_lookup_drops_date_and_latest_suffixes() -> None:
    assert price_of("gpt-4o-2024-08-06") == PRICES["gpt-4o"]
    assert price_of("claude-3-7-sonnet-latest") == PRICES["claude-3-7-sonnet"]
    assert price_of("claude-opus-4-20250514") == PRICES["claude-opus-4"]
    assert price_of("gpt-4o-mini-2024-7-18") is None and price_of("") is None
    assert cost_usd(Usage(2_000_000, 1_000_000), "gpt-4o") == pytest.approx(15.0)
    assert cost_usd(Usage(1, 1), "unknown") is None


# -- tracing -----------------------------------------------------------------------------------


def by_kind(spans: list[Span], kind: str) -> list[Span]:
    return [s for s in spans if s.kind == kind]


def test_a_run_has_a_span_with_a_span_per_model_call_and_per_tool_call() -> None:
    tracing = TracingHook()
    _, traj = run_sync(llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), hooks=[tracing])

    (run,) = by_kind(tracing.spans, "run")
    llm_spans, tool_spans = by_kind(tracing.spans, "llm"), by_kind(tracing.spans, "tool")
    assert run.parent_id is None and tracing.tracer.roots() == [run]
    assert tracing.tracer.children(run) == [
        llm_spans[0],
        tool_spans[0],
        llm_spans[1],
        tool_spans[1],
    ]
    assert all(s.trace_id == run.trace_id and s.status == "ok" for s in tracing.spans)
    assert [s.name for s in tool_spans] == ["execute_tool greet", "execute_tool done"]
    assert tool_spans[0].attributes["gen_ai.tool.name"] == "greet"
    assert tool_spans[0].attributes["looplet.tool.ok"] is True
    assert llm_spans[0].name == "chat"
    assert llm_spans[0].attributes["gen_ai.response.model"] == "mock"
    tokens_in = sum(s.attributes["gen_ai.usage.input_tokens"] for s in llm_spans)
    assert tokens_in == traj.usage.input_tokens == run.attributes["gen_ai.usage.input_tokens"]
    assert run.attributes["looplet.stop_reason"] == "done"
    for span in tracing.spans:
        assert span.end_ns is not None and run.start_ns <= span.start_ns <= span.end_ns
        assert span.end_ns <= run.end_ns  # type: ignore[operator]
    assert run.to_dict()["duration_ms"] == round(run.duration_ms, 3) > 0


def test_failed_tools_and_a_failed_model_call_are_error_spans() -> None:
    tracing = TracingHook()
    script = [ToolCall("boom", {}), ToolCall("nope", {}), LLMError("mock", "down", status=503)]
    with pytest.raises(LLMError):
        run_sync(llm=MockLLMBackend(script), tools=tools_with_failures(), hooks=[tracing])

    boom_span, unknown_span = by_kind(tracing.spans, "tool")
    assert boom_span.status == "error" and boom_span.attributes["error.type"] == "execution"
    assert "RuntimeError: boom" in boom_span.error
    assert (
        unknown_span.status == "error" and unknown_span.attributes["error.type"] == "unknown_tool"
    )
    last_call = by_kind(tracing.spans, "llm")[-1]
    assert last_call.status == "error" and "down" in last_call.error
    (run,) = by_kind(tracing.spans, "run")
    assert run.status == "error" and run.attributes["looplet.stop_reason"] == "llm_error"


def test_a_sub_agents_run_span_sits_under_the_tool_call_that_started_it() -> None:
    tracing = TracingHook()
    handle: dict[str, Any] = {}
    helper = subagent_tool(
        "helper",
        "Delegate.",
        MockLLMBackend([GREET, DONE]),
        make_tools(),
        parent=lambda: handle["loop"],
    )
    loop = composable_loop(
        MockLLMBackend([ToolCall("helper", {"task": "greet"}), DONE]),
        "t",
        make_tools(helper=helper),
        hooks=[tracing],
    )
    handle["loop"] = loop
    list(loop)

    parent_run, child_run = by_kind(tracing.spans, "run")
    helper_span = next(s for s in tracing.spans if s.name == "execute_tool helper")
    assert helper_span.parent_id == parent_run.span_id
    assert child_run.parent_id == helper_span.span_id
    assert child_run.trace_id == parent_run.trace_id
    assert [s.name for s in tracing.tracer.children(child_run)] == [
        "chat",
        "execute_tool greet",
        "chat",
        "execute_tool done",
    ]
    assert helper_span.start_ns <= child_run.start_ns <= child_run.end_ns <= helper_span.end_ns  # type: ignore[operator]


def test_runs_one_after_another_are_separate_traces_and_the_exporter_gets_each_span() -> None:
    exported: list[Span] = []
    tracing = TracingHook(exported.append)
    for _ in range(2):
        run_sync(llm=MockLLMBackend([DONE]), tools=make_tools(), hooks=[tracing])
    roots = tracing.tracer.roots()
    assert len(roots) == 2 and roots[0].trace_id != roots[1].trace_id
    assert exported == sorted(tracing.spans, key=lambda s: s.end_ns or 0)
    assert [s.kind for s in exported] == ["llm", "tool", "run"] * 2


def test_a_bad_exporter_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="OpenTelemetry SpanExporter"):
        TracingHook(exporter=42)


def test_without_opentelemetry_otel_export_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'looplet\[otel\]'") as info:
        TracingHook(use_otel=True)
    assert info.value.extra == "otel"

    class Exporter:
        def export(self, spans: Any) -> None: ...

    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(MissingExtraError, match="opentelemetry-sdk"):
        TracingHook(exporter=Exporter())


def test_importing_looplet_and_its_observers_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, looplet, looplet.observe, looplet.tracing\n"
        "from looplet.observe import TracingHook\n"
        "TracingHook()\n"
        "print('opentelemetry' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def otel_run(**options: Any) -> tuple[TracingHook, Trajectory]:
    tracing = TracingHook(**options)
    _, traj = run_sync(
        llm=MockLLMBackend([ToolCall("boom", {}), GREET, DONE]),
        tools=tools_with_failures(),
        hooks=[tracing],
    )
    return tracing, traj


def check_otel_spans(finished: Any, tracing: TracingHook) -> None:
    from opentelemetry.trace import StatusCode

    assert len(finished) == len(tracing.spans) == 7
    by_name = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    (run,) = by_name["looplet.run"]
    assert run.parent is None
    for span in finished:
        if span is not run:
            assert span.parent.span_id == run.context.span_id
            assert span.context.trace_id == run.context.trace_id
    (boom_span,) = by_name["execute_tool boom"]
    assert boom_span.status.status_code is StatusCode.ERROR
    assert boom_span.attributes["error.type"] == "execution"
    (greet,) = by_name["execute_tool greet"]
    assert greet.status.status_code is StatusCode.OK
    assert greet.attributes["gen_ai.tool.name"] == "greet"
    chat = by_name["chat"][0]
    assert chat.attributes["gen_ai.response.model"] == "mock"
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    ours = next(s for s in tracing.spans if s.kind == "run")
    assert (run.start_time, run.end_time) == (ours.start_ns, ours.end_ns)


def test_spans_go_to_an_opentelemetry_span_exporter() -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing, _ = otel_run(exporter=exporter)
    check_otel_spans(exporter.get_finished_spans(), tracing)


def test_use_otel_sends_spans_through_the_given_tracer_provider() -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing, _ = otel_run(use_otel=True, tracer_provider=provider)
    check_otel_spans(exporter.get_finished_spans(), tracing)


def test_a_tracer_can_be_used_directly() -> None:
    tracer = Tracer()
    outer = tracer.start("outer", "run", None, {"k": 1})
    inner = tracer.end(tracer.start("inner", "tool", outer), error="failed")
    tracer.end(outer)
    assert tracer.children(outer) == [inner] and inner.status == "error"
    assert outer.to_dict()["attributes"] == {"k": 1} and outer.status == "ok"
