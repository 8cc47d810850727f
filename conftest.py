"""Runs every Python block of README.md and docs/ as a test, with Sybil.

Each page is one Sybil document: its blocks run in order, in one namespace, in a fresh
working folder of its own (so a page can build on its earlier blocks and write files). Under
xdist a page's blocks all go to one worker (:func:`pytest_xdist_make_scheduler`), since they
share that namespace.

What a page can use, besides plain ```` ```python ```` blocks:

* a block with a title, ```` ```python title="evals/eval_greeter.py" ```` (any language), is a
  file: it is written to that path in the page's folder (Python is compiled, so a syntax
  error fails), for later blocks to import or run;
* ``<!-- invisible-code-block: python ... -->`` runs setup or checks the reader need not see;
* ``<!-- skip: next "why it cannot run here" -->`` marks a block that needs what CI does not
  have (an API key, a local model server); the reason is required;
* in the namespace: ``run_pytest(*args)`` runs pytest in the page's folder (a subprocess,
  returning the completed process) and ``serve_openai(script)`` starts looplet's scripted
  model server for the rest of the page and points ``OPENAI_BASE_URL``/``OPENAI_API_KEY``
  (and ``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY``) at it.

A ```` ```python ```` fence with anything else after the language would be skipped by Sybil
silently, so it fails instead. This file imports nothing from Sybil until a Markdown file is
collected, so runs that collect none (the example evals, with only the ``pytest`` extra) need
no Sybil.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent
DOC_PATTERNS = ("README.md", "docs/*.md", "docs/*/*.md")
TITLED = re.compile(r'^(?P<language>\S+)\s+title="(?P<title>[^"]+)"\s*$')
PYTHON_FENCE = re.compile(r"^(python|py|python3)(\s.*)?$")

_collect: Callable[[Path, pytest.Collector], Any] | None = None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    """A Markdown page of the docs (or the README) is a Sybil document of tests."""
    if file_path.suffix != ".md" or not _is_doc_page(file_path):
        return None
    global _collect
    if _collect is None:
        try:
            _collect = _sybil().pytest()
        except ImportError:  # only an error if the page is then collected (not for example_evals)
            return _SybilMissing.from_parent(parent, path=file_path)
    return _collect(file_path, parent)


class _SybilMissing(pytest.File):
    """A page whose examples cannot run: Sybil, from the dev extra, is not installed."""

    def collect(self) -> Iterable[pytest.Item]:
        raise pytest.UsageError(
            f"{self.path.name}: the examples of README.md and docs/ run with Sybil, which is "
            'not installed: pip install -e ".[dev]"'
        )


def _is_doc_page(path: Path) -> bool:
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return relative == Path("README.md") or relative.parts[0] == "docs"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n``, keep each page's blocks on one worker, in order: they share a namespace.

    Every other test is a unit of its own, as with xdist's default ``--dist load``. (Not
    ``xdist_group`` marks with ``--dist loadgroup``: xdist 3.8 groups by rewriting
    ``item._nodeid``, which pytest 9.2's nodes no longer read.) An explicit ``--dist`` mode
    other than ``load`` is left as it is.
    """
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class DocPagesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.endswith(".md") else nodeid

    return DocPagesTogether(config, log)


def _sybil() -> Any:
    from sybil import Sybil  # the dev extra brings it
    from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

    return Sybil(
        parsers=[PythonCodeBlockParser(), _FileBlockParser(), _ReasonedSkipParser(SkipParser())],
        patterns=DOC_PATTERNS,
        setup=_setup_page,
        teardown=_teardown_page,
    )


class _FileBlockParser:
    """```` ```lang title="path" ```` blocks: written to the page's folder, not run."""

    def __init__(self) -> None:
        from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

        self.lexer = RawFencedCodeBlockLexer(
            info_pattern=re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE)
        )

    def __call__(self, document: Any) -> Iterable[Any]:
        for region in self.lexer(document):
            info = region.lexemes["info"].strip()
            titled = TITLED.match(info)
            if titled:
                region.parsed = (titled["language"], titled["title"], region.lexemes["source"])
                region.evaluator = _write_file
                yield region
            elif PYTHON_FENCE.match(info) and info != "python":
                region.parsed = info
                region.evaluator = _refuse_fence
                yield region


def _write_file(example: Any) -> None:
    language, title, source = example.parsed
    if language in ("python", "py"):
        compile(str(source), title, "exec")
    path = Path.cwd() / title
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(source), encoding="utf-8")


def _refuse_fence(example: Any) -> None:
    raise AssertionError(
        f"```{example.parsed} would not run: write ```python, or ```python "
        'title="file.py" for a file, or mark it <!-- skip: next "reason" -->'
    )


class _ReasonedSkipParser:
    """Sybil's skip directive, refusing ``skip: next``/``start`` without a reason."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser

    def __call__(self, document: Any) -> Iterable[Any]:
        for region in self.parser(document):
            action, reason = region.parsed
            if action in ("next", "start") and not reason:
                line = document.text.count("\n", 0, region.start) + 1
                raise ValueError(
                    f'{document.path}:{line}: "skip: {action}" needs a reason: '
                    f'<!-- skip: {action} "what it needs that CI does not have" -->'
                )
            yield region


def _setup_page(namespace: dict[str, Any]) -> None:
    """A fresh folder (the cwd, on sys.path), the environment saved, the helpers."""
    folder = Path(tempfile.mkdtemp(prefix="looplet-docs-"))
    saved = {
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "path": list(sys.path),
        "modules": set(sys.modules),
        "folder": folder,
        "servers": [],
    }
    namespace["__docs_page__"] = saved
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    for name in [n for n in os.environ if n.startswith(("OPENAI_", "ANTHROPIC_"))]:
        del os.environ[name]
    namespace["run_pytest"] = _run_pytest
    namespace["serve_openai"] = lambda script: _serve(saved, script)


def _teardown_page(namespace: dict[str, Any]) -> None:
    saved = namespace["__docs_page__"]
    for server in saved["servers"]:
        server.stop()
    os.chdir(saved["cwd"])
    sys.path[:] = saved["path"]
    os.environ.clear()
    os.environ.update(saved["environ"])
    folder = str(saved["folder"])
    for name in set(sys.modules) - saved["modules"]:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(folder):
            del sys.modules[name]  # a page's own agent.py must not leak into the next page
    shutil.rmtree(folder, ignore_errors=True)


def _serve(saved: dict[str, Any], script: list[Any]) -> Any:
    from looplet.testing import ScriptedModelServer

    server = ScriptedModelServer(script, api_key="sk-docs-example").start()
    saved["servers"].append(server)
    os.environ.update(
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="sk-docs-example",
        ANTHROPIC_BASE_URL=server.url,
        ANTHROPIC_API_KEY="sk-docs-example",
    )
    return server


def _run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in the page's folder, with this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
