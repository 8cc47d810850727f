"""The session log: one readable entry per step, notes, compactions and the stop; kept in
checkpoints (the journal appends only new entries), continued on resume, redacted, and
printed by ``looplet show`` (run as a real subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from looplet import LoopConfig, ToolCall, ToolSpec, async_composable_loop, composable_loop
from looplet.backends.base import LLMRequest
from looplet.checkpoint import FileCheckpointStore, resume_loop_state
from looplet.errors import ConfigurationError
from looplet.hooks import Deny
from looplet.session import LogEntry, SessionLog
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend
from tests.conftest import make_tools

ROOT = Path(__file__).resolve().parent.parent
LEGACY = Path(__file__).parent / "checkpoints_v1"  # written by looplet 0.2.0, a file per step
RECORD_V1 = Path(__file__).parent / "data" / "record_v1"
KEY = "sk-proj-Zq8vN3xK7mB2wR9tL4pY6hJ1"  # shaped like an OpenAI key
ENV_SECRET = "s3cr3t-from-the-environment-42"

GREET = ToolCall("greet", {"name": "Alice"}, reasoning="I will greet Alice first.")
FETCH = ToolCall("fetch", {"url": "https://example.test"}, reasoning="Then fetch the page.")
BOOM = ToolCall("boom", {"x": -1})
RM = ToolCall("rm", {"path": "/"})
DONE = ToolCall("done", {"answer": "all done"})


def tools() -> Any:
    def boom(*, x: int) -> int:
        raise ValueError("x must be positive")

    def fetch(*, url: str) -> str:
        return f"page of {url} says key={KEY} env={os.environ.get('LOG_TEST_TOKEN', '')}"

    return make_tools(
        fetch=ToolSpec("fetch", "Fetch a page.", {"url": "str"}, fetch),
        boom=ToolSpec("boom", "Fail.", {"x": "int"}, boom),
        rm=ToolSpec("rm", "Delete.", {"path": "str"}, lambda *, path: "deleted"),
    )


class NoRm:
    """Denies every rm call."""

    def pre_dispatch(self, tool_call: ToolCall) -> Any:
        return Deny("deleting is not allowed") if tool_call.tool == "rm" else None


class Noter:
    """Notes steps 1 and 2 in ``log`` as they are dispatched (saved with their checkpoint)."""

    def __init__(self, log: SessionLog) -> None:
        self.log = log

    def post_dispatch(self, step_num: int) -> None:
        if step_num <= 2:
            self.log.note(f"checked step {step_num}")


SCRIPT: list[Any] = [GREET, FETCH, BOOM, RM, [DONE, ToolCall("greet", {"name": "Bob"})]]


def logged_loop(log: SessionLog, *hooks: object, **options: Any) -> Any:
    """The scripted run of these tests (``SCRIPT``, ``rm`` denied) keeping ``log``."""
    return composable_loop(
        llm=MockLLMBackend(SCRIPT),
        tools=tools(),
        task="t",
        hooks=[NoRm(), *hooks],
        session_log=log,
        **options,
    )


def kinds(log: SessionLog) -> list[tuple[int, str, str, str]]:
    return [(e.step, e.kind, e.tool, e.outcome) for e in log.entries]


def run_all(**kwargs: Any) -> Any:
    loop = composable_loop(**kwargs)
    list(loop)
    return loop.trajectory


def test_one_entry_per_step_ok_error_denied_not_run_and_the_stop() -> None:
    log = SessionLog()
    trajectory = run_all(
        llm=MockLLMBackend(SCRIPT), tools=tools(), task="t", hooks=[NoRm()], session_log=log
    )
    assert kinds(log) == [
        (1, "step", "greet", "ok"),
        (2, "step", "fetch", "ok"),
        (3, "step", "boom", "error"),
        (4, "step", "rm", "denied"),
        (5, "step", "done", "ok"),
        (6, "step", "greet", "not_run"),
        (6, "stop", "", "done"),
    ]
    first, _, boom, rm, _, bob, stop = log.entries
    assert (first.reasoning, first.args, first.detail) == (
        "I will greet Alice first.",
        "name='Alice'",
        "1 keys",
    )
    assert boom.detail == "validation: ValueError: x must be positive"
    assert rm.detail == "deleting is not allowed"
    assert bob.detail.startswith("the run stopped (done) before this call")
    assert stop.detail == "all done"
    text = log.render()
    assert text.splitlines()[:2] == [
        "model: I will greet Alice first.",
        "#1 ✓ greet(name='Alice') → 1 keys",
    ]
    assert "#4 ✗ rm(path='/') → DENIED: deleting is not allowed" in text
    assert "#6 ✗ greet(name='Bob') → NOT RUN: the run stopped (done)" in text
    assert text.splitlines()[-1] == "stopped: done (all done)"
    # The log of the finished run is the same as the one written live.
    assert SessionLog.from_trajectory(trajectory).to_list() == log.to_list()


def test_the_model_text_is_shown_once_per_turn_and_when_it_changes() -> None:
    log = SessionLog()
    same = ToolCall("greet", {"name": "Bob"}, reasoning="Greet both.")
    run_all(
        llm=MockLLMBackend([[ToolCall("greet", {"name": "Ann"}, reasoning="Greet both."), same]]),
        tools=tools(),
        task="t",
        session_log=log,
        max_steps=2,
    )
    assert [e.reasoning for e in log.entries if e.kind == "step"] == ["Greet both.", ""]


def test_notes_from_hooks_and_from_the_caller_and_the_original_record() -> None:
    log = SessionLog()

    class Notes:
        def should_stop(self, step: Any) -> bool:
            if step.number == 1:
                log.note(f"checked step {step.number}")
            return False

    loop = composable_loop(
        llm=MockLLMBackend([GREET, DONE]), tools=tools(), task="t", hooks=[Notes()], session_log=log
    )
    next(loop)
    log.note("the caller looked at step 1")
    list(loop)
    log.record(2, "Alice is greeted", "greet", "to be polite", entities=["Alice"], findings=["ok"])
    # should_stop hooks run once the caller has had the step, so the caller's note is first.
    assert [(e.step, e.kind, e.detail) for e in log.entries if e.kind == "note"] == [
        (1, "note", "the caller looked at step 1"),
        (1, "note", "checked step 1"),
    ]
    assert [e.kind for e in log.entries] == ["step", "note", "note", "step", "stop", "record"]
    assert log.current_theory == "Alice is greeted"
    assert log.entries[-1].entities_seen == ("Alice",)
    assert "  S2: greet — to be polite\n    entities: Alice\n    → ok" in log.render()
    with pytest.raises(ConfigurationError, match=r"SessionLog\.note takes a str"):
        log.note(3)  # type: ignore[arg-type]


def test_render_compact_stays_within_its_bound_and_keeps_the_newest() -> None:
    log = SessionLog()
    for n in range(1, 41):
        log.record(n, "", f"tool{n % 3}", f"reason number {n} " + "z" * 30)
    log.note("the newest note")
    for limit in (40, 80, 200, 1000, 5000):
        text = log.render_compact(max_chars=limit)
        assert len(text) <= limit
        if limit >= 80:
            assert text.endswith("note: the newest note")
    text = log.render_compact(max_chars=1000)
    assert text.startswith("[") and "earlier entries, steps 1-" in text.splitlines()[0]
    assert len(log.render_compact(max_chars=100_000)) == len(log.render())
    with pytest.raises(ConfigurationError, match="max_chars must be an int >= 40"):
        log.render_compact(max_chars=10)
    # compact(), the original's: older entries become one summary entry.
    assert log.compact(max_entries_to_keep=5) is True
    assert len(log) == 6 and log.entries[0].kind == "summary"
    assert log.entries[0].detail.startswith("[36 earlier entries, steps 1-36; tools: ")
    assert log.compact(max_entries_to_keep=10) is False


def test_to_list_and_from_list_round_trip_and_bad_entries_are_named() -> None:
    log = SessionLog()
    run_all(llm=MockLLMBackend(SCRIPT), tools=tools(), task="t", hooks=[NoRm()], session_log=log)
    log.note("a note")
    again = SessionLog.from_list(json.loads(json.dumps(log.to_list())))
    assert again.entries == log.entries
    with pytest.raises(ConfigurationError, match=r"entries\[1\]\.detail: expected a string"):
        SessionLog.from_list(
            [{"step": 1, "kind": "note"}, {"step": 2, "kind": "note", "detail": 5}]
        )
    with pytest.raises(ConfigurationError, match=r"LogEntry\.kind must be one of"):
        LogEntry(1, kind="nope")
    with pytest.raises(
        ConfigurationError, match=r"session_log= takes a looplet\.session\.SessionLog"
    ):
        composable_loop(llm=MockLLMBackend([DONE]), tools=tools(), session_log=[])  # type: ignore[arg-type]


def test_async_loop_writes_the_same_log() -> None:
    sync_log, async_log = SessionLog(), SessionLog()
    run_all(
        llm=MockLLMBackend(SCRIPT), tools=tools(), task="t", hooks=[NoRm()], session_log=sync_log
    )

    class AsyncNoRm:
        async def pre_dispatch(self, tool_call: ToolCall) -> Any:
            return Deny("deleting is not allowed") if tool_call.tool == "rm" else None

    async def go() -> None:
        loop = async_composable_loop(
            llm=AsyncMockLLMBackend(SCRIPT),
            tools=tools(),
            task="t",
            hooks=[AsyncNoRm()],
            session_log=async_log,
        )
        async for _ in loop:
            async_log.note("async note")

    asyncio.run(go())
    assert [e for e in async_log.entries if e.kind != "note"] == sync_log.entries
    assert sum(e.kind == "note" for e in async_log.entries) == 6


# -- checkpoints ---------------------------------------------------------------------------------


def records(store: FileCheckpointStore) -> list[dict[str, Any]]:
    """The journal records of the store's only run (not its header)."""
    (run_id,) = store.runs()
    lines = (store.run_dir(run_id) / "step-0001.journal").read_bytes().splitlines()[1:]
    return [json.loads(line.rpartition(b"\t")[0]) for line in lines]


