"""The checkpoint document: :class:`Checkpoint`, its JSON form, and its checked decoding.

A checkpoint file (``step-0007.json``) is one JSON document: the format, the run id and
step, then every field of the run's state, each value in the run record's one form
(:mod:`looplet.record.codec`: messages, steps, calls, permission decisions, sub-agent
runs, model turns). Credentials become ``<redacted>`` (:mod:`looplet._redact`) on the way
out, so that none reaches the disk. Decoding checks every field: a file that is no checkpoint
at all is a :class:`BadFile`, a bad field a ``DecodeError`` naming its place. The journal
(:mod:`looplet._checkpoint_journal`) reuses the pieces: :func:`scalar_fields` for the
fields a record changes, :func:`list_decoders` for the items it appends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplet._version import __version__
from looplet.errors import CheckpointError
from looplet.messages import Message
from looplet.record.codec import (
    DecodeError,
    decode_call,
    decode_compaction,
    decode_list,
    decode_message,
    decode_permission,
    decode_step,
    decode_stop_reason,
    decode_str,
    decode_trajectory,
    decode_turn,
    decode_usage,
    encode_call,
    encode_compaction,
    encode_data,
    encode_message,
    encode_permission,
    encode_step,
    encode_trajectory,
    encode_turn,
    encode_usage,
    field_bool,
    field_int,
    field_number,
    field_str,
    json_object,
    optional_str,
)
from looplet.types import Step, StopReason, ToolCall, Trajectory, Turn, Usage

if TYPE_CHECKING:
    from looplet.session import SessionLog

__all__ = [
    "FORMAT",
    "LISTS",
    "OPTIONAL_LISTS",
    "RUN_ID",
    "BadFile",
    "Checkpoint",
    "checked_run_id",
    "checkpoint_doc",
    "checkpoint_from_doc",
    "checkpoint_from_parts",
    "decode_checkpoint",
    "list_decoders",
    "list_sizes",
    "parse_document",
    "scalar_fields",
]

#: The format written in every checkpoint file; a reader refuses any other.
FORMAT = "looplet-checkpoint/1"
#: A run id names a folder inside the store: one plain path component, never "." or "..".
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: The lists of a checkpoint document, each only ever appended to during a run (but for the
#: conversation, which a context compaction replaces, and the session log, which its
#: ``compact()`` replaces): a journal record adds to them. The last two, the session log's
#: entries and the model turns, are left out of documents and record sizes while they are
#: empty, so a run without them writes what looplet wrote before them (:func:`list_sizes`).
LISTS = (
    "messages", "steps", "permission_decisions", "children", "compactions", "session_log_data",
    "turns",
)  # fmt: skip
#: How many lists at the end of :data:`LISTS` a document or record may leave out (while empty).
OPTIONAL_LISTS = 2
_REQUIRED = frozenset({"messages", "steps"})


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The saved state of a run after a step (or at its end): what a resumed run restores.

    Attributes:
        run_id: the run's id, also the name of its folder in the store.
        step: how many steps the run had recorded.
        ended: whether the run had ended (a run's last checkpoint); such a run is not resumed.
        task: the task, in its JSON form.
        messages: the conversation, with the assistant turns' tool calls.
        steps: the recorded steps.
        queries_used: the step budget used; ``llm_calls`` and ``usage``: model calls and tokens.
        stop_reason, stop_detail, final_text: as on the trajectory at that point.
        tool_names: the registered tools; a resumed run must have the same.
        pending_calls: the calls of the current turn not yet recorded; run first on resume.
        pending_context, stop_requested: what hooks asked for that takes effect later.
        max_steps: the run's step budget (for information).
        compactions: the run's context compactions so far, each in its ``to_dict`` form.
        permission_decisions: the permission decisions taken so far, in order.
        children: the runs of the sub-agents started so far (see
            :mod:`looplet.record.codec` for what of them cannot be kept).
        context_calibration: with a context budget, the prompt limit as lowered by
            provider refusals and the provider's tokens per estimated token.
        created_at: when it was taken (seconds since the epoch).
        path: the file it was read from, if any: a snapshot (``step-0007.json``), or the
            journal (``step-0001.journal``) whose record it was rebuilt from.
        session_log_data: the entries of the run's :class:`~looplet.session.SessionLog`, in
            their JSON form (empty when the run kept none); :attr:`session_log` reads them.
        turns: the run's model turns so far (:attr:`Trajectory.turns
            <looplet.types.Trajectory.turns>`): every reply recorded, the current turn's
            included while its calls are still pending (they are run on resume without
            asking the model again, so its turn is not made twice). Empty in a checkpoint
            written before turns were kept.
    """

    run_id: str
    step: int
    ended: bool = False
    task: Any = None
    messages: tuple[Message, ...] = ()
    steps: tuple[Step, ...] = ()
    queries_used: int = 0
    llm_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    final_text: str = ""
    tool_names: tuple[str, ...] = ()
    pending_calls: tuple[ToolCall, ...] = ()
    pending_context: tuple[str, ...] = ()
    stop_requested: str | None = None
    max_steps: int = 0
    compactions: tuple[dict[str, Any], ...] = ()
    permission_decisions: tuple[Any, ...] = ()
    children: tuple[Trajectory, ...] = ()
    context_calibration: tuple[int, float] | None = None
    created_at: float = 0.0
    path: Path | None = field(default=None, compare=False)
    session_log_data: tuple[dict[str, Any], ...] = ()
    turns: tuple[Turn, ...] = ()

    @property
    def session_log(self) -> SessionLog:
        """The run's session log as of this checkpoint: the one it kept, or for a run that
        kept none (or a checkpoint written before session logs), the log of its steps
        (:meth:`SessionLog.from_trajectory <looplet.session.SessionLog.from_trajectory>`)."""
        from looplet.session import SessionLog

        if self.session_log_data:
            return SessionLog.from_list(self.session_log_data)
        trajectory = self.trajectory()
        trajectory.compactions = list(self.compactions)  # in their JSON form: it reads both
        return SessionLog.from_trajectory(trajectory)

    @property
    def file_name(self) -> str:
        """``step-0007.json``, or ``step-0007.end.json`` for a run's end."""
        return f"step-{self.step:04d}{'.end' if self.ended else ''}.json"

    def trajectory(self) -> Trajectory:
        """The run's record as of this checkpoint (``elapsed_ms`` is not kept: 0)."""
        return Trajectory(
            task=self.task,
            steps=list(self.steps),
            stop_reason=self.stop_reason,
            stop_detail=self.stop_detail,
            llm_calls=self.llm_calls,
            usage=self.usage,
            messages=list(self.messages),
            final_text=self.final_text,
            permission_decisions=list(self.permission_decisions),
            children=list(self.children),
            turns=list(self.turns),
        )

    def to_json(self) -> str:
        """The checkpoint file's text, credentials and key-shaped strings redacted
        (:mod:`looplet._redact`): a resumed run sees ``<redacted>`` in their place."""
        from looplet._redact import redact

        return json.dumps(redact(checkpoint_doc(self)), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes, *, path: Path | None = None) -> Checkpoint:
        """Read a checkpoint file's text, checking every field.

        Raises:
            CheckpointError: the text is not a checkpoint this looplet can read; the message
                says why (cut-short JSON, a foreign file, a newer format, a bad field).
        """
        try:
            return decode_checkpoint(text, path)
        except BadFile as bad:
            where = path if path is not None else "checkpoint text"
            raise CheckpointError(f"cannot read {where}: {bad.reason}", path=path) from None


