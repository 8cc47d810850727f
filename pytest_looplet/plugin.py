"""The ``pytest11`` entry point: looplet's options, ini keys, marker and hook wiring, no more.

Every run resolves the options (:mod:`pytest_looplet.settings`) into a
:class:`LoopletSettings` (cheap, no import of ``looplet``) that the fixtures of
``pytest_looplet/fixtures.py`` read. A run without ``--looplet-evals`` loads only this
module, the settings, the fixtures and :mod:`~pytest_looplet.redaction` (a test suite that
never runs an eval pays for no more); with
``--looplet-evals`` an :class:`EvalPlugin` is registered whose hooks hand off to
:mod:`pytest_looplet.collect` (eval files as items, repetitions, shards),
:mod:`pytest_looplet.scoring` (scores, thresholds and budgets, imported when the first eval
runs) and, on the controller, :mod:`pytest_looplet.summary` (the end-of-run section, which
builds the :mod:`~looplet.evals.report` document, the :mod:`~pytest_looplet.html` page and the
:mod:`~pytest_looplet.baseline` comparison). ``docs/reports.md`` documents them. In any run,
a function marked ``looplet_dataset`` gets one item per case of its file
(:mod:`pytest_looplet.datasets`, imported only then).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Generator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_looplet.settings import (
    DEFAULT_THRESHOLD,
    RECORD_MODES,
    LoopletSettings,
    add_options,
    cassette_failed_key,
    check_threshold,
    looplet_settings,
    resolve,
    settings_key,
)

if TYPE_CHECKING:
    from pytest_looplet.collect import EvalModule
    from pytest_looplet.scoring import Prices
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

_MARKER = (
    f"looplet(threshold={DEFAULT_THRESHOLD:g}, repeat=1, max_steps=None, max_tokens=None, "
    "max_cost=None, models=None): the "
    "score an eval must reach (default: --looplet-threshold), how many times it runs "
    "(default: --looplet-repeat), the agent's step, token and dollar budgets, and the "
    "models it runs on, one item each (default: --looplet-model)"
)
_DATASET_MARKER = (
    "looplet_dataset(path): parametrize the function's `case` argument with the cases of a "
    "YAML, JSON, JSON Lines or CSV file (path relative to the file of the function), one "
    "item per case"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``looplet`` option group and ini keys (:mod:`pytest_looplet.settings`)."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, resolve the settings, and register the eval plugin if evals are on."""
    config.addinivalue_line("markers", _MARKER)
    config.addinivalue_line("markers", _DATASET_MARKER)
    settings = resolve(config)
    config.stash[settings_key] = settings
    from pytest_looplet import fixtures, redaction  # pytest only at import: cheap

    config.pluginmanager.register(redaction, "looplet-redaction")  # no key in any report
    config.pluginmanager.register(fixtures, "looplet-fixtures")
    if _distributes(config) and not hasattr(config, "workerinput"):
        from pytest_looplet.crash import CrashRecovery

        config.pluginmanager.register(CrashRecovery(settings), "looplet-crash-recovery")
    if settings.runs is not None and not settings.evals:
        raise pytest.UsageError(
            "looplet: --looplet-runs / looplet_runs grades saved runs with eval files: "
            "add --looplet-evals"
        )
    if settings.evals:
        _rewrite_asserts_in(config, settings.eval_files)
        from pytest_looplet.runs import SavedRuns  # pytest only at import: cheap

        config.pluginmanager.register(SavedRuns(settings), "looplet-runs")
        plugin = EvalPlugin(config, settings)
        config.stash[evals_key] = plugin
        config.pluginmanager.register(plugin, "looplet-evals")
        if not hasattr(config, "workerinput"):
            from pytest_looplet.cassettes import CassetteNotes

            config.pluginmanager.register(CassetteNotes(config, settings), "looplet-cassettes")
    elif not hasattr(config, "workerinput"):
        config.pluginmanager.register(EvalFilesHint(settings), "looplet-eval-files-hint")


def _distributes(config: pytest.Config) -> bool:
    # xdist will start workers (-n N, --dist, --tx): what its own check reads, once its
    # pytest_cmdline_main has turned -n into them. Without workers nothing can crash.
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))


