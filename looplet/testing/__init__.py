"""Test helpers: scripted model backends, and a loopback OpenAI- and Anthropic-compatible server.

:class:`MockLLMBackend` / :class:`AsyncMockLLMBackend` answer the loop in-process from a
script, for unit tests of the loop itself. :class:`ScriptedOpenAIServer` serves a script over
real HTTP on ``127.0.0.1``, so provider code runs with the real SDK: the ``openai`` SDK at
``server.base_url`` (Chat Completions), the ``anthropic`` SDK at ``server.url`` (Messages).
Build its script with :func:`text_reply`, :func:`tool_reply` and :func:`call`,
:func:`error_reply`, :func:`slow_reply`, and :func:`cut_stream` for a stream that breaks off
part-way. Standard library only.
"""

from __future__ import annotations

from looplet.testing._script import (
    RecordedRequest,
    call,
    cut_stream,
    error_reply,
    slow_reply,
    text_reply,
    tool_reply,
)
from looplet.testing._server import ScriptedOpenAIServer
from looplet.testing.mock import AsyncMockLLMBackend, MockLLMBackend

__all__ = [
    "AsyncMockLLMBackend",
    "MockLLMBackend",
    "RecordedRequest",
    "ScriptedOpenAIServer",
    "call",
    "cut_stream",
    "error_reply",
    "slow_reply",
    "text_reply",
    "tool_reply",
]