def checkpoint_doc(checkpoint: Checkpoint) -> dict[str, Any]:
    """The JSON document of ``checkpoint``, not yet redacted (:meth:`Checkpoint.to_json`)."""
    c = checkpoint
    doc: dict[str, Any] = {
        "format": FORMAT,
        "looplet_version": __version__,
        "run_id": c.run_id,
        "step": c.step,
        "ended": c.ended,
        "created_at": c.created_at,
        "task": encode_data(c.task),
        "messages": [encode_message(m) for m in c.messages],
        "steps": [encode_step(s) for s in c.steps],
        "queries_used": c.queries_used,
        "llm_calls": c.llm_calls,
        "usage": encode_usage(c.usage),
        "stop_reason": c.stop_reason.value if c.stop_reason else None,
        "stop_detail": c.stop_detail,
        "final_text": c.final_text,
        "tool_names": list(c.tool_names),
        "pending_calls": [encode_call(call) for call in c.pending_calls],
        "pending_context": list(c.pending_context),
        "stop_requested": c.stop_requested,
        "max_steps": c.max_steps,
        "compactions": [encode_compaction(record) for record in c.compactions],
        "permission_decisions": [encode_permission(d) for d in c.permission_decisions],
        "children": [encode_trajectory(child) for child in c.children],
        "context_calibration": None
        if c.context_calibration is None
        else dict(zip(("limit", "scale"), c.context_calibration, strict=True)),
    }
    if c.session_log_data:
        doc["session_log_data"] = list(c.session_log_data)
    if c.turns:
        doc["turns"] = [encode_turn(turn) for turn in c.turns]
    return doc


