"""``looplet compare`` and ``looplet history`` through the user's door: reports written by
``pytest --looplet-evals --looplet-report`` in a subprocess, then the command in another."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from looplet.evals.compare import compare_reports, first_divergence
from looplet.evals.report import (
    Report,
    ReportItem,
    ReportOptions,
    ReportRun,
    load_report,
    write_report,
)
from tests._greeter import CONFTEST

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data" / "reports_v1"

# The scripted model of each eval reads the environment, so one suite gives both runs:
# GREET is the name the greeter's model greets (the eval wants Alice), TRIES_ARG the argument
# name eval_tries's model uses (``nom`` fails the greet tool's validation), STEADY how many of
# eval_steady's 10 runs pass; eval_gone is only in the old run, eval_new only in the new one.
EVALS = """
import os
import pytest
from looplet import ToolCall
from looplet.testing import MockLLMBackend

def _script(eval_name):
    if eval_name == "eval_greets_alice":
        return [ToolCall("greet", {"name": os.environ["GREET"]})]
    if eval_name == "eval_tries":
        return [ToolCall("greet", {os.environ["TRIES_ARG"]: "Carol"})]
    return []

@pytest.fixture
def looplet_llm(request):
    return MockLLMBackend([*_script(request.node.originalname),
                           ToolCall("done", {"answer": "ok"})])

def eval_greets_alice(looplet_agent):
    traj = looplet_agent.run("Greet Alice, then finish.")
    assert traj.called("greet", name="Alice")

def eval_tries(looplet_agent):
    looplet_agent.run("Greet Carol, then finish.")
    return 1.0

@pytest.mark.looplet(repeat=10)
def eval_steady(looplet_repetition):
    assert looplet_repetition <= int(os.environ["STEADY"])

if os.environ["PHASE"] == "old":
    def eval_gone():
        pass
else:
    def eval_new():
        pass
"""

OLD = {"PHASE": "old", "GREET": "Alice", "TRIES_ARG": "name", "STEADY": "10"}
NEW = {"PHASE": "new", "GREET": "Bob", "TRIES_ARG": "nom", "STEADY": "3"}

Looplet = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Runs the suite with ``env`` in a pytest subprocess, writing the report ``name``."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_greeter=EVALS)

    def run(env: dict[str, str], name: str, *args: str) -> Path:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        pytester.runpytest_subprocess(
            "-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider",
            "--looplet-evals", "--looplet-model=gpt-4o-mini", "--looplet-min-pass-rate=0",
            f"--looplet-report={name}", *args,
        )  # fmt: skip
        path = pytester.path / name
        assert path.is_file(), f"pytest wrote no report {name}"
        return path

    return run


@pytest.fixture
def looplet(pytester: pytest.Pytester) -> Looplet:
    """Runs ``python -m looplet ARGS`` in the pytester folder."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "looplet", *map(str, args)],
            cwd=pytester.path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


