"""Evals: grading what an agent did, outside pytest or inside a run.

* :class:`EvalResult` is what a grader's return value becomes (:mod:`.result`);
* :class:`EvalContext` is what a grader reads about a run, live or saved (:mod:`.context`);
* :func:`eval_discover` finds ``eval_*`` graders in files (:mod:`.discover`);
* :func:`eval_mark`, :func:`eval_run`, :func:`eval_run_batch` tag and run them
  (:mod:`.runner`); :class:`EvalHook` runs them when a loop ends (:mod:`.hook`).

The engine that runs evals is the ``pytest_looplet`` plugin: ``pytest --looplet-evals DIR
--looplet-runs RUNS`` grades saved runs with these graders (``ctx`` is a fixture there), and
``looplet eval`` (:mod:`looplet.cli`) runs that pytest; the functions here are its thin
in-process form, for scripts and live runs. Only the standard library is imported here, and
each name loads on first use: the plugin's end-of-run report (:mod:`.report`) needs none of
the others.
"""

from __future__ import annotations

from looplet._exports import lazy_exports as _lazy_exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for it
if TYPE_CHECKING:
    # The table below, for type checkers; tests/test_exports.py keeps the two the same.
    from looplet.evals.context import EvalContext as EvalContext
    from looplet.evals.context import TrajectoryLoadError as TrajectoryLoadError
    from looplet.evals.discover import EvalImportError as EvalImportError
    from looplet.evals.discover import eval_discover as eval_discover
    from looplet.evals.hook import EvalHook as EvalHook
    from looplet.evals.result import DEFAULT_THRESHOLD as DEFAULT_THRESHOLD
    from looplet.evals.result import EvalResult as EvalResult
    from looplet.evals.runner import eval_mark as eval_mark
    from looplet.evals.runner import eval_run as eval_run
    from looplet.evals.runner import eval_run_batch as eval_run_batch

# The one table of the public names: name -> the module it loads from.
_EXPORTS = {
    "EvalResult": "looplet.evals.result",
    "DEFAULT_THRESHOLD": "looplet.evals.result",
    "EvalContext": "looplet.evals.context",
    "TrajectoryLoadError": "looplet.evals.context",
    "eval_discover": "looplet.evals.discover",
    "EvalImportError": "looplet.evals.discover",
    "eval_mark": "looplet.evals.runner",
    "eval_run": "looplet.evals.runner",
    "eval_run_batch": "looplet.evals.runner",
    "EvalHook": "looplet.evals.hook",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, globals(), _EXPORTS)
