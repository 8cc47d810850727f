"""``@value_type``: the decorator of looplet's read-only records, built cheaply.

Steps, tool calls and results, messages and model requests are built several times on
every loop step. ``@dataclass(frozen=True)`` enforces read-only fields at run time by
storing each field of ``__init__`` through ``object.__setattr__``, and building a step's
five records that way cost a sixth of the loop's own overhead (bench/step_overhead.py).

So the records are slotted dataclasses that are frozen *to type checkers*: the decorator
is a PEP 681 ``dataclass_transform`` with ``frozen_default=True``, so mypy and pyright
reject any assignment to a field, while at run time ``__init__`` stores fields directly.
They compare and hash by value, like frozen dataclasses. Treat them as immutable: make a
changed copy with ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

__all__ = ["value_type"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value_type(cls: type[T]) -> type[T]:
    """Make ``cls`` a slotted dataclass, read-only to type checkers and hashable by value."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
