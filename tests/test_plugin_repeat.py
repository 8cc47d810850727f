"""Repeated evals: one item per run, their statistics, the min pass rate, a cassette per run."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from looplet.evals.stats import fisher_exact, pass_at_k, pass_hat_k, wilson_interval
from looplet.testing import ScriptedModelServer, call, tool_reply

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

# Runs 1, 2 and 4 of eval_flaky pass (3/5; the others score 0.0); bob's second run raises.
EVALS = """
import pytest

@pytest.mark.looplet(repeat=5)
def eval_flaky(looplet_repetition):
    return 1.0 if looplet_repetition in (1, 2, 4) else 0.0

@pytest.mark.looplet(repeat=3)
def eval_steady():
    return 0.8

@pytest.mark.looplet(repeat=2)
@pytest.mark.parametrize("name", ["alice", "bob"])
def eval_param(name, looplet_repetition):
    if name == "bob" and looplet_repetition == 2:
        raise RuntimeError("boom")
    return 1.0

def eval_once(looplet_repetition):
    assert looplet_repetition == 1
    return 0.9
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run the suite in-process with the plugin and xdist passed by ``-p``, evals on."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(eval_rep=EVALS)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(
            "-p", "pytest_looplet.plugin", "-p", "xdist", "--looplet-evals", *args
        )

    return run


def section(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if " looplet evals " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("=="))
    return lines[start + 1 : end]


def test_each_run_is_an_item_with_the_repetition_after_the_parametrize_id(run: Run) -> None:
    result = run("--collect-only", "-q")
    assert [line for line in result.outlines if "::" in line] == [
        *(f"eval_rep.py::eval_flaky[rep{i}of5]" for i in range(1, 6)),
        *(f"eval_rep.py::eval_steady[rep{i}of3]" for i in range(1, 4)),
        "eval_rep.py::eval_param[alice-rep1of2]",
        "eval_rep.py::eval_param[alice-rep2of2]",
        "eval_rep.py::eval_param[bob-rep1of2]",
        "eval_rep.py::eval_param[bob-rep2of2]",
        "eval_rep.py::eval_once",
    ]
    # --looplet-repeat repeats evals whose marker says nothing; a marker's repeat= wins.
    result = run("--collect-only", "-q", "--looplet-repeat", "2", "-k", "once or steady")
    assert [line for line in result.outlines if "::" in line] == [
        *(f"eval_rep.py::eval_steady[rep{i}of3]" for i in range(1, 4)),
        "eval_rep.py::eval_once[rep1of2]",
        "eval_rep.py::eval_once[rep2of2]",
    ]


