"""The session log: a compact, human-readable log of a run, kept in its checkpoints.

:class:`SessionLog` holds one :class:`LogEntry` per step (its number, tool, a short summary
of the arguments, and the outcome: ``ok`` with a short summary of the result, ``error`` with
its kind and message, ``denied``, or ``not_run``), with the text the model wrote alongside
the turn's calls, each context compaction, the stop reason, and the notes that hooks or
users add (:meth:`SessionLog.note`, or the original's :meth:`SessionLog.record`). Give one to
the loop and it is kept up to date as the run goes::

    log = SessionLog()
    for step in composable_loop(llm, tools=tools, task=task, session_log=log):
        ...
    print(log.render())

A run with ``checkpoint=store`` keeps the log in every checkpoint (the journal appends only
the entries a step added), a resumed run given ``session_log=`` goes on with the same log,
and :attr:`Checkpoint.session_log <looplet.checkpoint.Checkpoint.session_log>` reads it
back. Any finished run or older checkpoint gets the same log from its record with
:meth:`SessionLog.from_trajectory`. ``looplet show PATH`` prints it.

Every text is redacted (:mod:`looplet._redact`: the credentials in use, key-shaped strings)
when its entry is made, so no secret reaches the log, its rendering or a checkpoint.
A run without ``session_log=`` never loads this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from looplet.errors import ConfigurationError, ErrorKind

if TYPE_CHECKING:
    from looplet._checkpoint_doc import Checkpoint
    from looplet._redact import TextRedactor
    from looplet.hooks import LoopEvent
    from looplet.run_state import RunState
    from looplet.types import Step, Trajectory

__all__ = ["LogEntry", "SessionLog", "attach_session_log"]

#: The kinds of entry: a step, a note, the original's record(), a compaction, the stop, and
#: the summary compact() leaves in place of older entries.
KINDS = ("step", "note", "record", "compaction", "stop", "summary")
#: The outcomes of a step entry.
OUTCOMES = ("ok", "error", "denied", "not_run")

_ARGS_CHARS = 120
_RESULT_CHARS = 80
_TEXT_CHARS = 300
_NOT_RUN = "not run: "


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of a :class:`SessionLog`.

    The first eight fields are the original's (``LogEntry(step, theory, tool, reasoning,
    entities_seen, findings, highlights, recall_key)``, what :meth:`SessionLog.record`
    makes); a run's entries use ``kind``, ``args``, ``outcome`` and ``detail``.

    Attributes:
        step: the step's number (for a note, the last step recorded before it; 0: before
            the first).
        theory: the working theory (``record`` entries).
        tool: the tool called.
        reasoning: for a step, the text the model wrote with the turn's calls (on the
            turn's first step only, and only when it wrote any); for a record, its reason.
        entities_seen, findings, highlights, recall_key: the original's record fields.
        kind: one of ``step``, ``note``, ``record``, ``compaction``, ``stop``, ``summary``.
        args: a step's arguments, summarised (``name='Alice', n=3``).
        outcome: a step's ``ok``, ``error``, ``denied`` or ``not_run``; the stop's reason.
        detail: a step's result summary or error (``validation: ...``), a note's text, a
            compaction's or the stop's description, a summary's text.
    """

    step: int
    theory: str = ""
    tool: str = ""
    reasoning: str = ""
    entities_seen: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    highlights: tuple[str, ...] = ()
    recall_key: str = ""
    kind: str = "record"
    args: str = ""
    outcome: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        if type(self.step) is not int or self.step < 0:
            raise ConfigurationError(f"LogEntry.step must be an int >= 0, got {self.step!r}")
        if self.kind not in KINDS:
            raise ConfigurationError(
                f"LogEntry.kind must be one of {', '.join(KINDS)}, got {self.kind!r}"
            )
        for name in ("entities_seen", "findings", "highlights"):
            value = getattr(self, name)
            if not isinstance(value, tuple):  # the original passed lists
                object.__setattr__(self, name, tuple(value))

    @property
    def ok(self) -> bool:
        """True unless this is a step that did not succeed."""
        return self.kind != "step" or self.outcome == "ok"

    def render(self, *, highlights_label: str = "highlights") -> str:
        """This entry as one line (a step with the model's text, or a record: more)."""
        kind = self.kind
        if kind == "step":
            head = f"#{self.step} {'✓' if self.outcome == 'ok' else '✗'} {self.tool}({self.args})"
            tail = {"error": "ERROR: ", "denied": "DENIED: ", "not_run": "NOT RUN: "}.get(
                self.outcome, ""
            ) + self.detail
            line = f"{head} → {tail}" if tail else head
            return f"model: {self.reasoning}\n{line}" if self.reasoning else line
        if kind == "note":
            return f"  note: {self.detail}"
        if kind == "compaction":
            return f"compaction before step {self.step}: {self.detail}"
        if kind == "stop":
            return f"stopped: {self.outcome}" + (f" ({self.detail})" if self.detail else "")
        if kind == "summary":
            return self.detail
        parts = [f"  S{self.step}: {self.tool} — {self.reasoning[:80]}"]
        if self.entities_seen:
            parts.append(f"    entities: {', '.join(self.entities_seen[:8])}")
        if self.highlights:
            parts.append(f"    {highlights_label}: {', '.join(self.highlights)}")
        parts.extend(f"    → {finding}" for finding in self.findings[:2])
        if self.recall_key:
            parts.append(f"    [recall: {self.recall_key}]")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field that is set (``step`` and ``kind`` always)."""
        out: dict[str, Any] = {"step": self.step, "kind": self.kind}
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = value
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "entry") -> LogEntry:
        """An entry from :meth:`to_dict`'s form, every field checked.

        Raises:
            ConfigurationError: a field is missing or has the wrong type; the message names
                it (``where.field``).
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{where}: a log entry is an object, got {data!r}")
        unknown = set(data) - {"step", "kind", *_TEXT_FIELDS, *_LIST_FIELDS}
        if unknown:
            raise ConfigurationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {"step": data.get("step"), "kind": data.get("kind", "record")}
        for name in _TEXT_FIELDS:
            value = data.get(name, "")
            if not isinstance(value, str):
                raise ConfigurationError(f"{where}.{name}: expected a string, got {value!r}")
            values[name] = value
        for name in _LIST_FIELDS:
            value = data.get(name, [])
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigurationError(f"{where}.{name}: expected strings, got {value!r}")
            values[name] = tuple(value)
        try:
            return cls(**values)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None


