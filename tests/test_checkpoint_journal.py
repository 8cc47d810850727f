"""The checkpoint journal: what is written per step, what reads back, damage, old folders.

Every checkpoint of a run must read back exactly as the run stood when it was taken (the
document a whole snapshot of the run would have been), whether it comes from the snapshot,
a journal line, or the history of a snapshot the journal was folded into; a save must write
only what its step added; the run keeps under 3x its last checkpoint on disk; a damaged
line is reported and passed over; a line a crash cut short is no checkpoint; and folders
written before the journal (tests/checkpoints_v1, a file per step) still load and resume.
Damaged snapshots (those folders' files) are passed over the same way. The SIGKILL tests
are in tests/test_resume_kill.py.
"""

from __future__ import annotations

import json
import shutil
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from looplet import LoopConfig, StopReason, ToolCall, ToolSpec, composable_loop
from looplet import _checkpoint_journal as J
from looplet._checkpoint_writer import JournalWriter, snapshot
from looplet.backends.base import LLMRequest
from looplet.checkpoint import FORMAT, Checkpoint, FileCheckpointStore, resume_loop_state
from looplet.compact import ContextBudget
from looplet.errors import CheckpointError
from looplet.permissions import PermissionHook
from tests.conftest import make_tools
from tests.test_checkpoint import DONE, TASK, Model, only_run_dir, run, strip
from tests.test_checkpoint_records import engine

LEGACY = Path(__file__).parent / "checkpoints_v1"  # written by looplet 0.2.0, a file per step


@pytest.fixture
def store(tmp_path: Path) -> FileCheckpointStore:
    return FileCheckpointStore(tmp_path / "runs")


@pytest.fixture
def uninterrupted() -> dict[str, Any]:
    return strip(run("sync", task=TASK))


def fold_after_every_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every journal line be folded into a new snapshot at once."""
    real_append = JournalWriter._append

    def append(self: JournalWriter, *args: Any) -> None:
        self._fold_at = 0
        real_append(self, *args)

    monkeypatch.setattr(JournalWriter, "_append", append)


def comparable(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint's document, less when and by which version it was written."""
    doc = json.loads(checkpoint.to_json())
    del doc["created_at"], doc["looplet_version"]
    return doc  # type: ignore[no-any-return]


class Reader(Model):
    """Reads parts 0-5 of a long document (its context budget makes the run compact)."""

    def reply(self, request: LLMRequest) -> list[ToolCall]:
        last = [m.content for m in request.messages if m.role == "tool"]
        part = int(last[-1].split(":")[0]) + 1 if last else 0
        return [DONE] if part == 6 else [ToolCall("read", {"part": part}, call_id=f"r{part}")]


def greeting_run() -> dict[str, Any]:
    """Five steps, three in one turn, every call screened by a permission engine."""
    return {"model": Model(), "hooks": [PermissionHook(engine())]}


def compacting_run() -> dict[str, Any]:
    """Six reads whose results overflow a context budget: the conversation is compacted."""
    read = ToolSpec("read", "Read.", {"part": "int"}, lambda *, part: f"{part}:" + "x" * 1500)
    budget = ContextBudget(max_tokens=1200, use_reported_usage=False)
    return {
        "model": Reader(),
        "tools": make_tools(read=read),
        "config": LoopConfig(max_steps=10, context_budget=budget),
    }


def sub_agent_run() -> dict[str, Any]:
    """A parent that hands two tasks to a sub-agent, then greets and finishes."""
    from looplet.subagent import subagent_tool
    from looplet.testing import MockLLMBackend

    def turns(script: list[ToolCall]) -> Any:
        return lambda request: [script[sum(m.role == "assistant" for m in request.messages)]]

    child = [ToolCall("greet", {"name": "Bob"}, call_id="cg"), ToolCall("done", {"answer": "ok"})]
    handle: dict[str, Any] = {}
    helper = subagent_tool(
        "helper",
        "Hand a task to a helper.",
        MockLLMBackend([turns(child)], cycle=True),
        make_tools(),
        parent=lambda: handle["loop"],
    )
    calls = [ToolCall("helper", {"task": f"greet Bob {n}"}, call_id=f"h{n}") for n in (1, 2)]
    return {
        "model": Model([[c] for c in [*calls, ToolCall("greet", {"name": "Ann"}), DONE]]),
        "tools": make_tools(helper=helper),
        "handle": handle,
    }


