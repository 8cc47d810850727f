"""Under pytest-xdist, keep what an agent did before its worker crashed.

A worker that dies mid-trajectory (a segfault in a tool, ``os._exit``, the OOM killer) takes
its captured output with it, and xdist reports only "worker crashed while running ...". So
on xdist workers ``looplet_agent`` appends each step, as it happens, to a progress file in a
folder the controller created for this run and handed to the workers; when a worker
crashes, the controller adds the steps recorded so far to the failed item's report. Nothing
else reads these files, and the controller deletes the folder at the end of the run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pytest

if TYPE_CHECKING:
    from looplet.types import Step
    from pytest_looplet.settings import LoopletSettings

__all__ = ["CrashRecovery", "ProgressLog", "progress_log"]

_WORKERINPUT_KEY = "looplet_progress_dir"


def _progress_file(folder: str | Path, nodeid: str) -> Path:
    return Path(folder) / (hashlib.sha1(nodeid.encode()).hexdigest() + ".jsonl")


class ProgressLog:
    """Appends each step of one test's runs to its progress file (worker side).

    The file is opened at the first step and kept open until :meth:`close` (the test's
    end): each line is flushed to the operating system as it is written, which is all a
    crash of this process needs (the kernel keeps what was written), without opening and
    closing the file at every step.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: TextIO | None = None

    def add(self, step: Step, pretty: str | None = None) -> None:
        """Record ``step`` durably enough to survive the process dying right after.

        ``pretty`` is ``step.pretty()`` when the caller has it already.
        """
        from looplet._redact import redact_text  # a file, and a crashed item's report later

        text = redact_text(step.pretty() if pretty is None else pretty)
        line = json.dumps({"step": step.number, "pretty": text}, ensure_ascii=False)
        if self._out is None:
            self._out = self.path.open("a", encoding="utf-8")
        self._out.write(line + "\n")
        self._out.flush()

    def close(self) -> None:
        """Close the file (a later :meth:`add` opens it again)."""
        if self._out is not None:
            self._out.close()
            self._out = None


def progress_log(request: pytest.FixtureRequest) -> ProgressLog | None:
    """The progress log for the running test, or ``None`` when not on an xdist worker."""
    workerinput: dict[str, Any] | None = getattr(request.config, "workerinput", None)
    folder = workerinput.get(_WORKERINPUT_KEY) if workerinput else None
    if not folder:
        return None
    return ProgressLog(_progress_file(folder, request.node.nodeid))


class CrashRecovery:
    """Controller-side xdist hooks: hand workers the progress folder, read it on a crash."""

    def __init__(self, settings: LoopletSettings) -> None:
        self.settings = settings
        self.folder = tempfile.mkdtemp(prefix="looplet-progress-")

    def pytest_configure_node(self, node: Any) -> None:
        """Tell each worker where to log progress."""
        node.workerinput[_WORKERINPUT_KEY] = self.folder

    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """Make a crashed eval a failed eval of the summary and reports, with a crash reason
        and the steps its agent had taken (none when it died before its first step ended)."""
        if not self._is_eval(crashitem):
            return
        path = _progress_file(self.folder, crashitem)
        lines: list[dict[str, Any]] = []
        if path.exists():
            text = path.read_text(encoding="utf-8")
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        shown = "\n".join(f"  {entry['pretty']}" for entry in lines) or "  (none)"
        report.longrepr = (
            f"{report.longrepr}\nlooplet: the agent had taken {len(lines)} steps when the worker "
            f"crashed:\n{shown}"
        )
        from looplet.evals.report_model import Figures

        crashed = Figures(step_count=len(lines), stop_reason="crashed", error="crashed")
        report.user_properties.extend(crashed.properties())
        from pytest_looplet.collect import EVAL_KEYWORD

        report.keywords = {**report.keywords, EVAL_KEYWORD: 1}

    def _is_eval(self, nodeid: str) -> bool:
        if not self.settings.evals:
            return False
        from pytest_looplet.collect import is_eval_nodeid

        return is_eval_nodeid(nodeid, self.settings)

    def pytest_unconfigure(self) -> None:
        """Remove the progress folder."""
        shutil.rmtree(self.folder, ignore_errors=True)
