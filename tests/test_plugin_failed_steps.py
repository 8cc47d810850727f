"""A failed step through the user's door: ``pytest --looplet-evals DIR`` on an eval whose
agent is refused a tool. A plain expected step means "it succeeded", so the eval fails and
says which step failed and why; ``failed(...)`` is how an eval expects the failure."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

# A scripted model (no cassette) asks to book a hotel; the fail-closed permission engine
# allows only the search, so book_hotel is denied and the run then finishes.
EVAL_HEAD = """
import pytest
from looplet import ANY, BaseToolRegistry, PermissionEngine, ToolCall, ToolSpec, failed
from looplet.testing import MockLLMBackend

@pytest.fixture
def looplet_tools():
    tools = BaseToolRegistry()
    tools.register(ToolSpec(name="search_hotels", description="Find hotels.",
                            parameters={"city": "str"}, execute=lambda *, city: ["Ritz"]))
    tools.register(ToolSpec(name="book_hotel", description="Book a hotel.",
                            parameters={"city": "str"}, execute=lambda *, city: {"ref": "B1"}))
    tools.register(ToolSpec(name="done", description="Finish.", parameters={"answer": "str"},
                            execute=lambda *, answer: answer))
    return tools

@pytest.fixture
def looplet_permissions():
    return PermissionEngine().allow("search_hotels")

@pytest.fixture
def looplet_llm():
    return MockLLMBackend([ToolCall("book_hotel", {"city": "Paris"}),
                           ToolCall("done", {"answer": "Booked."})])
"""

EXPECTS_SUCCESS = """
def eval_books_a_hotel(looplet_agent):
    traj = looplet_agent.run("Book a hotel in Paris.")
    assert traj == [("book_hotel", {"city": "Paris"}), ("done", {"answer": ANY})]
"""

EXPECTS_FAILURE = """
def eval_is_refused_the_booking(looplet_agent):
    traj = looplet_agent.run("Book a hotel in Paris.")
    assert traj == [
        failed("book_hotel", {"city": "Paris"}, kind="permission_denied"),
        ("done", {"answer": ANY}),
    ]
"""

# The lines of the step diff that name the failure.
FAILURE_DIFF = [
    "*trajectory differs at step 1 (order=strict, args=subset)*",
    "*step 1: expected book_hotel to succeed, it failed (permission_denied: *",
    "*>   1 book_hotel(city='Paris', ...)*!=  #1 ✗ book_hotel(city='Paris')*",
    "*step #1 book_hotel failed: permission_denied: *",
]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest in a subprocess with the plugin, evals on, nothing autoloaded."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "-p", "no:cacheprovider", *args)
        return pytester.runpytest_subprocess(*argv)

    return run


def write(pytester: pytest.Pytester, path: str, body: str) -> None:
    target = pytester.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(EVAL_HEAD + body), encoding="utf-8")


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["n0", "n2"])
def test_an_eval_expecting_success_fails_on_a_denied_step(
    pytester: pytest.Pytester, run: Run, workers: list[str]
) -> None:
    write(pytester, "evals/eval_hotel.py", EXPECTS_SUCCESS)
    result = run("--looplet-evals", "evals", *workers)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([*FAILURE_DIFF, "FAILED evals/eval_hotel.py::eval_books_a_hotel*"])


def test_an_eval_expecting_the_failure_passes(pytester: pytest.Pytester, run: Run) -> None:
    write(pytester, "evals/eval_hotel.py", EXPECTS_FAILURE)
    run("--looplet-evals", "evals").assert_outcomes(passed=1)


def test_the_step_diff_names_the_failed_step_and_why(pytester: pytest.Pytester, run: Run) -> None:
    # The same assert in a test_*.py file, without --looplet-evals: the plugin's
    # pytest_assertrepr_compare shows the step diff in any test, not only in evals.
    write(pytester, "tests/test_hotel.py", EXPECTS_SUCCESS.replace("def eval_", "def test_"))
    result = run("tests")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(FAILURE_DIFF)
