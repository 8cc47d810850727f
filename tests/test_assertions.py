"""Trajectory assertions: order and args modes, matchers, rendered diffs, the query methods."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from typing import Any

import pytest

from looplet import (
    ConfigurationError,
    Deny,
    ErrorKind,
    LoopConfig,
    LoopletError,
    Step,
    StopReason,
    ToolCall,
    ToolError,
    ToolResult,
    ToolSpec,
    Trajectory,
    any_outcome,
    failed,
)
from looplet.assertions import (
    ANY,
    ExpectedStep,
    Predicate,
    Regex,
    TrajectoryMismatch,
    assert_trajectory,
    explain_mismatch,
    trajectory_matches,
)
from looplet.backends.base import LLMResponse
from looplet.testing import MockLLMBackend
from looplet.types import Usage
from tests.conftest import make_tools, run_sync

GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})


def run(script: list[Any], **kwargs: Any) -> Trajectory:
    """Run the README's greet/done tools against a scripted model; return the trajectory."""
    _, traj = run_sync(llm=MockLLMBackend(script), tools=make_tools(), task="greet", **kwargs)
    return traj


def make_step(number: int, tool: str, args: dict[str, Any], data: Any = None) -> Step:
    call = ToolCall(tool, args, call_id=f"c{number}")
    if isinstance(data, ToolError):
        return Step(number, call, ToolResult.failure(call, data))
    return Step(number, call, ToolResult(tool, call.args_summary(), data, call_id=call.call_id))


def make_traj(*calls: tuple[str, dict[str, Any]], **fields: Any) -> Trajectory:
    steps = [make_step(n, tool, args, {"ok": True}) for n, (tool, args) in enumerate(calls, 1)]
    return Trajectory(task="t", steps=steps, llm_calls=len(steps), **fields)


def mismatch(traj: Trajectory, expected: list[Any], **kwargs: Any) -> TrajectoryMismatch:
    with pytest.raises(TrajectoryMismatch) as info:
        assert_trajectory(traj, expected, **kwargs)
    assert not trajectory_matches(traj, expected, **kwargs)
    return info.value


def marked_lines(error: TrajectoryMismatch) -> list[str]:
    return [line for line in error.lines if line.startswith(">")]


# -- order x args ------------------------------------------------------------------------------

# The run every mode is checked against: search, then greet, then done.
RUN = make_traj(
    ("search", {"q": "refund", "limit": 5}),
    ("greet", {"name": "Alice"}),
    ("done", {"answer": "ok"}),
)
# Per args mode: the arguments each tool is expected with, passing and failing that mode.
ARGS: dict[str, dict[str, dict[str, Any]]] = {
    "exact": {
        "search": {"q": "refund", "limit": 5},
        "greet": {"name": "Alice"},
        "done": {"answer": "ok"},
    },
    "subset": {"search": {"q": "refund"}, "greet": {"name": "Alice"}, "done": {}},
    "ignore": {"search": {"q": "nothing"}, "greet": {"name": "Zed"}, "done": {"x": 1}},
}
BAD_ARGS: dict[str, dict[str, dict[str, Any]]] = {
    # Only the keys that args="subset" would accept: missing `limit` fails args="exact".
    "exact": {**ARGS["exact"], "search": {"q": "refund"}},
    "subset": {**ARGS["subset"], "search": {"q": "refunds"}},
}
# Per order mode: tool sequences that pass and fail it (with arguments that fit).
ORDERS: dict[str, tuple[list[str], list[str]]] = {
    "strict": (["search", "greet", "done"], ["greet", "search", "done"]),
    "unordered": (["done", "search", "greet"], ["done", "search", "greet", "greet"]),
    "subset": (["search", "done"], ["done", "search"]),
    "superset": (["search", "shout", "greet", "done", "done"], ["search", "done"]),
}


def expected_steps(tools: list[str], args: dict[str, dict[str, Any]]) -> list[Any]:
    return [(tool, args[tool]) if tool in args else tool for tool in tools]


