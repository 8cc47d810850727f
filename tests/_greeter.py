"""The greeter agent that the plugin's end-to-end tests write into their pytester folders."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from looplet.testing import RecordedRequest, ScriptedOpenAIServer, call, tool_reply

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
    with ScriptedOpenAIServer(script(name_of)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-recording-key")
        yield
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
