"""The ``pytest11`` entry point: looplet's options, ini keys, marker and hook wiring, no more.

Every run resolves the options into a :class:`LoopletSettings` (cheap, no import of
``looplet``); with ``--looplet-evals`` an :class:`EvalPlugin` is registered whose hooks hand
off to :mod:`pytest_looplet.collect` (eval files as items), :mod:`pytest_looplet.scoring`
(scores and thresholds, imported when the first eval runs) and :mod:`pytest_looplet.summary`
(the controller's end-of-run table). The cassette-backed fixtures will live in
``pytest_looplet/fixtures.py``, read the record mode and model from :func:`looplet_settings`
(resolved on every run, evals on or off) and report their runs with
``scoring.record_trajectory``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_looplet.collect import EvalModule
    from pytest_looplet.summary import EvalSummary

__all__ = [
    "RECORD_MODES",
    "EvalPlugin",
    "LoopletSettings",
    "check_threshold",
    "evals_key",
    "looplet_settings",
    "settings_key",
]

RECORD_MODES = ("none", "once", "new_episodes", "all")
"""The cassette record modes, as vcrpy names them; ``none`` replays only."""

PROVIDERS = ("openai", "anthropic")
"""The providers ``looplet_llm`` can build a backend for."""

_DEFAULT_THRESHOLD = "0.5"
_DEFAULT_EVAL_FILES = ["eval_*.py"]
_DEFAULT_EVAL_PREFIX = "eval_"
_MARKER = (
    "looplet(threshold=0.5, max_steps=None, max_tokens=None): the score an eval must reach "
    "(default: --looplet-threshold) and the agent's step and token budgets"
)


@dataclass(frozen=True, slots=True)
class LoopletSettings:
    """The plugin's options for this run, resolved once in ``pytest_configure``.

    Read it with :func:`looplet_settings`; each value comes from the command line when given
    there, else from the ini file, else the default.

    Attributes:
        evals: collect and run eval files.
        record_mode: the resolved cassette record mode (``none`` under ``CI=true`` unless
            ``--looplet-record-mode`` was given).
        record_mode_source: where ``record_mode`` came from, for the report header.
        model: the model evals should use, or ``None`` for each agent's own.
        provider: ``openai`` or ``anthropic``, the backend ``looplet_llm`` builds.
        threshold: the score an eval must reach when its marker sets none.
        eval_files: glob patterns of eval files.
        eval_prefix: the name prefix of eval functions.
    """

    evals: bool
    record_mode: str
    record_mode_source: str
    model: str | None
    provider: str
    threshold: float
    eval_files: tuple[str, ...]
    eval_prefix: str


settings_key = pytest.StashKey[LoopletSettings]()
"""Where ``pytest_configure`` keeps the run's :class:`LoopletSettings` (on ``config.stash``)."""


def looplet_settings(config: pytest.Config) -> LoopletSettings:
    """The run's resolved options (``config.stash[settings_key]``)."""
    return config.stash[settings_key]