_TEXT_FIELDS = ("theory", "tool", "reasoning", "recall_key", "args", "outcome", "detail")
_LIST_FIELDS = ("entities_seen", "findings", "highlights")


class SessionLog:
    """A compact, readable log of a run: one :class:`LogEntry` per step, plus the model's
    text, compactions, notes and the stop reason.

    Example::

        log = SessionLog()
        for step in composable_loop(llm, tools=tools, task=task, session_log=log):
            pass
        print(log.render())              # every entry
        print(log.render_compact(max_chars=500))   # the newest entries, in 500 characters

    Args:
        entity_formatter: the original's: turns the set of all entities into the lines
            :meth:`render` shows for them (default: a sorted sample).
        title: a heading for :meth:`render` (none by default).
        highlights_label: how :meth:`render` labels a record's highlights.

    Attributes:
        entries: the entries, oldest first.
        current_theory: the last theory a :meth:`record` call gave.
    """

    def __init__(
        self,
        *,
        entity_formatter: Callable[[set[str]], list[str]] | None = None,
        title: str = "",
        highlights_label: str = "highlights",
    ) -> None:
        self.entries: list[LogEntry] = []
        self.current_theory = ""
        self._entity_formatter = entity_formatter
        self._title = title
        self._highlights_label = highlights_label
        self._redactor: TextRedactor | None = None
        self._key: tuple[int, dict[Any, Any]] | None = None
        self._reasoning = ""  # the model text of the step before, to show it when it changes

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self.entries)

    def __repr__(self) -> str:
        return f"<SessionLog {len(self.entries)} entries>"

    # -- adding entries -------------------------------------------------------------------------

    @property
    def last_step(self) -> int:
        """The number of the last step the log holds (0: none)."""
        for entry in reversed(self.entries):
            if entry.kind in ("step", "record"):
                return entry.step
        return 0

    def note(self, text: str, *, step: int | None = None) -> LogEntry:
        """Add a note (redacted); ``step`` defaults to the last step logged. Returns it."""
        if not isinstance(text, str):
            raise ConfigurationError(f"SessionLog.note takes a str, got {type(text).__name__}")
        number = self.last_step if step is None else step
        entry = LogEntry(number, kind="note", detail=self._text(text, _TEXT_CHARS))
        self.entries.append(entry)
        return entry

    def record(
        self,
        step: int,
        theory: str,
        tool: str,
        reasoning: str,
        entities: list[str] | None = None,
        findings: list[str] | None = None,
        highlights: list[str] | None = None,
        recall_key: str = "",
    ) -> None:
        """Record one step the original's way (``theory`` persists while later ones are
        blank); every text is redacted."""
        if theory:
            self.current_theory = self._text(theory, _TEXT_CHARS)
        redact = self._text
        self.entries.append(
            LogEntry(
                step,
                self.current_theory,
                redact(tool, _TEXT_CHARS),
                redact(reasoning, _TEXT_CHARS),
                tuple(redact(e, _TEXT_CHARS) for e in entities or ()),
                tuple(redact(f, _TEXT_CHARS) for f in findings or ()),
                tuple(redact(h, _TEXT_CHARS) for h in highlights or ()),
                redact(recall_key, _TEXT_CHARS),
            )
        )

    def add_step(self, step: Step) -> LogEntry:
        """Add the entry of a recorded :class:`~looplet.types.Step` (what the loop does)."""
        call, result = step.tool_call, step.tool_result
        text = call.reasoning
        shown = text if text != self._reasoning else ""
        self._reasoning = text
        if result.error is None:
            outcome, detail = "ok", _result_summary(result.data)
        else:
            kind, message = result.error_kind, result.error_message or ""
            if kind is ErrorKind.PERMISSION_DENIED:
                outcome, detail = "denied", message
            elif kind is ErrorKind.CANCELLED and message.startswith(_NOT_RUN):
                outcome, detail = "not_run", message[len(_NOT_RUN) :]
            else:
                outcome, detail = "error", f"{kind}: {message}"
        tool, args, detail, shown = self._texts(
            (call.tool, _RESULT_CHARS),
            (result.args_summary or call.args_summary(), _ARGS_CHARS),
            (detail, _RESULT_CHARS),
            (shown, _TEXT_CHARS),
        )
        entry = LogEntry(
            step.number,
            tool=tool,
            reasoning=shown,
            kind="step",
            args=args,
            outcome=outcome,
            detail=detail,
        )
        self.entries.append(entry)
        return entry

    def add_compaction(self, record: Any) -> LogEntry:
        """Add the entry of a context compaction (a :class:`~looplet.compact.CompactionRecord`)."""
        detail = (
            f"{record.trigger}, {record.reason}: ~{record.before_tokens} → ~{record.after_tokens}"
            f" tokens ({record.before_messages} → {record.after_messages} messages)"
        )
        entry = LogEntry(record.step, kind="compaction", detail=self._text(detail, _TEXT_CHARS))
        self.entries.append(entry)
        return entry

    def add_stop(self, trajectory: Trajectory) -> LogEntry | None:
        """Add the entry of the run's end: its stop reason and detail (the final text)."""
        if trajectory.stop_reason is None:
            return None
        entry = LogEntry(
            len(trajectory.steps),
            kind="stop",
            outcome=trajectory.stop_reason.value,
            detail=self._text(trajectory.stop_detail, _TEXT_CHARS),
        )
        self.entries.append(entry)
        return entry

    def _text(self, text: str, limit: int) -> str:
        """``text`` redacted, then cut to ``limit`` (redacted first, so that no secret is
        cut into a fragment the redactor no longer recognises)."""
        if not text:
            return ""
        return _clip(self._redaction()(text[: 4 * limit]), limit)

    def _texts(self, *texts: tuple[str, int]) -> list[str]:
        """Each ``(text, limit)`` as :meth:`_text` makes it, redacted in one pass (a step's
        fields: the redactor's set-up and first scan are paid once)."""
        joined = "\x00".join(text[: 4 * limit] for text, limit in texts)
        parts = self._redaction()(joined).split("\x00")
        if len(parts) != len(texts):  # a text held the separator: one at a time
            return [self._text(text, limit) for text, limit in texts]
        return [
            _clip(part, limit) if part else ""
            for part, (_, limit) in zip(parts, texts, strict=True)
        ]

    def _redaction(self) -> TextRedactor:
        # A TextRedactor reads the credentials in use when made (~0.2 ms): keep one while
        # they stay the same (those remembered, and the environment's).
        from looplet._redact import TextRedactor, credentials_generation

        environ = getattr(os.environ, "_data", None)  # CPython's own dict: copied in ~1 µs
        key = None if environ is None else (credentials_generation(), dict(environ))
        if self._redactor is None or key is None or key != self._key:
            self._redactor, self._key = TextRedactor(), key
        return self._redactor

    # -- reading ---------------------------------------------------------------------------------

    def all_entities(self) -> set[str]:
        """Every entity and highlight the records name."""
        found: set[str] = set()
        for entry in self.entries:
            found.update(entry.entities_seen)
            found.update(entry.highlights)
        return found

    def render(self) -> str:
        """Every entry, one per line (a step with the model's text: two), oldest first."""
        lines = [self._title] if self._title and self.entries else []
        if self.current_theory:
            lines.append(f"Current theory: {self.current_theory}")
        entities = self.all_entities()
        if entities and self._entity_formatter is not None:
            lines.extend(self._entity_formatter(entities))
        elif entities:
            lines.append(f"Entities discovered: {', '.join(sorted(entities)[:20])}")
        label = self._highlights_label
        lines.extend(entry.render(highlights_label=label) for entry in self.entries)
        return "\n".join(lines)

    def render_compact(
        self, entries: Iterable[LogEntry] | None = None, *, max_chars: int = 2000
    ) -> str:
        """At most ``max_chars`` characters: the newest entries whole, the older ones as a
        first line counting them and the tools they called. No model call.

        ``entries``: the entries to render (default: all), as in the original.
        """
        if type(max_chars) is not int or max_chars < 40:
            raise ConfigurationError(
                f"render_compact: max_chars must be an int >= 40, got {max_chars!r}"
            )
        chosen = list(self.entries if entries is None else entries)
        label = self._highlights_label
        lines = [e.render(highlights_label=label) for e in chosen]
        kept: list[str] = []
        size = 0
        for line in reversed(lines):
            if size + len(line) + 1 > max_chars:
                break
            kept.append(line)
            size += len(line) + 1
        kept.reverse()
        dropped = len(chosen) - len(kept)
        if not dropped:
            return "\n".join(kept)
        if not kept:  # the newest entry alone is too long: it, cut short
            return _cut(lines[-1], max_chars)
        # A first line for the entries left out: room is made for it by leaving out more old
        # entries (never the newest); if it does not fit even so, a shorter one, or none.
        while True:
            head = _earlier(chosen[:dropped])
            if len(head) + size <= max_chars:
                return "\n".join([head, *kept])
            if len(kept) == 1:
                break
            size -= len(kept.pop(0)) + 1
            dropped += 1
        head = f"[{dropped} earlier entries]"
        return "\n".join([head, *kept] if len(head) + size <= max_chars else kept)

    def compact(
        self,
        max_entries_to_keep: int = 5,
        must_preserve: Callable[[LogEntry], bool] | None = None,
    ) -> bool:
        """Replace all but the newest ``max_entries_to_keep`` entries with one summary entry
        (those ``must_preserve`` accepts are kept too). True when something was replaced."""
        if type(max_entries_to_keep) is not int or max_entries_to_keep < 0:
            raise ConfigurationError(
                f"compact: max_entries_to_keep must be an int >= 0, got {max_entries_to_keep!r}"
            )
        if len(self.entries) <= max_entries_to_keep:
            return False
        old = self.entries[: len(self.entries) - max_entries_to_keep]
        keep = [e for e in old if must_preserve is not None and must_preserve(e)]
        kept = {id(e) for e in keep}
        folded = [e for e in old if id(e) not in kept]
        if not folded:
            return False
        summary = LogEntry(folded[-1].step, kind="summary", detail=_earlier(folded))
        # In place: a checkpoint journal sees the list it tracks rewritten.
        self.entries[:] = [summary, *keep, *self.entries[len(old) :]]
        return True

    # -- its JSON form -----------------------------------------------------------------------------

    def to_list(self) -> list[dict[str, Any]]:
        """The entries in their JSON form (:meth:`LogEntry.to_dict`)."""
        return [entry.to_dict() for entry in self.entries]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> SessionLog:
        """A log from :meth:`to_list`'s form, each entry checked.

        Raises:
            ConfigurationError: an entry is malformed (the message names it: ``entries[3].step``).
        """
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise ConfigurationError(
                "SessionLog.from_list takes a list of entries (what to_list() returns), not "
                f"{type(items).__name__}"
            )
        log = cls()
        log.restore([LogEntry.from_dict(item, f"entries[{i}]") for i, item in enumerate(items)])
        return log

    def restore(self, entries: Iterable[LogEntry]) -> None:
        """Replace the entries with ``entries`` (what a resumed run does with its checkpoint's)."""
        self.entries[:] = entries
        self._reasoning = ""
        for entry in self.entries:
            if entry.kind == "record" and entry.theory:
                self.current_theory = entry.theory
            if entry.kind == "step" and entry.reasoning:
                self._reasoning = entry.reasoning

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory) -> SessionLog:
        """The log of a recorded run (finished, or as far as a checkpoint goes): what the
        loop writes live, less notes, which only a live log or a checkpoint has."""
        log = cls()
        compactions = sorted((_as_record(r) for r in trajectory.compactions), key=lambda r: r.step)
        index = 0
        for step in trajectory.steps:
            while index < len(compactions) and compactions[index].step <= step.number:
                log.add_compaction(compactions[index])
                index += 1
            log.add_step(step)
        for record in compactions[index:]:
            log.add_compaction(record)
        log.add_stop(trajectory)
        return log


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _earlier(entries: list[LogEntry]) -> str:
    """One line for entries left out: how many, their steps, the tools they called."""
    counts: dict[str, int] = {}
    for entry in entries:
        if entry.kind in ("step", "record") and entry.tool:
            counts[entry.tool] = counts.get(entry.tool, 0) + 1
    steps = [e.step for e in entries if e.step]
    span = f", steps {min(steps)}-{max(steps)}" if steps else ""
    tools = ", ".join(f"{t}×{n}" for t, n in sorted(counts.items(), key=lambda x: -x[1]))
    return f"[{len(entries)} earlier entries{span}" + (f"; tools: {tools}]" if tools else "]")


