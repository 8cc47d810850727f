"""Test helpers: scripted model backends, and a loopback OpenAI- and Anthropic-compatible server.

:class:`MockLLMBackend` / :class:`AsyncMockLLMBackend` answer the loop in-process from a
script, for unit tests of the loop itself. :class:`ScriptedModelServer` serves a script over
real HTTP on ``127.0.0.1``, so provider code runs with the real SDK: the ``openai`` SDK at
``server.base_url`` (Chat Completions), the ``anthropic`` SDK at ``server.url`` (Messages).
Build its script with :func:`text_reply`, :func:`tool_reply` and :func:`call`,
:func:`error_reply`, :func:`slow_reply`, and :func:`cut_stream` for a stream that breaks off
part-way. Standard library only. (``ScriptedOpenAIServer``, its name while it spoke only
OpenAI's API, still imports, with a ``DeprecationWarning``.)

Each name loads on first use: a test that takes only ``MockLLMBackend`` never imports the
server's ``http.server`` and threads.
"""

from __future__ import annotations

from looplet._exports import lazy_exports as _lazy_exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for it
if TYPE_CHECKING:
    # The table below, for type checkers; tests/test_exports.py keeps the two the same.
    from looplet.testing._script import RecordedRequest as RecordedRequest
    from looplet.testing._script import call as call
    from looplet.testing._script import cut_stream as cut_stream
    from looplet.testing._script import error_reply as error_reply
    from looplet.testing._script import slow_reply as slow_reply
    from looplet.testing._script import text_reply as text_reply
    from looplet.testing._script import tool_reply as tool_reply
    from looplet.testing._server import ScriptedModelServer as ScriptedModelServer
    from looplet.testing.mock import AsyncMockLLMBackend as AsyncMockLLMBackend
    from looplet.testing.mock import MockLLMBackend as MockLLMBackend

# The one table of the public names: name -> the module it loads from.
_EXPORTS = {
    "MockLLMBackend": "looplet.testing.mock",
    "AsyncMockLLMBackend": "looplet.testing.mock",
    "ScriptedModelServer": "looplet.testing._server",
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
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(
    __name__,
    globals(),
    _EXPORTS,
    deprecated={"ScriptedOpenAIServer": "looplet.testing.ScriptedModelServer"},
)
