"""Comparing a run with a saved report (``--looplet-baseline OLD.json``).

The comparison itself is the library's (:mod:`looplet.evals.compare`, which ``looplet compare``
uses too): each eval found in both runs is compared on its pass rate with Fisher's exact test
(two-sided) on the 2x2 table of passes and fails, sound for the handful of runs an eval gets.
A drop with ``p < ALPHA`` is a regression, a rise an improvement, anything else unchanged.
With one run per eval no single flip is significant: repeat the evals (``--looplet-repeat``)
to detect regressions. Evals only in the baseline or only in this run are listed, never an
error. This module adds what is the plugin's: reading the baseline as a usage error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from looplet.evals.compare import ALPHA, Change, Comparison, compare, counts
from looplet.evals.report import Report, ReportError, load_report

__all__ = ["ALPHA", "Change", "Comparison", "compare", "counts", "load_baseline"]


def load_baseline(path: str | Path) -> Report:
    """Read a baseline report.

    Raises:
        pytest.UsageError: the file is missing, corrupt or not a looplet report, naming the
            file and the field at fault.
    """
    try:
        return load_report(path)
    except ReportError as exc:
        raise pytest.UsageError(f"looplet: --looplet-baseline {exc}") from None
