"""The provider key never reaches an artefact: a gateway that echoes the key in its 401 body
leaves no trace of it in cassettes, the JUnit XML, the JSON and HTML reports or the terminal,
also under xdist; and the redactor itself (credentials in use, key shapes, ordinary text)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from looplet._redact import REDACTED, Redactor, redact, redact_text, remember_credential
from looplet.testing import RecordedRequest, ScriptedModelServer, error_reply

pytest_plugins = ["pytester"]

KEY = "sk-test-SECRETSECRET1234567890"
# A key of no known shape: only "it is the key in use" can catch it.
PLAIN_KEY = "gateway.PLAINKEY.271828"
Run = Callable[..., pytest.RunResult]

CONFTEST = """
import pytest
from looplet import BaseToolRegistry, ToolSpec

@pytest.fixture
def looplet_tools():
    tools = BaseToolRegistry()
    tools.register(ToolSpec(name="done", description="Finish.", parameters={"answer": "str"},
                            execute=lambda *, answer: {"answer": answer}))
    return tools
"""

EVAL = """
import logging
import sys

import pytest

from looplet.backends import LLMRequest
from looplet.messages import Message

def eval_agent_meets_the_gateway(looplet_agent):
    looplet_agent.run("Say hi, then finish.")

def eval_llm_error_is_printed_logged_and_recorded(looplet_llm, record_property):
    try:
        looplet_llm.complete(LLMRequest([Message.user("Hi")]))
    except Exception as exc:
        print("gateway said:", exc)
        print("gateway said:", exc, file=sys.stderr)
        logging.getLogger("gateway").error("gateway said: %s", exc)
        record_property("gateway_error", str(exc))
        raise

def eval_llm_error_in_an_assertion(looplet_llm):
    try:
        looplet_llm.complete(LLMRequest([Message.user("Hello")]))
    except Exception as exc:
        error = str(exc)
    assert "accepted" in error

def eval_llm_error_as_a_skip_reason(looplet_llm):
    try:
        looplet_llm.complete(LLMRequest([Message.user("Skip?")]))
    except Exception as exc:
        pytest.skip(f"gateway: {exc}")

def eval_llm_error_as_an_xfail_reason(looplet_llm):
    try:
        looplet_llm.complete(LLMRequest([Message.user("Xfail?")]))
    except Exception as exc:
        pytest.xfail(f"gateway: {exc}")
"""


def echo_the_key(request: RecordedRequest) -> object:
    """What a careless gateway does: put the key it was sent in the error."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    return error_reply(401, f"Invalid API key {key} was refused", type="auth_error")


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Record the evals against the echoing gateway with ``key`` in the environment."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    (pytester.mkpydir("evals") / "eval_gateway.py").write_text(EVAL)

    def run(key: str, *args: str) -> pytest.RunResult:
        monkeypatch.setenv("OPENAI_API_KEY", key)
        with ScriptedModelServer([echo_the_key] * 20) as server:
            monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
            result = pytester.runpytest_subprocess(
                *("-p", "pytest_looplet.plugin", "-p", "no:cacheprovider", "--looplet-evals"),
                *("--looplet-record-mode=all", "--junitxml=out/junit.xml"),
                *("--looplet-report=out/report.json", "--looplet-html=out/report.html"),
                *("-o", "junit_logging=all", "-o", "junit_family=xunit1"),
                *("-rA", "-vv", "--showlocals", "evals", *args),
            )
        # The key really went out, so the run could have leaked it.
        assert any(key in r.headers.get("authorization", "") for r in server.requests)
        return result

    return run


def assert_no_key_anywhere(pytester: pytest.Pytester, result: pytest.RunResult, key: str) -> None:
    result.assert_outcomes(failed=3, skipped=1, xfailed=1)
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"junit.xml", "report.json", "report.html"} <= names
    assert any(p.suffix == ".yaml" for p in written)  # the cassettes were recorded
    leaks = [str(p) for p in written if key[:12].encode() in p.read_bytes()]
    assert leaks == []  # not the key, nor the key cut short
    assert key[:12] not in result.stdout.str() + result.stderr.str()
    # The failures are still told, with the key replaced.
    assert f"Invalid API key {REDACTED} was refused" in result.stdout.str()
    junit = (pytester.path / "out" / "junit.xml").read_text()
    assert "Invalid API key &lt;redacted&gt; was refused" in junit
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    messages = [i.get("message") or "" for e in report["evals"] for i in e["items"]]
    assert len(messages) == 5 and all(REDACTED in m for m in messages), messages


@pytest.mark.parametrize("key", [KEY, PLAIN_KEY])
def test_an_echoed_key_reaches_no_artefact(run: Run, pytester: pytest.Pytester, key: str) -> None:
    assert_no_key_anywhere(pytester, run(key), key)


def test_an_echoed_key_reaches_no_artefact_under_xdist(run: Run, pytester: pytest.Pytester) -> None:
    assert_no_key_anywhere(pytester, run(KEY, "-p", "xdist", "-n", "2"), KEY)


# -- the redactor itself -------------------------------------------------------------------


