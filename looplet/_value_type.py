"""``@value_type``: the decorator of looplet's records (calls, results, steps, messages...).

What a value type promises, each checked by a test (tests/test_value_types.py, and mypy over
tests/typing/):

* **Read-only to type checkers.** The decorator is a PEP 681 ``dataclass_transform`` with
  ``frozen_default=True``: mypy and pyright reject assigning to a field. Make a changed
  copy with ``dataclasses.replace``.
* **Not frozen at run time.** ``__init__`` stores each field directly. A runtime freeze
  (``@dataclass(frozen=True)``) stores each field through ``object.__setattr__``: 0.64 µs
  against 0.16 µs for a six-field ``Message``, and measured on the loop
  (bench/step_overhead.py --cpu) 9.3 µs a step against 6.4 µs, 4.0x the hand-written
  reference against 2.8x (the goal is 3x). So an assignment at run time is not stopped,
  and code that makes one breaks the records' contract; assigning a name that is not a
  field raises ``AttributeError`` (slots).
* **Equal by value**, field by field, as dataclasses are.
* **Hashable by value**, consistently with equality: the hash is taken over the fields'
  contents, with mappings, lists, tuples and other sequences (strings aside) and sets
  hashed by what they hold, recursively, so ``hash(ToolCall("greet", {"name": "A"}))``
  works and equal records hash alike. Any other value is hashed as itself; one that is not
  hashable (an object with ``__eq__`` and no ``__hash__``) counts as one fixed marker, as does
  anything nested more than :data:`MAX_HASH_DEPTH` levels deep (a circular list included).
  The hash reads the fields when taken: a record whose dict is changed afterwards, against
  the contract, hashes differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, dataclass_transform

__all__ = ["MAX_HASH_DEPTH", "hash_form", "value_type"]

T = TypeVar("T")

#: How deep :func:`hash_form` follows nested containers; deeper ones are one marker.
MAX_HASH_DEPTH = 100

_ATOMS = frozenset((str, int, float, bool, type(None), bytes))


class _Marker:
    """A fixed stand-in, hashed as itself, for a value :func:`hash_form` does not follow."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_UNHASHABLE = _Marker("unhashable")
_TOO_DEEP = _Marker("nested too deep")


def hash_form(value: Any, depth: int = 0) -> Any:
    """A hashable form of ``value`` whose hash equal values share.

    Mappings become a frozenset of ``(key, form)`` pairs, sequences (not ``str`` or
    ``bytes``; a ``bytearray`` becomes ``bytes``) a tuple of forms, sets (and key views) a
    frozenset of forms; any other hashable value is
    itself; an unhashable one, or one nested more than :data:`MAX_HASH_DEPTH` deep, a fixed
    marker. (A list and a tuple of the same items share a form: unequal values may collide.)
    """
    kind = type(value)
    if kind in _ATOMS:
        return value
    if depth >= MAX_HASH_DEPTH:
        return _TOO_DEEP
    depth += 1
    if kind is bytearray:  # equal to the bytes it holds, so hashed as them
        return bytes(value)
    if isinstance(value, Mapping):
        return frozenset((key, hash_form(item, depth)) for key, item in value.items())
    if kind is list or kind is tuple or (isinstance(value, Sequence) and kind is not str):
        return tuple(hash_form(item, depth) for item in value)
    if isinstance(value, Set):
        return frozenset(hash_form(item, depth) for item in value)
    try:
        hash(value)
    except TypeError:
        return _UNHASHABLE
    return value


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value_type(cls: type[T]) -> type[T]:
    """Make ``cls`` a slotted dataclass, read-only to type checkers, equal and hashable by value.

    The hash covers the fields that take part in equality (see :func:`hash_form`).
    """
    made = dataclass(slots=True)(cls)  # eq=True and not frozen: __hash__ is None until set
    compared = fields(made)  # type: ignore[arg-type]
    names = tuple(f.name for f in compared if f.compare and f.hash is not False)

    def __hash__(self: Any) -> int:
        return hash(tuple(hash_form(getattr(self, name)) for name in names))

    __hash__.__qualname__ = f"{made.__qualname__}.__hash__"
    made.__hash__ = __hash__  # type: ignore[method-assign]
    return made
