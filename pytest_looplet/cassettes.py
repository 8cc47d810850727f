"""The evals' cassettes as the plugin sees them: their file names, the suite's settings for
them, and what users of other recording plugins are told.

* **Names.** :func:`cassette_path` is the one rule, read by the ``looplet_cassette_path``
  fixture and by collection: ``cassettes/<module>/<item name>.yaml`` beside the eval file,
  with the characters a file name cannot hold replaced by ``_``. When that replacement
  changed the name, a short hash of the item's name is appended (``eval_x[a_b]-1f2e3d4c``),
  so ``a b`` and ``a/b`` get files of their own while plain ids keep their plain names (and
  the cassettes already recorded for them). A repeated eval's runs add ``-rep<N>`` after it.
  An item of a model matrix (:mod:`pytest_looplet.matrix`) records in its model's folder,
  ``cassettes/<module>/<provider>/<model>/``, named without the model's part of its id.
  :func:`shared_cassette` finds two items of a module that would still share a file, which
  the eval module turns into a collection error.
* **Settings.** :func:`ini_cassette_config` reads the ``looplet_cassette_*`` ini keys into
  keyword arguments of :func:`looplet.cassettes.use_cassette`, which the
  ``looplet_cassette_config`` fixture returns and a conftest may override;
  :func:`checked_cassette_config` checks what a fixture returned.
* **Notes.** :class:`CassetteNotes` (registered with ``--looplet-evals``) says, in the report
  header and at the end of the run, when pytest-recording's ``--record-mode`` or a
  conftest's ``vcr_config`` would have been expected to act on evals, and what does.
  They are terminal lines, not warnings, so ``-W error`` runs are not failed by them.

Nothing here imports looplet's cassettes unless a setting has to be checked against them.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import unicodedata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_looplet.settings import CASSETTE_INI_KEYS, RECORD_MODES

if TYPE_CHECKING:
    from pytest_looplet.settings import LoopletSettings

__all__ = [
    "INI_KEYS",
    "CassetteNotes",
    "cassette_path",
    "checked_cassette_config",
    "ini_cassette_config",
    "renamed_cassette_hint",
    "shared_cassette",
    "uses_default_path",
]

#: The ini keys of the suite's cassette settings, with their help text (registered by
#: :func:`pytest_looplet.settings.add_options`, which every run calls: kept there, so that a
#: run that uses no cassette does not import this module).
INI_KEYS = CASSETTE_INI_KEYS

# What a file name keeps: word characters and a few safe marks; the rest becomes "_".
_UNSAFE = re.compile(r"[^\w.\[\]=,+-]")
# File systems allow 255 bytes; the atomic write adds ".<name>.<pid>.tmp".
_MAX_FILE_NAME = 240
_DIGEST = 8
_FIXTURE = "looplet_cassette_path"
# pytest-recording's --record-mode values, as looplet's; "rewrite" replaces the file: "all".
_RECORD_MODES = {**{mode: mode for mode in RECORD_MODES}, "rewrite": "all"}
_USE_INSTEAD = (
    "their cassettes take the ini keys looplet_cassette_match_on, "
    "looplet_cassette_filter_headers and looplet_cassette_ignore_body_fields, or a "
    "looplet_cassette_config fixture returning use_cassette() arguments"
)


# -- names ---------------------------------------------------------------------------------


def cassette_path(item: pytest.Item) -> Path:
    """The cassette file of ``item`` under the default naming (see the module's docstring)."""
    name, suffix = _name_of(item)
    safe = _UNSAFE.sub("_", name)
    stem = safe if safe == name else f"{safe}-{_digest(name)}"
    if len(f"{stem}{suffix}.yaml".encode()) > _MAX_FILE_NAME:
        # Too long for a file system: a prefix, and the hash to tell long names apart.
        room = _MAX_FILE_NAME - len(f"-{_digest(name)}{suffix}.yaml")
        prefix = safe.encode()[:room].decode("utf-8", "ignore")
        stem = f"{prefix}-{_digest(name)}"
    node_path = Path(str(item.path))
    return (
        node_path.parent
        / "cassettes"
        / node_path.stem
        / _model_folder(item)
        / (f"{stem}{suffix}.yaml")
    )


def _model_folder(item: pytest.Item) -> str:
    """``<provider>/<model>`` for an item of a model matrix, else ``""``."""
    from pytest_looplet.matrix import model_key

    choice = item.stash.get(model_key, None)
    if choice is None:
        return ""
    safe = _UNSAFE.sub("_", choice.model)
    if safe != choice.model or safe.strip(".") == "":  # "a/b" and "a_b", "..": never one folder
        safe = f"{safe}-{_digest(choice.model)}"
    return f"{choice.provider}/{safe}"


def _name_of(item: pytest.Item) -> tuple[str, str]:
    """The name a cassette is named after (without a matrix's model), and the run's suffix
    for a repeated eval."""
    from pytest_looplet.collect import repetition_key
    from pytest_looplet.matrix import model_key, name_without_model

    repetition = item.stash.get(repetition_key, None)
    name, suffix = (
        (item.name, "") if repetition is None else (repetition.name, f"-rep{repetition.index}")
    )
    choice = item.stash.get(model_key, None)
    return (name if choice is None else name_without_model(name, choice)), suffix


def renamed_cassette_hint(item: pytest.Item, path: Path) -> str | None:
    """What to do when ``path`` (``item``'s cassette) is missing but the file its name
    had before names got a hash exists; ``None`` otherwise."""
    if path != cassette_path(item):
        return None  # named by an overridden fixture
    name, suffix = _name_of(item)
    former = path.with_name(f"{_UNSAFE.sub('_', name)}{suffix}.yaml")
    if former == path or former in item.stash.get(_siblings_key, frozenset()):
        return None  # the same name, or another eval's file now (its plain id's)
    try:
        if not former.is_file():
            return None
    except OSError:  # a name too long to ever have been written
        return None
    return (
        f"cassette {_shown(path)} does not exist, but {former.name} beside it does: that "
        "was its name before looplet appended a hash to ids with characters a file name "
        f"cannot hold. Rename it (git mv '{_shown(former)}' '{_shown(path)}'), unless another "
        "eval's id maps to it too: they shared one file, so delete it and record them again "
        "with --looplet-record-mode=once."
    )


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:_DIGEST]


