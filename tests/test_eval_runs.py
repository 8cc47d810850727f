"""Grading saved runs through the plugin: ``--looplet-runs`` and ``looplet eval`` over pytest.

The runs are real: a scripted agent (MockLLMBackend) recorded by ProvenanceSink. The graders
are the original's ``def eval_x(ctx)`` as well as ``looplet_run`` evals; pytest runs in a
subprocess (``-n 0`` and ``-n 2``), and the ``looplet`` command through ``python -m``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from looplet import ToolCall, composable_loop
from looplet.evals import EvalContext, eval_discover, eval_run
from looplet.provenance import ProvenanceSink
from looplet.testing import MockLLMBackend
from tests.conftest import make_tools

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})

EVALS = """
from looplet.evals import eval_mark

def eval_short(ctx):                      # the original's grader, unchanged
    return ctx.step_count < 5

@eval_mark("greeting")
def eval_greets(looplet_run):
    called = looplet_run.trajectory.called("greet")
    return {"score": 1.0 if called else 0.0, "greets": float(len(looplet_run.tool_sequence))}

def eval_not_about_a_run():
    return 1.0
"""


def save_runs(root: Path) -> Path:
    """Two runs recorded by ProvenanceSink: ``short`` (2 steps) and ``long`` (6 steps)."""
    scripts = {"short": [GREET, DONE], "long": [GREET] * 5 + [DONE]}
    for name, script in scripts.items():
        sink = ProvenanceSink(root / name)
        loop = composable_loop(
            llm=sink.wrap_llm(MockLLMBackend(script)),
            tools=make_tools(),
            task={"goal": "Greet Alice"},
            hooks=[sink.trajectory_hook()],
        )
        list(loop)
    return root


def write(folder: Path, source: str, name: str = "eval_greeter.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)
    save_runs(pytester.path / "runs")
    write(pytester.path / "evals", EVALS)
    return pytester.path


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider", *args
    )


def items_of(report: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads(report.read_text(encoding="utf-8"))
    return {item["nodeid"]: item for entry in doc["evals"] for item in entry["items"]}


@pytest.mark.parametrize("workers", ["0", "2"])
def test_each_saved_run_is_one_item_of_each_grader(
    project: Path, pytester: pytest.Pytester, workers: str
) -> None:
    result = run_pytest(
        pytester,
        "--looplet-evals",
        "evals",
        "--looplet-runs",
        "runs",
        "--looplet-report",
        "r.json",
        "-n",
        workers,
    )
    assert result.ret == 1, result.stdout.str()  # eval_short fails on the long run
    items = items_of(project / "r.json")
    figures = {
        nodeid.removeprefix("evals/eval_greeter.py::"): (
            item["verdict"],
            item.get("score"),
            item.get("step_count"),
        )
        for nodeid, item in items.items()
    }
    assert figures == {
        "eval_short[short]": ("PASS", 1.0, 2),
        "eval_short[long]": ("FAIL", 0.0, 6),
        "eval_greets[short]": ("PASS", 1.0, 2),
        "eval_greets[long]": ("PASS", 1.0, 6),
        "eval_not_about_a_run": ("PASS", 1.0, None),  # takes no run: one item, no trajectory
    }
    greets = items["evals/eval_greeter.py::eval_greets[long]"]
    assert greets["metrics"] == {"greets": 6.0}
    assert greets["stop_reason"] == "done"
    assert greets["trajectory"]["steps"][0]["tool"] == "greet"  # the saved run's own steps


def test_the_plugin_scores_a_grader_as_eval_run_does(
    project: Path, pytester: pytest.Pytester
) -> None:
    result = run_pytest(
        pytester, "--looplet-evals", "evals", "--looplet-runs", "runs", "--looplet-report", "r.json"
    )
    assert result.ret == 1
    items = items_of(project / "r.json")
    graders = [fn for fn in eval_discover(project / "evals") if "run" not in fn.__name__]
    for run in ("short", "long"):
        ctx = EvalContext.from_trajectory_dir(project / "runs" / run)
        for grade in eval_run(graders, ctx):
            item = items[f"evals/{grade.name}[{run}]"]
            assert (item.get("score"), item.get("metrics") or {}) == (grade.score, grade.metrics)


def test_repeats_tags_and_junit_apply_to_saved_runs(
    project: Path, pytester: pytest.Pytester
) -> None:
    result = run_pytest(
        pytester,
        "--looplet-evals",
        "evals",
        "--looplet-runs",
        "runs/long",  # one run directory, named by its folder
        "--looplet-repeat",
        "2",
        "-m",
        "greeting",
        "--strict-markers",
        "--looplet-report",
        "r.json",
        "--junit-xml",
        "j.xml",
    )
    assert result.ret == 0, result.stdout.str()
    assert sorted(items_of(project / "r.json")) == [
        "evals/eval_greeter.py::eval_greets[long-rep1of2]",
        "evals/eval_greeter.py::eval_greets[long-rep2of2]",
    ]
    junit = (project / "j.xml").read_text(encoding="utf-8")
    assert junit.count('name="eval_greets[long-rep') == 2
    assert 'name="looplet_score" value="1.0"' in junit


def test_a_judge_grader_is_skipped_unless_a_conftest_gives_llm(
    project: Path, pytester: pytest.Pytester
) -> None:
    write(project / "evals", "def eval_judged(ctx, llm):\n    return llm == 'judge'\n")
    skipped = run_pytest(pytester, "--looplet-evals", "evals", "--looplet-runs", "runs", "-rs")
    skipped.assert_outcomes(skipped=2)
    skipped.stdout.fnmatch_lines(["*needs a judge model*"])
    write(
        project / "evals",
        "import pytest\n\n@pytest.fixture\ndef llm():\n    return 'judge'\n",
        name="conftest.py",
    )
    judged = run_pytest(pytester, "--looplet-evals", "evals", "--looplet-runs", "runs")
    judged.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--looplet-evals", "evals", "--looplet-runs", "nope"],
            ["--looplet-runs", "nope' is not a directory"],
        ),
        (["--looplet-evals", "evals", "--looplet-runs", "empty"], ["no saved runs", "empty"]),
        (["evals", "--looplet-runs", "runs"], ["--looplet-runs", "--looplet-evals"]),
    ],
)
def test_a_bad_runs_option_is_a_usage_error_naming_it(
    project: Path, pytester: pytest.Pytester, args: list[str], words: list[str]
) -> None:
    (project / "empty").mkdir()
    result = run_pytest(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error = result.stderr.str()
    assert all(word in error for word in words), error


def test_a_run_grader_without_runs_fails_saying_what_to_give(
    project: Path, pytester: pytest.Pytester
) -> None:
    result = run_pytest(pytester, "--looplet-evals", "evals", "-k", "eval_short")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*eval_short takes looplet_run (or ctx)*--looplet-runs DIR*"])


# -- looplet eval, through python -m looplet ---------------------------------------------------


def looplet(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-m", "looplet", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_looplet_eval_runs_the_graders_under_pytest(tmp_path: Path) -> None:
    save_runs(tmp_path / "runs")
    write(tmp_path / "evals", EVALS)
    out = looplet(
        "eval", "runs", "--evals", "evals", "--report", "r.json", "--", "-n", "2", cwd=tmp_path
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "looplet eval: 3 evals × 2 runs, threshold 0.5" in out.stdout
    assert "FAIL    eval_greeter.py::eval_short" in out.stdout
    assert "FAIL  0.00  eval_greeter.py::eval_short on long (below 0.5)" in out.stdout
    assert "1 of 3 evals did not pass (1 failed)" in out.stdout
    items = items_of(tmp_path / "r.json")  # the plugin's report, one item per (grader, run)
    assert len(items) == 5
    assert items["eval_greeter.py::eval_short[long]"]["step_count"] == 6
    passing = looplet("eval", "runs", "--evals", "evals", "--include", "greeting", cwd=tmp_path)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "all 1 evals passed on every run" in passing.stdout


def test_looplet_eval_gives_graders_the_fixtures_of_a_conftest(tmp_path: Path) -> None:
    save_runs(tmp_path / "runs")
    write(
        tmp_path / "evals",
        "import pytest\n\n@pytest.fixture\ndef most_steps():\n    return 10\n",
        name="conftest.py",
    )
    write(
        tmp_path / "evals",
        "def eval_budget(ctx, most_steps):\n    return ctx.step_count <= most_steps\n",
    )
    write(tmp_path / "evals", "def test_not_an_eval():\n    assert False\n", name="test_x.py")
    out = looplet("eval", "runs", "--evals", "evals", "--html", "r.html", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 1 evals passed on every run" in out.stdout
    assert "eval_budget[long]" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_looplet_eval_exit_2_when_pytest_stops_before_grading(tmp_path: Path) -> None:
    save_runs(tmp_path / "runs")
    write(tmp_path / "evals", EVALS)
    out = looplet("eval", "runs", "--evals", "evals", "--", "--no-such-option", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "pytest stopped before grading (exit status 4" in out.stderr
    assert "--no-such-option" in out.stderr  # pytest's own complaint is shown
