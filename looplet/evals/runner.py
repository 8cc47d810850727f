"""Running graders: ``eval_mark`` tags them, ``eval_run`` grades one run, ``eval_run_batch`` many.

A grader is a function of ``(ctx)`` or ``(ctx, llm)``, where ``llm`` is a judge model. It
returns what :meth:`EvalResult.from_return` accepts, or asserts. Nothing here turns a problem
into a pass: 0.0 is a score; a grader that raises, or returns something unusable, is an
``"error"`` result; a grader that needs a judge when none is given is ``"skipped"``; errors
and skips have no score and never pass. Finding graders is :mod:`looplet.evals.discover`'s
job, the run's data :mod:`looplet.evals.context`'s.

These are the thin, in-process form of the plugin's engine, kept for scripts, notebooks and
:class:`~looplet.evals.hook.EvalHook` (no pytest needed): a return value becomes a score
through the same :meth:`EvalResult.from_return` the plugin's scoring uses, so a grader scores
the same here as under ``pytest --looplet-evals DIR --looplet-runs RUNS`` or ``looplet eval``,
which add fixtures, xdist, repeats, baselines and the JSON, HTML and JUnit reports.
"""

from __future__ import annotations

import inspect
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from looplet.evals.context import EvalContext
from looplet.evals.discover import eval_id
from looplet.evals.result import DEFAULT_THRESHOLD, ERROR, SKIPPED, EvalResult
from looplet.types import Trajectory

__all__ = ["FAIL", "eval_mark", "eval_run", "eval_run_batch", "eval_tags", "result_status"]

F = TypeVar("F", bound=Callable[..., Any])
Grader = Callable[..., Any]

FAIL = "fail"
"""The label of a result whose grader failed an ``assert`` (score 0.0)."""

_TAGS_ATTR = "__looplet_eval_tags__"
_TRACEBACK_FRAMES = 8


def eval_mark(*tags: str) -> Callable[[F], F]:
    """Tag a grader, so ``include``/``exclude`` can select it; decorators add up.

    >>> @eval_mark("slow", "judge")
    ... def eval_tone(ctx, llm): ...

    Raises:
        TypeError: used bare (``@eval_mark`` without parentheses) or given a non-string tag.
    """
    if len(tags) == 1 and callable(tags[0]):
        raise TypeError(
            "eval_mark takes tags: write @eval_mark('tag'), not @eval_mark without parentheses"
        )
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"an eval tag is a non-empty str, not {tag!r}")

    def mark(fn: F) -> F:
        setattr(fn, _TAGS_ATTR, eval_tags(fn) | frozenset(tags))
        return fn

    return mark


def eval_tags(fn: Callable[..., Any]) -> frozenset[str]:
    """The tags ``eval_mark`` gave ``fn`` (empty when it has none)."""
    tags: object = getattr(fn, _TAGS_ATTR, None)
    return tags if isinstance(tags, frozenset) else frozenset()


def eval_run(
    evals: Iterable[Grader] | Grader,
    ctx: EvalContext | Trajectory,
    judge_llm: Any = None,
    include: Iterable[str] | str = (),
    exclude: Iterable[str] | str = (),
) -> list[EvalResult]:
    """Grade one run with every selected grader; one :class:`EvalResult` per grader, in order.

    >>> results = eval_run(eval_discover("evals/"), EvalContext.from_trajectory(traj))
    >>> all(r.passed() for r in results)

    Each result is named with :func:`~looplet.evals.discover.eval_id` and timed
    (``duration_ms``). A grader that fails an ``assert`` scores 0.0 with label ``"fail"``;
    one that raises anything else, or returns a form ``from_return`` rejects, gets label
    ``"error"``, score ``None`` and the traceback in ``details["traceback"]``; one whose
    second parameter (or ``llm``) has no default, run without ``judge_llm``, gets label
    ``"skipped"`` and score ``None``.

    Args:
        evals: the graders (a single function is accepted too).
        ctx: the run, as an :class:`EvalContext` or a :class:`Trajectory`.
        judge_llm: the model handed to graders that take ``llm``.
        include: run only graders with at least one of these tags (all when empty).
        exclude: leave out graders with any of these tags. A left-out grader has no result.
    """
    context = ctx if isinstance(ctx, EvalContext) else _context(ctx)
    return [_run_one(fn, context, judge_llm) for fn in _select(evals, include, exclude)]


