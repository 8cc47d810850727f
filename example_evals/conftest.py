"""Fixtures for the example evals: a real OpenAI SDK client talking to a loopback server.

Each eval scripts what the model says; the agent's own code (tools, hooks, prompts) runs for
real, and the requests the model would have received are checked on the server's log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openai import OpenAI

from looplet.backends import OpenAIBackend
from looplet.testing import ScriptedOpenAIServer

ScriptedModel = Callable[[list[Any]], tuple[OpenAIBackend, ScriptedOpenAIServer]]


@pytest.fixture
def scripted_model() -> Iterator[ScriptedModel]:
    """Start a loopback server with a script; return an OpenAIBackend wired to it."""
    opened: list[tuple[ScriptedOpenAIServer, OpenAI]] = []

    def make(script: list[Any]) -> tuple[OpenAIBackend, ScriptedOpenAIServer]:
        server = ScriptedOpenAIServer(script)
        server.start()
        client = OpenAI(base_url=server.base_url, api_key="sk-offline-example")
        opened.append((server, client))
        return OpenAIBackend(client, model="gpt-4o-mini"), server

    yield make
    for server, client in opened:
        client.close()
        server.stop()
