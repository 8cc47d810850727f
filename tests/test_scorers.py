"""Scorers: each one's score worked out by hand, its reason, its edge cases, and the score and
reason reaching the terminal summary and the JSON and HTML reports of ``pytest --looplet-evals``
(``-n 0`` and ``-n 2``)."""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from looplet import (
    ANY,
    ConfigurationError,
    EvalResult,
    Regex,
    Step,
    ToolCall,
    ToolResult,
    Trajectory,
    failed,
)
from looplet.scorers import (
    all_of,
    contains,
    exact_match,
    json_schema_valid,
    normalize_text,
    regex_match,
    tool_call_f1,
    trajectory_edit_distance,
    weighted_mean,
    within_budget,
)
from looplet.types import Usage

pytest_plugins = ["pytester"]


def step(number: int, tool: str, args: dict[str, Any] | None = None, *, error: str = "") -> Step:
    call = ToolCall(tool, args or {})
    return Step(number, call, ToolResult(tool, error=error or None))


def run_of(*calls: tuple[str, dict[str, Any]], usage: Usage | None = None) -> Trajectory:
    steps = [step(n, tool, args) for n, (tool, args) in enumerate(calls, start=1)]
    return Trajectory(task="t", steps=steps, usage=usage or Usage())


ALICE = ("greet", {"name": "Alice"})
BOB = ("greet", {"name": "Bob"})
DONE = ("done", {"answer": "ok"})
#: greet Alice, greet Bob, done: the run most tests score.
RUN = run_of(ALICE, BOB, DONE)


# -- text ---------------------------------------------------------------------------------------


def test_exact_match_scores_equal_values_one_and_says_where_text_differs() -> None:
    same = exact_match("Hello, Alice!", "Hello, Alice!")
    assert (same.score, same.name, same.explanation) == (
        1.0,
        "exact_match",
        "equals 'Hello, Alice!'",
    )
    other = exact_match("Hello, Bob!", "Hello, Alice!")
    # "Hello, " is 7 characters: the 8th is the first that differs ('B' against 'A').
    assert other.score == 0.0
    assert other.explanation == "'Hello, Bob!' is not 'Hello, Alice!'; they differ from character 8"
    assert exact_match({"a": [1, 2]}, {"a": [1, 2]}).score == 1.0
    assert exact_match(True, 1).score == 0.0  # JSON keeps true and 1 apart
    assert exact_match("Hello", "Hello!").explanation.endswith("differ from character 6")


def test_exact_match_normalizes_text_only_when_asked() -> None:
    assert exact_match("  Hello,\n ALICE ", "hello, alice").score == 0.0
    result = exact_match("  Hello,\n ALICE ", "hello, alice", normalize=normalize_text)
    assert (result.score, result.explanation) == (1.0, "equals 'hello, alice' (normalized)")
    with pytest.raises(ConfigurationError, match="compares text, got int and str"):
        exact_match(3, "3", normalize=normalize_text)
    with pytest.raises(ConfigurationError, match="must return a str"):
        exact_match("a", "a", normalize=lambda s: len(s))  # type: ignore[arg-type,return-value]


