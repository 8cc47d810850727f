"""A model matrix: every eval that uses the model runs once per model of ``--looplet-model a,b``.

* **Entries.** :func:`parse_models` reads ``--looplet-model`` (or the ini ``looplet_model``, a
  list split on commas and new lines) into :class:`ModelChoice` values: ``gpt-4o-mini`` is a
  model of the default provider (``--looplet-provider``), ``anthropic:claude-3-5-haiku-latest``
  names its provider (split at the first ``:``, so ``openai:llama3.1:8b`` is Ollama's
  ``llama3.1:8b`` on an OpenAI-compatible endpoint). An empty entry, an unknown provider or a
  model named twice is a usage error naming the option and the fix.
* **Items.** With two or more models, :func:`parametrize_models` (the eval plugin's
  ``pytest_generate_tests``, after the eval's own parametrization and before its repeats)
  parametrizes every eval whose fixtures reach ``looplet_model`` (``looplet_llm``,
  ``looplet_agent`` and ``looplet_judge`` do) on ``looplet_provider`` and ``looplet_model``
  directly, so those fixtures return the item's: ``eval_x[gpt-4o-mini]``,
  ``eval_x[alice-anthropic:claude-3-5-haiku-latest-rep2of3]``. An eval can name its own
  models with ``@pytest.mark.looplet(models=[...])``, which wins over the option (as its
  ``repeat=`` does) and applies even to one model. Each item keeps its :class:`ModelChoice`
  in its stash (:data:`model_key`) and reports it as the ``looplet_model`` user property
  (``provider:model``), so the report's items carry it and :mod:`looplet.evals.model_table`
  groups them into one row per model.
* **Cassettes.** An item of a matrix records to ``cassettes/<module>/<provider>/<model>/``,
  named as it would be without the matrix (:func:`name_without_model`): one folder per model,
  which can be deleted and re-recorded alone. Without a matrix names are unchanged.

Nothing here imports looplet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from looplet.evals.report_model import Report
    from pytest_looplet.settings import LoopletSettings

__all__ = [
    "MARKER_KEY",
    "ModelChoice",
    "choice_of",
    "html_table",
    "model_key",
    "name_without_model",
    "parametrize_models",
    "parse_models",
    "table_lines",
]

MARKER_KEY = "models"
"""The ``@pytest.mark.looplet(models=[...])`` keyword that names an eval's own models."""

_PARAMS = ("looplet_provider", "looplet_model")
_EXAMPLE = "gpt-4o-mini,anthropic:claude-3-5-haiku-latest"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """One model of a matrix.

    Attributes:
        provider: ``openai`` or ``anthropic``: the backend ``looplet_llm`` builds.
        model: the model's name as the provider knows it.
        id: the entry as written (``gpt-4o-mini``, ``anthropic:claude-3-5-haiku-latest``):
            the item id's part.
    """

    provider: str
    model: str
    id: str

    @property
    def label(self) -> str:
        """``provider:model``: what the report's items record."""
        return f"{self.provider}:{self.model}"


model_key = pytest.StashKey[ModelChoice]()
"""Where an item of a matrix keeps its :class:`ModelChoice` (on ``item.stash``)."""


def parse_models(
    raw: str | Iterable[object], default_provider: str, providers: Sequence[str], where: str
) -> tuple[ModelChoice, ...]:
    """The models of ``raw``: text split on commas and new lines (a comma ending a line is
    one separator with it), or a list of entries.

    ``where`` names the option in errors (``--looplet-model / looplet_model``).

    Raises:
        ValueError: an empty entry, an unknown provider, an entry naming no model, or one
            model twice; the message says how to write it.
    """
    if isinstance(raw, str):
        # A new line separates entries, with or without a comma before it (an ini list).
        entries: list[object] = list(re.split(r"\s*,?\s*\n\s*|,", raw.strip()))
    else:
        entries = list(raw)
    choices: list[ModelChoice] = []
    for position, entry in enumerate(entries, 1):
        if not isinstance(entry, str):
            raise ValueError(
                f"{where}: entry {position} is {entry!r}, not a model name; write names as "
                f"text, e.g. {_EXAMPLE!r}"
            )
        text = entry.strip()
        if not text:
            raise ValueError(
                f"{where}: entry {position} is empty; separate model names with single "
                f"commas, e.g. {_EXAMPLE}"
            )
        provider, sep, model = text.partition(":")
        if not sep:
            provider, model = default_provider, text
        provider, model = provider.strip(), model.strip()
        if provider not in providers:
            raise ValueError(
                f"{where}: unknown provider {provider!r} in {text!r}; write provider:model "
                f"with a provider of {', '.join(providers)} (e.g. "
                f"anthropic:claude-3-5-haiku-latest), or openai:{text} for a model whose name "
                "holds ':' on an OpenAI-compatible endpoint"
            )
        if not model:
            raise ValueError(f"{where}: {text!r} names no model; write {provider}:<model>")
        choice = ModelChoice(provider, model, text)
        twin = next((c for c in choices if c.label == choice.label), None)
        if twin is not None:
            raise ValueError(
                f"{where}: {text!r} names the model of {twin.id!r} again; name each model once"
            )
        choices.append(choice)
    return tuple(choices)


