"""Scores: what an eval may return, thresholds, and the properties each eval reports."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from looplet.evals import EvalResult

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest in-process with the plugin passed by ``-p``, evals on, nothing autoloaded."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "pytest_looplet.plugin", "--looplet-evals", *args)

    return run


# EvalResult.from_return, the one place return values are normalised.


@pytest.mark.parametrize(
    ("value", "score"),
    [(None, 1.0), (True, 1.0), (False, 0.0), (0.0, 0.0), (0, 0.0), (1, 1.0), (0.25, 0.25)],
)
def test_from_return_scores_none_bools_and_numbers(value: object, score: float) -> None:
    result = EvalResult.from_return(value)
    assert result.score == score
    assert type(result.score) is float


def test_from_return_reads_a_dict_of_metrics() -> None:
    result = EvalResult.from_return(
        {"score": 0.0, "recall": 0.5, "calls": 3, "label": "miss", "why": ["a", "b"]}
    )
    assert result == EvalResult(
        0.0, label="miss", metrics={"recall": 0.5, "calls": 3.0}, details={"why": ["a", "b"]}
    )


def test_from_return_keeps_an_eval_result() -> None:
    given = EvalResult(0.7, label="ok", explanation="close", name="x")
    assert EvalResult.from_return(given) is given


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (1.5, ValueError, "returned 1.5 (float): score 1.5 is outside [0, 1]"),
        (-0.1, ValueError, "score -0.1 is outside [0, 1]"),
        (math.nan, ValueError, "score nan is outside [0, 1]"),
        ("good", TypeError, "returned 'good' (str)"),
        ([0.5], TypeError, "returned [0.5] (list)"),
        ({"recall": 0.5}, TypeError, "a dict needs a 'score' key"),
        ({"score": "high"}, TypeError, "a score is a number in [0, 1], not 'high' (str)"),
        ({"score": 2}, ValueError, "score 2.0 is outside [0, 1]"),
    ],
)
def test_from_return_rejects_anything_else(value: object, error: type, text: str) -> None:
    with pytest.raises(error) as excinfo:
        EvalResult.from_return(value)
    assert text in str(excinfo.value)
    assert "an eval returns None, a bool, a number in [0, 1]" in str(excinfo.value)


def test_eval_result_is_frozen_validated_and_compares_with_threshold() -> None:
    result = EvalResult(0.5)
    assert result.passed(0.5) and not result.passed(0.51)
    assert EvalResult(0.0).passed(0.0)
    with pytest.raises(FrozenInstanceError):
        result.score = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="outside"):
        EvalResult(1.01)
    with pytest.raises(TypeError, match="metric 'recall' is a number"):
        EvalResult(0.5, metrics={"recall": "high"})  # type: ignore[dict-item]


# The plugin: outcomes and messages.

RETURNS = """
from looplet.evals import EvalResult

def eval_returns_none():
    pass

def eval_returns_true():
    return True

def eval_returns_false():
    return False

def eval_returns_zero():
    return 0.0

def eval_returns_high():
    return 0.75

def eval_returns_low():
    return 0.3

def eval_returns_dict():
    return {"score": 0.9, "recall": 0.8}

def eval_returns_low_result():
    return EvalResult(0.2, label="vague", explanation="no names given", metrics={"recall": 0.1})

def eval_returns_text():
    return "good"

def eval_returns_list():
    return [1.0]

def eval_returns_too_much():
    return 1.5

def eval_returns_nan():
    return float("nan")

def eval_raises():
    raise KeyError("boom")