def list_sizes(sizes: list[int]) -> list[int]:
    """The sizes of :data:`LISTS` as a record writes them: the last ones (the session log's,
    the turns') left out while they are 0 (a reader takes a missing size as 0)."""
    if len(sizes) != len(LISTS):
        return sizes
    end = len(sizes)
    while end > len(LISTS) - OPTIONAL_LISTS and not sizes[end - 1]:
        end -= 1
    return sizes[:end]


def list_decoders() -> dict[str, Callable[[Any, str], Any]]:
    """How each list of a checkpoint document decodes an item (in :data:`LISTS` order)."""
    return {
        "messages": decode_message,
        "steps": decode_step,
        "permission_decisions": decode_permission,
        "children": decode_trajectory,
        "compactions": _compaction,
        "session_log_data": _session_entry,
        "turns": decode_turn,
    }


def _compaction(value: Any, where: str) -> dict[str, Any]:
    # A checkpoint holds compactions in their JSON form (Checkpoint.compactions), checked.
    return decode_compaction(value, where).to_dict()


def _session_entry(value: Any, where: str) -> dict[str, Any]:
    from looplet.session import decode_entry  # only a checkpoint that holds a log loads it

    return decode_entry(value, where)


class BadFile(Exception):
    """Why a file is not a checkpoint this looplet can read (``reason``: one clause)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_checkpoint(text: str | bytes, path: Path | None) -> Checkpoint:
    """A checkpoint from a file's text, every field checked; else :class:`BadFile`."""
    return checkpoint_from_doc(parse_document(text), path)


def parse_document(text: str | bytes) -> dict[str, Any]:
    """A checkpoint file's JSON document, its format checked (its fields not yet)."""
    if not text.strip():
        raise BadFile("the file is empty; the write was probably cut short")
    try:
        doc = json.loads(text)
    except UnicodeDecodeError:
        raise BadFile("not UTF-8 text, so not a looplet checkpoint") from None
    except json.JSONDecodeError as exc:
        raise BadFile(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); the write "
            "was probably cut short"
        ) from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("looplet-checkpoint/"):
        raise BadFile(f'not a looplet checkpoint (no "format": "{FORMAT}" field)')
    if fmt != FORMAT:
        raise BadFile(
            f"written in format {fmt!r} by a newer looplet; this looplet ({__version__}) reads "
            f"{FORMAT!r}: upgrade looplet to resume it"
        )
    return doc  # type: ignore[no-any-return]


