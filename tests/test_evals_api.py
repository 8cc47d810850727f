"""The eval API (EvalContext, eval_discover, eval_mark, eval_run, eval_run_batch, EvalHook).

Each of the original looplet's false greens has a test here: a 0.0 score dropped, a default
threshold of 0, errors and skips ignored, imported functions collected as graders,
same-named eval files colliding, and EvalHook never capturing the task.
"""

from __future__ import annotations

import io
import json
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

from looplet import StopReason, ToolCall, Trajectory, composable_loop
from looplet.evals import (
    DEFAULT_THRESHOLD,
    EvalContext,
    EvalHook,
    EvalImportError,
    EvalResult,
    TrajectoryLoadError,
    eval_discover,
    eval_mark,
    eval_run,
    eval_run_batch,
)
from looplet.testing import MockLLMBackend
from tests.conftest import RunLoop, make_tools

GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})
TASK = {"goal": "Greet Alice"}


def greet_run(*script: Any, task: Any = TASK) -> Trajectory:
    loop = composable_loop(
        llm=MockLLMBackend(list(script or (GREET, DONE))), tools=make_tools(), task=task
    )
    list(loop)
    return loop.trajectory


@pytest.fixture
def ctx() -> EvalContext:
    return EvalContext.from_trajectory(greet_run())


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


# -- results and the threshold ---------------------------------------------------------------


def test_zero_score_is_kept_and_fails(ctx: EvalContext) -> None:
    def eval_zero(ctx: EvalContext) -> dict[str, float]:
        return {"score": 0.0, "f1": 0.9, "accuracy": 1.0}

    [result] = eval_run([eval_zero], ctx)
    assert result.score == 0.0
    assert result.metrics == {"f1": 0.9, "accuracy": 1.0}
    assert not result.passed()


def test_default_threshold_is_one_half_not_zero() -> None:
    assert DEFAULT_THRESHOLD == 0.5
    assert not EvalResult(0.49).passed()
    assert EvalResult(0.5).passed()
    assert not EvalResult(0.0).passed()


def test_result_keeps_the_original_keyword_construction() -> None:
    old = EvalResult(
        name="x", score=0.7, label="ok", metrics={}, details={}, explanation="", duration_ms=3.0
    )
    assert (old.name, old.score, old.duration_ms) == ("x", 0.7, 3.0)
    assert EvalResult(0.7, "ok", name="x").label == "ok"
    with pytest.raises(TypeError, match="a score is a number"):
        EvalResult(None)  # type: ignore[arg-type]
    assert not EvalResult(None, label="error").passed(0.0)


# -- eval_run ----------------------------------------------------------------------------------


def test_raising_grader_is_an_error_with_its_traceback_and_never_passes(
    ctx: EvalContext,
) -> None:
    def eval_boom(ctx: EvalContext) -> float:
        raise KeyError("missing")

    def eval_fine(ctx: EvalContext) -> float:
        return 1.0

    boom, fine = eval_run([eval_boom, eval_fine], ctx)
    assert (boom.name, boom.label, boom.score) == ("eval_boom", "error", None)
    assert boom.explanation == "raised KeyError: 'missing'"
    assert 'raise KeyError("missing")' in boom.details["traceback"]
    assert "eval_run" not in boom.details["traceback"]
    assert not boom.passed(0.0)
    assert fine.passed()


def test_failed_assert_scores_zero(ctx: EvalContext) -> None:
    def eval_two_steps(ctx: EvalContext) -> None:
        assert ctx.step_count == 5, f"took {ctx.step_count} steps"

    [result] = eval_run([eval_two_steps], ctx)
    assert (result.score, result.label) == (0.0, "fail")
    assert result.explanation.startswith("took 2 steps")  # pytest adds its rewrite below
    assert not result.passed()


