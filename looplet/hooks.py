"""Hooks: the ``LoopHook`` Protocol, hook decisions, and resolving hook objects into slots.

A hook is any object implementing a subset of :class:`LoopHook`'s methods ("slots"). When a
run starts, :func:`resolve_hooks` inspects every hook object **once**: it finds the slots the
object fills, checks each method's parameters against what the slot provides (hooks take the
arguments they name, in any order, like pluggy hook implementations), rejects misspelled slot
names, and keeps a list per slot. The loop then calls those lists; it never uses ``hasattr``
on the hot path.

Two kinds of slot:

* **decide** (``pre_dispatch``, ``check_permission``, ``check_done``, ``should_stop``): hooks
  run in order; ``None`` means "no opinion"; the first decision wins and later hooks are not
  called (``check_permission``: the first denial wins).
* **observe** (``pre_loop``, ``pre_prompt``, ``post_dispatch``, ``on_loop_end``,
  ``on_event``): every hook runs, in order.

**When a hook raises**, in any slot, the run stops: the exception is wrapped in a
:class:`~looplet.errors.HookError` naming the hook's class, the slot and the step, the
trajectory is finished with stop reason ``hook_error`` (``on_loop_end`` of the *other* hooks
still runs), and the ``HookError`` is raised from the loop with ``.trajectory`` attached.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from looplet._value_type import value_type
from looplet.errors import HookError, HookRegistrationError
from looplet.types import ToolResult

if TYPE_CHECKING:
    from looplet.types import Step, ToolCall

__all__ = [
    "Allow",
    "Block",
    "Continue",
    "Deny",
    "HookDecision",
    "InjectContext",
    "LoopEvent",
    "LoopHook",
    "ResolvedHooks",
    "Stop",
    "resolve_hooks",
]

# What every slot but on_event may ask for, by name: the run's shared objects.
_COMMON = frozenset(
    {"state", "session_log", "context", "task", "config", "llm", "trajectory", "tools"}
)

#: The arguments each slot offers; a hook method may name any subset of them.
SLOT_ARGUMENTS: Mapping[str, frozenset[str]] = {
    "pre_loop": _COMMON,
    "pre_prompt": _COMMON | {"step_num", "messages"},
    "pre_dispatch": _COMMON | {"tool_call", "step_num"},
    "check_permission": _COMMON | {"tool_call", "step_num"},
    "post_dispatch": _COMMON | {"tool_call", "tool_result", "step_num"},
    "check_done": _COMMON | {"tool_call", "step_num"},
    "should_stop": _COMMON | {"step", "step_num", "new_entities"},
    "on_loop_end": _COMMON,
    "on_event": frozenset({"event"}),
}
SLOTS = tuple(SLOT_ARGUMENTS)

# Slots of the original looplet that this loop does not call; a hook that has them is warned
# rather than silently half-working.
_UNSUPPORTED_SLOTS = ("should_compact", "build_briefing", "build_prompt")


@value_type
class HookDecision:
    """What a hook wants the loop to do. Build one with the factories below.

    Attributes:
        block: a reason to refuse this call (``pre_dispatch``) or the done call
            (``check_done``); the model is told the reason.
        stop: a reason to end the run (stop reason ``hook_stop``).
        updated_args: replacement arguments for the tool call (``pre_dispatch``).
        updated_result: a result to use instead of running the tool (``pre_dispatch``) or
            instead of the tool's own (``post_dispatch``).
        permission: ``"allow"`` or ``"deny"`` (``check_permission``, ``pre_dispatch``).
        additional_context: text added to the conversation before the next model call.
        metadata: free-form data for observers.
    """

    block: str | None = None
    stop: str | None = None
    updated_args: dict[str, Any] | None = None
    updated_result: ToolResult | None = None
    permission: Literal["allow", "deny"] | None = None
    additional_context: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def is_block(self) -> bool:
        """True when the decision refuses the call."""
        return self.block is not None or self.permission == "deny"

    def is_stop(self) -> bool:
        """True when the decision ends the run."""
        return self.stop is not None

    def is_noop(self) -> bool:
        """True when the decision changes nothing."""
        return self == _NOOP


_NOOP = HookDecision()


def Allow(reason: str = "", *, updated_args: dict[str, Any] | None = None) -> HookDecision:
    """Allow the call (and skip the remaining hooks of this slot), with ``updated_args``
    replacing its arguments if given."""
    return HookDecision(
        permission="allow",
        updated_args=updated_args,
        metadata={"reason": reason} if reason else {},
    )


def Deny(reason: str, retry: bool = False) -> HookDecision:
    """Refuse the call; the model is told ``reason`` (and that it may retry if ``retry``)."""
    return HookDecision(permission="deny", block=reason, metadata={"retry": retry})


def Block(reason: str) -> HookDecision:
    """Refuse the call or the done call; the model is told ``reason``."""
    return HookDecision(block=reason)


def Stop(reason: str = "hook_stop") -> HookDecision:
    """End the run after the current step, with stop reason ``hook_stop``."""
    return HookDecision(stop=reason)


def Continue(additional_context: str | None = None) -> HookDecision:
    """Explicitly change nothing (and skip the remaining hooks of a decide slot), adding
    ``additional_context`` to the conversation if given."""
    return HookDecision(permission="allow", additional_context=additional_context)


def InjectContext(text: str) -> HookDecision:
    """Add ``text`` to the conversation before the next model call."""
    return HookDecision(additional_context=text)


@value_type
class LoopEvent:
    """A lifecycle event delivered to ``on_event``.

    ``kind`` is one of ``loop_start`` (data: ``task``), ``llm_call`` (``request``),
    ``llm_chunk`` (``chunk``: a :class:`~looplet.backends.base.StreamChunk`, from a streaming
    backend), ``llm_response`` (``response``), ``step`` (``step``), ``compaction``
    (``record``: a :class:`~looplet.compact.CompactionRecord`) and ``loop_end``
    (``trajectory``).
    """

    kind: str
    step_num: int
    data: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class LoopHook(Protocol):
    """The slots a hook may implement. Every one is optional; implement any subset.

    Each method may declare any subset of the parameters listed for it, by name.
    """

    def pre_loop(self, state: Any, session_log: Sequence[Step], context: Any) -> None:
        """Called once before the first model call. Return value ignored."""

    def pre_prompt(
        self, state: Any, session_log: Sequence[Step], context: Any, step_num: int
    ) -> str | HookDecision | None:
        """Before each model call. Return text to show the model in this call only."""

    def pre_dispatch(
        self, state: Any, session_log: Sequence[Step], tool_call: ToolCall, step_num: int
    ) -> HookDecision | ToolResult | None:
        """Before a tool runs. ``None``: no opinion. A ``ToolResult``: use it instead of
        running the tool. ``Deny``/``Block``: refuse. ``Stop``: end the run.
        ``HookDecision(updated_args=...)``: run with other arguments."""

    def check_permission(self, tool_call: ToolCall, state: Any) -> bool | HookDecision | None:
        """Before a tool runs. ``False`` or ``Deny``: refuse (the first denial wins)."""

    def post_dispatch(
        self,
        state: Any,
        session_log: Sequence[Step],
        tool_call: ToolCall,
        tool_result: ToolResult,
        step_num: int,
    ) -> str | HookDecision | ToolResult | None:
        """After a tool ran, before the step is yielded. Text: add to the conversation.
        A ``ToolResult``: replace the result. ``Stop``: end the run after this step."""

    def check_done(
        self, state: Any, session_log: Sequence[Step], context: Any, step_num: int
    ) -> str | bool | HookDecision | None:
        """When the model calls the done tool. ``None``/``True``: accept. Text, ``False``
        or ``Block``: refuse; the model is told why and the run goes on."""

    def should_stop(
        self, state: Any, step_num: int, new_entities: Any
    ) -> bool | HookDecision | None:
        """After each step. ``True`` or ``Stop``: end the run (stop reason ``hook_stop``)."""

    def on_loop_end(self, state: Any, session_log: Sequence[Step], context: Any, llm: Any) -> None:
        """Once, after the run ended for any reason. ``trajectory`` may be requested."""

    def on_event(self, event: LoopEvent) -> None:
        """Every lifecycle event. Return value ignored."""


# BoundHook and ResolvedHooks are internal and built once per run: plain slotted classes,
# since each dataclass definition adds a fraction of a millisecond to `import looplet`.
class BoundHook:
    """One hook object's method for one slot, with the argument names it takes."""

    __slots__ = ("argnames", "fn", "hook", "slot")

    def __init__(
        self, hook: object, slot: str, fn: Callable[..., Any], argnames: tuple[str, ...] | None
    ) -> None:
        self.hook = hook
        self.slot = slot
        self.fn = fn
        self.argnames = argnames  # None: takes **kwargs, so every argument is passed

    def __repr__(self) -> str:
        return f"BoundHook({type(self.hook).__name__}.{self.slot})"

    def __call__(self, values: Mapping[str, Any], step: int) -> Any:
        """Call the hook with the arguments it names; wrap anything it raises in HookError."""
        try:
            if self.argnames is None:
                return self.fn(**values)
            return self.fn(**{name: values[name] for name in self.argnames})
        except Exception as exc:
            raise HookError(self.hook, self.slot, step, exc) from exc


