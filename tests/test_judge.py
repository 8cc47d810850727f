"""LLM judges: a score and a reason from one model call; an unreadable reply is an error."""

from __future__ import annotations

from typing import Any

import pytest

from looplet import ConfigurationError, Step, ToolCall, ToolResult, Trajectory
from looplet.evals.judge import RUBRICS, Judge, JudgeError, rubric
from looplet.scorers import weighted_mean
from looplet.testing import MockLLMBackend, ScriptedModelServer, call, text_reply, tool_reply
from tests.conftest import make_tools, run_sync

pytest_plugins = ["pytester"]


def test_a_judge_reads_score_and_reason_and_sees_the_trajectory() -> None:
    _, traj = run_sync(
        llm=MockLLMBackend(
            [ToolCall("greet", {"name": "Alice"}), ToolCall("done", {"answer": "ok"})]
        ),
        tools=make_tools(),
        task="Greet Alice.",
    )
    llm = MockLLMBackend(['Verdict: {"score": 0.75, "reason": "greeted, but terse"}'])
    result = Judge(llm)("The agent greets everyone named.", traj)
    assert (result.score, result.explanation) == (0.75, "greeted, but terse")
    sent = llm.requests[0].messages[-1].content
    assert "RUBRIC:\nThe agent greets everyone named." in sent
    assert "#1 ✓ greet(name='Alice')" in sent
    assert llm.requests[0].temperature == 0.0


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("Looks good to me!", "has no JSON object"),
        ('{"score": 0.5, "reason": ', "is not valid JSON"),
        ('{"grade": "A"}', 'has no "score"'),
        ('{"score": 7}', "not a number in [0, 1]"),
        ('{"score": true}', "not a number in [0, 1]"),
    ],
)
def test_an_unreadable_verdict_is_an_error_showing_the_reply(reply: str, problem: str) -> None:
    with pytest.raises(JudgeError) as info:
        Judge(MockLLMBackend([reply]))("rubric", "subject")
    assert problem in str(info.value) and reply.strip() in str(info.value)


def test_a_zero_score_is_a_score() -> None:
    result = Judge(MockLLMBackend(['{"score": 0, "reason": "wrong"}']))("r", "s")
    assert result.score == 0.0 and not result.passed(0.5)


def test_a_judged_trajectory_is_shown_without_durations_so_its_request_replays() -> None:
    def run(ms: float) -> Trajectory:
        result = ToolResult("greet", "name='Al'", {"greeting": "Hello"}, duration_ms=ms)
        return Trajectory(task="t", steps=[Step(1, ToolCall("greet", {"name": "Al"}), result)])

    judge = Judge(MockLLMBackend([]))
    fast, slow = (judge.request("r", run(ms)).messages[-1].content for ms in (1.2, 7.9))
    assert fast == slow  # a cassette recorded on one run matches the request of the next
    assert "#1 ✓ greet(name='Al') → 1 keys" in fast and "ms]" not in fast


def test_rubric_templates_fill_their_placeholders() -> None:
    assert set(RUBRICS) == {"correctness", "helpfulness", "groundedness"}
    text = rubric("correctness", reference="26.22 mi")
    assert text.startswith("The subject's final answer is correct")
    assert text.endswith("REFERENCE ANSWER:\n26.22 mi")
    assert rubric("helpfulness", task="Greet {Alice}").endswith("TASK:\nGreet {Alice}")
    assert rubric("groundedness", sources=[1, 2]).endswith("SOURCES:\n[1, 2]")
    with pytest.raises(TypeError):
        RUBRICS["mine"] = "x"  # type: ignore[index]  # read-only


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: rubric("correct"), "no rubric named 'correct'; the rubrics are 'correctness'"),
        (lambda: rubric("correctness"), "rubric('correctness') needs reference=..."),
        (
            lambda: rubric("helpfulness", task="t", answer="a"),
            "rubric('helpfulness') has no placeholder 'answer'",
        ),
    ],
)
def test_rubric_names_what_is_wrong(call: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        call()
    assert problem in str(info.value)


def test_a_judge_with_a_rubric_template_composes_with_scorers() -> None:
    llm = MockLLMBackend(['{"score": 0.5, "reason": "partly right"}'])
    verdict = Judge(llm)(rubric("correctness", reference="26.22 mi"), "about 26 miles")
    assert "REFERENCE ANSWER:\n26.22 mi" in llm.requests[0].messages[-1].content
    # (0.5 * 1 + 1.0 * 1) / 2 = 0.75
    combined = weighted_mean([verdict, True])
    assert combined.score == 0.75
    assert combined.explanation.startswith("weighted mean 0.75 of 2: judge 0.50 x1 (partly right)")


EVAL = """
def eval_judged(looplet_agent, looplet_judge):
    traj = looplet_agent.run("Greet Alice.")
    return looplet_judge("The agent greeted Alice.", traj)
"""
CONFTEST = """
import pytest
from looplet import BaseToolRegistry, PermissionEngine, ToolSpec

@pytest.fixture
def looplet_tools():
    tools = BaseToolRegistry()
    tools.register(ToolSpec(name="greet", description="Greet.", parameters={"name": "str"},
                            execute=lambda *, name: name))
    tools.register(ToolSpec(name="done", description="Finish.", parameters={"answer": "str"},
                            execute=lambda *, answer: answer))
    return tools

@pytest.fixture
def looplet_permissions():
    return PermissionEngine().allow("greet")
"""


def judged_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, verdict: str) -> Any:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_judge=EVAL)
    args = ("-p", "pytest_looplet.plugin", "--looplet-evals", "-p", "no:cacheprovider")
    script = [
        tool_reply(call("greet", {"name": "Alice"})),
        tool_reply(call("done", {"answer": "Greeted Alice."})),
        text_reply(verdict),
    ]
    with ScriptedModelServer(script) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-judge-test")
        recorded = pytester.runpytest_subprocess(*args, "--looplet-record-mode=all")
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    return recorded, pytester.runpytest_subprocess(*args)  # replayed with the server gone


def test_a_judged_eval_records_the_judge_in_its_cassette_and_replays_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded, replayed = judged_run(
        pytester, monkeypatch, '{"score": 0.9, "reason": "Alice was greeted."}'
    )
    recorded.assert_outcomes(passed=1)
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["PASS*0.90*eval_judge.py::eval_judged"])


def test_an_unparseable_judge_reply_fails_the_eval_with_the_reply(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, replayed = judged_run(pytester, monkeypatch, "I think it went fine.")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["*JudgeError*has no JSON object*", "*I think it went fine.*"])
