"""How a trajectory mismatch is found and told: aligning steps, wording reasons, the table.

:func:`align` pairs expected with actual steps by index, given a ``fits(i, j)`` predicate, and
returns :class:`Row` objects; :class:`Report` words a failure from those rows (headline, one
line per reason, the side-by-side table, the divergent step's result and argument diff).
What "fits" means (the matchers, the ``args`` modes) lives in :mod:`looplet.assertions`, which
is the public face of all this.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from looplet.types import Step, StopReason, Trajectory, _result_tail

if TYPE_CHECKING:
    from looplet._expected_steps import ExpectedStep

__all__ = ["FAILING", "MISSING", "ArgDiff", "Report", "Row", "StepProblem", "align", "clip"]

RowKind = Literal["match", "differ", "extra", "missing", "allowed_extra", "allowed_unused"]
Pairs = Callable[[int, int], bool]

#: Row kinds that make an assertion fail; ``allowed_*`` rows are steps the order mode permits.
FAILING: frozenset[str] = frozenset({"differ", "extra", "missing"})

_OPS = {"match": "==", "differ": "!=", "extra": "+", "missing": "-"}
# A full alignment compares every expected step with every actual one; past this many pairs
# (a 500-step run against a 500-step expectation) the table pairs steps by position instead.
_LCS_LIMIT = 250_000
_EXPECTED_WIDTH = 32
_ACTUAL_WIDTH = 56
_VALUE_CHARS = 60
_RESULT_CHARS = 160
_DETAIL_CHARS = 60
_FAILURE_CHARS = 60
# Long tables are cut around the marked row: pytest shows a few lines unless run with -vv.
_MAX_ROWS = 24
_CONTEXT_ROWS = 8


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the alignment: an expected step, an actual step, or both.

    Attributes:
        kind: how the two relate (``match``, ``differ``, ``extra``, ``missing``, or a step the
            order mode allows: ``allowed_extra`` for subset, ``allowed_unused`` for superset).
        expected: index into the expected steps, or ``None``.
        actual: index into the actual steps, or ``None``.
        position: where the row sits in the run: ``actual`` when there is one, else the index
            just after the previous actual step (where the missing step was looked for).
    """

    kind: RowKind
    expected: int | None
    actual: int | None
    position: int = 0


def align(order: str, n_expected: int, n_actual: int, fits: Pairs, same_tool: Pairs) -> list[Row]:
    """Pair expected with actual steps under ``order``; rows come in the run's order.

    The assertion passes when no row's kind is in :data:`FAILING`.
    """
    if order == "strict":
        rows = _align_strict(n_expected, n_actual, fits)
    elif order == "subset":
        rows = _align_subsequence(n_expected, n_actual, fits, same_tool, swap=False)
    elif order == "superset":
        rows = _align_subsequence(n_actual, n_expected, _flip(fits), _flip(same_tool), swap=True)
    else:
        rows = _align_unordered(n_expected, n_actual, fits, same_tool)
    return _with_positions(rows)


def _flip(pred: Pairs) -> Pairs:
    return lambda a, b: pred(b, a)


def _align_strict(n_exp: int, n_act: int, fits: Pairs) -> list[Row]:
    if n_exp == n_act and all(fits(i, i) for i in range(n_exp)):
        return [Row("match", i, i) for i in range(n_exp)]
    if n_exp * n_act > _LCS_LIMIT:
        return _pair_gap(list(range(n_exp)), list(range(n_act)), lambda i, j: True, strict=True)
    fit = [[fits(i, j) for j in range(n_act)] for i in range(n_exp)]
    # lcs[i][j]: the most steps expected[i:] and actual[j:] can have matched, in order. Taking
    # a fitting pair is always optimal (an exchange argument that needs no transitivity).
    lcs = [[0] * (n_act + 1) for _ in range(n_exp + 1)]
    for i in reversed(range(n_exp)):
        for j in reversed(range(n_act)):
            if fit[i][j]:
                lcs[i][j] = lcs[i + 1][j + 1] + 1
            else:
                lcs[i][j] = max(lcs[i + 1][j], lcs[i][j + 1])
    rows: list[Row] = []
    gap_exp: list[int] = []
    gap_act: list[int] = []
    i = j = 0
    while i < n_exp or j < n_act:
        if i < n_exp and j < n_act and fit[i][j]:
            rows += _pair_gap(gap_exp, gap_act, lambda a, b: True, strict=True)
            gap_exp, gap_act = [], []
            rows.append(Row("match", i, j))
            i, j = i + 1, j + 1
        elif j < n_act and (i == n_exp or lcs[i][j + 1] >= lcs[i + 1][j]):
            gap_act.append(j)
            j += 1
        else:
            gap_exp.append(i)
            i += 1
    return rows + _pair_gap(gap_exp, gap_act, lambda a, b: True, strict=True)