RUNS: dict[str, Callable[[], dict[str, Any]]] = {
    "greetings": greeting_run,
    "compacting": compacting_run,
    "sub-agents": sub_agent_run,
}


@pytest.mark.parametrize("fold", ["never", "when outgrown", "always"])
@pytest.mark.parametrize("kind", RUNS)
def test_every_checkpoint_reads_back_as_the_run_stood_when_it_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, fold: str
) -> None:
    if fold == "when outgrown":  # as past 64 KiB, but as soon as the journal outgrows its snapshot
        monkeypatch.setattr(J, "MIN_JOURNAL_BYTES", 0)
    elif fold == "always":
        fold_after_every_checkpoint(monkeypatch)
    options = RUNS[kind]()
    handle, model = options.pop("handle", {}), options.pop("model")
    options.setdefault("tools", make_tools())
    store = FileCheckpointStore(tmp_path / "runs")
    loop = composable_loop(model.sync(), task=TASK, checkpoint=store, **options)
    handle["loop"] = loop
    expected = {}
    for step in loop:  # a step is handed over once its checkpoint is on disk
        expected[step.number] = comparable(snapshot(loop._run, store.runs()[0], False))
    assert loop.trajectory.stop_reason is StopReason.DONE
    run_id = store.runs()[0]

    not_kept = []
    for n, doc in expected.items():
        try:
            assert comparable(store.load(run_id, n)) == doc, n
        except CheckpointError as error:  # only a step before a compaction, once folded
            assert "a context compaction replaced the conversation after it" in str(error)
            not_kept.append(n)
    latest = store.load_latest()
    assert latest is not None and latest.ended
    assert comparable(latest) == comparable(snapshot(loop._run, run_id, True))
    if fold == "always":  # every step but the last was read from a snapshot's history
        last = max(expected)
        names = sorted(p.name for p in store.run_dir(run_id).iterdir())
        assert names == [f"step-{last:04d}.journal", f"step-{last:04d}.json"]
    if kind == "compacting" and fold == "always":
        assert not_kept and max(not_kept) < max(expected)  # before the last compaction
    elif kind != "compacting":
        assert not_kept == []


def test_a_save_writes_only_what_its_step_added_and_the_run_stays_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 120
    model = Model([[ToolCall("greet", {"name": f"N{i}"}, call_id=f"g{i}")] for i in range(n)])
    store = FileCheckpointStore(tmp_path / "runs")
    monkeypatch.setattr(J, "MIN_JOURNAL_BYTES", 8 * 1024)  # so that it folds a few times
    run("sync", task=TASK, model=model, config=LoopConfig(max_steps=n), checkpoint=store)
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = next(run_dir.glob("*.journal"))
    lines = journal.read_bytes().split(b"\n")[1:-2]  # its steps (not its header, nor the end)
    # Each line holds its own step's call, and no earlier one's.
    for line in lines[-10:]:
        record = json.loads(line.rpartition(b"\t")[0])
        (step,) = record["lists"]["steps"][1]
        assert record["lists"]["steps"][0] == step["step"] - 1
        assert line.count(b'"call_id":"g') == 3  # the call: in the step, the message, the result
    assert max(map(len, lines[-10:])) < 2 * min(map(len, lines[:10]))
    # A snapshot and its journal, under 3x the run's last checkpoint as one document.
    files = sorted(run_dir.iterdir())
    assert [p.suffix for p in files] == [".journal", ".json"] and files[1].name != "step-0001.json"
    latest = store.load_latest()
    assert latest is not None and latest.step == n
    assert sum(p.stat().st_size for p in files) < 3 * len(latest.to_json().encode())


