"""Deriving a tool's parameters JSON Schema from a Python function's signature.

Used by :func:`looplet.tools.tool` (``@tool``): type hints give the types, defaults make a
parameter optional, and a Google-style ``Args:`` docstring section gives descriptions.
Normalising and validating schemas lives in :mod:`looplet.schema`.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from looplet.errors import ToolRegistrationError

__all__ = ["schema_from_signature"]

# The headers of a Google-style docstring's parameter section, and one "name (type): text" entry.
_ARGS_HEADERS = frozenset({"Args:", "Arguments:", "Parameters:", "Params:"})
_ARG_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def schema_from_signature(fn: Callable[..., Any]) -> dict[str, Any]:
    """Build a parameters JSON Schema from a function's type hints, defaults and docstring.

    Supported hints: ``str``, ``int``, ``float``, ``bool``, ``list``/``list[X]``,
    ``dict``/``dict[str, X]``, ``X | None`` (``Optional[X]``), unions of simple types,
    ``Literal[...]`` (an enum) and ``Any`` (no type); an unannotated parameter accepts any
    value. A parameter with a default is optional and its default (when JSON-able) is recorded.
    Descriptions come from a Google-style ``Args:`` section of the docstring. A parameter named
    ``ctx`` is left out: the registry passes the :class:`~looplet.tools.ToolContext` there.

    Raises:
        ToolRegistrationError: an unsupported hint, unresolvable annotations, or a ``*args`` /
            positional-only parameter; the message names the function and the parameter.
    """
    where = _function_name(fn)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolRegistrationError(
            f"cannot read the signature of {where}: {exc}. Pass parameters= explicitly."
        ) from exc
    hints = _type_hints(fn, where)
    described = _docstring_args(inspect.getdoc(fn) or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    closed = True
    for name, param in signature.parameters.items():
        if name == "ctx":
            continue
        if param.kind is param.VAR_KEYWORD:
            closed = False
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            raise ToolRegistrationError(
                f"{where}: parameter {name!r} is {param.kind.description}, but tools are "
                "called with keyword arguments only. Make it a normal or keyword-only parameter."
            )
        prop = _parameter_schema(hints.get(name, Any), where, name)
        if param.default is param.empty:
            required.append(name)
        elif _is_jsonable(param.default):
            prop["default"] = param.default
        if name in described:
            prop["description"] = described[name]
        properties[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _function_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"function {module}.{qualname}" if module else f"function {qualname}"


def _type_hints(fn: Callable[..., Any], where: str) -> dict[str, Any]:
    target: object = fn
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)) and callable(fn):
        target = type(fn).__call__
    try:
        return typing.get_type_hints(target)
    except Exception as exc:
        raise ToolRegistrationError(
            f"cannot resolve the type hints of {where}: {type(exc).__name__}: {exc}. Import "
            "the names used in its annotations at module level."
        ) from exc


def _parameter_schema(hint: object, where: str, name: str) -> dict[str, Any]:
    schema = _hint_schema(hint)
    if schema is None:
        raise ToolRegistrationError(
            f"{where}: parameter {name!r} has the unsupported type hint {_hint_text(hint)}. "
            "Supported: str, int, float, bool, list[X], dict[str, X], X | None, Literal[...], "
            "Any. Change the hint, or pass the schema with @tool(parameters=...)."
        )
    return schema


_PRIMITIVE_HINTS: dict[object, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _hint_schema(hint: object) -> dict[str, Any] | None:
    """The JSON Schema for one type hint, or ``None`` when it has no JSON equivalent."""
    if hint is Any or hint is object:
        return {}
    if hint is None:
        return {"type": "null"}
    primitive = _PRIMITIVE_HINTS.get(hint)
    if primitive is not None:
        return {"type": primitive}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is list or origin is list:
        items = _hint_schema(args[0]) if args else {}
        if items is None:
            return None
        return {"type": "array", "items": items} if items else {"type": "array"}
    if hint is dict or origin is dict:
        if args and args[0] is not str:
            return None
        values = _hint_schema(args[1]) if args else {}
        if values is None:
            return None
        return {"type": "object", "additionalProperties": values} if values else {"type": "object"}
    if origin is typing.Literal:
        return _literal_schema(args)
    if origin is typing.Union or origin is types.UnionType:
        return _union_schema(args)
    return None


def _literal_schema(values: tuple[Any, ...]) -> dict[str, Any] | None:
    if not all(v is None or isinstance(v, str | int | float | bool) for v in values):
        return None
    schema: dict[str, Any] = {"enum": list(values)}
    kinds = {_PRIMITIVE_HINTS[type(v)] for v in values}
    schema["type"] = kinds.pop() if len(kinds) == 1 else sorted(kinds)
    return schema


def _union_schema(members: tuple[Any, ...]) -> dict[str, Any] | None:
    nullable = type(None) in members
    rest = [m for m in members if m is not type(None)]
    if len(rest) == 1:
        inner = _hint_schema(rest[0])
        return _with_null(inner) if inner is not None and nullable else inner
    names: list[str] = []
    for member in rest:
        inner = _hint_schema(member)
        # Only unions of plain types have a faithful ``"type": [...]`` form.
        if inner is None or set(inner) != {"type"} or not isinstance(inner["type"], str):
            return None
        names.append(inner["type"])
    if nullable:
        names.append("null")
    return {"type": names}


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:
        return schema
    out = dict(schema)
    declared = out.get("type")
    if isinstance(declared, str) and declared != "null":
        out["type"] = [declared, "null"]
    elif isinstance(declared, list) and "null" not in declared:
        out["type"] = [*declared, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _hint_text(hint: object) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return repr(hint).replace("typing.", "")


def _is_jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _docstring_args(doc: str) -> dict[str, str]:
    """Parameter descriptions from the ``Args:`` section of a Google-style docstring."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() in _ARGS_HEADERS), None)
    if start is None:
        return {}
    header_indent = _indent(lines[start])
    found: dict[str, list[str]] = {}
    entry_indent: int | None = None
    current: list[str] | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = _indent(line)
        if indent <= header_indent or (entry_indent is not None and indent < entry_indent):
            break
        if entry_indent is None:
            entry_indent = indent
        if indent == entry_indent:
            match = _ARG_ENTRY.match(line.strip())
            if match is None:
                current = None
                continue
            current = found.setdefault(match.group(1), [])
            if match.group(2):
                current.append(match.group(2))
        elif current is not None:
            current.append(line.strip())
    return {name: " ".join(parts) for name, parts in found.items() if parts}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