def _result_summary(data: Any) -> str:
    # As Step.pretty() summarises a result, so that a log's step lines read like its.
    if data is None:
        return ""
    if isinstance(data, list | tuple):
        return f"{len(data)} items"
    if isinstance(data, Mapping):
        return f"{len(data)} keys"
    return str(data)[: 4 * _RESULT_CHARS]


def _as_record(record: Any) -> Any:
    if isinstance(record, Mapping):  # a checkpoint keeps compactions in their JSON form
        from looplet.record.codec import decode_compaction

        return decode_compaction(dict(record), "compaction")
    return record


# -- the loop's side ----------------------------------------------------------------------------


class SessionLogHook:
    """What ``composable_loop(..., session_log=log)`` adds to the run's hooks: it writes
    each step, compaction and the stop to ``log`` (an ``on_event`` hook, run after the
    caller's hooks)."""

    __slots__ = ("log",)

    def __init__(self, log: SessionLog) -> None:
        self.log = log

    def on_event(self, event: LoopEvent) -> None:
        """Write the entry of a ``step``, ``compaction`` or ``loop_end`` event."""
        kind = event.kind
        if kind == "step":
            self.log.add_step(event.data["step"])
        elif kind == "compaction":
            self.log.add_compaction(event.data["record"])
        elif kind == "loop_end":
            self.log.add_stop(event.data["trajectory"])


