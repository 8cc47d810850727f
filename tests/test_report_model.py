"""The typed report (``looplet.evals.report_model``): one name per figure from the eval to the
JSON, HTML and JUnit files; reports written before it (``tests/data/reports_v1``) still load,
merge, render and serve as baselines; items and figures round-trip.

The runs here are ``pytest --looplet-evals evals`` in a subprocess, at ``-n 0`` and ``-n 2``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from looplet.errors import LoopletError
from looplet.evals.report import (
    MergeError,
    Report,
    ReportError,
    ReportItem,
    load_report,
    merge_reports,
)
from looplet.evals.report_model import Figures
from pytest_looplet.html import render

pytest_plugins = ["pytester"]

V1 = Path(__file__).parent / "data" / "reports_v1"
WORKERS = pytest.mark.parametrize("workers", ["0", "2"], ids=["n0", "n2"])
Run = Callable[..., pytest.RunResult]


def suite_files() -> dict[str, str]:
    """The eval suite the v1 files were written from, as its README gives it."""
    text = (V1 / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"`(evals/[\w.]+)`:\n\n```\w+\n(.*?)```", text, re.S)
    return dict(blocks)


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``pytest --looplet-evals evals ...`` on the v1 suite, in a subprocess."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for path, source in suite_files().items():
        (pytester.path / path).parent.mkdir(exist_ok=True)
        (pytester.path / path).write_text(source, encoding="utf-8")

    def run(*args: str) -> pytest.RunResult:
        plugins = ("-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider")
        model = ("--looplet-model", "gpt-4o-mini")
        return pytester.runpytest_subprocess(*plugins, "--looplet-evals", "evals", *model, *args)

    return run


# ------------------------------------------------------------------ files of version 1


@pytest.mark.parametrize("name", ["whole", "shard-1", "shard-2"])
def test_a_v1_report_loads_and_writes_back_as_it_was(name: str) -> None:
    """Every field of a file written before the typed report is read, and written back the
    same, key for key and in the same order; figures added since follow, at their defaults."""
    text = (V1 / f"{name}.json").read_text(encoding="utf-8")
    report = load_report(V1 / f"{name}.json")
    assert isinstance(report, Report)
    v1_keys = set(json.loads(text)["evals"][0]["items"][0])
    written = report.to_json()
    for item in (item for entry in written["evals"] for item in entry["items"]):
        assert all(item.pop(k) in (None, [], {}) for k in [k for k in item if k not in v1_keys])
    assert json.dumps(written, indent=1, ensure_ascii=False) + "\n" == text


def test_v1_shards_merge_into_the_whole_run_and_render() -> None:
    merged = merge_reports([V1 / "shard-1.json", V1 / "shard-2.json"])
    whole = load_report(V1 / "whole.json")
    assert [item.nodeid for item in merged.items] == [item.nodeid for item in whole.items]
    assert [(e.eval, e.verdict, e.runs, e.passes, e.steps, e.tokens) for e in merged.evals] == [
        (e.eval, e.verdict, e.runs, e.passes, e.steps, e.tokens) for e in whole.evals
    ]
    assert merged.totals.cost_usd == pytest.approx(whole.totals.cost_usd)
    assert [m.shard for m in merged.run.merged_from or []] == ["1/2", "2/2"]
    assert merged.run.partial is False
    page = render(merged)
    assert "evals/eval_suite.py::eval_flaky" in page and "greeted once" in page
    with pytest.raises(MergeError, match="shard 2/2 is missing"):
        merge_reports([V1 / "shard-1.json"])


def test_looplet_merge_reads_v1_shards(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "looplet", "merge", str(tmp_path / "all.json"),
         str(V1 / "shard-1.json"), str(V1 / "shard-2.json")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "merged 2 reports (13 evals)" in out.stdout
    assert len(load_report(tmp_path / "all.json").items) == 15


def test_a_v1_report_is_a_baseline_of_a_run_of_today(run: Run) -> None:
    result = run("-n", "2", f"--looplet-baseline={V1 / 'whole.json'}")
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if " looplet baseline " in line)
    assert lines[start + 1 : start + 4] == [
        "regressions (0)",
        "improvements (0)",
        "unchanged (13):",
    ]


# ------------------------------------------------------------------ one name end to end


ADDED_EVALS = """
from looplet.assertions import assert_trajectory

def eval_diverges(agent):  # divergence
    assert_trajectory(agent(2, 100), ["greet", "done"])

import pytest

@pytest.mark.looplet(models=["m1", "anthropic:m2"])
def eval_on_models(looplet_model):  # model
    return 1.0
