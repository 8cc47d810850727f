"""Tokens and time per model turn and per step: ``Trajectory.turns`` (each model call's tool
calls, usage and time), kept by the codec, and carried by the JSON report's steps, from a real
``pytest --looplet-evals`` run replaying a cassette recorded from the loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from looplet import LLMError, StopReason, async_composable_loop, composable_loop, tool
from looplet.backends import AsyncOpenAIBackend, OpenAIBackend, RetryPolicy
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.checkpoint import FileCheckpointStore
from looplet.record.codec import decode_trajectory, encode_trajectory, trajectory_document
from looplet.testing import (
    RecordedRequest,
    ScriptedModelServer,
    call,
    error_reply,
    text_reply,
    tool_reply,
)
from looplet.types import ToolCall, Trajectory, Turn, Usage
from pytest_looplet.scoring import trajectory_json
from tests._greeter import CONFTEST
from tests.conftest import make_tools

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data"
FAST_RETRY = RetryPolicy(max_retries=0, base_delay=0.001, max_delay=0.01)

# What the loopback server reports for each model turn of the two tasks below.
BOTH = "Greet Alice and Bob, then finish."
CAROL = "Greet Carol, then say so."
USAGE = {
    (BOTH, 1): Usage(100, 10),
    (BOTH, 2): Usage(150, 5),
    (CAROL, 1): Usage(80, 4),
    (CAROL, 2): Usage(90, 6),
}


def reply(request: RecordedRequest) -> object:
    """The scripted model: Alice and Bob greeted in one turn then done; or Carol greeted,
    then a final text. Each turn reports the usage in :data:`USAGE`."""
    messages = (request.body or {})["messages"]
    task = messages[1]["content"]
    turn = 1 + sum(m["role"] == "assistant" for m in messages)
    usage = USAGE[(task, turn)]
    if task == BOTH and turn == 1:
        both = (call("greet", {"name": "Alice"}), call("greet", {"name": "Bob"}))
        return tool_reply(*both, text="Greeting both.", usage=usage)
    if task == BOTH:
        return tool_reply(call("done", {"answer": "Greeted both."}), usage=usage)
    if turn == 1:
        return tool_reply(call("greet", {"name": "Carol"}), usage=usage)
    return text_reply("Carol is greeted.", usage=usage)


def run_over_http(task: str) -> Trajectory:
    """The greet agent through the real OpenAI SDK against the scripted server."""
    with ScriptedModelServer([reply] * 4) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            loop = composable_loop(llm=llm, tools=make_tools(), task=task)
            for _ in loop:
                pass
            return loop.trajectory
        finally:
            client.close()


def tokens(usage: Usage) -> tuple[int, int]:
    return usage.input_tokens, usage.output_tokens


# -- the record: one Turn per model call --------------------------------------------------------


def test_each_model_call_is_a_turn_with_the_providers_usage() -> None:
    traj = run_over_http(BOTH)
    assert traj.tools == ["greet", "greet", "done"]
    assert [(t.step, t.calls, tokens(t.usage)) for t in traj.turns] == [
        (1, 2, (100, 10)),
        (3, 1, (150, 5)),
    ]
    assert len(traj.turns) == traj.llm_calls
    assert all(t.duration_ms > 0 for t in traj.turns)  # each call really went out
    # The turns add up to the run's usage: a turn's tokens are counted once, however many
    # calls it made.
    assert sum((t.usage for t in traj.turns), Usage()) == traj.usage
    assert [traj.turn_of(s.number) for s in traj.steps] == [traj.turns[0]] * 2 + [traj.turns[1]]
    assert list(traj.turns[0].steps) == [1, 2] and traj.turn_of(4) is None


def test_a_final_text_turn_is_kept_though_it_made_no_step() -> None:
    traj = run_over_http(CAROL)
    assert traj.stop_reason is StopReason.FINAL_TEXT and traj.tools == ["greet"]
    assert [(t.step, t.calls, tokens(t.usage)) for t in traj.turns] == [
        (1, 1, (80, 4)),
        (2, 0, (90, 6)),
    ]
    assert sum((t.usage for t in traj.turns), Usage()) == traj.usage == Usage(170, 10)
    assert traj.turn_of(2) is None and list(traj.turns[1].steps) == []


def test_a_failed_model_call_is_a_turn_without_calls_or_tokens() -> None:
    script = [tool_reply(call("greet", {"name": "Alice"}), usage=Usage(50, 5))]
    with ScriptedModelServer([*script, error_reply(500, "boom")]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            loop = composable_loop(llm=llm, tools=make_tools(), task="Greet Alice.")
            with pytest.raises(LLMError):
                for _ in loop:
                    pass
        finally:
            client.close()
    traj = loop.trajectory
    assert traj.stop_reason is StopReason.LLM_ERROR
    assert [(t.step, t.calls, tokens(t.usage)) for t in traj.turns] == [
        (1, 1, (50, 5)),
        (2, 0, (0, 0)),
    ]


def test_the_async_loop_records_the_same_turns() -> None:
    async def main() -> Trajectory:
        with ScriptedModelServer([reply] * 4) as server:
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test")
            llm = AsyncOpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            loop = async_composable_loop(llm=llm, tools=make_tools(), task=BOTH)
            async for _ in loop:
                pass
            await client.close()
            return loop.trajectory

    traj = asyncio.run(main())
    assert [(t.step, t.calls, tokens(t.usage)) for t in traj.turns] == [
        (1, 2, (100, 10)),
        (3, 1, (150, 5)),
    ]


def test_with_a_context_budget_each_agent_call_is_a_turn_and_compactions_are_not() -> None:
    from looplet import LoopConfig
    from looplet.compact import ContextBudget, PruneCompact, SummarizeCompact, compact_chain
    from tests.test_compact_budget import read_tools

    steps, summaries, turns = 60, [0], [0]

    def model(request: RecordedRequest) -> object:
        if "tools" not in (request.body or {}):  # a summary the compaction asked for
            summaries[0] += 1
            return text_reply("Goal: read the ledger. All fine so far.", usage=Usage(1000, 50))
        turns[0] += 1
        if turns[0] < steps:
            return tool_reply(call("read_page", {"n": turns[0]}), usage=Usage(10, 1))
        return tool_reply(call("done", {"answer": "read"}), usage=Usage(10, 1))

    strategy = compact_chain(PruneCompact(keep_recent=4), SummarizeCompact(max_summary_tokens=200))
    config = LoopConfig(max_steps=steps, context_budget=ContextBudget(1_000, strategy=strategy))
    with ScriptedModelServer([model] * (3 * steps)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            loop = composable_loop(llm=llm, tools=read_tools(), task="Read.", config=config)
            for _ in loop:
                pass
        finally:
            client.close()
    traj = loop.trajectory
    assert traj.stop_reason is StopReason.DONE and traj.compactions and summaries[0]
    assert [(t.step, t.calls) for t in traj.turns] == [(n, 1) for n in range(1, steps + 1)]
    assert traj.llm_calls == steps + summaries[0]
    # The turns hold the agent's calls' tokens; the summaries' count in the run's usage only.
    assert sum((t.usage for t in traj.turns), Usage()) == Usage(10 * steps, steps)
    assert traj.usage == Usage(10 * steps + 1000 * summaries[0], steps + 50 * summaries[0])


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``time.perf_counter`` made a clock that only moves when a test moves it."""
    now = [1000.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    return now


def test_the_turns_time_is_the_model_calls_and_the_steps_the_tools(clock: list[float]) -> None:
    class SlowModel:
        """Takes 250 ms, then 1.5 s, by the test's clock."""

        def __init__(self) -> None:
            self.replies = iter(
                [
                    (0.25, LLMResponse(tool_calls=(ToolCall("slow", {}, call_id="c1"),))),
                    (1.5, LLMResponse(text="ok", usage=Usage(7, 1))),
                ]
            )

        def complete(self, request: LLMRequest) -> LLMResponse:
            seconds, response = next(self.replies)
            clock[0] += seconds
            return response

    @tool
    def slow() -> str:
        """Takes 40 ms by the test's clock."""
        clock[0] += 0.04
        return "done"

    loop = composable_loop(llm=SlowModel(), tools=[slow], task="go")
    (step,) = list(loop)
    traj = loop.trajectory
    assert [t.duration_ms for t in traj.turns] == [250.0, 1500.0]
    assert step.tool_result.duration_ms == pytest.approx(40.0)
    # No usage reported: the turn keeps the reply's (empty) usage, and the run's stays empty.
    assert traj.turns[0].usage == Usage() and traj.usage == Usage(7, 1)


# -- the codec: lossless, and older records load ------------------------------------------------


def test_the_codec_keeps_the_turns_and_older_records_have_none(tmp_path: Path) -> None:
    traj = run_over_http(CAROL)
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(trajectory_document(traj)), encoding="utf-8")
    back = decode_trajectory(json.loads(path.read_text(encoding="utf-8")), "")
    assert back.turns == traj.turns and back == traj
    assert traj.to_dict()["turns"][1]["usage"]["total_tokens"] == 96
    # A record without turns (every file written before them) loads with none, and a
    # trajectory without turns is written as before: no "turns" key.
    for name in ("kitchen", "compacting"):
        doc = json.loads((DATA / "record_v1" / name / "expected.json").read_text("utf-8"))
        old = decode_trajectory(doc["trajectory"], "")
        assert old.turns == [] and old.steps
        assert "turns" not in encode_trajectory(old)
        view = json.loads(trajectory_json(old))
        assert "llm_ms" not in view and "final_turn" not in view
        assert not any("usage" in row or "llm_ms" in row for row in view["steps"])
    # So does a checkpoint folder of looplet 0.2.0.
    shutil.copytree(Path(__file__).parent / "checkpoints_v1", tmp_path / "runs")
    ended = FileCheckpointStore(tmp_path / "runs").load_latest("legacy-ended")
    assert ended is not None and ended.trajectory().steps
    assert ended.trajectory().turns == []