def test_contains_all_or_any_with_the_share_found() -> None:
    text = "Greeted Alice and Bob."
    both = contains(text, ["Alice", "Bob"])
    assert (both.score, both.metrics) == (1.0, {"found": 1.0})
    assert both.explanation == "has 'Alice', 'Bob' (2 of 2, all needed)"
    half = contains(text, ["Alice", "Carol"])  # 1 of 2 found: 0.5, and "all" needs both
    assert (half.score, half.metrics["found"]) == (0.0, 0.5)
    assert half.explanation == "has 'Alice'; missing 'Carol' (1 of 2, all needed)"
    anyone = contains(text, ["Carol", "Bob", "Dave"], mode="any")  # 1 of 3
    assert (anyone.score, anyone.metrics["found"]) == (1.0, pytest.approx(1 / 3))
    assert contains(text, "alice").score == 0.0
    assert contains(text, "alice", normalize=normalize_text).score == 1.0
    nothing = contains(None, "Alice")
    assert (nothing.score, nothing.explanation) == (0.0, "no text (None)")


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: contains("x", []), "non-empty list of strings"),
        (lambda: contains("x", ["a", 1]), "non-empty list of strings"),
        (lambda: contains("x", "a", mode="most"), "use 'all' or 'any'"),
        (lambda: contains({"a": 1}, "a"), "checks text, got {'a': 1}"),
        (lambda: regex_match("x", "("), "does not compile"),
        (lambda: regex_match("x", 3), "takes a pattern string"),
    ],
)
def test_text_scorers_refuse_what_they_cannot_check(
    call: Callable[[], object], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        call()


def test_regex_match_searches_or_matches_the_whole_text() -> None:
    found = regex_match("It is 26.22 mi.", r"\d+\.\d\d mi")
    # "It is " is 6 characters: the match starts at the 7th.
    assert (found.score, found.explanation) == (
        1.0,
        r"/\d+\.\d\d mi/ matches '26.22 mi' at character 7",
    )
    assert regex_match("It is 26.22 mi.", r"\d+\.\d\d mi", full=True).score == 0.0
    assert regex_match("26.22 MI", r"26\.22 mi", flags=re.IGNORECASE).score == 1.0
    assert regex_match("26.22 MI", re.compile(r"26\.22 mi"), flags=re.IGNORECASE).score == 1.0
    missed = regex_match("no number", r"\d+")
    assert (missed.score, missed.explanation) == (0.0, r"/\d+/ is not found in 'no number'")
    assert regex_match(None, r"\d").score == 0.0


# -- structure ----------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "title": "an answer",  # an annotation: accepted, never checked
    "required": ["answer", "unit"],
    "properties": {
        "answer": {"type": "number", "minimum": 0},
        "unit": {"enum": ["m", "mi"]},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


def test_json_schema_valid_parses_text_and_checks_it() -> None:
    valid = json_schema_valid('{"answer": 26.22, "unit": "mi", "notes": ["rounded"]}', SCHEMA)
    assert (valid.score, valid.metrics, valid.explanation) == (1.0, {"problems": 0.0}, "valid")
    assert json_schema_valid({"answer": 1, "unit": "m"}, SCHEMA).score == 1.0  # a value as is
    bad = json_schema_valid(
        '{"answer": -1, "unit": "km", "notes": ["a", 2], "extra": true, "more": 1}', SCHEMA
    )
    # Five problems: answer < 0, unit not in the enum, notes[1] not a string, two extra keys.
    assert (bad.score, bad.metrics) == (0.0, {"problems": 5.0})
    assert bad.explanation.startswith("5 problems: field '$.answer': expected a value >= 0, got -1")
    assert bad.explanation.endswith("; and 2 more")
    missing = json_schema_valid("{}", SCHEMA)
    assert missing.explanation == (
        "2 problems: missing required field '$.answer'; missing required field '$.unit'"
    )
    wrong_kind = json_schema_valid("[1, 2]", SCHEMA)
    assert wrong_kind.explanation == "1 problem: field '$': expected object, got list ([1, 2])"
    not_json = json_schema_valid("```json\n{}\n```", SCHEMA)
    assert (not_json.score, not_json.metrics) == (0.0, {"problems": 1.0})
    assert not_json.explanation.startswith("not JSON (")


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "string", "pattern": "^a"}, "the schema at $ uses 'pattern'"),
        ({"properties": {"a": {"oneOf": []}}}, "the schema at $.a uses 'oneOf'"),
        ({"items": {"$ref": "#/x"}}, "the schema at $[] uses '$ref'"),
        ({"type": "int"}, "has type 'int'; use one of array, boolean"),
        (["type", "object"], "is a dict (a JSON Schema object)"),
        ({"required": "answer"}, "'required' of the schema at $ is a list of names, got 'answer'"),
        ({"properties": ["a"]}, "'properties' of the schema at $ is an object of schemas"),
        ({"enum": "ab"}, "'enum' of the schema at $ is a list of values"),
        ({"items": {"minimum": "3"}}, "'minimum' of the schema at $[] is a number, got '3'"),
        ({"maxLength": -1}, "'maxLength' of the schema at $ is an int >= 0, got -1"),
    ],
)
def test_json_schema_valid_refuses_keywords_it_would_not_enforce(schema: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        json_schema_valid("{}", schema)


# -- tool calls ---------------------------------------------------------------------------------


def test_tool_call_f1_by_hand() -> None:
    # Run: greet(Alice), greet(Bob), done. Expected: greet(Alice), greet(Carol), done.
    # Matched: greet(Alice) and done = 2. Precision 2/3, recall 2/3, F1 = 2/3.
    result = tool_call_f1(RUN, [ALICE, ("greet", {"name": "Carol"}), "done"])
    assert result.score == pytest.approx(2 / 3)
    assert result.metrics == {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3)}
    assert result.explanation == (
        "F1 0.67 (precision 2/3, recall 2/3); matched greet(name='Alice') = #1 "
        "greet(name='Alice'), done(...) = #3 done(answer='ok'); unexpected #2 greet(name='Bob'); "
        "missing greet(name='Carol')"
    )
    # Expected greet(Alice), done: both matched. P = 2/3, R = 2/2 = 1,
    # F1 = 2 * (2/3) * 1 / (2/3 + 1) = (4/3) / (5/3) = 0.8.
    assert tool_call_f1(RUN, [ALICE, "done"]).score == pytest.approx(0.8)


