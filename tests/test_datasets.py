"""Dataset files of eval cases (looplet.datasets): the four formats, the CSV mapping, and every
kind of bad file refused with the file, the case and the field it is about."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from looplet import LoopletError, ToolCall, composable_loop
from looplet.assertions import ExpectedStep, trajectory_matches
from looplet.datasets import Case, DatasetError, load_dataset
from looplet.testing import MockLLMBackend
from tests.conftest import make_tools

YAML = """
# comments are fine
- name: alice
  inputs: {goal: Greet Alice}
  expected: Alice
  expected_trajectory:
    - [greet, {name: Alice}]
    - {tool: done, ok: true}
  metadata: {tier: gold, tags: [smoke]}
  threshold: 1
- name: bob
  inputs: {goal: Greet Bob, count: 2}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_dataset_reads_every_field_in_file_order(tmp_path: Path) -> None:
    alice, bob = load_dataset(write(tmp_path, "cases.yaml", YAML))
    assert alice == Case(
        name="alice",
        inputs={"goal": "Greet Alice"},
        expected="Alice",
        expected_trajectory=[ExpectedStep("greet", {"name": "Alice"}), ExpectedStep("done")],
        metadata={"tier": "gold", "tags": ["smoke"]},
        threshold=1.0,
        dataset=str(tmp_path / "cases.yaml"),
    )
    assert (bob.name, bob.inputs, bob.expected, bob.expected_trajectory) == (
        "bob",
        {"goal": "Greet Bob", "count": 2},
        None,
        None,
    )
    assert (bob.metadata, bob.threshold) == ({}, None)


def test_expected_trajectory_is_what_assert_trajectory_takes(tmp_path: Path) -> None:
    alice, _ = load_dataset(write(tmp_path, "cases.yml", YAML))
    loop = composable_loop(
        llm=MockLLMBackend(
            [ToolCall("greet", {"name": "Alice"}), ToolCall("done", {"answer": "ok"})]
        ),
        tools=make_tools(),
        task=alice.inputs,
    )
    list(loop)
    assert alice.expected_trajectory is not None
    assert trajectory_matches(loop.trajectory, alice.expected_trajectory)
    assert not trajectory_matches(loop.trajectory, alice.expected_trajectory[1:])


def test_json_and_json_lines(tmp_path: Path) -> None:
    json_file = write(tmp_path, "c.json", '[{"name": "a", "inputs": {"x": 1}, "expected": [1, 2]}]')
    assert load_dataset(json_file)[0].expected == [1, 2]
    lines = '{"name": "a", "inputs": {}}\n\n{"name": "b", "inputs": {}, "threshold": 0}\n'
    a, b = load_dataset(write(tmp_path, "c.jsonl", lines))
    assert (a.name, b.name, b.threshold) == ("a", "b", 0.0)


def test_csv_columns_fold_into_fields(tmp_path: Path) -> None:
    text = (
        "\ufeffname,inputs.city,inputs.days,expected.country,metadata.tag,threshold,"
        "expected_trajectory\n"
        'paris,Paris,3,FR,eu,0.8,"[""lookup"", [""book"", {""nights"": 3}]]"\n'
        "\n"  # a blank line is no case
        "tokyo,Tokyo,,JP,,,\n"
    )
    paris, tokyo = load_dataset(write(tmp_path, "trips.csv", text))
    assert paris.inputs == {"city": "Paris", "days": "3"}  # cells are strings
    assert paris.expected == {"country": "FR"}
    assert paris.metadata == {"tag": "eu"}
    assert paris.threshold == 0.8
    assert paris.expected_trajectory == [
        ExpectedStep("lookup"),
        ExpectedStep("book", {"nights": 3}),
    ]
    # Empty optional cells are not given; empty inputs and metadata cells are empty strings.
    assert (tokyo.inputs, tokyo.metadata) == ({"city": "Tokyo", "days": ""}, {"tag": ""})
    assert (tokyo.threshold, tokyo.expected_trajectory) == (None, None)
    one = load_dataset(write(tmp_path, "one.csv", "name,inputs.q,expected\na,x,\nb,y,yes\n"))
    assert [case.expected for case in one] == [None, "yes"]


