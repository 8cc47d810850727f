"""Evals: grading what an agent did, outside pytest or inside a run.

* :class:`EvalResult` is what a grader's return value becomes (:mod:`.result`);
* :class:`EvalContext` is what a grader reads about a run, live or saved (:mod:`.context`);
* :func:`eval_discover` finds ``eval_*`` graders in files (:mod:`.discover`);
* :func:`eval_mark`, :func:`eval_run`, :func:`eval_run_batch` tag and run them
  (:mod:`.runner`); :class:`EvalHook` runs them when a loop ends (:mod:`.hook`).

The ``looplet eval`` command is :mod:`looplet.cli`; running evals under pytest is the
``pytest_looplet`` plugin. Only the standard library is imported here.
"""

from __future__ import annotations

from looplet.evals.context import EvalContext, TrajectoryLoadError
from looplet.evals.discover import EvalImportError, eval_discover
from looplet.evals.hook import EvalHook
from looplet.evals.result import DEFAULT_THRESHOLD, EvalResult
from looplet.evals.runner import eval_mark, eval_run, eval_run_batch

__all__ = [
    "DEFAULT_THRESHOLD",
    "EvalContext",
    "EvalHook",
    "EvalImportError",
    "EvalResult",
    "TrajectoryLoadError",
    "eval_discover",
    "eval_mark",
    "eval_run",
    "eval_run_batch",
]
