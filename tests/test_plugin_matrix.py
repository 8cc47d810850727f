"""A model matrix: ``--looplet-model a,b`` runs each eval that uses the model once per model,
with a cassette folder per model, the model on every report item, and a per-model table in the
terminal and the HTML report; ``@pytest.mark.looplet(models=[...])`` names an eval's own.

Every run here is ``pytest --looplet-evals evals`` in a subprocess, on ``eval_*.py`` files in a
folder, recorded from looplet's scripted server (which speaks both OpenAI's Chat Completions
and Anthropic's Messages) and replayed offline with ``-n 0`` and ``-n 2``.
"""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from looplet.testing import RecordedRequest, ScriptedModelServer, call, tool_reply
from tests._greeter import CONFTEST

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

WORKERS = pytest.mark.parametrize("workers", ["0", "2"], ids=["n0", "n2"])

MODELS = "gpt-4o-mini,anthropic:claude-3-5-haiku-latest,weak-model"
"""Three models over both providers; ``weak-model`` greets the wrong person."""

_KEYS = ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "ANTHROPIC_API_KEY",
         "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL")  # fmt: skip


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``pytest --looplet-evals evals ...`` in a subprocess, with the plugin and xdist only."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in _KEYS:
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider")
        return pytester.runpytest_subprocess(*argv, "--looplet-evals", "evals", *args)

    return run


def _reply(request: RecordedRequest) -> object:
    """The greeter on either API: greet (Bob for ``weak-model``, else Alice), then finish."""
    body: dict[str, Any] = request.body or {}
    last = body["messages"][-1]
    content = last.get("content")
    answered = last["role"] == "tool" or (
        isinstance(content, list) and any(block.get("type") == "tool_result" for block in content)
    )
    if answered:
        return tool_reply(call("done", {"answer": "Greeted."}))
    name = "Bob" if body.get("model") == "weak-model" else "Alice"
    return tool_reply(call("greet", {"name": name}))


@contextlib.contextmanager
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    """Within: one scripted server for both providers, their base URLs and keys pointing at
    it. After: none set, so runs replay offline."""
    with ScriptedModelServer([_reply] * 200) as server:
        # The Anthropic SDK adds /v1/messages itself: its base URL is the server's root.
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        for provider in ("OPENAI", "ANTHROPIC"):
            monkeypatch.setenv(f"{provider}_API_KEY", "sk-test-recording-key")
        yield server
    for provider in ("OPENAI", "ANTHROPIC"):
        monkeypatch.delenv(f"{provider}_BASE_URL")
        monkeypatch.delenv(f"{provider}_API_KEY")


def write(pytester: pytest.Pytester, path: str, source: str) -> None:
    target = pytester.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line and " " not in line]


def models_table(result: pytest.RunResult) -> list[list[str]]:
    """The rows (cells split on runs of spaces) of the terminal's per-model table."""
    lines = result.outlines
    start = lines.index("models (each model's runs of every eval in the matrix):")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith(" ") and not re.match(r"\d+/\d+ ", line):
            break
        rows.append(line.split())
    return rows


GREETER = """
def eval_greets_alice(looplet_agent):
    traj = looplet_agent.run("Greet Alice, then finish.")
    greeted = [step.tool_call.args["name"] for step in traj.calls("greet")]
    return 1.0 if greeted == ["Alice"] else 0.0

def eval_needs_no_model():
    return 1.0
"""

IDS = [
    "evals/eval_greeter.py::eval_greets_alice[gpt-4o-mini]",
    "evals/eval_greeter.py::eval_greets_alice[anthropic:claude-3-5-haiku-latest]",
    "evals/eval_greeter.py::eval_greets_alice[weak-model]",
    "evals/eval_greeter.py::eval_needs_no_model",
]


