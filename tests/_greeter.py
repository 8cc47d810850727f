"""The greeter agent that the plugin's end-to-end tests write into their pytester folders."""

from __future__ import annotations

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