def attach_session_log(run: RunState, log: SessionLog, need: str) -> None:
    """Keep ``log`` up to date during ``run`` (``need``: ``"sync"`` or ``"async"``)."""
    if not isinstance(log, SessionLog):
        raise ConfigurationError(
            f"session_log= takes a looplet.session.SessionLog, got {type(log).__name__}: "
            "session_log=SessionLog()"
        )
    from looplet.loop import add_run_hooks

    add_run_hooks(run, (SessionLogHook(log),), need)


def log_of(run: RunState) -> SessionLog | None:
    """The session log ``run`` writes to, if it has one."""
    for hook in run.hooks.hooks:
        if type(hook) is SessionLogHook:
            return hook.log
    return None


def restore_session_log(run: RunState, checkpoint: Checkpoint) -> None:
    """On resume: the run's log (one is attached when only the checkpoint has one) takes the
    checkpoint's entries, or those of its steps when it kept none."""
    log = log_of(run)
    if log is None:
        if not checkpoint.session_log_data:
            return
        log = SessionLog()
        attach_session_log(run, log, "async" if run.hooks.any_async else "sync")
    log.restore(checkpoint.session_log.entries)
    # Whether the next step's model text is new: as the log of the whole run would see it.
    log._reasoning = checkpoint.steps[-1].tool_call.reasoning if checkpoint.steps else ""


def decode_entry(value: Any, where: str) -> dict[str, Any]:
    """A checkpoint's log entry, checked (its JSON form), or a ``DecodeError``."""
    from looplet.record.codec import DecodeError

    try:
        return LogEntry.from_dict(value, where).to_dict()
    except ConfigurationError as exc:
        raise DecodeError(where, str(exc).removeprefix(f"{where}: ")) from None