def eval_run_batch(
    evals: Iterable[Grader] | Grader,
    contexts: Iterable[EvalContext | Trajectory],
    judge_llm: Any = None,
    include: Iterable[str] | str = (),
    exclude: Iterable[str] | str = (),
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[dict[str, Any]]:
    """Grade many runs; one row per grader, aggregating its results over the runs.

    Each row is ``{"name", "scores", "runs", "avg", "min", "max", "per_run", "passed",
    "failed", "errors", "skipped", "ok"}``: ``per_run`` holds the :class:`EvalResult` of each
    run in order and ``scores`` their scores (``None`` for an error or skip); ``avg``,
    ``min`` and ``max`` are over the runs that have a score (``None`` if none has);
    ``passed`` counts results reaching ``threshold``, ``failed`` the scored ones below it;
    ``ok`` is true only when every run passed.
    """
    graders = _select(evals, include, exclude)
    per_context = [
        [
            _run_one(fn, c if isinstance(c, EvalContext) else _context(c), judge_llm)
            for fn in graders
        ]
        for c in contexts
    ]
    return [
        _row(eval_id(fn), [results[i] for results in per_context], threshold)
        for i, fn in enumerate(graders)
    ]


def result_status(result: EvalResult, threshold: float = DEFAULT_THRESHOLD) -> str:
    """``"PASS"``, ``"FAIL"`` (scored below ``threshold``), ``"ERROR"`` or ``"SKIP"``."""
    if result.score is None:
        return "SKIP" if result.label == SKIPPED else "ERROR"
    return "PASS" if result.passed(threshold) else "FAIL"


def _context(value: object) -> EvalContext:
    if isinstance(value, Trajectory):
        return EvalContext.from_trajectory(value)
    raise TypeError(
        f"evals grade an EvalContext or a Trajectory, not {type(value).__name__}; build one "
        "with EvalContext.from_trajectory(traj) or EvalContext.from_trajectory_dir(path)"
    )


def _row(name: str, results: list[EvalResult], threshold: float) -> dict[str, Any]:
    scores = [r.score for r in results]
    scored = [s for s in scores if s is not None]
    passed = sum(r.passed(threshold) for r in results)
    errors = sum(r.label == ERROR for r in results)
    skipped = sum(r.label == SKIPPED for r in results)
    return {
        "name": name,
        "scores": scores,
        "runs": len(results),
        "avg": sum(scored) / len(scored) if scored else None,
        "min": min(scored) if scored else None,
        "max": max(scored) if scored else None,
        "per_run": results,
        "passed": passed,
        "failed": len(scored) - passed,
        "errors": errors,
        "skipped": skipped,
        "ok": bool(results) and passed == len(results),
    }


# -- selecting and calling graders ---------------------------------------------------------------


def _select(
    evals: Iterable[Grader] | Grader, include: Iterable[str] | str, exclude: Iterable[str] | str
) -> list[Grader]:
    graders = [evals] if callable(evals) else list(evals)
    for fn in graders:
        if not callable(fn):
            raise TypeError(f"an eval is a function of (ctx) or (ctx, llm), not {fn!r}")
    wanted, unwanted = _tag_set(include, "include"), _tag_set(exclude, "exclude")
    return [
        fn
        for fn in graders
        if (not wanted or eval_tags(fn) & wanted) and not eval_tags(fn) & unwanted
    ]


def _tag_set(tags: Iterable[str] | str, what: str) -> frozenset[str]:
    items = (tags,) if isinstance(tags, str) else tuple(tags)
    for tag in items:
        if not isinstance(tag, str):
            raise TypeError(f"{what} takes tags (str), not {tag!r}")
    return frozenset(items)


def _run_one(fn: Grader, ctx: EvalContext, judge_llm: Any) -> EvalResult:
    name = eval_id(fn)
    start = time.perf_counter()
    result = _grade(fn, ctx, judge_llm)
    duration_ms = (time.perf_counter() - start) * 1000
    return replace(result, name=name, duration_ms=round(duration_ms, 3))


def _grade(fn: Grader, ctx: EvalContext, judge_llm: Any) -> EvalResult:
    shape = _call_shape(fn)
    if isinstance(shape, str):
        return EvalResult(None, label=ERROR, explanation=shape)
    if inspect.iscoroutinefunction(fn):
        return EvalResult(
            None,
            label=ERROR,
            explanation="is async; write graders as plain functions (def, not async def), "
            "awaiting inside with asyncio.run if needed",
        )
    args: list[Any] = [ctx]
    kwargs: dict[str, Any] = {}
    llm = shape
    if llm is not None and judge_llm is not None:
        if llm.kind is llm.POSITIONAL_ONLY:
            args.append(judge_llm)
        else:
            kwargs[llm.name] = judge_llm
    elif llm is not None and llm.default is llm.empty:
        return EvalResult(
            None,
            label=SKIPPED,
            explanation=f"needs a judge model (its {llm.name!r} parameter) and none was given",
        )
    try:
        value = fn(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except AssertionError as exc:
        return EvalResult(
            0.0,
            label=FAIL,
            explanation=str(exc) or "failed an assert",
            details={"traceback": _traceback(exc)},
        )
    except BaseException as exc:  # pytest.skip() and friends are BaseExceptions too
        head = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
        error = head[-1] if head else type(exc).__name__
        return EvalResult(
            None,
            label=ERROR,
            explanation=f"raised {error}",
            details={"error": error, "traceback": _traceback(exc)},
        )
    if inspect.iscoroutine(value):
        value.close()  # never awaited: close it so Python does not warn about that
        return EvalResult(None, label=ERROR, explanation="returned a coroutine (never awaited)")
    try:
        return EvalResult.from_return(value)
    except (TypeError, ValueError) as exc:
        return EvalResult(None, label=ERROR, explanation=str(exc))


def _call_shape(fn: Grader) -> inspect.Parameter | str | None:
    """The judge parameter, if ``fn`` has one; or why ``fn`` cannot be a grader.

    The judge parameter is the one named ``llm`` or, failing that, a second positional
    parameter without a default; a second parameter with a default (``threshold=0.5``)
    is the grader's own business and never receives the judge.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None  # no signature to read (a builtin): call it with ctx alone
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind is p.VAR_POSITIONAL for p in params):
        return "takes no parameters; a grader takes (ctx) or (ctx, llm)"
    llm = next((p for p in params if p.name == "llm" and p.kind is not p.VAR_KEYWORD), None)
    if llm is None and len(positional) > 1 and positional[1].default is positional[1].empty:
        llm = positional[1]
    ctx = positional[0] if positional else None
    for p in params:
        required = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        if required and p is not ctx and p is not llm:
            return f"takes a required parameter {p.name!r}; a grader takes (ctx) or (ctx, llm)"
    return llm


def _traceback(exc: BaseException) -> str:
    """The traceback from the grader's frame on (the runner's own frame left out)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    lines = traceback.format_exception(type(exc), exc, tb, limit=-_TRACEBACK_FRAMES)
    return "".join(lines).rstrip()