@pytest.fixture
def looplet_repetition() -> int:
    """Per test: the 1-based number of this run of a repeated eval; 1 when not repeated.

    A repeated eval is parametrized on this name
    (:func:`pytest_looplet.collect.parametrize_repeats`), so in its items the value is the
    run's number rather than this fixture's 1.
    """
    return 1


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize a function marked ``looplet_dataset`` (an eval or a test) with its cases
    (:mod:`pytest_looplet.datasets`, imported only then)."""
    marker = metafunc.definition.get_closest_marker("looplet_dataset")
    if marker is not None:
        from pytest_looplet.datasets import parametrize

        parametrize(metafunc, marker)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Put a dataset case's name, file and metadata on its item's reports."""
    if "pytest_looplet.datasets" in sys.modules:  # no dataset was read: no case to note
        from pytest_looplet.datasets import note_case

        note_case(item)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Unregister the eval plugin, if one was registered."""
    saved_runs = config.pluginmanager.get_plugin("looplet-runs")
    if saved_runs is not None:
        config.pluginmanager.unregister(saved_runs)
    plugin = config.stash.get(evals_key, None)
    if plugin is not None:
        del config.stash[evals_key]
        config.pluginmanager.unregister(plugin)


def _rewrite_asserts_in(config: pytest.Config, patterns: tuple[str, ...]) -> None:
    """Have pytest's assertion rewriter take eval files as it takes test files.

    The rewriter picks the modules it rewrites by ``python_files`` (read when it was
    installed, before any plugin's ``pytest_configure``), which ``eval_*.py`` does not match;
    without this, ``assert traj == [...]`` in an eval fails with a bare ``AssertionError``.
    Under ``--assert=plain`` there is no rewriter and nothing to do.
    """
    hook = config.pluginmanager.rewrite_hook
    fnpats = getattr(hook, "fnpats", None)
    if isinstance(fnpats, list):
        hook.fnpats = [*fnpats, *(p for p in patterns if p not in fnpats)]  # type: ignore[attr-defined]


class EvalFilesHint:
    """Without ``--looplet-evals``: when a run collects nothing but passed eval files by,
    say that they need the flag (pytest alone exits 5 with no word about them)."""

    def __init__(self, settings: LoopletSettings) -> None:
        self.settings = settings
        self.python_files: list[Path] = []

    def pytest_collect_file(self, file_path: Path) -> None:
        """Note the Python files this run passed by; which are eval files is worked out only
        if the hint is shown (so a run that collects tests imports no eval machinery)."""
        if file_path.suffix == ".py" and file_path.name != "conftest.py":
            self.python_files.append(file_path)

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, exitstatus: int
    ) -> None:
        """The hint, when nothing was collected and eval files (``looplet_eval_files``) were
        seen."""
        if exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED or not self.python_files:
            return
        from pytest_looplet.collect import is_eval_file

        eval_files = [path for path in self.python_files if is_eval_file(path, self.settings)]
        if not eval_files:
            return
        root = terminalreporter.config.invocation_params.dir
        names = [os.path.relpath(path, root) for path in eval_files]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        args = " ".join(terminalreporter.config.invocation_params.args)
        terminalreporter.write_line(
            f"looplet: {len(names)} eval file(s) were not run ({shown}): eval files run only "
            f"with --looplet-evals, e.g. pytest --looplet-evals {args}".rstrip()
        )


class EvalPlugin:
    """The hooks that run evals, registered only with ``--looplet-evals``.

    Collection and scoring run everywhere (on xdist workers too); the summary, the reports
    and the baseline comparison are built only on the controller, from the reports the
    workers send.
    """

    def __init__(self, config: pytest.Config, settings: LoopletSettings) -> None:
        from pytest_looplet import collect, summary

        self.settings = settings
        self._collect = collect
        self._prices: Prices | None = None
        if settings.prices:  # read up front, so that a bad file is a usage error
            from pytest_looplet.scoring import load_prices

            try:
                self._prices = load_prices(settings.prices)
            except ValueError as exc:
                raise pytest.UsageError(f"looplet: looplet_prices: {exc}") from None
        self.summary: EvalSummary | None = None
        if not hasattr(config, "workerinput"):
            baseline = None
            if settings.baseline is not None:
                from pytest_looplet.baseline import load_baseline

                baseline = load_baseline(settings.baseline)
            self.summary = summary.EvalSummary(
                settings, baseline, tuple(config.invocation_params.args)
            )

    @property
    def record_mode(self) -> str:
        """The resolved cassette record mode (``LoopletSettings.record_mode``)."""
        return self.settings.record_mode

    def pytest_report_header(self) -> str:
        """One header line: eval files, threshold and record mode, and where it came from."""
        s = self.settings
        line = (
            f"looplet: evals {' '.join(s.eval_files)} ({s.eval_prefix}*), threshold "
            f"{s.threshold:g}, record mode {s.record_mode} ({s.record_mode_source})"
        )
        if s.repeat > 1:
            line += f", repeat {s.repeat}"
        if s.shard is not None:
            line += f", shard {s.shard[0]}/{s.shard[1]}"
        return line

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> EvalModule | None:
        """Collect eval files that pytest's Python collector would not take."""
        return self._collect.collect_file(file_path, parent, self.settings)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(
        self, module_path: Path, parent: pytest.Collector
    ) -> EvalModule | None:
        """Make eval files that pytest's Python collector takes into eval modules."""
        return self._collect.make_module(module_path, parent, self.settings)

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize evals with their models (:mod:`pytest_looplet.matrix`), then repeated
        ones with their runs, after their own parametrization."""
        self._collect.parametrize_models(metafunc, self.settings)
        self._collect.parametrize_repeats(metafunc, self.settings.repeat)

    @pytest.hookimpl(trylast=True)  # after -k, -m and --deselect: split what would run
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """With ``--looplet-shard``, deselect the eval items of the other shards.

        The split (the suite's eval node ids and this shard's) goes to the summary for the
        report, or from an xdist worker to the controller, which collects nothing itself.
        """
        if self.settings.shard is None:
            return
        index, total = self.settings.shard
        is_eval = self._collect.is_eval
        kept, dropped = self._collect.shard(items, index, total)
        split = {
            "index": index,
            "total": total,
            "suite": sorted(item.nodeid for item in items if is_eval(item)),
            "items": sorted(item.nodeid for item in kept if is_eval(item)),
        }
        if self.summary is not None:
            self.summary.shard = split
        workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["looplet_shard"] = split
        if dropped:
            items[:] = kept
            config.hook.pytest_deselected(items=dropped)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Controller without xdist: every eval item that should run, for the summary."""
        if self.summary is not None and not session.config.option.collectonly:
            is_eval = self._collect.is_eval
            self.summary.expect(item.nodeid for item in session.items if is_eval(item))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """xdist controller: every eval item that should run, as a worker collected them."""
        if self.summary is not None and not node.config.option.collectonly:
            is_eval = self._collect.is_eval_nodeid
            self.summary.expect(nodeid for nodeid in ids if is_eval(nodeid, self.settings))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist controller: take the shard's split from the first worker that sends it."""
        split = getattr(node, "workeroutput", {}).get("looplet_shard")
        if self.summary is not None and self.summary.shard is None and split is not None:
            self.summary.shard = split

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """Run an eval and score what it returned; other items are left to pytest."""
        if not self._collect.is_eval(pyfuncitem) or _anyio_runs(pyfuncitem):
            return None
        scoring, prices = self._scoring()
        handled: bool = scoring.run_eval(pyfuncitem, self.settings, prices)
        return handled

    @pytest.hookimpl(wrapper=True, specname="pytest_pyfunc_call")
    def pytest_pyfunc_call_awaited_by_anyio(
        self, pyfuncitem: pytest.Function
    ) -> Generator[None, Any, Any]:
        """Score an async eval that anyio's plugin awaits, once it has run."""
        if not (self._collect.is_eval(pyfuncitem) and _anyio_runs(pyfuncitem)):
            return (yield)
        failure: BaseException | None = None
        try:
            yield
        except BaseException as exc:  # scored (recorded as an error) and re-raised below
            failure = exc

        def awaited() -> None:
            if failure is not None:
                raise failure

        scoring, prices = self._scoring()
        return scoring.run_eval(pyfuncitem, self.settings, prices, awaited)

    def _scoring(self) -> tuple[ModuleType, Prices]:
        from pytest_looplet import scoring  # imports looplet: only once an eval runs

        if self._prices is None:
            self._prices = scoring.load_prices(())
        return scoring, self._prices

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Controller only: fold each report into the summary."""
        if self.summary is not None:
            self.summary.add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Controller only: note collection errors (they keep a run failed)."""
        if self.summary is not None and report.failed:
            self.summary.collection_failed()

    def pytest_sessionstart(self) -> None:
        """Controller only: the run's start time, for the report."""
        if self.summary is not None:
            self.summary.start()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Controller only: write the reports, compare with the baseline, set the exit status."""
        if self.summary is None:
            return
        if session.config.option.collectonly:
            session.exitstatus = self.summary.empty_shard_status(int(session.exitstatus))
        else:
            session.exitstatus = self.summary.finish(session)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Controller only: write the "looplet evals" section."""
        if self.summary is not None:
            self.summary.write(terminalreporter)


def _anyio_runs(item: pytest.Function) -> bool:
    # anyio's plugin awaits a coroutine test that has its `anyio_backend` fixture
    # (@pytest.mark.anyio, or anyio_mode = auto), and returns True before looplet's default.
    return "anyio_backend" in item.funcargs and inspect.iscoroutinefunction(item.obj)


evals_key = pytest.StashKey[EvalPlugin]()
"""Where the registered :class:`EvalPlugin` is kept (on ``config.stash``) while evals are on."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Show a cassette failure compactly, with the command that re-records the item, and note
    a test that failed with one, so its fixture does not report it again."""
    report = yield
    if call.excinfo is None or "looplet.cassettes.errors" not in sys.modules:
        return report
    from pytest_looplet.failures import cassette_error_of, cassette_failure

    error = cassette_error_of(call.excinfo)
    if error is not None:
        if call.when == "call":
            item.stash[cassette_failed_key] = True
        evals = item.config.stash[settings_key].evals
        report.longrepr = cassette_failure(item, call.excinfo, error, evals=evals)  # type: ignore[assignment]
    return report


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