def _pair_gap(
    exp: list[int],
    act: list[int],
    pairs: Pairs,
    *,
    strict: bool = False,
    exp_kind: RowKind = "missing",
    act_kind: RowKind = "extra",
) -> list[Row]:
    """Rows for the unmatched steps between two matches; pairable ones become ``differ``.

    Strict pairs by position (as a sequence diff does); the other modes pair steps of the same
    tool, so that a wrong argument reads as one differing row, not a missing and an extra one.
    """
    partner: dict[int, int] = {}
    free = list(act)
    for i in exp:
        j = next((j for j in free if pairs(i, j)), None)
        if j is not None:
            partner[j] = i
            free.remove(j)
    unpaired = [Row(exp_kind, i, None) for i in exp if i not in partner.values()]
    acts = [Row("differ", partner[j], j) if j in partner else Row(act_kind, None, j) for j in act]
    return acts + unpaired if strict else unpaired + acts


def _align_subsequence(
    n_small: int, n_big: int, fits: Pairs, same_tool: Pairs, *, swap: bool
) -> list[Row]:
    """``small`` must be a subsequence of ``big``; greedy earliest matching decides that.

    With ``swap`` the roles are superset's: ``small`` is the actual run, ``big`` the expected.
    """
    exp_kind: RowKind = "extra" if swap else "missing"
    act_kind: RowKind = "allowed_unused" if swap else "allowed_extra"
    rows: list[Row] = []
    gap_small: list[int] = []
    gap_big: list[int] = []
    start = 0
    for s in range(n_small):
        found = next((b for b in range(start, n_big) if fits(s, b)), None)
        if found is None:
            gap_small.append(s)
            continue
        gap_big.extend(range(start, found))
        rows += _pair_gap(gap_small, gap_big, same_tool, exp_kind=exp_kind, act_kind=act_kind)
        gap_small, gap_big = [], []
        rows.append(Row("match", s, found))
        start = found + 1
    gap_big.extend(range(start, n_big))
    rows += _pair_gap(gap_small, gap_big, same_tool, exp_kind=exp_kind, act_kind=act_kind)
    if not swap:
        return rows
    return [Row(r.kind, r.actual, r.expected) for r in rows]


def _align_unordered(n_exp: int, n_act: int, fits: Pairs, same_tool: Pairs) -> list[Row]:
    adjacent = [[j for j in range(n_act) if fits(i, j)] for i in range(n_exp)]
    of_exp: list[int | None] = [None] * n_exp
    of_act: list[int | None] = [None] * n_act
    for i in range(n_exp):
        _augment(i, adjacent, of_exp, of_act)
    missing = [i for i in range(n_exp) if of_exp[i] is None]
    extra = [j for j in range(n_act) if of_act[j] is None]
    partner: dict[int, int] = {}
    for i in missing:
        j = next((j for j in extra if j not in partner and same_tool(i, j)), None)
        if j is not None:
            partner[j] = i
    rows: list[Row] = []
    for j in range(n_act):
        matched = of_act[j]
        if matched is not None:
            rows.append(Row("match", matched, j))
        elif j in partner:
            rows.append(Row("differ", partner[j], j))
        else:
            rows.append(Row("extra", None, j))
    paired = set(partner.values())
    return rows + [Row("missing", i, None) for i in missing if i not in paired]


