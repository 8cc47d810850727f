"""``--looplet-shard I/N``: balanced shards, empty shards, and ``looplet merge`` checking the set.

Also: ``looplet merge`` runs with pytest not installed (the core never imports it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

# 6 + 3 + 3 = 12 eval items, and one test that is not an eval (it runs in every shard).
ALPHA = """
import pytest

@pytest.mark.parametrize("n", range(6))
def eval_numbers(n):
    return 1.0

@pytest.mark.looplet(repeat=3)
def eval_repeated(looplet_repetition):
    return 1.0
"""

BETA = """
def eval_one():
    return 1.0

def eval_two():
    return 0.9

def eval_three():
    return {"score": 1.0, "length": 3}
"""

UNIT = "def test_unit():\n    pass\n"

TWO = """
def eval_first():
    return 1.0

def eval_second():
    return 1.0
"""

TIMING_KEYS = {"duration_s", "started", "finished", "workers", "args"}

# Makes pytest, its internals and the plugin unimportable, then runs the looplet command.
WITHOUT_PYTEST = """
import sys

class NoPytest:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("pytest", "_pytest", "pytest_looplet"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoPytest())
from looplet.cli import main
status = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("pytest", "_pytest"))
print("pytest modules loaded:", loaded)
sys.exit(status)
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    evals = pytester.mkpydir("evals")
    (evals / "eval_alpha.py").write_text(ALPHA)
    (evals / "eval_beta.py").write_text(BETA)
    (evals / "test_unit.py").write_text(UNIT)
    two = pytester.mkpydir("two")
    (two / "eval_two.py").write_text(TWO)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(
            "-p", "pytest_looplet.plugin", "-p", "xdist", "--looplet-evals", *args
        )

    return run


