"""A package's public names, bound lazily from one table (PEP 562).

Each public package (``looplet``, ``looplet.evals``, ``looplet.testing``) keeps one table,
``name -> module that defines it``, and gets its ``__getattr__`` and ``__dir__`` from
:func:`lazy_exports`; its ``__all__`` is the table's names, sorted. A name loads its module on
first access and is then kept on the package, so the next access is a plain attribute read.

Beside the table, a package may list:

* **deprecated aliases**, ``old name -> "module.NewName"``: names that an earlier README or the
  original looplet 0.1.7 imported from the package. They still work, with a
  ``DeprecationWarning`` at the line that asked for them naming the import to use instead,
  and are not in ``__all__``.
* **moved names**, ``name -> module``: names the package exported once, undocumented; asking
  for one raises an ``ImportError`` that names the module to import it from.

Anything else goes to :func:`looplet._moved.missing` (an original name that is gone says why;
an unknown name is a plain ``AttributeError``). This module imports nothing at load time: it
runs on every ``import looplet``, and ``warnings`` loads only when an alias is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for it
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, NoReturn

__all__ = ["deprecated_alias", "lazy_exports"]


def lazy_exports(
    package: str,
    namespace: dict[str, Any],
    exports: Mapping[str, str],
    *,
    deprecated: Mapping[str, str] | None = None,
    moved: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose globals are ``namespace``.

    Args:
        package: the package's name (``__name__``), for messages.
        namespace: the package's ``globals()``: a loaded name is stored there.
        exports: each public name and the module to load it from.
        deprecated: old name -> ``"module.NewName"``; each access warns.
        moved: name -> the module that now holds it; each access raises ``ImportError``.
    """
    aliases = deprecated or {}
    homes = moved or {}

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            if name in aliases:
                import sys

                # `from package import name` asks twice: importlib's hasattr() check, then
                # the import itself. Warn once, at the import.
                if sys._getframe(1).f_code.co_name == "_handle_fromlist":
                    from importlib import import_module

                    module, new = aliases[name].rsplit(".", 1)
                    return getattr(import_module(module), new)
                return deprecated_alias(package, name, aliases[name])
            _not_exported(package, name, homes)
        from importlib import import_module

        value = getattr(import_module(module), name)
        namespace[name] = value  # the next access is a plain attribute read
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


def deprecated_alias(package: str, name: str, target: str, *, stacklevel: int = 3) -> Any:
    """The object ``target`` (``"module.NewName"``), warning that ``package.name`` is deprecated.

    ``stacklevel`` counts frames from the warning to the code that asked: 3 (this function,
    a module's ``__getattr__``, the caller) points the warning at the line that used the name.
    """
    import warnings
    from importlib import import_module

    module, new = target.rsplit(".", 1)
    warnings.warn(
        f"{package}.{name} is deprecated; use `from {module} import {new}` instead (the old "
        "name still works for now)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return getattr(import_module(module), new)


def _not_exported(package: str, name: str, moved: Mapping[str, str]) -> NoReturn:
    home = moved.get(name)
    if home is not None:
        # An ImportError, not an AttributeError: `from looplet import X` would replace an
        # AttributeError with Python's bare "cannot import name", losing where X went.
        raise ImportError(
            f"{package}.{name} is no longer exported from {package}: import it from {home} "
            f"(from {home} import {name}).",
            name=name,
        )
    from looplet._moved import missing

    missing(package, name)
