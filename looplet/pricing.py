"""Model prices: what a model's tokens cost, for metrics and budgets.

:data:`PRICES` is a small built-in table of list prices; :func:`price_of` looks a model name up
in it (or in your own table) and :func:`cost_usd` prices a :class:`~looplet.types.Usage`. No
network, no third-party package: ``import looplet`` may load it. Reading price files and the
plugin's cost budgets live in :mod:`pytest_looplet.scoring`.
"""

from __future__ import annotations

from collections.abc import Mapping

from looplet.types import Usage

__all__ = ["PRICES", "Prices", "cost_usd", "price_of"]

Prices = Mapping[str, tuple[float, float]]
"""Model name -> (input, output) price in US dollars per million tokens."""

PRICES: Prices = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}
"""The built-in price table (list prices, USD per 1M input / output tokens, mid-2025).

Prices change: check your provider's page and pass your own table where one is taken. A model
name matches an entry exactly, or after dropping a date or ``-latest`` suffix
(``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``).
"""


def price_of(model: str, prices: Prices | None = None) -> tuple[float, float] | None:
    """``model``'s (input, output) price per 1M tokens, or ``None`` when the table lacks it."""
    table = PRICES if prices is None else prices
    if not model:
        return None
    return table.get(model) or table.get(_undated(model))


def cost_usd(usage: Usage, model: str, prices: Prices | None = None) -> float | None:
    """What ``usage`` cost on ``model`` in US dollars, or ``None`` for an unpriced model."""
    price = price_of(model, prices)
    if price is None:
        return None
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000


def _undated(model: str) -> str:
    """``model`` without a ``-latest``, ``-YYYYMMDD`` or ``-YYYY-MM-DD`` suffix."""
    # Plain string checks: `re` is not worth its import for three suffix shapes.
    if model.endswith("-latest"):
        return model[: -len("-latest")]
    head, _, tail = model.rpartition("-")
    if head and len(tail) == 8 and tail.isdigit():
        return head
    if len(model) > 11 and model[-11] == "-":
        date = model[-10:]
        parts = date.split("-")
        if [len(p) for p in parts] == [4, 2, 2] and all(p.isdigit() for p in parts):
            return model[:-11]
    return model
