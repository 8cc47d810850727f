"""The greeter agent that the plugin's end-to-end tests write into their pytester folders."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from looplet.testing import RecordedRequest, ScriptedModelServer, call, tool_reply

CONFTEST = """
import pytest
from looplet import BaseToolRegistry, PermissionEngine, ToolSpec

@pytest.fixture
def looplet_tools():
    tools = BaseToolRegistry()
    tools.register(ToolSpec(name="greet", description="Greet someone.",
                            parameters={"name": "str"},
                            execute=lambda *, name: {"greeting": f"Hello, {name}!"}))
    tools.register(ToolSpec(name="done", description="Finish.", parameters={"answer": "str"},
                            execute=lambda *, answer: {"answer": answer}))
    return tools

@pytest.fixture
def looplet_permissions():
    return PermissionEngine().allow("greet")
"""
"""A conftest.py with the greeter's tools (greet, done) and a permission engine allowing greet."""


def _alice_or_bob(task: str) -> str:
    return "Alice" if "Alice" in task else "Bob"


def script(
    name_of: Callable[[str], str] = _alice_or_bob,
) -> list[Callable[[RecordedRequest], object]]:
    """The scripted model of the greeter: greet ``name_of(task)``, then call ``done``."""

    def reply(request: RecordedRequest) -> object:
        body = request.body or {}
        name = name_of(body["messages"][1]["content"])
        if body["messages"][-1]["role"] == "tool":
            return tool_reply(call("done", {"answer": f"Greeted {name}."}))
        return tool_reply(call("greet", {"name": name}))

    return [reply] * 40


@contextlib.contextmanager
def recording(
    monkeypatch: pytest.MonkeyPatch, name_of: Callable[[str], str] = _alice_or_bob
) -> Iterator[None]:
    """Within: the greeter served on loopback, ``OPENAI_BASE_URL`` and a key pointing at it,
    so a run with ``--looplet-record-mode=all`` records its cassettes. After: neither is set,
    so runs replay offline."""
    with ScriptedModelServer(script(name_of)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-recording-key")
        yield
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")


GREET_ALICE = """
def eval_greets_alice(looplet_agent):
    traj = looplet_agent.run("Greet Alice, then finish.")
    assert traj.called("greet", name="Alice")
"""
"""An eval file (``eval_greeter.py``) greeting Alice through ``looplet_agent``."""


def plugin_runner(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, evals: str = GREET_ALICE
) -> Callable[..., pytest.RunResult]:
    """Lay down the greeter's conftest and ``eval_greeter.py``; return a function that runs
    ``pytest --looplet-evals`` on them in a subprocess, the plugin loaded with ``-p`` and
    nothing autoloaded, with no API key, base URL or ``CI`` in the environment."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(eval_greeter=evals)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "--looplet-evals", "-p", "no:cacheprovider", *args)
        return pytester.runpytest_subprocess(*argv)

    return run
