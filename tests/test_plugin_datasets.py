"""Datasets of cases: ``@pytest.mark.looplet_dataset("cases.yaml")`` makes one eval item per case,
with its own id, cassette, threshold and report rows, compared case by case with a baseline; a
bad file fails collection naming the file, the case and the field.

Every run here is ``pytest --looplet-evals evals`` in a subprocess, on ``eval_*.py`` files in a
folder, with ``-n 0`` and ``-n 2``: the way the README runs the example suite.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from tests._greeter import CONFTEST, recording

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

WORKERS = pytest.mark.parametrize("workers", ["0", "2"], ids=["n0", "n2"])


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``pytest --looplet-evals evals ...`` in a subprocess, with the plugin and xdist only."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider")
        return pytester.runpytest_subprocess(*argv, "--looplet-evals", "evals", *args)

    return run


def write(pytester: pytest.Pytester, path: str, source: str) -> None:
    target = pytester.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line and " " not in line]


def section(result: pytest.RunResult, title: str) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if f" {title} " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("==", "looplet:")))
    return lines[start + 1 : end]


# ------------------------------------------------------------------ items, cassettes, reports

GREET_EVAL = """
import pytest
from looplet import assert_trajectory

@pytest.mark.looplet_dataset("cases.yaml")
def eval_greets(looplet_agent, case):
    traj = looplet_agent.run(case.inputs)
    if case.expected_trajectory is not None:
        assert_trajectory(traj, case.expected_trajectory, args="subset")
    greeted = [step.tool_call.args["name"] for step in traj.calls("greet")]
    return 1.0 if greeted == [case.expected] else 0.5
"""

# bob-strict scores 0.5 like bob-lenient, but its own threshold is 1.0: it fails, the other
# passes at the default threshold 0.5.
GREET_CASES = """
# The greeter's cases: each is an item, eval_greets[<name>].
- name: alice
  inputs: {goal: "Greet Alice, then finish."}
  expected: Alice
  expected_trajectory: [[greet, {name: Alice}], done]
  metadata: {tier: gold, added: 2024-05-01}
- name: bob-lenient
  inputs: {goal: "Greet Bob, then finish."}
  expected: Robert
  metadata: {tier: free}
- name: bob-strict
  inputs: {goal: "Greet Bob, then finish."}
  expected: Robert
  threshold: 1.0
"""

GREET_IDS = [
    "evals/eval_greet.py::eval_greets[alice]",
    "evals/eval_greet.py::eval_greets[bob-lenient]",
    "evals/eval_greet.py::eval_greets[bob-strict]",
]


@WORKERS
def test_each_case_is_an_item_with_its_own_cassette_threshold_and_report_rows(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    write(pytester, "evals/conftest.py", CONFTEST)
    write(pytester, "evals/eval_greet.py", GREET_EVAL)
    write(pytester, "evals/cases.yaml", GREET_CASES)

    assert collected(run("--collect-only", "-q", "-n", workers)) == GREET_IDS
    with recording(monkeypatch):
        run("-n", "0", "--looplet-record-mode=all").assert_outcomes(passed=2, failed=1)
    folder = pytester.path / "evals" / "cassettes" / "eval_greet"
    assert sorted(p.name for p in folder.iterdir()) == [
        "eval_greets[alice].yaml",
        "eval_greets[bob-lenient].yaml",
        "eval_greets[bob-strict].yaml",
    ]

    # Offline: each case replays its own cassette, on whichever worker runs it.
    result = run(
        "-n", workers, "--looplet-report", "report.json", "--looplet-html", "report.html",
        "--junitxml", "junit.xml",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["eval eval_greets?bob-strict? scored 0.5, below the threshold 1"])
    rows = section(result, "looplet evals")
    assert [row.split()[0] + " " + row.split()[-1] for row in rows[1:4]] == [
        f"{verdict} {nodeid}"
        for verdict, nodeid in zip(["PASS", "PASS", "FAIL"], GREET_IDS, strict=True)
    ]
    doc = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    items = {item["nodeid"]: item for entry in doc["evals"] for item in entry["items"]}
    assert list(items) == GREET_IDS
    alice, lenient, strict = items.values()
    assert alice["case"] == {
        "name": "alice",
        "dataset": "evals/cases.yaml",
        "metadata": {"tier": "gold", "added": "2024-05-01"},  # a YAML date, as text
    }
    assert lenient["case"]["metadata"] == {"tier": "free"}
    assert (lenient["threshold"], strict["threshold"]) == (0.5, 1.0)
    assert (lenient["verdict"], strict["verdict"]) == ("PASS", "FAIL")
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "alice (evals/cases.yaml)" in page and "<dt>case tier</dt>" in page
    # JUnit XML: a testcase per case, carrying its case as a property.
    tree = ET.parse(pytester.path / "junit.xml")
    names = sorted(case.get("name") for case in tree.iter("testcase"))
    assert names == ["eval_greets[alice]", "eval_greets[bob-lenient]", "eval_greets[bob-strict]"]
    props = [p.get("value") for p in tree.iter("property") if p.get("name") == "looplet_case"]
    assert sorted(json.loads(str(value))["name"] for value in props) == [
        "alice",
        "bob-lenient",
        "bob-strict",
    ]


def test_a_missing_case_cassette_is_that_items_error_with_its_case_in_the_report(
    run: Run, pytester: pytest.Pytester
) -> None:
    write(pytester, "evals/conftest.py", CONFTEST)
    write(pytester, "evals/eval_greet.py", GREET_EVAL)
    write(pytester, "evals/cases.yaml", GREET_CASES)
    result = run("-n", "0", "--looplet-report", "report.json")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*eval_greets?alice?.yaml*"])
    doc = json.loads((pytester.path / "report.json").read_text(encoding="utf-8"))
    cases = [item["case"]["name"] for entry in doc["evals"] for item in entry["items"]]
    assert cases == ["alice", "bob-lenient", "bob-strict"]  # on the setup error's report too


# ------------------------------------------------------------------ formats and composition

SCORE_EVAL = """
import pytest