def uses_default_path(item: pytest.Item) -> bool:
    """Whether ``item`` uses a cassette named by :func:`cassette_path`.

    An item that uses no cassette, or whose ``looplet_cassette_path`` is overridden (its
    eval names its own cassette, maybe on purpose shared), is not.
    """
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get(_FIXTURE) if info is not None else None
    if not definitions:
        return False
    used = definitions[-1]  # the closest definition is the one the item gets
    return getattr(used.func, "__module__", None) == "pytest_looplet.fixtures"


# On each item: the default cassette paths of its module's items (their files are taken).
_siblings_key = pytest.StashKey[frozenset[Path]]()


def shared_cassette(items: list[pytest.Item]) -> str | None:
    """Why two of ``items`` (one module's) would share a cassette file, or ``None``.

    Names that differ only in letter case (or Unicode normalisation) count as one file:
    they are one on macOS and Windows, where a recording would overwrite the other's.
    Each item keeps the module's cassette paths, for :func:`renamed_cassette_hint`.
    """
    paths = {item: cassette_path(item) for item in items if uses_default_path(item)}
    taken = frozenset(paths.values())
    seen: dict[str, tuple[pytest.Item, Path]] = {}
    for item, path in paths.items():
        item.stash[_siblings_key] = taken
        key = unicodedata.normalize("NFC", str(path)).casefold()
        first = seen.setdefault(key, (item, path))
        if first[0] is item:
            continue
        other, other_path = first
        where = (
            f"the cassette {_shown(path)}"
            if other_path == path
            else f"one cassette file: {_shown(other_path)} and {path.name} differ only in "
            "letter case (or Unicode normalisation), which macOS and Windows file systems "
            "do not tell apart"
        )
        return (
            f"looplet: evals {other.nodeid} and {item.nodeid} would share {where}; recording "
            "one would overwrite the other's. Give one of them another id "
            "(pytest.param(..., id=...) or parametrize's ids=), or override the "
            "looplet_cassette_path fixture for them."
        )
    return None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- settings ------------------------------------------------------------------------------


def ini_cassette_config(config: pytest.Config) -> dict[str, Any]:
    """The suite's ``use_cassette`` keyword arguments from the ``looplet_cassette_*`` keys.

    Always holds ``match_on``, ``ignore_fields`` and ``filter_headers``, the defaults when
    no key is set, so a ``looplet_cassette_config`` override can extend them.

    Raises:
        ValueError: a matcher name ``use_cassette`` does not know, naming the ini key.
    """
    from looplet.cassettes.matching import DEFAULT_MATCH_ON, DEFAULT_VOLATILE_FIELDS

    check_ini_match_on(config)
    match_on = config.getini("looplet_cassette_match_on")
    fields = config.getini("looplet_cassette_ignore_body_fields")
    return {
        "match_on": tuple(match_on) if match_on else DEFAULT_MATCH_ON,
        "ignore_fields": (*DEFAULT_VOLATILE_FIELDS, *fields),
        "filter_headers": tuple(config.getini("looplet_cassette_filter_headers")),
    }


