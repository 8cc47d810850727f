"""Checked reading of JSON fields: each reader names a bad field by its place.

The codec (:mod:`looplet.record.codec`) and the files built on it (checkpoints, conversations,
reports) read every field through these, so that a damaged file fails with a
:class:`DecodeError` saying which field (``steps[2].tool_call.args``) and how, never with a
``KeyError`` from deep inside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from looplet.errors import LoopletError

__all__ = [
    "DecodeError",
    "at",
    "decode_list",
    "decode_str",
    "field_bool",
    "field_int",
    "field_number",
    "field_str",
    "json_object",
    "kind_of",
    "optional_str",
]

T = TypeVar("T")


class DecodeError(LoopletError, ValueError):
    """A field of a record has the wrong shape: ``where`` names it, ``problem`` says how."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"field {where}: {problem}")
        self.where = where
        self.problem = problem


def decode_str(value: Any, where: str) -> str:
    """A string item of an array."""
    if not isinstance(value, str):
        raise DecodeError(where, f"expected a string, got {kind_of(value)}")
    return value


def decode_list(value: Any, where: str, decode: Callable[[Any, str], T]) -> list[T]:
    """Decode each item of the JSON array ``value``, naming a bad one ``where[i]``."""
    if not isinstance(value, list):
        raise DecodeError(where, f"expected an array, got {kind_of(value)}")
    return [decode(item, f"{where}[{i}]") for i, item in enumerate(value)]


_MISSING: Any = object()


def json_object(value: Any, where: str) -> dict[str, Any]:
    """``value``, checked to be a JSON object."""
    if not isinstance(value, dict):
        raise DecodeError(where, f"expected an object, got {kind_of(value)}")
    return value


def field_str(obj: Mapping[str, Any], key: str, where: str, default: str = _MISSING) -> str:
    """The string ``obj[key]`` (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise _bad(where, key, value, "a string")
    return value


def optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    """The string or null ``obj[key]`` (``None`` when absent)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(where, key, value, "a string or null")
    return value


def field_int(obj: Mapping[str, Any], key: str, where: str, default: int = _MISSING) -> int:
    """The non-negative integer ``obj[key]`` (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if type(value) is not int or value < 0:  # a bool is no integer here
        raise _bad(where, key, value, "a non-negative integer", repr)
    return value


def field_number(obj: Mapping[str, Any], key: str, where: str, default: float = _MISSING) -> float:
    """The number ``obj[key]`` as a float (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(where, key, value, "a number")
    return float(value)


def field_bool(obj: Mapping[str, Any], key: str, where: str, default: bool = _MISSING) -> bool:
    """The boolean ``obj[key]`` (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise _bad(where, key, value, "true or false")
    return value


def _bad(
    where: str, key: str, value: Any, expected: str, shown: Callable[[Any], str] | None = None
) -> DecodeError:
    if value is _MISSING:
        return DecodeError(at(where, key), "missing")
    return DecodeError(at(where, key), f"expected {expected}, got {(shown or kind_of)(value)}")


def at(where: str, key: str) -> str:
    """The place of ``key`` inside ``where`` (``steps[2]`` + ``args``: ``steps[2].args``)."""
    return f"{where}.{key}" if where else key


def kind_of(value: Any) -> str:
    """What a JSON value is, for an error message (``an object``, ``the number 3``)."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value!r}"
    return names.get(type(value), type(value).__name__)
