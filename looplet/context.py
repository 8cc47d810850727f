"""The original looplet's ``looplet.context`` path, kept so that old imports explain themselves.

``ContextPressureHook`` and ``ContextManagerHook`` are gone: set
``LoopConfig(context_budget=ContextBudget(max_tokens=...))`` (:mod:`looplet.compact`) and the
loop compacts the conversation before a request would exceed it. Asking for either says so
(see ``docs/migration.md``).
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    from looplet._moved import missing

    missing(__name__, name)
