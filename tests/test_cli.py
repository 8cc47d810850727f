"""The ``looplet`` command, run as a user runs it (``python -m looplet``), on saved runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from looplet import ToolCall, composable_loop
from looplet.testing import MockLLMBackend
from tests.conftest import make_tools

ROOT = Path(__file__).resolve().parent.parent
GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})

PASSING = """
def eval_greets(ctx):
    return ctx.tool_sequence == ["greet", "done"]

def eval_task(ctx):
    assert ctx.task == {"goal": "Greet Alice"}
"""


def save_run(folder: Path, *script: ToolCall | str) -> Path:
    """Run the greet agent and save its trajectory as ProvenanceSink does."""
    loop = composable_loop(
        llm=MockLLMBackend(list(script or (GREET, DONE))),
        tools=make_tools(),
        task={"goal": "Greet Alice"},
    )
    list(loop)
    folder.mkdir(parents=True)
    (folder / "trajectory.json").write_text(json.dumps(loop.trajectory.to_dict()))
    return folder


def write_evals(folder: Path, source: str, name: str = "eval_greeter.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))
    return folder


def looplet(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "looplet", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_eval_exits_zero_only_when_every_grader_passes(tmp_path: Path) -> None:
    save_run(tmp_path / "run")
    write_evals(tmp_path / "evals", PASSING)
    out = looplet("eval", "run", "--evals", "evals", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "looplet eval: 2 evals × 1 run, threshold 0.5" in out.stdout
    assert "PASS    eval_greeter.py::eval_greets  1/1     1.00" in out.stdout
    assert "all 2 evals passed on every run" in out.stdout


def test_eval_fails_below_the_default_threshold(tmp_path: Path) -> None:
    save_run(tmp_path / "run")
    write_evals(tmp_path / "evals", PASSING + "\ndef eval_mediocre(ctx):\n    return 0.4\n")
    out = looplet("eval", "run", "--evals", "evals", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL  0.40  eval_greeter.py::eval_mediocre on run (below 0.5)" in out.stdout
    assert "1 of 3 evals did not pass (1 failed)" in out.stdout
    lowered = looplet("eval", "run", "--evals", "evals", "--threshold", "0.3", cwd=tmp_path)
    assert lowered.returncode == 0, lowered.stdout


def test_eval_fails_on_zero_score_error_and_skip(tmp_path: Path) -> None:
    save_run(tmp_path / "run")
    write_evals(
        tmp_path / "evals",
        """
        def eval_zero(ctx):
            return {"score": 0.0, "f1": 1.0}

        def eval_crash(ctx):
            return ctx.final_output["missing"]

        def eval_judged(ctx, llm):
            return 1.0
        """,
    )
    out = looplet("eval", "run", "--evals", "evals/eval_greeter.py", "-v", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL  0.00  eval_greeter.py::eval_zero on run" in out.stdout
    assert (
        "ERROR    -  eval_greeter.py::eval_crash on run: raised KeyError: 'missing'" in out.stdout
    )
    assert 'return ctx.final_output["missing"]' in out.stdout  # -v shows the traceback
    assert "SKIP     -  eval_greeter.py::eval_judged on run: needs a judge model" in out.stdout
    assert "3 of 3 evals did not pass (1 failed, 1 error, 1 skipped)" in out.stdout
    only_zero = looplet(
        "eval", "run", "--evals", "evals/eval_greeter.py", "--threshold", "0", cwd=tmp_path
    )
    assert only_zero.returncode == 1  # at threshold 0 the zero passes; error and skip do not


def test_eval_over_a_folder_of_runs_and_tags(tmp_path: Path) -> None:
    save_run(tmp_path / "runs" / "ok")
    save_run(tmp_path / "runs" / "nested" / "text", GREET, "Alice is greeted.")
    write_evals(
        tmp_path / "evals",
        """
        from looplet.evals import eval_mark

        @eval_mark("done")
        def eval_finished_with_done(ctx):
            return ctx.stop_reason == "done"

        @eval_mark("slow")
        def eval_greeted(ctx):
            return "greet" in ctx.tool_sequence
        """,
    )
    out = looplet("eval", "runs", "--evals", "evals", cwd=tmp_path)
    assert out.returncode == 1
    assert "2 evals × 2 runs" in out.stdout
    assert "FAIL  0.00  eval_greeter.py::eval_finished_with_done on nested/text" in out.stdout
    assert "on ok" not in out.stdout  # passing results are listed only with -v
    assert (
        looplet("eval", "runs", "--evals", "evals", "--include", "slow", cwd=tmp_path).returncode
        == 0
    )
    assert (
        looplet("eval", "runs", "--evals", "evals", "--exclude", "done", cwd=tmp_path).returncode
        == 0
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nope", "--evals", "evals"], "TRACES 'nope' is not a directory"),
        (["eval", "runs", "--evals", "nope"], "--evals 'nope' does not exist"),
        (["eval", "empty", "--evals", "evals"], "no saved runs under 'empty'"),
        (["eval", "runs", "--evals", "empty"], "no evals found in 'empty'"),
        (["eval", "runs", "--evals", "broken"], "eval_broken.py: NameError: name 'oops'"),
        (["eval", "runs", "--evals", "evals", "--include", "x"], "none of the 1 evals matches"),
        (["eval", "runs", "--evals", "evals", "--threshold", "5"], "5 is outside [0, 1]"),
        (["eval", "runs"], "the following arguments are required: --evals"),
        (["show", "empty"], "'empty' is not a saved run"),
        ([], "usage: looplet"),
    ],
)
def test_usage_errors_exit_2_and_say_why(tmp_path: Path, args: list[str], message: str) -> None:
    save_run(tmp_path / "runs" / "one")
    write_evals(tmp_path / "evals", "def eval_ok(ctx):\n    return 1.0\n")
    write_evals(tmp_path / "broken", "oops\n", name="eval_broken.py")
    (tmp_path / "empty").mkdir()
    out = looplet(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr


def test_show_prints_a_one_page_summary(tmp_path: Path) -> None:
    save_run(tmp_path / "run", ToolCall("greet", {}), GREET, DONE)
    out = looplet("show", "run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["run: run", "task: goal: Greet Alice", "steps (3):"]
    assert lines[3].startswith("  #1 ✗ greet() → ERROR: validation:")
    assert lines[4].startswith("  #2 ✓ greet(name='Alice') → 1 keys")
    assert lines[6] == "stopped: done (Greeted Alice.)"
    assert lines[7].startswith("model calls: 3 · tokens: ")
    assert "failed steps: 1" in lines
    assert lines[-1] == 'final output: {"answer": "Greeted Alice."}'


def test_show_a_run_saved_as_steps_only(tmp_path: Path) -> None:
    run = save_run(tmp_path / "run")
    data = json.loads((run / "trajectory.json").read_text())
    (run / "trajectory.json").unlink()
    (run / "steps").mkdir()
    for step in data["steps"]:
        (run / "steps" / f"step_{step['step']:04d}.json").write_text(json.dumps(step))
    out = looplet("show", "run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "task: (not saved)" in out.stdout
    assert "stopped: unknown (the run was saved as steps only)" in out.stdout
    assert "  #2 ✓ done(answer='Greeted Alice.')" in out.stdout


def test_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["looplet"] == "looplet.cli:main"