def test_folders_written_before_the_journal_still_load_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uninterrupted = strip(run("sync", task=TASK))
    shutil.copytree(LEGACY, tmp_path / "runs")
    store = FileCheckpointStore(tmp_path / "runs")
    assert store.runs() == ["legacy-ended", "legacy-open"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ended = store.load_latest("legacy-ended")
        assert ended is not None and (ended.step, ended.ended) == (5, True)
        assert [store.load("legacy-ended", n).step for n in range(1, 6)] == [1, 2, 3, 4, 5]
        assert strip(ended.trajectory()) == uninterrupted
        with pytest.raises(CheckpointError, match="already ended at step 5"):
            resume_loop_state(store, run_id="legacy-ended")
        opened = resume_loop_state(store, run_id="legacy-open")
        assert opened.step == 2 and [c.call_id for c in opened.pending_calls] == ["c", "e"]

        fold_after_every_checkpoint(monkeypatch)  # to read the steps from a snapshot's history
        resumed = run("sync", checkpoint=store, resume=opened)
    assert strip(resumed) == uninterrupted
    # The run went on in the same folder, after its newest file; the older one is kept.
    run_dir = store.run_dir("legacy-open")
    assert (run_dir / "step-0001.json").read_bytes() == (
        LEGACY / "legacy-open/step-0001.json"
    ).read_bytes()
    assert not (run_dir / "step-0002.json").exists()  # folded into a later snapshot
    assert [store.load("legacy-open", n).step for n in range(1, 6)] == [1, 2, 3, 4, 5]
    end = store.load_latest("legacy-open")
    assert end is not None and strip(end.trajectory()) == uninterrupted


# -- bad snapshots ---------------------------------------------------------------------------

BAD_FILES: dict[str, tuple[Callable[[str], str], str]] = {
    "truncated": (lambda text: text[: len(text) // 2], "not valid JSON (line 1, column"),
    "empty": (lambda text: "", "the file is empty"),
    "foreign": (lambda text: '{"name": "x"}', "not a looplet checkpoint"),
    "newer": (
        lambda text: text.replace(FORMAT, "looplet-checkpoint/2"),
        "format 'looplet-checkpoint/2' by a newer looplet",
    ),
    "malformed": (
        lambda text: text.replace('"queries_used": 2', '"queries_used": "2"'),
        "malformed checkpoint: field queries_used: expected a non-negative integer, got '2'",
    ),
    "bad step": (
        lambda text: text.replace('"tool_call": {"tool": "greet"', '"tool_call": {"tool": 7'),
        "field steps[0].tool_call.tool: expected a string, got the number 7",
    ),
}


@pytest.mark.parametrize("damage", BAD_FILES)
def test_a_bad_newest_checkpoint_is_skipped_with_a_warning(
    tmp_path: Path, uninterrupted: dict[str, Any], damage: str
) -> None:
    change, reason = BAD_FILES[damage]
    shutil.copytree(LEGACY, tmp_path / "runs")
    store = FileCheckpointStore(tmp_path / "runs")
    run_dir = store.run_dir("legacy-open")
    bad = run_dir / "step-0002.json"
    bad.write_text(change(bad.read_text()))

    with pytest.warns(UserWarning, match=r"step-0002\.json: .*using step 1 from step-0001\.json"):
        checkpoint = store.load_latest("legacy-open")
    assert checkpoint is not None and checkpoint.step == 1
    assert store.skipped == [(bad, store.skipped[0][1])]
    assert reason in store.skipped[0][1]

    with pytest.raises(CheckpointError) as info:
        resume_loop_state(bad)
    assert str(info.value).startswith(f"cannot resume from {bad}: ")
    assert reason in str(info.value) and info.value.path == bad

    with pytest.raises(CheckpointError) as info:
        store.load("legacy-open", 2)
    assert "Resume from another step" in str(info.value)
    assert f"delete {run_dir} to start over" in str(info.value)

    resumed = run("sync", checkpoint=store, resume=checkpoint)
    assert strip(resumed) == uninterrupted


def test_a_run_with_no_readable_checkpoint_is_an_error(store: FileCheckpointStore) -> None:
    run("sync", task=TASK, checkpoint=store, stop_after=2)
    for path in only_run_dir(store).iterdir():
        path.write_text("{")
    with pytest.raises(CheckpointError) as info:
        run("sync", resume=store)
    message = str(info.value)
    assert "none of its 1 checkpoint(s)" in message and "the newest, step-0001.json" in message
    assert "Delete" in message


def test_a_checkpoint_moved_to_another_run_is_refused(store: FileCheckpointStore) -> None:
    for name, steps in (("a", 1), ("b", 2)):
        config = LoopConfig(max_steps=10, session_id=name)
        run("sync", task=TASK, config=config, checkpoint=store, stop_after=steps)
    a, b = store.run_dir("a"), store.run_dir("b")
    shutil.copy(b / "step-0001.json", a / "step-0009.json")  # another run's, under a later name
    with pytest.warns(UserWarning, match="it was copied or renamed"):
        checkpoint = store.load_latest("a")
    assert checkpoint is not None and (checkpoint.run_id, checkpoint.step) == ("a", 1)
    (a / "step-0009.json").unlink()
    shutil.copy(b / "step-0001.journal", a / "step-0001.journal")  # another run's journal
    with pytest.warns(UserWarning, match=r"step-0001\.journal: line 1: .*copied or renamed"):
        checkpoint = store.load_latest("a")
    assert checkpoint is not None and (checkpoint.run_id, checkpoint.step) == ("a", 1)


def frame(record: bytes) -> bytes:
    return record + b"\t%08x\n" % zlib.crc32(record)


def last_line(journal: Path, change: Callable[[bytes], bytes]) -> None:
    """Replace the journal's last line by ``change(line)`` (a whole line, newline kept)."""
    lines = journal.read_bytes().split(b"\n")[:-1]
    journal.write_bytes(b"\n".join([*lines[:-1], change(lines[-1])]).rstrip(b"\n") + b"\n")


def header(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(journal: Path) -> None:
        lines = journal.read_bytes().split(b"\n")
        doc = json.loads(lines[0].rpartition(b"\t")[0])
        change(doc)
        lines[0] = frame(json.dumps(doc).encode())[:-1]
        journal.write_bytes(b"\n".join(lines))

    return damage


JOURNAL_DAMAGE: dict[str, tuple[Callable[[Path], None], str, int]] = {
    # damage, what the warning says, the step read back instead of step 3
    "a flipped byte": (
        lambda j: last_line(j, lambda line: line.replace(b'"step":3', b'"step":8')),
        "line 3: its checksum does not match: the line is damaged",
        2,
    ),
    "not JSON": (
        lambda j: last_line(j, lambda _: frame(b"{oops")[:-1]),
        "line 3: not valid JSON",
        2,
    ),
    "a bad field": (
        lambda j: last_line(
            j, lambda _: frame(b'{"step":3,"ended":false,"sizes":[1,2,0,0,0]}')[:-1]
        ),
        "line 3: malformed record: field sizes: messages: 1 recorded, 6 rebuilt",
        2,
    ),
    "a newer format": (
        header(lambda doc: doc.update(format="looplet-journal/2")),
        "line 1: written in format 'looplet-journal/2' by a newer looplet: upgrade looplet",
        1,
    ),
    "another run's": (
        header(lambda doc: doc.update(run_id="other")),
        "line 1: it follows run 'other' step 1, not this snapshot",
        1,
    ),
}


@pytest.mark.parametrize("damage", JOURNAL_DAMAGE)
def test_a_damaged_journal_line_is_passed_over_with_a_warning(
    store: FileCheckpointStore, damage: str
) -> None:
    change, reason, step = JOURNAL_DAMAGE[damage]
    uninterrupted = strip(run("sync", task=TASK))
    run("sync", task=TASK, checkpoint=store, stop_after=3)
    run_id = store.runs()[0]
    journal = store.run_dir(run_id) / "step-0001.journal"
    change(journal)

    with pytest.warns(UserWarning, match="step-0001.journal: .*using step") as caught:
        checkpoint = store.load_latest()
    assert reason in str(caught[0].message), caught[0].message
    assert checkpoint is not None and checkpoint.step == step
    assert store.skipped == [(journal, store.skipped[0][1])]
    with pytest.raises(CheckpointError, match=f"cannot resume from {journal}"):
        resume_loop_state(journal)

    # Resumed where it can be read: as a new run, the damaged one left for a human to see.
    with pytest.warns(UserWarning, match="skipped unreadable checkpoint"):
        resumed = run("sync", checkpoint=store, resume=store)
    assert strip(resumed) == uninterrupted
    assert len(store.runs()) == 2 and journal.exists()


def test_a_line_cut_short_is_no_checkpoint_and_is_dropped_before_the_next(
    store: FileCheckpointStore,
) -> None:
    uninterrupted = strip(run("sync", task=TASK))
    run("sync", task=TASK, checkpoint=store, stop_after=3)
    run_id = store.runs()[0]
    journal = store.run_dir(run_id) / "step-0001.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"step":4,"ended":fal')  # a crash in the middle of a write

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not damage: never a checkpoint, nothing to report
        checkpoint = store.load_latest()
        assert checkpoint is not None and checkpoint.step == 3
        resumed = run("sync", checkpoint=store, resume=store)
    assert strip(resumed) == uninterrupted
    assert store.runs() == [run_id]  # the same run went on
    lines = journal.read_bytes().split(b"\n")
    assert journal.read_bytes().startswith(whole) and lines[-1] == b""
    assert [json.loads(line.rpartition(b"\t")[0]).get("step") for line in lines[1:-1]] == [
        2, 3, 4, 5, 5
    ]  # fmt: skip
    assert store.load(run_id, 4).step == 4
    with pytest.raises(CheckpointError, match="already ended at step 5"):  # its path reads too
        resume_loop_state(journal)


def test_no_credential_reaches_a_journal_or_a_folded_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLBOX_SECRET", "toolbox-secret-271828")
    monkeypatch.setattr(J, "MIN_JOURNAL_BYTES", 0)
    leaky = ToolSpec("leak", "Leak.", {"n": "int"}, lambda *, n: f"key toolbox-secret-271828 #{n}")
    model = Model([[ToolCall("leak", {"n": n}, call_id=f"l{n}")] for n in range(6)] + [[DONE]])
    store = FileCheckpointStore(tmp_path / "runs")
    run("sync", task="use toolbox-secret-271828", model=model, tools=make_tools(leak=leaky),
        checkpoint=store)  # fmt: skip
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".journal"}
    assert not [p for p in files if b"toolbox-secret-271828" in p.read_bytes()]
    latest = store.load_latest()
    assert latest is not None and "<redacted>" in str(latest.steps[-2].tool_result.data)


def test_a_step_missing_from_the_run_names_what_it_has(store: FileCheckpointStore) -> None:
    run("sync", task=TASK, checkpoint=store)
    run_id = store.runs()[0]
    with pytest.raises(CheckpointError) as info:
        store.load(run_id, 9)
    message = str(info.value)
    assert f"no checkpoint of step 9 in {store.run_dir(run_id)}" in message
    assert "step-0001.json and step-0001.journal (to step 5, ended)" in message
