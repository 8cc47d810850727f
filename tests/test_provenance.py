"""Provenance: the sink's files, true stop reasons, redaction, and replay with no model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from looplet import (
    BaseToolRegistry,
    ConfigurationError,
    HookError,
    LLMError,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolSpec,
    Trajectory,
    composable_loop,
)
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.hooks import Block
from looplet.provenance import (
    ProvenanceError,
    ProvenanceSink,
    RecordedRun,
    ReplayExhaustedError,
    TrajectoryRecorder,
    areplay_loop,
    load_run,
    replay_loop,
)
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from looplet.types import Step
from tests.conftest import RunLoop, make_tools, run_async, run_sync

# Keys not in sorted order: the replayed first message must render them as recorded.
TASK = {"goal": "Greet Alice, look up order 7, then finish.", "customer": "Alice", "n": 2}
GREET = ToolCall("greet", {"name": "Alice"})
LOOKUP = ToolCall("lookup", {"order_id": "7"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})
SCRIPT = [GREET, LOOKUP, DONE]


def lookup_fails(*, order_id: str) -> dict[str, Any]:
    raise RuntimeError(f"order {order_id} not found")


def tools_with(lookup: Any = lookup_fails, greet: Any = None) -> BaseToolRegistry:
    extra = {"lookup": ToolSpec("lookup", "Look up an order.", {"order_id": "str"}, lookup)}
    tools = make_tools(**extra)
    if greet is not None:
        tools = BaseToolRegistry(
            [ToolSpec("greet", "Greet someone.", {"name": "str"}, greet)]
            + [spec for spec in tools if spec.name != "greet"]
        )
    return tools


def record(path: Path, llm: Any, run: RunLoop = run_sync, **kwargs: Any) -> ProvenanceSink:
    """Run the loop with a sink recording into ``path``; the steps are on ``sink.steps``."""
    sink = ProvenanceSink(path)
    kwargs.setdefault("tools", tools_with())
    kwargs.setdefault("task", TASK)
    run(llm=sink.wrap_llm(llm), hooks=[sink.trajectory_hook()], **kwargs)
    return sink


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def manifest(path: Path) -> list[dict[str, Any]]:
    lines = (path / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def without_timing(value: Any) -> Any:
    """``value`` without the fields that differ on every run (durations, start times)."""
    if isinstance(value, dict):
        volatile = {"duration_ms", "elapsed_ms", "started_at"}
        return {k: without_timing(v) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def tree(path: Path) -> dict[str, Any]:
    """Every file under ``path``, parsed, without timing."""
    out: dict[str, Any] = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        name = file.relative_to(path).as_posix()
        out[name] = manifest(path) if name == "manifest.jsonl" else read(file)
    return without_timing(out)


def step_dicts(steps: list[Step]) -> list[dict[str, Any]]:
    return [without_timing(json.loads(json.dumps(s.to_dict()))) for s in steps]


# -- the files --------------------------------------------------------------------------------


def test_sink_writes_the_exact_requests_replies_steps_and_trajectory(
    run_loop: RunLoop, tmp_path: Path
) -> None:
    llm = MockLLMBackend(SCRIPT)
    sink = record(tmp_path / "run", llm, run_loop)
    out = tmp_path / "run"

    assert llm.calls == 3
    for i, request in enumerate(llm.requests, 1):
        written = read(out / f"call_{i:04d}.request.json")
        assert written["messages"] == [m.to_dict() for m in request.messages]
        assert written["tools"] == json.loads(json.dumps(list(request.tools)))
        assert (written["max_tokens"], written["temperature"], written["step"]) == (
            request.max_tokens,
            request.temperature,
            i,
        )
    reply = read(out / "call_0002.response.json")
    assert reply["tool_calls"] == [
        {"tool": "lookup", "args": {"order_id": "7"}, "call_id": "call_1_0"}
    ]
    assert reply["finish_reason"] == "tool_calls"

    assert sorted(p.name for p in (out / "steps").iterdir()) == [
        "step_0001.json",
        "step_0002.json",
        "step_0003.json",
    ]
    assert [read(out / "steps" / f"step_{n:04d}.json") for n in (1, 2, 3)] == [
        {"format": "looplet-record/1", **json.loads(json.dumps(s.to_dict()))} for s in sink.steps
    ]
    failed = read(out / "steps" / "step_0002.json")["tool_result"]
    assert failed["error"] == "execution: RuntimeError: order 7 not found"

    traj = read(out / "trajectory.json")
    assert traj["task"] == TASK
    assert traj["stop_reason"] == "done"
    assert traj["stop_detail"] == "Greeted Alice."
    assert [s["tool_call"]["tool"] for s in traj["steps"]] == ["greet", "lookup", "done"]
    assert read(out / "run.json")["config"]["max_steps"] == LoopConfig().max_steps


def test_manifest_has_one_line_per_model_call(tmp_path: Path) -> None:
    llm = MockLLMBackend([GREET, LLMError("mock", "overloaded", status=529)])
    with pytest.raises(LLMError):
        record(tmp_path / "run", llm)

    first, second = manifest(tmp_path / "run")
    assert first["call"] == 1 and first["step"] == 1
    assert first["finish_reason"] == "tool_calls" and first["tool_calls"] == ["greet"]
    assert first["usage"]["total_tokens"] > 0 and first["error"] is None
    assert first["duration_ms"] >= 0 and first["started_at"].endswith("Z")
    assert second["call"] == 2 and second["step"] == 2
    assert second["error"].startswith("LLMError: mock request failed (HTTP 529)")
    error = read(tmp_path / "run" / "call_0002.response.json")["error"]
    assert (error["status"], error["provider_message"]) == (529, "overloaded")


def test_files_are_pretty_json_and_identical_for_identical_runs(tmp_path: Path) -> None:
    record(tmp_path / "a", MockLLMBackend(SCRIPT))
    record(tmp_path / "b", MockLLMBackend(SCRIPT))

    request = (tmp_path / "a" / "call_0001.request.json").read_text(encoding="utf-8")
    assert request.startswith('{\n  "messages": [\n    {\n      "role": "system"')
    for name in ("call_0001.request.json", "call_0002.response.json", "call_0003.request.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_async_loop_is_recorded_identically(tmp_path: Path) -> None:
    record(tmp_path / "sync", MockLLMBackend(SCRIPT), run_sync)
    sink = ProvenanceSink(tmp_path / "async")
    wrapped = sink.wrap_llm(AsyncMockLLMBackend(SCRIPT))
    assert hasattr(wrapped, "acomplete") and not hasattr(wrapped, "complete")
    run_async(llm=wrapped, tools=tools_with(), task=TASK, hooks=[sink.trajectory_hook()])

    assert tree(tmp_path / "async") == tree(tmp_path / "sync")


def test_long_reply_is_recorded_and_replayed_whole(tmp_path: Path) -> None:
    answer = "".join(f"line {i}: " + "x" * 90 + "\n" for i in range(3_000))  # ~300 kB
    record(tmp_path / "run", MockLLMBackend([GREET, answer]))

    assert read(tmp_path / "run" / "call_0002.response.json")["text"] == answer
    assert read(tmp_path / "run" / "trajectory.json")["final_text"] == answer
    report = replay_loop(tmp_path / "run", tools=tools_with())
    assert report.matches and report.trajectory.final_text == answer


# -- the true stop reason ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "config", "reason"),
    [
        ([GREET, GREET, GREET, DONE], LoopConfig(max_steps=2), "max_steps"),
        ([GREET, "Nothing left to do."], None, "final_text"),
        ([GREET, LLMError("mock", "boom", status=500)], None, "llm_error"),
        ([GREET, RuntimeError("socket closed")], None, "llm_error"),
    ],
    ids=["max_steps", "final_text", "llm_error", "backend_bug"],
)
def test_trajectory_has_the_stop_reason_the_loop_set(
    tmp_path: Path, script: list[Any], config: LoopConfig | None, reason: str
) -> None:
    sink = ProvenanceSink(tmp_path / "run")
    loop = composable_loop(
        llm=sink.wrap_llm(MockLLMBackend(script)),
        tools=tools_with(),
        task=TASK,
        config=config,
        hooks=[sink.trajectory_hook()],
    )
    with contextlib.suppress(LLMError):
        list(loop)

    traj = read(tmp_path / "run" / "trajectory.json")
    assert traj["stop_reason"] == reason == loop.trajectory.stop_reason
    assert traj["task"] == TASK
    assert traj["stop_detail"] == loop.trajectory.stop_detail
    if reason == "llm_error":
        assert traj["error"] == f"LLMError: {loop.trajectory.error}"


def test_hook_error_is_recorded_with_its_stop_reason(tmp_path: Path) -> None:
    class Broken:
        def post_dispatch(self, step_num: int) -> None:
            raise ValueError("bad hook")

    sink = ProvenanceSink(tmp_path / "run")
    with pytest.raises(HookError) as err:
        run_sync(
            llm=sink.wrap_llm(MockLLMBackend(SCRIPT)),
            tools=tools_with(),
            task=TASK,
            hooks=[sink.trajectory_hook(), Broken()],
        )
    traj = read(tmp_path / "run" / "trajectory.json")
    assert traj["stop_reason"] == "hook_error"
    assert traj["error"] == f"HookError: {err.value}"


# -- secrets ----------------------------------------------------------------------------------

OPENAI_KEY = "sk-proj-Zx81testFAKEkey0000000000000000"
BEARER = "eyJhbGciOiJIUzI1NiJ9.fake1234token"
DB_PASSWORD = "hunter2-correct-horse-battery-staple-0042"  # longer than a summary shows
SESSION = "tok_live_5h7q9s0m2"


def test_secrets_never_reach_disk(tmp_path: Path) -> None:
    def connect(*, api_key: str, note: str) -> dict[str, Any]:
        return {"connected": True, "token": SESSION, "header": f"Authorization: Bearer {BEARER}"}

    tools = make_tools(
        connect=ToolSpec("connect", "Connect.", {"api_key": "str", "note": "str"}, connect)
    )
    script = [
        ToolCall("connect", {"api_key": DB_PASSWORD, "note": f"use {OPENAI_KEY} if asked"}),
        # stop_detail keeps 200 characters of the answer: the password is cut after 10
        ToolCall("done", {"answer": f"{'.' * 190}{DB_PASSWORD}, session {SESSION}"}),
    ]
    config = LoopConfig(system_prompt=f"Your key is {OPENAI_KEY}. Call {{done_tool}} at the end.")
    record(tmp_path / "run", MockLLMBackend(script), tools=tools, config=config)

    written = b"".join(p.read_bytes() for p in sorted((tmp_path / "run").rglob("*")) if p.is_file())
    for secret in (OPENAI_KEY, BEARER, DB_PASSWORD, SESSION):
        assert secret[:8].encode() not in written, secret  # not even cut short
    assert b"<redacted>" in written
    first = read(tmp_path / "run" / "call_0001.request.json")
    assert first["messages"][0]["content"] == "Your key is <redacted>. Call done at the end."
    assert first["max_tokens"] == 2000  # "max_tokens" is not a secret-looking key
    step = read(tmp_path / "run" / "steps" / "step_0001.json")
    assert step["tool_call"]["args"] == {"api_key": "<redacted>", "note": "use <redacted> if asked"}
    assert step["tool_result"]["data"] == {
        "connected": True,
        "token": "<redacted>",
        "header": "Authorization: Bearer <redacted>",
    }
    # The replay is redacted the same way before it is compared, so it still matches.
    report = replay_loop(tmp_path / "run", tools=tools)
    assert report.matches, report.explain()


def test_extra_secrets_are_redacted_wherever_they_appear(tmp_path: Path) -> None:
    sink = ProvenanceSink(tmp_path / "run", secrets=["Alice"], secret_keys=["customer"])
    run_sync(
        llm=sink.wrap_llm(MockLLMBackend(SCRIPT)),
        tools=tools_with(),
        task=TASK,
        hooks=[sink.trajectory_hook()],
    )
    written = b"".join(p.read_bytes() for p in (tmp_path / "run").rglob("*.json*"))
    assert b"Alice" not in written
    assert read(tmp_path / "run" / "trajectory.json")["task"]["customer"] == "<redacted>"
    # The tools see "<redacted>" where the model wrote "Alice", and answer alike.
    report = replay_loop(
        tmp_path / "run", tools=tools_with(), secrets=["Alice"], secret_keys=["customer"]
    )
    assert report.matches, report.explain()


# -- the directory ----------------------------------------------------------------------------


def test_a_directory_holding_a_run_is_refused(tmp_path: Path) -> None:
    record(tmp_path / "run", MockLLMBackend(SCRIPT))

    with pytest.raises(ProvenanceError, match="already holds a recorded run") as err:
        ProvenanceSink(tmp_path / "run")
    assert str(tmp_path / "run") in str(err.value) and "overwrite=True" in str(err.value)
    assert err.value.path == tmp_path / "run"


def test_overwrite_replaces_the_old_run_whole(tmp_path: Path) -> None:
    record(tmp_path / "run", MockLLMBackend(SCRIPT))
    (tmp_path / "run" / "notes.txt").write_text("mine")

    sink = ProvenanceSink(tmp_path / "run", overwrite=True)
    run_sync(
        llm=sink.wrap_llm(MockLLMBackend([DONE])),
        tools=tools_with(),
        task="t",
        hooks=[sink.trajectory_hook()],
    )

    names = sorted(
        p.relative_to(tmp_path / "run").as_posix()
        for p in (tmp_path / "run").rglob("*")
        if p.is_file()
    )
    assert names == [
        "call_0001.request.json",
        "call_0001.response.json",
        "manifest.jsonl",
        "notes.txt",
        "run.json",
        "steps/step_0001.json",
        "trajectory.json",
    ]
    assert load_run(tmp_path / "run").task == "t"


def test_a_directory_with_other_files_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("runs go here")
    ProvenanceSink(tmp_path)
    with pytest.raises(ProvenanceError, match="is a file"):
        ProvenanceSink(tmp_path / "README")


def test_load_run_reads_back_what_the_recorder_holds(tmp_path: Path) -> None:
    sink = record(tmp_path / "run", MockLLMBackend(SCRIPT))
    loaded = load_run(tmp_path / "run")

    assert loaded == sink.to_run()
    assert loaded.task == TASK and loaded.stop_reason == "done"
    assert [c.index for c in loaded.calls] == [1, 2, 3]
    assert loaded.loop_config() == LoopConfig()


def test_load_run_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ProvenanceError, match="not a provenance directory"):
        load_run(tmp_path)
    record(tmp_path / "run", MockLLMBackend(SCRIPT))
    (tmp_path / "run" / "call_0002.response.json").write_text('{"text": "cut sh')
    with pytest.raises(ProvenanceError, match=r"call_0002\.response\.json.*not valid JSON"):
        load_run(tmp_path / "run")
    (tmp_path / "run" / "call_0002.response.json").unlink()
    with pytest.raises(ProvenanceError, match=r"call_0002\.response\.json.*is missing"):
        load_run(tmp_path / "run")


def test_summary_shows_task_stop_reason_steps_and_calls(tmp_path: Path) -> None:
    sink = record(tmp_path / "run", MockLLMBackend(SCRIPT))
    text = sink.summary()
    assert text == load_run(tmp_path / "run").summary()
    assert f"run: {tmp_path / 'run'}" in text
    assert "stopped: done (Greeted Alice.) · 3 steps · 3 model calls" in text
    assert "#2 ✗ lookup(order_id='7') → ERROR: execution: RuntimeError: order 7 not found" in text
    assert "#3 step 3 ·" in text


# -- the recorder -----------------------------------------------------------------------------


def test_recorder_keeps_the_run_in_memory() -> None:
    recorder = TrajectoryRecorder()
    llm = MockLLMBackend(SCRIPT)
    steps, traj = run_sync(
        llm=recorder.wrap_llm(llm),
        tools=tools_with(),
        task=TASK,
        hooks=[recorder.trajectory_hook()],
    )
    assert [c.request for c in recorder.calls] == llm.requests
    assert [c.index for c in recorder.calls] == [1, 2, 3]
    assert recorder.calls[1].response is not None
    assert recorder.calls[1].response.tool_calls[0].tool == "lookup"
    assert recorder.steps == steps
    assert recorder.trajectory is traj and recorder.task == TASK


def test_recorder_records_one_run_only() -> None:
    recorder = TrajectoryRecorder()
    hook = recorder.trajectory_hook()
    run_sync(llm=recorder.wrap_llm(MockLLMBackend([DONE])), tools=tools_with(), hooks=[hook])
    with pytest.raises(HookError) as err:
        run_sync(llm=MockLLMBackend([DONE]), tools=tools_with(), hooks=[hook])
    assert isinstance(err.value.__cause__, ProvenanceError)
    assert "records one run only" in str(err.value)


def test_wrap_llm_keeps_the_backends_sync_and_async_shape() -> None:
    class Both:
        def complete(self, request: LLMRequest) -> LLMResponse:
            return LLMResponse("hi")

        async def acomplete(self, request: LLMRequest) -> LLMResponse:
            return LLMResponse("hi")

    class Legacy:
        def generate(self, prompt: str, **kwargs: Any) -> str:
            return "plain text"

    recorder = TrajectoryRecorder()
    sync_only = recorder.wrap_llm(MockLLMBackend(["x"]))
    assert hasattr(sync_only, "complete") and not hasattr(sync_only, "acomplete")
    both = recorder.wrap_llm(Both())
    assert hasattr(both, "complete") and hasattr(both, "acomplete")
    legacy = recorder.wrap_llm(Legacy())
    assert legacy.complete(LLMRequest([])).text == "plain text"  # type: ignore[union-attr]
    assert recorder.calls[0].response == LLMResponse("plain text")
    with pytest.raises(ConfigurationError, match="wrap_llm needs a model backend"):
        recorder.wrap_llm(object())


def test_a_failed_call_is_recorded_and_the_error_reraised() -> None:
    recorder = TrajectoryRecorder()
    wrapped = recorder.wrap_llm(MockLLMBackend([LLMError("mock", "down", status=503)]))
    with pytest.raises(LLMError, match="down"):
        wrapped.complete(LLMRequest([]))  # type: ignore[union-attr]
    (call,) = recorder.calls
    assert call.response is None and isinstance(call.error, LLMError) and call.duration_ms >= 0


# -- replay -----------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("replay touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
def test_replay_reproduces_the_run_step_for_step(tmp_path: Path) -> None:
    sink = record(tmp_path / "run", MockLLMBackend(SCRIPT))

    report = replay_loop(tmp_path / "run", tools=tools_with())

    assert report.matches, report.explain()
    assert step_dicts(report.trajectory.steps) == step_dicts(sink.steps)
    assert report.trajectory.stop_reason is StopReason.DONE
    assert report.trajectory.task == TASK
    assert (report.calls_recorded, report.calls_replayed) == (3, 3)
    assert report.first_divergence is None and report.request_divergence is None
    assert report.explain() == (
        "replay matches the recording: 3 steps, 3 model calls, stop reason done"
    )


def test_replay_reports_the_first_step_where_a_tool_now_behaves_differently(
    tmp_path: Path,
) -> None:
    record(tmp_path / "run", MockLLMBackend(SCRIPT))

    report = replay_loop(
        tmp_path / "run", tools=tools_with(lookup=lambda *, order_id: {"status": "shipped"})
    )

    assert not report.matches
    divergence = report.first_divergence
    assert divergence is not None and divergence.step == 2
    assert divergence.recorded is not None and divergence.replayed is not None
    assert (
        divergence.recorded["tool_result"]["error"] == "execution: RuntimeError: order 7 not found"
    )
    assert divergence.replayed["tool_result"]["data"] == {"status": "shipped"}
    text = report.explain()
    assert "step 2 (lookup) differs from the recording:" in text
    assert "recorded: ERROR: execution: RuntimeError: order 7 not found" in text
    assert 'replayed: {"status": "shipped"}' in text
    # the model's next request now carries the new result: call 3, the lookup's tool message
    request = report.request_divergence
    assert request is not None and (request.call, request.step) == (3, 3)
    assert [c.path for c in request.changes][:1] == ["messages[5].content"]
    assert "model call 3 (step 3): the request differs from the recording:" in text


def test_replay_shows_changed_data_of_a_succeeding_tool(tmp_path: Path) -> None:
    record(tmp_path / "run", MockLLMBackend(SCRIPT))

    report = replay_loop(
        tmp_path / "run", tools=tools_with(greet=lambda *, name: {"greeting": f"Hi, {name}."})
    )

    divergence = report.first_divergence
    assert divergence is not None and divergence.step == 1
    assert [(c.path, c.old, c.new) for c in divergence.changes] == [
        ("tool_result.data.greeting", "Hello, Alice!", "Hi, Alice.")
    ]
    assert report.request_divergence is not None and report.request_divergence.call == 2


def test_replay_reports_requests_the_loop_now_builds_differently(tmp_path: Path) -> None:
    record(tmp_path / "run", MockLLMBackend(SCRIPT))

    report = replay_loop(tmp_path / "run", tools=tools_with(), config=LoopConfig(temperature=0.7))

    assert not report.matches and report.first_divergence is None
    request = report.request_divergence
    assert request is not None and request.call == 1
    assert [(c.path, c.old, c.new) for c in request.changes] == [("temperature", 0.2, 0.7)]


def test_replay_of_a_failed_run_raises_nothing_and_matches(tmp_path: Path) -> None:
    with pytest.raises(LLMError):
        record(tmp_path / "run", MockLLMBackend([GREET, LLMError("mock", "boom", status=500)]))

    report = replay_loop(tmp_path / "run", tools=tools_with())

    assert report.matches, report.explain()
    assert isinstance(report.error, LLMError) and report.error.status == 500
    assert report.trajectory.stop_reason is StopReason.LLM_ERROR
    assert (
        report.trajectory.stop_detail == read(tmp_path / "run" / "trajectory.json")["stop_detail"]
    )


def test_replay_that_outruns_the_recording_reports_it(tmp_path: Path) -> None:
    record(tmp_path / "run", MockLLMBackend(SCRIPT))

    class RefuseDone:
        def check_done(self) -> Any:
            return Block("not yet")

    report = replay_loop(tmp_path / "run", tools=tools_with(), hooks=[RefuseDone()])

    assert not report.matches
    assert isinstance(report.error, ReplayExhaustedError)
    assert "asked for model call 4" in str(report.error) and str(tmp_path / "run") in str(
        report.error
    )
    assert report.first_divergence is not None and report.first_divergence.step == 3
    assert "stop reason: recorded done, replayed llm_error" in report.explain()


def test_replay_from_memory_and_async(tmp_path: Path) -> None:
    recorder = TrajectoryRecorder()
    run_sync(
        llm=recorder.wrap_llm(MockLLMBackend(SCRIPT)),
        tools=tools_with(),
        task=TASK,
        hooks=[recorder.trajectory_hook()],
    )
    recorded = recorder.to_run()
    assert isinstance(recorded, RecordedRun) and recorded.path is None

    assert replay_loop(recorded, tools=tools_with()).matches
    report = asyncio.run(areplay_loop(recorded, tools=tools_with()))
    assert report.matches, report.explain()
    assert isinstance(report.trajectory, Trajectory) and len(report.trajectory.steps) == 3


def test_replay_needs_recorded_model_calls(tmp_path: Path) -> None:
    sink = ProvenanceSink(tmp_path / "run")
    run_sync(
        llm=MockLLMBackend(SCRIPT), tools=tools_with(), task=TASK, hooks=[sink.trajectory_hook()]
    )
    with pytest.raises(ProvenanceError, match=r"holds no model call.*sink\.wrap_llm"):
        replay_loop(tmp_path / "run", tools=tools_with())
