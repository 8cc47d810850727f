"""The HTML report's trajectory viewer: each run a timeline of its steps (the model's text and
each model turn's tokens and time, calls, results folded when long, each tool's time, errors
and permission decisions marked, the expected-vs-actual diff beside the step where a failing
run diverged), from a real ``pytest --looplet-evals`` run, read with html.parser and, where
Chromium can be started, in a headless browser."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
from looplet import PermissionEngine, PermissionHook, composable_loop, tool
from looplet.backends.base import LLMResponse
from looplet.testing import MockLLMBackend
from looplet.types import ToolCall, Usage
from pytest_looplet.scoring import record_trajectory

@tool
def read(path: str) -> str:
    "Read a file."
    return "line <script>alert(1)</script>\\n" * 60

@tool
def rm(path: str) -> str:
    "Delete a file."
    return "gone"

@tool
def fetch(url: str) -> str:
    "Fetch a URL."
    raise ConnectionError("host unreachable")

@tool
def done(answer: str) -> str:
    "Finish."
    return answer

@pytest.fixture
def tidy(request):
    llm = MockLLMBackend([
        LLMResponse(text="I will read the <b>notes</b> first.",
                    tool_calls=(ToolCall("read", {"path": "notes.txt"}, call_id="c1"),),
                    usage=Usage(120, 30)),
        LLMResponse(text="Now clean up, then fetch.",
                    tool_calls=(ToolCall("rm", {"path": "notes.txt"}, call_id="c2"),
                                ToolCall("fetch", {"url": "http://example.invalid"},
                                         call_id="c3")),
                    usage=Usage(300, 40)),
        LLMResponse(tool_calls=(ToolCall("done", {"answer": "finished"}, call_id="c4"),),
                    usage=Usage(500, 8)),
    ])
    rules = PermissionEngine().allow("read")
    rules.deny("rm", reason="never delete <i>files</i>' onmouseover='x")
    loop = composable_loop(llm=llm, tools=[read, rm, fetch, done], task="tidy up",
                           hooks=[PermissionHook(rules.allow("fetch"))])
    for _ in loop:
        pass
    record_trajectory(request, loop.trajectory)
    return loop.trajectory
"""

EVALS = """
from looplet.assertions import assert_trajectory

def eval_tidies_up(tidy):
    assert tidy.called("read")
    return 1.0

def eval_keeps_the_notes(tidy):
    assert_trajectory(tidy, ["read", "fetch", "done"])
"""


COST = re.compile(r"(\d+ tokens \(\d+ in, \d+ out\)) · <?[\d.]+ m?s")
"""A model turn's cost as the timeline shows it: tokens, then the model's time."""
TIME = re.compile(r"<?[\d.]+ m?s")


@pytest.fixture
def report(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the two evals (with ``-n WORKERS``) and return (page, JSON report)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_viewer=EVALS)

    def run(workers: str = "0") -> tuple[Path, dict[str, Any]]:
        result = pytester.runpytest_subprocess(
            "-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider",
            "--looplet-evals", "-n", workers, "--looplet-html=out.html",
            "--looplet-report=out.json",
        )  # fmt: skip
        result.assert_outcomes(passed=1, failed=1)
        doc = json.loads((pytester.path / "out.json").read_text("utf-8"))
        return pytester.path / "out.html", doc

    return run


@dataclass
class Node:
    """An element of the page: its tag, attributes, children and text."""

    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all_text(self) -> str:
        return "".join(self.text) + "".join(c.all_text() for c in self.children)

    def find(self, tag: str = "", cls: str = "") -> list[Node]:
        found = []
        for child in self.children:
            if (not tag or child.tag == tag) and (not cls or cls in child.classes):
                found.append(child)
            found += child.find(tag, cls)
        return found


