"""A unit-conversion agent: several small tools the model must chain to answer.

The model converts each quantity to a common unit, adds them up, and finishes with the total,
e.g. "How many metres are 3 miles plus 500 feet?" takes convert, convert, add, done.
"""

from __future__ import annotations

from typing import Any

from looplet import BaseToolRegistry, LoopConfig, tool

SYSTEM_PROMPT = (
    "You answer questions about lengths. Convert every quantity with the convert tool, "
    "combine them with add, then call done with the result rounded to two decimals and its "
    "unit. Never do arithmetic in your head."
)

#: Metres per unit.
UNITS: dict[str, float] = {
    "m": 1.0,
    "km": 1000.0,
    "cm": 0.01,
    "mi": 1609.344,
    "ft": 0.3048,
    "in": 0.0254,
    "yd": 0.9144,
}


@tool(concurrent_safe=True)
def convert(value: float, from_unit: str, to_unit: str) -> dict[str, float | str]:
    """Convert a length from one unit to another.

    Args:
        value: the quantity to convert.
        from_unit: its unit: m, km, cm, mi, ft, in or yd.
        to_unit: the unit wanted, from the same list.
    """
    for unit in (from_unit, to_unit):
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
    return {"value": value * UNITS[from_unit] / UNITS[to_unit], "unit": to_unit}


@tool(concurrent_safe=True)
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: the first number.
        b: the second number.
    """
    return a + b


@tool
def done(answer: str) -> dict[str, str]:
    """Finish with the answer.

    Args:
        answer: the result with its unit, e.g. "4980.43 m".
    """
    return {"answer": answer}


def build_tools() -> BaseToolRegistry:
    """The converter's tools."""
    return BaseToolRegistry([convert, add, done])


def build_config(max_steps: int = 8, **settings: Any) -> LoopConfig:
    """The converter's loop settings; ``settings`` are any other ``LoopConfig`` fields."""
    return LoopConfig(max_steps=max_steps, system_prompt=SYSTEM_PROMPT, temperature=0.0, **settings)