@WORKERS
def test_a_matrix_over_both_providers_records_per_model_and_compares_them(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    write(pytester, "evals/conftest.py", CONFTEST)
    write(pytester, "evals/eval_greeter.py", GREETER)
    model = f"--looplet-model={MODELS}"

    assert collected(run(model, "--collect-only", "-q", "-n", workers)) == IDS
    with recording(monkeypatch) as server:
        run(model, "-n", "0", "--looplet-record-mode=all").assert_outcomes(passed=3, failed=1)
    paths = {request.path.split("?")[0] for request in server.requests}
    assert paths == {"/v1/chat/completions", "/v1/messages"}  # both providers were asked
    folder = pytester.path / "evals" / "cassettes" / "eval_greeter"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml")) == [
        "anthropic/claude-3-5-haiku-latest/eval_greets_alice.yaml",
        "openai/gpt-4o-mini/eval_greets_alice.yaml",
        "openai/weak-model/eval_greets_alice.yaml",
    ]
    anthropic_cassette = folder / "anthropic/claude-3-5-haiku-latest/eval_greets_alice.yaml"
    assert "/v1/messages" in anthropic_cassette.read_text(encoding="utf-8")

    # Offline, on whichever worker: each model's item replays its own model's cassette.
    result = run(model, "-n", workers, "--looplet-report=r.json", "--looplet-html=r.html")
    result.assert_outcomes(passed=3, failed=1)
    rows = models_table(result)
    assert [(row[0], row[-1]) for row in rows] == [
        ("1/1", "anthropic:claude-3-5-haiku-latest"),
        ("1/1", "openai:gpt-4o-mini"),
        ("0/1", "openai:weak-model"),
    ]
    by_model = {row[-1]: row for row in rows}
    assert by_model["openai:gpt-4o-mini"][1:4] == ["1.00", "[0.21,", "1.00]"]  # Wilson, n=1
    assert by_model["openai:weak-model"][1:5] == ["0.00", "[0.00,", "0.79]", "0.00"]
    assert by_model["openai:gpt-4o-mini"][5] == "2"  # steps: greet, done
    assert by_model["openai:gpt-4o-mini"][7].startswith("$")  # priced
    assert by_model["openai:weak-model"][7] == "-"  # no price for it

    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    items = {item["nodeid"]: item for entry in doc["evals"] for item in entry["items"]}
    assert {nodeid: item["model"] for nodeid, item in items.items()} == {
        IDS[0]: "openai:gpt-4o-mini",
        IDS[1]: "anthropic:claude-3-5-haiku-latest",
        IDS[2]: "openai:weak-model",
        IDS[3]: None,  # it never asked for a model: one item, no model
    }
    assert items[IDS[1]]["cost_usd"] is not None  # priced as claude-3-5-haiku
    assert doc["run"]["options"]["model"] == MODELS
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert "<h2 id='models'>models</h2>" in page
    assert re.findall(r"<tr data-model='([^']+)'>", page) == [
        "anthropic:claude-3-5-haiku-latest",
        "openai:gpt-4o-mini",
        "openai:weak-model",
    ]