def check_ini_match_on(config: pytest.Config) -> None:
    """Check ``looplet_cassette_match_on`` (when set) against the matcher names.

    Raises:
        ValueError: an unknown name, with the closest valid one.
    """
    names = config.getini("looplet_cassette_match_on")
    if not names:
        return  # nothing to check: looplet's cassettes need not be imported
    import difflib

    from looplet.cassettes.matching import MATCHER_NAMES

    for name in names:
        if name not in MATCHER_NAMES:
            near = difflib.get_close_matches(name, MATCHER_NAMES, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(
                f"looplet: ini looplet_cassette_match_on: unknown matcher {name!r}{hint}; "
                f"valid names: {', '.join(MATCHER_NAMES)}"
            )


def checked_cassette_config(value: object) -> dict[str, Any]:
    """What a ``looplet_cassette_config`` fixture returned, checked as ``use_cassette``
    keyword arguments.

    Raises:
        ValueError: not a dict, or a key ``use_cassette`` does not take, saying what to use.
    """
    from looplet.cassettes import use_cassette

    if not isinstance(value, dict):
        raise ValueError(
            f"looplet_cassette_config must return a dict of use_cassette() keyword "
            f"arguments, not {type(value).__name__}"
        )
    elsewhere = {
        "record_mode": "the record mode is --looplet-record-mode (ini looplet_record_mode)",
        "path": "the file is the looplet_cassette_path fixture",
    }
    for key, where in elsewhere.items():
        if key in value:
            raise ValueError(f"looplet_cassette_config returned {key!r}: {where}")
    parameters = inspect.signature(use_cassette).parameters
    valid = [name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(str(key) for key in value if key not in valid)
    if unknown:
        raise ValueError(
            f"looplet_cassette_config returned {', '.join(map(repr, unknown))}, which "
            f"use_cassette() does not take; it takes {', '.join(valid)}"
        )
    return value


# -- notes for users of other recording plugins --------------------------------------------


class CassetteNotes:
    """Tells users of pytest-recording (or vcrpy fixtures) what does not apply to evals.

    Registered on the controller with ``--looplet-evals``. Checks the cassette ini keys up
    front, so a typo is a usage error rather than an error in every eval.
    """

    def __init__(self, config: pytest.Config, settings: LoopletSettings) -> None:
        try:
            check_ini_match_on(config)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        self._config = config
        self._record_note = _record_mode_note(config, settings)
        self._eval_files: set[str] = set()

    def pytest_report_header(self) -> list[str]:
        """The record-mode note, first thing (``-q`` hides it: it is repeated at the end)."""
        return [self._record_note] if self._record_note else []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note the eval files that ran: a ``vcr_config`` matters only above one of them."""
        from pytest_looplet.collect import EVAL_KEYWORD

        if EVAL_KEYWORD in report.keywords:
            self._eval_files.add(report.nodeid.split("::", 1)[0])

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Write the notes at the end of the run."""
        notes = [self._record_note] if self._record_note else []
        notes += self._vcr_config_notes()
        for note in notes:
            terminalreporter.write_line(note, yellow=True)

    def _vcr_config_notes(self) -> list[str]:
        folders = {(self._config.rootpath / name).parent for name in self._eval_files}
        notes = []
        for plugin in self._config.pluginmanager.get_plugins():
            file = getattr(plugin, "__file__", None) if isinstance(plugin, ModuleType) else None
            if file is None or Path(file).name != "conftest.py":
                continue
            if not callable(getattr(plugin, "vcr_config", None)):
                continue
            here = Path(file).parent
            if any(folder == here or here in folder.parents for folder in folders):
                notes.append(
                    f"looplet: {file} defines vcr_config, which looplet evals do not read: "
                    f"{_USE_INSTEAD}."
                )
        return sorted(notes)


def _record_mode_note(config: pytest.Config, settings: LoopletSettings) -> str | None:
    """What to say when pytest-recording's ``--record-mode`` asks for another mode."""
    given = getattr(config.option, "record_mode", None)  # pytest-recording's, if installed
    if not isinstance(given, str) or given not in _RECORD_MODES:
        return None
    equivalent = _RECORD_MODES[given]
    if equivalent == settings.record_mode:
        return None  # the evals do what was asked
    return (
        f"looplet: --record-mode={given} is pytest-recording's and does not apply to looplet "
        f"evals, which run with record mode {settings.record_mode} "
        f"({settings.record_mode_source}); for evals use --looplet-record-mode={equivalent}"
    )
