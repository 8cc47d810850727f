"""Suite-level cassette settings (ini keys and the ``looplet_cassette_config`` fixture),
what pytest-recording users are told, and cassettes in other tools' formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._greeter import CONFTEST, recording

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

EVAL = """
def eval_greets_alice(looplet_agent):
    traj = looplet_agent.run("Greet Alice, then finish.")
    assert traj.called("greet", name="Alice")
"""

CASSETTE = Path("cassettes", "eval_greeter", "eval_greets_alice.yaml")


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest with the plugin in a subprocess, nothing autoloaded."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_greeter=EVAL)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "--looplet-evals", "-p", "no:cacheprovider", *args)
        return pytester.runpytest_subprocess(*argv)

    return run


def record(run: Run, monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    with recording(monkeypatch):
        run("--looplet-record-mode=all", *args).assert_outcomes(passed=1)


def note_lines(result: pytest.RunResult) -> list[str]:
    """The plugin's notes: lines of its own, not the header's settings line."""
    return [
        line
        for line in result.outlines
        if line.startswith("looplet: ") and not line.startswith("looplet: evals ")
    ]


# -- pytest-recording ------------------------------------------------------------------------

SCORE_EVAL = "def eval_scores():\n    return 1.0\n"


@pytest.mark.parametrize(("given", "equivalent"), [("rewrite", "all"), ("once", "once")])
def test_pytest_recordings_record_mode_names_the_looplet_flag_to_use(
    run: Run, pytester: pytest.Pytester, given: str, equivalent: str
) -> None:
    pytester.makepyfile(eval_scores=SCORE_EVAL)
    # pytest-recording really loaded; -W error: the note is no warning that could fail a run.
    argv = ("-p", "pytest_recording.plugin", "-W", "error", "eval_scores.py")
    result = run(*argv, f"--record-mode={given}")
    result.assert_outcomes(passed=1)
    notes = note_lines(result)
    assert len(notes) == 2  # in the header and again at the end, where -q users see it
    assert f"--record-mode={given}" in notes[-1]
    assert f"--looplet-record-mode={equivalent}" in notes[-1]
    assert note_lines(run(*argv, f"--record-mode={given}", "-q"))  # -q hides the header only

    # Both given and in agreement, or nothing given: nothing to say.
    both = run(*argv, f"--record-mode={given}", f"--looplet-record-mode={equivalent}")
    both.assert_outcomes(passed=1)
    assert not [line for line in note_lines(both) if "--record-mode" in line]
    assert not [line for line in note_lines(run(*argv)) if "--record-mode" in line]


def test_a_conftest_vcr_config_is_named_as_not_applying_to_evals(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(eval_scores=SCORE_EVAL)
    (pytester.path / "conftest.py").write_text(
        CONFTEST + "\n@pytest.fixture\ndef vcr_config():\n    return {'filter_headers': ['x']}\n"
    )
    result = run("-p", "pytest_recording.plugin", "eval_scores.py")
    result.assert_outcomes(passed=1)
    [note] = note_lines(result)
    assert "vcr_config" in note and str(pytester.path / "conftest.py") in note
    assert "looplet_cassette_config" in note and "looplet_cassette_match_on" in note


# -- ini keys and the looplet_cassette_config fixture ----------------------------------------


def test_ini_keys_change_what_a_request_must_match(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    pytester.makeconftest(CONFTEST.replace("Greet someone.", "Greet a person."))
    run().assert_outcomes(failed=1)  # the default: the body (tools included) must match

    pytester.makeini("[pytest]\nlooplet_cassette_ignore_body_fields = tools\n")
    run().assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nlooplet_cassette_match_on = method host path\n")
    run().assert_outcomes(passed=1)
    # Ignoring another field keeps the default ones and still matches the tools.
    pytester.makeini("[pytest]\nlooplet_cassette_ignore_body_fields = seed\n")
    run().assert_outcomes(failed=1)


def test_ini_filter_headers_keep_a_header_off_disk(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nlooplet_cassette_filter_headers = user-agent x-stainless-lang\n")
    record(run, monkeypatch)
    request = json.loads((pytester.path / CASSETTE).read_text())["interactions"][0]["request"]
    names = {name.lower() for name in request["headers"]}
    assert "content-type" in names
    assert not names & {"user-agent", "x-stainless-lang"}
    run().assert_outcomes(passed=1)


def test_an_unknown_matcher_in_the_ini_is_a_usage_error_naming_the_key(run: Run) -> None:
    result = run("-o", "looplet_cassette_match_on=method pathh")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*looplet_cassette_match_on*'pathh'*'path'*"])


CONFIG_FIXTURE = """
@pytest.fixture
def looplet_cassette_config(looplet_cassette_config):
    return {**looplet_cassette_config, "match_on": ["method", "path"]}
"""


def test_a_looplet_cassette_config_fixture_overrides_the_suites_settings(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    changed = CONFTEST.replace("Greet someone.", "Greet a person.")
    pytester.makeconftest(changed)
    run().assert_outcomes(failed=1)
    pytester.makeconftest(changed + CONFIG_FIXTURE)
    run().assert_outcomes(passed=1)

    pytester.makeconftest(changed + CONFIG_FIXTURE.replace('"match_on"', '"record_mode"'))
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*looplet_cassette_config*record_mode*--looplet-record-mode*"])
    pytester.makeconftest(changed + CONFIG_FIXTURE.replace('"match_on"', '"match_onn"'))
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*looplet_cassette_config*'match_onn'*match_on*"])


# -- cassettes of other tools ----------------------------------------------------------------


def as_pydantic_ai(looplet_text: str) -> str:
    """A looplet cassette rewritten the way pydantic-ai's test suite stores them: vcrpy's
    YAML, with JSON bodies as ``parsed_body`` instead of ``body``."""

    def side(node: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in node.items() if k != "body"}
        out["headers"] = {k: v if isinstance(v, list) else [v] for k, v in node["headers"].items()}
        out["parsed_body"] = node["body"]["json"]
        return out

    document = json.loads(looplet_text)
    interactions = [
        {"request": side(item["request"]), "response": side(item["response"])}
        for item in document["interactions"]
    ]
    return yaml.safe_dump({"interactions": interactions, "version": 1})


def test_a_pydantic_ai_cassette_replays(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(run, monkeypatch)
    path = pytester.path / CASSETTE
    path.write_text(as_pydantic_ai(path.read_text()))
    assert "parsed_body:" in path.read_text()
    run().assert_outcomes(passed=1)


RUBY_VCR = """\
---
http_interactions:
- request:
    method: post
    uri: https://api.openai.com/v1/chat/completions
    body:
      encoding: UTF-8
      string: '{}'
    headers: {}
  response:
    status:
      code: 200
      message: OK
    headers: {}
    body:
      encoding: UTF-8
      string: '{}'
  recorded_at: Tue, 01 Apr 2025 00:00:00 GMT
recorded_with: VCR 6.3.1
"""


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (RUBY_VCR, "Ruby VCR"),
        (json.dumps({"log": {"version": "1.2", "entries": []}}), "HAR"),
        (json.dumps({"format": "looplet-cassette/9", "interactions": []}), "newer looplet"),
    ],
)
def test_a_cassette_of_another_format_is_named_with_what_to_do(
    run: Run, pytester: pytest.Pytester, text: str, kind: str
) -> None:
    path = pytester.path / CASSETTE
    path.parent.mkdir(parents=True)
    path.write_text(text)
    result = run()
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "CassetteUnsupportedFormatError" in out
    assert kind in out and str(CASSETTE) in out
    assert "edited by hand" not in out  # it is not a damaged looplet file