def _augment(
    start: int, adjacent: list[list[int]], of_exp: list[int | None], of_act: list[int | None]
) -> bool:
    """Match expected ``start`` along an augmenting path (breadth-first, no recursion)."""
    reached_from: dict[int, int] = {}
    seen = {start}
    queue = deque([start])
    while queue:
        i = queue.popleft()
        for j in adjacent[i]:
            if j in reached_from:
                continue
            reached_from[j] = i
            owner = of_act[j]
            if owner is None:
                while True:
                    i = reached_from[j]
                    previous = of_exp[i]
                    of_exp[i], of_act[j] = j, i
                    if previous is None:
                        return True
                    j = previous
            if owner not in seen:
                seen.add(owner)
                queue.append(owner)
    return False


def _with_positions(rows: list[Row]) -> list[Row]:
    out = []
    position = 0
    for row in rows:
        if row.actual is not None:
            position = row.actual
            out.append(Row(row.kind, row.expected, row.actual, position))
            position += 1
        else:
            out.append(Row(row.kind, row.expected, None, position))
    return out


#: Stands for an argument that is absent on one side of an :class:`ArgDiff`.
MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class ArgDiff:
    """One argument that does not match: its path (``name``, ``filters.status``, ``ids[0]``)."""

    path: str
    expected: object
    actual: object
    note: str = ""

    def render(self) -> str:
        """``name: expected 'Bob', got 'Alice'``, or ``missing`` / ``not expected``."""
        if self.actual is MISSING:
            return f"{self.path}: missing (expected {show(self.expected, _VALUE_CHARS)})"
        if self.expected is MISSING:
            return f"{self.path}: not expected (got {show(self.actual, _VALUE_CHARS)})"
        note = f" ({self.note})" if self.note else ""
        want, got = show(self.expected, _VALUE_CHARS), show(self.actual, _VALUE_CHARS)
        return f"{self.path}: expected {want}, got {got}{note}"


@dataclass(frozen=True, slots=True)
class StepProblem:
    """Why an actual step does not fit an expected one: the tool, the outcome, arguments.

    ``ok`` is set when it succeeded and should have failed or the other way round; ``kind``
    when it failed, as expected, but with another :class:`~looplet.errors.ErrorKind`.
    """

    tool: bool = False
    ok: bool = False
    kind: bool = False
    args: tuple[ArgDiff, ...] = ()


Problem = Callable[[int, int], StepProblem | None]


