"""Evals: scoring what an agent did. :class:`EvalResult` is what an eval returns.

Running evals under pytest lives in the ``pytest_looplet`` plugin; this package holds the
plain values both it and other runners share.
"""

from __future__ import annotations

from looplet.evals.result import EvalResult

__all__ = ["EvalResult"]