def check_threshold(value: object) -> float:
    """``value`` as a threshold: a number in [0, 1].

    Raises:
        ValueError: ``value`` is not a number in [0, 1].
    """
    try:
        number = float(value)  # type: ignore[arg-type]  # any str or number; checked below
    except (TypeError, ValueError):
        raise ValueError(f"a threshold is a number in [0, 1], not {value!r}") from None
    if isinstance(value, bool) or math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"a threshold is a number in [0, 1], not {value!r}")
    return number


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``looplet`` option group, each option with its ini twin."""
    group = parser.getgroup("looplet", "looplet agent evals")

    def add(
        option: str,
        dest: str,
        ini_type: Literal["string", "bool"],
        default: object,
        help: str,
        **kw: Any,
    ) -> None:
        parser.addini(dest, help=f"Default for {option}. {help}", type=ini_type, default=default)
        group.addoption(option, dest=dest, default=None, help=help, **kw)

    add(
        "--looplet-evals",
        "looplet_evals",
        "bool",
        False,
        "Collect and run eval files (looplet_eval_files). Default: off.",
        action="store_true",
    )
    add(
        "--looplet-record-mode",
        "looplet_record_mode",
        "string",
        "none",
        f"Cassette record mode: {', '.join(RECORD_MODES)}. Default: none (replay only); "
        "with CI=true it stays none unless given on the command line.",
        metavar="MODE",
    )
    add(
        "--looplet-model",
        "looplet_model",
        "string",
        "",
        "Model name evals run against. Default: each agent's own.",
        metavar="NAME",
    )
    add(
        "--looplet-provider",
        "looplet_provider",
        "string",
        "openai",
        f"Provider looplet_llm talks to: {', '.join(PROVIDERS)}. Default: openai.",
        metavar="NAME",
    )
    add(
        "--looplet-threshold",
        "looplet_threshold",
        "string",
        _DEFAULT_THRESHOLD,
        "Score in [0, 1] an eval must reach unless its looplet marker sets one. Default: 0.5.",
        metavar="FLOAT",
    )
    parser.addini(
        "looplet_eval_files",
        help="Glob patterns (space-separated) of eval files. Default: eval_*.py.",
        type="args",
        default=_DEFAULT_EVAL_FILES,
    )
    parser.addini(
        "looplet_eval_prefix",
        help="Name prefix of eval functions in eval files. Default: eval_.",
        default=_DEFAULT_EVAL_PREFIX,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, resolve the settings, and register the eval plugin if evals are on."""
    config.addinivalue_line("markers", _MARKER)
    settings = _resolve(config)
    config.stash[settings_key] = settings
    from pytest_looplet import fixtures  # pytest only at import: cheap

    config.pluginmanager.register(fixtures, "looplet-fixtures")
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        from pytest_looplet.crash import CrashRecovery

        config.pluginmanager.register(CrashRecovery(), "looplet-crash-recovery")
    if settings.evals:
        plugin = EvalPlugin(config, settings)
        config.stash[evals_key] = plugin
        config.pluginmanager.register(plugin, "looplet-evals")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Unregister the eval plugin, if one was registered."""
    plugin = config.stash.get(evals_key, None)
    if plugin is not None:
        del config.stash[evals_key]
        config.pluginmanager.unregister(plugin)


class EvalPlugin:
    """The hooks that run evals, registered only with ``--looplet-evals``.

    Collection and scoring run everywhere (on xdist workers too); the summary is built only on
    the controller, from the reports the workers send.
    """

    def __init__(self, config: pytest.Config, settings: LoopletSettings) -> None:
        from pytest_looplet import collect, summary

        self.settings = settings
        self._collect = collect
        self.summary: EvalSummary | None = (
            None if hasattr(config, "workerinput") else summary.EvalSummary()
        )

    @property
    def record_mode(self) -> str:
        """The resolved cassette record mode (``LoopletSettings.record_mode``)."""
        return self.settings.record_mode

    def pytest_report_header(self) -> str:
        """One header line: eval files, threshold and record mode, and where it came from."""
        s = self.settings
        return (
            f"looplet: evals {' '.join(s.eval_files)} ({s.eval_prefix}*), threshold "
            f"{s.threshold:g}, record mode {s.record_mode} ({s.record_mode_source})"
        )

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> EvalModule | None:
        """Collect eval files that pytest's Python collector would not take."""
        return self._collect.collect_file(file_path, parent, self.settings)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(
        self, module_path: Path, parent: pytest.Collector
    ) -> EvalModule | None:
        """Make eval files that pytest's Python collector takes into eval modules."""
        return self._collect.make_module(module_path, parent, self.settings)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """Run an eval and score what it returned; other items are left to pytest."""
        if not self._collect.is_eval(pyfuncitem):
            return None
        from pytest_looplet import scoring  # imports looplet: only once an eval runs

        return scoring.run_eval(pyfuncitem, self.settings.threshold)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Controller only: fold each eval report into the summary."""
        if self.summary is not None:
            self.summary.add(report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Controller only: write the "looplet evals" section."""
        if self.summary is not None:
            self.summary.write(terminalreporter)


