"""Eval collection: eval files and eval functions become ordinary pytest items."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

EVAL_FILE = """
import pytest
from helpers import eval_helper  # an eval_ function from elsewhere: not an eval here

def eval_passes():
    pass

def eval_fails():
    assert False, "eval_fails ran"

def test_is_not_an_eval():
    pass

def helper():
    pass

class TestIgnored:
    def eval_in_class(self):
        pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest in-process with the plugin passed by ``-p`` and nothing autoloaded."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "pytest_looplet.plugin", *args)

    return run


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A test file, an eval file and a helper module the eval file imports from."""
    pytester.makepyfile(
        test_unit="def test_unit():\n    pass\n",
        eval_basic=EVAL_FILE,
        helpers="def eval_helper():\n    raise AssertionError('imported eval ran')\n",
    )
    return pytester


def test_without_the_flag_eval_files_are_not_collected(project: pytest.Pytester, run: Run) -> None:
    result = run("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_unit.py::test_unit PASSED*"])
    result.stdout.no_fnmatch_line("*eval_basic*")


def test_with_the_flag_only_eval_functions_defined_in_the_file_are_collected(
    project: pytest.Pytester, run: Run
) -> None:
    result = run("--looplet-evals", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    collected = [line for line in result.outlines if "::" in line]
    assert collected == [
        "eval_basic.py::eval_passes",
        "eval_basic.py::eval_fails",
        "test_unit.py::test_unit",
    ]


def test_ini_turns_evals_on(project: pytest.Pytester, run: Run) -> None:
    project.makeini("[pytest]\nlooplet_evals = true\n")
    run().assert_outcomes(passed=2, failed=1)


def test_ini_sets_the_eval_file_patterns_and_the_function_prefix(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makeini(
        "[pytest]\nlooplet_eval_files = check_*.py scenario_*.py\nlooplet_eval_prefix = check_\n"
    )
    pytester.makepyfile(
        check_greeting="def check_hello():\n    pass\n\ndef eval_old_name():\n    pass\n",
        scenario_one="def check_scenario():\n    pass\n",
        eval_default="def eval_not_an_eval_file():\n    pass\n",
    )
    result = run("--looplet-evals", "--collect-only", "-q")
    collected = sorted(line for line in result.outlines if "::" in line)
    assert collected == ["check_greeting.py::check_hello", "scenario_one.py::check_scenario"]


def test_eval_file_named_on_the_command_line_is_collected_once_as_evals(
    project: pytest.Pytester, run: Run
) -> None:
    result = run("--looplet-evals", "--collect-only", "-q", "eval_basic.py")
    collected = [line for line in result.outlines if "::" in line]
    assert collected == ["eval_basic.py::eval_passes", "eval_basic.py::eval_fails"]


def test_eval_file_also_matching_python_files_is_collected_once(
    pytester: pytest.Pytester, run: Run
) -> None:
    pytester.makeini("[pytest]\npython_files = test_*.py eval_*.py\n")
    pytester.makepyfile(eval_both="def eval_one():\n    pass\n")
    result = run("--looplet-evals", "--collect-only", "-q")
    assert [line for line in result.outlines if "::" in line] == ["eval_both.py::eval_one"]


def test_evals_take_fixtures_parametrize_and_marks(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef answer():\n    return 42\n")
    pytester.makepyfile(
        eval_features="""
        import pytest

        @pytest.fixture
        def doubled(answer):
            return answer * 2

        def eval_fixture(answer, doubled):
            assert (answer, doubled) == (42, 84)

        @pytest.mark.parametrize("name, score", [("good", 0.9), ("bad", 0.1)])
        def eval_param(name, score):
            return score

        @pytest.mark.skip(reason="not today")
        def eval_skipped():
            pass

        @pytest.mark.xfail(reason="known gap", strict=True)
        def eval_known_gap():
            return False
        """
    )
    result = run("--looplet-evals", "-v")
    result.assert_outcomes(passed=2, failed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "eval_features.py::eval_fixture PASSED*",
            "eval_features.py::eval_param[[]good-0.9[]] PASSED*",
            "eval_features.py::eval_param[[]bad-0.1[]] FAILED*",
            "eval_features.py::eval_skipped SKIPPED (not today)*",
            "eval_features.py::eval_known_gap XFAIL (known gap)*",
        ]
    )


def test_k_selects_evals_by_name_and_by_the_looplet_eval_keyword(
    project: pytest.Pytester, run: Run
) -> None:
    run("--looplet-evals", "-k", "passes").assert_outcomes(passed=1, deselected=2)
    run("--looplet-evals", "-k", "looplet_eval").assert_outcomes(passed=1, failed=1, deselected=1)


def test_last_failed_and_exitfirst_work_on_evals(project: pytest.Pytester, run: Run) -> None:
    first = run("--looplet-evals", "-x")
    first.assert_outcomes(passed=1, failed=1)  # test_unit.py comes after: never run
    first.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    rerun = run("--looplet-evals", "--lf", "-v")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(["eval_basic.py::eval_fails FAILED*"])


SAME_NAME = {
    "agents/alpha/eval_common.py": "def eval_alpha():\n    return 1.0\n",
    "agents/beta/eval_common.py": "def eval_beta():\n    return 1.0\n",
}


def test_same_named_eval_files_in_packages_do_not_collide(
    pytester: pytest.Pytester, run: Run
) -> None:
    for folder in ("agents", "agents/alpha", "agents/beta"):
        pytester.mkpydir(folder)
    for path, source in SAME_NAME.items():
        (pytester.path / path).write_text(source)
    result = run("--looplet-evals", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "agents/alpha/eval_common.py::eval_alpha PASSED*",
            "agents/beta/eval_common.py::eval_beta PASSED*",
        ]
    )


def test_same_named_eval_files_without_packages_work_with_importlib_mode(
    pytester: pytest.Pytester, run: Run
) -> None:
    for path, source in SAME_NAME.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    run("--looplet-evals", "--import-mode=importlib").assert_outcomes(passed=2)