def _choices(metafunc: pytest.Metafunc, settings: LoopletSettings) -> tuple[ModelChoice, ...]:
    """The eval's models: its marker's ``models=``, else the option's when two or more."""
    marker = metafunc.definition.get_closest_marker("looplet")
    named = None if marker is None else marker.kwargs.get(MARKER_KEY)
    if named is None:
        return settings.models if len(settings.models) > 1 else ()
    from pytest_looplet.settings import PROVIDERS

    where = f"{metafunc.definition.name}: @pytest.mark.looplet({MARKER_KEY}=...)"
    try:
        choices = parse_models(
            [named] if isinstance(named, str) else named, settings.provider, PROVIDERS, where
        )
    except (TypeError, ValueError) as exc:
        problem = str(exc) if isinstance(exc, ValueError) else f"{where}: takes a list of names"
        raise pytest.Collector.CollectError(problem) from None
    if not choices:
        raise pytest.Collector.CollectError(f"{where}: names no model; give one or more")
    return choices


def parametrize_models(metafunc: pytest.Metafunc, settings: LoopletSettings) -> None:
    """``pytest_generate_tests`` for evals: one call per model of the eval's matrix.

    Only an eval whose fixture closure holds ``looplet_model`` is parametrized (one that
    never asks for a model runs once). ``looplet_provider`` and ``looplet_model`` are
    parametrized directly, so in those items the fixtures are the item's model.
    """
    if "looplet_model" not in metafunc.fixturenames:
        return
    choices = _choices(metafunc, settings)
    if not choices:
        return
    metafunc.parametrize(
        _PARAMS,
        [(choice.provider, choice.model) for choice in choices],
        ids=[choice.id for choice in choices],
    )


def choice_of(item: pytest.Item, settings: LoopletSettings) -> ModelChoice | None:
    """The :class:`ModelChoice` an item of a matrix was parametrized with, or ``None``.

    Read at collection (by :class:`pytest_looplet.collect.EvalModule`), which then keeps it
    in ``item.stash[model_key]``.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or not all(name in callspec.params for name in _PARAMS):
        return None
    provider, model = (callspec.params[name] for name in _PARAMS)
    label = f"{provider}:{model}"
    for choice in (*settings.models, *_marker_choices(item, settings)):
        if choice.label == label:
            return choice
    return ModelChoice(str(provider), str(model), label)


def _marker_choices(item: pytest.Item, settings: LoopletSettings) -> tuple[ModelChoice, ...]:
    from pytest_looplet.settings import PROVIDERS

    marker = item.get_closest_marker("looplet")
    named = None if marker is None else marker.kwargs.get(MARKER_KEY)
    if named is None:
        return ()
    try:
        return parse_models(
            [named] if isinstance(named, str) else named, settings.provider, PROVIDERS, ""
        )
    except (TypeError, ValueError):
        return ()


def name_without_model(name: str, choice: ModelChoice) -> str:
    """``name`` (an item's, without its repetition) without the model's part of its id.

    >>> choice = ModelChoice("openai", "gpt-4o-mini", "gpt-4o-mini")
    >>> name_without_model("eval_x[gpt-4o-mini]", choice), name_without_model(
    ...     "eval_x[alice-gpt-4o-mini]", choice)
    ('eval_x', 'eval_x[alice]')
    """
    for suffix, keep in ((f"[{choice.id}]", ""), (f"-{choice.id}]", "]")):
        if name.endswith(suffix):
            return name[: -len(suffix)] + keep
    return name  # an id pytest changed (escaped): the folder still tells models apart


def table_lines(report: Report) -> list[str]:
    """The terminal's per-model table, or no line when no item ran under a matrix."""
    from looplet.evals.model_table import model_rows

    rows = model_rows(report.items)
    if not rows:
        return []
    header = ("runs", "pass rate", "95% CI", "score", "steps", "tokens", "cost", "time", "model")
    cells = []
    for row in rows:
        ci = row.pass_rate_ci
        cells.append(
            (
                f"{row.passes}/{row.runs}",
                _fmt(row.pass_rate),
                "-" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]",
                _fmt(row.mean_score),
                _fmt(row.steps, "d"),
                _fmt(row.tokens, "d"),
                "-" if row.cost_usd is None else f"${row.cost_usd:.4f}",
                f"{row.duration_s:.2f}s",
                row.model,
            )
        )
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header) - 1)]
    lines = ["models (each model's runs of every eval in the matrix):"]
    for r in [header, *cells]:
        lines.append("  ".join([*(f"{c:>{w}}" for c, w in zip(r, widths, strict=False)), r[-1]]))
    return lines


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def html_table(report: Report) -> str:
    """The HTML page's per-model table (a ``models`` section), or ``""`` without a matrix."""
    from html import escape

    from looplet.evals.model_table import model_rows

    rows = model_rows(report.items)
    if not rows:
        return ""
    names = ("model", "runs", "pass rate", "95% CI", "score", "steps", "tokens", "cost", "time")
    head = "".join(
        f"<th>{name}</th>" if name == "model" else f"<th class='n'>{escape(name)}</th>"
        for name in names
    )
    body = []
    for row in rows:
        ci = row.pass_rate_ci
        cells = [
            f"<td><code>{escape(row.model)}</code></td>",
            f"<td class='n'>{row.passes}/{row.runs}</td>",
            f"<td class='n'>{_fmt(row.pass_rate)}</td>",
            f"<td class='n'>{'-' if ci is None else f'{ci[0]:.2f}–{ci[1]:.2f}'}</td>",
            f"<td class='n'>{_fmt(row.mean_score)}</td>",
            f"<td class='n'>{_fmt(row.steps, 'd')}</td>",
            f"<td class='n'>{_fmt(row.tokens, ',d')}</td>",
            f"<td class='n'>{'-' if row.cost_usd is None else f'${row.cost_usd:.4f}'}</td>",
            f"<td class='n'>{row.duration_s:.2f} s</td>",
        ]
        body.append(f"<tr data-model='{escape(row.model)}'>{''.join(cells)}</tr>")
    return (
        "<h2 id='models'>models</h2><table class='evals models'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
