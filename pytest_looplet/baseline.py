"""Comparing a run with a saved report (``--looplet-baseline OLD.json``).

Each eval found in both runs is compared on its pass rate with Fisher's exact test
(two-sided) on the 2x2 table of passes and fails: it is sound for the handful of runs an eval
gets, where a chi-squared or normal test is not. A drop with ``p < ALPHA`` is a regression, a
rise with ``p < ALPHA`` an improvement, anything else unchanged (the change in rate and mean
score is shown all the same). With one run per eval no single flip is significant: repeat the
evals (``--looplet-repeat``) to detect regressions. Evals only in the baseline or only in this
run are listed, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from looplet.evals import stats
from looplet.evals.report import COUNTED, PASSED, Report, ReportError, load_report, mean_score

__all__ = ["ALPHA", "Change", "Comparison", "compare", "counts", "load_baseline"]

ALPHA = 0.05
"""The significance level of a regression or an improvement."""


@dataclass(frozen=True, slots=True)
class Change:
    """One eval in both runs: its passes and runs before and after, and Fisher's p-value."""

    eval: str
    old_passes: int
    old_runs: int
    new_passes: int
    new_runs: int
    old_score: float | None
    new_score: float | None
    p_value: float
    kind: str
    """``regression``, ``improvement`` or ``unchanged``."""

    def line(self) -> str:
        """``eval  10/10 -> 3/10  rate -70%  score 1.00 -> 0.30  p=0.0031``."""
        text = (
            f"{self.eval}  {self.old_passes}/{self.old_runs} -> {self.new_passes}/{self.new_runs}"
        )
        if self.old_runs and self.new_runs:
            delta = self.new_passes / self.new_runs - self.old_passes / self.old_runs
            text += f"  rate {delta:+.0%}"
        if self.old_score is not None or self.new_score is not None:
            text += f"  score {_score(self.old_score)} -> {_score(self.new_score)}"
        return f"{text}  p={self.p_value:.4f}"


@dataclass(slots=True)
class Comparison:
    """This run against a baseline report."""

    path: str
    changes: list[Change] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Evals in the baseline that this run did not have."""
    added: list[str] = field(default_factory=list)
    """Evals of this run that the baseline did not have."""
    sharded: bool = False

    def of_kind(self, kind: str) -> list[Change]:
        """The changes of one kind, in eval order."""
        return [change for change in self.changes if change.kind == kind]

    @property
    def regressions(self) -> list[Change]:
        """Evals whose pass rate dropped significantly."""
        return self.of_kind("regression")

    def lines(self) -> list[str]:
        """The terminal section: regressions, improvements, unchanged, then gone and new."""
        out = []
        for kind, title in (
            ("regression", "regressions"),
            ("improvement", "improvements"),
            ("unchanged", "unchanged"),
        ):
            changes = self.of_kind(kind)
            out.append(f"{title} ({len(changes)}){':' if changes else ''}")
            out += [f"  {change.line()}" for change in changes]
        if self.removed:
            if self.sharded:  # the other shards have them
                out.append(f"not in this shard: {len(self.removed)} baseline evals")
            else:
                out.append(f"not in this run ({len(self.removed)}):")
                out += [f"  {name}" for name in self.removed]
        if self.added:
            out.append(f"new in this run ({len(self.added)}):")
            out += [f"  {name}" for name in self.added]
        return out


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


def counts(report: Report) -> dict[str, tuple[int, int, float | None]]:
    """Per eval of a report: (passes, runs, mean score), from its items."""
    out = {}
    for entry in report.evals:
        verdicts = [item.verdict for item in entry.items]
        out[entry.eval] = (
            sum(v in PASSED for v in verdicts),
            sum(v in COUNTED for v in verdicts),
            mean_score(entry.items),
        )
    return out


def compare(old: Report, new: Report, *, path: str | Path, sharded: bool = False) -> Comparison:
    """Compare report ``new`` (this run) with report ``old`` (the baseline at ``path``)."""
    before, after = counts(old), counts(new)
    comparison = Comparison(
        str(path),
        removed=sorted(set(before) - set(after)),
        added=sorted(set(after) - set(before)),
        sharded=sharded,
    )
    for name in sorted(set(before) & set(after)):
        (c1, n1, s1), (c2, n2, s2) = before[name], after[name]
        p = stats.fisher_exact(c1, n1 - c1, c2, n2 - c2)
        kind = "unchanged"
        if n1 and n2 and p < ALPHA:
            kind = "regression" if c2 / n2 < c1 / n1 else "improvement"
        comparison.changes.append(Change(name, c1, n1, c2, n2, s1, s2, p, kind))
    return comparison


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
