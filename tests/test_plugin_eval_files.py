"""Eval files as a user writes them: plain asserts show their values, and ``async def`` evals
run and are scored like sync ones, natively or under anyio's or pytest-asyncio's plugin.

Every run here is ``pytest --looplet-evals FOLDER`` in a subprocess, on ``eval_*.py`` files in
a folder, with ``-n 0`` and ``-n 2``: the way the README runs the example suite.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable

import pytest

from tests._greeter import CONFTEST as CONFTEST_GREETER
from tests._greeter import recording

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

WORKERS = pytest.mark.parametrize("workers", ["0", "2"], ids=["n0", "n2"])


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``pytest --looplet-evals evals ...`` in a subprocess, with the plugin and xdist only."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider")
        return pytester.runpytest_subprocess(*argv, "--looplet-evals", *args)

    return run


def write(pytester: pytest.Pytester, path: str, source: str) -> None:
    target = pytester.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(source), encoding="utf-8")


def report_items(pytester: pytest.Pytester) -> dict[str, dict[str, object]]:
    """The JSON report's items by eval name (the node id's last part)."""
    doc = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    items = [item for entry in doc["evals"] for item in entry["items"]]
    return {str(item["nodeid"]).rpartition("::")[2]: item for item in items}


# ------------------------------------------------------------------ asserts are rewritten


ASSERTS = """
from looplet import BaseToolRegistry, ToolCall, ToolSpec, composable_loop
from looplet.testing import MockLLMBackend

from evals.helpers import check_total


def tools():
    registry = BaseToolRegistry()
    registry.register(ToolSpec(name="greet", description="Greet.", parameters={"name": "str"},
                               execute=lambda *, name: name))
    registry.register(ToolSpec(name="done", description="Finish.",
                               parameters={"answer": "str"}, execute=lambda *, answer: answer))
    return registry


def eval_numbers():
    x = 1
    assert x == 2


def eval_trajectory():
    greet = ToolCall("greet", {"name": "Alice"})
    llm = MockLLMBackend([greet, greet, ToolCall("done", {"answer": "ok"})])
    loop = composable_loop(llm=llm, tools=tools(), task="t")
    list(loop)
    assert loop.trajectory == ["greet", "done"]


def eval_conftest_helper(checked):
    checked(3, 4)


def eval_plain_helper():
    check_total(5, 6)
"""

CONFTEST = """
import pytest

pytest.register_assert_rewrite("evals.helpers")

@pytest.fixture
def checked():
    def check(total, expected):
        assert total == expected
    return check
"""

HELPERS = """
def check_total(total, expected):
    assert total == expected
"""


@WORKERS
def test_plain_asserts_in_eval_files_show_their_values(
    run: Run, pytester: pytest.Pytester, workers: str
) -> None:
    write(pytester, "evals/__init__.py", "")
    write(pytester, "evals/eval_asserts.py", ASSERTS)
    write(pytester, "evals/helpers.py", HELPERS)
    write(pytester, "evals/conftest.py", CONFTEST)

    result = run("evals", "-n", workers, "--looplet-report", "report.json")

    result.assert_outcomes(failed=4)
    out = result.stdout.str()
    assert "assert 1 == 2" in out
    assert "trajectory differs at step 2" in out  # the step diff of pytest_assertrepr_compare
    assert "assert 3 == 4" in out  # an assert in a conftest fixture, as pytest rewrites it
    assert "assert 5 == 6" in out  # a helper registered with pytest.register_assert_rewrite
    items = report_items(pytester)
    assert "assert 1 == 2" in str(items["eval_numbers"]["message"])
    assert "trajectory differs at step 2" in str(items["eval_trajectory"]["message"])


def test_assert_plain_still_runs_evals(run: Run, pytester: pytest.Pytester) -> None:
    write(pytester, "evals/eval_plain.py", "def eval_x():\n    assert 1 == 2\n")
    result = run("evals", "-n", "0", "--assert=plain")
    result.assert_outcomes(failed=1)


# ------------------------------------------------------------------ async evals

RETURNS = """
{header}

{mark}
async def eval_returns_zero():
    return 0.0

{mark}
async def eval_returns_too_much():
    return 1.7

