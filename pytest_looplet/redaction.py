"""Keeping credentials out of what pytest shows and writes.

Each report is redacted where it is made (``pytest_runtest_makereport``,
``pytest_make_collect_report``): its failure text (``longrepr``, the traceback kept as
pytest's own objects so that it prints as usual), its captured output and log
(``sections``) and its ``user_properties``. So the terminal, the JUnit XML, the looplet JSON
and HTML reports and the copy an xdist worker sends all see ``<redacted>``. The JUnit file
is redacted once more when written, for the attributes and properties tests put there
directly. The rules (the credentials in use, key-shaped strings) are
:mod:`looplet._redact`'s, the same as for cassettes, provenance files and checkpoints.

A run that never imports looplet (no evals, no looplet fixture used) is left alone: it has no
looplet credential to hide, and the plugin does not make a plain run import looplet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from looplet._redact import TextRedactor

__all__ = ["redact_report"]

_junit_key = pytest.StashKey[Path]()
_PLAIN = (int, float, bool, type(None))


def pytest_configure(config: pytest.Config) -> None:
    """Note where the JUnit XML goes, resolved as pytest resolves it (controller only)."""
    xmlpath = config.getoption("xmlpath", None)
    if xmlpath and not hasattr(config, "workerinput"):
        expanded = os.path.expanduser(os.path.expandvars(str(xmlpath)))
        config.stash[_junit_key] = Path(os.path.normpath(os.path.abspath(expanded)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Redact each test report as it is made."""
    report = yield
    redact_report(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Redact each collection report (an import error can show a key too)."""
    report = yield
    redact_report(report)
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Redact the JUnit XML pytest just wrote (its own hook runs before this one)."""
    path = session.config.stash.get(_junit_key, None)
    if path is None or "looplet" not in sys.modules or not path.is_file():
        return
    from looplet._redact import redact_text

    text = path.read_text(encoding="utf-8")
    clean = redact_text(text)
    if clean != text:
        path.write_text(clean, encoding="utf-8")


def redact_report(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Replace the credentials in ``report``'s failure text, sections and user properties
    (once looplet is imported: see the module docstring)."""
    if "looplet" not in sys.modules or not _has_text(report):
        return
    from looplet._redact import TextRedactor

    texts = TextRedactor()
    report.sections = [(title, texts(content)) for title, content in report.sections]
    if report.longrepr is not None:
        report.longrepr = _longrepr(report.longrepr, texts)
    if isinstance(report, pytest.TestReport):
        report.user_properties = [(name, _value(v, texts)) for name, v in report.user_properties]
        wasxfail = getattr(report, "wasxfail", None)
        if isinstance(wasxfail, str):
            report.wasxfail = texts(wasxfail)


def _has_text(report: pytest.TestReport | pytest.CollectReport) -> bool:
    """Whether ``report`` carries anything to redact: most (a passed setup, a collected
    module) carry nothing, and need no redactor (which reads the environment)."""
    if report.sections or report.longrepr is not None:
        return True
    return isinstance(report, pytest.TestReport) and bool(
        report.user_properties or getattr(report, "wasxfail", None)
    )


def _longrepr(longrepr: Any, texts: TextRedactor) -> Any:
    """``longrepr`` redacted: strings and skip tuples directly, pytest's traceback objects in
    place (so that they print as before); anything else, or anything still holding a secret,
    becomes its redacted text."""
    if isinstance(longrepr, str | tuple):
        return texts.data(longrepr)
    _in_place(longrepr, texts, set())
    shown = str(longrepr)
    clean = texts(shown)
    return longrepr if clean == shown else clean


def _in_place(obj: Any, texts: TextRedactor, seen: set[int]) -> Any:
    """``obj`` with its strings redacted; pytest's own repr objects are changed in place."""
    if isinstance(obj, list | tuple):
        items = [_in_place(v, texts, seen) for v in obj]
        if isinstance(obj, list):
            return items
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, str | bytes | dict):
        return texts.data(obj)
    # Only pytest's reprs: a plugin's object may hold live state (the item, the config).
    if id(obj) in seen or not type(obj).__module__.startswith("_pytest."):
        return obj
    seen.add(id(obj))
    for name, value in list(getattr(obj, "__dict__", {}).items()):
        clean = _in_place(value, texts, seen)
        if clean is not value:
            object.__setattr__(obj, name, clean)
    return obj


def _value(value: object, texts: TextRedactor) -> object:
    """A user property's value redacted; an object whose text holds a secret becomes text."""
    if isinstance(value, str | bytes | dict | list | tuple):
        return texts.data(value)
    if isinstance(value, _PLAIN):
        return value
    shown = str(value)
    clean = texts(shown)
    return value if clean == shown else clean
