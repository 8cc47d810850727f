"""Deterministic scorers: a score in [0, 1] and the reason for it, from one call.

Each scorer returns an :class:`~looplet.evals.result.EvalResult`: the ``score``, the reason in
``explanation``, the scorer's ``name`` and its figures in ``metrics``. An eval returns it as it
is, and the pytest plugin reports the score and the reason (the terminal summary, the JSON and
HTML reports) and fails the eval below its threshold:

    def eval_greets(looplet_agent):
        traj = looplet_agent.run("Greet Alice, then finish.")
        return weighted_mean([
            (tool_call_f1(traj, [("greet", {"name": "Alice"}), "done"]), 2),
            (within_budget(traj, max_steps=4), 1),
        ])

* text: :func:`exact_match`, :func:`contains`, :func:`regex_match` (:func:`normalize_text`
  for comparisons that ignore case and spacing);
* structure: :func:`json_schema_valid`, with :mod:`looplet.schema`'s validator;
* trajectories: :func:`tool_call_f1`, :func:`trajectory_edit_distance`, :func:`within_budget`
  (in :mod:`looplet._trajectory_scorers`; expected steps are those of
  :func:`~looplet.assertions.assert_trajectory`, matchers and ``args`` modes included);
* composition: :func:`weighted_mean` and :func:`all_of` (the lowest part's score), which also
  take a judge's result (:mod:`looplet.evals.judge`, with its rubric templates) or any value an
  eval may return.

No scorer calls a model, reads a clock or draws a random number: the same inputs give the same
score and the same reason.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from looplet import schema as _schema
from looplet._trajectory_diff import clip
from looplet._trajectory_scorers import tool_call_f1, trajectory_edit_distance, within_budget
from looplet.errors import ConfigurationError
from looplet.evals.result import EvalResult

__all__ = [
    "all_of",
    "contains",
    "exact_match",
    "json_schema_valid",
    "normalize_text",
    "regex_match",
    "tool_call_f1",
    "trajectory_edit_distance",
    "weighted_mean",
    "within_budget",
]

_VALUE_CHARS = 60
_PART_REASON_CHARS = 120
_SHOWN_PROBLEMS = 3

#: The JSON Schema keywords :func:`json_schema_valid` enforces (:mod:`looplet.schema`'s).
_ENFORCED: Final = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
    }
)
_BOUNDS: Final = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_LENGTHS: Final = ("minLength", "maxLength", "minItems", "maxItems")
#: Keywords that never change validity (annotations), so they are accepted and ignored.
_ANNOTATIONS: Final = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "format"}
)


# -- text -------------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """``text`` with runs of whitespace made one space, ends stripped, case folded.

    For the ``normalize`` argument of :func:`exact_match` and :func:`contains`:
    ``normalize_text("  Hello,\\n ALICE ")`` is ``"hello, alice"``.
    """
    return " ".join(text.split()).casefold()


def exact_match(
    actual: object, expected: object, *, normalize: Callable[[str], str] | None = None
) -> EvalResult:
    """1.0 when ``actual`` equals ``expected``, else 0.0.

    Values of any type are compared with ``==``, except that a bool never equals a number
    (JSON keeps ``true`` and ``1`` apart). With ``normalize`` (e.g. :func:`normalize_text`),
    two strings are compared after it; it applies to text only.

    Example::

        exact_match(answer, "26.22 mi")                        # 1.0 or 0.0
        exact_match(" Hello, ALICE ", "hello, alice", normalize=normalize_text)  # 1.0

    Raises:
        ConfigurationError: ``normalize`` is not callable, is given for values that are not
            both strings, or returns something that is not a string.
    """
    left: object = actual
    right: object = expected
    if normalize is not None:
        if not callable(normalize):
            raise ConfigurationError(
                f"exact_match(normalize=...) takes a function from str to str, got "
                f"{type(normalize).__name__}; e.g. normalize=normalize_text"
            )
        if not (isinstance(actual, str) and isinstance(expected, str)):
            raise ConfigurationError(
                f"exact_match(normalize=...) compares text, got {type(actual).__name__} and "
                f"{type(expected).__name__}; leave normalize out to compare other values"
            )
        left, right = _normalized(normalize, actual), _normalized(normalize, expected)
    after = " (normalized)" if normalize is not None else ""
    if _same(left, right):
        return EvalResult(1.0, name="exact_match", explanation=f"equals {_show(right)}{after}")
    reason = f"{_show(left)} is not {_show(right)}{after}"
    if isinstance(left, str) and isinstance(right, str):
        at = next(
            (i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
            min(len(left), len(right)),
        )
        reason += f"; they differ from character {at + 1}"
    return EvalResult(0.0, name="exact_match", explanation=reason)


def contains(
    text: str | None,
    substrings: str | Iterable[str],
    *,
    mode: Literal["all", "any"] = "all",
    normalize: Callable[[str], str] | None = None,
) -> EvalResult:
    """1.0 when ``text`` contains all (``mode="all"``) or any (``mode="any"``) of
    ``substrings``, else 0.0; the share found is the metric ``found``.

    ``text`` ``None`` (no answer at all) scores 0.0. With ``normalize`` both sides are
    normalized first (``normalize=normalize_text`` ignores case and spacing).

    Example::

        contains(answer, ["Alice", "Bob"])              # both named: 1.0
        contains(answer, ["sorry", "cannot"], mode="any")

    Raises:
        ConfigurationError: ``substrings`` is empty or holds a non-string, ``text`` is neither
            a string nor ``None``, or ``mode`` is not ``"all"``/``"any"``.
    """
    name = "contains"
    wanted = [substrings] if isinstance(substrings, str) else list(substrings)
    if not wanted or not all(isinstance(s, str) for s in wanted):
        raise ConfigurationError(
            f"contains() takes a string or a non-empty list of strings to look for, got "
            f"{_show(substrings)}"
        )
    if mode not in ("all", "any"):
        raise ConfigurationError(f"contains(mode={mode!r}): use 'all' or 'any'")
    if text is None:
        return EvalResult(0.0, name=name, metrics={"found": 0.0}, explanation="no text (None)")
    _check_text(name, text)
    haystack = text if normalize is None else _normalized(normalize, text)
    needles = wanted if normalize is None else [_normalized(normalize, s) for s in wanted]
    found = [s for s, n in zip(wanted, needles, strict=True) if n in haystack]
    missing = [s for s in wanted if s not in found]
    share = len(found) / len(wanted)
    passed = not missing if mode == "all" else bool(found)
    if not missing:
        reason = f"has {_listed(found)}"
    elif not found:
        reason = f"has none of {_listed(wanted)}"
    else:
        reason = f"has {_listed(found)}; missing {_listed(missing)}"
    reason += f" ({len(found)} of {len(wanted)}, {mode} needed)"
    return EvalResult(
        1.0 if passed else 0.0, name=name, metrics={"found": share}, explanation=reason
    )


def regex_match(
    text: str | None, pattern: str | re.Pattern[str], *, flags: int = 0, full: bool = False
) -> EvalResult:
    """1.0 when ``pattern`` is found in ``text`` (``re.search``), or with ``full=True``
    matches all of it (``re.fullmatch``); else 0.0. ``text`` ``None`` scores 0.0.

    Example::

        regex_match(answer, r"^26\\.2\\d mi$")
        regex_match(answer, r"\\d+ m", flags=re.IGNORECASE)

    Raises:
        ConfigurationError: the pattern does not compile, or ``text`` is not a string.
    """
    name = "regex_match"
    if isinstance(pattern, re.Pattern) and isinstance(pattern.pattern, str):
        compiled = re.compile(pattern.pattern, pattern.flags | flags) if flags else pattern
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigurationError(
                f"regex_match(): the pattern {pattern!r} does not compile ({exc})"
            ) from None
    else:
        raise ConfigurationError(
            f"regex_match() takes a pattern string or re.compile('...'), got {_show(pattern)}"
        )
    shown = f"/{compiled.pattern}/"  # as written: repr() would double each backslash
    if text is None:
        return EvalResult(0.0, name=name, explanation=f"no text (None) to match {shown}")
    _check_text(name, text)
    match = compiled.fullmatch(text) if full else compiled.search(text)
    if match is None:
        how = "does not match all of" if full else "is not found in"
        return EvalResult(0.0, name=name, explanation=f"{shown} {how} {_show(text)}")
    where = "" if full else f" at character {match.start() + 1}"
    return EvalResult(1.0, name=name, explanation=f"{shown} matches {_show(match.group())}{where}")


# -- structure --------------------------------------------------------------------------------


def json_schema_valid(value: object, schema: Mapping[str, Any]) -> EvalResult:
    """1.0 when ``value`` is valid against the JSON Schema ``schema``, else 0.0.

    A ``str`` (or ``bytes``) is JSON text and is parsed first: text that is not JSON scores
    0.0 (to check a string value itself, pass ``json.dumps(value)``); any other value is
    checked as it is. The validator is :mod:`looplet.schema`'s, the one tool arguments go
    through: ``type``, ``properties``, ``required``, ``additionalProperties``, ``enum``,
    ``items``, ``minimum``/``maximum`` (and the exclusive forms), ``minLength``/``maxLength``,
    ``minItems``/``maxItems``; annotations (``title``, ``description``, ``format``...) are
    ignored. The reason lists the first problems, the metric ``problems`` counts them.

    Example::

        json_schema_valid(reply_text, {"type": "object", "required": ["answer"],
                                       "properties": {"answer": {"type": "string"}}})

    Raises:
        ConfigurationError: ``schema`` is not a dict, uses a keyword this validator does not
            enforce (``pattern``, ``oneOf``, ``$ref``...: it would pass values it should
            not), gives a keyword a value of the wrong kind (``"required": "answer"``), or
            names a type JSON Schema does not have.
    """
    name = "json_schema_valid"
    _check_schema(schema, "$")
    data = value
    if isinstance(value, str | bytes):
        try:
            data = json.loads(value)
        except ValueError as exc:
            return EvalResult(
                0.0, name=name, metrics={"problems": 1.0}, explanation=f"not JSON ({exc})"
            )
    problems: list[str] = []
    _schema._validate_value(schema, data, "$", problems)
    if not problems:
        return EvalResult(1.0, name=name, metrics={"problems": 0.0}, explanation="valid")
    # looplet.schema words problems for tool arguments; here they are fields of a document.
    shown = [p.replace("argument ", "field ") for p in problems[:_SHOWN_PROBLEMS]]
    more = len(problems) - len(shown)
    noun = "problem" if len(problems) == 1 else "problems"
    reason = f"{len(problems)} {noun}: {'; '.join(shown)}" + (f"; and {more} more" if more else "")
    return EvalResult(
        0.0, name=name, metrics={"problems": float(len(problems))}, explanation=reason
    )


def _check_schema(schema: object, path: str) -> None:
    if not isinstance(schema, Mapping):
        raise ConfigurationError(
            f"json_schema_valid(): the schema at {path} is a dict (a JSON Schema object), got "
            f"{_show(schema)}"
        )
    unknown = sorted(set(schema) - _ENFORCED - _ANNOTATIONS)
    if unknown:
        raise ConfigurationError(
            f"json_schema_valid(): the schema at {path} uses {', '.join(map(repr, unknown))}, "
            f"which this validator does not enforce (it knows {', '.join(sorted(_ENFORCED))}); "
            "check that part in the eval itself"
        )
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [] if declared is None else [declared]
    for type_name in names:
        if type_name not in _schema._JSON_TYPES:
            raise ConfigurationError(
                f"json_schema_valid(): the schema at {path} has type {type_name!r}; use one "
                f"of {', '.join(sorted(_schema._JSON_TYPES))}"
            )
    _check_shapes(schema, path)
    for key, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{path}.{key}")
    if "items" in schema:
        _check_schema(schema["items"], f"{path}[]")
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        _check_schema(extra, f"{path}.*")


def _check_shapes(schema: Mapping[str, Any], path: str) -> None:
    """Refuse keyword values the validator would misread (``"required": "a"`` is 1 letter)."""
    shapes: list[tuple[str, Callable[[object], bool], str]] = [
        ("properties", lambda v: isinstance(v, Mapping), "an object of schemas"),
        ("required", lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v),
         "a list of names"),
        ("enum", lambda v: isinstance(v, list), "a list of values"),
    ]  # fmt: skip
    shapes += [(key, _is_number, "a number") for key in _BOUNDS]
    shapes += [(key, _is_count, "an int >= 0") for key in _LENGTHS]
    for key, fits, shape in shapes:
        if key in schema and not fits(schema[key]):
            raise ConfigurationError(
                f"json_schema_valid(): {key!r} of the schema at {path} is {shape}, got "
                f"{_show(schema[key])}"
            )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# -- composition ------------------------------------------------------------------------------


def weighted_mean(
    parts: Iterable[tuple[object, float] | object], *, name: str = "weighted_mean"
) -> EvalResult:
    """The weighted mean of several scores: ``sum(weight * score) / sum(weight)``.

    Each part is ``(result, weight)``, or a result alone (weight 1). A result is a scorer's
    :class:`EvalResult`, a judge's, or anything an eval may return (a bool, a number in
    [0, 1], a dict with a ``score``). The reason lists every part's score, weight and reason;
    the metrics are each part's score by its name (``exact_match``, a repeated name gets
    ``#2``...) and its own metrics as ``<name>.<metric>``; ``details["parts"]`` holds the
    parts' results.

    Example::

        weighted_mean([(exact_match(answer, "26.22 mi"), 3), (within_budget(traj, max_steps=4), 1)])

    Raises:
        ConfigurationError: no parts; a weight that is not a number, negative, NaN or
            infinite; weights that add up to 0; a part that is not a score, or is an error or
            skip without one.
    """
    weighted: list[tuple[EvalResult, float]] = []
    for index, part in enumerate(parts, start=1):
        value, weight = part if isinstance(part, tuple) and len(part) == 2 else (part, 1.0)
        weighted.append((_part(name, index, value), _weight(name, index, weight)))
    if not weighted:
        raise ConfigurationError(f"{name}() needs at least one part: [(result, weight), ...]")
    total = math.fsum(weight for _, weight in weighted)
    if total <= 0:
        raise ConfigurationError(
            f"{name}(): the weights add up to 0; give at least one part a positive weight"
        )
    mean = math.fsum(weight * _score(result) for result, weight in weighted) / total
    score = min(1.0, max(0.0, mean))  # against rounding just outside [0, 1]
    names = _part_names(result for result, _ in weighted)
    described = [
        f"{label} {_score(result):.2f} x{weight:g}{_because(result)}"
        for label, (result, weight) in zip(names, weighted, strict=True)
    ]
    reason = f"weighted mean {score:.2f} of {len(weighted)}: {'; '.join(described)}"
    return _composite(name, score, reason, names, [result for result, _ in weighted])


def all_of(*parts: object, name: str = "all_of") -> EvalResult:
    """The lowest of several scores: the eval passes its threshold only if every part does.

    A part is anything :func:`weighted_mean` takes as a result. Scores of 0 and 1 make this
    "all must pass"; graded scores make it a gate (``all_of(json_schema_valid(...),
    judge_result)`` is the judge's score when the JSON is valid, 0 when not). The reason
    names the lowest part first; metrics and details are as for :func:`weighted_mean`.

    Example::

        all_of(contains(answer, "Alice"), tool_call_f1(traj, expected))

    Raises:
        ConfigurationError: no parts, or a part that is not a score (or has none).
    """
    results = [_part(name, index, value) for index, value in enumerate(parts, start=1)]
    if not results:
        raise ConfigurationError(f"{name}() needs at least one part: {name}(result, result...)")
    names = _part_names(results)
    lowest = min(range(len(results)), key=lambda i: _score(results[i]))
    score = _score(results[lowest])
    others = [
        f"{label} {_score(result):.2f}{_because(result)}"
        for i, (label, result) in enumerate(zip(names, results, strict=True))
        if i != lowest
    ]
    reason = f"lowest {score:.2f}: {names[lowest]}{_because(results[lowest])}"
    if others:
        reason += f"; also {'; '.join(others)}"
    return _composite(name, score, reason, names, results)


def _part(name: str, index: int, value: object) -> EvalResult:
    try:
        result = EvalResult.from_return(value)
    except (TypeError, ValueError) as exc:
        problem = str(exc).partition("; an eval returns")[0]
        raise ConfigurationError(
            f"{name}(): part {index} is not a score: {problem}; give a scorer's or judge's "
            "result, a bool, a number in [0, 1] or a dict with a 'score'"
        ) from None
    if result.score is None:
        raise ConfigurationError(
            f"{name}(): part {index} ({result.name or 'unnamed'}) has no score: it is "
            f"{result.label!r}{_because(result)}"
        )
    return result


def _weight(name: str, index: int, weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise ConfigurationError(
            f"{name}(): part {index}'s weight is a number, got {_show(weight)}; write "
            "(result, weight)"
        )
    number = float(weight)
    if not math.isfinite(number) or number < 0:
        raise ConfigurationError(
            f"{name}(): part {index}'s weight is {number!r}; a weight is a finite number >= 0"
        )
    return number


def _score(result: EvalResult) -> float:
    assert result.score is not None  # _part refused results without one
    return result.score


def _part_names(results: Iterable[EvalResult]) -> list[str]:
    names: list[str] = []
    for index, result in enumerate(results, start=1):
        base = result.name or f"part{index}"
        label, n = base, 1
        while label in names:
            n += 1
            label = f"{base}#{n}"
        names.append(label)
    return names


def _composite(
    name: str, score: float, reason: str, names: Sequence[str], results: Sequence[EvalResult]
) -> EvalResult:
    metrics: dict[str, float] = {}
    for label, result in zip(names, results, strict=True):
        metrics[label] = _score(result)
        metrics.update({f"{label}.{key}": value for key, value in result.metrics.items()})
    return EvalResult(
        score, name=name, metrics=metrics, details={"parts": tuple(results)}, explanation=reason
    )


def _because(result: EvalResult) -> str:
    return f" ({clip(result.explanation, _PART_REASON_CHARS)})" if result.explanation else ""


# -- helpers ----------------------------------------------------------------------------------


def _same(left: object, right: object) -> bool:
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    try:
        return bool(left == right)
    except Exception:  # an __eq__ that raises (or returns an array) is not a match
        return False


def _normalized(normalize: Callable[[str], str], text: str) -> str:
    out = normalize(text)
    if not isinstance(out, str):
        raise ConfigurationError(
            f"normalize returned {type(out).__name__} for {_show(text)}; it must return a str"
        )
    return out


def _check_text(name: str, text: object) -> None:
    if not isinstance(text, str):
        raise ConfigurationError(
            f"{name}() checks text, got {_show(text)}; pass a string (str(value), "
            "json.dumps(value), or the answer's field)"
        )


def _listed(values: Sequence[str]) -> str:
    return ", ".join(_show(v) for v in values)


def _show(value: object) -> str:
    return clip(repr(value), _VALUE_CHARS)
