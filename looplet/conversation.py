"""Conversations: a chat of several turns on the same loop, which can be forked and saved.

A :class:`Conversation` holds the messages the model has seen so far (the system prompt
first) and the record of every turn (each a :class:`~looplet.types.Trajectory`). A turn is
one run of the loop::

    conv = Conversation()
    list(composable_loop(llm=llm, tools=tools, task="First question", conversation=conv))
    list(composable_loop(llm=llm, tools=tools, task="Next question", conversation=conv))

The second run starts from the conversation's messages plus the new user message
(``task``, rendered by ``LoopConfig.render_task``): its trajectory is the turn's own (its
steps, budget, usage, stop reason), and its ``messages`` are the whole conversation. When
the run ends, for any reason, the conversation takes the run's messages.

The rules, each tested (tests/test_conversation.py):

* **A turn starts from the conversation as it is when the run starts** (its first
  iteration), not when ``composable_loop`` is called. Two turns of one conversation cannot
  run at the same time: :meth:`Conversation.fork` it to branch.
* **The system prompt.** The conversation's own stays, unless the turn's config sets one
  (``LoopConfig.system_prompt`` not ``None``, or ``system_prompt=``): then that one
  replaces it, from this turn on. A caller who sets a prompt means it; one who sets none
  keeps the conversation as it was, rather than getting the default prompt back.
* **A turn that fails** (a provider error, a raising hook, a cancelled or abandoned run)
  keeps everything it recorded: the user message, each model turn and tool result up to
  the failure. A tool call of the last model turn that has no recorded result (it never
  ran, or its step was never recorded) gets one in the conversation, an error of kind
  ``cancelled`` saying so, because every provider refuses a call without its result;
  the turn's trajectory stays as it happened. Nothing is lost; ``truncate()`` drops the
  turn if it should not count. A run that is never iterated leaves the conversation
  unchanged.
* ``task=None`` adds no user message: the turn goes on from where the last one stopped
  (after ``max_steps``, say).
* **Checkpoints**: a turn run with ``checkpoint=store`` saves the whole conversation (the
  turn's messages are all of it); resuming with ``resume=store, conversation=conv`` goes
  on with the checkpoint's messages, and the conversation takes them at the end.

A conversation saves to a JSON file (:meth:`Conversation.save`, atomic) whose shape is
``{"format": "looplet-conversation/1", "base": [...], "messages": [...], "turns": [...]}``:
messages and turns in the run record's form (:mod:`looplet.record.codec`). A turn whose
messages are the start of the conversation's (the usual case) stores their count
(``messages_prefix``) instead of them, so the file grows with the conversation, not with
its square. :meth:`Conversation.load` checks every field and names a bad one in a
:class:`~looplet.record.codec.DecodeError`; it also reads a recorded run's
``trajectory.json`` (``looplet-record/1``) as a one-turn conversation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from looplet.errors import ConfigurationError
from looplet.messages import Message, render_task
from looplet.types import Trajectory

if TYPE_CHECKING:
    import os

    from looplet.config import LoopConfig
    from looplet.record.codec import DecodeError
    from looplet.run_state import RunState

__all__ = ["FORMAT", "Conversation", "Message", "continue_conversation"]

#: The format of a saved conversation (:meth:`Conversation.to_dict`).
FORMAT: Final = "looplet-conversation/1"
_FAMILY = "looplet-conversation"


class Conversation:
    """The messages of a chat with the model, and the record of each turn of it.

    ``Conversation()`` is empty: its first turn lays down the system prompt and the task
    as any run does. ``Conversation(messages)`` starts from given messages (a system
    message first), e.g. a few worked examples. Pass it to ``composable_loop(...,
    conversation=conv)`` (or the async loop) to run a turn.

    Example::

        conv = Conversation()
        list(composable_loop(llm=llm, tools=tools, task="Hi", conversation=conv))
        alt = conv.fork()  # an independent branch
        conv.save("chat.json")
        assert Conversation.load("chat.json").messages == conv.messages

    Raises:
        ConfigurationError: ``messages`` holds something that is not a ``Message``, or
            does not start with the system message.
    """

    __slots__ = ("_base", "_messages", "_running", "_turns", "_version")

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
            raise ConfigurationError(
                "Conversation(messages) takes a list of looplet Messages, the system message "
                f"first, not {type(messages).__name__}: Conversation([Message.system(...)])"
            )
        base = tuple(messages)
        _check_messages(base, "Conversation(messages)")
        self._base = base
        self._messages: list[Message] = list(base)
        self._turns: list[Trajectory] = []
        #: Changes with every turn taken and every truncate (a turn started on an older
        #: conversation takes the newer one).
        self._version = 0
        #: Whether a turn is running (between its first iteration and its end).
        self._running = False

    @classmethod
    def from_run(cls, run: Trajectory | Any) -> Conversation:
        """A conversation whose first turn is a finished run, to chat on from it.

        Args:
            run: the run's :class:`~looplet.types.Trajectory`, or the ``LoopRun`` /
                ``AsyncLoopRun`` that ran it.

        Raises:
            ConfigurationError: ``run`` is neither, the run has not ended, or its
                trajectory holds no messages (a record written without them).
        """
        trajectory = run if isinstance(run, Trajectory) else getattr(run, "trajectory", None)
        if not isinstance(trajectory, Trajectory):
            raise ConfigurationError(
                "Conversation.from_run takes a Trajectory or the LoopRun that made it, got "
                f"{type(run).__name__}."
            )
        if trajectory.stop_reason is None:
            raise ConfigurationError(
                "Conversation.from_run: the run has not ended (it has no stop reason); "
                "iterate it to its end first, or resume it from its checkpoint."
            )
        _check_messages(trajectory.messages, "the run's messages", empty="a run's")
        conversation = cls()
        conversation._take(trajectory)
        return conversation

    # -- what it holds -----------------------------------------------------------------------

    @property
    def messages(self) -> tuple[Message, ...]:
        """The conversation the next turn starts from, system prompt first."""
        return tuple(self._messages)

    @property
    def turns(self) -> tuple[Trajectory, ...]:
        """The record of each turn taken, in order (each one's ``messages`` is the whole
        conversation as that turn left it)."""
        return tuple(self._turns)

    @property
    def system_prompt(self) -> str | None:
        """The system message's text (``None`` for an empty conversation)."""
        messages = self._messages
        return messages[0].content if messages and messages[0].role == "system" else None

    @property
    def last_text(self) -> str:
        """The text of the model's latest reply that had text ("" if none had)."""
        for message in reversed(self._messages):
            if message.role == "assistant" and message.content:
                return message.content
        return ""

    def __repr__(self) -> str:
        return f"Conversation({len(self._turns)} turns, {len(self._messages)} messages)"

    # -- branching ---------------------------------------------------------------------------

    def fork(self, *, turns: int | None = None) -> Conversation:
        """An independent copy: a turn taken on either one does not change the other.

        Args:
            turns: copy the conversation as it was after its first ``turns`` turns (``0``:
                as it started) instead of as it is now, to try a turn again differently.

        The turns' records are shared, not copied: they are finished runs that neither
        conversation changes. Messages are immutable values.
        """
        copy = Conversation(self._base)
        if turns is None:
            copy._messages = list(self._messages)
            copy._turns = list(self._turns)
        else:
            copy._messages, copy._turns = self._rewound(turns, "fork")
        return copy

    def truncate(self, turns: int) -> None:
        """Keep only the first ``turns`` turns (``0``: back to how it started): the next
        turn starts from the conversation as that turn left it.

        Raises:
            ConfigurationError: ``turns`` is not between 0 and ``len(conv.turns)``, or a
                turn is running.
        """
        if self._running:
            raise ConfigurationError(
                "cannot truncate a conversation while one of its turns is running; wait "
                "for the run to end, or fork() it."
            )
        self._messages, self._turns = self._rewound(turns, "truncate")
        self._version += 1

    def _rewound(self, turns: int, what: str) -> tuple[list[Message], list[Trajectory]]:
        if type(turns) is not int or not 0 <= turns <= len(self._turns):
            raise ConfigurationError(
                f"Conversation.{what}(turns={turns!r}): expected a number of turns from 0 "
                f"to {len(self._turns)}, the turns this conversation has."
            )
        kept = self._turns[:turns]
        if not kept:
            return list(self._base), kept
        return _answered(kept[-1]), kept

    def _take(self, trajectory: Trajectory) -> None:
        """Take a finished turn: its messages (each call answered) become the conversation."""
        self._messages = _answered(trajectory)
        self._turns.append(trajectory)
        self._version += 1

    def _prefix(self, config: LoopConfig) -> list[Message]:
        """What a turn run with ``config`` starts from (see the system prompt rule)."""
        messages = list(self._messages)
        if messages and config.system_prompt is not None:
            prompt = Message("system", config.render_system_prompt())
            if messages[0] != prompt:
                messages[0] = prompt
        return messages

    # -- saving ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The conversation as a JSON-ready document (what :meth:`save` writes)."""
        from looplet.record.codec import encode_message, encode_trajectory

        messages = self._messages
        turns = []
        for turn in self._turns:
            doc = encode_trajectory(turn)
            count = len(turn.messages)
            if messages[:count] == turn.messages:
                del doc["messages"]
                doc["messages_prefix"] = count
            turns.append(doc)
        return {
            "format": FORMAT,
            "base": [encode_message(m) for m in self._base],
            "messages": [encode_message(m) for m in messages],
            "turns": turns,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Conversation:
        """A conversation from :meth:`to_dict`'s document, every field checked.

        A recorded run's trajectory document (``looplet-record/1``, a ``trajectory.json``)
        is read as a conversation of that one turn.

        Raises:
            DecodeError: a field is missing or has the wrong shape; ``where`` names it
                (``turns[1].steps[0].tool_call``), or the format is not one this looplet
                reads.
        """
        from looplet.record import codec

        doc = codec.json_object(doc, "")
        fmt = doc.get("format")
        if isinstance(fmt, str) and fmt.startswith("looplet-record/"):
            return cls._from_record(doc)
        codec.check_format(doc, _FAMILY, FORMAT, required=True)
        if "messages" not in doc:
            raise codec.DecodeError("messages", "missing")
        base = tuple(codec.decode_list(doc.get("base", []), "base", codec.decode_message))
        messages = codec.decode_list(doc["messages"], "messages", codec.decode_message)
        for name, items in (("base", base), ("messages", messages)):
            if items and items[0].role != "system":
                raise codec.DecodeError(f"{name}[0].role", "expected the system message first")

        def decode_turn(value: Any, where: str) -> Trajectory:
            obj = codec.json_object(value, where)
            if "messages_prefix" not in obj:
                return codec.decode_trajectory(obj, where)
            count = codec.field_int(obj, "messages_prefix", where)
            if "messages" in obj or count > len(messages):
                raise codec.DecodeError(
                    f"{where}.messages_prefix",
                    f"is {count}: expected at most {len(messages)} (the conversation's "
                    "messages) and no 'messages' beside it",
                )
            turn = codec.decode_trajectory(obj, where)
            turn.messages = messages[:count]
            return turn

        turns = codec.decode_list(doc.get("turns", []), "turns", decode_turn)
        conversation = cls(base)
        conversation._messages = messages
        conversation._turns = turns
        return conversation

    @classmethod
    def _from_record(cls, doc: dict[str, Any]) -> Conversation:
        """The one-turn conversation of a recorded run's trajectory document."""
        from looplet.record import codec

        codec.check_format(doc, "looplet-record", codec.FORMAT, required=True)
        trajectory = codec.decode_trajectory(doc, "")
        if trajectory.stop_reason is None:
            raise codec.DecodeError(
                "stop_reason", "null: the recorded run did not end, so it cannot be continued"
            )
        if not trajectory.messages:
            raise codec.DecodeError(
                "messages", "empty: the record was written without the conversation"
            )
        if trajectory.messages[0].role != "system":
            raise codec.DecodeError("messages[0].role", "expected the system message first")
        conversation = cls()
        conversation._take(trajectory)
        return conversation

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the conversation to ``path`` as JSON, atomically: a reader (or a crash)
        sees the old file or the new one, never half of one.

        Raises:
            OSError: the file cannot be written (the message names it).
        """
        import contextlib
        import json
        import os
        import tempfile

        from looplet._reply_guard import utf8

        target = os.fspath(path)
        data = utf8(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        folder = os.path.dirname(os.path.abspath(target))
        temporary = ""
        try:
            fd, temporary = tempfile.mkstemp(
                dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
            )
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            if temporary:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
            raise OSError(
                exc.errno,
                f"cannot save the conversation to {target!r}: {exc.strerror or exc}",
            ) from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Conversation:
        """Read a conversation :meth:`save` wrote (or a recorded run's ``trajectory.json``).

        Raises:
            DecodeError: the file is not valid JSON or a field is wrong; the message names
                the file and the field (``where``), and says how to go on.
            OSError: the file cannot be read (``FileNotFoundError``...).
        """
        import json
        import os

        from looplet.record.codec import DecodeError

        target = os.fspath(path)
        if os.path.isdir(target):
            raise IsADirectoryError(
                21,
                f"{target!r} is a folder: give the file Conversation.save wrote, or a recorded "
                f"run's {os.path.join(target, 'trajectory.json')!r}",
            )
        with open(target, "rb") as file:
            data = file.read()
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problem = f"not UTF-8 text (byte {exc.start}); the file was damaged or is not JSON"
            raise _in_file(target, DecodeError("", problem)) from None
        except ValueError as exc:
            where = f"line {getattr(exc, 'lineno', '?')} column {getattr(exc, 'colno', '?')}"
            problem = (
                f"not valid JSON ({getattr(exc, 'msg', exc)}); the file was cut short or edited"
            )
            raise _in_file(target, DecodeError(where, problem)) from None
        try:
            return cls.from_dict(doc)
        except DecodeError as exc:
            raise _in_file(target, exc) from None


def _in_file(path: str, exc: DecodeError) -> DecodeError:
    """``exc`` with a message naming the file ``path`` and how to go on."""
    from looplet.record.codec import DecodeError

    error = DecodeError(exc.where, exc.problem)
    error.args = (
        f"{path!r}: field {exc.where or '(the document)'}: {exc.problem}. It is not a "
        "conversation this looplet can read: save it again with Conversation.save, or fix "
        "that field.",
    )
    return error


def _check_messages(messages: Iterable[Any], what: str, empty: str = "") -> None:
    """Check ``messages`` are :class:`Message`\\ s, the system message first."""
    items = tuple(messages)
    for index, item in enumerate(items):
        if not isinstance(item, Message):
            raise ConfigurationError(
                f"{what}[{index}] is a {type(item).__name__}, not a looplet Message: build "
                "it with Message.system(...), Message.user(...)..."
            )
    if not items and empty:
        raise ConfigurationError(
            f"{what} are empty: {empty} trajectory must hold the conversation (a record "
            "written with its messages) to be continued."
        )
    if items and items[0].role != "system":
        raise ConfigurationError(
            f"{what} start with a {items[0].role!r} message; a conversation starts with "
            "its system prompt: put Message.system(...) first."
        )


def _answered(trajectory: Trajectory) -> list[Message]:
    """The turn's messages, with a ``no result`` error (kind ``cancelled``) for each call
    of its last model turn that has none (a run that failed or was abandoned in the
    middle of a turn: the call did not run, or ran but its step was never recorded).

    Every provider refuses a request whose assistant tool call has no result; the model
    reads this one as it reads any failed call.
    """
    messages = list(trajectory.messages)
    last = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "assistant"), -1
    )
    if last < 0 or not messages[last].tool_calls:
        return messages
    end = last + 1
    while end < len(messages) and messages[end].role == "tool":
        end += 1
    answered = {m.tool_call_id for m in messages[last + 1 : end]}
    missing = [c for c in messages[last].tool_calls if c.call_id not in answered]
    if not missing:
        return messages
    from looplet.errors import ErrorKind, ToolError
    from looplet.messages import render_tool_result
    from looplet.types import ToolResult

    reason = trajectory.stop_reason.value if trajectory.stop_reason is not None else "ended"
    error = ToolError(
        ErrorKind.CANCELLED,
        f"no result: the turn ended ({reason}) before this call's result was recorded",
    )
    results = []
    for call in missing:
        result = ToolResult.failure(call, error)
        results.append(Message.tool_result(result, render_tool_result(result)))
    messages[end:end] = results
    return messages


# -- a turn: what composable_loop(..., conversation=conv) attaches to its run -----------------


def continue_conversation(run: RunState, conversation: Conversation, need: str) -> None:
    """Make ``run`` a turn of ``conversation`` (called by the loops for ``conversation=``).

    The run starts from the conversation's messages and ``task`` as the new user message;
    a hook takes the run's messages into the conversation when it ends. ``need`` is
    ``"sync"`` or ``"async"``, the loop that drives the run.

    Raises:
        ConfigurationError: ``conversation`` is not a :class:`Conversation`, or a turn of
            it is running.
    """
    if not isinstance(conversation, Conversation):
        raise ConfigurationError(
            f"conversation= takes a looplet.conversation.Conversation, got "
            f"{type(conversation).__name__}: conversation=Conversation() to start one."
        )
    if conversation._running:
        raise ConfigurationError(_BUSY)
    from looplet.loop import add_run_hooks

    turn = _Turn(conversation, run)
    turn._lay_down()
    add_run_hooks(run, [turn], need)


_BUSY = (
    "a turn of this conversation is already running; a conversation takes one turn at a "
    "time. Wait for that run to end, or branch with conversation.fork()."
)


class _Turn:
    """The hook that makes a run a turn of a conversation: it brings the conversation up
    to date when the run starts and hands the run's messages back when it ends."""

    __slots__ = (
        "_built_on",
        "_conversation",
        "_laid",
        "_refused",
        "_run",
        "_started",
        "_task_message",
    )

    def __init__(self, conversation: Conversation, run: RunState) -> None:
        self._conversation = conversation
        self._run = run
        self._built_on = -1
        self._laid = 0
        self._started = self._refused = False
        task = run.trajectory.task
        self._task_message: Message | None = None
        if task is not None:
            config = run.config
            text = (config.render_task or render_task)(task)
            self._task_message = Message("user", text)

    def _lay_down(self) -> None:
        """Put the conversation and the new user message in the run (an empty
        conversation: the engine lays down the system prompt and task as usual)."""
        conversation, messages = self._conversation, self._run.messages
        self._built_on = conversation._version
        if conversation._messages and not messages:
            messages += conversation._prefix(self._run.config)
            if self._task_message is not None:
                messages.append(self._task_message)
            self._laid = len(messages)

    def pre_loop(self) -> None:
        """The run starts: take the turn (one at a time), from the conversation as it is."""
        conversation, run = self._conversation, self._run
        if conversation._running:
            # Another turn started since this run was built: end this one before its first
            # model call (the loop raises the error), and take nothing from it.
            from looplet.engine import fail
            from looplet.types import StopReason

            self._refused = True
            fail(run, StopReason.CANCELLED, ConfigurationError(_BUSY))
            return
        conversation._running = self._started = True
        if run.trajectory.llm_calls:
            # Resumed from a checkpoint, taken after a model call: its messages are the
            # whole conversation of this turn, so what _lay_down put first goes.
            del run.messages[: self._laid]
        elif conversation._version != self._built_on:
            # The conversation took a turn after this run was built: start from it now.
            config = run.config
            prefix = conversation._prefix(config)
            if prefix:
                tail = [] if self._task_message is None else [self._task_message]
            else:  # truncated to nothing since: what the engine lays down for a new run
                prefix = [Message("system", config.render_system_prompt())]
                tail = [Message("user", (config.render_task or render_task)(run.trajectory.task))]
            run.messages[:] = prefix + tail
            run.call_ids = None  # the ids so far are the conversation's (record_reply)

    def on_loop_end(self, trajectory: Trajectory) -> None:
        """The run ended: the conversation takes its messages (and its record as a turn)."""
        conversation = self._conversation
        if self._refused:
            return
        if self._started:
            conversation._running = False
        elif conversation._version != self._built_on:
            return  # never started (a hook before this one failed): nothing to take
        conversation._take(trajectory)


def __getattr__(name: str) -> Any:
    """The original's ``ContentBlock``, ``MessageRole``, ``default_summarizer``: say what
    replaced them (``docs/migration.md``); any other name is a plain ``AttributeError``."""
    from looplet._moved import missing

    missing(__name__, name)