def test_the_checkpoint_keeps_the_log_and_the_journal_appends_only_new_entries(
    tmp_path: Path,
) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    log = SessionLog()
    loop = logged_loop(log, checkpoint=store)
    for step in loop:
        log.note(f"seen {step.number}")
    checkpoint = store.load_latest()
    assert checkpoint is not None and checkpoint.ended
    assert checkpoint.session_log.entries == log.entries
    # Each record adds what the step added: the note of the step before and this step's
    # entry, kept items counted, never the whole log again.
    ops = [r["lists"]["session_log_data"] for r in records(store)]
    kept = [op[0] for op in ops]
    assert kept == sorted(kept) and all(len(op[1]) <= 3 for op in ops)
    assert [r["sizes"][5] for r in records(store)] == [k + len(a) for k, a in ops]
    # Every step's checkpoint has the log as it was then.
    third = store.load(checkpoint.run_id, 3)
    assert [e.step for e in third.session_log.entries if e.kind == "step"] == [1, 2, 3]


def test_every_step_keeps_its_log_through_folded_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_checkpoint_journal import fold_after_every_checkpoint

    fold_after_every_checkpoint(monkeypatch)
    store = FileCheckpointStore(tmp_path / "runs")
    log = SessionLog()
    run_all(
        llm=MockLLMBackend(SCRIPT),
        tools=tools(),
        task="t",
        hooks=[NoRm(), Noter(log)],
        session_log=log,
        checkpoint=store,
        config=LoopConfig(session_id="folded"),
    )
    # The first snapshot was folded away: the earlier steps come from the history's sizes.
    assert not (store.run_dir("folded") / "step-0001.json").exists()
    for n in range(1, 7):
        entries = store.load("folded", n).session_log.entries
        assert [e.step for e in entries if e.kind == "step"] == list(range(1, n + 1))
        assert entries == log.entries[: len(entries)]
    end = store.load_latest("folded")
    assert end is not None and end.session_log.entries == log.entries