class ResolvedHooks:
    """The hooks of one run: for each slot, the bound methods that fill it, in order.

    One attribute per slot, so the loop reads ``hooks.post_dispatch`` with no lookup by name.
    """

    __slots__ = ("any_dispatch_hooks", "hooks", *SLOTS)

    pre_loop: tuple[BoundHook, ...]
    pre_prompt: tuple[BoundHook, ...]
    pre_dispatch: tuple[BoundHook, ...]
    check_permission: tuple[BoundHook, ...]
    post_dispatch: tuple[BoundHook, ...]
    check_done: tuple[BoundHook, ...]
    should_stop: tuple[BoundHook, ...]
    on_loop_end: tuple[BoundHook, ...]
    on_event: tuple[BoundHook, ...]

    def __init__(
        self, hooks: tuple[object, ...] = (), by_slot: Mapping[str, Sequence[BoundHook]] = {}
    ) -> None:
        self.hooks = hooks
        for slot in SLOTS:
            setattr(self, slot, tuple(by_slot.get(slot, ())))
        #: Whether any hook decides on tool calls (else the loop skips that work per call).
        self.any_dispatch_hooks = bool(
            self.pre_dispatch or self.check_permission or self.check_done
        )

    def __getitem__(self, slot: str) -> tuple[BoundHook, ...]:
        """The bound methods of ``slot`` (by name, for code that is not on the hot path)."""
        if slot not in SLOT_ARGUMENTS:
            raise KeyError(slot)
        hooks: tuple[BoundHook, ...] = getattr(self, slot)
        return hooks