@dataclass(frozen=True, slots=True)
class Report:
    """The words for a failed check, from the alignment of expected and actual steps."""

    rows: list[Row]
    wanted: Sequence[ExpectedStep]
    traj: Trajectory
    problem: Problem
    order: str
    args_mode: str

    @property
    def marked(self) -> int | None:
        """The index into ``rows`` of the first failing row."""
        return next((k for k, row in enumerate(self.rows) if row.kind in FAILING), None)

    @property
    def first_divergence(self) -> int | None:
        """The 0-based index into the run's steps where the steps first differ."""
        marked = self.marked
        return None if marked is None else self.rows[marked].position

    def reasons(
        self, stop_reason: StopReason | None, max_steps: int | None, max_tokens: int | None
    ) -> list[str]:
        """One line per failed check; empty when everything passed."""
        traj, out = self.traj, []
        if self.marked is not None:
            out.append(self._step_reason(self.marked))
        if stop_reason is not None and traj.stop_reason != stop_reason:
            got = traj.stop_reason.value if traj.stop_reason else None
            detail = f" ({clip(traj.stop_detail, _DETAIL_CHARS)})" if traj.stop_detail else ""
            out.append(f"stop_reason: expected {stop_reason.value!r}, got {got!r}{detail}")
        if max_steps is not None and len(traj.steps) > max_steps:
            out.append(f"steps: took {len(traj.steps)}, over max_steps={max_steps}")
        usage = traj.usage
        if max_tokens is not None and usage.total_tokens > max_tokens:
            out.append(
                f"tokens: used {usage.total_tokens} ({usage.input_tokens} in + "
                f"{usage.output_tokens} out), over max_tokens={max_tokens}"
            )
        return out

    def lines(self, reasons: Sequence[str]) -> list[str]:
        """The message: headline, reasons, table, the divergent step, the run's totals."""
        first = self.first_divergence
        if first is not None:
            head = f"trajectory differs at step {first + 1}"
            head += f" (order={self.order}, args={self.args_mode})"
        elif reasons[0].startswith("stop_reason"):
            head = "trajectory stopped for another reason"
        else:
            head = "trajectory exceeds " + reasons[0].rsplit(" over ", 1)[-1]
        lines = [head, *("  " + reason for reason in reasons)]
        texts = [w.describe(self.args_mode) for w in self.wanted]
        lines += render_table(
            self.rows,
            texts,
            [step_text(s) for s in self.traj.steps],
            marked=self.marked,
            order=self.order,
        )
        lines += ["  " + line for line in self._detail()]
        traj = self.traj
        stop = traj.stop_reason.value if traj.stop_reason else None
        totals = f"{len(traj.steps)} steps · {traj.llm_calls} model calls"
        return [
            *lines,
            f"  run: stop_reason={stop!r} · {totals} · {traj.usage.total_tokens} tokens",
        ]

    def _step_reason(self, marked: int) -> str:
        row, steps = self.rows[marked], self.traj.steps
        n = row.position + 1
        more = sum(r.kind in FAILING for r in self.rows) - 1
        also = f" (and {more} more difference{'s' if more > 1 else ''} below)" if more else ""
        if row.kind == "differ" and row.expected is not None and row.actual is not None:
            want, step = self.wanted[row.expected], steps[row.actual]
            problem = self.problem(row.expected, row.actual) or StepProblem()
            tool = step.tool_call.tool
            if problem.tool:
                return f"step {n}: expected a call to {want.tool}, got {tool}{also}"
            keys = ", ".join(dict.fromkeys(d.path for d in problem.args))
            if problem.ok or problem.kind:
                # The outcome first: a failed call usually explains its odd arguments too.
                args = f"; its arguments differ too ({keys})" if keys else ""
                return f"step {n}: {_outcome_reason(want, step)}{args}{also}"
            return f"step {n}: {tool} was called with other arguments ({keys}){also}"
        if row.kind == "extra" and row.actual is not None:
            step = steps[row.actual]
            why = {
                "strict": "",
                "unordered": " (no unmatched expected step fits it)",
                "superset": " (no expected step after the previous match fits it)",
            }[self.order]
            outcome = "" if step.ok else f", which failed ({failure_text(step)})"
            return f"step {n}: unexpected extra call to {step.tool_call.tool}{outcome}{why}{also}"
        assert row.expected is not None
        want_text = self.wanted[row.expected].describe(self.args_mode)
        if self.order == "unordered":
            return f"expected {want_text} was not called{also}"
        if self.order == "subset":
            after = f" after step {n - 1}" if n > 1 else ""
            return f"expected step {row.expected + 1} {want_text} not found{after}{also}"
        if row.position >= len(steps):
            ran = f"{len(steps)} step{'s' if len(steps) != 1 else ''}"
            return f"step {n}: expected {want_text}, but the run ended after {ran}{also}"
        return f"step {n}: expected {want_text}, which was not called here{also}"

    def _detail(self) -> list[str]:
        """The divergent step's result, or the closest call, and the arguments that differ."""
        if self.marked is None:
            return []
        row, steps = self.rows[self.marked], self.traj.steps
        lines, actual = [], row.actual
        if actual is not None:
            lines.append(_result_line(steps[actual]))
        elif row.expected is not None:
            actual = self._closest(row.expected)
            if actual is not None:
                tool = self.wanted[row.expected].tool
                lines.append(f"closest call to {tool}: {step_text(steps[actual])}")
        if row.expected is not None and actual is not None:
            problem = self.problem(row.expected, actual)
            if problem is not None and problem.args:
                step = steps[actual]
                lines.append(f"arguments of step #{step.number} {step.tool_call.tool} that differ:")
                lines += ["  " + d.render() for d in problem.args]
        return lines

    def _closest(self, expected: int) -> int | None:
        """The actual call of the same tool with the fewest differences, if there is one."""
        best: tuple[int, int] | None = None
        for j, step in enumerate(self.traj.steps):
            if step.tool_call.tool != self.wanted[expected].tool:
                continue
            problem = self.problem(expected, j)
            score = 0 if problem is None else len(problem.args) + problem.ok + problem.kind
            if best is None or score < best[0]:
                best = (score, j)
        return None if best is None else best[1]