@pytest.mark.parametrize("args_mode", ["exact", "subset", "ignore"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_each_order_and_args_mode_accepts_what_it_allows(order: Any, args_mode: Any) -> None:
    expected = expected_steps(ORDERS[order][0], ARGS[args_mode])
    assert_trajectory(RUN, expected, order=order, args=args_mode)
    assert trajectory_matches(RUN, expected, order=order, args=args_mode)
    assert RUN.matches(expected, order=order, args=args_mode)


@pytest.mark.parametrize("args_mode", ["exact", "subset", "ignore"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_each_order_mode_rejects_a_wrong_sequence(order: Any, args_mode: Any) -> None:
    expected = expected_steps(ORDERS[order][1], ARGS[args_mode])
    error = mismatch(RUN, expected, order=order, args=args_mode)
    assert error.lines[0].endswith(f"(order={order}, args={args_mode})")
    assert len(marked_lines(error)) == 1
    assert not RUN.matches(expected, order=order, args=args_mode)


@pytest.mark.parametrize("args_mode", ["exact", "subset"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_each_args_mode_rejects_arguments_it_does_not_allow(order: Any, args_mode: Any) -> None:
    expected = expected_steps(ORDERS[order][0], BAD_ARGS[args_mode])
    error = mismatch(RUN, expected, order=order, args=args_mode)
    assert error.first_divergence == 0
    assert "search" in error.reasons[0]


def test_unordered_finds_an_assignment_where_greedy_matching_would_not() -> None:
    traj = make_traj(("greet", {"name": "Bob"}), ("greet", {"name": "Alice"}))
    # "greet" alone would take Bob first and leave nothing for ("greet", Bob).
    assert_trajectory(traj, ["greet", ("greet", {"name": "Bob"})], order="unordered")


def test_superset_accepts_an_empty_run_and_strict_rejects_extra_steps() -> None:
    assert_trajectory(make_traj(), ["greet", "done"], order="superset")
    error = mismatch(make_traj(("greet", {"name": "A"})), [], order="strict")
    assert error.reasons == ["step 1: unexpected extra call to greet"]


def test_expected_step_forms_are_equivalent() -> None:
    traj = run([GREET, DONE])
    forms: list[list[Any]] = [
        [("greet", {"name": "Alice"}), ("done", {"answer": "Greeted Alice."})],
        [{"tool": "greet", "args": {"name": "Alice"}}, {"tool": "done", "args": {"answer": ANY}}],
        [ExpectedStep("greet", {"name": "Alice"}, ok=True), ExpectedStep("done", ok=True)],
    ]
    for expected in forms:
        assert_trajectory(traj, expected)
    assert_trajectory(traj, ["greet", "done"])  # a name alone never checks arguments
    error = mismatch(traj, [("greet", {"name": "Alice"}), ("done", {})])
    assert "    answer: not expected (got 'Greeted Alice.')" in error.lines


def test_ok_flag_checks_the_outcome() -> None:
    traj = run([ToolCall("greet", {"nmae": "Bob"}), DONE])
    assert_trajectory(traj, [ExpectedStep("greet", ok=False), "done"])
    error = mismatch(traj, [ExpectedStep("greet", ok=True), "done"])
    assert error.reasons[0].startswith("step 1: expected greet to succeed, it failed (validation: ")
    assert any(line.startswith("  step #1 greet failed: validation:") for line in error.lines)


# -- matchers ----------------------------------------------------------------------------------


def test_any_matches_every_value_but_the_key_must_be_there() -> None:
    traj = run([GREET, DONE])
    assert repr(ANY) == "ANY"
    assert object() == ANY
    assert traj.called("greet", name=ANY)
    assert not traj.called("greet", nickname=ANY)
    assert pickle.loads(pickle.dumps(ANY)) is ANY


def test_regex_searches_strings_and_shows_its_pattern() -> None:
    traj = run([GREET, ToolCall("done", {"answer": 42}), DONE])
    assert traj.called("greet", name=Regex("lic"))
    assert traj.called("greet", name=re.compile("lic"))
    assert not traj.called("greet", name=Regex("^lic"))
    assert traj.called("greet", name=Regex("^alice$", re.IGNORECASE))
    assert not traj.called("done", answer=Regex("4"))  # not a str: no match
    assert repr(Regex("^Al")) == "Regex('^Al')"
    assert repr(Regex("x", re.I)) == "Regex('x', flags=re.IGNORECASE)"
    error = mismatch(traj, [("greet", {"name": Regex("^Bo")}), "done", "done"])
    assert "    name: expected Regex('^Bo'), got 'Alice'" in error.lines[-3:]


def test_predicates_match_on_truth_and_report_what_they_raised() -> None:
    traj = make_traj(("search", {"q": "refund", "limit": 5}))
    assert traj.called("search", limit=lambda v: v > 3)
    assert not traj.called("search", limit=lambda v: v > 9)
    assert traj.called("search", limit=Predicate(lambda v: v % 5 == 0, "multiple of 5"))
    assert not traj.called("search", q=lambda v: v > 3)  # raises TypeError: no match
    assert traj.called("search", q=str, limit=int)  # a type matches by isinstance
    assert repr(Predicate(lambda v: True, "positive")) == "<positive>"
    assert repr(Predicate(lambda v: True)) == "<lambda>"
    error = mismatch(
        traj, [("search", {"q": Predicate(lambda v: v > 3, "over 3"), "limit": lambda v: v > 9})]
    )
    details = error.lines[-3:-1]
    assert details[0].startswith("    q: expected <over 3>, got 'refund' (over 3 raised TypeError")
    assert details[1] == "    limit: expected <lambda>, got 5"
    with pytest.raises(ConfigurationError, match="Predicate\\(\\) takes a callable"):
        Predicate(3)  # type: ignore[arg-type]


def test_nested_dicts_and_lists_match_recursively() -> None:
    args = {"filters": {"status": "open", "ids": [1, 2]}, "limit": 5}
    traj = make_traj(("search", args))
    assert traj.called("search", filters={"status": "open", "ids": [1, ANY]})
    assert traj.called("search", filters={"status": Regex("op"), "ids": [int, lambda v: v > 1]})
    assert not traj.called("search", filters={"status": "open"})  # nested keys are exact
    assert not traj.called("search", filters={"status": "open", "ids": [1]})
    error = mismatch(
        traj, [("search", {"filters": {"status": "closed", "ids": [1, 3]}, "limit": 5})]
    )
    assert error.reasons == [
        "step 1: search was called with other arguments (filters.status, filters.ids[1])"
    ]
    assert "    filters.status: expected 'closed', got 'open'" in error.lines
    assert "    filters.ids[1]: expected 3, got 2" in error.lines


# -- rendered messages -------------------------------------------------------------------------


def test_calling_a_tool_twice_points_at_the_extra_step_and_shows_its_result() -> None:
    traj = run([GREET, GREET, DONE])
    error = mismatch(traj, [("greet", {"name": "Alice"}), ("done", {"answer": ANY})])
    assert str(error).splitlines() == [
        "trajectory differs at step 2 (order=strict, args=exact)",
        "  step 2: unexpected extra call to greet",
        "      expected                             actual",
        "    1 greet(name='Alice')              ==  #1 ✓ greet(name='Alice') → 1 keys",
        ">                                      +   #2 ✓ greet(name='Alice') → 1 keys",
        "    2 done(answer=ANY)                 ==  #3 ✓ done(answer='Greeted Alice.') → 1 keys",
        "  (== matches, != differs, + not expected, - missing)",
        "  step #2 greet returned {'greeting': 'Hello, Alice!'}",
        f"  run: stop_reason='done' · 3 steps · 3 model calls · {traj.usage.total_tokens} tokens",
    ]
    assert error.first_divergence == 1
    assert error.actual is traj and error.trajectory is traj
    assert error.expected == [
        ExpectedStep("greet", {"name": "Alice"}),
        ExpectedStep("done", {"answer": ANY}),
    ]


def test_wrong_argument_value_shows_the_key_and_both_values() -> None:
    traj = run([GREET, DONE])
    error = mismatch(traj, [("greet", {"name": "Bob"}), "done"], args="subset")
    assert error.lines[:2] == [
        "trajectory differs at step 1 (order=strict, args=subset)",
        "  step 1: greet was called with other arguments (name)",
    ]
    assert marked_lines(error) == [
        ">   1 greet(name='Bob', ...)           !=  #1 ✓ greet(name='Alice') → 1 keys"
    ]
    assert error.lines[-3:-1] == [
        "  arguments of step #1 greet that differ:",
        "    name: expected 'Bob', got 'Alice'",
    ]


def test_missing_final_step_says_where_the_run_ended() -> None:
    traj = run([GREET, "All done."])
    error = mismatch(traj, ["greet", ("done", {"answer": ANY})])
    assert error.reasons == ["step 2: expected done(answer=ANY), but the run ended after 1 step"]
    assert marked_lines(error) == [">   2 done(answer=ANY)                 -"]
    assert error.first_divergence == 1
    assert error.lines[-1].startswith("  run: stop_reason='final_text' · 1 steps")


def test_subset_names_the_step_not_found_and_the_closest_call() -> None:
    traj = make_traj(("greet", {"name": "Alice"}), ("done", {"answer": "ok"}))
    error = mismatch(traj, ["done", ("greet", {"name": "Alice"})], order="subset")
    assert error.reasons == ["expected step 2 greet(name='Alice') not found after step 2"]
    assert error.first_divergence == 2
    assert "  closest call to greet: #1 ✓ greet(name='Alice') → 1 keys" in error.lines


def test_stop_reason_mismatch_is_its_own_reason() -> None:
    traj = run([GREET, GREET, GREET], config=LoopConfig(max_steps=2))
    assert_trajectory(traj, ["greet", "greet"], stop_reason=StopReason.MAX_STEPS)
    error = mismatch(traj, ["greet", "greet"], stop_reason="done")
    assert error.lines[:2] == [
        "trajectory stopped for another reason",
        "  stop_reason: expected 'done', got 'max_steps' (2 steps used)",
    ]
    assert error.first_divergence is None
    assert marked_lines(error) == []


def test_token_and_step_budgets() -> None:
    script = [
        LLMResponse(tool_calls=(GREET,), usage=Usage(10, 3)),
        LLMResponse(tool_calls=(DONE,), usage=Usage(20, 4)),
    ]
    traj = run(script)
    assert_trajectory(traj, ["greet", "done"], max_tokens=37, max_steps=2)
    error = mismatch(traj, ["greet", "done"], max_tokens=36)
    assert error.lines[:2] == [
        "trajectory exceeds max_tokens=36",
        "  tokens: used 37 (30 in + 7 out), over max_tokens=36",
    ]
    error = mismatch(traj, ["greet", "done"], max_steps=1, stop_reason="max_steps")
    assert error.reasons == [
        "stop_reason: expected 'max_steps', got 'done' (Greeted Alice.)",
        "steps: took 2, over max_steps=1",
    ]


def test_every_failed_check_is_listed_under_the_headline() -> None:
    traj = run([GREET, DONE])
    error = mismatch(traj, ["done"], stop_reason="max_steps", max_steps=1, max_tokens=1)
    assert error.lines[0] == "trajectory differs at step 1 (order=strict, args=exact)"
    assert [r.split(":")[0] for r in error.reasons] == ["step 1", "stop_reason", "steps", "tokens"]
    assert error.reasons[0] == "step 1: unexpected extra call to greet"


def test_long_values_and_long_runs_stay_readable() -> None:
    calls = [("greet", {"name": f"user{n}" * 30}) for n in range(40)]
    traj = make_traj(*calls)
    expected: list[Any] = [(t, a) for t, a in calls]
    expected[30] = ("greet", {"name": "someone else"})
    error = mismatch(traj, expected)
    assert error.first_divergence == 30
    assert all(len(line) <= 120 for line in error.lines)
    assert len(error.lines) < 30
    assert any("rows not shown" in line for line in error.lines)
    assert marked_lines(error)[0].startswith(">  31 greet(name='someone else')")


def test_explain_mismatch_gives_the_lines_headline_first() -> None:
    error = mismatch(run([GREET, DONE]), ["done"])
    lines = explain_mismatch(error)
    assert lines == str(error).splitlines()
    assert lines[0] == "trajectory differs at step 1 (order=strict, args=exact)"


def test_mismatch_is_an_assertion_error_and_survives_pickling() -> None:
    error = mismatch(run([GREET, DONE]), ["done"])
    assert isinstance(error, AssertionError) and isinstance(error, LoopletError)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert (copy.first_divergence, copy.reasons, copy.order) == (0, error.reasons, "strict")
    assert copy.actual.tools == ["greet", "done"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order": "strct"}, "order='strct' is not a mode; .* Did you mean 'strict'\\?"),
        ({"args": "exacts"}, "args='exacts' is not a mode; .* Did you mean 'exact'\\?"),
        ({"stop_reason": "finished"}, "stop_reason='finished' is not a StopReason"),
        ({"max_tokens": -1}, "max_tokens must be a non-negative int, got -1"),
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        assert_trajectory(run([GREET, DONE]), ["greet", "done"], **kwargs)


def test_bad_expected_steps_are_configuration_errors() -> None:
    traj = run([GREET, DONE])
    with pytest.raises(ConfigurationError, match="expected step 2 is 42; write it as 'greet'"):
        assert_trajectory(traj, ["greet", 42])
    with pytest.raises(ConfigurationError, match="wrap a single step in a list"):
        assert_trajectory(traj, "greet")
    with pytest.raises(ConfigurationError, match="args must be a dict of argument matchers"):
        ExpectedStep("greet", ["Alice"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="expected a Trajectory, got list"):
        assert_trajectory(traj.steps, ["greet"])  # type: ignore[arg-type]


# -- Trajectory queries ------------------------------------------------------------------------


def test_called_not_called_count_and_calls() -> None:
    traj = run([GREET, ToolCall("greet", {"name": "Bob"}), DONE])
    assert traj.called("greet") and traj.called("greet", name="Bob")
    assert not traj.called("greet", name="Carol")
    assert not traj.called("shout")
    assert traj.not_called("shout") and not traj.not_called("done")
    assert traj.count("greet") == 2 and traj.count("shout") == 0
    assert [s.number for s in traj.calls("greet")] == [1, 2]
    assert traj.calls("shout") == []
    with pytest.raises(ConfigurationError, match="expected a tool name, got int"):
        traj.count(3)  # type: ignore[arg-type]


def test_called_before_compares_first_calls_and_needs_both() -> None:
    traj = make_traj(("greet", {}), ("search", {}), ("greet", {}), ("done", {}))
    assert traj.called_before("greet", "search")
    assert not traj.called_before("search", "greet")
    assert not traj.called_before("greet", "shout") and not traj.called_before("shout", "greet")


def test_denied_and_failed_steps() -> None:
    class Guard:
        def pre_dispatch(self, tool_call: ToolCall) -> Any:
            return Deny("not Bob") if tool_call.args.get("name") == "Bob" else None

    script = [ToolCall("greet", {"name": "Bob"}), ToolCall("greet", {"nmae": "x"}), GREET, DONE]
    traj = run(script, hooks=[Guard()])
    assert [s.number for s in traj.denied()] == [1]
    assert traj.denied()[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert [s.number for s in traj.failed()] == [1, 2]
    assert run([GREET, DONE]).denied() == [] == run([GREET, DONE]).failed()


def test_assertions_work_without_pytest() -> None:
    code = (
        "import sys\n"
        "from looplet import Trajectory\n"
        "from looplet.assertions import assert_trajectory, TrajectoryMismatch\n"
        "try:\n"
        "    assert_trajectory(Trajectory(), ['greet'])\n"
        "except TrajectoryMismatch as e:\n"
        "    print(e.lines[0])\n"
        "print('pytest' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "trajectory differs at step 1 (order=strict, args=exact)",
        "False",
    ]


# -- failed steps: a plain expectation means "it succeeded" ------------------------------------


class DenyBob:
    """Refuses greet(name='Bob'), as a permission check would."""

    def pre_dispatch(self, tool_call: ToolCall) -> Any:
        return Deny("Bob is not on the guest list") if tool_call.args.get("name") == "Bob" else None


def _explode(*, name: str) -> str:
    raise RuntimeError(f"the greeting printer is on fire for {name}")


BOOM = ToolSpec(
    name="boom", description="Always raises.", parameters={"name": "str"}, execute=_explode
)

# Per way a call can fail: the call, the ErrorKind the step gets, extra run() arguments.
FAILURES: dict[str, tuple[ToolCall, ErrorKind, dict[str, Any]]] = {
    "unknown tool": (ToolCall("shout", {"name": "Bob"}), ErrorKind.UNKNOWN_TOOL, {}),
    "raised": (ToolCall("boom", {"name": "Bob"}), ErrorKind.EXECUTION, {}),
    "bad args": (ToolCall("greet", {"name": 42}), ErrorKind.VALIDATION, {}),
    "denied": (
        ToolCall("greet", {"name": "Bob"}),
        ErrorKind.PERMISSION_DENIED,
        {"hooks": [DenyBob()]},
    ),
}


def run_failing(how: str) -> tuple[Trajectory, ToolCall, ErrorKind]:
    call, kind, kwargs = FAILURES[how]
    _, traj = run_sync(
        llm=MockLLMBackend([call, DONE]), tools=make_tools(boom=BOOM), task="greet", **kwargs
    )
    assert traj.steps[0].tool_result.error_kind is kind  # the run failed the way we meant
    return traj, call, kind


@pytest.mark.parametrize("how", list(FAILURES))
def test_a_failed_step_does_not_match_a_plain_expectation(how: str) -> None:
    traj, call, kind = run_failing(how)
    plain: list[Any] = [(call.tool, dict(call.args)), "done"]
    assert traj != plain
    assert traj != [call.tool, "done"]  # a bare name expects success too
    assert not traj.matches(plain, args="ignore")
    error = mismatch(traj, plain, args="subset")
    assert error.first_divergence == 0
    assert error.reasons[0].startswith(f"step 1: expected {call.tool} to succeed, it failed ")
    assert f"({kind.value}: " in error.reasons[0]
    assert marked_lines(error)[0].startswith(f">   1 {call.tool}(")
    assert f"step #1 {call.tool} failed: {kind.value}: " in "\n".join(error.lines)


@pytest.mark.parametrize("how", list(FAILURES))
def test_a_failed_step_matches_a_failure_expectation(how: str) -> None:
    traj, call, kind = run_failing(how)
    for marker in (
        failed(call.tool),
        failed(call.tool, dict(call.args)),
        failed(call.tool, kind=kind),
        failed(call.tool, dict(call.args), kind=kind.value),
        any_outcome(call.tool, dict(call.args)),
        ExpectedStep(call.tool, ok=False),
        {"tool": call.tool, "ok": None},
    ):
        expected: list[Any] = [marker, ("done", {"answer": ANY})]
        assert traj == expected, marker
        assert_trajectory(traj, expected)
        assert_trajectory(traj, expected, order="subset", args="subset")


@pytest.mark.parametrize("how", list(FAILURES))
def test_a_failure_expectation_checks_the_kind_and_the_arguments(how: str) -> None:
    traj, call, kind = run_failing(how)
    other = ErrorKind.TIMEOUT
    error = mismatch(traj, [failed(call.tool, kind=other), "done"])
    assert error.reasons[0].startswith(
        f"step 1: expected {call.tool} to fail with {other.value}, it failed ({kind.value}: "
    )
    assert traj != [failed(call.tool, {"name": "Carol"}), "done"]


def test_a_failure_expectation_does_not_match_a_successful_step() -> None:
    traj = run([GREET, DONE])
    for marker in (
        failed("greet"),
        failed("greet", {"name": "Alice"}),
        failed("greet", kind="validation"),
    ):
        assert traj != [marker, "done"]
    error = mismatch(traj, [failed("greet", {"name": "Alice"}), "done"])
    assert error.reasons == ["step 1: expected greet to fail, it succeeded"]
    assert marked_lines(error) == [
        ">   1 ✗ greet(name='Alice')            !=  #1 ✓ greet(name='Alice') → 1 keys"
    ]
    error = mismatch(traj, [failed("greet", kind=ErrorKind.PERMISSION_DENIED), "done"])
    assert error.reasons == ["step 1: expected greet to fail with permission_denied, it succeeded"]
    # any_outcome takes either; ExpectedStep's default is "succeeded", like a plain step.
    assert traj == [any_outcome("greet"), any_outcome("done", {"answer": ANY})]
    assert ExpectedStep("greet").ok is True


def test_a_retried_failed_step_is_an_extra_step_that_says_it_failed() -> None:
    traj = run([ToolCall("greet", {"nmae": "Alice"}), GREET, DONE])
    assert traj == [failed("greet", kind="validation"), ("greet", {"name": "Alice"}), "done"]
    error = mismatch(traj, [("greet", {"name": "Alice"}), "done"])
    assert error.reasons[0].startswith(
        "step 1: unexpected extra call to greet, which failed (validation: "
    )


def test_failure_expectations_reject_bad_input_with_the_fix() -> None:
    with pytest.raises(
        ConfigurationError, match=r"kind='denied' is not an ErrorKind.*'permission_denied'"
    ):
        failed("greet", kind="denied")
    with pytest.raises(ConfigurationError, match=r"kind= needs ok=False.*failed\('greet', kind="):
        ExpectedStep("greet", kind=ErrorKind.VALIDATION)
    with pytest.raises(ConfigurationError, match=r"failed\(\) takes the tool's name"):
        failed(ToolCall("greet", {}))  # type: ignore[arg-type]
    step = failed("greet", {"name": "Bob"}, kind="permission_denied")
    assert step == ExpectedStep(
        "greet", {"name": "Bob"}, ok=False, kind=ErrorKind.PERMISSION_DENIED
    )
    assert step.describe("subset") == "✗ greet(name='Bob', ...) [permission_denied]"
    assert any_outcome("greet").describe() == "✓/✗ greet(...)"
