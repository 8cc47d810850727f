"""The "looplet evals" summary: a line per eval from the reports, the same with or without xdist."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

CONFTEST = """
import pytest
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Usage
from pytest_looplet.scoring import record_trajectory

@pytest.fixture
def agent(request):
    def run(steps, tokens, reason=StopReason.DONE):
        trajectory = Trajectory(
            steps=[Step(n, ToolCall("greet"), ToolResult("greet")) for n in range(1, steps + 1)],
            usage=Usage(tokens - tokens // 4, tokens // 4),
            stop_reason=reason,
        )
        record_trajectory(request, trajectory)
        return trajectory
    return run

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")
"""

EVALS = {
    "suite/eval_greeter": """
        import pytest
        from looplet.types import StopReason

        def eval_greets(agent):
            agent(2, 120)
            return 0.9

        def eval_gives_up(agent):
            agent(10, 900, StopReason.MAX_STEPS)
            return {"score": 0.25, "recall": 0.5}

        @pytest.mark.parametrize("name", ["alice", "bob"])
        def eval_names(agent, name):
            agent(len(name), 10 * len(name))
            assert name != "bob", "bob is not greeted"

        def eval_setup_error(broken):
            pass

        def eval_bad_return():
            return "great"

        @pytest.mark.skip(reason="later")
        def eval_later():
            pass
        """,
    "suite/eval_other": """
        def eval_plain():
            return 1
        """,
    "suite/test_unit": """
        def test_not_an_eval():
            pass
        """,
}


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run the suite in-process with the plugin and xdist passed by ``-p``, evals on."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(**EVALS)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(
            "-p", "pytest_looplet.plugin", "-p", "xdist", "--looplet-evals", *args
        )

    return run


def summary_section(result: pytest.RunResult) -> list[str]:
    """The lines of the "looplet evals" section, up to the next section."""
    lines = result.outlines
    starts = [i for i, line in enumerate(lines) if " looplet evals " in line]
    assert len(starts) == 1, "the section appears exactly once"
    section = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("=="):
            break
        section.append(line)
    return section


def test_summary_has_one_line_per_eval_sorted_by_node_id_then_totals(run: Run) -> None:
    result = run("-n", "0")
    result.assert_outcomes(passed=4, failed=3, skipped=1, errors=1)
    assert summary_section(result) == [
        "result  score  steps  tokens  stop       eval",
        "FAIL        -      -       -  -          suite/eval_greeter.py::eval_bad_return",
        "FAIL     0.25     10     900  max_steps  suite/eval_greeter.py::eval_gives_up",
        "PASS     0.90      2     120  done       suite/eval_greeter.py::eval_greets",
        "SKIP        -      -       -  -          suite/eval_greeter.py::eval_later",
        "PASS     1.00      5      50  done       suite/eval_greeter.py::eval_names[alice]",
        "FAIL        -      3      30  done       suite/eval_greeter.py::eval_names[bob]",
        "ERROR       -      -       -  -          suite/eval_greeter.py::eval_setup_error",
        "PASS     1.00      -       -  -          suite/eval_other.py::eval_plain",
        # An unscored failure counts as 0 in the mean: (0.25 + 0.9 + 1 + 1) / 7 evals
        "8 evals: 3 passed, 3 failed, 1 error, 1 skipped; mean score 0.45; 20 steps, 1100 tokens",
    ]


def test_summary_is_identical_with_two_xdist_workers(run: Run) -> None:
    serial = run("-n", "0")
    parallel = run("-n", "2")
    parallel.stdout.fnmatch_lines(["*2 workers [[]9 items[]]*"])
    parallel.assert_outcomes(passed=4, failed=3, skipped=1, errors=1)
    assert summary_section(parallel) == summary_section(serial)


def test_no_section_when_no_eval_ran(pytester: pytest.Pytester, run: Run) -> None:
    result = run("suite/test_unit.py")
    result.assert_outcomes(passed=1)
    assert " looplet evals " not in result.stdout.str()
