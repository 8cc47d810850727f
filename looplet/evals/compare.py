"""Comparing two eval reports: what got worse, what got better, and where runs went apart.

:func:`compare` is the pass-rate test the plugin's ``--looplet-baseline`` uses: each eval found
in both reports is compared on its passes and fails with Fisher's exact test (two-sided,
:func:`looplet.evals.stats.fisher_exact`), sound for the handful of runs an eval gets. A drop
with ``p < ALPHA`` is a regression, a rise an improvement, anything else unchanged. With one
run per eval no single flip is significant: repeat the evals to detect regressions.

:func:`compare_reports` (behind ``looplet compare``) adds, per eval, the verdicts before and
after (*newly failing*, *newly passing*), the signed changes of mean score, cost, tokens and
steps, and for a changed eval the first step where the two runs' trajectories diverge
(:func:`first_divergence`: tool, arguments and error kind, step by step). Its text table is
:meth:`ReportDiff.lines`; its HTML page lives in :mod:`looplet.evals._compare_html`.
Only the standard library is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from looplet.errors import ErrorKind
from looplet.evals import stats
from looplet.evals.report_model import COUNTED, PASSED, EvalEntry, Report, ReportItem, mean_score

__all__ = [
    "ALPHA",
    "FAIL_ON",
    "STATUSES",
    "Change",
    "Comparison",
    "Divergence",
    "EvalDelta",
    "ReportDiff",
    "Status",
    "compare",
    "compare_reports",
    "counts",
    "error_kind",
    "first_divergence",
    "step_text",
]

ALPHA = 0.05
"""The significance level of a regression or an improvement."""

_FAILING = ("FAIL", "ERROR")
_ERROR_KINDS = frozenset(kind.value for kind in ErrorKind)

# -- the pass-rate test (the baseline's) ---------------------------------------------------------


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

    @property
    def rate_delta(self) -> float | None:
        """The pass rate after minus before, or ``None`` when a side has no counted run."""
        if not (self.old_runs and self.new_runs):
            return None
        return self.new_passes / self.new_runs - self.old_passes / self.old_runs

    def line(self) -> str:
        """``eval  10/10 -> 3/10  rate -70%  score 1.00 -> 0.30  p=0.0031``."""
        text = (
            f"{self.eval}  {self.old_passes}/{self.old_runs} -> {self.new_passes}/{self.new_runs}"
        )
        if self.rate_delta is not None:
            text += f"  rate {self.rate_delta:+.0%}"
        if self.old_score is not None or self.new_score is not None:
            text += f"  score {_score(self.old_score)} -> {_score(self.new_score)}"
        return f"{text}  p={self.p_value:.4f}"


@dataclass(slots=True)
class Comparison:
    """A run against a baseline report (the plugin's ``--looplet-baseline`` section)."""

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


# -- where two runs went apart -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first step at which two runs' trajectories differ.

    Attributes:
        step: its number (1-based, the report's ``n``).
        fields: what differs there: ``tool``, ``args``, ``error`` (the error kind, or one side
            failing and the other not), or ``steps`` (one run had stopped).
        base, new: that step of each run as the report has it (``tool``, ``args``, ``ok``,
            ``error``...), ``None`` for the run that had stopped.
        base_nodeid, new_nodeid: the runs compared (for a repeated eval, which repetition).
    """

    step: int
    fields: tuple[str, ...]
    base: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    base_nodeid: str
    new_nodeid: str

    def describe(self, width: int = 70) -> str:
        """``step 2 (args): base greet {"name":"Alice"} | new greet {"name":"Bob"}``."""
        return (
            f"step {self.step} ({', '.join(self.fields)}): base {step_text(self.base, width)} "
            f"| new {step_text(self.new, width)}"
        )


def error_kind(step: Mapping[str, Any]) -> str | None:
    """A report step's error kind (``validation``, ``permission_denied``...), ``None`` when it
    succeeded; an error without a known kind prefix is ``execution``, as
    :attr:`looplet.types.ToolResult.error_kind` says."""
    error = step.get("error")
    if error is None and step.get("ok", True):
        return None
    kind = str(error or "").partition(":")[0].strip()
    return kind if kind in _ERROR_KINDS else ErrorKind.EXECUTION.value


def step_text(step: Mapping[str, Any] | None, width: int = 70) -> str:
    """A report step in one line: ``tool {args}``, then ``-> kind`` when it failed."""
    if step is None:
        return "(stopped)"
    text = f"{step.get('tool')} {_clip(str(step.get('args') or ''), width)}"
    kind = error_kind(step)
    return f"{text} -> {kind}" if kind else text


def first_divergence(base: ReportItem, new: ReportItem) -> Divergence | None:
    """The first step where the trajectories of two runs differ in tool, arguments (as the
    report previews them) or error kind, or where one run stopped and the other went on.

    ``None`` when the steps agree throughout, or when either run has no trajectory.
    """
    if base.trajectory is None or new.trajectory is None:
        return None
    old_steps, new_steps = _steps(base.trajectory), _steps(new.trajectory)
    for position in range(max(len(old_steps), len(new_steps))):
        a = old_steps[position] if position < len(old_steps) else None
        b = new_steps[position] if position < len(new_steps) else None
        if a is None or b is None:
            fields: tuple[str, ...] = ("steps",)
        else:
            fields = tuple(
                name
                for name, differs in (
                    ("tool", a.get("tool") != b.get("tool")),
                    ("args", a.get("args") != b.get("args")),
                    ("error", error_kind(a) != error_kind(b)),
                )
                if differs
            )
        if fields:
            here = a if a is not None else b
            number = here.get("n") if here is not None else None
            step = number if isinstance(number, int) else position + 1
            return Divergence(step, fields, a, b, base.nodeid, new.nodeid)
    return None


def _steps(trajectory: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # A hand-edited report may hold anything here: what is not a step is left out.
    steps = trajectory.get("steps")
    return [step for step in steps if isinstance(step, Mapping)] if isinstance(steps, list) else []


# -- one eval across two reports -----------------------------------------------------------------

Status = Literal[
    "newly failing", "regression", "newly passing", "improvement", "changed", "unchanged",
    "added", "removed",
]  # fmt: skip
"""What happened to an eval, worst first."""

STATUSES: tuple[Status, ...] = get_args(Status)
"""Every :data:`Status`, worst first: the order of the table."""

FAIL_ON = ("worse", "regression", "never")
"""``looplet compare --fail-on``: ``worse`` (an eval newly failing or a significant drop),
``regression`` (a significant drop only) or ``never``."""


@dataclass(frozen=True, slots=True)
class EvalDelta:
    """One eval across two reports: its entries, Fisher's test on its pass rate, the
    first divergence of its trajectories, and the signed changes (new minus base)."""

    eval: str
    base: EvalEntry | None
    new: EvalEntry | None
    change: Change | None
    """The pass-rate test; ``None`` for an eval in one report only."""
    divergence: Divergence | None = None

    @property
    def status(self) -> Status:
        """``newly failing`` (its verdict is FAIL or ERROR now, and was not), ``regression``
        (its pass rate dropped with ``p < ALPHA``), ``newly passing``, ``improvement``,
        ``changed`` (some figure or step differs), ``unchanged``, ``added`` or ``removed``."""
        if self.base is None:
            return "added"
        if self.new is None:
            return "removed"
        was, now = self.base.verdict in _FAILING, self.new.verdict in _FAILING
        kind = self.change.kind if self.change is not None else "unchanged"
        if now and not was:
            return "newly failing"
        if kind == "regression":
            return "regression"
        if was and self.new.verdict in PASSED:
            return "newly passing"
        if kind == "improvement":
            return "improvement"
        figures = ("mean_score", "cost_usd", "tokens", "steps")
        same = (
            self.base.verdict == self.new.verdict
            and (self.base.passes, self.base.runs) == (self.new.passes, self.new.runs)
            and all(self.delta(name) in (None, 0) for name in figures)
        )
        return "unchanged" if same and self.divergence is None else "changed"

    @property
    def worse(self) -> bool:
        """Newly failing, or a significant drop in pass rate."""
        return self.status in ("newly failing", "regression")

    @property
    def failure(self) -> str | None:
        """For an eval newly failing, the message of its first failed run (``None`` otherwise,
        or when pytest gave none)."""
        if self.status != "newly failing" or self.new is None:
            return None
        failed = [item.message for item in self.new.items if item.verdict in _FAILING]
        return next((message for message in failed if message), None)

    def delta(self, name: str) -> float | None:
        """The change of an :class:`EvalEntry` figure (``mean_score``, ``cost_usd``,
        ``tokens``, ``steps``, ``pass_rate``), new minus base; ``None`` when a side lacks it."""
        if self.base is None or self.new is None:
            return None
        old, new = getattr(self.base, name), getattr(self.new, name)
        if old is None or new is None:
            return None
        return round(float(new) - float(old), 10)


@dataclass(slots=True, kw_only=True)
class ReportDiff:
    """Two reports compared eval by eval (:func:`compare_reports`)."""

    base_path: str
    new_path: str
    base: Report
    new: Report
    evals: list[EvalDelta]

    def with_status(self, *statuses: Status) -> list[EvalDelta]:
        """The evals of the given statuses, in eval order."""
        return [delta for delta in self.evals if delta.status in statuses]

    def counts(self) -> dict[Status, int]:
        """How many evals have each status (every status, zeros included)."""
        found = [delta.status for delta in self.evals]
        return {status: found.count(status) for status in STATUSES}

    def failed(self, fail_on: str = "worse") -> bool:
        """Whether ``looplet compare --fail-on fail_on`` exits 1 (:data:`FAIL_ON`)."""
        if fail_on not in FAIL_ON:
            raise ValueError(f"fail_on is one of {', '.join(FAIL_ON)}, not {fail_on!r}")
        if fail_on == "never":
            return False
        wanted: tuple[Status, ...] = ("regression",)
        return bool(self.with_status(*wanted) if fail_on == "regression" else
                    [delta for delta in self.evals if delta.worse])  # fmt: skip

    def lines(self, *, show_all: bool = False) -> list[str]:
        """The terminal report: a header, a table of the evals that changed (every eval with
        ``show_all``), each changed one's divergence under it, the totals and a verdict line."""
        from looplet.evals._compare_text import diff_lines

        return diff_lines(self, show_all=show_all)

    def to_html(self) -> str:
        """The comparison as one self-contained HTML page (no script, nothing loaded)."""
        from looplet.evals._compare_html import render

        return render(self)


def compare_reports(
    base: Report, new: Report, *, base_path: str | Path = "base", new_path: str | Path = "new"
) -> ReportDiff:
    """Compare report ``new`` with report ``base``, eval by eval (see the module's text)."""
    changes = {change.eval: change for change in compare(base, new, path=base_path).changes}
    before = {entry.eval: entry for entry in base.evals}
    after = {entry.eval: entry for entry in new.evals}
    deltas = []
    for name in sorted(set(before) | set(after)):
        old, now = before.get(name), after.get(name)
        divergence = None
        if old is not None and now is not None:
            pair = _runs_to_compare(old, now)
            divergence = first_divergence(*pair) if pair is not None else None
        deltas.append(EvalDelta(name, old, now, changes.get(name), divergence))
    return ReportDiff(
        base_path=str(base_path), new_path=str(new_path), base=base, new=new, evals=deltas
    )


def _runs_to_compare(base: EvalEntry, new: EvalEntry) -> tuple[ReportItem, ReportItem] | None:
    """The run of each side whose trajectories are compared: when the eval got worse, the
    base's first passing run and the new side's first failing one (the other way round when
    it got better); otherwise the first run of each with a trajectory."""
    old_rate = base.passes / base.runs if base.runs else None
    new_rate = new.passes / new.runs if new.runs else None
    worse = base.verdict not in _FAILING and new.verdict in _FAILING
    better = base.verdict in _FAILING and new.verdict not in _FAILING
    if not (worse or better) and old_rate is not None and new_rate is not None:
        worse, better = new_rate < old_rate, new_rate > old_rate
    old = _pick(base.items, PASSED if worse else _FAILING if better else None)
    now = _pick(new.items, _FAILING if worse else PASSED if better else None)
    return None if old is None or now is None else (old, now)


def _pick(items: Sequence[ReportItem], verdicts: Sequence[str] | None) -> ReportItem | None:
    with_steps = [item for item in items if item.trajectory is not None]
    preferred = [item for item in with_steps if verdicts is None or item.verdict in verdicts]
    chosen = preferred or with_steps or list(items)
    return chosen[0] if chosen else None


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
