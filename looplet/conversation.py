"""The original looplet's ``looplet.conversation`` path: ``Message`` is :mod:`looplet.messages`'.

The loop keeps the conversation itself, as a list of :class:`~looplet.messages.Message`; the
original's ``Conversation``, ``ContentBlock``, ``MessageRole`` and ``default_summarizer`` are
gone, and asking for one says what replaced it (see ``docs/migration.md``).
"""

from __future__ import annotations

from typing import Any

from looplet.messages import Message

__all__ = ["Message"]


def __getattr__(name: str) -> Any:
    from looplet._moved import missing

    missing(__name__, name)
