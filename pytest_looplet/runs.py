"""Saved runs as fixtures: ``--looplet-runs DIR`` makes each saved run an item of an eval.

Registered with ``--looplet-evals``. Every run directory under ``DIR`` (what
:class:`~looplet.provenance.ProvenanceSink` writes: ``trajectory.json``, or ``steps/*.json``;
found by :func:`looplet.evals.context.find_run_dirs`) is one parametrization of the
``looplet_run`` fixture, an :class:`~looplet.evals.context.EvalContext`, with the run's
folder (relative to ``DIR``) as its id: ``eval_greets[ok]``, ``eval_greets[nested/text]``.
``ctx`` is the same value under the original graders' name, so ``def eval_x(ctx)`` written
for :func:`~looplet.evals.eval_run` runs unchanged, its return value scored like any eval's
(thresholds, repeats, baselines, the JSON, HTML and JUnit reports); the run's steps, tokens and
stop reason are the item's trajectory in the reports. An eval that takes neither is not
parametrized. ``llm`` is the judge of an original ``def eval_x(ctx, llm)`` grader: none is
configured, so such an eval is skipped ("needs a judge model") unless a ``conftest.py``
defines an ``llm`` fixture. A grader's ``eval_mark`` tags become pytest marks (``-m slow``).
``looplet eval TRACES --evals DIR`` (:mod:`looplet.cli`) runs pytest with these options.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_looplet.settings import LoopletSettings

if TYPE_CHECKING:
    from looplet.evals.context import EvalContext

__all__ = ["RUN_FIXTURE", "SavedRuns", "run_ids"]

RUN_FIXTURE = "looplet_run"
"""The fixture a saved run is parametrized on (``ctx`` is its alias)."""

_TAGS_ATTR = "__looplet_eval_tags__"  # where looplet.evals.runner.eval_mark keeps a grader's tags
_NO_JUDGE = (
    "needs a judge model: no llm fixture is configured (define one in conftest.py, or grade "
    "with eval_run(..., judge_llm=...))"
)


def run_ids(runs: list[Path], root: Path) -> list[str]:
    """Each run's item id: its folder relative to ``root`` (``root``'s own name when it is
    the run)."""
    return [run.name if run == root else run.relative_to(root).as_posix() for run in runs]


class SavedRuns:
    """The ``looplet_run``, ``ctx`` and ``llm`` fixtures and the parametrization over
    ``--looplet-runs``; registered with ``--looplet-evals``.

    Raises:
        pytest.UsageError: ``--looplet-runs`` names no directory, or one without saved runs.
    """

    def __init__(self, settings: LoopletSettings) -> None:
        self.root = settings.runs
        self.runs: list[Path] = []
        self._loaded: dict[Path, EvalContext] = {}
        if self.root is None:
            return
        where = f"--looplet-runs / looplet_runs {str(self.root)!r}"
        if not self.root.is_dir():
            raise pytest.UsageError(f"looplet: {where} is not a directory")
        from looplet.evals.context import find_run_dirs

        self.runs = find_run_dirs(self.root)
        if not self.runs:
            raise pytest.UsageError(
                f"looplet: no saved runs under {where}: a run directory holds trajectory.json "
                "or steps/*.json (as ProvenanceSink writes them)"
            )

    def pytest_report_header(self) -> str | None:
        """One header line: how many saved runs, from where."""
        if self.root is None:
            return None
        noun = "run" if len(self.runs) == 1 else "runs"
        return f"looplet: {len(self.runs)} saved {noun} from {self.root}"

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize a function that takes ``looplet_run`` (or ``ctx``) with the saved runs."""
        if RUN_FIXTURE not in metafunc.fixturenames or self.root is None:
            return
        metafunc.parametrize(
            RUN_FIXTURE, self.runs, ids=run_ids(self.runs, self.root), indirect=True
        )

    @pytest.hookimpl(tryfirst=True)  # before -m deselects by marks
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Give each item the ``eval_mark`` tags of its function as pytest marks."""
        known: set[str] = set()
        for item in items:
            tags = getattr(getattr(item, "obj", None), _TAGS_ATTR, None)
            for tag in sorted(tags) if isinstance(tags, frozenset) else ():
                if tag not in known:  # registered, so --strict-markers accepts it
                    config.addinivalue_line("markers", f"{tag}: an eval_mark tag")
                    known.add(tag)
                item.add_marker(tag)

    @pytest.fixture
    def looplet_run(self, request: pytest.FixtureRequest) -> EvalContext:
        """The saved run this item grades, as an ``EvalContext`` (one item per run under
        ``--looplet-runs``); its trajectory is the item's in the reports."""
        path = getattr(request, "param", None)
        if not isinstance(path, Path):
            pytest.fail(
                f"{request.node.name} takes {RUN_FIXTURE} (or ctx), a saved run: give "
                "--looplet-runs DIR (a run directory, or a folder of them)",
                pytrace=False,
            )
        context = self._loaded.get(path)
        if context is None:
            from looplet.evals.context import EvalContext

            context = self._loaded[path] = EvalContext.from_trajectory_dir(path)
        if context.trajectory is not None:
            from pytest_looplet.scoring import record_trajectory

            record_trajectory(request, context.trajectory)
        return context

    @pytest.fixture
    def ctx(self, looplet_run: EvalContext) -> EvalContext:
        """``looplet_run`` under the original graders' name: ``def eval_x(ctx)`` runs unchanged."""
        return looplet_run

    @pytest.fixture
    def llm(self) -> Any:
        """The judge model of an original ``def eval_x(ctx, llm)`` grader: none is configured,
        so the eval is skipped; a ``conftest.py`` fixture named ``llm`` overrides this one."""
        pytest.skip(_NO_JUDGE)