evals_key = pytest.StashKey[EvalPlugin]()
"""Where the registered :class:`EvalPlugin` is kept (on ``config.stash``) while evals are on."""


def _resolve(config: pytest.Config) -> LoopletSettings:
    evals = config.getoption("looplet_evals") or config.getini("looplet_evals")
    mode, source = _record_mode(config)
    raw_threshold = _option_or_ini(config, "looplet_threshold")
    try:
        threshold = check_threshold(raw_threshold)
    except ValueError:
        raise pytest.UsageError(
            f"looplet: --looplet-threshold / looplet_threshold must be a number in [0, 1], "
            f"not {raw_threshold!r}"
        ) from None
    provider = _option_or_ini(config, "looplet_provider") or "openai"
    if provider not in PROVIDERS:
        raise pytest.UsageError(
            f"looplet: unknown provider {provider!r}; valid: {', '.join(PROVIDERS)}"
        )
    prefix = str(config.getini("looplet_eval_prefix")).strip()
    if not prefix:
        raise pytest.UsageError("looplet: looplet_eval_prefix must not be empty")
    return LoopletSettings(
        evals=bool(evals),
        record_mode=mode,
        record_mode_source=source,
        model=_option_or_ini(config, "looplet_model") or None,
        provider=provider,
        threshold=threshold,
        eval_files=tuple(config.getini("looplet_eval_files")),
        eval_prefix=prefix,
    )


def _record_mode(config: pytest.Config) -> tuple[str, str]:
    cli = config.getoption("looplet_record_mode")
    mode = str(cli if cli is not None else config.getini("looplet_record_mode")).strip()
    if mode not in RECORD_MODES:
        where = "--looplet-record-mode" if cli is not None else "ini looplet_record_mode"
        raise pytest.UsageError(
            f"looplet: unknown record mode {mode!r} ({where}); valid modes: "
            f"{', '.join(RECORD_MODES)}"
        )
    if cli is not None:
        return mode, "--looplet-record-mode"
    if mode != "none" and _on_ci():
        # A CI run must never reach a real model: only an explicit flag may record there.
        return "none", "CI"
    return mode, "ini" if mode != "none" else "default"


cassette_failed_key = pytest.StashKey[bool]()
"""Set on an item whose test call already failed with a cassette error (reported once)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Note a test that failed with a cassette error, so its fixture does not report it again."""
    errors = sys.modules.get("looplet.cassettes.errors")
    excinfo = call.excinfo if call.when == "call" else None
    if (
        errors is not None
        and excinfo is not None
        and isinstance(excinfo.value, errors.CassetteError)
    ):
        item.stash[cassette_failed_key] = True
    return (yield)


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    """Explain ``assert trajectory == [expected steps]`` as a step-by-step diff."""
    types = sys.modules.get("looplet.types")  # no trajectory exists unless looplet is loaded
    if op != "==" or types is None:
        return None
    if isinstance(right, types.Trajectory) and isinstance(left, list | tuple):
        left, right = right, left
    if not isinstance(left, types.Trajectory) or not isinstance(right, list | tuple):
        return None
    from looplet.assertions import TrajectoryMismatch, assert_trajectory, explain_mismatch

    try:
        assert_trajectory(left, list(right), order="strict", args="subset")
    except TrajectoryMismatch as mismatch:
        return explain_mismatch(mismatch)
    return None


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _option_or_ini(config: pytest.Config, name: str) -> str:
    value = config.getoption(name)
    return str(value if value is not None else config.getini(name)).strip()
