"""Comparing a run with a saved report: Fisher's exact test, gone and new evals, bad files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from looplet.evals.report import Report, ReportItem, ReportRun
from looplet.evals.stats import fisher_exact
from pytest_looplet.baseline import compare

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

# How many runs of each eval pass comes from the environment, so one suite gives the
# baseline run and the run compared with it.
EVALS = """
import os
import pytest

def passes(name, run):
    return run <= int(os.environ[name])

@pytest.mark.looplet(repeat=10)
def eval_drops(looplet_repetition):
    assert passes("DROPS", looplet_repetition)

@pytest.mark.looplet(repeat=10)
def eval_slips(looplet_repetition):
    assert passes("SLIPS", looplet_repetition)

@pytest.mark.looplet(repeat=2)
def eval_pair(looplet_repetition):
    assert passes("PAIR", looplet_repetition)

@pytest.mark.looplet(repeat=10)
def eval_recovers(looplet_repetition):
    assert passes("RECOVERS", looplet_repetition)

if os.environ["PHASE"] == "old":
    def eval_gone():
        pass
else:
    def eval_new():
        pass
"""

OLD = {"PHASE": "old", "DROPS": "10", "SLIPS": "10", "PAIR": "2", "RECOVERS": "2"}
NEW = {"PHASE": "new", "DROPS": "3", "SLIPS": "9", "PAIR": "1", "RECOVERS": "10"}


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(eval_base=EVALS)

    def run(env: dict[str, str], *args: str) -> pytest.RunResult:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return pytester.runpytest("-p", "pytest_looplet.plugin", "--looplet-evals", *args)

    return run


def baseline_section(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if " looplet baseline " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("==", "looplet:")))
    return lines[start + 1 : end]


def test_a_significant_drop_is_a_regression_and_small_changes_are_not(
    run: Run, pytester: pytest.Pytester
) -> None:
    run(OLD, "--looplet-report=saved/old.json", "--looplet-min-pass-rate=0").assert_outcomes(
        passed=25, failed=8
    )
    result = run(NEW, "--looplet-baseline=saved/old.json", "--looplet-min-pass-rate=0")
    assert baseline_section(result) == [
        "regressions (1):",
        "  eval_base.py::eval_drops  10/10 -> 3/10  rate -70%  score 1.00 -> 0.30  p=0.0031",
        "improvements (1):",
        "  eval_base.py::eval_recovers  2/10 -> 10/10  rate +80%  score 0.20 -> 1.00  p=0.0007",
        "unchanged (2):",
        "  eval_base.py::eval_pair  2/2 -> 1/2  rate -50%  score 1.00 -> 0.50  p=1.0000",
        "  eval_base.py::eval_slips  10/10 -> 9/10  rate -10%  score 1.00 -> 0.90  p=1.0000",
        "not in this run (1):",
        "  eval_base.py::eval_gone",
        "new in this run (1):",
        "  eval_base.py::eval_new",
    ]
    # Every repeated eval reaches the min pass rate 0: only the regression fails the run,
    # and only when asked to.
    assert result.ret == pytest.ExitCode.OK
    strict = run(
        NEW,
        "--looplet-baseline=saved/old.json",
        "--looplet-min-pass-rate=0",
        "--looplet-fail-on-regression",
    )
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["looplet: 1 regression(s) against the baseline*"])


def test_the_comparison_uses_fishers_exact_test() -> None:
    assert fisher_exact(10, 0, 3, 7) == pytest.approx(0.003096, abs=1e-6)
    assert fisher_exact(10, 0, 9, 1) == 1.0
    assert fisher_exact(2, 0, 1, 1) == 1.0
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(0.485714, abs=1e-6)

    def doc(passes: int, runs: int) -> Report:
        items = [
            ReportItem(nodeid=f"e[{i}]", eval="e", verdict="PASS" if i < passes else "FAIL")
            for i in range(runs)
        ]
        return Report.of(items, ReportRun())

    assert [c.kind for c in compare(doc(10, 10), doc(3, 10), path="x").changes] == ["regression"]
    assert [c.kind for c in compare(doc(10, 10), doc(9, 10), path="x").changes] == ["unchanged"]
    assert [c.kind for c in compare(doc(2, 2), doc(1, 2), path="x").changes] == ["unchanged"]
    assert [c.kind for c in compare(doc(0, 8), doc(8, 8), path="x").changes] == ["improvement"]


def test_a_sharded_run_counts_but_does_not_list_the_other_shards_evals(
    run: Run, pytester: pytest.Pytester
) -> None:
    run(OLD, "--looplet-report=old.json")
    # eval_gone has one item, so one of the two shards runs none of it.
    sections = [
        baseline_section(run(OLD, "--looplet-baseline=old.json", f"--looplet-shard={i}/2"))
        for i in (1, 2)
    ]
    assert any(line.startswith("not in this shard: ") for lines in sections for line in lines)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{not json", "(file): not JSON"),
        ('["a list"]', "(top level): expected an object, got list"),
        ('{"schema": "junit", "version": 1}', "schema: expected 'looplet-report', got 'junit'"),
        ('{"schema": "looplet-report", "version": 7}', "version: version 7 is newer*"),
        (
            '{"schema": "looplet-report", "version": 1, "run": {}, "evals": [{"eval": "e", '
            '"items": [{"nodeid": "e", "eval": "e", "repetition": 1, "repetitions": 1, '
            '"verdict": "MAYBE", "score": 1}]}]}',
            "evals[[]0[]].items[[]0[]].verdict: expected one of PASS, FAIL*got 'MAYBE'",
        ),
        (
            '{"schema": "looplet-report", "version": 1, "run": {}, "evals": [{"eval": "e", '
            '"items": [{"nodeid": "e", "eval": "e", "repetition": 1, "repetitions": 1, '
            '"verdict": "PASS", "score": 3}]}]}',
            "evals[[]0[]].items[[]0[]].score: expected null or a number in [[]0, 1[]], got 3",
        ),
    ],
)
def test_a_corrupt_or_foreign_baseline_is_a_usage_error_naming_file_and_field(
    run: Run, pytester: pytest.Pytester, content: str, field: str
) -> None:
    Path(pytester.path / "old.json").write_text(content)
    result = run(OLD, "--looplet-baseline=old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*looplet: --looplet-baseline *old.json: field {field}*"])


def test_a_missing_baseline_is_a_usage_error(run: Run) -> None:
    result = run(OLD, "--looplet-baseline=nowhere/old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--looplet-baseline *nowhere/old.json: field (file): cannot read*"]
    )


def test_a_saved_report_round_trips_as_a_baseline(run: Run, pytester: pytest.Pytester) -> None:
    run(OLD, "--looplet-report=old.json")
    doc = json.loads((pytester.path / "old.json").read_text())
    result = run(OLD, "--looplet-baseline=old.json")
    assert baseline_section(result)[:4] == [
        "regressions (0)",
        "improvements (0)",
        "unchanged (5):",
        "  eval_base.py::eval_drops  10/10 -> 10/10  rate +0%  score 1.00 -> 1.00  p=1.0000",
    ]
    assert len(doc["evals"]) == 5
