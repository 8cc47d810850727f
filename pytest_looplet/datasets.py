"""``@pytest.mark.looplet_dataset(path)``: an eval parametrized with the cases of a dataset file.

    @pytest.mark.looplet_dataset("conversions.yaml")      # beside this eval file
    def eval_converts(looplet_agent, case):                # case: looplet.Case
        traj = looplet_agent.run(case.inputs)
        ...

:func:`parametrize` (called by the plugin's ``pytest_generate_tests`` for any function that
carries the marker, an eval or a plain test) reads the file with
:func:`looplet.datasets.load_dataset` and parametrizes the function's ``case`` argument with
one :class:`~looplet.Case` per case, in file order, each with its name as its id:
``eval_converts[marathon-in-miles]``. So each case is an item of its own, with its own
cassette (named after the item), its own row in every report, and its own line in a baseline
comparison. The file is read at collection, on every xdist worker alike (the same order and
ids everywhere), once per run however many functions use it. A bad file, or a marker without
a path, fails collection of the eval file with one message naming the eval, the file, the case
and the field, and no traceback.

At run time :func:`case_threshold` lets a case's ``threshold`` override the eval's (read by
:mod:`pytest_looplet.scoring`), and :func:`note_case` puts the case's name, file and metadata
on every report of its item (the ``looplet_case`` user property, the JSON report's ``case``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from looplet.datasets import Case, DatasetError, load_dataset
from looplet.evals.report_model import Figures

__all__ = ["ARGUMENT", "MARKER", "case_of", "case_threshold", "note_case", "parametrize"]

MARKER = "looplet_dataset"
"""The marker's name: ``@pytest.mark.looplet_dataset("cases.yaml")``."""

ARGUMENT = "case"
"""The argument a marked function takes its :class:`~looplet.Case` in."""

_cache_key = pytest.StashKey[dict[Path, list[Case] | DatasetError]]()


def parametrize(metafunc: pytest.Metafunc, marker: pytest.Mark) -> None:
    """``pytest_generate_tests`` for a function carrying the marker: one call per case.

    Raises:
        pytest.Collector.CollectError: the marker has no usable path, the function takes no
            ``case`` argument, or the file is not a valid dataset (the message names the
            function, the file, the case and the field).
    """
    definition = metafunc.definition
    where = f"{definition.name}: @pytest.mark.{MARKER}"
    if len(marker.args) != 1 or marker.kwargs or not isinstance(marker.args[0], str | os.PathLike):
        raise pytest.Collector.CollectError(
            f"{where} takes one argument, the dataset file's path (relative to the eval "
            f"file), e.g. @pytest.mark.{MARKER}('cases.yaml'); got "
            f"{_call_text(marker)}"
        )
    if ARGUMENT not in metafunc.fixturenames:
        raise pytest.Collector.CollectError(
            f"{where}: the function takes no {ARGUMENT!r} argument; add one: "
            f"def {definition.name}(..., {ARGUMENT}) receives each case (a looplet.Case)"
        )
    path = Path(definition.path).parent / marker.args[0]
    cases = _cases(metafunc.config, path)
    if isinstance(cases, DatasetError):
        raise pytest.Collector.CollectError(
            f"{where}: {cases.with_path(_shown(metafunc.config, path))}"
        )
    metafunc.parametrize(ARGUMENT, cases, ids=[case.name for case in cases])


def _cases(config: pytest.Config, path: Path) -> list[Case] | DatasetError:
    """The file's cases, or its error: read once per run, whichever function asks first."""
    cache = config.stash.setdefault(_cache_key, {})
    key = path.resolve()
    if key not in cache:
        try:
            cache[key] = load_dataset(key)
        except DatasetError as exc:
            cache[key] = exc
    return cache[key]


def _shown(config: pytest.Config, path: Path) -> str:
    """``path`` relative to the rootdir when under it (as pytest shows files), else whole."""
    try:
        return path.resolve().relative_to(config.rootpath.resolve()).as_posix()
    except ValueError:
        return str(path)


def _call_text(marker: pytest.Mark) -> str:
    args = [repr(arg) for arg in marker.args]
    args += [f"{key}={value!r}" for key, value in marker.kwargs.items()]
    return f"({', '.join(args)})"


def case_of(item: pytest.Item) -> Case | None:
    """The :class:`~looplet.Case` an item was parametrized with, or ``None``."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(ARGUMENT) if callspec is not None else None
    return value if isinstance(value, Case) else None


def case_threshold(item: pytest.Item, threshold: float) -> float:
    """The item's case's threshold when it sets one, else ``threshold`` (the eval's)."""
    case = case_of(item)
    return threshold if case is None or case.threshold is None else case.threshold


def note_case(item: pytest.Item) -> None:
    """Put the item's case (name, file, metadata) on its reports, as ``looplet_case`` JSON.

    Done at collection, so a setup error's report (a missing cassette) carries it too.
    """
    case = case_of(item)
    if case is None:
        return
    dataset = _shown(item.config, Path(case.dataset)) if case.dataset else None
    value = {"name": case.name, "dataset": dataset, "metadata": case.metadata}
    item.user_properties.extend(Figures(case=value).properties())