@pytest.mark.looplet_dataset("{file}")
def eval_scores(case):
    assert isinstance(case.inputs["score"], {kind})
    return float(case.inputs["score"])
"""


def test_csv_json_and_jsonl_datasets_with_parametrize_and_repeats(
    run: Run, pytester: pytest.Pytester
) -> None:
    write(pytester, "evals/data/cases.csv", "name,inputs.score,metadata.tag\none,1,a\ntwo,0.5,b\n")
    write(pytester, "evals/data/cases.json", '[{"name": "one", "inputs": {"score": 1}}]')
    write(pytester, "evals/data/cases.jsonl", '{"name": "x", "inputs": {"score": 1}}\n')
    write(pytester, "evals/eval_csv.py", SCORE_EVAL.format(file="data/cases.csv", kind="str"))
    write(pytester, "evals/eval_json.py", SCORE_EVAL.format(file="data/cases.json", kind="int"))
    write(
        pytester,
        "evals/eval_more.py",
        """
        import pytest

        @pytest.mark.looplet(repeat=2)
        @pytest.mark.looplet_dataset("data/cases.jsonl")
        def eval_repeated(case, looplet_repetition):
            return 1.0

        @pytest.mark.parametrize("model", ["small", "large"])
        @pytest.mark.looplet_dataset("data/cases.json")
        def eval_per_model(case, model):
            return 1.0
        """,
    )
    assert collected(run("--collect-only", "-q", "-n", "2")) == [
        "evals/eval_csv.py::eval_scores[one]",
        "evals/eval_csv.py::eval_scores[two]",
        "evals/eval_json.py::eval_scores[one]",
        "evals/eval_more.py::eval_repeated[x-rep1of2]",
        "evals/eval_more.py::eval_repeated[x-rep2of2]",
        "evals/eval_more.py::eval_per_model[one-small]",
        "evals/eval_more.py::eval_per_model[one-large]",
    ]
    run("-n", "2").assert_outcomes(passed=7)


def test_a_plain_test_takes_a_dataset_without_looplet_evals(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    write(
        pytester, "cases.json", '[{"name": "a", "inputs": {"n": 1}}, {"name": "b", "inputs": {}}]'
    )
    write(
        pytester,
        "test_data.py",
        """
        import pytest

        @pytest.mark.looplet_dataset("cases.json")
        def test_positive(case):
            assert case.inputs.get("n", 2) > 0
        """,
    )
    result = pytester.runpytest_subprocess("-p", "pytest_looplet.plugin", "-v", "--strict-markers")
    result.stdout.fnmatch_lines(["*test_positive?a? PASSED*", "*test_positive?b? PASSED*"])
    result.assert_outcomes(passed=2)


# ------------------------------------------------------------------ baseline, case by case

BASELINE_EVAL = """
import pytest

@pytest.mark.looplet_dataset("cases.json")
def eval_case(case):
    return case.inputs["score"]
