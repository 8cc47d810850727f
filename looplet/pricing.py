"""Model prices: what a model's tokens cost, for metrics and budgets.

:data:`PRICES` is a small built-in table of list prices; :func:`price_of` looks a model name up
in it (or in your own table) and :func:`cost_usd` prices a :class:`~looplet.types.Usage`,
prompt-cache discounts included (:func:`cache_prices`). No network, no third-party package:
``import looplet`` may load it. Reading price files and the plugin's cost budgets live in
:mod:`pytest_looplet.scoring`.
"""

from __future__ import annotations

from collections.abc import Mapping

from looplet.types import Usage

__all__ = [
    "ANTHROPIC_CACHE_READ",
    "ANTHROPIC_CACHE_WRITE",
    "CACHED_INPUT_PRICES",
    "OPENAI_CACHE_READ",
    "PRICES",
    "Prices",
    "cache_prices",
    "cost_usd",
    "price_of",
]

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


CACHED_INPUT_PRICES: Mapping[str, float] = {
    "gpt-4o": 1.25,
    "gpt-4o-mini": 0.075,
    "gpt-4.1": 0.50,
    "gpt-4.1-mini": 0.10,
    "gpt-4.1-nano": 0.025,
    "o3-mini": 0.55,
    "o4-mini": 0.275,
}
"""OpenAI's listed prices of cached input (USD per 1M tokens, mid-2025), where they are not
:data:`OPENAI_CACHE_READ` times the input price. Looked up like :data:`PRICES`."""

#: Anthropic bills a cache read at this fraction of the model's input price.
ANTHROPIC_CACHE_READ = 0.1
#: Anthropic bills a cache write at this multiple of the input price, by the entry's ttl.
ANTHROPIC_CACHE_WRITE: Mapping[str, float] = {"5m": 1.25, "1h": 2.0}
#: OpenAI bills cached input at this fraction of the input price unless
#: :data:`CACHED_INPUT_PRICES` lists the model.
OPENAI_CACHE_READ = 0.5


def cache_prices(
    model: str,
    input_price: float,
    *,
    cache_ttl: str = "5m",
    cached_prices: Mapping[str, float] | None = None,
) -> tuple[float, float]:
    """The (cache read, cache write) prices per 1M tokens of ``model``, whose input costs
    ``input_price``.

    A model listed in ``cached_prices`` (default :data:`CACHED_INPUT_PRICES`) reads at its
    listed price. Otherwise a Claude model (its name contains ``claude``) reads at
    :data:`ANTHROPIC_CACHE_READ` x the input price, any other at :data:`OPENAI_CACHE_READ` x.
    Writes cost :data:`ANTHROPIC_CACHE_WRITE` [``cache_ttl``] x the input price for a Claude
    model, and the input price for others (OpenAI reports no writes and charges none).

    Raises:
        ConfigurationError: ``cache_ttl`` is not ``"5m"`` or ``"1h"``.
    """
    if cache_ttl not in ANTHROPIC_CACHE_WRITE:
        from looplet.errors import ConfigurationError

        raise ConfigurationError(
            f"cache_ttl must be '5m' or '1h' (the CachePolicy.ttl the run used), got {cache_ttl!r}"
        )
    claude = "claude" in model.lower()
    table = CACHED_INPUT_PRICES if cached_prices is None else cached_prices
    listed = table.get(model) or table.get(_undated(model)) if model else None
    if listed is not None:
        read = listed
    else:
        read = input_price * (ANTHROPIC_CACHE_READ if claude else OPENAI_CACHE_READ)
    write = input_price * ANTHROPIC_CACHE_WRITE[cache_ttl] if claude else input_price
    return read, write


def cost_usd(
    usage: Usage,
    model: str,
    prices: Prices | None = None,
    *,
    cache_ttl: str = "5m",
    cached_prices: Mapping[str, float] | None = None,
) -> float | None:
    """What ``usage`` cost on ``model`` in US dollars, or ``None`` for an unpriced model.

    Input tokens read from the provider's prompt cache (``usage.cache_read_tokens``) and
    written to it (``cache_write_tokens``) are priced by :func:`cache_prices`; the rest of
    the input at the input price. ``cache_ttl`` is the lifetime the run's
    :class:`~looplet.cache.CachePolicy` asked for (Anthropic bills a 1-hour write at 2x the
    input price, a 5-minute one at 1.25x). Example: 10,000 input tokens of which 8,000
    read from the cache and 1,000 output tokens on claude-sonnet-4 ($3 / $15) cost
    2,000 x $3 + 8,000 x $0.30 + 1,000 x $15 per million = $0.0234, against $0.045 uncached.

    Raises:
        TypeError: ``usage`` is not a :class:`~looplet.types.Usage`.
    """
    if type(usage) is not Usage:
        raise TypeError(
            f"cost_usd(usage, model) needs a looplet.types.Usage (e.g. trajectory.usage or "
            f"trajectory.total_usage), got {type(usage).__name__}"
        )
    price = price_of(model, prices)
    if price is None:
        return None
    input_price, output_price = price
    total = usage.input_tokens * input_price + usage.output_tokens * output_price
    if usage.cache_read_tokens or usage.cache_write_tokens:
        read, write = cache_prices(
            model, input_price, cache_ttl=cache_ttl, cached_prices=cached_prices
        )
        total += usage.cache_read_tokens * (read - input_price)
        total += usage.cache_write_tokens * (write - input_price)
    return total / 1_000_000


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
