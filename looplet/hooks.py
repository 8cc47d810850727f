"""Hooks: the ``LoopHook`` Protocol, hook decisions, and resolving hook objects into slots.

A hook is any object implementing a subset of :class:`LoopHook`'s methods ("slots"). When a
run starts, :func:`resolve_hooks` inspects every hook object **once**: it finds the slots the
object fills, checks each method's parameters against what the slot provides (hooks take the
arguments they name, in any order, like pluggy hook implementations; ``**kwargs`` receives
exactly the slot's names, :data:`SLOT_ARGUMENTS`), rejects misspelled slot names, and keeps a
list per slot. The loop then calls those lists; it never uses ``hasattr`` on the hot path.

What each slot does with a hook's return value:

==================  =======================================================================
slot                acts on
==================  =======================================================================
pre_loop            observes; text / ``InjectContext`` joins the first model call
pre_prompt          observes; text / ``InjectContext`` is shown in this model call only
pre_dispatch        decides (first decision wins): Allow, Deny, Block, Stop, updated_args,
                    a ``ToolResult`` (run nothing); ``Continue`` asks the next hook
check_permission    decides (the first refusal wins, every hook is asked): Deny, Block, bool
post_dispatch       transforms (every hook, in order): a ``ToolResult`` replaces the result the
                    next hook sees; Stop ends the run after this step; text joins the next call;
                    ``approval`` runs the call again (see ``looplet.approval``)
check_done          decides (first decision wins): Block / Deny / text / False refuse the done,
                    Allow / True accept it
should_stop         decides (first decision wins): Stop / True end the run after this step
on_loop_end         observes; return value ignored
on_event            observes; return value ignored
==================  =======================================================================

``additional_context`` (``InjectContext``, ``Continue(text)``, or a returned ``str``) is
added before the next model call from every slot but ``on_loop_end`` and ``on_event``. A
decision field a slot does not act on (``Stop`` from ``pre_prompt``, ``Deny`` from
``post_dispatch``...) is ignored and reported once per hook and slot with an
:class:`IgnoredDecisionWarning` that says which slot acts on it.

**Async hooks** (``async def`` methods) are awaited by ``async_composable_loop``: the engine
yields an :class:`~looplet._hook_calls.AwaitHook` effect (``_hook_calls.py``: calling a
slot's hooks) and the async driver awaits it. ``composable_loop``
refuses them when the run starts (:class:`~looplet.errors.AsyncHookError`).

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
from looplet.errors import AsyncHookError, HookError, HookRegistrationError
from looplet.types import ToolResult

if TYPE_CHECKING:
    from looplet.types import Step, ToolCall

__all__ = [
    "SLOT_ARGUMENTS",
    "Allow",
    "Block",
    "Continue",
    "Deny",
    "HookDecision",
    "IgnoredDecisionWarning",
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

#: The arguments each slot offers; a hook method may name any subset of them, and a method
#: taking ``**kwargs`` receives exactly these.
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

# The HookDecision fields each slot acts on (the table in the module docstring); any other
# field a hook sets there is ignored with an IgnoredDecisionWarning.
_ACTS_ON: Mapping[str, frozenset[str]] = {
    "pre_loop": frozenset({"additional_context"}),
    "pre_prompt": frozenset({"additional_context"}),
    "pre_dispatch": frozenset(
        {"block", "stop", "updated_args", "updated_result", "permission", "additional_context"}
    ),
    "check_permission": frozenset({"block", "permission", "additional_context"}),
    "post_dispatch": frozenset({"updated_result", "stop", "approval", "additional_context"}),
    "check_done": frozenset({"block", "permission", "additional_context"}),
    "should_stop": frozenset({"stop", "additional_context"}),
    "on_loop_end": frozenset(),
    "on_event": frozenset(),
}
_FIELDS = (
    "block",
    "stop",
    "updated_args",
    "updated_result",
    "permission",
    "approval",
    "additional_context",
)


class IgnoredDecisionWarning(UserWarning):
    """A hook returned a decision its slot does not act on (``Stop`` from ``pre_prompt``...).

    Issued once per hook and slot; the message names the field and the slots that act on it.
    """


@value_type
class HookDecision:
    """What a hook wants the loop to do. Build one with the factories below.

    Attributes:
        block: a reason to refuse this call (``pre_dispatch``, ``check_permission``) or the
            done call (``check_done``); the model is told the reason.
        stop: a reason to end the run (stop reason ``hook_stop``): ``pre_dispatch`` (the
            call is not run), ``post_dispatch`` and ``should_stop`` (after this step).
        updated_args: replacement arguments for the tool call (``pre_dispatch``).
        updated_result: a result to use instead of running the tool (``pre_dispatch``) or
            instead of the tool's own (``post_dispatch``).
        permission: ``"allow"`` or ``"deny"``, a permission verdict (``pre_dispatch``,
            ``check_permission``, ``check_done``).
        additional_context: text added to the conversation before the next model call.
        metadata: free-form data for observers.
        approval: a granted :class:`~looplet.approval.Approval` (``post_dispatch``): the
            call asked for approval and got it, so it runs again with ``ctx.approval`` set
            to this, and the new result replaces the one that asked (see
            :class:`~looplet.approval.ApprovalHook`).
    """

    block: str | None = None
    stop: str | None = None
    updated_args: dict[str, Any] | None = None
    updated_result: ToolResult | None = None
    permission: Literal["allow", "deny"] | None = None
    additional_context: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    approval: Any = None

    def is_block(self) -> bool:
        """True when the decision refuses the call."""
        return self.block is not None or self.permission == "deny"

    def is_stop(self) -> bool:
        """True when the decision ends the run."""
        return self.stop is not None

    def is_noop(self) -> bool:
        """True when the decision changes nothing (``Continue()``, ``HookDecision()``)."""
        return self == _NOOP


_NOOP = HookDecision()


def Allow(
    reason: str | dict[str, Any] = "", *, updated_args: dict[str, Any] | None = None
) -> HookDecision:
    """A permission verdict: the call may run (``permission="allow"``), with ``updated_args``
    replacing its arguments if given. In ``pre_dispatch`` and ``check_done`` it ends the
    slot (later hooks are not asked); in ``check_permission`` the other hooks are still asked.

    ``Allow({"path": "a.txt"})``, a dict as the first argument, is the original's
    ``Allow(updated_args)``; a str is a reason kept in ``metadata["reason"]``.
    """
    if isinstance(reason, dict):  # the original's Allow(updated_args)
        return HookDecision(permission="allow", updated_args=reason)
    return HookDecision(
        permission="allow",
        updated_args=updated_args,
        metadata={"reason": reason} if reason else {},
    )


def Deny(reason: str, retry: bool = False) -> HookDecision:
    """A permission verdict: the call may not run (``permission="deny"``). The step's result
    is a ``permission_denied`` error telling the model ``reason`` (retriable if ``retry``).
    In ``check_done`` it refuses the done call like :func:`Block`."""
    return HookDecision(permission="deny", block=reason, metadata={"retry": retry})


def Block(reason: str) -> HookDecision:
    """Refuse without a permission verdict; the model is told ``reason``.

    In ``check_done`` the done call is refused (``done_rejected``) and the run goes on; in
    ``pre_dispatch`` the call is not run (a ``cancelled`` error, "not run: blocked ...");
    in ``check_permission`` any refusal is a denial (``permission_denied``).
    """
    return HookDecision(block=reason)


def Stop(reason: str = "hook_stop") -> HookDecision:
    """End the run (stop reason ``hook_stop``, ``reason`` as its detail): from
    ``pre_dispatch`` before the call runs, from ``post_dispatch``/``should_stop`` after
    the step."""
    return HookDecision(stop=reason)


def Continue(additional_context: str | None = None) -> HookDecision:
    """No decision: go on as if the hook returned ``None`` (a decide slot asks its next
    hook), adding ``additional_context`` to the conversation if given.

    ``Continue()`` is a no-op (``is_noop()``), unlike :func:`Allow`, which is a verdict.
    """
    return HookDecision(additional_context=additional_context)


def InjectContext(text: str) -> HookDecision:
    """Add ``text`` to the conversation before the next model call: ``Continue(text)``, and
    what returning a plain ``str`` does in every slot but ``check_done``."""
    return HookDecision(additional_context=text)


@value_type
class LoopEvent:
    """A lifecycle event delivered to ``on_event``.

    ``kind`` is one of ``loop_start`` (data: ``task``), ``llm_call`` (``request``),
    ``llm_chunk`` (``chunk``: a :class:`~looplet.backends.base.StreamChunk`, from a streaming
    backend), ``llm_response`` (``response``), ``step`` (``step``), ``compaction``
    (``record``: a :class:`~looplet.compact.CompactionRecord`) and ``loop_end``
    (``trajectory``). An ``async def`` listener gets a call's ``llm_chunk`` events once the
    call has returned (a backend hands chunks over synchronously), before ``llm_response``.
    """

    kind: str
    step_num: int
    data: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class LoopHook(Protocol):
    """The slots a hook may implement. Every one is optional; implement any subset.

    Each method may declare any subset of the parameters its slot offers, by name; the
    signatures below are the original's. Every slot but ``on_event`` also offers ``task``,
    ``config``, ``llm``, ``trajectory`` and ``tools`` (:data:`SLOT_ARGUMENTS`). A method
    taking ``**kwargs`` receives exactly its slot's arguments. A method may be
    ``async def`` when the loop is ``async_composable_loop``.
    """

    def pre_loop(self, state: Any, session_log: Sequence[Step], context: Any) -> None:
        """Observes: once, before the first model call. Text (or ``InjectContext``) joins
        the first model call; anything else returned is ignored."""

    def pre_prompt(
        self, state: Any, session_log: Sequence[Step], context: Any, step_num: int
    ) -> str | HookDecision | None:
        """Observes: before each model call. Return text (or ``InjectContext``) to show
        the model in this call only. It cannot stop the run or change a call: a ``Stop``
        here is ignored with an :class:`IgnoredDecisionWarning` (use ``should_stop``)."""

    def pre_dispatch(
        self, state: Any, session_log: Sequence[Step], tool_call: ToolCall, step_num: int
    ) -> HookDecision | ToolResult | None:
        """Decides, before a tool runs; the first decision wins. ``None``/``Continue``: no
        opinion (the next hook is asked). A ``ToolResult``: use it instead of running the
        tool. ``Deny``: refuse (``permission_denied``). ``Block``: do not run it
        (``cancelled``). ``Stop``: end the run. ``Allow``/``HookDecision(updated_args=...)``:
        run it (with other arguments)."""

    def check_permission(self, tool_call: ToolCall, state: Any) -> bool | HookDecision | None:
        """Decides, before a tool runs: ``False``, ``Deny`` or ``Block`` refuse
        (``permission_denied``; the first refusal wins). Every hook is asked until one
        refuses."""

    def post_dispatch(
        self,
        state: Any,
        session_log: Sequence[Step],
        tool_call: ToolCall,
        tool_result: ToolResult,
        step_num: int,
    ) -> str | HookDecision | ToolResult | None:
        """Transforms, after a tool ran and before the step is recorded; every hook runs, in
        order. A ``ToolResult`` (or ``HookDecision(updated_result=...)``) replaces the result
        (the next hook sees the replacement). ``Stop``: end the run after this step. Text:
        add to the next model call. A refusal (``Deny``/``Block``) is ignored with a
        warning: the call has run."""

    def check_done(
        self, state: Any, session_log: Sequence[Step], context: Any, step_num: int
    ) -> str | bool | HookDecision | None:
        """Decides, when the model calls the done tool; the first decision wins.
        ``None``/``True``/``Allow``: accept. Text, ``False``, ``Block`` or ``Deny``: refuse;
        the model is told why and the run goes on. ``tool_call`` may be requested."""

    def should_stop(
        self, state: Any, step_num: int, new_entities: Any
    ) -> bool | HookDecision | None:
        """Decides, after each step: ``True`` or ``Stop`` ends the run (stop reason
        ``hook_stop``). ``step`` may be requested; ``new_entities`` is always ``[]``."""

    def on_loop_end(self, state: Any, session_log: Sequence[Step], context: Any, llm: Any) -> None:
        """Observes: once, after the run ended for any reason. ``trajectory`` may be
        requested. The return value is ignored."""

    def on_event(self, event: LoopEvent) -> None:
        """Observes: every lifecycle event. The return value is ignored."""


# BoundHook and ResolvedHooks are internal and built once per run: plain slotted classes,
# since each dataclass definition adds a fraction of a millisecond to `import looplet`.
class BoundHook:
    """One hook object's method for one slot, with the argument names it takes."""

    __slots__ = ("argnames", "decisive", "fn", "hook", "ignored", "is_async", "slot", "warned")

    def __init__(
        self, hook: object, slot: str, fn: Callable[..., Any], argnames: tuple[str, ...]
    ) -> None:
        self.hook = hook
        self.slot = slot
        self.fn = fn
        self.argnames = argnames
        self.is_async = _is_async(fn)
        acts_on = _ACTS_ON[slot]
        #: Fields that make a returned decision a decision (not just context) in this slot.
        self.decisive = tuple(f for f in _FIELDS if f in acts_on and f != "additional_context")
        #: Fields this slot ignores; setting one warns once (``warned``).
        self.ignored = tuple(f for f in _FIELDS if f not in acts_on)
        self.warned = False

    def __repr__(self) -> str:
        return f"BoundHook({type(self.hook).__name__}.{self.slot})"

    def __call__(self, values: Mapping[str, Any], step: int) -> Any:
        """Call the hook with the arguments it takes (for an async hook: its coroutine);
        wrap anything it raises in HookError."""
        try:
            return self.fn(**{name: values[name] for name in self.argnames})
        except Exception as exc:
            raise HookError(self.hook, self.slot, step, exc) from exc

    def decision(self, value: Any, step: int) -> HookDecision | None:
        """What the hook returned, as a decision of this slot (``None``: no opinion)."""
        decision = normalize_return(value, self, step)
        if decision is not None and not self.warned:
            self._warn_ignored(decision)
        return decision

    def ignore(self, value: Any, step: int) -> None:
        """Take the return value of a slot that ignores it (``on_loop_end``, ``on_event``);
        a decision is reported, an awaitable of a sync method is an error."""
        if value is None:
            return
        if isinstance(value, HookDecision):
            if not self.warned:
                self._warn_ignored(value)
        elif isinstance(value, ToolResult) and not self.warned:
            self.warned = True
            warnings.warn(
                f"{self._name} returned a ToolResult, which {self.slot} ignores; return a "
                "ToolResult from pre_dispatch (instead of running) or post_dispatch (to replace "
                "the result).",
                IgnoredDecisionWarning,
                stacklevel=2,
            )
        elif inspect.isawaitable(value):
            raise _awaitable_error(value, self, step)

    @property
    def _name(self) -> str:
        return f"hook {type(self.hook).__name__}.{self.slot}"

    def _warn_ignored(self, decision: HookDecision) -> None:
        fields = [f for f in self.ignored if getattr(decision, f) is not None]
        if not fields:
            return
        self.warned = True
        where = "; ".join(
            f"{f} is acted on by {', '.join(s for s in SLOTS if f in _ACTS_ON[s])}" for f in fields
        )
        warnings.warn(
            f"{self._name} returned a decision with {', '.join(fields)}, which {self.slot} "
            f"does not act on: it was ignored ({where}). Reported once per hook and slot.",
            IgnoredDecisionWarning,
            stacklevel=2,
        )