def test_unusable_return_is_an_error(ctx: EvalContext) -> None:
    def eval_label_only(ctx: EvalContext) -> str:
        return "pass"

    [result] = eval_run([eval_label_only], ctx)
    assert (result.label, result.score) == ("error", None)
    assert "'pass' (str)" in result.explanation


def test_grader_needing_a_judge_is_skipped_without_one(ctx: EvalContext) -> None:
    seen: list[Any] = []

    def eval_tone(ctx: EvalContext, llm: Any) -> float:
        seen.append(llm)
        return 1.0

    def eval_own_threshold(ctx: EvalContext, cutoff: float = 0.3) -> bool:
        return cutoff == 0.3

    skipped, own = eval_run([eval_tone, eval_own_threshold], ctx)
    assert (skipped.label, skipped.score, seen) == ("skipped", None, [])
    assert "needs a judge model" in skipped.explanation
    assert not skipped.passed(0.0)
    assert own.passed()

    judge = object()
    judged, own = eval_run([eval_tone, eval_own_threshold], ctx, judge_llm=judge)
    assert judged.passed() and seen == [judge]
    assert own.passed()  # the judge is not handed to a parameter with a default


def test_eval_run_accepts_a_trajectory() -> None:
    def eval_done(ctx: EvalContext) -> bool:
        return ctx.stop_reason is StopReason.DONE

    [result] = eval_run(eval_done, greet_run())
    assert result.passed()


def test_eval_mark_selects_by_tag(ctx: EvalContext) -> None:
    @eval_mark("fast")
    def eval_a(ctx: EvalContext) -> float:
        return 1.0

    @eval_mark("slow")
    @eval_mark("judge")
    def eval_b(ctx: EvalContext) -> float:
        return 1.0

    def eval_c(ctx: EvalContext) -> float:
        return 1.0

    def names(**kw: Any) -> list[str]:
        return [r.name for r in eval_run([eval_a, eval_b, eval_c], ctx, **kw)]

    assert names() == ["eval_a", "eval_b", "eval_c"]
    assert names(include=["judge"]) == ["eval_b"]
    assert names(include="fast") == ["eval_a"]
    assert names(exclude=("slow",)) == ["eval_a", "eval_c"]
    with pytest.raises(TypeError, match=r"@eval_mark\('tag'\)"):
        eval_mark(eval_a)  # type: ignore[arg-type]


def test_eval_run_batch_rows_count_errors_and_skips(ctx: EvalContext) -> None:
    other = EvalContext.from_trajectory(greet_run("plain answer"))

    def eval_done(ctx: EvalContext) -> float:
        return 1.0 if ctx.stop_reason is StopReason.DONE else 0.0

    def eval_needs_done(ctx: EvalContext) -> float:
        return 1.0 if ctx.final_output["answer"] else 0.0

    def eval_judge(ctx: EvalContext, llm: Any) -> float:
        return 1.0

    done, needs, judge = eval_run_batch([eval_done, eval_needs_done, eval_judge], [ctx, other])
    assert done["name"] == "eval_done"
    assert (done["scores"], done["runs"], done["avg"], done["min"], done["max"]) == (
        [1.0, 0.0],
        2,
        0.5,
        0.0,
        1.0,
    )
    assert (done["passed"], done["failed"], done["ok"]) == (1, 1, False)
    assert [r.score for r in done["per_run"]] == [1.0, 0.0]
    assert (needs["scores"], needs["errors"], needs["avg"], needs["ok"]) == (
        [1.0, None],
        1,
        1.0,
        False,
    )
    assert (judge["skipped"], judge["avg"], judge["ok"]) == (2, None, False)
    [only] = eval_run_batch([eval_done], [ctx, ctx])
    assert only["ok"]


# -- EvalContext -----------------------------------------------------------------------------


