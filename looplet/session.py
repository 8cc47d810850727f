"""The original looplet's ``looplet.session`` path, kept so that old imports explain themselves.

``SessionLog`` and ``LogEntry`` are gone: the :class:`~looplet.types.Trajectory` is the record
of a run, and a hook's ``session_log`` argument is its list of steps. Asking for either says
so (see ``docs/migration.md``).
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    from looplet._moved import missing

    missing(__name__, name)