"""


def test_the_baseline_comparison_is_per_case(run: Run, pytester: pytest.Pytester) -> None:
    write(pytester, "evals/eval_base.py", BASELINE_EVAL)

    def cases(**scores: float) -> None:
        rows = [{"name": name, "inputs": {"score": score}} for name, score in scores.items()]
        write(pytester, "evals/cases.json", json.dumps(rows))

    cases(steady=1.0, slips=1.0, dropped=1.0)
    run("-n", "0", "--looplet-report", "old.json").assert_outcomes(passed=3)
    cases(steady=1.0, slips=0.0, added=1.0)
    result = run("-n", "2", "--looplet-baseline", "old.json")
    result.assert_outcomes(passed=2, failed=1)
    base = "evals/eval_base.py::eval_case"
    assert section(result, "looplet baseline") == [
        "regressions (0)",
        "improvements (0)",
        "unchanged (2):",
        f"  {base}[slips]  1/1 -> 0/1  rate -100%  score 1.00 -> 0.00  p=1.0000",
        f"  {base}[steady]  1/1 -> 1/1  rate +0%  score 1.00 -> 1.00  p=1.0000",
        "not in this run (1):",
        f"  {base}[dropped]",
        "new in this run (1):",
        f"  {base}[added]",
    ]


# ------------------------------------------------------------------ bad files

BAD = {
    # file name -> (its text, the eval's marker argument, what the error must say)
    "missing.yaml": (
        "- name: ok\n  inputs: {}\n- name: no-inputs\n  expected: 1\n",
        '"missing.yaml"',
        "evals/missing.yaml: case 2 'no-inputs': field inputs: is missing",
    ),
    "twice.json": (
        '[{"name": "a", "inputs": {}}, {"name": "a", "inputs": {}}]',
        '"twice.json"',
        "evals/twice.json: case 2 'a': field name: 'a' is also the name of case 1",
    ),
    "typed.csv": (
        "name,inputs.q,threshold\nfine,x,0.5\nbad,y,high\n",
        '"typed.csv"',
        "evals/typed.csv: case 2 'bad' (line 3): field threshold: expected a number in [0, 1], "
        "got 'high'",
    ),
    "number.yaml": (
        "- name: 42\n  inputs: {}\n",
        '"number.yaml"',
        "evals/number.yaml: case 1: field name: expected a string, got int 42",
    ),
    "typo.yaml": (
        "- name: a\n  inputs: {}\n  treshold: 0.9\n",
        '"typo.yaml"',
        "evals/typo.yaml: case 1 'a': field treshold: not a case field",
    ),
}


@WORKERS
def test_a_bad_dataset_fails_collection_naming_the_file_the_case_and_the_field(
    run: Run, pytester: pytest.Pytester, workers: str
) -> None:
    for stem_index, (file, (text, argument, _)) in enumerate(BAD.items()):
        write(pytester, f"evals/{file}", text)
        write(
            pytester,
            f"evals/eval_bad{stem_index}.py",
            f"""
            import pytest

            @pytest.mark.looplet_dataset({argument})
            def eval_x(case):
                return 1.0

            def eval_unaffected_but_in_a_broken_file():
                return 1.0
            """,
        )
    write(
        pytester,
        "evals/eval_no_case.py",
        """
        import pytest

        @pytest.mark.looplet_dataset("twice.json")
        def eval_no_case_argument():
            return 1.0
        """,
    )
    write(
        pytester,
        "evals/eval_no_path.py",
        """
        import pytest

        @pytest.mark.looplet_dataset()
        def eval_no_path(case):
            return 1.0
        """,
    )
    result = run("-n", workers)
    out = result.stdout.str()
    result.assert_outcomes(errors=7)  # the other evals of those files are not run either
    assert result.ret != pytest.ExitCode.OK
    for index, (_, (_, _, message)) in enumerate(BAD.items()):
        assert f"ERROR collecting evals/eval_bad{index}.py" in out
        assert f"eval_x: @pytest.mark.looplet_dataset: {message}" in out
    result.stdout.fnmatch_lines(
        [
            "eval_no_case_argument: @pytest.mark.looplet_dataset: the function takes no 'case' "
            "argument; add one: def eval_no_case_argument(..., case)*",
            "*eval_no_path: @pytest.mark.looplet_dataset takes one argument, the dataset file's "
            "path*got ()",
        ],
        consecutive=False,
    )
    assert "Traceback" not in out and "datasets.py" not in out  # the message alone
