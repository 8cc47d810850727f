"""The original looplet's ``looplet.presets`` path, kept so that old imports explain themselves.

``AgentPreset`` and the ``coding``/``research``/``minimal`` presets are not part of this
version; :mod:`looplet.examples.coding_agent` builds a confined coding agent from plain parts.
Asking for a preset says so (see ``docs/migration.md``).
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    from looplet._moved import missing

    missing(__name__, name)
