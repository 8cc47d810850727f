"""Finding graders: ``eval_discover`` imports eval files and collects their ``eval_*`` functions.

Each file is imported under a module name derived from its full path, so ``a/eval_x.py`` and
``b/eval_x.py`` are two modules, and only functions *defined* in a file are collected (an
``eval_mark`` or helper imported into it is not a grader). A file that fails to import stops
discovery with :class:`EvalImportError`, which names every broken file: a suite that silently
lost a file would pass for the wrong reason. Tags (``eval_mark``) and running live in
:mod:`looplet.evals.runner`.

The engine that runs graders is the pytest plugin: ``pytest --looplet-evals DIR --looplet-runs
RUNS`` collects the same files and functions as pytest items (:mod:`pytest_looplet.runs`), and
``looplet eval`` runs that; ``eval_discover`` stays for scripts and :class:`EvalHook`, which
grade in-process without pytest.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from looplet.errors import LoopletError

__all__ = ["EvalImportError", "eval_discover", "eval_id"]

_ID_ATTR = "__looplet_eval_id__"


class EvalImportError(LoopletError, ImportError):
    """One or more eval files could not be imported; none of their graders would have run.

    Attributes:
        failures: each broken file with the error it raised, as ``(path, summary)``.
    """

    def __init__(self, failures: list[tuple[Path, str]]) -> None:
        self.failures = failures
        lines = [f"  {path}: {summary}" for path, summary in failures]
        super().__init__(
            f"{len(failures)} eval file(s) failed to import, so their evals cannot run:\n"
            + "\n".join(lines)
            + "\nFix the error (run `python FILE` to see it in full), or move the file out "
            "of the evals directory."
        )


def eval_discover(
    path: str | Path, pattern: str = "eval_*.py", prefix: str = "eval_"
) -> list[Callable[..., Any]]:
    """The graders in an eval file, or in every eval file under a directory (recursively).

    >>> evals = eval_discover("evals/")
    >>> results = eval_run(evals, EvalContext.from_trajectory(trajectory))

    Files are taken in sorted path order and functions in the order they are defined. Each
    grader is tagged with an id, ``"<file relative to path>::<function>"``, which
    :func:`~looplet.evals.runner.eval_run` uses as the result's name.

    Args:
        path: an eval file (imported whatever its name) or a directory searched for files
            matching ``pattern``; folders starting with ``.`` and ``__pycache__`` are skipped.
        pattern: the glob eval files match.
        prefix: the name prefix of the grader functions.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        EvalImportError: a file failed to import (every broken file is listed).
    """
    root = Path(path)
    if root.is_file():
        files, base = [root], root.parent
    elif root.is_dir():
        files, base = _eval_files(root, pattern), root
    else:
        raise FileNotFoundError(f"eval path {str(root)!r} does not exist")
    evals: list[Callable[..., Any]] = []
    failures: list[tuple[Path, str]] = []
    for file in files:
        try:
            module = _import_file(file)
        except Exception as exc:  # any error in user code: report it, keep going, raise below
            failures.append((file, _summarise(exc, file)))
            continue
        label = file.relative_to(base).as_posix() if file.is_relative_to(base) else str(file)
        for fn in _defined_functions(module, prefix):
            setattr(fn, _ID_ATTR, f"{label}::{fn.__name__}")
            evals.append(fn)
    if failures:
        raise EvalImportError(failures)
    return evals


def eval_id(fn: Callable[..., Any]) -> str:
    """A grader's name in results: its discovery id (``file::function``), else ``__name__``."""
    given = getattr(fn, _ID_ATTR, None)
    if isinstance(given, str):
        return given
    return str(getattr(fn, "__name__", None) or repr(fn))


def _eval_files(root: Path, pattern: str) -> list[Path]:
    found = []
    for file in root.rglob(pattern):
        parts = file.relative_to(root).parts[:-1]
        if any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue
        if file.is_file():
            found.append(file)
    return sorted(found)


def module_name_for(file: Path) -> str:
    """A module name unique to ``file``'s resolved path, readable in tracebacks."""
    resolved = file.resolve()
    digest = hashlib.sha1(str(resolved).encode(), usedforsecurity=False).hexdigest()[:10]
    stem = re.sub(r"\W", "_", resolved.stem)
    return f"_looplet_eval_{digest}_{stem}"


def _import_file(file: Path) -> ModuleType:
    name = module_name_for(file)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, as importlib does, so dataclasses and pickling in the
    # eval file can find their own module.
    sys.modules[name] = module
    # The file's folder goes first on sys.path while it runs, so it can import a helper
    # module beside it, as under pytest's default import mode.
    folder = str(file.parent.resolve())
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _defined_functions(module: ModuleType, prefix: str) -> list[Callable[..., Any]]:
    # vars() keeps the order the names were bound in, which is the order of definition.
    return [
        obj
        for name, obj in vars(module).items()
        if name.startswith(prefix) and inspect.isfunction(obj) and obj.__module__ == module.__name__
    ]


def _summarise(exc: BaseException, file: Path) -> str:
    """The exception and the line of ``file`` it came from, when known."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    head = text[-1] if text else type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{head} (line {exc.lineno})"
    target = str(file.resolve())
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if str(Path(frame.filename).resolve()) == target
    ]
    return f"{head} (line {lines[-1]})" if lines else head