def test_a_bad_turn_is_named_by_its_place() -> None:
    doc = encode_trajectory(run_over_http(BOTH))
    doc["turns"][1]["calls"] = -1
    with pytest.raises(ValueError, match=r"field turns\[1\]\.calls: expected a non-negative"):
        decode_trajectory(doc, "")


def test_turns_are_value_types() -> None:
    turn, same = Turn(3, 2, Usage(5, 1), 12.5), Turn(3, 2, Usage(5, 1), 12.5)
    assert turn == same and hash(turn) == hash(same) and turn != Turn(3, 1, Usage(5, 1), 12.5)
    assert turn.to_dict() == {
        "step": 3,
        "calls": 2,
        "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
        "duration_ms": 12.5,
    }


# -- end to end: pytest --looplet-evals, a cassette, the JSON report ---------------------------

EVALS = f"""
def eval_greets_both(looplet_agent):
    traj = looplet_agent.run({BOTH!r})
    assert traj.tools == ["greet", "greet", "done"]

def eval_greets_carol(looplet_agent):
    traj = looplet_agent.run({CAROL!r})
    assert traj.final_text == "Carol is greeted."
"""


@pytest.fixture
def evals(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The two evals recorded from the scripted server into cassettes, then a function that
    replays them offline with the given options (in a subprocess, the plugin loaded)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_turns=EVALS)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "--looplet-evals", "-p", "no:cacheprovider", *args)
        return pytester.runpytest_subprocess(*argv)

    with serving(monkeypatch):
        run("--looplet-record-mode=all").assert_outcomes(passed=2)
    return run