class ResolvedHooks:
    """The hooks of one run: for each slot, the bound methods that fill it, in order.

    One attribute per slot, so the loop reads ``hooks.post_dispatch`` with no lookup by name.
    """

    __slots__ = ("any_async", "any_dispatch_hooks", "hooks", *SLOTS)

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
        #: Whether any method is ``async def`` (only ``async_composable_loop`` accepts that).
        self.any_async = any(b.is_async for bound in by_slot.values() for b in bound)

    def __getitem__(self, slot: str) -> tuple[BoundHook, ...]:
        """The bound methods of ``slot`` (by name, for code that is not on the hot path)."""
        if slot not in SLOT_ARGUMENTS:
            raise KeyError(slot)
        hooks: tuple[BoundHook, ...] = getattr(self, slot)
        return hooks


_NO_HOOKS = ResolvedHooks()


def resolve_hooks(hooks: Iterable[object] | None, *, awaits: bool = False) -> ResolvedHooks:
    """Check every hook object and sort its methods into slots, once per run.

    Args:
        hooks: the hook objects, in the order their methods run.
        awaits: whether the loop awaits ``async def`` methods (``async_composable_loop``).

    Raises:
        HookRegistrationError: a hook fills no slot, has a method whose name is one letter
            off a slot's (``pre_dispach``), or a slot method with a parameter the slot does
            not provide.
        AsyncHookError: a slot method is ``async def`` and ``awaits`` is false.
    """
    if hooks is None or (type(hooks) is tuple and not hooks):  # most runs: nothing to do
        return _NO_HOOKS
    objects = tuple(hooks or ())
    if not objects:
        return _NO_HOOKS  # a run never changes its hooks, so all runs without share one
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
            if bound.is_async and not awaits:
                raise AsyncHookError(hook, bound.slot)
            by_slot[bound.slot].append(bound)
    return ResolvedHooks(objects, by_slot)


