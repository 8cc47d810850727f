"""Test helpers: scripted model backends, and a loopback OpenAI- and Anthropic-compatible server.

:class:`MockLLMBackend` / :class:`AsyncMockLLMBackend` answer the loop in-process from a
script, for unit tests of the loop itself. :class:`ScriptedOpenAIServer` serves a script over
real HTTP on ``127.0.0.1``, so provider code runs with the real SDK: the ``openai`` SDK at
``server.base_url`` (Chat Completions), the ``anthropic`` SDK at ``server.url`` (Messages).
Build its script with :func:`text_reply`, :func:`tool_reply` and :func:`call`,
:func:`error_reply`, :func:`slow_reply`, and :func:`cut_stream` for a stream that breaks off
part-way. Standard library only.

Each name loads on first use: a test that takes only ``MockLLMBackend`` never imports the
server's ``http.server`` and threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    **dict.fromkeys(("AsyncMockLLMBackend", "MockLLMBackend"), "looplet.testing.mock"),
    **dict.fromkeys(
        (
            "RecordedRequest",
            "call",
            "cut_stream",
            "error_reply",
            "slow_reply",
            "text_reply",
            "tool_reply",
        ),
        "looplet.testing._script",
    ),
    "ScriptedOpenAIServer": "looplet.testing._server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'looplet.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute read
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
