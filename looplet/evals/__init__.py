"""Evals: grading what an agent did, outside pytest or inside a run.

* :class:`EvalResult` is what a grader's return value becomes (:mod:`.result`);
* :class:`EvalContext` is what a grader reads about a run, live or saved (:mod:`.context`);
* :func:`eval_discover` finds ``eval_*`` graders in files (:mod:`.discover`);
* :func:`eval_mark`, :func:`eval_run`, :func:`eval_run_batch` tag and run them
  (:mod:`.runner`); :class:`EvalHook` runs them when a loop ends (:mod:`.hook`).

The ``looplet eval`` command is :mod:`looplet.cli`; running evals under pytest is the
``pytest_looplet`` plugin. Only the standard library is imported here, and each name loads on
first use: the plugin's end-of-run report (:mod:`.report`) needs none of the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    **dict.fromkeys(("EvalContext", "TrajectoryLoadError"), "looplet.evals.context"),
    **dict.fromkeys(("EvalImportError", "eval_discover"), "looplet.evals.discover"),
    "EvalHook": "looplet.evals.hook",
    **dict.fromkeys(("DEFAULT_THRESHOLD", "EvalResult"), "looplet.evals.result"),
    **dict.fromkeys(("eval_mark", "eval_run", "eval_run_batch"), "looplet.evals.runner"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'looplet.evals' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute read
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
