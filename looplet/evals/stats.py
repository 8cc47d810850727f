"""Small-sample statistics for repeated evals, in pure Python (``math.comb``, no SciPy).

An eval repeated ``n`` times with ``c`` passes is summarised by its pass rate with a Wilson
score interval (sound at small ``n`` and at rates of 0 or 1, unlike the normal
approximation), by the unbiased pass@k and pass^k estimators, and compared with a baseline
run by Fisher's exact test on the 2x2 table of passes and fails.

>>> round(pass_at_k(10, 3, 1), 2), round(pass_hat_k(10, 3, 2), 3)
(0.3, 0.067)
>>> [round(x, 3) for x in wilson_interval(3, 5)]
[0.231, 0.882]
>>> round(fisher_exact(10, 0, 3, 7), 4)
0.0031
"""

from __future__ import annotations

import math

__all__ = ["Z_95", "fisher_exact", "pass_at_k", "pass_hat_k", "wilson_interval"]

Z_95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal distribution."""


def _check(n: int, c: int, k: int | None = None) -> None:
    if n < 0 or not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k is not None and not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def wilson_interval(c: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a pass rate ``c / n`` (95% by default).

    ``n`` must be positive: there is no interval for an eval that never ran.
    """
    _check(n, c)
    if n == 0:
        raise ValueError("a pass rate needs at least one run")
    rate = c / n
    z2 = z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of ``k`` runs passes: ``1 - C(n-c, k) / C(n, k)``.

    The unbiased estimator from ``n`` runs with ``c`` passes (Chen et al., 2021).
    """
    _check(n, c, k)
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """The chance that all of ``k`` runs pass (pass^k): ``C(c, k) / C(n, k)``.

    The unbiased estimator from ``n`` runs with ``c`` passes (Yao et al., 2024, tau-bench).
    """
    _check(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """The two-sided p-value of Fisher's exact test on the table ``[[a, b], [c, d]]``.

    Rows are the two runs (passes, fails); the p-value sums the hypergeometric
    probabilities of every table with the same margins that is no more likely than the
    observed one (the convention of R's ``fisher.test`` and SciPy's ``fisher_exact``).
    """
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be non-negative, got {[a, b, c, d]}")
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0:
        return 1.0
    total = math.comb(n, col1)

    def weight(x: int) -> int:  # tables with x passes in the first row, scaled by `total`
        return math.comb(row1, x) * math.comb(n - row1, col1 - x)

    observed = weight(a)
    low, high = max(0, col1 - (n - row1)), min(row1, col1)
    # Exact integers: compare weights, with a relative tolerance as R does for ties.
    limit = observed * (1 + 1e-7)
    tail = sum(w for w in map(weight, range(low, high + 1)) if w <= limit)
    return min(1.0, tail / total)
