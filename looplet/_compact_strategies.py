"""The built-in compaction services: :class:`TruncateCompact`, :class:`SummarizeCompact` and
:class:`PruneCompact` (import them from :mod:`looplet.compact`).

Each one measures with the budget it is given and removes only as much as it needs to reach
``budget.target_tokens``, oldest first, never touching the system prompt, the task, or the
newest ``keep_recent`` turns (results, for pruning). A *turn* is an assistant message with
every tool message answering its calls, plus any user messages (hook context) just before
it; turns are dropped whole, so no tool message or tool call is ever left without its pair.
What was dropped is stated in a note (a user message starting with
:data:`~looplet.compact.NOTE_PREFIX`) right after the task; a later compaction folds earlier
notes into its own, so they never pile up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, final

from looplet.backends.base import LLMRequest
from looplet.compact import NOTE_PREFIX, CompactOutcome, ContextBudget, _arguments_text
from looplet.errors import ConfigurationError, LLMError
from looplet.messages import Message

__all__ = ["PruneCompact", "SummarizeCompact", "TruncateCompact", "split_conversation"]

SUMMARY_PROMPT = (
    "You compress the earlier part of an AI agent's conversation so that the agent can "
    "continue its task without it. Write a short summary under four headings: Goal, "
    "Findings, Open questions, Recent decisions. Copy every identifier exactly as written: "
    "ids, file paths, URLs, numbers, amounts, dates and names; never round, paraphrase or "
    "drop one the agent may need. State only what the transcript says."
)


class Parts:
    """A conversation cut into what compaction keeps, what it folds, and what it may drop.

    Attributes:
        head: the leading system messages and the task message: always kept.
        notes: earlier compaction notes right after the head.
        turns: the rest, one list of messages per turn, oldest first.
    """

    __slots__ = ("head", "notes", "turns")

    def __init__(
        self, head: list[Message], notes: list[Message], turns: list[list[Message]]
    ) -> None:
        self.head = head
        self.notes = notes
        self.turns = turns


def split_conversation(messages: Sequence[Message]) -> Parts:
    """Cut ``messages`` into head, earlier compaction notes, and whole turns."""
    end = len(messages)
    i = 0
    while i < end and messages[i].role == "system":
        i += 1
    if i < end and messages[i].role == "user" and not _is_note(messages[i]):
        i += 1
    j = i
    while j < end and _is_note(messages[j]):
        j += 1
    turns: list[list[Message]] = []
    for message in messages[j:]:
        if turns and not _opens_turn(turns[-1][-1], message):
            turns[-1].append(message)
        else:
            turns.append([message])
    return Parts(list(messages[:i]), list(messages[i:j]), turns)


@final
@dataclass(frozen=True, slots=True)
class TruncateCompact:
    """Drops the oldest turns, and says so in a short note; no model call.

    Example::

        ContextBudget(max_tokens=16_000, strategy=TruncateCompact(keep_recent=4))

    Attributes:
        keep_recent: the newest turns never dropped (at least 1: the model must see the
            result of its last call).
    """

    keep_recent: int = 2

    def __post_init__(self) -> None:
        _check_count(self, "keep_recent", self.keep_recent, 1)

    def compact(
        self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any = None
    ) -> CompactOutcome:
        """Drop the oldest turns until the conversation fits ``budget.target_tokens``."""
        parts = split_conversation(messages)
        before = budget.count(messages)
        summaries = [n for n in parts.notes if _is_summary(n)]
        fixed = budget.count(parts.head) + budget.count(summaries)
        fixed += budget.count_message(_drop_note(len(messages)))
        drop = _turns_to_drop(parts.turns, budget, fixed, self.keep_recent)
        if drop == 0:
            return _unchanged(messages, before, "truncate: no turn old enough to drop")
        dropped = sum(len(turn) for turn in parts.turns[:drop])
        earlier = _noted_count(n for n in parts.notes if not _is_summary(n))
        out = [*parts.head, *summaries, _drop_note(dropped + earlier)]
        out.extend(m for turn in parts.turns[drop:] for m in turn)
        reason = f"truncate: dropped {drop} turns ({dropped} messages)"
        return CompactOutcome(out, reason, before, budget.count(out))


@final
@dataclass(frozen=True, slots=True)
class SummarizeCompact:
    """Replaces the oldest turns with a summary written by the model in one call.

    The summary covers goal, findings, open questions and recent decisions, and the model
    is told to keep identifiers (ids, paths, numbers, names) verbatim. An earlier summary is
    folded into the new one. If the call fails or returns nothing, it truncates instead
    (as :class:`TruncateCompact`), and says so in the outcome's reason.

    Attributes:
        keep_recent: the newest turns never summarised away (at least 1).
        max_summary_tokens: the summary's output limit, also reserved in the budget.
        max_message_chars: how much of each message the model is shown.
    """

    keep_recent: int = 2
    max_summary_tokens: int = 800
    max_message_chars: int = 2_000

    def __post_init__(self) -> None:
        _check_count(self, "keep_recent", self.keep_recent, 1)
        _check_count(self, "max_summary_tokens", self.max_summary_tokens, 1)
        _check_count(self, "max_message_chars", self.max_message_chars, 1)

    def compact(
        self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any
    ) -> CompactOutcome:
        """Summarise the oldest turns so the conversation fits ``budget.target_tokens``."""
        parts = split_conversation(messages)
        before = budget.count(messages)
        fixed = budget.count(parts.head) + self.max_summary_tokens
        fixed += budget.count_message(_summary_note(len(messages), ""))
        drop = _turns_to_drop(parts.turns, budget, fixed, self.keep_recent)
        if drop == 0:
            return _unchanged(messages, before, "summarize: no turn old enough to summarise")
        if llm is None:
            return self._truncate(messages, budget, "no model to summarise with", 0)
        request = self.summary_request(parts, drop, budget)
        try:
            reply = llm.complete(request)
        except LLMError as err:
            return self._truncate(messages, budget, f"the summary call failed: {err}", 1)
        summary = reply.text.strip()
        if not summary:
            return self._truncate(messages, budget, "the model's summary was empty", 1)
        dropped = sum(len(turn) for turn in parts.turns[:drop])
        out = [*parts.head, _summary_note(dropped + _noted_count(parts.notes), summary)]
        out.extend(m for turn in parts.turns[drop:] for m in turn)
        reason = f"summarize: {drop} turns ({dropped} messages) summarised"
        return CompactOutcome(out, reason, before, budget.count(out), llm_calls=1)

    def summary_request(self, parts: Parts, drop: int, budget: ContextBudget) -> LLMRequest:
        """The request asking for the summary of earlier notes and the oldest ``drop`` turns.

        The transcript is cut, oldest lines first, so the request stays within the budget.
        """
        task = "\n\n".join(m.content for m in parts.head if m.role == "user")
        lines = [self._line(m) for turn in parts.turns[:drop] for m in turn]
        carried = [self._line(m) for m in parts.notes]
        room = budget.max_tokens - self.max_summary_tokens - budget.estimator(task)
        room -= budget.estimator(SUMMARY_PROMPT) + sum(map(budget.estimator, carried))
        kept: list[str] = []
        for line in reversed(lines):
            room -= budget.estimator(line)
            if room < 0 and kept:
                kept.append(f"[... {len(lines) - len(kept)} older messages left out]")
                break
            kept.append(line)
        transcript = "\n".join([*carried, *reversed(kept)])
        text = f"The agent's task:\n{task}\n\nThe conversation to summarise:\n{transcript}"
        prompt = (Message.system(SUMMARY_PROMPT), Message.user(text))
        return LLMRequest(prompt, (), self.max_summary_tokens, 0.0)

    def _line(self, message: Message) -> str:
        text = message.content
        if len(text) > self.max_message_chars:
            cut = len(text) - self.max_message_chars
            text = text[: self.max_message_chars] + f" [... {cut} more characters]"
        if message.role == "tool":
            failed = " (failed)" if message.is_error else ""
            return f"[result of {message.name}{failed}] {text}"
        calls = "".join(f" -> {c.tool}({_arguments_text(c)})" for c in message.tool_calls)
        return f"[{message.role}] {text}{calls}"

    def _truncate(
        self, messages: Sequence[Message], budget: ContextBudget, why: str, calls: int
    ) -> CompactOutcome:
        fallback = TruncateCompact(self.keep_recent).compact(messages, budget=budget)
        reason = f"summarize: {why}; {fallback.reason}"
        return dataclasses.replace(fallback, reason=reason, llm_calls=calls)


@final
@dataclass(frozen=True, slots=True)
class PruneCompact:
    """Replaces the content of old tool messages with a short placeholder; no model call.

    Called ``PruneToolResults`` in the original looplet: that name still imports from
    :mod:`looplet.compact`, with a ``DeprecationWarning``.

    The placeholder names the tool and the size cleared, so the model knows to call the tool
    again if it needs the output. The messages themselves stay, so every turn stays whole.

    Attributes:
        keep_recent: the newest results (of the tools pruned) left as they are.
        tools: the names of the tools whose results may be cleared; ``None``: all.
    """

    keep_recent: int = 3
    tools: Collection[str] | None = None

    def __post_init__(self) -> None:
        _check_count(self, "keep_recent", self.keep_recent, 0)
        if self.tools is not None:
            if isinstance(self.tools, str) or not all(isinstance(t, str) for t in self.tools):
                raise ConfigurationError(
                    f"PruneCompact(tools=...) must be a collection of tool names, got "
                    f"{self.tools!r}; e.g. tools=['search', 'read_file']"
                )
            object.__setattr__(self, "tools", frozenset(self.tools))

    def compact(
        self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any = None
    ) -> CompactOutcome:
        """Clear the oldest results until the conversation fits ``budget.target_tokens``."""
        out = list(messages)
        before = size = budget.count(out)
        prunable = [i for i, m in enumerate(out) if self._prunable(m)]
        cleared = 0
        for i in prunable[: max(0, len(prunable) - self.keep_recent)]:
            if size <= budget.target_tokens:
                break
            old = out[i]
            placeholder = (
                f"{NOTE_PREFIX} The output of {old.name or 'this tool'} ({len(old.content)} "
                "characters) was cleared to save context; call the tool again if you need it."
            )
            if len(placeholder) >= len(old.content):
                continue
            out[i] = dataclasses.replace(old, content=placeholder)
            size += budget.count_message(out[i]) - budget.count_message(old)
            cleared += 1
        if not cleared:
            return _unchanged(messages, before, "prune: no old tool result worth clearing")
        return CompactOutcome(out, f"prune: cleared {cleared} tool results", before, size)

    def _prunable(self, message: Message) -> bool:
        return (
            message.role == "tool"
            and (self.tools is None or message.name in self.tools)
            and not message.content.startswith(NOTE_PREFIX)
        )


# -- helpers ------------------------------------------------------------------------------------


def _turns_to_drop(
    turns: list[list[Message]], budget: ContextBudget, fixed: int, keep_recent: int
) -> int:
    """How many of the oldest turns to drop so that ``fixed`` plus the rest fits the target."""
    sizes = [budget.count(turn) for turn in turns]
    total = fixed + sum(sizes)
    most = max(0, len(turns) - keep_recent)
    drop = 0
    while drop < most and total > budget.target_tokens:
        total -= sizes[drop]
        drop += 1
    return drop


def _opens_turn(last: Message, message: Message) -> bool:
    # A tool message belongs to the turn of its call; user context (from hooks) belongs to
    # the turn it comes before, so a message after the model's output opens a turn.
    return message.role != "tool" and last.role in ("assistant", "tool")


def _is_note(message: Message) -> bool:
    return message.role == "user" and message.content.startswith(NOTE_PREFIX)


def _is_summary(message: Message) -> bool:
    return message.content.startswith(f"{NOTE_PREFIX} Summary of ")


def _drop_note(count: int) -> Message:
    return Message.user(
        f"{NOTE_PREFIX} {count} earlier messages of this conversation were dropped to stay "
        "within the context budget. The tool calls in them did run; call a tool again only "
        "if you need its result."
    )


def _summary_note(count: int, summary: str) -> Message:
    return Message.user(
        f"{NOTE_PREFIX} Summary of {count} earlier messages, which were dropped to stay "
        f"within the context budget:\n{summary}"
    )


def _noted_count(notes: Any) -> int:
    """How many messages earlier notes say were dropped."""
    import re

    total = 0
    for note in notes:
        found = re.match(rf"{re.escape(NOTE_PREFIX)} (?:Summary of )?(\d+) earlier", note.content)
        if found:
            total += int(found.group(1))
    return total


def _unchanged(messages: Sequence[Message], before: int, reason: str) -> CompactOutcome:
    return CompactOutcome(list(messages), reason, before, before)


def _check_count(owner: object, name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(
            f"{type(owner).__name__}.{name} must be an int >= {least}, got {value!r}"
        )