def test_tool_call_f1_counts_calls_as_a_multiset_and_matches_as_many_as_it_can() -> None:
    # Expected greet twice, run greets once: 1 match; P = 1/1, R = 1/2, F1 = 2/3.
    once = run_of(ALICE)
    assert tool_call_f1(once, ["greet", "greet"]).score == pytest.approx(2 / 3)
    # greet(name=ANY) could take Alice's step and leave greet(Alice) with none; the maximum
    # matching gives ANY Bob's: 3 of 3 matched, F1 = 1.
    loose_first = [("greet", {"name": ANY}), ALICE, "done"]
    assert tool_call_f1(RUN, loose_first).score == 1.0
    assert tool_call_f1(RUN, [("greet", {"name": Regex("^B")}), "done"]).score == pytest.approx(0.8)


def test_tool_call_f1_expects_success_unless_told_and_has_args_modes() -> None:
    run = Trajectory(steps=[step(1, "greet", {"name": "Mallory"}, error="denied"), step(2, "done")])
    # A failed greet does not fit "greet" (that expects success): 1 match of 2 each, F1 0.5.
    assert tool_call_f1(run, ["greet", "done"]).score == 0.5
    assert tool_call_f1(run, [failed("greet"), "done"]).score == 1.0
    extra_arg = run_of(("greet", {"name": "Alice", "loud": True}))
    assert tool_call_f1(extra_arg, [ALICE]).score == 0.0  # args="exact": no unnamed key
    assert tool_call_f1(extra_arg, [ALICE], args="subset").score == 1.0
    assert tool_call_f1(extra_arg, [("greet", {"name": "Zed"})], args="ignore").score == 1.0


def test_tool_call_f1_edge_cases_when_either_side_is_empty() -> None:
    empty = Trajectory()
    both = tool_call_f1(empty, [])
    assert (both.score, both.explanation) == (1.0, "F1 1.00: no calls expected and none made")
    # Nothing expected, three calls made: P = 0/3, R = 1 (vacuous), F1 = 0.
    surplus = tool_call_f1(RUN, [])
    assert (surplus.score, surplus.metrics) == (0.0, {"precision": 0.0, "recall": 1.0})
    # Two expected, none made: P = 1 (vacuous), R = 0/2, F1 = 0.
    idle = tool_call_f1(empty, ["greet", "done"])
    assert (idle.score, idle.metrics) == (0.0, {"precision": 1.0, "recall": 0.0})
    assert idle.explanation.endswith("missing greet(...), done(...)")


@pytest.mark.parametrize("scorer", [tool_call_f1, trajectory_edit_distance])
def test_trajectory_scorers_refuse_bad_input(scorer: Callable[..., EvalResult]) -> None:
    with pytest.raises(ConfigurationError, match="expected a Trajectory, got list"):
        scorer([ALICE], [ALICE])
    with pytest.raises(ConfigurationError, match="args='strict' is not a mode"):
        scorer(RUN, [ALICE], args="strict")
    with pytest.raises(ConfigurationError, match="expected step 1 is 3"):
        scorer(RUN, [3])


# -- edit distance ------------------------------------------------------------------------------


