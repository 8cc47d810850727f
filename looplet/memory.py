"""Memory: standing text the model sees on every request, re-read before each model call.

Set ``LoopConfig(memory_sources=[...])``. Before every model call the loop asks each source
for its text (``source.load(state)``, with the run's :class:`~looplet.state.AgentState`),
renders the non-empty ones as titled sections of one system message, and sends it right
after the system prompt::

    config = LoopConfig(memory_sources=[
        StaticMemorySource("Answer in French.", title="Style"),
        CallableMemorySource(lambda state: f"{state.queries_used} tool calls so far."),
    ])

The memory message (``Message("system", text, name="memory")``) is part of each request, so
the context budget counts it and :func:`~looplet.preview.preview_prompt` shows it; it is
never stored in the run's conversation (``trajectory.messages``, checkpoints), so a source
whose text changes from call to call is always sent as it is now, and compaction can never
drop or summarise it. A run without memory sources pays nothing for the feature: this module
is not even imported.

Any object with ``load(state) -> str | None`` is a source (:class:`MemorySource`); a
file-backed one is ``CallableMemorySource(lambda: Path("NOTES.md").read_text())``. A source
that raises (or returns something other than text) ends the run like a raising hook: stop
reason ``hook_error``, and :class:`MemorySourceError` (a :class:`~looplet.errors.HookError`)
is raised with the partial trajectory on ``.trajectory``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from looplet.errors import ConfigurationError, HookError, LoopletError
from looplet.messages import ConversationView, InsertedView, Message

if TYPE_CHECKING:
    from looplet.run_state import RunState

__all__ = [
    "MEMORY_HEADER",
    "MEMORY_NAME",
    "CallableMemorySource",
    "MemorySource",
    "MemorySourceError",
    "PersistentMemorySource",
    "StaticMemorySource",
    "check_memory_sources",
    "memory_message",
    "render_memory",
]

#: The ``name`` of the memory message in a request (backends and cache policies find it by it).
MEMORY_NAME = "memory"

#: The first line of the memory message's text.
MEMORY_HEADER = "# Memory"


@runtime_checkable
class MemorySource(Protocol):
    """Anything with ``load(state) -> str | None``: one piece of the run's memory.

    ``load`` is called before every model call with the run's
    :class:`~looplet.state.AgentState`; return the text to show now, or ``None`` / ``""``
    for nothing this time (the source is then left out). A ``title`` attribute, when the
    source has one, heads its section.
    """

    def load(self, state: Any) -> str | None:
        """The text to show the model now (``None`` or ``""``: nothing)."""
        ...


#: The original looplet's name for :class:`MemorySource`.
PersistentMemorySource = MemorySource


class StaticMemorySource:
    """Fixed text shown on every request: rules, a rubric, a style guide.

    Example::

        StaticMemorySource("Cite the file and line of every claim.", title="Rules")

    Args:
        text: the text.
        title: the heading of its section (``None``: no heading).
    """

    __slots__ = ("text", "title")

    def __init__(self, text: str, *, title: str | None = None) -> None:
        if not isinstance(text, str):
            raise ConfigurationError(
                f"StaticMemorySource(text) needs a str, got {type(text).__name__}; for text "
                "computed on each call use CallableMemorySource(fn)"
            )
        _check_title("StaticMemorySource", title)
        self.text = text
        self.title = title

    def load(self, state: Any) -> str:
        """The text (``state`` is not used)."""
        return self.text

    def __repr__(self) -> str:
        head = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        title = f", title={self.title!r}" if self.title is not None else ""
        return f"StaticMemorySource({head!r}{title})"


class CallableMemorySource:
    """Text computed before every model call by ``fn``, so it can follow the run.

    ``fn`` takes the run's :class:`~looplet.state.AgentState` (``fn(state)``, as in the
    original looplet) or nothing (``fn()``: decided once, from its signature); it returns
    the text, or ``None`` / ``""`` to show nothing this time.

    Example::

        CallableMemorySource(lambda state: f"Steps used: {state.queries_used}", title="Budget")
        CallableMemorySource(lambda: Path("NOTES.md").read_text(), title="Notes")

    Args:
        fn: the function.
        title: the heading of its section (``None``: no heading).
    """

    __slots__ = ("_takes_state", "fn", "title")

    def __init__(self, fn: Callable[..., str | None], *, title: str | None = None) -> None:
        if not callable(fn):
            raise ConfigurationError(
                f"CallableMemorySource(fn) needs a function, got {type(fn).__name__}; "
                "for fixed text use StaticMemorySource(text)"
            )
        if _is_async(fn):
            raise ConfigurationError(
                f"CallableMemorySource(fn): {getattr(fn, '__qualname__', fn)!r} is async def, "
                "but memory is read synchronously before each model call (in the async loop "
                "too); pass a plain function, e.g. one returning a value an async hook or "
                "task keeps up to date"
            )
        _check_title("CallableMemorySource", title)
        self.fn = fn
        self.title = title
        self._takes_state = _takes_one_argument(fn)

    def load(self, state: Any) -> str | None:
        """``fn(state)`` (or ``fn()``)."""
        return self.fn(state) if self._takes_state else self.fn()

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        title = f", title={self.title!r}" if self.title is not None else ""
        return f"CallableMemorySource({name}{title})"


class MemorySourceError(HookError):
    """A memory source raised, or returned something other than text.

    A :class:`~looplet.errors.HookError` (a memory source is the caller's code, like a
    hook): the run stopped with stop reason ``hook_error`` and the partial trajectory is on
    ``.trajectory``.

    Attributes:
        source: the source at fault (also ``.hook``).
        index: its position in ``LoopConfig.memory_sources``.
        step: the step whose model call it was loaded for.
    """

    def __init__(self, source: object, index: int, step: int, cause: BaseException) -> None:
        LoopletError.__init__(
            self,
            f"memory source {source!r} (LoopConfig.memory_sources[{index}]) failed at step "
            f"{step}: {type(cause).__name__}: {cause}. The run was stopped with stop_reason "
            "'hook_error'; the partial trajectory is on this exception's .trajectory. Fix the "
            "source's load(), or have it return None when it has nothing to show.",
        )
        self.hook = self.source = source
        self.slot = "load"
        self.index = index
        self.step = step
        self.__cause__ = cause


def render_memory(sources: Sequence[MemorySource] | None, state: Any, step: int = 0) -> str:
    """The memory text of ``sources`` now: each non-empty one as a section (its title as a
    ``## `` heading when it has one), joined by blank lines; ``""`` when all are empty.

    Raises:
        MemorySourceError: a source raised or returned something other than a str or None
            (``step`` is the step named in the message).
    """
    if not sources:
        return ""
    sections: list[str] = []
    for index, source in enumerate(sources):
        try:
            text: object = source.load(state)
        except Exception as exc:
            raise MemorySourceError(source, index, step, exc) from exc
        if text is None:
            continue
        if inspect.isawaitable(text):
            if inspect.iscoroutine(text):
                text.close()  # never awaited: no "never awaited" warning later
            wrong = TypeError(
                "load() is async, but memory sources are read synchronously and it cannot "
                "be awaited; make load() a plain method returning a str or None"
            )
            raise MemorySourceError(source, index, step, wrong)
        if not isinstance(text, str):
            wrong = TypeError(f"load() returned {type(text).__name__}, not a str or None")
            raise MemorySourceError(source, index, step, wrong)
        text = text.strip()
        if not text:
            continue
        title = getattr(source, "title", None)
        sections.append(f"## {title}\n{text}" if title else text)
    return "\n\n".join(sections)


def memory_message(sources: Sequence[MemorySource], state: Any, step: int = 0) -> Message | None:
    """The memory as the system message a request carries (``name="memory"``), or ``None``
    when every source is empty now."""
    text = render_memory(sources, state, step)
    if not text:
        return None
    return Message("system", f"{MEMORY_HEADER}\n\n{text}", name=MEMORY_NAME)


def memory_view(
    run: RunState, messages: list[Message], end: int, extra: tuple[Message, ...], step: int
) -> ConversationView:
    """The request's view of ``messages[:end]`` + ``extra`` with the memory message after
    the system prompt (plain when every source is empty now). Used by
    :func:`looplet.engine.build_request` and :func:`looplet.preview.preview_prompt`."""
    message = memory_message(run.config.memory_sources, run.state, step)
    if message is None:
        return ConversationView(messages, end, extra)
    at = 1 if messages and messages[0].role == "system" else 0
    return InsertedView(messages, end, extra, (message,), at)


def check_memory_sources(sources: object) -> tuple[MemorySource, ...]:
    """``LoopConfig.memory_sources`` as a tuple, each checked to be a source.

    Raises:
        ConfigurationError: not a list or tuple, or an item without ``load`` (the message
            says how to wrap a str or a function).
    """
    if isinstance(sources, str | bytes) or not isinstance(sources, Sequence):
        hint = (
            f"[StaticMemorySource({sources!r})]"
            if isinstance(sources, str)
            else "[StaticMemorySource('...'), CallableMemorySource(fn)]"
        )
        raise ConfigurationError(
            f"LoopConfig.memory_sources must be a list of memory sources, got "
            f"{type(sources).__name__}; e.g. memory_sources={hint}"
        )
    checked = tuple(sources)
    for index, source in enumerate(checked):
        if callable(getattr(source, "load", None)):
            continue
        if isinstance(source, str):
            fix = f"wrap it: StaticMemorySource({_short(source)})"
        elif callable(source):
            fix = "wrap it: CallableMemorySource(fn)"
        else:
            fix = "give it a load(state) method returning a str or None"
        raise ConfigurationError(
            f"LoopConfig.memory_sources[{index}] is {type(source).__name__} {_short(source)}, "
            f"not a memory source (no load(state) method); {fix}"
        )
    return checked


def _check_title(owner: str, title: object) -> None:
    if title is not None and not isinstance(title, str):
        raise ConfigurationError(
            f"{owner}(title=...) must be a str or None, got {type(title).__name__}"
        )


def _is_async(fn: object) -> bool:
    """Whether ``fn`` is an ``async def`` function (or a callable object whose call is)."""
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return False
    return inspect.iscoroutinefunction(type(fn).__call__)


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be called with one positional argument (else: with none)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: the original's fn(state)
        return True
    try:
        signature.bind(None)
    except TypeError:
        try:
            signature.bind()
        except TypeError:
            raise ConfigurationError(
                f"CallableMemorySource(fn): {getattr(fn, '__qualname__', fn)!r} must take the "
                f"state (fn(state)) or nothing (fn()); its signature is {signature}"
            ) from None
        return False
    return True


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 50 else text[:47] + "..."