class TreeParser(HTMLParser):
    """The page as a tree of :class:`Node`, checking that every element it opens it closes."""

    VOID: ClassVar[set[str]] = {"meta", "input", "br", "img", "link", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text.append(data)


def parse(path: Path) -> Node:
    parser = TreeParser()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    assert parser.stack == [parser.root], "unclosed elements"
    return parser.root


def run_block(root: Node, eval_name: str) -> Node:
    (block,) = [d for d in root.find("details") if d.attrs.get("data-eval", "").endswith(eval_name)]
    return block


def items_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The JSON report's trajectory of each eval's first run, by the eval's name."""
    return {e["eval"].split("::")[1]: e["items"][0]["trajectory"] for e in doc["evals"]}


def steps_of(block: Node) -> dict[str, Node]:
    return {li.attrs["data-step"]: li for li in block.find("li", "st") if "data-step" in li.attrs}


@pytest.mark.parametrize("workers", ["0", "2"])
def test_each_run_is_a_timeline_of_its_steps(report: Any, workers: str) -> None:
    page, doc = report(workers)
    root = parse(page)
    # The only script is the page's own: the tool result's <script> is text.
    assert len(root.find("script")) == 1
    assert "line <script>alert(1)</script>" in root.all_text()
    failing = run_block(root, "eval_keeps_the_notes")
    steps = steps_of(failing)
    assert list(steps) == ["1", "2", "3", "4"]
    # Each model turn opens with its tokens and time, then the model's text, escaped (the
    # last turn wrote none).
    costs = [c.all_text() for c in failing.find("span", "cost")]
    assert [COST.fullmatch(c).group(1) for c in costs] == [  # type: ignore[union-attr]
        "150 tokens (120 in, 30 out)",
        "340 tokens (300 in, 40 out)",
        "508 tokens (500 in, 8 out)",
    ]
    said = [s.all_text() for s in failing.find("div", "say")]
    assert said == [
        f"model {costs[0]}I will read the <b>notes</b> first.",
        f"model {costs[1]}Now clean up, then fetch.",
        f"model {costs[2]}",
    ]
    assert not failing.find("b")
    # Each step shows its tool's time as the report has it (to 0.1 ms); the denied call
    # never ran, so it has none.
    rows_ms = {str(r["n"]): r["ms"] for r in items_of(doc)["eval_keeps_the_notes"]["steps"]}
    assert rows_ms["2"] == 0
    for n, step in steps.items():
        (ms,) = step.find("span", "ms")
        assert ms.attrs["title"] == "the tool's time"
        assert TIME.fullmatch(ms.all_text()) if rows_ms[n] > 0 else ms.all_text() == ""
    # The long result is folded: a <details> whose summary is its first line.
    (fold,) = steps["1"].find("details", "fold")
    assert fold.find("summary")[0].all_text().endswith("(200 chars)")  # a preview of 200
    assert fold.find("pre")[0].all_text().startswith("line <script>")
    # The denied call and the failed one are marked, with why.
    assert {"err", "deny"} <= steps["2"].classes and "denied by rule" in steps["2"].all_text()
    # ...the reason escaped in text and in the tag's title attribute.
    reason = "never delete <i>files</i>' onmouseover='x"
    assert reason in steps["2"].all_text() and not steps["2"].find("i")
    (tag,) = steps["2"].find("span", "tag")
    assert tag.attrs == {"class": "tag deny", "title": reason}
    assert "err" in steps["3"].classes and "deny" not in steps["3"].classes
    assert [t.all_text() for t in steps["3"].find("span", "tag")] == ["allowed by rule", "network"]
    assert steps["1"].classes == {"st", "ok"}
    # The diff stands beside the step where the run diverged (rm where fetch was expected).
    assert [n for n, s in steps.items() if "diverged" in s.classes] == ["2"]
    (diff,) = steps["2"].find("div", "diff")
    assert "expected" in diff.all_text() and "fetch" in diff.all_text()
    end = failing.find("li", "end")[0].all_text()
    assert re.search(r"998 tokens \(920 in, 78 out\) · 3 model calls \(<?[\d.]+ m?s\)", end)
    # The passing run has the same timeline, without a diff.
    passing = run_block(root, "eval_tidies_up")
    assert list(steps_of(passing)) == ["1", "2", "3", "4"] and not passing.find("div", "diff")
    # ...all of it from the report's items.
    items = {e["eval"].split("::")[1]: e["items"][0] for e in doc["evals"]}
    assert items["eval_keeps_the_notes"]["divergence"]["step"] == 2
    assert items["eval_tidies_up"]["divergence"] is None
    rows = items["eval_tidies_up"]["trajectory"]["steps"]
    assert [r.get("turn") for r in rows] == [1, 2, 2, 3]
    # The JSON has them too: each turn's tokens and time on its first step.
    assert [(r.get("usage") or {}).get("total_tokens") for r in rows] == [150, 340, None, 508]
    assert ["llm_ms" in r for r in rows] == [True, True, False, True]
    assert [("text" in r) for r in rows] == [True, True, False, False]
    assert rows[1]["permission"] == {
        "decision": "deny", "reason": reason, "by": "rule"
    }  # fmt: skip
    assert rows[1]["error_kind"] == "permission_denied" and rows[2]["error_kind"] == "network"


def test_reports_without_the_new_fields_still_render() -> None:
    from looplet.evals.report import load_report
    from pytest_looplet.html import render

    for path in sorted(Path(__file__).parent.joinpath("data", "reports_v1").glob("*.json")):
        page = render(load_report(path))
        parser = TreeParser()
        parser.feed(page)
        assert parser.stack == [parser.root], path


def _launch(playwright: Any) -> Any:
    """Chromium, Playwright's own or the system's; skips saying why when neither starts."""
    problems: list[str] = []
    for path in (None, shutil.which("chromium"), shutil.which("chromium-browser")):
        if path is None and problems:
            continue
        try:
            return playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        except Exception as exc:  # any failure to start: try the next
            problems.append(f"{path or 'playwright chromium'}: {str(exc).splitlines()[0]}")
    pytest.skip(
        "no Chromium to start (`python -m playwright install chromium`, or apt-get install "
        f"chromium): {'; '.join(problems)}"
    )


def test_the_timeline_in_headless_chromium(report: Any, tmp_path: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    page_path, _ = report("0")
    with sync_api.sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "request",
                lambda r: None if r.url.startswith("file:") else problems.append(r.url),
            )
            page.goto(page_path.as_uri())
            # The failing eval starts open; its divergent step is outlined, the diff beside it.
            failing = page.locator("details[data-eval$='eval_keeps_the_notes']")
            step = failing.locator("li.st[data-step='2']")
            card, diff = step.locator(".card"), step.locator(".diff")
            assert card.is_visible() and diff.is_visible()
            card_box, diff_box = card.bounding_box(), diff.bounding_box()
            assert diff_box["x"] >= card_box["x"] + card_box["width"] - 1  # beside, not below
            assert abs(diff_box["y"] - card_box["y"]) < 2
            red = card.evaluate("e => getComputedStyle(e).borderLeftColor")
            green = failing.locator("li.st[data-step='1'] .card").evaluate(
                "e => getComputedStyle(e).borderLeftColor"
            )
            assert red != green
            # The passing eval is closed; opening it shows its timeline, long values folded.
            passing = page.locator("details[data-eval$='eval_tidies_up']")
            assert not passing.locator("li.st").first.is_visible()
            passing.locator("summary").first.click()
            assert passing.locator("li.st").first.is_visible()
            fold = passing.locator("li.st[data-step='1'] details.fold")
            assert fold.locator("summary").is_visible() and not fold.locator("pre").is_visible()
            fold.locator("summary").click()
            assert "alert(1)" in fold.locator("pre").inner_text()
            # Each model turn's tokens and time stand beside "model", in plain case.
            who = passing.locator(".say .who").first
            cost = who.locator(".cost")
            assert cost.is_visible() and who.inner_text().startswith("MODEL 150 tokens")
            assert COST.fullmatch(cost.inner_text()).group(1) == "150 tokens (120 in, 30 out)"  # type: ignore[union-attr]
            cost_box, who_box = cost.bounding_box(), who.bounding_box()
            assert cost_box["height"] <= who_box["height"] + 1  # on the model's line
            # ...the model's time of the turn after it too, in seconds or milliseconds.
            assert TIME.fullmatch(cost.inner_text().rsplit(" · ", 1)[1])
            tool_time = passing.locator("li.st[data-step='1'] .hd .ms")
            assert tool_time.get_attribute("title") == "the tool's time"
            assert page.evaluate("() => document.scripts.length") == 1
            assert (
                passing.locator(".say")
                .first.inner_text()
                .endswith("I will read the <b>notes</b> first.")
            )
            assert problems == []
            failing.scroll_into_view_if_needed()
            shot = tmp_path / "timeline.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 1000
        finally:
            browser.close()


def test_the_diff_of_missing_steps_or_of_the_run_follows_the_last_step() -> None:
    from pytest_looplet.html_timeline import timeline

    steps = [{"n": n, "tool": "greet", "ok": True, "turn": n} for n in (1, 2)]
    for at, where in ((3, "after the last step"), (None, "the run as a whole")):
        root = TreeParser()
        root.feed(timeline({"steps": steps}, {"step": at, "diff": "expected done"}))
        items = root.root.find("li")
        assert [li.attrs.get("data-step") for li in items[:2]] == ["1", "2"]
        assert not items[0].find("div", "diff") and not items[1].find("div", "diff")
        (diff,) = items[2].find("div", "diff")
        assert where in diff.all_text() and "expected done" in diff.all_text()


def test_the_models_text_is_shown_once_per_reply() -> None:
    from pytest_looplet.html_timeline import timeline

    text = "I will greet both."
    steps = [
        {"n": 1, "tool": "greet", "ok": True, "turn": 1, "text": text, "reasoning": text},
        {"n": 2, "tool": "greet", "ok": True, "turn": 1, "reasoning": text},
        {"n": 3, "tool": "done", "ok": True, "turn": 2, "reasoning": "All greeted."},
    ]
    page = timeline({"steps": steps})
    assert page.count(text) == 1 and page.count("All greeted.") == 1


def test_a_last_turn_without_calls_closes_the_timeline_with_its_cost() -> None:
    from pytest_looplet.html_timeline import timeline

    def usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
        return {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }

    step = {"n": 1, "tool": "greet", "ok": True, "turn": 1, "ms": 2.5}
    traj = {
        "steps": [{**step, "usage": usage(80, 4), "llm_ms": 812.0}],
        "final_turn": {"usage": usage(90, 6), "llm_ms": 1530.0},
        "final_text": "Carol is greeted.",
        "stop_reason": "final_text",
        "llm_calls": 2,
        "llm_ms": 2342.0,
        "usage": usage(170, 10),
    }
    parser = TreeParser()
    parser.feed(timeline(traj))
    items = parser.root.find("li")
    assert [li.attrs["class"] for li in items] == ["say-item", "st ok", "say-item", "end"]
    costs = [c.all_text() for c in parser.root.find("span", "cost")]
    assert costs == ["84 tokens (80 in, 4 out) · 812 ms", "96 tokens (90 in, 6 out) · 1.53 s"]
    assert items[1].find("span", "ms")[0].all_text() == "2.5 ms"
    assert "the final text, below" in items[2].all_text()
    assert items[3].all_text() == (
        "stopped: final_text · 180 tokens (170 in, 10 out) · 2 model calls (2.34 s)"
    )
    # A run that answered at once has no step, and its one turn still shows.
    parser = TreeParser()
    parser.feed(timeline({**traj, "steps": [], "llm_calls": 1}))
    (only,) = parser.root.find("span", "cost")
    assert only.all_text() == "96 tokens (90 in, 6 out) · 1.53 s"
    # A failed last call has its time but no tokens to show.
    failed = {"final_turn": {"usage": usage(0, 0), "llm_ms": 30012.5}, "llm_calls": 1}
    assert "<span class='cost'>30.01 s</span>" in timeline({"steps": [step], **failed})
    # A report written before turns were recorded shows no cost, as before.
    old = timeline({"steps": [step], "usage": usage(170, 10), "llm_calls": 2})
    assert "cost" not in old and "2 model calls" in old and "2 model calls (" not in old