def test_trajectory_edit_distance_by_hand() -> None:
    same = trajectory_edit_distance(RUN, [ALICE, BOB, "done"])
    assert (same.score, same.metrics) == (1.0, {"edits": 0.0})
    assert same.explanation == "similarity 1.00, the same 3 steps in the same order"
    # One step extra (greet Bob): distance 1 over max(2, 3) = 3 steps: 1 - 1/3.
    extra = trajectory_edit_distance(RUN, [ALICE, "done"])
    assert extra.score == pytest.approx(2 / 3)
    assert extra.explanation == "similarity 0.67, 1 edit over 3 steps: extra #2 greet(name='Bob')"
    # Bob where Carol was expected: one substitution, 1 - 1/3.
    swapped = trajectory_edit_distance(RUN, [ALICE, ("greet", {"name": "Carol"}), "done"])
    assert swapped.score == pytest.approx(2 / 3)
    assert swapped.explanation.endswith("#2 greet(name='Bob') instead of greet(name='Carol')")
    # Expected search, read, greet, done; ran greet, done (names ignored): 2 deletions of 4.
    short = trajectory_edit_distance(run_of(ALICE, DONE), ["search", "read", "greet", "done"])
    assert (short.score, short.metrics["edits"]) == (0.5, 2.0)
    assert short.explanation == (
        "similarity 0.50, 2 edits over 4 steps: missing search(...), missing read(...)"
    )
    # Order matters: done then greet against greet then done is two edits of 2: 0.0.
    assert trajectory_edit_distance(run_of(DONE, ALICE), [ALICE, "done"]).score == 0.0


def test_trajectory_edit_distance_edge_cases() -> None:
    assert trajectory_edit_distance(Trajectory(), []).score == 1.0
    assert trajectory_edit_distance(RUN, []).score == 0.0  # 3 insertions over 3 steps
    assert trajectory_edit_distance(Trajectory(), ["done"]).score == 0.0


# -- budgets ------------------------------------------------------------------------------------


def test_within_budget_checks_each_budget_given() -> None:
    run = run_of(ALICE, DONE, usage=Usage(1000, 500))
    kept = within_budget(run, max_steps=2, max_tokens=1500)
    assert kept.score == 1.0
    assert kept.explanation == "within budget: 2 steps <= 2, 1,500 tokens <= 1,500"
    assert kept.metrics == {"steps": 2.0, "tokens": 1500.0}
    over = within_budget(run, max_steps=1, max_tokens=2000)
    assert over.score == 0.0
    assert over.explanation == "over budget: 2 steps > 1; within: 1,500 tokens <= 2,000"
    # gpt-4o-mini: $0.15 in, $0.60 out per million: 1000 * 0.15e-6 + 500 * 0.60e-6 = $0.00045.
    priced = within_budget(run, max_cost=0.0005, model="gpt-4o-mini")
    assert (priced.score, priced.metrics["cost_usd"]) == (1.0, pytest.approx(0.00045))
    assert priced.explanation == "within budget: $0.000450 <= $0.0005 (gpt-4o-mini)"
    assert within_budget(run, max_cost=0.0004, model="gpt-4o-mini").score == 0.0
    mine = within_budget(run, max_cost=1.0, model="mine", prices={"mine": (100.0, 1000.0)})
    # 1000 * 100e-6 + 500 * 1000e-6 = 0.1 + 0.5 = $0.60.
    assert mine.metrics["cost_usd"] == pytest.approx(0.6)