# (file name, text, case index, case name, field): what the error must point at.
BAD_CASES = [
    ("missing-name.yaml", "- inputs: {}\n", 1, None, "name"),
    ("missing-inputs.json", '[{"name": "a", "inputs": {}}, {"name": "b"}]', 2, "b", "inputs"),
    (
        "twice.yaml",
        "- {name: a, inputs: {}}\n- {name: b, inputs: {}}\n- {name: a, inputs: {}}\n",
        3,
        "a",
        "name",
    ),
    ("number-name.yaml", "- {name: 7, inputs: {}}\n", 1, None, "name"),
    ("blank-name.yaml", "- {name: ' a', inputs: {}}\n", 1, " a", "name"),
    ("newline.json", '[{"name": "a\\nb", "inputs": {}}]', 1, "a\nb", "name"),
    ("list-inputs.yaml", "- {name: a, inputs: [1]}\n", 1, "a", "inputs"),
    ("int-keys.yaml", "- {name: a, inputs: {1: x}}\n", 1, "a", "inputs"),
    ("meta.yaml", "- {name: a, inputs: {}, metadata: tag}\n", 1, "a", "metadata"),
    ("bool-threshold.yaml", "- {name: a, inputs: {}, threshold: true}\n", 1, "a", "threshold"),
    ("big-threshold.json", '[{"name": "a", "inputs": {}, "threshold": 1.5}]', 1, "a", "threshold"),
    ("nan.csv", "name,inputs.q,threshold\na,x,nan\n", 1, "a", "threshold"),
    ("word.csv", "name,inputs.q,threshold\na,x,0.5\nb,y,high\n", 2, "b", "threshold"),
    ("unknown.yaml", "- {name: a, inputs: {}, expect: 1}\n", 1, "a", "expect"),
    (
        "steps.yaml",
        "- {name: a, inputs: {}, expected_trajectory: done}\n",
        1,
        "a",
        "expected_trajectory",
    ),
    (
        "step.yaml",
        "- {name: a, inputs: {}, expected_trajectory: [done, 3]}\n",
        1,
        "a",
        "expected_trajectory[2]",
    ),
    (
        "step-json.csv",
        "name,inputs.q,expected_trajectory\na,x,[done\n",
        1,
        "a",
        "expected_trajectory",
    ),
    ("not-a-case.yaml", "- just text\n", 1, None, None),
    ("short-row.csv", "name,inputs.q\na,x\nb\n", 2, None, None),
]


@pytest.mark.parametrize(
    ("file", "text", "index", "name", "field"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_a_bad_case_names_the_file_the_case_and_the_field(
    tmp_path: Path, file: str, text: str, index: int, name: str | None, field: str | None
) -> None:
    path = write(tmp_path, file, text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    error = caught.value
    assert (error.path, error.index, error.name, error.field) == (str(path), index, name, field)
    assert str(error).startswith(f"{path}: case {index}")
    if field is not None:
        assert f": field {field}: " in str(error)


# (file name, text, field or None): a file that fails as a whole, before any case.
BAD_FILES = [
    ("empty.yaml", "", None),
    ("empty.json", "[]", None),
    ("header-only.csv", "name,inputs.q\n", None),
    ("mapping.yaml", "cases: []\n", None),
    ("broken.json", "[{", None),
    ("broken.yaml", "- {name: a\n", None),
    ("code.yaml", "- !!python/object/apply:os.system [echo hi]\n", None),  # safe loader only
    ("broken.jsonl", '{"name": "a", "inputs": {}}\nnot json\n', None),
    ("notes.txt", "name,inputs.q\n", None),
    ("column.csv", "name,inputs.q,treshold\na,x,1\n", "treshold"),
    ("bare-inputs.csv", "name,inputs\na,x\n", "inputs"),
    ("no-inputs.csv", "name,expected\na,x\n", "inputs"),
    ("no-name.csv", "inputs.q\nx\n", "name"),
    ("both.csv", "name,inputs.q,expected,expected.a\nn,x,1,2\n", "expected"),
    ("twice.csv", "name,inputs.q,inputs.q\nn,x,y\n", "inputs.q"),
]


@pytest.mark.parametrize(("file", "text", "field"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
def test_a_bad_file_is_refused_as_a_whole(
    tmp_path: Path, file: str, text: str, field: str | None
) -> None:
    path = write(tmp_path, file, text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert (caught.value.path, caught.value.index, caught.value.field) == (str(path), None, field)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_or_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read it") as caught:
        load_dataset(tmp_path / "nowhere.yaml")
    assert caught.value.path == str(tmp_path / "nowhere.yaml")
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,inputs.q\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(path)


def test_yaml_without_pyyaml_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    with pytest.raises(DatasetError) as caught:
        load_dataset(write(tmp_path, "cases.yaml", YAML))
    assert "looplet[pytest]" in caught.value.problem and "pyyaml" in caught.value.problem
    # JSON and CSV need no third-party package.
    assert load_dataset(write(tmp_path, "cases.json", '[{"name": "a", "inputs": {}}]'))


def test_the_error_is_a_looplet_error_and_can_name_the_file_otherwise(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset(write(tmp_path, "c.json", '[{"name": "a", "inputs": {}, "threshold": 2}]'))
    error = caught.value
    assert isinstance(error, LoopletError) and isinstance(error, ValueError)
    shown = error.with_path("evals/c.json")
    assert (shown.index, shown.name, shown.field, shown.problem) == (
        error.index,
        error.name,
        error.field,
        error.problem,
    )
    assert str(shown).startswith("evals/c.json: case 1 'a': field threshold: ")