def merge(cwd: Path, *args: str, without_pytest: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``looplet merge ARGS`` in a fresh interpreter."""
    command = ["-c", WITHOUT_PYTEST] if without_pytest else ["-m", "looplet"]
    return subprocess.run(
        [sys.executable, *command, "merge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def evals_of(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::eval_" in line]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def nodeids(doc: dict[str, Any]) -> list[str]:
    return [item["nodeid"] for entry in doc["evals"] for item in entry["items"]]


def untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def run_shards(run: Run) -> None:
    """Run the three shards of ``evals``, each writing ``shardI.json``."""
    for i in (1, 2, 3):
        result = run("evals", f"--looplet-shard={i}/3", f"--looplet-report=shard{i}.json")
        assert result.ret == pytest.ExitCode.OK, result.outlines


def test_twelve_items_over_three_shards_are_four_each(run: Run) -> None:
    everything = evals_of(run("evals", "--collect-only", "-q"))
    assert len(everything) == 12
    shards = [
        evals_of(run("evals", "--collect-only", "-q", f"--looplet-shard={i}/3")) for i in (1, 2, 3)
    ]
    assert [len(shard) for shard in shards] == [4, 4, 4]
    assert sorted(name for shard in shards for name in shard) == sorted(everything)
    # The same split whatever order pytest collects in.
    for i, shard in enumerate(shards, start=1):
        reordered = run(
            "evals/eval_beta.py",
            "evals/eval_alpha.py",
            "--collect-only",
            "-q",
            f"--looplet-shard={i}/3",
        )
        assert sorted(evals_of(reordered)) == sorted(shard)
    # Each shard runs its four evals and the test that is not an eval.
    for i in (1, 2, 3):
        run("evals", f"--looplet-shard={i}/3").assert_outcomes(passed=5)


@pytest.mark.parametrize("total", [2, 5, 7, 12, 13])
def test_shard_sizes_differ_by_at_most_one(run: Run, total: int) -> None:
    sizes = [
        len(evals_of(run("evals", "--collect-only", "-q", f"--looplet-shard={i}/{total}")))
        for i in range(1, total + 1)
    ]
    assert sum(sizes) == 12
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= 1 or total > 12


@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_empty_shard_exits_0_with_a_note(
    run: Run, pytester: pytest.Pytester, workers: str
) -> None:
    sizes = [
        len(evals_of(run("two", "--collect-only", "-q", f"--looplet-shard={i}/3")))
        for i in (1, 2, 3)
    ]
    assert sorted(sizes) == [0, 1, 1]
    empty = sizes.index(0) + 1
    result = run("two", "-n", workers, f"--looplet-shard={empty}/3", "--looplet-report=empty.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [f"looplet: shard {empty}/3 has no eval items (the suite has 2 for 3 shards)*"]
    )
    shard = load(pytester.path / "empty.json")["run"]["shard"]
    assert (shard["index"], shard["total"], shard["items"]) == (empty, 3, [])
    assert len(shard["suite"]) == 2
    # A suite with no evals at all is still pytest's "no tests collected".
    pytester.mkpydir("none")
    assert run("none", "--looplet-shard=1/3").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_each_shard_report_says_which_shard_it_is_and_what_the_suite_had(
    run: Run, pytester: pytest.Pytester
) -> None:
    run("evals", "--looplet-report=all.json")
    run_shards(run)
    suite = sorted(nodeids(load(pytester.path / "all.json")))
    seen: list[str] = []
    for i in (1, 2, 3):
        doc = load(pytester.path / f"shard{i}.json")
        shard = doc["run"]["shard"]
        assert (shard["index"], shard["total"], shard["suite"]) == (i, 3, suite)
        assert shard["items"] == sorted(nodeids(doc)) and len(shard["items"]) == 4
        seen += shard["items"]
    assert sorted(seen) == suite
    assert load(pytester.path / "all.json")["run"]["shard"] is None


def test_merging_every_shard_equals_the_whole_run(run: Run, pytester: pytest.Pytester) -> None:
    run("evals", "--looplet-report=all.json")
    run_shards(run)
    out = merge(pytester.path, "merged.json", "shard3.json", "shard1.json", "shard2.json")
    assert out.returncode == 0, out.stderr
    assert "partial" not in out.stdout
    merged, whole = load(pytester.path / "merged.json"), load(pytester.path / "all.json")
    assert nodeids(merged) == nodeids(whole)
    assert untimed(merged["evals"]) == untimed(whole["evals"])
    assert merged["totals"] == whole["totals"]
    assert merged["run"]["partial"] is False and merged["run"]["problems"] == []


def test_a_missing_shard_fails_the_merge_unless_allowed(
    run: Run, pytester: pytest.Pytester
) -> None:
    run_shards(run)
    out = merge(pytester.path, "merged.json", "shard1.json", "shard2.json")
    assert out.returncode == 2
    assert "shard 3/3 is missing" in out.stderr and "--allow-partial" in out.stderr
    assert not (pytester.path / "merged.json").exists()
    out = merge(pytester.path, "--allow-partial", "merged.json", "shard1.json", "shard2.json")
    assert out.returncode == 0, out.stderr
    assert "partial" in out.stdout and "shard 3/3 is missing" in out.stdout
    merged = load(pytester.path / "merged.json")
    assert merged["run"]["partial"] is True
    assert merged["run"]["problems"] == ["shard 3/3 is missing"]
    assert len(nodeids(merged)) == 8


def test_a_shard_given_twice_fails_the_merge_unless_allowed(
    run: Run, pytester: pytest.Pytester
) -> None:
    run_shards(run)
    reports = ["shard1.json", "shard2.json", "shard2.json", "shard3.json"]
    out = merge(pytester.path, "merged.json", *reports)
    assert out.returncode == 2
    assert "shard 2/3 is given twice (shard2.json, shard2.json)" in out.stderr
    assert "--allow-partial" in out.stderr
    out = merge(pytester.path, "--allow-partial", "merged.json", *reports)
    assert out.returncode == 0, out.stderr
    merged = load(pytester.path / "merged.json")
    assert merged["run"]["partial"] is True
    suite = load(pytester.path / "shard1.json")["run"]["shard"]["suite"]
    assert sorted(nodeids(merged)) == suite  # each run counted once


def test_shards_of_different_splits_do_not_merge(run: Run, pytester: pytest.Pytester) -> None:
    run_shards(run)
    run("evals", "--looplet-shard=1/2", "--looplet-report=half.json")
    out = merge(
        pytester.path, "merged.json", "shard1.json", "shard2.json", "shard3.json", "half.json"
    )
    assert out.returncode == 2
    assert "half.json is shard 1/2 but shard1.json is shard 1/3" in out.stderr


def test_a_shard_under_xdist_reports_the_same_split(run: Run, pytester: pytest.Pytester) -> None:
    run("evals", "--looplet-shard=2/3", "--looplet-report=serial.json")
    result = run("evals", "-n", "2", "--looplet-shard=2/3", "--looplet-report=xdist.json")
    result.assert_outcomes(passed=5)
    serial, xdist = load(pytester.path / "serial.json"), load(pytester.path / "xdist.json")
    assert xdist["run"]["shard"] == serial["run"]["shard"]
    assert nodeids(xdist) == nodeids(serial)


def test_looplet_merge_runs_without_pytest(run: Run, pytester: pytest.Pytester) -> None:
    run_shards(run)
    out = merge(
        pytester.path,
        "merged.json",
        "shard1.json",
        "shard2.json",
        "shard3.json",
        without_pytest=True,
    )
    assert out.returncode == 0, out.stderr
    assert "pytest modules loaded: []" in out.stdout
    assert len(nodeids(load(pytester.path / "merged.json"))) == 12


def test_the_report_and_cli_modules_never_import_pytest(tmp_path: Path) -> None:
    code = (
        "import sys, looplet.cli, looplet.evals.report as r\n"
        "r.write_report('a.json', {'schema': r.SCHEMA, 'version': 1, 'run': {}, 'evals': []})\n"
        "r.write_report('b.json', r.merge_reports(['a.json']))\n"
        "r.load_report('b.json')\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in "
        "('pytest', '_pytest', 'pytest_looplet')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("shard", "field"),
    [
        ({"index": 4, "total": 3, "suite": [], "items": []}, "run.shard"),
        ({"index": 1, "total": 3, "suite": "evals", "items": []}, "run.shard.suite"),
        ("1/3", "run.shard"),
    ],
)
def test_a_malformed_shard_entry_is_named(
    run: Run, pytester: pytest.Pytester, shard: object, field: str
) -> None:
    run_shards(run)
    doc = load(pytester.path / "shard1.json")
    doc["run"]["shard"] = shard
    (pytester.path / "bad.json").write_text(json.dumps(doc), encoding="utf-8")
    out = merge(pytester.path, "merged.json", "bad.json", "shard2.json", "shard3.json")
    assert out.returncode == 2
    assert f"bad.json: field {field}: expected" in out.stderr
