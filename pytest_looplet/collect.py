"""Eval files as pytest items: which files are eval files, and which functions in them are evals.

An eval file (``looplet_eval_files``, default ``eval_*.py``) is collected by
:class:`EvalModule`, a ``pytest.Module`` whose name filters accept only functions named with
``looplet_eval_prefix`` (default ``eval_``) and defined in that file. Evals are therefore plain
``pytest.Function`` items: fixtures, parametrize, marks, ``-k``, ``--lf`` and ``-x`` work as
for tests. Running and scoring them is :mod:`pytest_looplet.scoring`'s job.

An eval repeated ``k`` times (``@pytest.mark.looplet(repeat=k)`` or ``--looplet-repeat``)
is parametrized into ``k`` items (:func:`parametrize_repeats`), ``eval_x[rep2of5]``
(``eval_x[alice-rep2of5]`` when parametrized), each with its :class:`Repetition` in its
stash (read by ``looplet_cassette_path``) and a ``looplet_repetition`` user property
(``"2/5"``) that tells the controller which eval it repeats; the ``looplet_repetition``
fixture (defined in :mod:`pytest_looplet.plugin`, so that a run without evals need not
import this module) is the run's number. :func:`shard` keeps the eval items of one shard.

The module is imported with pytest's ``--import-mode``, like a test file: eval files that
share a name in different folders need ``__init__.py`` files (packages) under the default
``prepend`` mode, or ``--import-mode=importlib``.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import inspect
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_looplet.settings import LoopletSettings, looplet_settings

_FIXTURE = "looplet_repetition"
_REP_ID = re.compile(r"\brep(\d+)of(\d+)\]$")

__all__ = [
    "EVAL_KEYWORD",
    "EvalModule",
    "Repetition",
    "async_return_key",
    "collect_file",
    "eval_of",
    "is_eval",
    "is_eval_file",
    "is_eval_nodeid",
    "make_module",
    "parametrize_models",
    "parametrize_repeats",
    "repetition_key",
    "repetition_of_nodeid",
    "shard",
]

EVAL_KEYWORD = "looplet_eval"
"""The keyword every eval item carries: it rides on the reports (so the xdist controller can
tell evals from tests) and selects evals with ``-k looplet_eval``."""


class EvalModule(pytest.Module):
    """An eval file: collects the functions named with the eval prefix and defined in it.

    Classes are not collected, nor are functions imported from elsewhere (a helper
    ``eval_...`` imported from another module is not an eval of this file). Two evals that
    would share a cassette file (:func:`pytest_looplet.cassettes.shared_cassette`) make the
    module a collection error naming both.
    """

    @property
    def _prefix(self) -> str:
        return looplet_settings(self.config).eval_prefix

    def funcnamefilter(self, name: str) -> bool:
        return name.startswith(self._prefix)

    def classnamefilter(self, name: str) -> bool:
        return False

    def istestclass(self, obj: object, name: str) -> bool:
        return False

    def istestfunction(self, obj: object, name: str) -> bool:
        if not self.funcnamefilter(name):
            return False
        if getattr(obj, "__module__", None) != self.obj.__name__:
            return False
        return super().istestfunction(obj, name)

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        nodes = list(super().collect())
        for node in nodes:
            node.keywords[EVAL_KEYWORD] = True  # rides on every report of the item
            node.extra_keyword_matches.add(EVAL_KEYWORD)  # what -k matches
            if isinstance(node, pytest.Function) and inspect.iscoroutinefunction(node.obj):
                node.obj = _keeping_return(node, node.obj)
            if isinstance(node, pytest.Item):
                _note_model(node)
            repetition = _repetition_of(node)
            if repetition is not None and isinstance(node, pytest.Item):
                node.stash[repetition_key] = repetition
                # On every report of the item (setup errors too): which eval it repeats.
                node.user_properties.append(
                    ("looplet_repetition", f"{repetition.index}/{repetition.count}")
                )
        # Cassettes are per module (cassettes/<module>/), so one module's items are all
        # that can clash: refuse the module rather than let one recording overwrite another.
        from pytest_looplet.cassettes import shared_cassette

        clash = shared_cassette([node for node in nodes if isinstance(node, pytest.Item)])
        if clash is not None:
            raise self.CollectError(clash)
        return nodes


def _note_model(item: pytest.Item) -> None:
    """An item of a model matrix: its model in its stash (for its cassette's folder) and on
    every report, setup errors' too (``looplet_model``: ``provider:model``)."""
    from pytest_looplet.matrix import choice_of, model_key

    choice = choice_of(item, looplet_settings(item.config))
    if choice is not None:
        item.stash[model_key] = choice
        item.user_properties.append(("looplet_model", choice.label))


def parametrize_models(metafunc: pytest.Metafunc, settings: LoopletSettings) -> None:
    """``pytest_generate_tests`` for evals: an eval that uses the model, once per model of
    its matrix (:func:`pytest_looplet.matrix.parametrize_models`)."""
    if not isinstance(metafunc.definition.parent, EvalModule):
        return
    from pytest_looplet.matrix import parametrize_models as parametrize

    parametrize(metafunc, settings)


async_return_key = pytest.StashKey[object]()
"""What an ``async def`` eval returned (on ``item.stash``), whoever awaited it."""


def _keeping_return(
    item: pytest.Function, function: Callable[..., Awaitable[object]]
) -> Callable[..., Awaitable[None]]:
    """``function``, returning ``None`` after keeping its value in ``item.stash``.

    Whoever awaits an async eval (looplet itself, anyio's or pytest-asyncio's plugin) then
    leaves its value where scoring reads it: those plugins drop a test's return value.
    """

    @functools.wraps(function)
    async def eval_keeping_return(*args: object, **kwargs: object) -> None:
        item.stash[async_return_key] = await function(*args, **kwargs)

    return eval_keeping_return


@dataclass(frozen=True, slots=True)
class Repetition:
    """Which run of a repeated eval an item is.

    Attributes:
        index: 1-based number of this run.
        count: how many runs the eval has.
        name: the item's name without the repetition (``eval_x[alice]``), which names its
            cassette (``eval_x[alice]-rep2.yaml``).
    """

    index: int
    count: int
    name: str


repetition_key = pytest.StashKey[Repetition]()
"""Where a repeated eval item keeps its :class:`Repetition` (on ``item.stash``)."""


def eval_of(nodeid: str, repetition: str | None) -> str:
    """The eval a report's node id belongs to: the id without its ``repNofK`` part.

    ``repetition`` is the item's ``looplet_repetition`` user property (``"2/5"``), or
    ``None`` for an eval that is not repeated (its node id is returned unchanged).

    >>> eval_of("f.py::eval_x[alice-rep2of5]", "2/5"), eval_of("f.py::eval_y[rep1of2]", "1/2")
    ('f.py::eval_x[alice]', 'f.py::eval_y')
    """
    if not repetition:
        return nodeid
    index, _, count = repetition.partition("/")
    for suffix, keep in ((f"[rep{index}of{count}]", ""), (f"-rep{index}of{count}]", "]")):
        if nodeid.endswith(suffix):
            return nodeid[: -len(suffix)] + keep
    return nodeid


def shard(
    items: list[pytest.Item], index: int, total: int
) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """Split ``items`` into (kept, deselected) for shard ``index`` of ``total`` (1-based).

    Only eval items are split; other tests are kept in every shard. The eval items are
    sorted by a SHA-256 of their node id, then dealt round-robin: shard sizes differ by at
    most one, every shard has an item when there are at least ``total``, and the split is
    the same on every machine whatever order pytest collected in. Each repetition is an item
    of its own, so the runs of a repeated eval spread over the shards. ``kept`` keeps the
    collection order.
    """
    evals = sorted((item for item in items if is_eval(item)), key=_shard_key)
    chosen = {id(item) for item in evals[index - 1 :: total]}
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        keep = not is_eval(item) or id(item) in chosen
        (kept if keep else dropped).append(item)
    return kept, dropped


def _shard_key(item: pytest.Item) -> tuple[bytes, str]:
    # The hash mixes the evals of one file over the shards; the node id breaks a tie.
    return hashlib.sha256(item.nodeid.encode()).digest(), item.nodeid


def is_eval(item: pytest.Item) -> bool:
    """True when ``item`` is an eval collected from an eval file."""
    return isinstance(item.parent, EvalModule)


def is_eval_file(path: Path, settings: LoopletSettings) -> bool:
    """True when ``path`` matches one of the ``looplet_eval_files`` patterns."""
    return path.suffix == ".py" and _matches_any(path, settings.eval_files)


def is_eval_nodeid(nodeid: str, settings: LoopletSettings) -> bool:
    """True when ``nodeid`` names an eval: a function named with the eval prefix in an eval
    file, the rule :class:`EvalModule` collects by. For the xdist controller, which collects
    nothing and knows items by their node ids only."""
    file, _, name = nodeid.partition("::")
    return name.startswith(settings.eval_prefix) and is_eval_file(Path(file), settings)


def repetition_of_nodeid(nodeid: str) -> str | None:
    """``"2/5"`` for ``eval_x[rep2of5]`` (a run of a repeated eval), else ``None``."""
    match = _REP_ID.search(nodeid)
    return f"{match[1]}/{match[2]}" if match else None


def collect_file(
    file_path: Path, parent: pytest.Collector, settings: LoopletSettings
) -> EvalModule | None:
    """``pytest_collect_file``: an :class:`EvalModule` for an eval file pytest would skip.

    A file that pytest's own Python collector takes (it matches ``python_files`` or was named
    on the command line) is left to it; :func:`make_module` then turns it into an eval module,
    so no file is collected twice.
    """
    if not is_eval_file(file_path, settings):
        return None
    config = parent.config
    if parent.session.isinitpath(file_path) or _matches_any(
        file_path, config.getini("python_files")
    ):
        return None
    return EvalModule.from_parent(parent, path=file_path)


def make_module(
    module_path: Path, parent: pytest.Collector, settings: LoopletSettings
) -> EvalModule | None:
    """``pytest_pycollect_makemodule``: an :class:`EvalModule` when the file is an eval file."""
    if not is_eval_file(module_path, settings):
        return None
    return EvalModule.from_parent(parent, path=module_path)


def _matches_any(path: Path, patterns: Iterable[str]) -> bool:
    # Same reading as pytest's python_files: a pattern without a separator matches the file
    # name; one with a separator matches the end of the full path.
    for pattern in patterns:
        if "/" in pattern or os.sep in pattern:
            name = str(path)
            pattern = pattern.replace("/", os.sep)
            if not os.path.isabs(pattern):
                pattern = f"*{os.sep}{pattern}"
        else:
            name = path.name
        if fnmatch.fnmatch(name, pattern):
            return True
    return False


def _repeat(node: pytest.Item, default: int) -> int:
    marker = node.get_closest_marker("looplet")
    value = marker.kwargs.get("repeat") if marker is not None else None
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return 1  # one item, which scoring fails with the marker's problem
    return value


def parametrize_repeats(metafunc: pytest.Metafunc, default: int) -> None:
    """``pytest_generate_tests`` for evals: parametrize a repeated eval with its runs.

    Runs after the eval's own parametrization (the hook is ``trylast``), so the repetition id
    comes last: ``eval_x[alice-rep2of5]``. ``looplet_repetition`` is parametrized directly:
    in those items the fixture's value is the run's number.
    """
    if not isinstance(metafunc.definition.parent, EvalModule):
        return
    count = _repeat(metafunc.definition, default)
    if count < 2:
        return
    if _FIXTURE not in metafunc.fixturenames:
        # parametrize() takes only names the function uses; pytest prunes it again from
        # the items' fixture closure when no fixture asks for it.
        metafunc.fixturenames.append(_FIXTURE)
    metafunc.parametrize(
        _FIXTURE,
        range(1, count + 1),
        ids=[f"rep{index}of{count}" for index in range(1, count + 1)],
    )


def _repetition_of(node: pytest.Item | pytest.Collector) -> Repetition | None:
    callspec = getattr(node, "callspec", None)
    if callspec is None or _FIXTURE not in callspec.params:
        return None
    match = _REP_ID.search(node.name)
    if match is None:  # parametrized by the user, not by --looplet-repeat
        return None
    index, count = int(match[1]), int(match[2])
    return Repetition(index, count, eval_of(node.name, f"{index}/{count}"))
