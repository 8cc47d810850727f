"""The original looplet's ``looplet.streaming`` path: ``StreamingHook`` is :mod:`looplet.observe`'.

It now takes callbacks (``StreamingHook(on_text=print)``, ``on_chunk=``, ``queue=``) instead
of an emitter; the original's emitters and event classes are gone, since every lifecycle event
reaches a hook's ``on_event`` as a :class:`~looplet.hooks.LoopEvent`. Asking for one of them
says so (see ``docs/migration.md``).
"""

from __future__ import annotations

from typing import Any

from looplet.observe import StreamingHook

__all__ = ["StreamingHook"]


def __getattr__(name: str) -> Any:
    from looplet._moved import missing

    missing(__name__, name)