"""


@WORKERS
def test_every_looplet_property_is_the_json_field_of_the_same_name(
    run: Run, pytester: pytest.Pytester, workers: str
) -> None:
    """The figures an eval records reach the JUnit XML as ``looplet_<field>`` and the JSON
    report as ``<field>``, with the same value, whatever the number of workers."""
    # Figures added after the v1 suite, recorded by evals of their own.
    (pytester.path / "evals" / "eval_added.py").write_text(ADDED_EVALS, encoding="utf-8")
    result = run("-n", workers, "--looplet-report=r.json", "--junitxml=j.xml")
    result.assert_outcomes(passed=10, failed=6, skipped=1, xfailed=1)
    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    items = {item["nodeid"].split("::")[1]: item for e in doc["evals"] for item in e["items"]}
    seen = set()
    for case in ET.parse(pytester.path / "j.xml").iter("testcase"):
        item = items[case.get("name", "")]
        for prop in case.iter("property"):
            name, value = prop.get("name", ""), prop.get("value", "")
            if name == "looplet_repetition":  # "2/3": the item's repetition and repetitions
                assert value == f"{item['repetition']}/{item['repetitions']}"
                continue
            field = name.removeprefix("looplet_")
            assert field in item, f"{name} is not a field of the JSON report"
            seen.add(field)
            expected = item[field]
            if isinstance(expected, dict):
                assert json.loads(value) == expected, name
            elif isinstance(expected, list):
                assert value.split(",") == expected, name
            else:
                assert value == str(expected), name
    figures = {f.name for f in dataclasses.fields(Figures)}
    assert seen == figures  # the suite records every figure at least once
    greets = items["eval_greets"]
    assert (greets["step_count"], greets["tokens"], greets["cost_usd"]) == (2, 1000, 0.0002625)


def item_keys_in_order() -> list[str]:
    return list(ReportItem(nodeid="e", eval="e", verdict="PASS").to_json())


def test_the_report_names_agree_with_the_dataclass() -> None:
    item_keys = set(item_keys_in_order())
    assert item_keys == {f.name for f in dataclasses.fields(ReportItem)}
    doc = json.loads((V1 / "whole.json").read_text(encoding="utf-8"))
    v1_keys = list(doc["evals"][0]["items"][0])  # a later version only adds fields, after these
    assert item_keys_in_order()[: len(v1_keys)] == v1_keys


# ------------------------------------------------------------------ round trips and errors


def full_item() -> ReportItem:
    return ReportItem(
        nodeid="evals/e.py::eval_x[a-rep2of3]",
        eval="evals/e.py::eval_x[a]",
        repetition=2,
        repetitions=3,
        verdict="FAIL",
        message="boom",
        duration_s=0.25,
        score=0.4,
        threshold=0.5,
        metrics={"recall": 0.5, "steps": 3.0},
        error="RuntimeError",
        reason="half right",
        step_count=3,
        tokens=120,
        stop_reason="done",
        cost_usd=0.001,
        budget_exceeded=["max_cost", "max_steps"],
        trajectory={"model": "m", "steps": [{"n": 1, "tool": "t", "ok": True}]},
        case={"name": "a", "dataset": "cases.yaml", "metadata": {"tier": "gold"}},
        divergence={"step": 2, "diff": "trajectory differs at step 2"},
        model="anthropic:claude-3-5-haiku-latest",
    )


def test_every_field_of_an_item_round_trips_through_json() -> None:
    item = full_item()
    assert all(
        getattr(item, f.name) != getattr(ReportItem(nodeid="", eval="", verdict="PASS"), f.name)
        for f in dataclasses.fields(Figures)
    )  # every figure set, so each is exercised
    run = {"options": {}}
    doc = {"schema": "looplet-report", "version": 1, "run": run,
           "evals": [{"eval": item.eval, "items": [item.to_json()]}]}  # fmt: skip
    back = Report.from_json(json.loads(json.dumps(doc))).items
    assert back == [item]


def test_every_figure_round_trips_through_looplet_properties() -> None:
    item = full_item()
    figures = Figures(**{f.name: getattr(item, f.name) for f in dataclasses.fields(Figures)})
    pairs = figures.properties()
    assert [name for name, _ in pairs] == [f"looplet_{f.name}" for f in dataclasses.fields(Figures)]
    assert all(isinstance(value, str | int | float) for _, value in pairs)  # JUnit, execnet
    back = Figures()
    back.read_properties(dict(pairs))
    assert back == figures
    assert Figures().properties() == []  # defaults are not written
    back.read_properties({})
    assert back == Figures()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("tokens", "many", "null or an integer"),
        ("metrics", {"recall": "high"}, "an object of numbers"),
        ("budget_exceeded", "max_cost", "a list of strings"),
        ("trajectory", [1], "null or an object"),
        ("duration_s", "slow", "a number"),
    ],
)
def test_a_malformed_figure_is_a_report_error_naming_it(
    field: str, value: object, expected: str
) -> None:
    item = full_item().to_json()
    item[field] = value
    doc = {"schema": "looplet-report", "version": 1, "run": {},
           "evals": [{"eval": item["eval"], "items": [item]}]}  # fmt: skip
    with pytest.raises(
        ReportError, match=re.escape(f"evals[0].items[0].{field}: expected {expected}")
    ):
        Report.from_json(doc, "r.json")


def test_report_and_merge_errors_are_looplet_errors_and_value_errors() -> None:
    assert issubclass(ReportError, LoopletError) and issubclass(ReportError, ValueError)
    assert issubclass(MergeError, LoopletError) and issubclass(MergeError, ValueError)
    with pytest.raises(LoopletError):
        Report.from_json({"schema": "looplet-report", "version": 2}, "r.json")


def test_an_old_report_with_little_in_it_still_loads(tmp_path: Path) -> None:
    """Fields a report lacks take their defaults: a sparse, hand-written file is read."""
    items = [{"nodeid": "e", "eval": "e", "repetition": 1, "repetitions": 1, "verdict": "PASS",
              "score": 1}]  # fmt: skip
    doc: dict[str, Any] = {"schema": "looplet-report", "version": 1, "run": {},
                           "evals": [{"eval": "e", "items": items}]}  # fmt: skip
    (tmp_path / "r.json").write_text(json.dumps(doc), encoding="utf-8")
    report = load_report(tmp_path / "r.json")
    assert (report.evals[0].verdict, report.items[0].score, report.items[0].metrics) == (
        "PASS",
        1.0,
        {},
    )
