"""The JSON and HTML reports, budgets, shards and merged reports, with and without xdist."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import pytest

from looplet.evals.report import MergeError, merge_reports

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

CONFTEST = """
import pytest
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Usage
from pytest_looplet.scoring import record_trajectory

@pytest.fixture
def agent(request, looplet_model):
    def run(steps, tokens, fail_step=None):
        trajectory = Trajectory(
            steps=[
                Step(n, ToolCall("greet", {"name": "x" * 500}),
                     ToolResult("greet", error="boom " + "y" * 500) if n == fail_step
                     else ToolResult("greet", data={"greeting": "hi"}))
                for n in range(1, steps + 1)
            ],
            usage=Usage(tokens - tokens // 4, tokens // 4),
            stop_reason=StopReason.DONE,
        )
        record_trajectory(request, trajectory)
        return trajectory
    return run
"""

EVALS = """
import pytest

def eval_greets(agent):
    agent(2, 1000, fail_step=2)
    return 0.9

def eval_zero(agent):
    agent(1, 100)
    return 0.0

def eval_raises(agent):
    agent(1, 100)
    raise RuntimeError("tool exploded")

@pytest.mark.looplet(repeat=3)
def eval_flaky(agent, looplet_repetition):
    agent(looplet_repetition, 100)
    assert looplet_repetition != 2, "second run fails"

@pytest.mark.parametrize("name", ["alice", "bob"])
def eval_names(agent, name):
    agent(1, 10)
    return {"score": 1.0, "length": len(name)}

def eval_plain():
    return 1
"""

TIMING_KEYS = {"duration_s", "started", "finished", "workers", "args", "elapsed_ms", "ms"}


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_report=EVALS)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(
            "-p", "pytest_looplet.plugin", "-p", "xdist", "--looplet-evals", *args
        )

    return run


def untimed(value: Any) -> Any:
    """``value`` without the keys that differ from one run to the next."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def verdicts_in_summary(result: pytest.RunResult) -> dict[str, str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if " looplet evals " in line)
    found = {}
    for line in lines[start + 1 :]:
        if line.startswith("=="):
            break
        names = [token for token in line.split() if "::" in token]
        if names:
            found[names[0]] = line.split()[0]
    return found


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_summary_json_and_html_agree_with_and_without_xdist(
    run: Run, pytester: pytest.Pytester
) -> None:
    runs = {}
    for workers in ("0", "2"):
        out = pytester.path / "out" / f"n{workers}" / "deeper"  # folders that do not exist
        result = run(
            "-n", workers, f"--looplet-report={out / 'r.json'}", f"--looplet-html={out / 'r.html'}"
        )
        result.assert_outcomes(passed=6, failed=3)
        runs[workers] = (result, load(out / "r.json"), (out / "r.html").read_text("utf-8"))
    (serial, doc, page), (parallel, doc2, page2) = runs["0"], runs["2"]
    assert untimed(doc2) == untimed(doc)
    assert doc2["run"]["workers"] == 2 and doc["run"]["workers"] == 0
    verdicts = {entry["eval"]: entry["verdict"] for entry in doc["evals"]}
    assert verdicts_in_summary(serial) == verdicts_in_summary(parallel) == verdicts
    assert verdicts["eval_report.py::eval_flaky"] == "FAIL"
    for html in (page, page2):
        for entry in doc["evals"]:
            assert f"class='{entry['verdict']}' data-eval='{escape(entry['eval'])}'" in html
            for item in entry["items"]:
                assert escape(item["nodeid"]) in html


def test_the_report_has_runs_items_steps_usage_and_cost(
    run: Run, pytester: pytest.Pytester
) -> None:
    run("-n", "2", "--looplet-report=r.json").assert_outcomes(passed=6, failed=3)
    doc = load(pytester.path / "r.json")
    assert (doc["schema"], doc["version"]) == ("looplet-report", 1)
    assert doc["run"]["options"]["threshold"] == 0.5 and doc["run"]["looplet_version"]
    evals = {entry["eval"]: entry for entry in doc["evals"]}
    assert list(evals) == sorted(evals)
    zero = evals["eval_report.py::eval_zero"]["items"][0]
    assert (zero["verdict"], zero["score"]) == ("FAIL", 0.0)
    assert "scored 0, below the threshold 0.5" in zero["message"]
    raises = evals["eval_report.py::eval_raises"]["items"][0]
    assert (raises["verdict"], raises["error"]) == ("FAIL", "RuntimeError")  # as pytest says
    assert "tool exploded" in raises["message"]
    greets = evals["eval_report.py::eval_greets"]["items"][0]
    steps = greets["trajectory"]["steps"]
    assert [(s["n"], s["tool"], s["ok"]) for s in steps] == [
        (1, "greet", True),
        (2, "greet", False),
    ]
    assert len(steps[0]["args"]) == 200 and steps[0]["args"].endswith("…")
    assert steps[0]["result"] == '{"greeting": "hi"}'
    assert steps[1]["error"].startswith("boom yyy") and len(steps[1]["error"]) == 200
    assert greets["trajectory"]["usage"] == {
        "input_tokens": 750,
        "output_tokens": 250,
        "total_tokens": 1000,
    }
    assert greets["trajectory"]["model"] == "gpt-4o-mini"
    assert greets["cost_usd"] == pytest.approx((750 * 0.15 + 250 * 0.60) / 1e6)
    assert greets["duration_s"] >= 0 and greets["score"] == 0.9
    names = evals["eval_report.py::eval_names[alice]"]["items"][0]
    assert names["metrics"] == {"length": 5.0}
    flaky = evals["eval_report.py::eval_flaky"]
    assert [item["verdict"] for item in flaky["items"]] == ["PASS", "FAIL", "PASS"]
    assert [item["nodeid"] for item in flaky["items"]] == [
        f"eval_report.py::eval_flaky[rep{i}of3]" for i in (1, 2, 3)
    ]
    assert (flaky["passes"], flaky["runs"], flaky["flaky"]) == (2, 3, True)
    assert flaky["pass_at"] == {"1": pytest.approx(2 / 3), "2": 1.0, "3": 1.0}
    assert flaky["pass_hat"] == {"1": pytest.approx(2 / 3), "2": pytest.approx(1 / 3), "3": 0.0}
    assert doc["totals"]["verdicts"] == {"PASS": 4, "FAIL": 3}
    assert doc["totals"]["flaky"] == 1 and doc["totals"]["items"] == 9


def test_the_html_page_loads_nothing_and_lists_failures_first(
    run: Run, pytester: pytest.Pytester
) -> None:
    run("--looplet-html=report.html")
    page = (pytester.path / "report.html").read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<details") >= 9
    assert "http:" not in page and "https:" not in page and "//" not in page
    assert not re.search(r"<(script|img|iframe|link)[^>]*\s(src|href)=", page, re.IGNORECASE)
    assert not re.search(r"\shref=['\"](?!#)", page) and "url(" not in page
    start = page.index("<table class='evals'>")
    table = page[start : page.index("</table>", start)]
    order = re.findall(r"data-eval='([^']+)'", table)
    # Failing evals first (those that always fail before the flaky ones), then the rest.
    assert order[:3] == [
        "eval_report.py::eval_raises",
        "eval_report.py::eval_zero",
        "eval_report.py::eval_flaky",
    ]
    # the failed step, with its preview
    assert "<div class='kv error'><span class='k'>error</span>" in page
    assert escape("boom yyy") in page
    assert "pass@k" in table and "95% CI" in table  # eval_flaky is repeated


def test_the_html_page_hides_the_repetition_columns_when_nothing_is_repeated(
    run: Run, pytester: pytest.Pytester
) -> None:
    run("--looplet-html=report.html", "-k", "not flaky")
    page = (pytester.path / "report.html").read_text("utf-8")
    start = page.index("<table class='evals'>")
    table = page[start : page.index("</table>", start)]
    head = re.findall(r"<th[^>]*>([^<]+)</th>", table[: table.index("</thead>")])
    assert head == ["result", "eval", "score", "steps", "tokens", "cost", "time"]
    rows = re.findall(r"<tr class=[^>]*>(.*?)</tr>", table)
    assert rows and all(row.count("<td") == len(head) for row in rows)


BUDGETS = """
import pytest

@pytest.mark.looplet(max_steps=2)
def eval_many_steps(agent):
    agent(3, 100)

@pytest.mark.looplet(max_tokens=500)
def eval_many_tokens(agent):
    agent(1, 800)

@pytest.mark.looplet(max_cost=0.0001)
def eval_costly(agent):
    agent(1, 1_000_000)

@pytest.mark.looplet(max_steps=5, max_tokens=500, max_cost=1.0)
def eval_within(agent):
    agent(3, 400)

@pytest.mark.looplet(max_cost=1.0)
def eval_untracked():
    return 1.0
"""


def test_budgets_fail_an_eval_with_its_figures(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(eval_report=BUDGETS)
    result = run("--looplet-report=r.json")
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines_random(
        [
            "eval eval_many_steps is over budget: 3 steps > max_steps=2",
            "eval eval_many_tokens is over budget: 800 tokens (600 in, 200 out) > max_tokens=500",
            "eval eval_costly is over budget: $0.262500 > max_cost=$0.0001 (gpt-4o-mini: "
            "750000 input, 250000 output tokens)",
            "eval eval_untracked is over budget: max_cost=$1 but the eval recorded no trajectory*",
        ]
    )
    items = {e["eval"]: e["items"][0] for e in load(pytester.path / "r.json")["evals"]}
    assert items["eval_report.py::eval_costly"]["budget_exceeded"] == ["max_cost"]
    assert items["eval_report.py::eval_within"]["verdict"] == "PASS"


def test_prices_come_from_the_table_or_a_looplet_prices_file(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(eval_report=BUDGETS)
    pytester.makeini("[pytest]\nlooplet_prices = prices.json\n")
    (pytester.path / "prices.json").write_text('{"house-model": {"input": 3000, "output": 3000}}')
    result = run("--looplet-model=house-model", "-k", "within")
    result.stdout.fnmatch_lines(["*$1.200000 > max_cost=$1 (house-model: 300 input, 100 output*"])
    result = run("--looplet-model=unknown-model", "-k", "within")
    result.stdout.fnmatch_lines(["*max_cost=$1 needs a price for model 'unknown-model'*"])
    # Dated names match their model's entry.
    run("--looplet-model=gpt-4o-mini-2024-07-18", "-k", "within").assert_outcomes(passed=1)
    (pytester.path / "prices.json").write_text('{"house-model": {"input": "cheap"}}')
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*looplet_prices: *prices.json: field house-model.input: expected a number*'cheap'*"]
    )


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_shards_cover_every_eval_item_exactly_once(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unit="def test_unit():\n    pass\n")
    everything = collected(run("--collect-only", "-q", "--looplet-repeat=4"))
    assert len(everything) == 1 + 4 * 6 + 3  # eval_flaky keeps its marker's 3 runs
    shards = [
        collected(run("--collect-only", "-q", "--looplet-repeat=4", f"--looplet-shard={i}/3"))
        for i in (1, 2, 3)
    ]
    evals = [name for shard in shards for name in shard if "eval_" in name]
    assert sorted(evals) == sorted(name for name in everything if "eval_" in name)
    assert all(shard and "test_unit.py::test_unit" in shard for shard in shards)
    # Deterministic: the same split every time.
    again = run("--collect-only", "-q", "--looplet-repeat=4", "--looplet-shard=2/3")
    assert collected(again) == shards[1]


@pytest.mark.parametrize("value", ["0/3", "4/3", "-1/3", "1/0", "a/b", "2", "1/3/5"])
def test_a_bad_shard_is_a_usage_error(run: Run, value: str) -> None:
    result = run(f"--looplet-shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--looplet-shard / looplet_shard must be I/N*not '{value}'*"])


def test_merged_shard_reports_equal_the_whole_run(run: Run, pytester: pytest.Pytester) -> None:
    run("--looplet-report=all.json")
    for i in (1, 2):
        run(f"--looplet-shard={i}/2", f"--looplet-report=shard{i}.json")
    merged = merge_reports([pytester.path / "shard1.json", pytester.path / "shard2.json"])
    whole = load(pytester.path / "all.json")
    assert untimed(merged.to_json()["evals"]) == untimed(whole["evals"])
    assert merged.to_json()["totals"] == whole["totals"]
    assert [source.shard for source in merged.run.merged_from or []] == ["1/2", "2/2"]
    with pytest.raises(MergeError, match=r"eval_report.py::\S+ is also in .*all.json"):
        merge_reports([pytester.path / "all.json", pytester.path / "all.json"])


def test_looplet_merge_joins_shard_reports_from_the_command_line(
    run: Run, pytester: pytest.Pytester
) -> None:
    import subprocess
    import sys

    for i in (1, 2):
        run(f"--looplet-shard={i}/2", f"--looplet-report=shard{i}.json")
    out = subprocess.run(
        [sys.executable, "-m", "looplet", "merge", "merged.json", "shard1.json", "shard2.json"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "merged 2 reports" in out.stdout
    merged = load(pytester.path / "merged.json")
    direct = merge_reports([pytester.path / "shard1.json", pytester.path / "shard2.json"])
    assert merged["evals"] == direct.to_json()["evals"]
    assert merged["totals"] == direct.to_json()["totals"]
    twice = subprocess.run(
        [sys.executable, "-m", "looplet", "merge", "x.json", "shard1.json", "shard1.json"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert twice.returncode == 2 and "shard 1/2 is given twice" in twice.stderr


SUBAGENT_BUDGETS = """
import pytest
from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Usage
from pytest_looplet.scoring import record_trajectory

def _run(request):
    child = Trajectory(usage=Usage(300, 100), parent_step=1, stop_reason=StopReason.DONE)
    parent = Trajectory(
        steps=[Step(1, ToolCall("research", {"task": "x"}), ToolResult("research", data="ok"))],
        usage=Usage(30, 10),
        stop_reason=StopReason.DONE,
        children=[child],
    )
    record_trajectory(request, parent)

@pytest.mark.looplet(max_tokens=100)
def eval_delegates(request):
    _run(request)
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_sub_agents_tokens_count_against_the_evals_budget_and_figures(
    run: Run, pytester: pytest.Pytester, workers: str
) -> None:
    pytester.makepyfile(eval_subagent=SUBAGENT_BUDGETS)
    result = run(
        "--looplet-report=r.json", "--looplet-model=gpt-4o-mini", "-n", workers, "eval_subagent.py"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*eval eval_delegates is over budget: 440 tokens (330 in, 110 out) > max_tokens=100*"]
    )
    item = load(pytester.path / "r.json")["evals"][0]["items"][0]
    assert item["tokens"] == 440
    assert item["cost_usd"] == pytest.approx((330 * 0.15 + 110 * 0.6) / 1e6)