_NO_HOOKS = ResolvedHooks()


def resolve_hooks(hooks: Iterable[object] | None) -> ResolvedHooks:
    """Check every hook object and sort its methods into slots, once per run.

    Raises:
        HookRegistrationError: a hook fills no slot, has a method whose name is one letter
            off a slot's (``pre_dispach``), or a slot method with a parameter the slot does
            not provide.
    """
    objects = tuple(hooks or ())
    if not objects:
        return _NO_HOOKS  # most runs: nothing to resolve, and a run never changes its hooks
    by_slot: dict[str, list[BoundHook]] = {slot: [] for slot in SLOTS}
    for hook in objects:
        found = [_bind(hook, slot) for slot in SLOTS if callable(getattr(hook, slot, None))]
        _reject_misspelled_slots(hook)
        unsupported = [s for s in _UNSUPPORTED_SLOTS if callable(getattr(hook, s, None))]
        if unsupported:
            warnings.warn(
                f"hook {type(hook).__name__} implements {', '.join(unsupported)}, which this "
                "version of looplet does not call; that behaviour will not happen.",
                UserWarning,
                stacklevel=3,
            )
        if not found and not unsupported:
            raise HookRegistrationError(
                f"hook {type(hook).__name__} implements none of the hook slots "
                f"({', '.join(SLOTS)}). Did you pass the class instead of an instance, "
                "or misname its methods?"
            )
        for bound in found:
            by_slot[bound.slot].append(bound)
    return ResolvedHooks(objects, by_slot)


