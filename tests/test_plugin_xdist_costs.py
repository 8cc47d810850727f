"""What an eval costs under xdist besides the eval: the work the plugin does per step, per
report and per item stays constant and small (bench/eval_throughput.py measures it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import looplet._redact
from looplet.evals.report_model import ReportItem
from looplet.types import Step, ToolCall, ToolResult
from pytest_looplet.crash import ProgressLog
from pytest_looplet.redaction import redact_report
from pytest_looplet.summary import EvalSummary

SECRET = "sk-proj-" + "Q" * 40


def _steps(count: int) -> list[Step]:
    return [
        Step(n, ToolCall("greet", {"name": f"Guest {n}"}), ToolResult("greet"))
        for n in range(1, count + 1)
    ]


def test_a_progress_log_opens_its_file_once_and_each_step_is_on_disk_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Path] = []
    real_open = Path.open

    def counting_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "a" in mode:  # opened to write (the test reads the file back too)
            opened.append(self)
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    log = ProgressLog(tmp_path / "item.jsonl")
    for step in _steps(10):
        log.add(step)
        # What a crash right now would leave: every step so far, read by another reader.
        lines = (tmp_path / "item.jsonl").read_text(encoding="utf-8").splitlines()
        assert json.loads(lines[-1]) == {"step": step.number, "pretty": step.pretty()}
    assert len(lines) == 10
    log.close()
    log.add(_steps(1)[0], "a second run's first step")  # a later run of the test appends
    log.close()
    assert opened == [tmp_path / "item.jsonl"] * 2
    last = (tmp_path / "item.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(last) == {"step": 1, "pretty": "a second run's first step"}


def test_a_progress_line_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLET_TEST_API_KEY", SECRET)
    log = ProgressLog(tmp_path / "item.jsonl")
    log.add(_steps(1)[0], f"#1 greet(key={SECRET!r})")
    log.close()
    text = (tmp_path / "item.jsonl").read_text(encoding="utf-8")
    assert SECRET not in text and "<redacted>" in text


def _report(**fields: Any) -> pytest.TestReport:
    base: dict[str, Any] = {
        "nodeid": "evals/eval_a.py::eval_a",
        "location": ("evals/eval_a.py", 1, "eval_a"),
        "keywords": {"eval_a": 1, "looplet_eval": 1},
        "outcome": "passed",
        "longrepr": None,
        "when": "call",
    }
    return pytest.TestReport(**{**base, **fields})


def test_a_report_with_nothing_to_redact_reads_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[object] = []
    real = looplet._redact.TextRedactor

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(looplet._redact, "TextRedactor", Counting)
    monkeypatch.setenv("LOOPLET_TEST_API_KEY", SECRET)
    redact_report(_report(when="setup"))
    assert made == []  # a passed setup: no output, no failure, no property
    with_output = _report(sections=[("Captured stdout call", f"key {SECRET}")])
    redact_report(with_output)
    assert len(made) == 1 and with_output.sections == [("Captured stdout call", "key <redacted>")]
    with_property = _report(user_properties=[("looplet_reason", f"saw {SECRET}")])
    redact_report(with_property)
    assert with_property.user_properties == [("looplet_reason", "saw <redacted>")]


def test_the_summary_reads_an_items_properties_once_per_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[dict[str, object]] = []
    real = ReportItem.read_properties

    def counting(self: ReportItem, props: dict[str, object]) -> None:
        reads.append(dict(props))
        real(self, props)

    monkeypatch.setattr(ReportItem, "read_properties", counting)
    props = [("looplet_score", 0.9), ("looplet_step_count", 3), ("looplet_reason", "fine")]
    summary = EvalSummary()
    summary.add(_report(when="setup"))
    summary.add(_report(when="call", user_properties=list(props)))
    summary.add(_report(when="teardown", user_properties=list(props)))  # the same, again
    assert len(reads) == 1
    # A teardown that changes them (an error in teardown, a property added there) is read.
    failed = [*props, ("looplet_error", "RuntimeError")]
    summary.add(_report(when="teardown", outcome="failed", user_properties=failed))
    assert len(reads) == 2
    (item,) = summary.build().items
    assert (item.verdict, item.score, item.step_count, item.reason, item.error) == (
        "ERROR",
        0.9,
        3,
        "fine",
        "RuntimeError",
    )
