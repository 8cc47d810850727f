"""Eval files as pytest items: which files are eval files, and which functions in them are evals.

An eval file (``looplet_eval_files``, default ``eval_*.py``) is collected by
:class:`EvalModule`, a ``pytest.Module`` whose name filters accept only functions named with
``looplet_eval_prefix`` (default ``eval_``) and defined in that file. Evals are therefore plain
``pytest.Function`` items: fixtures, parametrize, marks, ``-k``, ``--lf`` and ``-x`` work as
for tests. Running and scoring them is :mod:`pytest_looplet.scoring`'s job.

The module is imported with pytest's ``--import-mode``, like a test file: eval files that
share a name in different folders need ``__init__.py`` files (packages) under the default
``prepend`` mode, or ``--import-mode=importlib``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_looplet.plugin import LoopletSettings, looplet_settings

__all__ = ["EVAL_KEYWORD", "EvalModule", "collect_file", "is_eval", "is_eval_file", "make_module"]

EVAL_KEYWORD = "looplet_eval"
"""The keyword every eval item carries: it rides on the reports (so the xdist controller can
tell evals from tests) and selects evals with ``-k looplet_eval``."""


class EvalModule(pytest.Module):
    """An eval file: collects the functions named with the eval prefix and defined in it.

    Classes are not collected, nor are functions imported from elsewhere (a helper
    ``eval_...`` imported from another module is not an eval of this file).
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
        return nodes


def is_eval(item: pytest.Item) -> bool:
    """True when ``item`` is an eval collected from an eval file."""
    return isinstance(item.parent, EvalModule)


def is_eval_file(path: Path, settings: LoopletSettings) -> bool:
    """True when ``path`` matches one of the ``looplet_eval_files`` patterns."""
    return path.suffix == ".py" and _matches_any(path, settings.eval_files)


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