def test_summary_shows_passes_interval_pass_at_k_pass_hat_k_and_flaky(run: Run) -> None:
    result = run("-n", "0", "--looplet-pass-k", "2")
    # A 0.0 score fails its run, and so does an error; the others pass.
    result.assert_outcomes(passed=10, failed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert section(result) == [
        "result  score  steps  tokens  stop  eval",
        "PASS     0.90      -       -  -     eval_rep.py::eval_once",
        "repeated evals (pass when at least 100% of runs pass):",
        "result  runs  rate        95% CI  score  k  pass@k  pass^k  eval",
        "FAIL     3/5  0.60  [0.23, 0.88]   0.60  2    0.90    0.30  eval_rep.py::eval_flaky  "
        "flaky",
        "PASS     2/2  1.00  [0.34, 1.00]   1.00  2    1.00    1.00  "
        "eval_rep.py::eval_param[alice]",
        "FAIL     1/2  0.50  [0.09, 0.91]   0.50  2    1.00    0.00  eval_rep.py::eval_param[bob]  "
        "flaky",
        "PASS     3/3  1.00  [0.44, 1.00]   0.80  2    1.00    1.00  eval_rep.py::eval_steady",
        "5 evals: 3 passed, 2 failed (2 flaky); mean score 0.76",
    ]
    # Without --looplet-pass-k, k is each eval's number of runs.
    result = run("-n", "0", "-k", "flaky")
    result.stdout.fnmatch_lines(
        ["FAIL *3/5*0.60*5    1.00    0.00  eval_rep.py::eval_flaky  flaky"]
    )


def test_runs_spread_over_xdist_workers_with_the_same_summary(run: Run) -> None:
    serial = run("-n", "0", "--looplet-pass-k", "2")
    parallel = run("-n", "2", "-v", "--looplet-pass-k", "2")
    parallel.assert_outcomes(passed=10, failed=3)
    assert section(parallel) == section(serial)
    workers = {
        line.split()[0] for line in parallel.outlines if "eval_flaky[rep" in line and "[gw" in line
    }
    assert workers == {"[gw0]", "[gw1]"}


@pytest.mark.parametrize(
    ("args", "status", "note"),
    [
        # 3/5 and 1/2 reach 0.5: the failed runs still show as failed, but the run passes.
        (("--looplet-min-pass-rate", "0.5"), 0, "*every repeated eval reached*0.5*"),
        (("--looplet-min-pass-rate", "0.7"), 1, "*2 repeated eval(s) below*0.7*"),
        (("-k", "steady or once"), 0, None),
    ],
)
def test_min_pass_rate_decides_a_repeated_evals_verdict_and_the_exit_status(
    run: Run, args: tuple[str, ...], status: int, note: str | None
) -> None:
    result = run(*args)
    assert result.ret == status
    if note:
        result.stdout.fnmatch_lines([note])


def test_min_pass_rate_never_excuses_a_failed_single_eval_or_test(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(eval_single="def eval_single():\n    return 0.0\n")
    result = run("--looplet-min-pass-rate", "0.5")
    result.assert_outcomes(passed=10, failed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_repeat_count_is_a_usage_error(run: Run, value: str) -> None:
    result = run(f"--looplet-repeat={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--looplet-repeat / looplet_repeat must be an integer >= 1, not '{value}'*"]
    )


def test_a_bad_repeat_in_the_marker_fails_the_eval(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        eval_rep="import pytest\n@pytest.mark.looplet(repeat=0)\ndef eval_x():\n    pass\n"
    )
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*looplet repeat is a positive int or None, not 0*"])


def test_the_estimators_and_the_interval() -> None:
    assert pass_at_k(5, 3, 1) == pytest.approx(0.6)
    assert pass_at_k(5, 3, 3) == 1.0  # 3 draws cannot all miss: only 2 runs failed
    assert pass_hat_k(5, 3, 3) == pytest.approx(1 / 10)
    assert pass_hat_k(5, 2, 3) == 0.0
    assert pass_at_k(10, 0, 4) == 0.0 and pass_hat_k(10, 10, 4) == 1.0
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert fisher_exact(1, 9, 11, 3) == pytest.approx(0.0027595, abs=1e-7)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    assert not math.isnan(wilson_interval(1, 1)[0])


# Each run records its own cassette; replaying gives each run its own answers, also when
# the runs land on different workers.
AGENT_CONFTEST = """
import pytest
from looplet import BaseToolRegistry, PermissionEngine, ToolSpec

@pytest.fixture
def looplet_tools():
    tools = BaseToolRegistry()
    tools.register(ToolSpec(name="done", description="Finish.", parameters={"answer": "str"},
                            execute=lambda *, answer: {"answer": answer}))
    return tools

@pytest.fixture
def looplet_permissions():
    return PermissionEngine().allow("done")
"""

AGENT_EVAL = """
import pytest

@pytest.mark.looplet(repeat=3)
def eval_answers(looplet_agent, looplet_repetition, looplet_cassette_path):
    assert looplet_cassette_path.name == f"eval_answers-rep{looplet_repetition}.yaml"
    traj = looplet_agent.run("Answer.")
    assert traj.called("done", answer=f"run {looplet_repetition}")
"""


def test_each_run_records_and_replays_its_own_cassette(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(AGENT_CONFTEST)
    pytester.makepyfile(eval_agent=AGENT_EVAL)
    argv = (
        "-p",
        "pytest_looplet.plugin",
        "-p",
        "xdist",
        "--looplet-evals",
        "-p",
        "no:cacheprovider",
    )
    script = [tool_reply(call("done", {"answer": f"run {i}"})) for i in (1, 2, 3)]
    with ScriptedModelServer(script) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        pytester.runpytest_subprocess(*argv, "--looplet-record-mode=all").assert_outcomes(passed=3)
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    folder = pytester.path / "cassettes" / "eval_agent"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"eval_answers-rep{i}.yaml" for i in (1, 2, 3)
    ]
    # Offline, in reverse order and on two workers: each run still gets its own answer.
    replay = pytester.runpytest_subprocess(*argv, "-n", "2")
    replay.assert_outcomes(passed=3)
