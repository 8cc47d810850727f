"""A faster ``__init__`` for the frozen, slotted dataclasses built on every loop step.

``@dataclass(frozen=True, slots=True)`` assigns each field through
``object.__setattr__``, looked up anew for every field; five such objects are built per step,
and that showed as about a seventh of the loop's own overhead (bench/step_overhead.py).
:func:`fast_init` replaces the generated ``__init__`` with one that stores each field through
its slot descriptor, bound once in a closure. The class stays a frozen dataclass: same
fields, defaults, signature, equality, ``repr``, ``replace`` and ``FrozenInstanceError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")

_NO_VALUE = object()


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` an ``__init__`` that skips ``__setattr__``.

    (The dataclass's own ``__init__`` is still generated first, so that type checkers see
    the constructor's signature.)
    """
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    env: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    signature: list[str] = []
    body: list[str] = []
    for f in params:
        if not f.init:
            raise TypeError(
                f"fast_init does not support init=False fields ({cls.__name__}.{f.name})"
            )
        env[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            env[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_factory_{f.name}"] = f.default_factory
            signature.append(f"{f.name}=_NO_VALUE")
            body.append(f"    if {f.name} is _NO_VALUE: {f.name} = _factory_{f.name}()")
        else:
            signature.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    # The names bound in `env` become closure cells of __init__ (fast loads), not globals.
    source = (
        f"def _make({', '.join(env)}):\n"
        f"  def __init__(self, {', '.join(signature)}):\n"
        + "\n".join("  " + line for line in body or ["    pass"])
        + "\n  return __init__\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, {}, namespace)
    init = namespace["_make"](**env)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