def test_context_from_trajectory(ctx: EvalContext) -> None:
    assert ctx.task == TASK
    assert ctx.tool_sequence == ["greet", "done"]
    assert (ctx.step_count, ctx.errors, ctx.stop_reason) == (2, [], StopReason.DONE)
    assert ctx.final_output == {"answer": "Greeted Alice."}
    assert ctx.session_log_text.splitlines()[0].startswith("#1 ✓ greet(name='Alice')")
    text = EvalContext.from_trajectory(greet_run(GREET, "Alice is greeted."))
    assert text.final_output == "Alice is greeted."
    assert text.stop_reason is StopReason.FINAL_TEXT


def test_context_from_trajectory_json(tmp_path: Path) -> None:
    traj = greet_run(ToolCall("greet", {}), GREET, DONE)
    (tmp_path / "trajectory.json").write_text(json.dumps(traj.to_dict()), encoding="utf-8")
    ctx = EvalContext.from_trajectory_dir(tmp_path)
    assert ctx.task == TASK
    assert ctx.final_output == {"answer": "Greeted Alice."}
    assert ctx.stop_reason is StopReason.DONE
    assert [s.to_dict() for s in ctx.steps] == [s.to_dict() for s in traj.steps]
    assert [s.number for s in ctx.errors] == [1]
    assert ctx.errors[0].tool_result.error_kind is traj.steps[0].tool_result.error_kind
    assert ctx.trajectory is not None and ctx.trajectory.usage == traj.usage
    assert ctx.trajectory.called("greet", name="Alice")
    assert ctx.metadata["path"] == str(tmp_path)


def test_context_from_steps_only_orders_by_step_number(tmp_path: Path) -> None:
    traj = greet_run(*([GREET] * 10), DONE)
    for step in traj.steps:  # step_2.json sorts after step_10.json by name
        path = tmp_path / "steps" / f"step_{step.number}.json"
        write(path, json.dumps(step.to_dict()))
    ctx = EvalContext.from_trajectory_dir(tmp_path)
    assert [s.number for s in ctx.steps] == list(range(1, 12))
    assert (ctx.task, ctx.stop_reason) == (None, None)
    assert ctx.final_output == {"answer": "Greeted Alice."}


def test_unreadable_saved_run_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryLoadError, match=r"neither trajectory\.json nor steps"):
        EvalContext.from_trajectory_dir(tmp_path)
    bad = write(tmp_path / "trajectory.json", '{"steps": [')
    with pytest.raises(TrajectoryLoadError, match="not valid JSON") as info:
        EvalContext.from_trajectory_dir(tmp_path)
    assert info.value.path == bad
    write(bad, '{"steps": [{"tool_call": {}}]}')
    with pytest.raises(TrajectoryLoadError, match="a step needs 'tool_call'"):
        EvalContext.from_trajectory_dir(tmp_path)


# -- eval_discover ---------------------------------------------------------------------------


def test_discover_collects_only_functions_defined_in_the_file(tmp_path: Path) -> None:
    write(tmp_path / "helpers.py", "def eval_helper(ctx):\n    return 0.0\n")
    write(
        tmp_path / "eval_greeter.py",
        """
        from looplet.evals import eval_discover, eval_mark, eval_run, eval_run_batch
        from helpers import eval_helper

        @eval_mark("fast")
        def eval_greets(ctx):
            return ctx.tool_sequence[0] == "greet"

        def not_an_eval(ctx):
            return 0.0

        def eval_answers(ctx):
            return ctx.final_output is not None
        """,
    )
    evals = eval_discover(tmp_path)
    assert [fn.__name__ for fn in evals] == ["eval_greets", "eval_answers"]
    results = eval_run(evals, EvalContext.from_trajectory(greet_run()), include=["fast"])
    assert [(r.name, r.score) for r in results] == [("eval_greeter.py::eval_greets", 1.0)]


