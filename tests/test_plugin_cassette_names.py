"""Each eval item gets its own cassette file: ids that sanitise alike get a hash, and two items
that would still share a file are refused at collection, naming both."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._greeter import CONFTEST, recording

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

# Four ids the old rule (unsafe characters -> "_") mapped to one file.
EVAL = """
import pytest

IDS = ["hello world", "hello_world", "hello/world", "hello?world"]

@pytest.mark.parametrize("who", IDS, ids=IDS)
def eval_greets(looplet_agent, who):
    traj = looplet_agent.run(f"Greet <{who}>, then finish.")
    assert traj.called("greet", name=who)
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest with the plugin in a subprocess, nothing autoloaded."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "--looplet-evals", "-p", "no:cacheprovider", *args)
        return pytester.runpytest_subprocess(*argv)

    return run


def _name_in_brackets(task: str) -> str:
    return re.search(r"<(.*)>", task)[1]  # type: ignore[index]


def cassettes(pytester: pytest.Pytester, module: str) -> list[str]:
    folder = pytester.path / "cassettes" / module
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_ids_that_sanitise_alike_record_four_files_and_replay_four_passes(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(eval_greeter=EVAL)
    with recording(monkeypatch, _name_in_brackets):
        run("--looplet-record-mode=all").assert_outcomes(passed=4)
    names = cassettes(pytester, "eval_greeter")
    assert len(names) == 4
    # A plain id keeps its plain name, so cassettes recorded before still replay.
    assert "eval_greets[hello_world].yaml" in names
    hashed = [n for n in names if n != "eval_greets[hello_world].yaml"]
    assert all(re.fullmatch(r"eval_greets\[hello_world\]-[0-9a-f]{8}\.yaml", n) for n in hashed)
    run().assert_outcomes(passed=4)  # offline: each item replays its own file
    run("-p", "xdist", "-n", "2").assert_outcomes(passed=4)
    # A missing hashed file is missing: the plain name beside it is hello_world's own.
    (pytester.path / "cassettes" / "eval_greeter" / hashed[0]).unlink()
    result = run()
    result.assert_outcomes(passed=3, errors=1)
    assert "does not exist" in result.stdout.str() and "git mv" not in result.stdout.str()


def test_a_cassette_under_its_former_name_fails_with_the_rename_to_make(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        eval_greeter=EVAL.replace('"hello_world", "hello/world", "hello?world"', "")
    )
    with recording(monkeypatch, _name_in_brackets):
        run("--looplet-record-mode=all").assert_outcomes(passed=1)
    [name] = cassettes(pytester, "eval_greeter")
    folder = pytester.path / "cassettes" / "eval_greeter"
    (folder / name).rename(folder / "eval_greets[hello_world].yaml")  # as named before
    result = run()
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert f"{name} does not exist, but eval_greets[hello_world].yaml beside it does" in out
    assert "git mv" in out
    (folder / "eval_greets[hello_world].yaml").rename(folder / name)
    run().assert_outcomes(passed=1)


# Writes a file at the item's cassette path: the names alone, no recording needed.
TOUCH_EVAL = """
import pytest

LONG = ["x" * 300 + "-a", "x" * 300 + "-b"]

def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return 1.0

@pytest.mark.looplet(repeat=2)
@pytest.mark.parametrize("who", ["a b", "a?b"], ids=["a b", "a?b"])
def eval_repeated(looplet_cassette_path, who):
    return touch(looplet_cassette_path)

@pytest.mark.parametrize("who", LONG, ids=LONG)
def eval_long(looplet_cassette_path, who):
    return touch(looplet_cassette_path)
"""


def test_repeated_and_very_long_ids_get_distinct_names_that_fit_a_file_system(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(eval_names=TOUCH_EVAL)
    run().assert_outcomes(passed=6)
    names = cassettes(pytester, "eval_names")
    repeated = [n for n in names if n.startswith("eval_repeated")]
    assert len(repeated) == 4
    for name in repeated:  # the hash before the run number: raising repeat keeps the files
        assert re.fullmatch(r"eval_repeated\[a_b\]-[0-9a-f]{8}-rep[12]\.yaml", name)
    long = [n for n in names if n.startswith("eval_long")]
    assert len(long) == 2
    assert all(len(n.encode()) <= 240 for n in long)


CASE_EVAL = """
import pytest

@pytest.mark.parametrize("unit", ["M", "m"], ids=["M", "m"])
def eval_converts(looplet_agent, unit):
    looplet_agent.run(f"Convert 1 {unit}.")

def eval_alone(looplet_agent):
    looplet_agent.run("Convert 1 km.")
"""

SHARED_PATH_CONFTEST = """
import pytest

@pytest.fixture
def looplet_cassette_path(request):
    return request.path.parent / "cassettes" / "shared.yaml"
"""


def test_two_items_that_would_share_a_file_fail_collection_naming_both(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(eval_units=CASE_EVAL)
    result = run()
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "ERROR collecting eval_units.py" in out
    assert "eval_units.py::eval_converts[M]" in out and "eval_units.py::eval_converts[m]" in out
    assert str(Path("cassettes", "eval_units", "eval_converts[M].yaml")) in out
    assert "eval_converts[m].yaml" in out
    assert "eval_alone" not in out  # not run: the module did not collect

    # An eval that names its own cassette is not second-guessed: sharing may be intended.
    (pytester.path / "conftest.py").write_text(CONFTEST + SHARED_PATH_CONFTEST)
    result = run("--collect-only")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*3 tests collected*"])
