"""The public surface: one table per package, checked against the modules, the type checkers'
view, the READMEs (this one and the original's) and the deprecated aliases; no eager import."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import looplet
import looplet.evals
import looplet.testing
from looplet._moved import GONE
from looplet.errors import LoopletError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [looplet, looplet.evals, looplet.testing]
IDS = [p.__name__ for p in PACKAGES]

#: The 0.1.7 names that code written for the original imports from ``looplet``.
ORIGINAL_NAMES = {
    "composable_loop",
    "LoopConfig",
    "LoopHook",
    "Step",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "BaseToolRegistry",
    "Skill",
    "DefaultState",
    "LLMBackend",
    "HookDecision",
    "Allow",
    "Block",
    "Continue",
    "Deny",
    "Stop",
    "InjectContext",
    "OpenAIBackend",
    "AnthropicBackend",
    "MCPToolAdapter",
    "CompactService",
    "CompactOutcome",
    "TruncateCompact",
    "SummarizeCompact",
    "PruneToolResults",
    "compact_chain",
    "ContextBudget",
    "PermissionEngine",
    "PermissionHook",
    "PermissionRule",
    "PermissionDecision",
    "FileCheckpointStore",
    "TrajectoryRecorder",
    "ProvenanceSink",
    "replay_loop",
    "StreamingHook",
    "Tracer",
    "TracingHook",
    "MetricsCollector",
    "MetricsHook",
    "EvalHook",
    "EvalContext",
    "EvalResult",
    "eval_discover",
    "eval_run",
    "eval_run_batch",
    "eval_mark",
    "eval_cli",
    "MockLLMBackend",
    "AsyncMockLLMBackend",
    "CancelToken",
    "ToolContext",
    "ToolError",
    "ErrorKind",
    "Message",
    "run_sub_loop",
    "__version__",
    "tool",
    "tools_from",
    "register_done_tool",
}


def _table(package: ModuleType, name: str) -> dict[str, str]:
    return dict(getattr(package, name, {}))


def _entries(package: ModuleType, name: str) -> list[str]:
    """Every key written in the table ``name`` of ``package``'s source, repeats included (a
    dict keeps only the last of two equal keys, so the dict itself cannot show a repeat)."""
    tree = ast.parse(Path(package.__file__ or "").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            assert isinstance(node.value, ast.Dict)
            keys: list[str] = []
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if key is None:  # a `**{...}` or `**dict.fromkeys(...)` part: evaluate it alone
                    keys += eval(compile(ast.Expression(value), "<table>", "eval"), {})
                else:
                    keys.append(ast.literal_eval(key))
            return keys
    return []


def _type_checking_imports(package: ModuleType) -> dict[str, str]:
    """``name -> module`` of the ``if TYPE_CHECKING:`` block of ``package``'s ``__init__``."""
    tree = ast.parse(Path(package.__file__ or "").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module != "typing":
                    for alias in statement.names:
                        # `X as X` is what marks a re-export to a strict type checker
                        assert alias.asname == alias.name, f"write `{alias.name} as {alias.name}`"
                        found[alias.name] = statement.module or ""
    return found


# --------------------------------------------------------------------------- the one table


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_all_is_the_table_sorted_with_no_name_written_twice(package: ModuleType) -> None:
    exports = _table(package, "_EXPORTS")
    assert package.__all__ == sorted(exports)
    for table in ("_EXPORTS", "_DEPRECATED", "_MOVED"):
        written = _entries(package, table)
        assert len(written) == len(set(written)), f"{table}: a name is written twice"
    tables = [set(_table(package, t)) for t in ("_EXPORTS", "_DEPRECATED", "_MOVED")]
    assert not (tables[0] & tables[1] or tables[0] & tables[2] or tables[1] & tables[2])


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_the_type_checking_block_is_the_table(package: ModuleType) -> None:
    """Type checkers read the imports under TYPE_CHECKING, not the table: the two must agree."""
    seen = _type_checking_imports(package)
    table = _table(package, "_EXPORTS")
    missing = {n: m for n, m in table.items() if seen.get(n) != m}
    extra = {n: m for n, m in seen.items() if n not in table}
    assert not missing, "add to the TYPE_CHECKING block: " + "; ".join(
        f"from {m} import {n} as {n}" for n, m in sorted(missing.items())
    )
    assert not extra, f"in the TYPE_CHECKING block but not in _EXPORTS: {sorted(extra)}"


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_every_name_is_its_modules_public_name_and_has_a_docstring(package: ModuleType) -> None:
    for name, module_name in _table(package, "_EXPORTS").items():
        module = importlib.import_module(module_name)
        public = getattr(module, "__all__", None)
        assert public is None or name in public, f"{module_name}.__all__ lacks {name}"
        obj = getattr(package, name)
        assert obj is getattr(module, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_star_import_gives_the_table_and_no_warning() -> None:
    namespace: dict[str, Any] = {}
    exec("from looplet import *", namespace)  # filterwarnings = error: a warning fails here
    assert set(namespace) - {"__builtins__"} == set(looplet.__all__)


def test_the_top_level_is_small_enough_to_hold() -> None:
    """The names an agent and its evals start with; every feature's names stay in its module.
    (Was 116; pluggy exports 14, h11 23, httpx 70.)"""
    assert len(looplet.__all__) <= 45
    for module in ("looplet.compact", "looplet.scorers", "looplet.testing", "looplet.mcp"):
        assert not any(m == module for m in looplet._EXPORTS.values())


# --------------------------------------------------------------------------- old names


def _resolve(name: str) -> tuple[Any, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(looplet, name)
    return value, caught


@pytest.mark.parametrize("name", sorted(ORIGINAL_NAMES - {q.split(".")[1] for q in GONE}))
def test_every_kept_original_name_still_imports_from_looplet(name: str) -> None:
    value, caught = _resolve(name)
    assert value is not None
    if name in looplet.__all__:
        assert not caught
    else:
        assert [w.category for w in caught] == [DeprecationWarning]


def _readme_names(path: Path) -> set[str]:
    """Names the README imports from ``looplet``: ``from looplet import ...``, ``looplet.X``,
    and the scorers it says are importable from ``looplet``."""
    text = path.read_text(encoding="utf-8")
    names: set[str] = set()
    for group in re.findall(r"from looplet import ([\w, ]+)", text):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    names |= set(re.findall(r"\blooplet\.([A-Za-z_]\w*)\b(?!\.)", text)) - {
        m.name for m in pkgutil.iter_modules(looplet.__path__)
    }
    return names


@pytest.mark.parametrize(
    "readme", [ROOT / "README.md", ROOT.parent / "shared" / "seed" / "looplet-readme.txt"]
)
def test_every_name_a_readme_imports_from_looplet_still_imports(readme: Path) -> None:
    if not readme.is_file():
        pytest.skip(f"{readme} is not in this checkout")
    names = _readme_names(readme)
    assert {"composable_loop", "LoopConfig", "DefaultState"} <= names
    for name in names:
        value, caught = _resolve(name)
        assert value is not None and all(w.category is DeprecationWarning for w in caught)


@pytest.mark.parametrize("name", sorted(looplet._DEPRECATED))
def test_a_deprecated_alias_warns_where_it_is_used_and_names_the_new_import(name: str) -> None:
    module, new = looplet._DEPRECATED[name].rsplit(".", 1)
    with pytest.warns(DeprecationWarning, match=f"from {re.escape(module)} import {new}") as w:
        exec(f"from looplet import {name} as value", namespace := {})
    assert [x.filename for x in w] == ["<string>"]  # the line that asked: exec's code
    assert namespace["value"] is getattr(importlib.import_module(module), new)
    assert new in importlib.import_module(module).__all__
    assert name not in looplet.__all__ and name not in vars(looplet)  # warns on every use
    with pytest.warns(DeprecationWarning) as w:
        getattr(looplet, name)
    assert [x.filename for x in w] == [__file__]


@pytest.mark.parametrize(
    ("old", "module", "new"),
    [
        ("looplet.compact.PruneToolResults", "looplet.compact", "PruneCompact"),
        ("looplet.testing.ScriptedOpenAIServer", "looplet.testing", "ScriptedModelServer"),
        ("looplet.testing.server.ScriptedOpenAIServer", "looplet.testing", "ScriptedModelServer"),
    ],
)
def test_a_renamed_name_still_imports_from_its_module_with_a_warning(
    old: str, module: str, new: str
) -> None:
    where, name = old.rsplit(".", 1)
    with pytest.warns(DeprecationWarning, match=f"from {re.escape(module)} import {new}"):
        value = getattr(importlib.import_module(where), name)
    assert value is getattr(importlib.import_module(module), new)
    assert name not in dir(importlib.import_module(module))


@pytest.mark.parametrize("name", sorted(looplet._MOVED))
def test_a_moved_name_says_which_module_holds_it(name: str) -> None:
    home = looplet._MOVED[name]
    with pytest.raises(ImportError, match=f"from {re.escape(home)} import {name}"):
        exec(f"from looplet import {name}", {})
    assert name in getattr(importlib.import_module(home), "__all__", [name])
    assert hasattr(importlib.import_module(home), name)


def test_an_unknown_name_is_a_plain_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        looplet.no_such_name  # noqa: B018
    with pytest.raises(AttributeError, match="no_such_name"):
        looplet.testing.no_such_name  # noqa: B018


def _own_python_files() -> list[Path]:
    folders = ("looplet", "pytest_looplet", "example_evals", "bench", "tests")
    skip = {"test_exports.py", "test_original_api.py"}  # these use the old names on purpose
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py")) if p.name not in skip]


def test_the_projects_own_code_uses_no_deprecated_or_moved_name() -> None:
    old = {*looplet._DEPRECATED, *looplet._MOVED}
    renamed = {"PruneToolResults", "ScriptedOpenAIServer"}
    found = []
    for path in _own_python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = {a.name for a in node.names}
                bad = (names & old if node.module == "looplet" else set()) | (names & renamed)
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in sorted(bad)]
    assert not found


# --------------------------------------------------------------------------- duplicates


def test_a_trajectory_lists_its_failed_steps_one_way() -> None:
    from looplet.types import Trajectory

    assert callable(Trajectory.failed) and not hasattr(Trajectory, "errors")


def _public_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(looplet.__path__, "looplet."):
        if any(part.startswith("_") for part in info.name.split(".")) or ".examples" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            # errors, not warnings nor control-flow signals (BaseException, like GeneratorExit)
            if isinstance(obj, type) and issubclass(obj, Exception) and Warning not in obj.__mro__:
                found.append(obj)
    return found


def test_every_exception_looplet_exports_is_a_looplet_error() -> None:
    """One ``except LoopletError`` catches whatever looplet raises (CassetteFormatError too)."""
    exceptions = _public_exceptions()
    assert {e.__name__ for e in exceptions} >= {"CassetteFormatError", "CassetteError"}
    assert [e.__qualname__ for e in exceptions if not issubclass(e, LoopletError)] == []


# --------------------------------------------------------------------------- import cost


def test_import_looplet_imports_no_provider_sdk() -> None:
    code = (
        "import sys, looplet\n"
        "bad = [m for m in ('openai', 'anthropic', 'httpx', 'vcr', 'pytest', 'http.server')"
        " if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version_is_a_string() -> None:
    assert isinstance(looplet.__version__, str) and looplet.__version__.count(".") == 2


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (none it started with)."""
    script = (
        "import sys; before = set(sys.modules)\n"
        f"{code}\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_looplet_loads_only_the_package() -> None:
    """``import looplet`` binds every public name lazily: no submodule, not even typing."""
    loaded = _modules_after("import looplet")
    assert {m for m in loaded if m.startswith("looplet")} == {"looplet", "looplet._exports"}
    assert not loaded & {"dataclasses", "json", "typing", "warnings", "importlib.util"}


def test_a_public_name_loads_its_own_modules_only() -> None:
    loaded = _modules_after("from looplet import composable_loop")
    assert "looplet.loop" in loaded
    assert not loaded & {"looplet.evals", "looplet.testing", "looplet.assertions", "asyncio"}


def test_import_looplet_testing_loads_no_server_and_no_asyncio() -> None:
    heavy = {"asyncio", "http.server", "socketserver", "looplet.testing._server"}
    assert not _modules_after("import looplet.testing") & heavy
    loaded = _modules_after("from looplet.testing import MockLLMBackend, AsyncMockLLMBackend")
    assert "looplet.testing.mock" in loaded
    assert not loaded & heavy


def test_the_eval_report_module_loads_without_the_loop() -> None:
    """The plugin's end-of-run summary imports ``looplet.evals.report`` alone."""
    loaded = _modules_after("import looplet.evals.report")
    assert "looplet.evals.report" in loaded
    assert not loaded & {"looplet.loop", "looplet.engine", "looplet.types", "looplet.tools"}


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_lazy_names_are_kept_after_first_use_and_listed_by_dir(package: ModuleType) -> None:
    assert set(package.__all__) <= set(dir(package))
    name = package.__all__[-1]
    assert getattr(package, name) is vars(package)[name]  # bound on first use