def _bind(hook: object, slot: str) -> BoundHook:
    fn = getattr(hook, slot)
    allowed = SLOT_ARGUMENTS[slot]
    every = tuple(sorted(allowed))
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: the slot's arguments
        return BoundHook(hook, slot, fn, every)
    names: list[str] = []
    for p in params:
        if p.kind is p.VAR_KEYWORD:  # **kwargs: exactly what the slot offers, nothing else
            return BoundHook(hook, slot, fn, every)
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


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine: ``async def``, or an object whose
    ``__call__`` is (``inspect`` sees through ``functools.partial``)."""
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return False
    return inspect.iscoroutinefunction(type(fn).__call__)  # a callable object


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
    if inspect.isawaitable(value):
        raise _awaitable_error(value, bound, step)
    err = TypeError(
        f"returned {type(value).__name__} {value!r:.80}; {slot} hooks return None, a "
        "HookDecision (Allow, Deny, Block, Stop, Continue, InjectContext)"
        + (", a ToolResult" if slot in ("pre_dispatch", "post_dispatch") else "")
        + (", a bool" if slot in ("check_permission", "should_stop", "check_done") else "")
        + ", a str"
    )
    raise HookError(bound.hook, slot, step, err) from err


def _awaitable_error(value: Any, bound: BoundHook, step: int) -> HookError:
    """A sync method returned an awaitable: looplet awaits only ``async def`` methods."""
    close = getattr(value, "close", None)
    if inspect.iscoroutine(value) and callable(close):
        close()  # never awaited: closed, so Python does not warn about it later
    err = TypeError(
        f"returned an awaitable ({type(value).__name__}) but is not declared `async def`, so "
        "looplet cannot know to await it. Declare the method `async def` and run it with "
        "async_composable_loop, or return the value itself."
    )
    error = HookError(bound.hook, bound.slot, step, err)
    error.__cause__ = err
    return error