def test_a_log_compacted_mid_run_is_written_again_whole(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    log = SessionLog()
    loop = logged_loop(log, checkpoint=store)
    for step in loop:
        if step.number == 4:
            assert log.compact(max_entries_to_keep=1)
    checkpoint = store.load_latest()
    assert checkpoint is not None
    assert checkpoint.session_log.entries == log.entries
    assert log.entries[0].kind == "summary"


def test_a_resumed_run_continues_the_same_log(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    first, whole, resumed = SessionLog(), SessionLog(), SessionLog()
    options: dict[str, Any] = {"tools": tools(), "checkpoint": store}
    run_all(llm=MockLLMBackend(SCRIPT), tools=tools(), task="t", hooks=[NoRm(), Noter(whole)],
            session_log=whole)  # fmt: skip
    loop = composable_loop(
        MockLLMBackend(SCRIPT), task="t", hooks=[NoRm(), Noter(first)], session_log=first, **options
    )
    for step in loop:
        if step.number == 2:
            first.note("a note after the last checkpoint is not kept")
            break
    loop.close()  # the process "dies": its step-3 checkpoint was never written
    assert resume_loop_state(store).step == 2

    run_all(
        llm=MockLLMBackend(SCRIPT[2:]),
        hooks=[NoRm(), Noter(resumed)],
        session_log=resumed,
        resume=store,
        **options,
    )
    assert [e.detail for e in resumed.entries if e.kind == "note"] == [
        "checked step 1",
        "checked step 2",
    ]
    assert resumed.entries == whole.entries
    end = store.load_latest()
    assert end is not None and end.session_log.entries == resumed.entries


def test_a_run_resumed_without_session_log_keeps_the_log_it_had(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    log = SessionLog()
    loop = logged_loop(log, Noter(log), checkpoint=store)
    for step in loop:
        if step.number == 2:
            break
    loop.close()
    run_all(
        llm=MockLLMBackend(SCRIPT[2:]),
        tools=tools(),
        hooks=[NoRm()],
        checkpoint=store,
        resume=store,
    )
    end = store.load_latest()
    assert end is not None and end.ended
    assert [e.step for e in end.session_log.entries if e.kind == "step"] == [1, 2, 3, 4, 5, 6]
    assert [e.detail for e in end.session_log.entries if e.kind == "note"] == [
        "checked step 1",
        "checked step 2",
    ]
    assert end.session_log.entries[-1].kind == "stop"


def test_old_checkpoints_load_and_a_resumed_one_gets_the_log_of_its_steps(tmp_path: Path) -> None:
    shutil.copytree(LEGACY, tmp_path / "runs")
    store = FileCheckpointStore(tmp_path / "runs")
    ended = store.load_latest("legacy-ended")
    assert ended is not None and ended.session_log_data == ()
    assert ended.session_log.to_list() == SessionLog.from_trajectory(ended.trajectory()).to_list()
    assert [e.kind for e in ended.session_log.entries][-1] == "stop"

    opened = resume_loop_state(store, run_id="legacy-open")
    log = SessionLog()

    def reply(request: LLMRequest) -> list[ToolCall]:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        names = ["Ann", "Bob", "Cy", "Di", "Ed"]
        if turn < 4:
            return [ToolCall("greet", {"name": names[turn]}, call_id=f"x{turn}")]
        return [ToolCall("done", {"answer": "greeted"}, call_id="xd")]

    run_all(
        llm=MockLLMBackend([reply] * 5),
        tools=make_tools(),
        session_log=log,
        checkpoint=store,
        resume=opened,
    )
    steps = [e.step for e in log.entries if e.kind == "step"]
    assert steps[:2] == [1, 2] and steps == list(range(1, len(steps) + 1))
    assert log.entries[-1].kind == "stop"
    end = store.load_latest("legacy-open")
    assert end is not None and end.session_log.entries == log.entries
    # Saved runs of that version (provenance, the codec's fixtures) give a log too.
    for name in ("kitchen", "compacting"):
        checkpoints = RECORD_V1 / name / "checkpoints"
        (run_id,) = FileCheckpointStore(checkpoints).runs()
        cp = FileCheckpointStore(checkpoints).load_latest(run_id)
        assert cp is not None and cp.session_log.entries[-1].kind == "stop"
    compacting = FileCheckpointStore(RECORD_V1 / "compacting" / "checkpoints").load_latest()
    assert compacting is not None
    assert [e.step for e in compacting.session_log.entries if e.kind == "compaction"] == [4, 5]


def test_a_run_without_session_log_loads_nothing_and_writes_what_it_wrote_before(
    tmp_path: Path,
) -> None:
    code = (
        "import sys\n"
        "from looplet import composable_loop, ToolCall\n"
        "from looplet.checkpoint import FileCheckpointStore\n"
        "from looplet.testing import MockLLMBackend\n"
        "from tests.conftest import make_tools\n"
        "store = FileCheckpointStore(sys.argv[1])\n"
        "calls = [ToolCall('greet', {'name': str(n)}) for n in range(3)]\n"
        "list(composable_loop(MockLLMBackend([*calls, ToolCall('done', {'answer': 'x'})]),"
        " tools=make_tools(), task='t', checkpoint=store))\n"
        "assert 'looplet.session' not in sys.modules, 'looplet.session was imported'\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "runs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    written = b"".join(p.read_bytes() for p in (tmp_path / "runs").rglob("step-*"))
    assert b"session_log" not in written and written.count(b'"sizes":[') == 4
    assert b'"sizes":[' in written and b",0,0,0,0]" not in written  # five sizes, as before


# -- secrets -------------------------------------------------------------------------------------


def test_no_secret_reaches_the_log_the_checkpoint_files_or_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_TEST_TOKEN", ENV_SECRET)
    store = FileCheckpointStore(tmp_path / "runs")
    log = SessionLog()
    loop = logged_loop(log, checkpoint=store)
    for step in loop:
        if step.number == 2:
            assert KEY in str(step.tool_result.data)  # the tool did return both secrets
            assert ENV_SECRET in str(step.tool_result.data)
            log.note(f"the page had {KEY} and {ENV_SECRET}")
    text = log.render() + json.dumps(log.to_list())
    assert "<redacted>" in text
    assert KEY not in text and ENV_SECRET not in text and KEY[:12] not in text
    written = b"".join(p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file())
    assert b"session_log_data" in written
    for secret in (KEY, ENV_SECRET):
        assert secret.encode() not in written
    out = show(tmp_path / "runs", cwd=tmp_path, env={"LOG_TEST_TOKEN": ENV_SECRET})
    assert "note: the page had <redacted> and <redacted>" in out
    assert KEY not in out and ENV_SECRET not in out


def test_show_redacts_before_it_cuts_a_line_short(tmp_path: Path) -> None:
    # A run recorded where the secret was not known (no such variable set), shown where it
    # is: each line is redacted whole, then cut, so no fragment of the secret is printed.
    store = FileCheckpointStore(tmp_path / "runs")
    done = ToolCall("done", {"answer": "y" * 140 + ENV_SECRET})
    list(
        composable_loop(
            MockLLMBackend([done]), tools=tools(), task="t" * 150 + ENV_SECRET, checkpoint=store
        )
    )
    out = show(tmp_path / "runs", cwd=tmp_path, env={"LOG_TEST_TOKEN": ENV_SECRET})
    assert "final output:" in out and "task:" in out
    assert ENV_SECRET[:4] not in out, out


# -- looplet show ----------------------------------------------------------------------------------


def show(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8", **(env or {})}
    out = subprocess.run(
        [sys.executable, "-m", "looplet", "show", *map(str, args)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_show_prints_a_checkpoints_session_log_with_its_notes(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs")
    log = SessionLog()
    loop = logged_loop(log, checkpoint=store, config=LoopConfig(session_id="run-1"))
    for step in loop:
        if step.number == 3:
            log.note("boom failed as expected")
        if step.number == 4:
            break
    loop.close()
    for path in ("runs", "runs/run-1", "runs/run-1/step-0001.journal"):
        lines = show(path, cwd=tmp_path).splitlines()
        assert lines[:5] == [
            f"run: {path}",
            "checkpoint: run 'run-1' after step 4 (not ended, resumable)",
            "task: t",
            "steps (4):",
            "  model: I will greet Alice first.",
        ]
        assert "    note: boom failed as expected" in lines
        assert "  #4 ✗ rm(path='/') → DENIED: deleting is not allowed" in lines
        assert "stopped: not yet (checkpointed after step 4; resume=store goes on)" in lines


def test_show_a_provenance_folder_and_the_full_and_compact_forms(tmp_path: Path) -> None:
    from looplet.provenance import ProvenanceSink

    sink = ProvenanceSink(tmp_path / "prov")
    script: list[Any] = [ToolCall("greet", {"name": f"n{i}"}) for i in range(40)] + [DONE]
    run_all(
        llm=sink.wrap_llm(MockLLMBackend(script)),
        tools=tools(),
        task="greet forty people",
        hooks=[sink.trajectory_hook()],
        max_steps=50,
    )
    lines = show("prov", cwd=tmp_path).splitlines()
    assert lines[:3] == ["run: prov", "task: greet forty people", "steps (41):"]
    assert "  ... 6 more entries (--full shows them) ..." in lines
    assert "  #41 ✓ done(answer='all done') → 1 keys" in lines
    full = show("prov", "--full", cwd=tmp_path).splitlines()
    assert [line for line in full if line.startswith("  #")] == [
        f"  #{n + 1} ✓ greet(name='n{n}') → 1 keys" for n in range(40)
    ] + ["  #41 ✓ done(answer='all done') → 1 keys"]
    compact = show("prov", "--compact", "300", cwd=tmp_path).splitlines()
    body = compact[compact.index("steps (41):") + 1 : compact.index("stopped: done (all done)")]
    assert sum(len(line) - 2 for line in body) + len(body) - 1 <= 300  # "  " added, "\n" joins
    assert body[0].startswith("  [") and "earlier entries, steps 1-" in body[0]
    assert body[-1] == "  #41 ✓ done(answer='all done') → 1 keys"


def test_from_list_of_something_that_is_no_list_names_it() -> None:
    # SessionLog.from_list(5) was a bare "'int' object is not iterable".
    with pytest.raises(ConfigurationError, match=r"SessionLog.from_list takes a list"):
        SessionLog.from_list(5)  # type: ignore[arg-type]


def test_show_says_which_checkpoint_it_skipped_as_a_line_not_a_python_warning(
    tmp_path: Path,
) -> None:
    # A damaged checkpoint printed a Python UserWarning with a line of looplet's source.
    store = FileCheckpointStore(tmp_path / "runs")
    run_all(llm=MockLLMBackend([GREET, FETCH, DONE]), tools=tools(), task="t", checkpoint=store)
    [journal] = (tmp_path / "runs").rglob("step-0001.journal")
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:-1], lines[-1].replace(b'"', b"'", 3)]))
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run(
        [sys.executable, "-m", "looplet", "show", "runs"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr and "load_latest" not in out.stderr, out.stderr
    assert "warning: skipped unreadable checkpoint" in out.stdout, out.stdout