class Page(HTMLParser):
    """The tags, text and attribute values of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [f"{name}={value}" for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def self_contained(html: str) -> Page:
    page = Page(html)
    assert "script" not in page.tags
    assert "http://" not in html and "https://" not in html
    assert not any(a.startswith(("src=", "href=")) for a in page.attrs)
    return page


def row_of(stdout: str, eval_name: str) -> str:
    return next(line for line in stdout.splitlines() if line.endswith("::" + eval_name))


def test_compare_names_what_got_worse_and_where_the_runs_diverged(
    suite: Callable[..., Path], looplet: Looplet, pytester: pytest.Pytester
) -> None:
    suite(OLD, "old.json", "-n", "0")
    suite(NEW, "new.json", "-n", "2")
    result = looplet("compare", "old.json", "new.json", "--html", "out/compare.html")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    alice = row_of(out, "eval_greets_alice").split()
    assert alice[:5] == ["newly", "failing", "PASS", "1/1", "FAIL"]
    lines = out.splitlines()
    at = lines.index(row_of(out, "eval_greets_alice"))
    # The failure's first line follows looplet's "failed: " label; its text is pytest's own
    # assertion explanation, whose wording differs between pytest releases.
    assert lines[at + 1].startswith("    failed: ")
    assert "eval_greets_alice" not in lines[at + 1] and len(lines[at + 1]) > len("    failed: ")
    assert lines[at + 2].strip() == (
        'diverged at step 1 (args): base greet {"name": "Alice"} | new greet {"name": "Bob"}'
    )
    steady = row_of(out, "eval_steady").split()
    assert steady[:5] == ["regression", "PASS", "10/10", "PASS", "3/10"]  # min pass rate 0
    assert "-70%" in steady and "-0.70" in steady and "0.0031" in steady
    tries = lines.index(row_of(out, "eval_tries"))
    assert lines[tries].split()[0] == "changed"  # still passes: changed, not worse
    assert lines[tries + 1].strip().startswith("diverged at step 1 (args, error): base greet")
    assert lines[tries + 1].endswith("-> validation")
    assert row_of(out, "eval_new").split()[0] == "added"
    assert row_of(out, "eval_gone").split()[0] == "removed"
    assert "1 newly failing, 1 regression, 1 changed, 1 added, 1 removed" in out
    assert out.splitlines()[-1] == "looplet compare: 2 evals got worse (--fail-on worse: exit 1)"

    page = self_contained((pytester.path / "out" / "compare.html").read_text())
    text = page.all_text
    assert "diverged at step 1" in text and '"Alice"' in text and '"Bob"' in text
    assert "eval_greeter.py::eval_greets_alice" in text and "newly failing" in text
    assert page.tags.count("tr") >= 6

    assert looplet("compare", "old.json", "new.json", "--fail-on", "never").returncode == 0
    assert looplet("compare", "old.json", "new.json", "--fail-on", "regression").returncode == 1
    same = looplet("compare", "new.json", "new.json")
    assert same.returncode == 0 and "no eval changed" in same.stdout
    better = looplet("compare", "new.json", "old.json")  # the other way round: only better
    assert better.returncode == 0
    assert row_of(better.stdout, "eval_greets_alice").startswith("newly passing")
    assert row_of(better.stdout, "eval_steady").startswith("improvement")


def test_history_charts_runs_by_start_time_including_a_merged_report(
    suite: Callable[..., Path], looplet: Looplet, pytester: pytest.Pytester
) -> None:
    old = suite(OLD, "old.json", "-n", "0")
    suite(NEW, "s1.json", "--looplet-shard=1/2", "-n", "0")
    suite(NEW, "s2.json", "--looplet-shard=2/2", "-n", "2")
    merged = looplet("merge", "merged.json", "s1.json", "s2.json")
    assert merged.returncode == 0, merged.stderr
    # The runs may start within one second: give them distinct, known start times.
    for name, started in (("old.json", "2026-01-01T09:00:00+00:00"),
                          ("merged.json", "2026-01-02T09:00:00+00:00")):  # fmt: skip
        doc = json.loads((pytester.path / name).read_text())
        doc["run"]["started"] = started
        (pytester.path / name).write_text(json.dumps(doc))
    assert old.exists()

    result = looplet("history", "merged.json", "old.json", "--html", "h/history.html")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:3]]
    # old first (earlier), whatever the order given; 13 counted runs in each (steady's 10)
    assert [r[0] for r in rows] == ["1", "2"] and [r[-1] for r in rows] == [
        "old.json",
        "merged.json",
    ]
    # new: eval_steady 3 of 10, eval_tries and eval_new pass, eval_greets_alice fails
    assert rows[0][4:6] == ["13/13", "100%"] and rows[1][4:6] == ["5/13", "38%"]
    assert "2 runs by start time; 1 eval changed verdict between runs" in result.stdout

    page = self_contained((pytester.path / "h" / "history.html").read_text())
    assert page.tags.count("svg") == 4  # pass rate, mean score, cost, tokens
    assert page.tags.count("circle") == 8  # a point per run in each chart
    assert "old.json 2026-01-01 09:00: 100%" in page.all_text  # a point's tooltip
    # the evals that changed verdict: eval_greets_alice only (eval_steady passes at rate 0)
    assert "eval_greeter.py::eval_greets_alice PASS FAIL" in page.all_text
    assert "eval_greeter.py::eval_steady" not in page.all_text

    kept = looplet("history", "merged.json", "old.json", "--keep-order")
    assert [line.split()[-1] for line in kept.stdout.splitlines()[1:3]] == [
        "merged.json",
        "old.json",
    ]


def _report(passes: int, runs: int, cost: float, tokens: int) -> Report:
    items = [
        ReportItem(
            nodeid=f"e.py::eval_a[rep{i + 1}of{runs}]", eval="e.py::eval_a", repetition=i + 1,
            repetitions=runs, verdict="PASS" if i < passes else "FAIL",
            score=1.0 if i < passes else 0.0, cost_usd=cost, tokens=tokens, step_count=2,
        )
        for i in range(runs)
    ]  # fmt: skip
    # min pass rate 0: 3/10 still passes, so the drop shows as a regression, not a new failure
    run = ReportRun(started="2026-01-01T00:00:00+00:00", options=ReportOptions(min_pass_rate=0))
    return Report.of(items, run)


def test_the_deltas_and_the_p_value_are_the_hand_computed_ones(
    tmp_path: Path, looplet: Looplet
) -> None:
    # base 10/10 at $0.01 and 100 tokens a run; new 3/10 at $0.015 and 150 tokens a run.
    # Fisher, margins 10|10 rows and 13 passes of 20: P(10 passes in the base row)
    # = C(10,10) C(10,3) / C(20,13) = 120 / 77520; the table as unlikely on the other side
    # (3 passes in the base row) is as likely, so p = 240 / 77520 = 0.0030960...
    base, new = _report(10, 10, 0.01, 100), _report(3, 10, 0.015, 150)
    (delta,) = compare_reports(base, new).evals
    assert delta.change is not None
    assert delta.change.p_value == pytest.approx(240 / 77520, rel=1e-12)
    assert delta.status == "regression"
    assert delta.delta("pass_rate") == pytest.approx(-0.7)
    assert delta.delta("mean_score") == pytest.approx(-0.7)  # 1.0 -> 0.3
    assert delta.delta("cost_usd") == pytest.approx(0.05)  # 10 x 0.01 -> 10 x 0.015
    assert delta.delta("tokens") == 500 and delta.delta("steps") == 0

    write_report(tmp_path / "b.json", base)
    write_report(tmp_path / "n.json", new)
    result = looplet("compare", tmp_path / "b.json", tmp_path / "n.json")
    assert result.returncode == 1
    assert row_of(result.stdout, "eval_a").split() == [
        "regression", "PASS", "10/10", "PASS", "3/10", "-70%", "-0.70", "+$0.0500", "+500",
        "0", "0.0031", "e.py::eval_a",
    ]  # fmt: skip


def _item(nodeid: str, steps: list[dict[str, object]] | None) -> ReportItem:
    trajectory = None if steps is None else {"steps": steps}
    return ReportItem(nodeid=nodeid, eval="e", verdict="PASS", trajectory=trajectory)


def test_first_divergence_compares_tool_args_and_error_kind_step_by_step() -> None:
    greet = {"n": 1, "tool": "greet", "args": '{"name": "A"}', "ok": True, "error": None}
    done = {"n": 2, "tool": "done", "args": "{}", "ok": True, "error": None}
    denied = {**done, "ok": False, "error": "permission_denied: not allowed"}
    timeout = {**done, "ok": False, "error": "timeout: too slow"}
    assert first_divergence(_item("a", [greet, done]), _item("b", [greet, done])) is None
    assert first_divergence(_item("a", None), _item("b", [greet])) is None
    gone = first_divergence(_item("a", [greet, done]), _item("b", [greet]))
    assert gone is not None and (gone.step, gone.fields, gone.new) == (2, ("steps",), None)
    kind = first_divergence(_item("a", [greet, denied]), _item("b", [greet, timeout]))
    assert kind is not None and (kind.step, kind.fields) == (2, ("error",))
    assert kind.describe().endswith("-> permission_denied | new done {} -> timeout")
    same_kind = {**denied, "error": "permission_denied: another message"}
    assert first_divergence(_item("a", [denied]), _item("b", [same_kind])) is None


def test_old_reports_work_and_a_bad_file_is_named(tmp_path: Path, looplet: Looplet) -> None:
    whole, shard = DATA / "whole.json", DATA / "shard-2.json"
    result = looplet("compare", whole, shard)
    assert result.returncode == 0, result.stderr  # eval_flaky got better, the rest left
    assert row_of(result.stdout, "eval_flaky").startswith("newly passing")
    history = looplet("history", whole, DATA / "shard-1.json", shard, "--html", tmp_path / "h.html")
    assert history.returncode == 0 and (tmp_path / "h.html").is_file()
    assert load_report(whole).evals  # the inputs themselves are untouched v1 files

    (tmp_path / "bad.json").write_text('{"schema": "looplet-report", "version": 99}')
    for args in (("compare", whole, tmp_path / "missing.json"), ("history", tmp_path / "bad.json")):
        bad = looplet(*args)
        assert bad.returncode == 2
        assert bad.stdout == ""
    assert (
        "missing.json: field (file): cannot read it"
        in looplet("compare", whole, tmp_path / "missing.json").stderr
    )
    assert "bad.json: field version:" in looplet("history", tmp_path / "bad.json").stderr
    assert looplet("compare", whole).returncode == 2  # NEW missing: usage


def test_history_orders_by_start_time_ties_and_unknown_times_keep_the_order_given() -> None:
    from looplet.evals.history import history_of

    def at(started: str) -> Report:
        return Report.of([], ReportRun(started=started))

    midnight, one_am = at("2026-01-02T00:00:00+00:00"), at("2026-01-01T23:00:00-02:00")
    tied = at("2026-01-02T00:00:00")  # no offset: read as UTC, the same moment as midnight
    ordered = history_of([("one_am", one_am), ("midnight", midnight), ("tied", tied)])
    assert (ordered.ordered_by, [p.path for p in ordered.points]) == (
        "started",
        ["midnight", "tied", "one_am"],  # 23:00 at -02:00 is 01:00 UTC; a tie keeps its order
    )
    unknown = history_of([("b", one_am), ("a", at(""))])
    assert (unknown.ordered_by, [p.path for p in unknown.points]) == ("given", ["b", "a"])
    kept = history_of([("b", one_am), ("a", midnight)], keep_order=True)
    assert [p.path for p in kept.points] == ["b", "a"]
    assert kept.points[0].pass_rate is None and "-" in kept.lines()[1]  # no runs: no rate


def test_first_divergence_leaves_out_what_is_not_a_step() -> None:
    greet = {"n": 1, "tool": "greet", "args": "{}", "ok": True, "error": None}
    junk = ReportItem(nodeid="a", eval="e", verdict="PASS", trajectory={"steps": ["junk", greet]})
    assert first_divergence(junk, _item("b", [greet])) is None
    assert first_divergence(_item("a", [greet]), ReportItem(
        nodeid="b", eval="e", verdict="PASS", trajectory={"steps": "not a list"}
    )) is not None  # fmt: skip