def test_within_budget_counts_sub_agent_tokens() -> None:
    child = run_of(DONE, usage=Usage(300, 0))
    parent = run_of(ALICE, DONE, usage=Usage(100, 0))
    parent.children.append(child)
    result = within_budget(parent, max_tokens=350)  # 100 + 300 = 400 > 350
    assert (result.score, result.metrics["tokens"]) == (0.0, 400.0)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "needs at least one budget"),
        ({"max_steps": -1}, "max_steps is an int >= 0, got -1"),
        ({"max_tokens": 1.5}, "max_tokens is an int >= 0, got 1.5"),
        ({"max_cost": 0.1}, "needs the model's name"),
        ({"max_cost": math.nan, "model": "gpt-4o"}, "max_cost is a finite number"),
        ({"max_cost": 0.1, "model": "no-such-model"}, "no price for model 'no-such-model'"),
    ],
)
def test_within_budget_refuses_budgets_it_cannot_check(
    kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        within_budget(RUN, **kwargs)


# -- composition --------------------------------------------------------------------------------


def test_weighted_mean_by_hand() -> None:
    result = weighted_mean(
        [
            (exact_match("a", "a"), 2),  # 1.0 x 2
            (contains("abc", "z"), 1),  # 0.0 x 1
            0.5,  # a bare score weighs 1
        ]
    )
    # (1.0 * 2 + 0.0 * 1 + 0.5 * 1) / (2 + 1 + 1) = 2.5 / 4 = 0.625
    assert result.score == 0.625
    assert result.metrics == {
        "exact_match": 1.0,
        "contains": 0.0,
        "contains.found": 0.0,
        "part3": 0.5,
    }
    assert result.explanation == (
        "weighted mean 0.62 of 3: exact_match 1.00 x2 (equals 'a'); contains 0.00 x1 "
        "(has none of 'z' (0 of 1, all needed)); part3 0.50 x1"
    )
    assert [part.name for part in result.details["parts"]] == ["exact_match", "contains", ""]


def test_weighted_mean_takes_any_eval_return_and_names_repeats() -> None:
    judge = EvalResult(0.8, label="judge", name="judge", explanation="mostly right")
    # (0.8 * 1 + 1 * 3 + 0 * 0 + 0.25 * 1) / (1 + 3 + 0 + 1) = 4.05 / 5 = 0.81
    result = weighted_mean(
        [(judge, 1), (True, 3), (exact_match(1, 2), 0), ({"score": 0.25, "n": 4}, 1)]
    )
    assert result.score == pytest.approx(0.81)
    assert set(result.metrics) == {"judge", "part2", "exact_match", "part4", "part4.n"}
    twice = weighted_mean([exact_match("a", "a"), exact_match("a", "b")])
    assert twice.metrics == {"exact_match": 1.0, "exact_match#2": 0.0}
    assert twice.score == 0.5


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        ([], "needs at least one part"),
        ([(1.0, math.nan)], "part 1's weight is nan"),
        ([(1.0, 1), (0.5, -1)], "part 2's weight is -1.0"),
        ([(1.0, math.inf)], "part 1's weight is inf"),
        ([(1.0, "2")], "part 1's weight is a number, got '2'"),
        ([(1.0, True)], "part 1's weight is a number, got True"),
        ([(1.0, 0), (0.0, 0.0)], "the weights add up to 0"),
        ([("good", 1)], "part 1 is not a score: returned 'good' (str)"),
        ([(1.5, 1)], "part 1 is not a score: returned 1.5 (float): score 1.5 is outside"),
        ([(EvalResult(None, label="error", name="judge"), 1)], "part 1 (judge) has no score"),
    ],
)
def test_weighted_mean_refuses_weights_and_parts_it_cannot_average(
    parts: list[Any], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        weighted_mean(parts)


def test_all_of_is_the_lowest_score_so_it_passes_only_when_every_part_does() -> None:
    answer = "Greeted Alice."
    result = all_of(contains(answer, "Alice"), tool_call_f1(RUN, [ALICE, "done"]), 0.9)
    # min(1.0, 0.8, 0.9) = 0.8: the F1 sets it.
    assert result.score == pytest.approx(0.8)
    assert result.explanation.startswith("lowest 0.80: tool_call_f1 (F1 0.80 (precision 2/3")
    assert "; also contains 1.00 (has 'Alice' (1 of 1, all needed)); part3 0.90" in (
        result.explanation
    )
    assert result.passed(0.8) and not result.passed(0.85)
    assert all_of(True, False).score == 0.0
    with pytest.raises(ConfigurationError, match="needs at least one part"):
        all_of()
    with pytest.raises(ConfigurationError, match=r"part 2 is not a score: returned \[1\]"):
        all_of(1.0, [1])


# -- through pytest --looplet-evals -------------------------------------------------------------

EVALS = """
import os

from looplet import (
    BaseToolRegistry, ToolCall, ToolSpec, composable_loop, contains, exact_match, tool_call_f1,
    weighted_mean,
)
from looplet.testing import MockLLMBackend


def greeter_run():
    tools = BaseToolRegistry()
    tools.register(ToolSpec(name="greet", description="Greet.", parameters={"name": "str"},
                            execute=lambda *, name: f"Hello, {name}!"))
    tools.register(ToolSpec(name="done", description="Finish.", parameters={"answer": "str"},
                            execute=lambda *, answer: answer))
    llm = MockLLMBackend([ToolCall("greet", {"name": "Alice"}), ToolCall("greet", {"name": "Bob"}),
                          ToolCall("done", {"answer": "Greeted Alice and Bob."})])
    loop = composable_loop(llm=llm, tools=tools, task="Greet Alice.")
    list(loop)
    return loop.trajectory


def eval_calls():
    return tool_call_f1(greeter_run(), [("greet", {"name": "Alice"}), "done"])


def eval_answer():
    return exact_match("Hello, Bob!", "Hello, Alice!")


def eval_mixed():
    answer = greeter_run().calls("done")[-1].tool_call.args["answer"]
    return weighted_mean([(contains(answer, ["Alice", "Bob"]), 3), (exact_match(answer, "x"), 1)])


def eval_plain():
    return 1.0


def eval_leaky():
    key = os.environ["SCORER_API_KEY"]
    return exact_match(key, key)  # the reason quotes the key
"""


@pytest.mark.parametrize("workers", ["0", "2"], ids=["n0", "n2"])
def test_a_scorers_value_and_reason_reach_the_summary_and_the_reports(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)
    secret = "s3cr3t-value-of-the-scorer-key"
    monkeypatch.setenv("SCORER_API_KEY", secret)
    folder = pytester.path / "evals"
    folder.mkdir()
    (folder / "eval_scored.py").write_text(textwrap.dedent(EVALS), encoding="utf-8")
    plugins = ("-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider")
    reports = ("--looplet-report", "report.json", "--looplet-html", "report.html")
    result = pytester.runpytest_subprocess(
        *plugins, "--looplet-evals", "evals", "-n", workers, *reports
    )

    result.assert_outcomes(passed=4, failed=1)
    f1_reason = (
        "F1 0.80 (precision 2/3, recall 2/2); matched greet(name='Alice') = #1 "
        "greet(name='Alice'), done(...) = #3 done(answer='Greeted Alice and Bob.'); "
        "unexpected #2 greet(name='Bob')"
    )
    answer_reason = "'Hello, Bob!' is not 'Hello, Alice!'; they differ from character 8"
    # (1.0 * 3 + 0.0 * 1) / 4 = 0.75
    mixed_reason = "weighted mean 0.75 of 2: contains 1.00 x3 (has 'Alice', 'Bob'"
    out = result.stdout.str()
    section = out[out.index("looplet evals") :]
    lines = section.splitlines()
    row = {name: i for i, line in enumerate(lines) for name in ["eval_calls", "eval_answer",
           "eval_mixed", "eval_plain"] if line.endswith(f"::{name}")}  # fmt: skip
    assert re.match(r"PASS\s+0\.80\s.*eval_scored\.py::eval_calls$", lines[row["eval_calls"]])
    # The terminal shows a reason's first 160 characters; the reports keep all of it.
    assert lines[row["eval_calls"] + 1] == f"  ↳ {f1_reason[:159]}…"
    assert re.match(r"FAIL\s+0\.00\s", lines[row["eval_answer"]])
    assert lines[row["eval_answer"] + 1] == f"  ↳ {answer_reason}"
    assert re.match(r"PASS\s+0\.75\s", lines[row["eval_mixed"]])
    assert lines[row["eval_mixed"] + 1].startswith(f"  ↳ {mixed_reason}")
    assert not lines[row["eval_plain"] + 1].startswith("  ↳")  # a plain float gives no reason
    # The failed eval's message says why as well.
    assert f"scored 0, below the threshold 0.5: {answer_reason}" in out

    doc = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    items = {i["nodeid"].rpartition("::")[2]: i for e in doc["evals"] for i in e["items"]}
    assert (items["eval_calls"]["score"], items["eval_calls"]["reason"]) == (0.8, f1_reason)
    assert items["eval_calls"]["metrics"] == {"precision": pytest.approx(2 / 3), "recall": 1.0}
    assert (items["eval_answer"]["verdict"], items["eval_answer"]["reason"]) == (
        "FAIL",
        answer_reason,
    )
    assert items["eval_mixed"]["score"] == 0.75
    assert items["eval_mixed"]["reason"].startswith(mixed_reason)
    assert items["eval_plain"]["reason"] is None
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert html.escape(f1_reason) in page
    # A reason is redacted like everything else the reports hold.
    assert items["eval_leaky"]["reason"] == "equals '<redacted>'"
    for text in (out, json.dumps(doc), page):
        assert secret not in text


def test_the_readme_scorers_snippet_runs_and_prints_what_it_says() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Scorers") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    score, reason = out.stdout.splitlines()
    assert score == "0.70"
    assert reason.startswith("weighted mean 0.70 of 3: contains 1.00 x2 (has 'Alice'")
    assert reason.endswith("within_budget 0.00 x1 (over budget: 3 steps > 2)")