def _bind(hook: object, slot: str) -> BoundHook:
    fn = getattr(hook, slot)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass everything
        return BoundHook(hook, slot, fn, None)
    allowed = SLOT_ARGUMENTS[slot]
    names: list[str] = []
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            return BoundHook(hook, slot, fn, None)
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.name in allowed and p.kind is not p.POSITIONAL_ONLY:
            names.append(p.name)
        elif p.default is p.empty:
            raise HookRegistrationError(
                f"hook {type(hook).__name__}.{slot}() takes a parameter {p.name!r} that the "
                f"slot does not provide. {slot} provides: {', '.join(sorted(allowed))}."
            )
    return BoundHook(hook, slot, fn, tuple(names))


def _reject_misspelled_slots(hook: object) -> None:
    known = set(SLOTS) | set(_UNSUPPORTED_SLOTS)
    for name in dir(type(hook)):
        if name.startswith("_") or name in known or not callable(getattr(hook, name, None)):
            continue
        import difflib

        close = difflib.get_close_matches(name, SLOTS, n=1, cutoff=0.85)
        if close:
            raise HookRegistrationError(
                f"hook {type(hook).__name__} has a method {name!r}, which is not a hook slot. "
                f"Did you mean {close[0]!r}?"
            )


# -- normalising what hooks return ------------------------------------------------------------


def normalize_return(value: Any, bound: BoundHook, step: int) -> HookDecision | None:
    """Turn a hook's return value into a decision (or ``None`` for no opinion).

    Legacy returns are accepted at this edge: ``bool`` in ``check_permission`` (allow/deny),
    ``should_stop`` (stop) and ``check_done`` (accept/refuse); ``str`` as a refusal reason in
    ``check_done`` and as context elsewhere; a ``ToolResult`` as a replacement result.
    """
    if value is None or isinstance(value, HookDecision):
        return value
    slot = bound.slot
    name = type(bound.hook).__name__
    if isinstance(value, bool):
        if slot == "check_permission":
            return _NOOP if value else Deny(f"denied by {name}")
        if slot == "should_stop":
            return Stop(f"{name}.should_stop") if value else None
        if slot == "check_done":
            return None if value else Block(f"{name} refused to finish")
    elif isinstance(value, str):
        return Block(value) if slot == "check_done" else InjectContext(value)
    elif isinstance(value, ToolResult) and slot in ("pre_dispatch", "post_dispatch"):
        return HookDecision(updated_result=value)
    err = TypeError(
        f"returned {type(value).__name__} {value!r:.80}; {slot} hooks return None, a "
        "HookDecision (Allow, Deny, Block, Stop, InjectContext)"
        + (", a ToolResult" if slot in ("pre_dispatch", "post_dispatch") else "")
        + (", a bool" if slot in ("check_permission", "should_stop", "check_done") else "")
        + (", a str" if slot in ("pre_prompt", "post_dispatch", "check_done") else "")
    )
    raise HookError(bound.hook, slot, step, err) from err


def decide(
    hooks: tuple[BoundHook, ...], values: Mapping[str, Any], step: int
) -> HookDecision | None:
    """Run a decide slot: the first hook with an opinion wins."""
    for bound in hooks:
        decision = normalize_return(bound(values, step), bound, step)
        if decision is not None:
            return decision
    return None


def observe(
    hooks: tuple[BoundHook, ...], values: Mapping[str, Any], step: int
) -> list[HookDecision]:
    """Run an observe slot: every hook runs; the decisions they return are collected."""
    out: list[HookDecision] = []
    for bound in hooks:
        decision = normalize_return(bound(values, step), bound, step)
        if decision is not None:
            out.append(decision)
    return out


def emit(hooks: ResolvedHooks, kind: str, step_num: int, **data: Any) -> None:
    """Deliver a :class:`LoopEvent` to every ``on_event`` hook."""
    listeners = hooks.on_event
    if listeners:
        values = {"event": LoopEvent(kind, step_num, data)}
        for bound in listeners:
            bound(values, step_num)