{mark}
async def eval_returns_a_word():
    return "yes"

{mark}
async def eval_fails_an_assert():
    total = 1
    assert total == 2

{mark}
async def eval_returns_a_good_score():
    return 0.9

{mark}
async def eval_returns_nothing():
    return None
"""

RUNNERS = {
    "native": ("", "", ()),
    "anyio": ("import pytest", "@pytest.mark.anyio", ("-p", "anyio.pytest_plugin")),
    "pytest-asyncio": ("import pytest", "@pytest.mark.asyncio", ("-p", "pytest_asyncio.plugin")),
    "pytest-asyncio-auto": (
        "",
        "",
        ("-p", "pytest_asyncio.plugin", "-o", "asyncio_mode=auto"),
    ),
}


@WORKERS
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_async_evals_are_scored_like_sync_ones(
    run: Run, pytester: pytest.Pytester, runner: str, workers: str
) -> None:
    header, mark, plugin = RUNNERS[runner]
    write(pytester, "evals/eval_async.py", RETURNS.format(header=header, mark=mark))
    options = ("-o", "asyncio_default_fixture_loop_scope=function") if "asyncio" in runner else ()

    result = run("evals", "-n", workers, *plugin, *options, "--looplet-report", "report.json")

    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines_random(
        [
            "*eval eval_returns_zero* scored 0, below the threshold 0.5*",
            "*eval eval_returns_too_much* returned 1.7 (float)*",
            "*eval eval_returns_a_word* returned 'yes' (str)*",
            "*assert 1 == 2*",
        ]
    )
    scores = {name.split("[")[0]: item for name, item in report_items(pytester).items()}
    assert scores["eval_returns_a_good_score"]["score"] == 0.9
    assert scores["eval_returns_nothing"]["score"] == 1.0
    assert scores["eval_returns_zero"]["score"] == 0.0


ASYNC_AGENT = """
from looplet import ANY

async def eval_greets_alice(looplet_agent):
    traj = await looplet_agent.arun("Greet Alice, then finish.")
    assert traj == [("greet", {"name": "Alice"}), ("done", {"answer": ANY})]
    return traj.called("greet", name="Alice")

async def eval_expects_bob(looplet_agent):
    traj = await looplet_agent.arun("Greet Alice, then finish.")
    assert traj == [("greet", {"name": "Bob"}), ("done", {"answer": ANY})]
"""


def test_looplet_agent_arun_records_then_replays_under_xdist(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pytester, "evals/conftest.py", CONFTEST_GREETER)
    write(pytester, "evals/eval_async_agent.py", ASYNC_AGENT)
    with recording(monkeypatch):
        recorded = run("evals", "-n", "0", "--looplet-record-mode=all")
    recorded.assert_outcomes(passed=1, failed=1)

    for workers in ("0", "2"):  # the server is gone: replay only
        result = run("evals", "-n", workers, "--looplet-report", "report.json")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*trajectory differs at step 1*"])
        steps = {name: item["step_count"] for name, item in report_items(pytester).items()}
        assert steps == {"eval_greets_alice": 2, "eval_expects_bob": 2}


# ------------------------------------------------------------------ without --looplet-evals


@pytest.mark.parametrize("target", ["evals", "evals/eval_trip.py"], ids=["folder", "file"])
def test_eval_files_run_without_the_flag_say_they_need_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    write(pytester, "evals/eval_trip.py", "def eval_books():\n    assert False\n")
    result = pytester.runpytest_subprocess("-p", "pytest_looplet.plugin", target)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(
        [
            "looplet: 1 eval file(s) were not run (evals/eval_trip.py): eval files run only "
            "with --looplet-evals, e.g. pytest --looplet-evals * -p pytest_looplet.plugin "
            f"{target}"
        ]
    )


def test_a_run_that_collected_tests_says_nothing_of_eval_files(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    write(pytester, "evals/eval_trip.py", "def eval_books():\n    assert False\n")
    write(pytester, "evals/test_unit.py", "def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "pytest_looplet.plugin", "evals")
    result.assert_outcomes(passed=1)
    assert "eval file(s) were not run" not in result.stdout.str()