def test_environment_credentials_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "acme-0000-private")
    monkeypatch.setenv("HF_TOKEN", "hf_opaqueTOKENvalue")
    monkeypatch.setenv("PAYMENTS_CLIENT_SECRET", "not a shape but secret")
    monkeypatch.setenv("SHORT_TOKEN", "abc123")  # too short to look for
    monkeypatch.setenv("ACME_URL", "acme-0000-public-url")  # not a credential's name
    text = (
        "key acme-0000-private, token hf_opaqueTOKENvalue, not a shape but secret, "
        "abc123, acme-0000-public-url"
    )
    assert redact_text(text) == (
        f"key {REDACTED}, token {REDACTED}, {REDACTED}, abc123, acme-0000-public-url"
    )


def test_a_registered_client_key_is_redacted_even_cut_short() -> None:
    remember_credential("gw-key-7a1b2c3d4e5f")
    assert redact_text("sent gw-key-7a1b2c3d4e5f") == f"sent {REDACTED}"
    assert redact_text("sent gw-key-7a1b...") == f"sent {REDACTED}..."
    remember_credential("short")  # trivial values are not registered
    assert redact_text("a short note") == "a short note"


def test_backends_register_their_client_key() -> None:
    import openai

    from looplet.backends import OpenAIBackend

    client = openai.OpenAI(api_key="proxy-cred-98765xyz", base_url="http://127.0.0.1:9/v1")
    with OpenAIBackend(client, model="m"):
        pass
    assert redact_text("the proxy-cred-98765xyz key") == f"the {REDACTED} key"


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnop1234",
        "sk-ant-api03-AbCdEfGhIjKlMnOp12345",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "AKIAABCDEFGHIJKLMNOP",
        "xoxb-1234567890-abcdef",
    ],
)
def test_key_shapes_are_redacted(secret: str) -> None:
    assert redact_text(f"got {secret}.") == f"got {REDACTED}."


def test_bearer_tokens_keep_their_scheme() -> None:
    assert redact_text("Authorization: Bearer abc.def-123456") == (
        f"Authorization: Bearer {REDACTED}"
    )


@pytest.mark.parametrize(
    "text",
    [
        "The agent greeted Alice in 2 steps and used 1,234 tokens.",
        "sk-learn-compatible estimators are fine; so is task-1234.",
        "bearer of bad news",
        "max_tokens=4096, input_tokens=12, api_key=None",
        "see https://example.com/docs/v1/chat/completions?page=2",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_data_is_redacted_in_its_strings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDGET_API_KEY", "widget-key-00042")
    doc = {"evals": [{"message": "refused widget-key-00042", "score": 0.5, "key_points": "x"}]}
    assert redact(doc) == {"evals": [{"message": f"refused {REDACTED}", "score": 0.5,
                                      "key_points": "x"}]}  # fmt: skip
    assert redact(b"raw widget-key-00042") == f"raw {REDACTED}".encode()


def test_provenance_redactor_uses_the_credentials_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_TOKEN", "gateway-tok-31415")
    assert Redactor().scrub({"note": "gateway-tok-31415"}) == {"note": REDACTED}


def test_checkpoints_do_not_keep_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from looplet.checkpoint import FileCheckpointStore
    from looplet.testing import MockLLMBackend

    monkeypatch.setenv("TOOLBOX_SECRET", "toolbox-secret-271828")
    from looplet import BaseToolRegistry, ToolSpec, composable_loop

    tools = BaseToolRegistry()
    tools.register(
        ToolSpec(name="done", description="Finish.", parameters={"answer": "str"},
                 execute=lambda *, answer: {"answer": answer})
    )  # fmt: skip
    llm = MockLLMBackend(['{"tool": "done", "args": {"answer": "toolbox-secret-271828"}}'])
    store = FileCheckpointStore(tmp_path / "runs")
    list(composable_loop(llm=llm, tools=tools, task="use toolbox-secret-271828",
                         checkpoint=store))  # fmt: skip
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]  # snapshots, journals
    assert files and not [p for p in files if b"toolbox-secret-271828" in p.read_bytes()]


def test_a_cassette_keeps_no_credential_from_a_body_and_still_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    from looplet.cassettes import use_cassette
    from looplet.testing import text_reply

    path = tmp_path / "body.yaml"
    monkeypatch.setenv("INVENTORY_TOKEN", "inv-tok-1618033988")
    shaped = "sk-proj-AbCdEf0123456789xyz"

    def ask(url: str) -> str:
        with openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0) as client:
            prompt = f"Use inv-tok-1618033988 and {shaped}."
            completion = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
        return completion.choices[0].message.content or ""

    with ScriptedModelServer([text_reply(f"Done with {shaped}.")]) as server:
        url = server.base_url
        with use_cassette(path, "once"):
            assert ask(url) == f"Done with {shaped}."  # the live run sees the real reply
        assert "inv-tok-1618033988" in server.requests[0].raw.decode()
    data = path.read_bytes()
    assert b"inv-tok-1618033988" not in data and shaped.encode() not in data
    with use_cassette(path, "none"):  # the live request is redacted the same way to match
        assert ask(url) == f"Done with {REDACTED}."