@contextlib.contextmanager
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The scripted model on loopback, the SDK pointed at it (so the evals record)."""
    with ScriptedModelServer([reply] * 8) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-recording-key")
        yield
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")


def test_the_json_reports_steps_carry_each_turns_tokens_and_time(
    evals: Callable[..., pytest.RunResult], pytester: pytest.Pytester
) -> None:
    evals("--looplet-report=out.json").assert_outcomes(passed=2)  # replayed: no server
    doc = json.loads((pytester.path / "out.json").read_text("utf-8"))
    items = {e["eval"].split("::")[1]: e["items"][0] for e in doc["evals"]}

    both = items["eval_greets_both"]["trajectory"]
    rows = both["steps"]
    assert [r["tool"] for r in rows] == ["greet", "greet", "done"]
    # Each turn's tokens on its first step only (the second greet came from the same turn).
    assert [r.get("usage") for r in rows] == [
        {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
        None,
        {"input_tokens": 150, "output_tokens": 5, "total_tokens": 155},
    ]
    assert [r.get("turn") for r in rows] == [1, 1, 2]
    assert ["llm_ms" in r for r in rows] == [True, False, True]
    assert all(isinstance(r["ms"], float) and r["ms"] >= 0 for r in rows)  # each tool's time
    assert sum(r["usage"]["total_tokens"] for r in rows if "usage" in r) == 265
    assert both["usage"]["total_tokens"] == items["eval_greets_both"]["tokens"] == 265
    assert "final_turn" not in both  # the last turn's call is a step
    assert both["llm_ms"] == pytest.approx(sum(r.get("llm_ms", 0) for r in rows), abs=0.2)

    carol = items["eval_greets_carol"]["trajectory"]
    (row,) = carol["steps"]
    assert row["usage"]["total_tokens"] == 84
    # The final text's turn made no step: the report keeps it beside the steps.
    assert carol["final_turn"]["usage"] == {
        "input_tokens": 90,
        "output_tokens": 6,
        "total_tokens": 96,
    }
    assert isinstance(carol["final_turn"]["llm_ms"], float)
    assert row["usage"]["total_tokens"] + carol["final_turn"]["usage"]["total_tokens"] == 180
    assert carol["usage"]["total_tokens"] == items["eval_greets_carol"]["tokens"] == 180