def test_one_model_keeps_todays_items_and_cassettes(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single entry is no matrix: plain ids, the old cassette names, no model table; a
    ``provider:`` prefix picks the provider."""
    write(pytester, "evals/conftest.py", CONFTEST)
    write(pytester, "evals/eval_greeter.py", GREETER)
    single = "--looplet-model=anthropic:claude-3-5-haiku-latest"
    with recording(monkeypatch) as server:
        run(single, "--looplet-record-mode=all").assert_outcomes(passed=2)
    assert {request.path.split("?")[0] for request in server.requests} == {"/v1/messages"}
    folder = pytester.path / "evals" / "cassettes" / "eval_greeter"
    assert [str(p.relative_to(folder)) for p in folder.rglob("*.yaml")] == [
        "eval_greets_alice.yaml"
    ]
    result = run(single, "--looplet-report=r.json")
    result.assert_outcomes(passed=2)
    assert "models (each model's runs of every eval in the matrix):" not in result.outlines
    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    assert [item["model"] for entry in doc["evals"] for item in entry["items"]] == [None, None]
    assert doc["run"]["options"]["provider"] == "anthropic"


DATASET_EVAL = """
import pytest

@pytest.mark.looplet(repeat=2)
@pytest.mark.looplet_dataset("cases.yaml")
def eval_greets(looplet_agent, case):
    traj = looplet_agent.run(case.inputs)
    return 1.0 if traj.called("greet", name="Alice") else 0.0
"""


def test_the_matrix_combines_with_dataset_cases_and_repeats(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pytester, "evals/conftest.py", CONFTEST)
    write(pytester, "evals/eval_greet.py", DATASET_EVAL)
    write(pytester, "evals/cases.yaml", "- name: alice\n  inputs: {goal: Greet Alice.}\n")
    model = "--looplet-model=gpt-4o-mini,weak-model"
    ids = [
        f"evals/eval_greet.py::eval_greets[alice-{m}-rep{i}of2]"
        for m in ("gpt-4o-mini", "weak-model")
        for i in (1, 2)
    ]
    assert collected(run(model, "--collect-only", "-q")) == ids
    with recording(monkeypatch):
        run(model, "--looplet-record-mode=all").assert_outcomes(passed=2, failed=2)
    folder = pytester.path / "evals" / "cassettes" / "eval_greet"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml")) == [
        "openai/gpt-4o-mini/eval_greets[alice]-rep1.yaml",
        "openai/gpt-4o-mini/eval_greets[alice]-rep2.yaml",
        "openai/weak-model/eval_greets[alice]-rep1.yaml",
        "openai/weak-model/eval_greets[alice]-rep2.yaml",
    ]
    result = run(model, "-n", "2")
    result.assert_outcomes(passed=2, failed=2)
    assert [(row[0], row[-1]) for row in models_table(result)] == [
        ("2/2", "openai:gpt-4o-mini"),
        ("0/2", "openai:weak-model"),
    ]


MARKED = """
import pytest

@pytest.mark.looplet(models=["gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"])
def eval_on_two_models(looplet_agent, looplet_provider, looplet_model):
    assert looplet_provider in ("openai", "anthropic")
    traj = looplet_agent.run("Greet Alice, then finish.")
    return traj.called("greet", name="Alice")

def eval_default_model(looplet_model):
    return looplet_model == "gpt-4o-mini"
"""


def test_an_evals_marker_names_its_own_models(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(pytester, "evals/conftest.py", CONFTEST)
    write(pytester, "evals/eval_marked.py", MARKED)
    assert collected(run("--collect-only", "-q")) == [
        "evals/eval_marked.py::eval_on_two_models[gpt-4o-mini]",
        "evals/eval_marked.py::eval_on_two_models[anthropic:claude-3-5-haiku-latest]",
        "evals/eval_marked.py::eval_default_model",
    ]
    with recording(monkeypatch):
        run("--looplet-record-mode=all").assert_outcomes(passed=3)
    result = run("-n", "2")
    result.assert_outcomes(passed=3)
    assert [row[-1] for row in models_table(result)] == [
        "anthropic:claude-3-5-haiku-latest",
        "openai:gpt-4o-mini",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gpt-4o-mini,,weak-model", "entry 2 is empty; separate model names with single commas"),
        ("gpt-4o-mini,", "entry 2 is empty"),
        (
            "gemini:pro,gpt-4o-mini",
            "unknown provider 'gemini' in 'gemini:pro'; write "
            "provider:model with a provider of openai, anthropic",
        ),
        ("llama3.1:8b", "or openai:llama3.1:8b for a model whose name holds ':'"),
        ("anthropic:", "'anthropic:' names no model; write anthropic:<model>"),
        (
            "gpt-4o-mini,openai:gpt-4o-mini",
            "'openai:gpt-4o-mini' names the model of 'gpt-4o-mini' again; name each model once",
        ),
    ],
    ids=["empty", "trailing-comma", "unknown-provider", "colon-in-name", "no-model", "twice"],
)
def test_a_bad_model_list_is_a_usage_error_naming_the_option_and_the_fix(
    run: Run, pytester: pytest.Pytester, value: str, expected: str
) -> None:
    write(pytester, "evals/eval_x.py", "def eval_x():\n    return 1.0\n")
    result = run(f"--looplet-model={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = " ".join(result.stderr.str().split())
    assert "looplet: --looplet-model / looplet_model: " in text and expected in text, text


def test_the_ini_takes_a_list_of_models_one_a_line(run: Run, pytester: pytest.Pytester) -> None:
    write(pytester, "evals/conftest.py", CONFTEST)
    write(pytester, "evals/eval_greeter.py", GREETER)
    pytester.makeini(
        "[pytest]\nlooplet_model =\n    gpt-4o-mini\n    anthropic:claude-3-5-haiku-latest,\n"
        "    weak-model\n"
    )
    assert collected(run("--collect-only", "-q")) == IDS
    # The command line wins over the ini.
    assert collected(run("--looplet-model=weak-model", "--collect-only", "-q")) == [
        "evals/eval_greeter.py::eval_greets_alice",
        "evals/eval_greeter.py::eval_needs_no_model",
    ]


def test_a_bad_marker_model_list_fails_collection_naming_the_eval(
    run: Run, pytester: pytest.Pytester
) -> None:
    write(
        pytester,
        "evals/eval_x.py",
        """
        import pytest

        @pytest.mark.looplet(models=["gpt-4o-mini", "mistral:large"])
        def eval_x(looplet_model):
            return 1.0
        """,
    )
    result = run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*eval_x: @pytest.mark.looplet(models=...): unknown provider 'mistral'*"]
    )