def step_text(step: Step) -> str:
    """``Step.pretty()`` without the duration, which differs from run to run."""
    result = step.tool_result
    head = f"#{step.number} {'✓' if step.ok else '✗'} {step.tool_call.tool}({result.args_summary})"
    tail = _result_tail(result)
    return f"{head} → {tail}" if tail else head


def _outcome_reason(want: ExpectedStep, step: Step) -> str:
    """``expected greet to succeed, it failed (permission_denied: ...)`` and the like."""
    tool = step.tool_call.tool
    if want.ok is True:
        return f"expected {tool} to succeed, it failed ({failure_text(step)})"
    wanted = f"fail with {want.kind.value}" if want.kind is not None else "fail"
    got = "succeeded" if step.ok else f"failed ({failure_text(step)})"
    return f"expected {tool} to {wanted}, it {got}"


def failure_text(step: Step) -> str:
    """A failed step's kind and message, short: ``permission_denied: not on the list``."""
    result = step.tool_result
    kind = result.error_kind
    detail = result.error_detail
    message = detail.message if detail is not None else (result.error or "")
    if kind is None:
        return clip(message, _FAILURE_CHARS)
    prefix = f"{kind.value}: "
    message = message.removeprefix(prefix)
    return prefix + clip(message, _FAILURE_CHARS)


def _result_line(step: Step) -> str:
    result = step.tool_result
    name = f"step #{step.number} {step.tool_call.tool}"
    if result.error is not None:
        return f"{name} failed: {clip(result.error, _RESULT_CHARS)}"
    return f"{name} returned {clip(repr(result.data), _RESULT_CHARS)}"


def show(value: object, limit: int) -> str:
    """A matcher or value as a diff shows it: ``'Bob'``, ``ANY``, ``<positive>``, ``<any str>``."""
    if isinstance(value, type):
        text = f"<any {value.__name__}>"
    elif callable(value):
        text = f"<{callable_name(value)}>"
    else:
        text = repr(value)
    return clip(text, limit)


def callable_name(fn: Callable[..., object]) -> str:
    """``fn``'s name for a diff: ``is_positive``, ``lambda``."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name[1:-1] if name.startswith("<") and name.endswith(">") else name


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with ``...``."""
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_table(
    rows: Sequence[Row],
    expected_texts: Sequence[str],
    actual_texts: Sequence[str],
    *,
    marked: int | None,
    order: str,
) -> list[str]:
    """The side-by-side lines: expected on the left, actual on the right, ``>`` at ``marked``.

    Args:
        rows: the alignment from :func:`align`.
        expected_texts: one short text per expected step.
        actual_texts: one ``Step.pretty()``-like text per actual step.
        marked: the index into ``rows`` of the first divergence, if any.
        order: the order mode, named in the legend.
    """
    lines = [f"  {'':>3} {'expected':<{_EXPECTED_WIDTH}} {'':2}  actual"]
    shown = range(len(rows))
    if len(rows) > _MAX_ROWS:
        centre = marked if marked is not None else 0
        low = max(0, min(centre - _CONTEXT_ROWS, len(rows) - 2 * _CONTEXT_ROWS))
        shown = range(low, min(len(rows), low + 2 * _CONTEXT_ROWS))
    if shown.start > 0:
        lines.append(_elided(rows[: shown.start]))
    for index in shown:
        row = rows[index]
        mark = ">" if index == marked else " "
        number = "" if row.expected is None else str(row.expected + 1)
        left = "" if row.expected is None else clip(expected_texts[row.expected], _EXPECTED_WIDTH)
        right = "" if row.actual is None else clip(actual_texts[row.actual], _ACTUAL_WIDTH)
        line = (
            f"{mark} {number:>3} {left:<{_EXPECTED_WIDTH}} {_OPS.get(row.kind, '..'):<2}  {right}"
        )
        lines.append(line.rstrip())
    if shown.stop < len(rows):
        lines.append(_elided(rows[shown.stop :]))
    legend = "(== matches, != differs, + not expected, - missing"
    if order in ("subset", "superset"):
        legend += f", .. allowed by order={order}"
    lines.append("  " + legend + ")")
    return lines


def _elided(rows: Sequence[Row]) -> str:
    failing = sum(row.kind in FAILING for row in rows)
    also = f", {failing} of them differing" if failing else ""
    return f"  {'':>3} ... {len(rows)} rows not shown{also} ..."