def checkpoint_from_doc(doc: dict[str, Any], path: Path | None) -> Checkpoint:
    """The checkpoint a :func:`parse_document` document holds, every field checked."""
    try:
        return _checkpoint_fields(doc, path)
    except DecodeError as exc:
        raise BadFile(f"malformed checkpoint: {exc}") from None


def _checkpoint_fields(doc: dict[str, Any], path: Path | None) -> Checkpoint:
    run_id = checked_run_id(doc)
    decoders = list_decoders()
    lists = {
        name: decode_list(doc.get(name, None if name in _REQUIRED else []), name, decoders[name])
        for name in LISTS
    }
    return checkpoint_from_parts(run_id, scalar_fields(doc), lists, path)


def checked_run_id(doc: Mapping[str, Any]) -> str:
    """The document's ``run_id``, checked to be a plain name."""
    run_id = field_str(doc, "run_id", "")
    if not RUN_ID.match(run_id):
        raise DecodeError("run_id", f"not a plain name: {run_id!r}")
    return run_id


def scalar_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a :class:`Checkpoint` other than its run id, lists and path, checked.

    ``doc`` is a checkpoint document, or the fields a journal record carries
    (:mod:`looplet._checkpoint_journal`) laid over one.
    """
    context = decode_list(doc.get("pending_context", []), "pending_context", decode_str)
    return {
        "step": field_int(doc, "step", ""),
        "ended": field_bool(doc, "ended", "", False),
        "task": doc.get("task"),
        "queries_used": field_int(doc, "queries_used", ""),
        "llm_calls": field_int(doc, "llm_calls", ""),
        "usage": decode_usage(doc.get("usage", {}), "usage"),
        "stop_reason": decode_stop_reason(doc.get("stop_reason"), "stop_reason"),
        "stop_detail": field_str(doc, "stop_detail", "", ""),
        "final_text": field_str(doc, "final_text", "", ""),
        "tool_names": tuple(decode_list(doc.get("tool_names"), "tool_names", decode_str)),
        "pending_calls": tuple(
            decode_list(doc.get("pending_calls", []), "pending_calls", decode_call)
        ),
        "pending_context": tuple(context),
        "stop_requested": optional_str(doc, "stop_requested", ""),
        "max_steps": field_int(doc, "max_steps", "", 0),
        "context_calibration": _calibration(doc.get("context_calibration")),
        "created_at": field_number(doc, "created_at", "", 0.0),
    }


def checkpoint_from_parts(
    run_id: str, fields: dict[str, Any], lists: Mapping[str, list[Any]], path: Path | None
) -> Checkpoint:
    """A :class:`Checkpoint` from :func:`scalar_fields` and decoded lists (every one of
    :data:`LISTS`), checking that ``step`` counts the steps and no turn starts after them."""
    steps, turns = lists["steps"], lists["turns"]
    if fields["step"] != len(steps):
        raise DecodeError("step", f"is {fields['step']}, but the file holds {len(steps)} steps")
    if turns and turns[-1].step > len(steps) + 1:  # a turn's calls start at the next step
        raise DecodeError(
            f"turns[{len(turns) - 1}].step", f"is {turns[-1].step}, after step {len(steps)} + 1"
        )
    return Checkpoint(
        run_id,
        messages=tuple(lists["messages"]),
        steps=tuple(steps),
        permission_decisions=tuple(lists["permission_decisions"]),
        children=tuple(lists["children"]),
        compactions=tuple(lists["compactions"]),
        session_log_data=tuple(lists["session_log_data"]),
        turns=tuple(lists["turns"]),
        path=path,
        **fields,
    )


def _calibration(value: Any) -> tuple[int, float] | None:
    if value is None:
        return None
    obj = json_object(value, "context_calibration")
    scale = obj.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale < 1:
        raise DecodeError("context_calibration.scale", f"expected a number >= 1, got {scale!r}")
    return field_int(obj, "limit", "context_calibration"), float(scale)
