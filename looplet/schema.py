"""JSON Schema for tool parameters: normalising, validating, describing.

A tool's parameters may be declared in a "simple" form (``{"name": "str", "k": "int?"}``, or
with descriptions as in the original looplet: ``{"path": "file path"}``), as a full JSON Schema
object, or derived from a function's type hints and docstring
(:func:`looplet.signature.schema_from_signature`). Whichever form is given,
:func:`normalize_parameters` turns it into one JSON Schema object at registration, and
:func:`validate_arguments` checks each call's arguments against it before the tool runs. Only a
subset of JSON Schema is enforced (types, required, additionalProperties, enum, items, nested
objects, numeric and length bounds); other keywords are passed to the provider untouched.
Registries and dispatch live in :mod:`looplet.tools`; this module knows nothing about them and
uses only the standard library.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from looplet.errors import ToolRegistrationError

__all__ = [
    "compile_validator",
    "describe_parameters",
    "is_json_schema",
    "normalize_parameters",
    "validate_arguments",
]

#: Simple-form type names (and the JSON Schema names, accepted too) -> JSON Schema type.
#: ``None`` means "any value".
_SIMPLE_TYPES: dict[str, str | None] = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
    "any": None,
}
_SIMPLE_PYTHON_TYPES: dict[object, str | None] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    object: None,
    Any: None,
}
_SIMPLE_NAMES_SHOWN = "any, bool, dict, float, int, list, str"

_JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
#: JSON Schema type -> the short name shown in signatures.
_SHORT_NAMES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
    "null": "None",
}
_REPR_CHARS = 40


# --------------------------------------------------------------------------- normalising


def normalize_parameters(parameters: Mapping[str, Any] | None, *, tool_name: str) -> dict[str, Any]:
    """Turn a tool's declared parameters into one JSON Schema object.

    Accepts the simple form (``{"name": "str", "k": "int?"}``: a trailing ``?`` makes the
    parameter optional, Python types such as ``str`` work as values, every other parameter is
    required, and no other argument is allowed; a value that is no type name describes a
    string parameter, ``{"path": "file path"}``, optional when it starts with ``(optional)``),
    a full JSON Schema object (recognised by
    ``"type": "object"`` or a ``"properties"`` mapping; it is copied, never modified), or
    ``None`` / ``{}`` for a tool without parameters.

    Returns:
        ``{"type": "object", "properties": {...}, "required": [...], ...}``; ``"required"`` is
        always present.

    Raises:
        ToolRegistrationError: a one-word simple value one slip away from a type name
            (``"strr"``), or a malformed JSON Schema; the message names the tool and the
            parameter.
    """
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise ToolRegistrationError(
            f"tool {tool_name!r}: parameters must be a mapping (simple form such as "
            f"{{'name': 'str'}}, or a JSON Schema object), got {type(parameters).__name__} "
            f"{_short_repr(parameters)}."
        )
    if is_json_schema(parameters):
        return _normalize_json_schema(parameters, tool_name)
    return _normalize_simple(parameters, tool_name)


def is_json_schema(parameters: Mapping[str, Any]) -> bool:
    """Whether declared parameters are a JSON Schema object (``"type": "object"`` or a
    ``"properties"`` mapping) rather than the simple form."""
    return parameters.get("type") == "object" or isinstance(parameters.get("properties"), Mapping)


def _normalize_simple(parameters: Mapping[str, Any], tool_name: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, declared in parameters.items():
        if not isinstance(name, str) or not name:
            raise ToolRegistrationError(
                f"tool {tool_name!r}: parameter names must be non-empty strings, got {name!r}."
            )
        properties[name], optional = _simple_property(declared, tool_name, name)
        if not optional:
            required.append(name)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _simple_property(declared: object, tool_name: str, name: str) -> tuple[dict[str, Any], bool]:
    """``(property schema, optional?)`` for one simple-form value.

    A string is a type name (``"int"``, ``"int?"``: optional) or, as in the original looplet,
    a description of a string parameter (``"file path"``; a leading ``(optional)`` makes it
    optional). One word close to a type name (``"strr"``) is taken for a typo, not a
    description, and refused.
    """
    if isinstance(declared, str):
        text = declared.strip()
        optional = text.endswith("?")
        key = text.removesuffix("?").strip().lower()
        if key in _SIMPLE_TYPES:
            json_type = _SIMPLE_TYPES[key]
            return ({} if json_type is None else {"type": json_type}), optional
        typo = _close_type_name(key) if key and not any(c.isspace() for c in key) else None
        if typo is None and key:
            described = text.lower().startswith("(optional)")
            return {"type": "string", "description": text}, described
        hint = f" Did you mean {typo + ('?' if optional else '')!r}?" if typo else ""
        if typo is not None and key == typo + "s":
            hint += " For a list, use 'list' (or a JSON Schema with 'items')."
        raise ToolRegistrationError(
            f"tool {tool_name!r}: parameter {name!r} has unknown type {declared!r}.{hint} "
            f"Valid simple types: {_SIMPLE_NAMES_SHOWN} (append '?' to make one optional, "
            "e.g. 'int?'). Any other text is a description of a string parameter; a single "
            "word this close to a type name is taken for a typo, so write a description as a "
            "phrase ('the file path'), or pass a full JSON Schema object instead."
        )
    try:
        json_type = _SIMPLE_PYTHON_TYPES[declared]
    except (KeyError, TypeError):
        pass
    else:
        return ({} if json_type is None else {"type": json_type}), False
    extra = ""
    if isinstance(declared, Mapping):
        extra = (
            " For a per-parameter schema, pass a full JSON Schema: "
            "{'type': 'object', 'properties': {...}, 'required': [...]}."
        )
    raise ToolRegistrationError(
        f"tool {tool_name!r}: parameter {name!r} has unsupported type {_short_repr(declared)}. "
        f"Valid simple types: {_SIMPLE_NAMES_SHOWN} (as strings or the Python types str, int, "
        f"float, bool, list, dict), or a description string.{extra}"
    )


def _close_type_name(word: str) -> str | None:
    """The type name ``word`` is one slip away from (same first letter, one letter added,
    dropped, changed or two swapped), or ``None``: ``"strr"`` -> ``"str"``, ``"path"`` -> None.
    """
    for type_name in _SIMPLE_TYPES:
        if word[0] == type_name[0] and _one_edit_apart(word, type_name):
            return type_name
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one insertion, deletion, substitution or
    transposition of neighbours (``a != b`` is assumed)."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    if len(a) < len(b):
        return a[i:] == b[i + 1 :]
    return a[i + 1 :] == b[i + 1 :] or (
        a[i : i + 2] == b[i : i + 2][::-1] and a[i + 2 :] == b[i + 2 :]
    )


def _normalize_json_schema(parameters: Mapping[str, Any], tool_name: str) -> dict[str, Any]:
    if parameters.get("type", "object") != "object":
        raise ToolRegistrationError(
            f"tool {tool_name!r}: a parameters JSON Schema must have 'type': 'object', got "
            f"{parameters.get('type')!r}."
        )
    properties = parameters.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ToolRegistrationError(
            f"tool {tool_name!r}: 'properties' must map parameter names to schemas, got "
            f"{type(properties).__name__}."
        )
    for name, prop in properties.items():
        if not isinstance(prop, Mapping):
            raise ToolRegistrationError(
                f"tool {tool_name!r}: the schema of parameter {name!r} must be a mapping such "
                f"as {{'type': 'string'}}, got {_short_repr(prop)}."
            )
        _check_types(prop, tool_name, str(name))
    required = parameters.get("required", [])
    if not isinstance(required, list | tuple) or not all(isinstance(r, str) for r in required):
        raise ToolRegistrationError(
            f"tool {tool_name!r}: 'required' must be a list of parameter names, got "
            f"{_short_repr(required)}."
        )
    unknown = [r for r in required if r not in properties]
    if unknown:
        raise ToolRegistrationError(
            f"tool {tool_name!r}: 'required' names {', '.join(map(repr, unknown))}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not in 'properties' "
            f"({', '.join(map(repr, properties)) or 'none'}). Add the property or fix the name."
        )
    schema = copy.deepcopy(dict(parameters))
    schema["type"] = "object"
    schema["properties"] = copy.deepcopy(dict(properties))
    schema["required"] = list(required)
    return schema


def _check_types(schema: Mapping[str, Any], tool_name: str, path: str) -> None:
    """Reject type names the validator would not understand (``"int"`` instead of integer)."""
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [] if declared is None else [declared]
    for name in names:
        if name not in _JSON_TYPES:
            raise ToolRegistrationError(
                f"tool {tool_name!r}: parameter {path!r} has JSON Schema type {name!r}, which "
                f"is not a JSON Schema type. Use one of: {', '.join(sorted(_JSON_TYPES))}."
            )
    items = schema.get("items")
    if isinstance(items, Mapping):
        _check_types(items, tool_name, f"{path}[]")
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, Mapping):
            _check_types(sub, tool_name, f"{path}.{key}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        _check_types(extra, tool_name, f"{path}.*")


# --------------------------------------------------------------------------- validating


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, Mapping),
    "null": lambda v: v is None,
}


#: The exact types that pass, for a property whose schema is only a ``type`` (the common
#: case): a set lookup, no function call. Anything else (a subclass, a bool given for an
#: integer) goes through the full check.
_FAST_TYPES: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
    "boolean": frozenset({bool}),
}
#: A property with no constraint: any value passes.
_ANY: frozenset[type] | None = None
_UNKNOWN: frozenset[type] = frozenset()


def compile_validator(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], list[str]]:
    """A validator for ``schema``, specialised once so that valid calls are checked fast.

    When every property is plain (only a ``type`` of string, integer, number or boolean, or
    no constraint at all), a valid call costs a key check and one type test per argument;
    any failure, or any richer schema, goes through :func:`validate_arguments`, so the
    messages are the same either way.
    """
    properties: Mapping[str, Any] = schema.get("properties") or {}
    checks: dict[str, frozenset[type] | None] = {}
    for name, prop in properties.items():
        keys = set(prop) - {"description", "default", "title"}
        if not keys:
            checks[name] = _ANY
        elif keys == {"type"} and prop["type"] in _FAST_TYPES:
            checks[name] = _FAST_TYPES[prop["type"]]
        else:
            return lambda args: validate_arguments(schema, args)
    if set(schema) - {"type", "properties", "required", "additionalProperties", "description"}:
        return lambda args: validate_arguments(schema, args)
    if schema.get("additionalProperties", True) not in (True, False):
        return lambda args: validate_arguments(schema, args)
    required = frozenset(schema.get("required", ()))
    closed = schema.get("additionalProperties", True) is False

    def validate(args: Mapping[str, Any]) -> list[str]:
        if type(args) is not dict or not required <= args.keys():
            return validate_arguments(schema, args)
        for key, value in args.items():
            allowed = checks.get(key, _UNKNOWN)
            if allowed is _UNKNOWN:
                if closed:
                    return validate_arguments(schema, args)
            elif allowed is not None and type(value) not in allowed:
                return validate_arguments(schema, args)
        return []

    return validate


def validate_arguments(schema: Mapping[str, Any], args: Mapping[str, Any]) -> list[str]:
    """Check a call's arguments against a normalised parameters schema.

    Runs before every tool call, so it does no copying and compiles nothing. Enforced:
    ``type`` (a name or a list; a bool is not an integer, an int is a number), ``required``,
    ``additionalProperties`` (``false`` or a schema), ``enum``, ``items``, nested
    ``properties``/``required``, ``minimum``/``maximum`` (and the exclusive forms),
    ``minLength``/``maxLength`` and ``minItems``/``maxItems``.

    Returns:
        One human-readable line per problem, naming the argument path and what was expected
        vs. got, e.g. ``argument 'n': expected integer, got str ('3')``; empty when valid.
    """
    problems: list[str] = []
    received: object = args  # a backend may decode '[1, 2]' as arguments; say so, don't crash
    if not isinstance(received, Mapping):
        problems.append(
            f"arguments: expected a JSON object, got {type(received).__name__} "
            f"({_short_repr(received)})"
        )
        return problems
    _validate_object(schema, received, "", problems)
    return problems


def _validate_value(schema: Mapping[str, Any], value: object, path: str, out: list[str]) -> None:
    declared = schema.get("type")
    if declared is not None and not _type_matches(declared, value):
        out.append(
            f"argument {path!r}: expected {_expected_text(declared)}, "
            f"got {type(value).__name__} ({_short_repr(value)})"
        )
        return
    enum = schema.get("enum")
    if enum is not None and not _in_enum(value, enum):
        choices = ", ".join(_short_repr(e) for e in enum)
        out.append(f"argument {path!r}: expected one of {choices}, got {_short_repr(value)}")
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        _validate_bounds(schema, value, path, out)
    elif isinstance(value, str):
        _validate_length(schema, len(value), "characters", path, out)
    elif isinstance(value, list | tuple):
        _validate_length(schema, len(value), "items", path, out, keys=("minItems", "maxItems"))
        items = schema.get("items")
        if isinstance(items, Mapping) and items:
            for index, item in enumerate(value):
                _validate_value(items, item, f"{path}[{index}]", out)
    elif isinstance(value, Mapping) and (
        "properties" in schema or "required" in schema or "additionalProperties" in schema
    ):
        _validate_object(schema, value, path, out)


def _validate_object(
    schema: Mapping[str, Any], obj: Mapping[str, Any], prefix: str, out: list[str]
) -> None:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    for name in schema.get("required", ()):
        if name not in obj:
            out.append(f"missing required argument {_join(prefix, name)!r}")
    extra = schema.get("additionalProperties", True)
    for key, value in obj.items():
        sub = properties.get(key)
        if sub is not None:
            _validate_value(sub, value, _join(prefix, key), out)
        elif extra is False:
            out.append(_unexpected(prefix, key, properties, obj))
        elif isinstance(extra, Mapping):
            _validate_value(extra, value, _join(prefix, key), out)


def _unexpected(
    prefix: str, key: str, properties: Mapping[str, Any], obj: Mapping[str, Any]
) -> str:
    import difflib

    # Prefer the names the caller has not given yet: a typo usually stands in for one of them.
    missing = [p for p in properties if p not in obj]
    close = difflib.get_close_matches(str(key), missing, n=1) or difflib.get_close_matches(
        str(key), list(properties), n=1
    )
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unexpected argument {_join(prefix, key)!r}{hint}"


def _validate_bounds(schema: Mapping[str, Any], value: float, path: str, out: list[str]) -> None:
    low = schema.get("minimum")
    if low is not None and value < low:
        out.append(f"argument {path!r}: expected a value >= {low}, got {value}")
    high = schema.get("maximum")
    if high is not None and value > high:
        out.append(f"argument {path!r}: expected a value <= {high}, got {value}")
    low = schema.get("exclusiveMinimum")
    if isinstance(low, int | float) and value <= low:
        out.append(f"argument {path!r}: expected a value > {low}, got {value}")
    high = schema.get("exclusiveMaximum")
    if isinstance(high, int | float) and value >= high:
        out.append(f"argument {path!r}: expected a value < {high}, got {value}")


def _validate_length(
    schema: Mapping[str, Any],
    length: int,
    unit: str,
    path: str,
    out: list[str],
    keys: tuple[str, str] = ("minLength", "maxLength"),
) -> None:
    low = schema.get(keys[0])
    if low is not None and length < low:
        out.append(f"argument {path!r}: expected at least {low} {unit}, got {length}")
    high = schema.get(keys[1])
    if high is not None and length > high:
        out.append(f"argument {path!r}: expected at most {high} {unit}, got {length}")


def _type_matches(declared: object, value: object) -> bool:
    if isinstance(declared, str):
        check = _TYPE_CHECKS.get(declared)
        return check is None or check(value)
    if isinstance(declared, list):
        return any(_type_matches(d, value) for d in declared)
    return True


def _in_enum(value: object, enum: list[Any]) -> bool:
    # ``True == 1`` in Python; JSON keeps booleans and numbers apart, so do we.
    is_bool = isinstance(value, bool)
    return any(value == e and is_bool == isinstance(e, bool) for e in enum)


def _expected_text(declared: object) -> str:
    if isinstance(declared, list):
        names = [str(d) for d in declared]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return str(declared)


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_CHARS else text[: _REPR_CHARS - 3] + "..."


# --------------------------------------------------------------------------- describing


def describe_parameters(schema: Mapping[str, Any]) -> str:
    """A compact signature such as ``name: str, k?: int`` for messages and catalogs.

    Optional parameters carry a ``?``; an enum shows its values (``mode: 'fast' | 'slow'``),
    an array its item type (``tags: list[str]``), and a parameter without a type ``any``.
    """
    required = set(schema.get("required", ()))
    parts = []
    for name, prop in (schema.get("properties") or {}).items():
        mark = "" if name in required else "?"
        parts.append(f"{name}{mark}: {_describe_type(prop)}")
    return ", ".join(parts)


def _describe_type(prop: Mapping[str, Any]) -> str:
    enum = prop.get("enum")
    if enum:
        return " | ".join(repr(e) for e in enum)
    declared = prop.get("type")
    names = declared if isinstance(declared, list) else [] if declared is None else [declared]
    if not names:
        return "any"
    shown = []
    for name in names:
        short = _SHORT_NAMES.get(name, str(name))
        items = prop.get("items")
        if name == "array" and isinstance(items, Mapping) and items:
            short = f"list[{_describe_type(items)}]"
        shown.append(short)
    return " | ".join(shown)