def test_same_named_files_in_two_folders_are_both_collected(tmp_path: Path) -> None:
    for folder, score in (("a", 0.25), ("b", 0.75)):
        write(
            tmp_path / folder / "eval_x.py",
            f"SCORE = {score}\ndef eval_x(ctx):\n    return SCORE\n",
        )
    evals = eval_discover(tmp_path)
    results = eval_run(evals, EvalContext.from_trajectory(greet_run()))
    assert [(r.name, r.score) for r in results] == [
        ("a/eval_x.py::eval_x", 0.25),
        ("b/eval_x.py::eval_x", 0.75),
    ]
    rows = eval_run_batch(evals, [greet_run()])
    assert [row["avg"] for row in rows] == [0.25, 0.75]
    # Each grader's module is its own entry in sys.modules, so both pickle (multiprocessing).
    assert [pickle.loads(pickle.dumps(fn)) for fn in evals] == evals


def test_file_that_fails_to_import_is_reported_not_skipped(tmp_path: Path) -> None:
    write(tmp_path / "eval_good.py", "def eval_ok(ctx):\n    return 1.0\n")
    write(tmp_path / "sub" / "eval_bad.py", "import os\n\nraise RuntimeError('no API key')\n")
    write(tmp_path / "eval_syntax.py", "def eval_oops(ctx)\n    return 1\n")
    with pytest.raises(EvalImportError) as info:
        eval_discover(tmp_path)
    message = str(info.value)
    assert "2 eval file(s) failed to import" in message
    assert "eval_bad.py: RuntimeError: no API key (line 3)" in message
    assert "eval_syntax.py: SyntaxError" in message
    assert [p.name for p, _ in info.value.failures] == ["eval_syntax.py", "eval_bad.py"]


def test_discover_a_single_file_and_a_missing_path(tmp_path: Path) -> None:
    file = write(tmp_path / "checks.py", "def eval_one(ctx):\n    return 1.0\n")
    assert [fn.__name__ for fn in eval_discover(file)] == ["eval_one"]
    assert eval_discover(tmp_path) == []  # checks.py does not match eval_*.py
    with pytest.raises(FileNotFoundError, match="does not exist"):
        eval_discover(tmp_path / "nope")


# -- EvalHook ----------------------------------------------------------------------------------


def test_eval_hook_captures_the_task_and_grades_at_loop_end(run_loop: RunLoop) -> None:
    def eval_task_seen(ctx: EvalContext) -> bool:
        return ctx.task == TASK

    def eval_greeted(ctx: EvalContext) -> float:
        return 1.0 if ctx.tool_sequence == ["greet", "done"] else 0.0

    def eval_boom(ctx: EvalContext) -> float:
        raise RuntimeError("grader bug")

    out = io.StringIO()
    hook = EvalHook([eval_task_seen, eval_greeted, eval_boom], verbose=True, stream=out)
    steps, traj = run_loop(
        llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task=TASK, hooks=[hook]
    )
    assert traj.stop_reason is StopReason.DONE and len(steps) == 2
    assert hook.task == TASK
    assert [(r.name, r.score, r.label) for r in hook.results] == [
        ("eval_task_seen", 1.0, ""),
        ("eval_greeted", 1.0, ""),
        ("eval_boom", None, "error"),
    ]
    assert not hook.all_passed()
    lines = out.getvalue().splitlines()
    assert lines[0] == "eval PASS   1.00 eval_task_seen"
    assert lines[2] == "eval ERROR     - eval_boom [error]: raised RuntimeError: grader bug"


def test_eval_hook_results_are_per_run(run_loop: RunLoop) -> None:
    def eval_steps(ctx: EvalContext) -> float:
        return 1.0 if ctx.step_count == 1 else 0.0

    hook = EvalHook([eval_steps])
    run_loop(llm=MockLLMBackend([DONE]), tools=make_tools(), task="one", hooks=[hook])
    assert hook.all_passed() and hook.task == "one"
    run_loop(llm=MockLLMBackend([GREET, DONE]), tools=make_tools(), task="two", hooks=[hook])
    assert [r.score for r in hook.results] == [0.0]
    assert hook.task == "two" and not hook.all_passed()