"""


def test_each_return_form_passes_fails_or_errors_with_its_message(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile(eval_returns=RETURNS)
    result = run("-v")
    result.assert_outcomes(passed=4, failed=9)
    result.stdout.fnmatch_lines_random(
        [
            "eval_returns.py::eval_returns_none PASSED*",
            "eval_returns.py::eval_returns_true PASSED*",
            "eval_returns.py::eval_returns_high PASSED*",
            "eval_returns.py::eval_returns_dict PASSED*",
            "eval_returns.py::eval_returns_false FAILED*",
            "eval_returns.py::eval_returns_zero FAILED*",
            "eval_returns.py::eval_returns_low FAILED*",
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "eval eval_returns_false scored 0, below the threshold 0.5",
            "eval eval_returns_zero scored 0, below the threshold 0.5",
            "eval eval_returns_low scored 0.3, below the threshold 0.5",
            "eval eval_returns_low_result scored 0.2, below the threshold 0.5 [[]vague[]]: "
            "no names given (recall=0.1)",
            "TypeError: eval eval_returns_text returned 'good' (str): not an accepted form; "
            "an eval returns None, a bool, a number in [[]0, 1[]], a dict with a 'score' in "
            "[[]0, 1[]] (its other numeric entries are metrics), or an EvalResult",
            "TypeError: eval eval_returns_list returned [[]1.0[]] (list): *",
            "ValueError: eval eval_returns_too_much returned 1.5 (float): "
            "score 1.5 is outside [[]0, 1[]]; an eval returns *",
            "ValueError: eval eval_returns_nan returned nan (float): score nan is outside *",
            "E *KeyError: 'boom'",
        ]
    )
    result.stdout.no_fnmatch_line("*During handling of the above exception*")
    result.stdout.no_fnmatch_line("*PytestReturnNotNoneWarning*")


def test_threshold_comes_from_the_marker_then_the_command_line_then_the_ini_file(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile(
        eval_thresholds="""
        import pytest

        def eval_plain():
            return 0.6

        @pytest.mark.looplet(threshold=0.65)
        def eval_marked():
            return 0.6
        """
    )
    run("-rA").stdout.fnmatch_lines(
        ["*eval eval_marked scored 0.6, below the threshold 0.65*", "*1 failed, 1 passed*"]
    )
    pytester.makeini("[pytest]\nlooplet_threshold = 0.7\n")
    run().stdout.fnmatch_lines_random(
        [
            "eval eval_marked scored 0.6, below the threshold 0.65",
            "eval eval_plain scored 0.6, below the threshold 0.7",
        ]
    )
    pytester.makepyfile(
        eval_thresholds="""
        import pytest

        def eval_plain():
            return 0.6

        @pytest.mark.looplet(threshold=0.2)
        def eval_marked():
            return 0.3
        """
    )
    result = run("--looplet-threshold", "0.55", "-v")
    result.assert_outcomes(passed=2)
    result = run("--looplet-threshold", "0.95")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*eval eval_plain scored 0.6, below the threshold 0.95*"])


def test_a_bad_looplet_marker_fails_the_eval_before_it_runs(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makepyfile(
        eval_marker="""
        import pytest

        @pytest.mark.looplet(treshold=0.9)
        def eval_typo():
            raise AssertionError("ran")

        @pytest.mark.looplet(threshold=2)
        def eval_out_of_range():
            raise AssertionError("ran")

        @pytest.mark.looplet(max_steps=0)
        def eval_bad_budget():
            raise AssertionError("ran")
        """
    )
    result = run()
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "eval eval_typo: @pytest.mark.looplet got treshold; it accepts threshold, "
            "repeat, max_steps, max_tokens, max_cost, models",
            "eval eval_out_of_range: @pytest.mark.looplet a threshold is a number in "
            "[[]0, 1[]], not 2",
            "eval eval_bad_budget: @pytest.mark.looplet max_steps is a positive int or None, not 0",
        ]
    )
    result.stdout.no_fnmatch_line("*AssertionError: ran*")


TRAJECTORY_CONFTEST = """
import pytest
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Usage
from pytest_looplet.scoring import record_trajectory

def make_trajectory(steps, tokens, reason):
    return Trajectory(
        steps=[Step(n, ToolCall("greet"), ToolResult("greet")) for n in range(1, steps + 1)],
        usage=Usage(tokens, 0),
        stop_reason=reason,
    )

@pytest.fixture
def agent_run(request):
    trajectory = make_trajectory(3, 120, StopReason.DONE)
    record_trajectory(request, trajectory)
    return trajectory
"""

TRAJECTORY_EVALS = """
from conftest import make_trajectory
from looplet.evals import EvalResult
from looplet.types import StopReason

def eval_with_fixture(agent_run):
    return {"score": 0.8, "recall": 0.5, "steps_ok": 1}

def eval_fixture_then_assert(agent_run):
    assert agent_run.stop_reason is StopReason.MAX_STEPS

def eval_returns_trajectory():
    trajectory = make_trajectory(2, 40, StopReason.MAX_STEPS)
    return EvalResult(0.4, details={"trajectory": trajectory})

def eval_without_trajectory():
    return 1.0
"""


def _junit_properties(path: Any) -> dict[str, dict[str, str]]:
    tree = ET.parse(path)
    return {
        case.get("name", ""): {
            prop.get("name", ""): prop.get("value", "") for prop in case.iter("property")
        }
        for case in tree.iter("testcase")
    }


def test_scores_metrics_and_trajectory_figures_go_into_junit_xml(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makeconftest(TRAJECTORY_CONFTEST)
    pytester.makepyfile(eval_traj=TRAJECTORY_EVALS)
    xml = pytester.path / "junit.xml"
    run(f"--junitxml={xml}").assert_outcomes(passed=2, failed=2)
    props = _junit_properties(xml)
    assert props["eval_with_fixture"] == {
        "looplet_step_count": "3",
        "looplet_tokens": "120",
        "looplet_stop_reason": "done",
        "looplet_score": "0.8",
        "looplet_threshold": "0.5",
        "looplet_metrics": '{"recall":0.5,"steps_ok":1.0}',
    }
    # A failing assert still reports what the agent did, but no score.
    assert props["eval_fixture_then_assert"] == {
        "looplet_step_count": "3",
        "looplet_tokens": "120",
        "looplet_stop_reason": "done",
    }
    assert props["eval_returns_trajectory"]["looplet_step_count"] == "2"
    assert props["eval_returns_trajectory"]["looplet_stop_reason"] == "max_steps"
    assert props["eval_returns_trajectory"]["looplet_score"] == "0.4"
    assert props["eval_without_trajectory"] == {  # no metrics: none written
        "looplet_score": "1.0",
        "looplet_threshold": "0.5",
    }
    assert json.loads(props["eval_with_fixture"]["looplet_metrics"]) == {
        "recall": 0.5,
        "steps_ok": 1.0,
    }


def test_plain_tests_report_no_looplet_properties(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    return None\n")
    xml = pytester.path / "junit.xml"
    run(f"--junitxml={xml}").assert_outcomes(passed=1)
    assert _junit_properties(xml) == {"test_plain": {}}
