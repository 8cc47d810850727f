"""`EvalHook`: grade a run as it ends, from inside the loop.

The hook keeps the task the loop was given (``pre_loop``) and, when the run ends for any
reason (``on_loop_end``), runs its graders on the trajectory with
:func:`~looplet.evals.runner.eval_run`. Grading many saved runs at once is the pytest
plugin's job (``pytest --looplet-evals DIR --looplet-runs RUNS``, or ``looplet eval``); this is
for a live run, in a script or a notebook. It stays outside the pytest engine on purpose: it
grades inside the loop, in the agent's own process, as the run ends, where no pytest session
exists (the graders and the score of a return value are the same).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from looplet.evals.context import EvalContext
from looplet.evals.discover import eval_discover
from looplet.evals.result import DEFAULT_THRESHOLD, EvalResult
from looplet.evals.runner import eval_run, result_status
from looplet.types import Trajectory

__all__ = ["EvalHook"]


class EvalHook:
    """A loop hook that grades the run when it ends; the results are on :attr:`results`.

    >>> hook = EvalHook([eval_greets, eval_short], verbose=True)
    >>> list(composable_loop(llm=llm, tools=tools, task="Greet Alice", hooks=[hook]))
    >>> assert hook.all_passed(), hook.results

    Graders never break the run: one that raises becomes an ``"error"`` result. The hook
    may be reused; each run replaces :attr:`results`.

    Args:
        evaluators: the graders, or a path to discover them in (``eval_discover``).
        judge_llm: the model handed to graders that take ``llm``.
        verbose: print one line per result when the run ends.
        include: run only graders with at least one of these tags.
        exclude: leave out graders with any of these tags.
        threshold: the score :meth:`all_passed` and the verbose lines hold results to.
        stream: where verbose lines go (default: ``sys.stdout`` at the time of printing).

    Attributes:
        task: the task of the current (or last) run, as ``pre_loop`` received it.
        context: the :class:`EvalContext` the graders saw, once the run has ended.
        results: one :class:`EvalResult` per grader, for the last run that ended.
    """

    def __init__(
        self,
        evaluators: Iterable[Callable[..., Any]] | str | Path,
        judge_llm: Any = None,
        verbose: bool = False,
        *,
        include: Iterable[str] | str = (),
        exclude: Iterable[str] | str = (),
        threshold: float = DEFAULT_THRESHOLD,
        stream: TextIO | None = None,
    ) -> None:
        if isinstance(evaluators, str | Path):
            evaluators = eval_discover(evaluators)
        self.evaluators = list(evaluators)
        self.judge_llm = judge_llm
        self.verbose = verbose
        self.include = include
        self.exclude = exclude
        self.threshold = threshold
        self.stream = stream
        self.task: Any = None
        self.context: EvalContext | None = None
        self.results: list[EvalResult] = []

    def pre_loop(self, task: Any) -> None:
        """Keep the run's task for the graders; forget the previous run's results."""
        self.task = task
        self.context = None
        self.results = []

    def on_loop_end(self, trajectory: Trajectory) -> None:
        """Grade the finished run (whatever its stop reason) into :attr:`results`."""
        context = EvalContext.from_trajectory(trajectory)
        if self.task is not None:
            context = replace(context, task=self.task)
        self.context = context
        self.results = eval_run(
            self.evaluators, context, self.judge_llm, self.include, self.exclude
        )
        if self.verbose:
            stream = self.stream or sys.stdout
            for result in self.results:
                print(self._line(result), file=stream)

    def all_passed(self) -> bool:
        """True when there are results and every one reaches the threshold."""
        return bool(self.results) and all(r.passed(self.threshold) for r in self.results)

    def _line(self, result: EvalResult) -> str:
        score = "-" if result.score is None else f"{result.score:.2f}"
        line = f"eval {result_status(result, self.threshold):5} {score:>5} {result.name}"
        if result.label:
            line += f" [{result.label}]"
        if result.explanation:
            line += f": {result.explanation}"
        return line
