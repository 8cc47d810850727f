"""`EvalResult`: the score an eval produces, and the one place its return value is normalised.

An eval may assert, or return ``None``, a ``bool``, a number in [0, 1], a dict of metrics with a
``"score"`` key, or an :class:`EvalResult`; :meth:`EvalResult.from_return` turns each of these
into an :class:`EvalResult` and rejects anything else. Running evals lives elsewhere (the
pytest plugin's ``scoring`` module, :mod:`looplet.evals.runner`); the default threshold both use
is :data:`DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ACCEPTED_FORMS", "DEFAULT_THRESHOLD", "ERROR", "SKIPPED", "EvalResult"]

ACCEPTED_FORMS = (
    "None, a bool, a number in [0, 1], a dict with a 'score' in [0, 1] "
    "(its other numeric entries are metrics), or an EvalResult"
)
"""The return values an eval may have, as error messages name them."""

DEFAULT_THRESHOLD = 0.5
"""The score an eval must reach to pass unless told otherwise. Never 0: at 0 nothing fails."""

ERROR = "error"
"""The label of a result whose eval raised or returned something unusable (score ``None``)."""

SKIPPED = "skipped"
"""The label of a result whose eval could not run, e.g. for want of a judge (score ``None``)."""

_UNSCORED_LABELS = (ERROR, SKIPPED)

_TEXT_KEYS = ("label", "explanation", "name")


@dataclass(frozen=True)
class EvalResult:
    """The outcome of one eval: a score in [0, 1] and what explains it.

    An eval returns one (or a simpler form that :meth:`from_return` turns into one); the
    pytest plugin fails the eval when the score is below its threshold.

    >>> EvalResult(0.8, label="good", metrics={"recall": 0.9}).passed(0.5)
    True

    The original looplet's field order was ``(name, score, ...)``; every field may be given by
    keyword, so ``EvalResult(name="x", score=1.0, duration_ms=3.0)`` works as it did.

    Attributes:
        score: the verdict, 0.0 (worst) to 1.0 (best). 0.0 is a score like any other.
            ``None`` only with the label ``"error"`` or ``"skipped"``: the eval gave no
            verdict, and such a result never passes.
        label: a short category for the verdict (``"correct"``, ``"partial"``...).
        metrics: named numbers beside the score (recall, cost, latency...).
        details: anything else worth keeping with the result; not validated.
        explanation: why the score is what it is (the scorers of :mod:`looplet.scorers`
            and judges fill it in); the plugin reports it as the eval's ``reason`` and
            shows it when the eval fails.
        name: the eval's name, when the result travels without its test id.
        duration_ms: how long the eval took, filled in by the runner.

    Raises:
        TypeError: ``score`` or a metric is not a real number (or ``score`` is ``None``
            with a label other than ``"error"`` or ``"skipped"``).
        ValueError: ``score`` is outside [0, 1] or NaN, or a metric is NaN.
    """

    score: float | None
    label: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    explanation: str = ""
    name: str = ""
    duration_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.score is not None or self.label not in _UNSCORED_LABELS:
            object.__setattr__(self, "score", _check_score(self.score))
        metrics = {str(key): _check_metric(key, value) for key, value in self.metrics.items()}
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "details", dict(self.details))

    def passed(self, threshold: float = DEFAULT_THRESHOLD) -> bool:
        """True when the score reaches ``threshold`` (``score >= threshold``).

        A result without a score (an error, a skip) never passes.
        """
        return self.score is not None and self.score >= threshold

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict form (``details`` as given, so JSON-able only if they are)."""
        return {
            "name": self.name,
            "score": self.score,
            "label": self.label,
            "metrics": dict(self.metrics),
            "details": dict(self.details),
            "explanation": self.explanation,
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_return(cls, value: object) -> EvalResult:
        """Normalise what an eval returned.

        ``None`` (an eval that only asserts) and ``True`` score 1.0, ``False`` 0.0; a number
        is the score; a dict must hold ``"score"``, its string ``"label"``, ``"explanation"``
        and ``"name"`` fill those fields, its other numeric entries become metrics and the
        rest details; an :class:`EvalResult` is returned as it is.

        Raises:
            TypeError: ``value`` is none of the accepted forms (a string, a list...), or a
                dict has no ``"score"``.
            ValueError: the score is outside [0, 1] or NaN.
        """
        if isinstance(value, EvalResult):
            return value
        if value is None:
            return cls(1.0)
        if isinstance(value, bool):
            return cls(1.0 if value else 0.0)
        try:
            if isinstance(value, numbers.Real):
                return cls(value)  # type: ignore[arg-type]  # _check_score converts any Real
            if isinstance(value, Mapping):
                return cls._from_mapping(value)
            raise TypeError("not an accepted form")
        except (TypeError, ValueError) as exc:
            kind = TypeError if isinstance(exc, TypeError) else ValueError
            raise kind(
                f"returned {_describe(value)}: {exc}; an eval returns {ACCEPTED_FORMS}"
            ) from None

    @classmethod
    def _from_mapping(cls, value: Mapping[Any, Any]) -> EvalResult:
        if "score" not in value:
            raise TypeError("a dict needs a 'score' key")
        text = {key: value[key] for key in _TEXT_KEYS if isinstance(value.get(key), str)}
        metrics: dict[str, float] = {}
        details: dict[str, Any] = {}
        for key, item in value.items():
            if key == "score" or key in text:
                continue
            if not isinstance(item, bool) and isinstance(item, numbers.Real):
                metrics[str(key)] = float(item)
            else:
                details[str(key)] = item
        return cls(value["score"], metrics=metrics, details=details, **text)


def _check_score(score: object) -> float:
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        raise TypeError(f"a score is a number in [0, 1], not {_describe(score)}")
    number = float(score)
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"score {number!r} is outside [0, 1]")
    return number


def _check_metric(key: object, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"metric {key!r} is a number, not {_describe(value)}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"metric {key!r} is NaN")
    return number


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"
