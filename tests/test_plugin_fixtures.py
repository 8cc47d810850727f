"""The plugin's fixtures end to end: record an eval from the loopback server, replay it
offline (also under xdist), and the errors a user meets (missing cassette, changed prompt,
forgotten fixture, a trajectory that differs)."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from tests._greeter import CONFTEST, recording

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

EVAL = """
from looplet import ANY

def eval_greets_alice(looplet_agent):
    traj = looplet_agent.run("Greet Alice, then finish.")
    assert traj == [("greet", {"name": "Alice"}), ("done", {"answer": ANY})]

def eval_greets_bob(looplet_agent):
    traj = looplet_agent.run("Greet Bob, then finish.")
    return traj.called("greet", name="Bob")
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest in-process with the plugin (and xdist when asked), nothing autoloaded."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_greeter=EVAL)

    def run(*args: str) -> pytest.RunResult:
        # In a subprocess: in-process runs share (and reset) sys.modules with this test run.
        argv = ("-p", "pytest_looplet.plugin", "--looplet-evals", "-p", "no:cacheprovider", *args)
        return pytester.runpytest_subprocess(*argv)

    return run


def record(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    with recording(monkeypatch):
        run("--looplet-record-mode=all").assert_outcomes(passed=2)


def test_record_then_replay_offline_with_no_key(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    cassettes = sorted(p.name for p in (pytester.path / "cassettes" / "eval_greeter").iterdir())
    assert cassettes == ["eval_greets_alice.yaml", "eval_greets_bob.yaml"]
    for path in (pytester.path / "cassettes").rglob("*.yaml"):
        assert b"sk-test-recording-key" not in path.read_bytes()
    result = run("--junitxml=report.xml")  # the server is gone: replay only
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["PASS *1.00*2*done*eval_greeter.py::eval_greets_alice"])
    suite = ET.parse(pytester.path / "report.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["looplet_step_count"] == "2" and props["looplet_stop_reason"] == "done"


def test_replay_under_xdist_gives_the_same_summary(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    serial = run()
    parallel = run("-p", "xdist", "-n", "2")
    parallel.assert_outcomes(passed=2)

    def table(result: pytest.RunResult) -> list[str]:
        return [line for line in result.outlines if line.startswith(("PASS", "FAIL", "ERROR"))]

    assert table(parallel) == table(serial) and len(table(serial)) == 2


def test_a_missing_cassette_says_how_to_record_it(run: Run) -> None:
    result = run()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*eval_greets_alice.yaml does not exist*",
            "*pytest --looplet-evals --looplet-record-mode=once eval_greeter.py::eval_greets_alice",
        ]
    )


def test_a_changed_tool_description_fails_with_the_cassette_diff_once(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    pytester.makeconftest(CONFTEST.replace("Greet someone.", "Greet a person."))
    result = run()
    result.assert_outcomes(failed=2)  # failed once each, not again at teardown
    out = result.stdout.str()
    assert "tools[0].function.description changed:" in out
    assert "- 'Greet someone.'" in out and "+ 'Greet a person.'" in out
    # The exact command that re-records the failing item (a bare --looplet-record-mode
    # collects no eval), and only the user's frames: no SDK, httpx or vcrpy ones.
    assert (
        "pytest --looplet-evals --looplet-record-mode=all eval_greeter.py::eval_greets_alice" in out
    )
    failures = out[out.index("= FAILURES =") : out.index("= looplet evals =")]
    frames = [line for line in failures.splitlines() if ": in " in line]
    assert frames and all(line.startswith("eval_greeter.py:") for line in frames), frames


def test_a_forgotten_tools_fixture_names_the_fixture_to_define(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    pytester.makeconftest("")
    result = run()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*define a `looplet_tools` fixture in conftest.py*"])


def test_a_trajectory_that_differs_shows_the_divergent_step(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        textwrap.dedent(
            """
            from looplet import BaseToolRegistry, ToolCall, ToolSpec, composable_loop
            from looplet.testing import MockLLMBackend

            def test_twice():
                tools = BaseToolRegistry()
                tools.register(ToolSpec(name="greet", description="Greet.",
                                        parameters={"name": "str"}, execute=lambda *, name: name))
                tools.register(ToolSpec(name="done", description="Finish.",
                                        parameters={"answer": "str"},
                                        execute=lambda *, answer: answer))
                greet = ToolCall("greet", {"name": "Alice"})
                llm = MockLLMBackend([greet, greet, ToolCall("done", {"answer": "ok"})])
                loop = composable_loop(llm=llm, tools=tools, task="t")
                list(loop)
                assert loop.trajectory == ["greet", "done"]
            """
        )
    )
    result = pytester.runpytest("-p", "pytest_looplet.plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*trajectory differs at step 2*",
            "*>*#2 ✓ greet(name='Alice')*",
            "*step #2 greet returned*",
        ]
    )


def test_a_crashed_worker_fails_its_eval_with_the_steps_so_far_and_the_run_goes_on(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    pytester.makeconftest(
        CONFTEST.replace(
            'execute=lambda *, answer: {"answer": answer}))',
            'execute=lambda *, answer: __import__("os")._exit(3)))',
        )
    )
    result = run("-p", "xdist", "-n", "2")
    result.assert_outcomes(failed=2)  # both crashed at done; workers restarted, run finished
    out = result.stdout.str()
    assert "crashed while running" in out
    assert "the agent had taken 1 steps when the worker crashed" in out
    assert "#1 ✓ greet(name='Alice')" in out
    result.stdout.fnmatch_lines(["FAIL*-*1*crashed*eval_greeter.py::eval_greets_alice"])


def test_an_eval_whose_worker_dies_in_its_first_tool_call_is_reported_everywhere(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    pytester.makeconftest(
        CONFTEST.replace(
            'execute=lambda *, name: {"greeting": f"Hello, {name}!"}))',
            'execute=lambda *, name: __import__("os")._exit(3)'
            ' if name == "Alice" else {"greeting": f"Hello, {name}!"}))',
        )
    )
    result = run("-p", "xdist", "-n", "2", "--looplet-report", "report.json")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "the agent had taken 0 steps when the worker crashed" in out
    result.stdout.fnmatch_lines(["FAIL*-*0*crashed*eval_greeter.py::eval_greets_alice"])
    assert "2 evals: 1 passed, 1 failed" in out
    doc = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    items = {item["nodeid"]: item for entry in doc["evals"] for item in entry["items"]}
    crashed = items["eval_greeter.py::eval_greets_alice"]
    assert (crashed["verdict"], crashed["stop_reason"], crashed["error"]) == (
        "FAIL",
        "crashed",
        "crashed",
    )
    assert "crashed while running" in crashed["message"]
    assert items["eval_greeter.py::eval_greets_bob"]["verdict"] == "PASS"


@pytest.mark.parametrize(
    "args", [("-x",), ("-p", "xdist", "-n", "1", "--max-worker-restart=0")], ids=["x", "xdist"]
)
def test_evals_that_never_ran_are_listed_as_not_run(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    pytester.makepyfile(eval_more=EVAL.replace("eval_greets_", "eval_also_greets_"))
    with recording(monkeypatch):
        run("--looplet-record-mode=all").assert_outcomes(passed=4)
    # The first eval to call done fails: -x stops the run there, and without -x the worker
    # dies there and may not be restarted.
    done = '__import__("os")._exit(3)' if "xdist" in args else "1 / 0"
    pytester.makeconftest(
        CONFTEST.replace(
            'execute=lambda *, answer: {"answer": answer}))', f"execute=lambda *, answer: {done}))"
        )
    )
    result = run(*args, "--looplet-report", "report.json")
    doc = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    items = {item["nodeid"]: item for entry in doc["evals"] for item in entry["items"]}
    assert len(items) == 4  # every collected eval, run or not
    not_run = [item for item in items.values() if item["error"] == "not_run"]
    assert len(not_run) == 3 and all(item["verdict"] == "SKIP" for item in not_run)
    assert all(item["message"].startswith("not run: ") for item in not_run)
    assert "4 evals: 1 failed, 3 skipped" in result.stdout.str()
