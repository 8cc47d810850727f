"""Approval: a tool asks a human (or a policy) before it acts, and the run waits for the answer.

Permission rules (:mod:`looplet.permissions`) decide *before* a tool runs, from its name and
arguments. Some tools only know once they run that a step needs sign-off: the deployment
touches production, the refund is above the limit. Such a tool asks from inside its run:

* ``ctx.approve("deploy to production", options=["now", "tonight"])`` returns the
  :class:`Approval` once it is granted; until then it raises :class:`NeedsApproval`;
* ``raise NeedsApproval("deploy to production", options=[...])`` does the same by hand;
* the original looplet's form, data ``{"needs_approval": True, "description": ...,
  "options": [...]}`` returned by the tool, is understood too.

:class:`ApprovalHook` pauses the run for the answer. It asks its ``ask_handler`` (sync, or
``async def`` under ``async_composable_loop``) with an :class:`ApprovalRequest`:

* **approved**: the call runs again with the :class:`Approval` as ``ctx.approval`` (so
  ``ctx.approve`` now returns it), and that run's result is the step's. A tool should ask
  before its side effects: the code before ``ctx.approve`` runs twice.
* **denied**: the step's result is a ``permission_denied`` error with the reason; the model
  reads it and goes on.
* **no handler**: the run stops (``hook_stop``, detail ``waiting_for_approval: ...``) with the
  request in ``hook.pending``; :meth:`ApprovalHook.answer` records the human's answer, and the
  next time the run meets that request (a continued run, the model calling again) the
  answer applies without asking.

Every request and answer is an entry of the audit log (a
:class:`~looplet.permissions.PermissionOutcome`: the engine's ``audit_log`` when the hook is
given the :class:`~looplet.permissions.PermissionEngine`, else the hook's own) and of the
run's ``Trajectory.permission_decisions``, which run records keep. Without an
``ApprovalHook`` a request fails closed: the call is a ``permission_denied`` step.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from looplet.errors import ErrorKind, ToolError
from looplet.hooks import HookDecision, Stop
from looplet.permissions import PermissionDecision, PermissionOutcome
from looplet.types import ToolCall, ToolResult, Trajectory

if TYPE_CHECKING:
    from looplet.permissions import PermissionEngine
    from looplet.toolspec import ToolContext

__all__ = [
    "Approval",
    "ApprovalHandler",
    "ApprovalHook",
    "ApprovalRequest",
    "AsyncApprovalHook",
    "NeedsApproval",
    "approval_request",
    "read_answer",
]

#: The stop detail's prefix when a run stops to wait for an answer.
WAITING = "waiting_for_approval"

#: Answers a request: ``True``/``False``, ``"approve"``/``"deny"`` (``"allow"``, ``"yes"``,
#: ``"no"`` too), one of the request's options (approved with it), an :class:`Approval`,
#: or a ``(answer, reason)`` pair. Anything else denies. May be ``async def``.
ApprovalHandler = Callable[["ApprovalRequest"], Any]

_YES = frozenset({"approve", "approved", "allow", "yes", "y", "ok"})
_NO = frozenset({"deny", "denied", "reject", "no", "n"})


class NeedsApproval(ToolError):
    """Raised by a tool that may not go on without approval (``ctx.approve`` raises it).

    It is a ``permission_denied`` :class:`~looplet.errors.ToolError`, so without an
    :class:`ApprovalHook` the call fails closed and the model is told approval is required.

    Args:
        description: what needs approval, as the person asked will read it.
        options: the choices offered (an answer may pick one); empty: approve or deny.
    """

    def __init__(self, description: str, options: Sequence[str] = ()) -> None:
        if not isinstance(description, str) or not description.strip():
            raise TypeError(
                f"NeedsApproval(description, ...): say what needs approval, got {description!r}"
            )
        if isinstance(options, str) or not all(isinstance(o, str) for o in options):
            raise TypeError(f"NeedsApproval options must be a list of strings, got {options!r}")
        self.description = description
        self.options = tuple(options)
        super().__init__(
            ErrorKind.PERMISSION_DENIED,
            f"approval required: {description}",
            context={"needs_approval": True, "options": list(self.options)},
        )


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One tool call asking for approval, as the ask handler receives it.

    Attributes:
        step: the loop step of the call.
        tool: the tool called.
        args: the call's arguments.
        description: what needs approval.
        options: the choices offered (empty: approve or deny).
        call_id: the call's id.
    """

    step: int
    tool: str
    args: Mapping[str, Any]
    description: str
    options: tuple[str, ...] = ()
    call_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for a queue, a web form, a log)."""
        from looplet.types import _jsonable

        return {
            "step": self.step,
            "tool": self.tool,
            "args": _jsonable(dict(self.args)),
            "description": self.description,
            "options": list(self.options),
            "call_id": self.call_id,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ApprovalRequest:
        """A request from :meth:`to_dict`'s form (kept while a human decides).

        Raises:
            TypeError: a field is missing or of the wrong type (named in the message).
        """
        if not isinstance(doc, Mapping):
            raise TypeError(
                "ApprovalRequest.from_dict: an approval request is an object (what to_dict() "
                f"returns), got {type(doc).__name__}"
            )
        try:
            step, tool, args = doc["step"], doc["tool"], doc["args"]
            description, options = doc["description"], doc.get("options", [])
        except KeyError as exc:
            raise TypeError(f"not an approval request ({exc!s} missing): {doc!r:.200}") from None
        checks = (
            ("step", step, int),
            ("tool", tool, str),
            ("args", args, dict),
            ("description", description, str),
            ("options", options, list),
        )
        for name, value, kind in checks:
            if not isinstance(value, kind):
                raise TypeError(
                    f"approval request field {name!r}: expected {kind.__name__}, got {value!r}"
                )
        call_id = doc.get("call_id", "")
        return cls(step, tool, args, description, tuple(map(str, options)), str(call_id))

    def key(self) -> str:
        """What identifies the request across runs: tool, arguments and description."""
        args = json.dumps(dict(self.args), sort_keys=True, default=repr)
        return f"{self.tool}\x00{args}\x00{self.description}"


@dataclass(frozen=True, slots=True)
class Approval:
    """An answer to an :class:`ApprovalRequest`. True when approved.

    Attributes:
        approved: whether the call may go on.
        option: the option chosen, if the request offered some.
        reason: why, in the answerer's words.
        request: the request answered.
        by: who answered: ``"ask_handler"``, ``"answer"`` (given to
            :meth:`ApprovalHook.answer`) or ``"error"`` (the handler raised).
        earlier: approvals granted to the same call before this one (a tool asking twice).
    """

    approved: bool
    option: str | None = None
    reason: str = ""
    request: ApprovalRequest | None = None
    by: str = "ask_handler"
    earlier: tuple[Approval, ...] = field(default=(), repr=False)

    def __bool__(self) -> bool:
        return self.approved

    def covers(self, description: str) -> Approval | None:
        """The approval in this chain granted for ``description``, or ``None``."""
        for granted in (self, *self.earlier):
            if granted.approved and granted.request and granted.request.description == description:
                return granted
        return None


def ask_in_tool(ctx: ToolContext, description: str, options: Sequence[str]) -> Approval:
    """``ctx.approve``: the approval granted for ``description`` to this call, else raise
    :class:`NeedsApproval` (the hook asks, then runs the call again with the answer)."""
    granted = ctx.approval
    if isinstance(granted, Approval) and (found := granted.covers(description)) is not None:
        return found
    raise NeedsApproval(description, options)


def approval_request(call: ToolCall, result: ToolResult, step: int) -> ApprovalRequest | None:
    """The request ``result`` makes, or ``None``: a :class:`NeedsApproval` error, or data
    ``{"needs_approval": True, ...}`` (the original's form; any other data, a list or a
    string included, asks nothing)."""
    detail = result.error_detail
    if isinstance(detail, NeedsApproval):
        return ApprovalRequest(
            step, call.tool, call.args, detail.description, detail.options, call.call_id
        )
    data = result.data
    if result.error is not None or not isinstance(data, Mapping):
        return None
    if data.get("needs_approval") is not True:
        return None
    text = data.get("description") or data.get("message") or data.get("reason")
    description = str(text) if text else f"run {call.tool}"
    raw = data.get("options") or ()
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raw = (raw,)
    return ApprovalRequest(
        step, call.tool, call.args, description, tuple(str(o) for o in raw), call.call_id
    )


def read_answer(answer: Any, request: ApprovalRequest, by: str = "ask_handler") -> Approval:
    """An :class:`Approval` from what a handler answered (see :data:`ApprovalHandler`)."""
    reason = ""
    if isinstance(answer, tuple) and len(answer) == 2:
        answer, reason = answer[0], str(answer[1])
    if isinstance(answer, Approval):
        chosen = replace(answer, request=request, by=by, earlier=())
        return _check_option(chosen, request)
    if isinstance(answer, bool):
        return Approval(answer, None, reason, request, by)
    if isinstance(answer, str):
        if answer in request.options:
            return Approval(True, answer, reason, request, by)
        word = answer.strip().lower()
        if word in _YES:
            return Approval(True, None, reason, request, by)
        if word in _NO:
            return Approval(False, None, reason, request, by)
    offered = f"approve, deny or one of {list(request.options)}" if request.options else ""
    why = f"the answer {answer!r} is not {offered or 'approve or deny'}"
    return Approval(False, None, reason or why, request, by)


def _check_option(answer: Approval, request: ApprovalRequest) -> Approval:
    if answer.option is None or answer.option in request.options:
        return answer
    why = f"the option {answer.option!r} is not one of {list(request.options)}"
    return replace(answer, approved=False, option=None, reason=why)


class ApprovalHook:
    """Pauses a run when a tool asks for approval, and asks ``ask_handler``.

    Example::

        def ask(request):                 # a human, a policy service...
            return input(f"{request.description}? [y/n] ") == "y"

        hook = ApprovalHook(ask, engine=permissions)   # entries join the engine's audit log
        loop = composable_loop(llm, tools=tools, task=task,
                               hooks=[PermissionHook(permissions), hook])

    Args:
        ask_handler: answers each request (see :data:`ApprovalHandler`); an ``async def``
            handler needs ``async_composable_loop`` (where a slow plain ``def`` handler
            would hold up the event loop). ``None``: the run stops and waits (``pending``;
            see :meth:`answer`).
        engine: a :class:`~looplet.permissions.PermissionEngine` whose ``audit_log`` gets
            the entries (else :attr:`audit_log` is the hook's own list).
        max_asks: how many times one call may ask before it is denied (a tool that keeps
            asking).

    Attributes:
        pending: the request the run stopped for (no handler), until answered.
        audit_log: every request and its answer, as
            :class:`~looplet.permissions.PermissionOutcome` entries.
    """

    def __new__(cls, ask_handler: ApprovalHandler | None = None, **_: Any) -> ApprovalHook:
        """An ``async def`` handler gets the variant whose ``post_dispatch`` is awaited."""
        if cls is ApprovalHook and ask_handler is not None and _is_async(ask_handler):
            return super().__new__(AsyncApprovalHook)
        return super().__new__(cls)

    def __init__(
        self,
        ask_handler: ApprovalHandler | None = None,
        *,
        engine: PermissionEngine | None = None,
        max_asks: int = 3,
    ) -> None:
        if ask_handler is not None and not callable(ask_handler):
            raise TypeError(
                f"ApprovalHook(ask_handler): a function taking an ApprovalRequest, got "
                f"{type(ask_handler).__name__}"
            )
        if type(max_asks) is not int or max_asks < 1:
            raise TypeError(f"ApprovalHook(max_asks=...) must be an int >= 1, got {max_asks!r}")
        self.ask_handler = ask_handler
        self.engine = engine
        self.max_asks = max_asks
        self.audit_log: list[PermissionOutcome] = engine.audit_log if engine is not None else []
        self.pending: ApprovalRequest | None = None
        self._answers: dict[str, Approval] = {}
        self._told: set[str] = set()  # the answers the model has been told of (once each)
        self._granted: dict[str, Approval] = {}  # call id -> the approvals it was given
        self._asked: dict[str, int] = {}  # call id -> how many requests it made

    def answer(
        self, answer: Any, reason: str = "", *, request: ApprovalRequest | None = None
    ) -> Approval:
        """Answer the request the run stopped for (:attr:`pending`), as a handler would.

        The answer applies the next time that request is made (same tool, arguments and
        description): in a continued run (``conversation=``), when the model calls the tool
        again. The model is told the answer when that run starts. In another process, pass
        the ``request`` kept from the paused run (:meth:`ApprovalRequest.from_dict`).

        Raises:
            LookupError: no request is pending and none is given.
        """
        request = request if request is not None else self.pending
        if request is None:
            raise LookupError(
                "ApprovalHook.answer(): no request is pending; pass request= to answer one "
                "kept from a paused run"
            )
        given = read_answer((answer, reason) if reason else answer, request, by="answer")
        self._answers[request.key()] = given
        self._told.discard(request.key())
        if self.pending == request:
            self.pending = None
        return given

    def pre_loop(self) -> str | None:
        """Tell the model of answers given while the run was stopped (each one once: the
        answer itself waits, however many runs later, for the model to call again)."""
        untold = [key for key in self._answers if key not in self._told]
        if not untold:
            return None
        self._told.update(untold)
        lines = []
        for given in map(self._answers.__getitem__, untold):
            request = given.request
            assert request is not None  # read_answer always sets it
            verdict = f"approved (option {given.option!r})" if given.option else "approved"
            verdict = verdict if given.approved else "denied"
            why = f": {given.reason}" if given.reason else ""
            again = " Call it again to go on." if given.approved else ""
            lines.append(
                f"Your request to {request.tool} ({request.description}) was {verdict}{why}.{again}"
            )
        return "\n".join(lines)

    def post_dispatch(
        self, tool_call: ToolCall, tool_result: ToolResult, step_num: int, trajectory: Trajectory
    ) -> HookDecision | ToolResult | None:
        """Ask about a result that asks for approval; let any other pass."""
        request = approval_request(tool_call, tool_result, step_num)
        if request is None:
            self._forget(tool_call.call_id)  # the call is over
            return None
        early = self._settle(request, tool_call, tool_result, trajectory)
        if early is not None:
            return early
        assert self.ask_handler is not None
        try:
            answer = read_answer(self.ask_handler(request), request)
        except Exception as exc:
            answer = _raised(exc, request)
        return self._apply(answer, tool_call, trajectory)

    def _forget(self, call_id: str) -> None:
        if self._granted or self._asked:
            self._granted.pop(call_id, None)
            self._asked.pop(call_id, None)

    def _settle(
        self, request: ApprovalRequest, call: ToolCall, result: ToolResult, trajectory: Trajectory
    ) -> HookDecision | ToolResult | None:
        """What to do without asking the handler (``None``: ask it)."""
        granted = self._granted.get(call.call_id)
        if granted is not None and granted.covers(request.description) is not None:
            self._forget(call.call_id)
            return ToolResult.failure(
                call,
                ToolError(
                    ErrorKind.EXECUTION,
                    f"{call.tool} asked again for the approval it was given "
                    f"({request.description!r}); the tool reads ctx.approval (or calls "
                    "ctx.approve) to go on once approved",
                ),
            )
        asked = self._asked[call.call_id] = self._asked.get(call.call_id, 0) + 1
        if asked > self.max_asks:
            refused = Approval(False, None, f"asked more than {self.max_asks} times", request)
            return self._apply(refused, call, trajectory)
        stored = self._answers.pop(request.key(), None)
        self._told.discard(request.key())
        if stored is not None:
            return self._apply(stored, call, trajectory)
        if self.ask_handler is None:
            self.pending = request
            self._asked.pop(call.call_id, None)  # the call is over: the run stops
            self._record(request, None, trajectory)
            return Stop(f"{WAITING}: {request.tool}: {request.description}")
        return None

    def _apply(
        self, answer: Approval, call: ToolCall, trajectory: Trajectory
    ) -> HookDecision | ToolResult:
        request = answer.request
        assert request is not None
        self._record(request, answer, trajectory)
        if not answer.approved:
            self._forget(call.call_id)
            why = answer.reason or "no reason given"
            return ToolResult.failure(
                call,
                ToolError(
                    ErrorKind.PERMISSION_DENIED,
                    f"approval denied for {call.tool!r} ({request.description}): {why}",
                    context={"approval": "denied"},
                ),
            )
        before = self._granted.get(call.call_id)
        if before is not None:
            answer = replace(answer, earlier=(before, *before.earlier))
        self._granted[call.call_id] = answer
        return HookDecision(approval=answer)

    def _record(
        self, request: ApprovalRequest, answer: Approval | None, trajectory: Trajectory
    ) -> None:
        if answer is None:
            decision, by, asked = PermissionDecision.ASK, "approval_pending", False
            reason = f"waiting for approval: {request.description}"
        else:
            decision = PermissionDecision.ALLOW if answer.approved else PermissionDecision.DENY
            by, asked = (
                {"answer": "approval_answer", "error": "error"}.get(answer.by, "approval_handler"),
                True,
            )
            verdict = "approved" if answer.approved else "denied"
            if answer.option is not None:
                verdict += f" (option {answer.option!r})"
            reason = f"approval for {request.description!r} {verdict}" + (
                f": {answer.reason}" if answer.reason else ""
            )
        entry = PermissionOutcome(
            request.tool, request.args, decision, None, reason, by, asked, step=request.step
        )
        self.audit_log.append(entry)
        trajectory.permission_decisions.append(entry)


class AsyncApprovalHook(ApprovalHook):
    """:class:`ApprovalHook` with an ``async def`` handler (``ApprovalHook(handler)`` makes
    one): its ``post_dispatch`` is awaited by ``async_composable_loop``; ``composable_loop``
    refuses it when the run starts (:class:`~looplet.errors.AsyncHookError`)."""

    async def post_dispatch(  # type: ignore[override]
        self, tool_call: ToolCall, tool_result: ToolResult, step_num: int, trajectory: Trajectory
    ) -> HookDecision | ToolResult | None:
        """Ask about a result that asks for approval, awaiting the handler."""
        request = approval_request(tool_call, tool_result, step_num)
        if request is None:
            self._forget(tool_call.call_id)
            return None
        early = self._settle(request, tool_call, tool_result, trajectory)
        if early is not None:
            return early
        assert self.ask_handler is not None
        try:
            given = self.ask_handler(request)
            if inspect.isawaitable(given):
                given = await given
            answer = read_answer(given, request)
        except Exception as exc:
            answer = _raised(exc, request)
        return self._apply(answer, tool_call, trajectory)


def _raised(exc: Exception, request: ApprovalRequest) -> Approval:
    """A handler that raised denies (fail closed); the audit log says why."""
    why = f"the ask_handler raised {type(exc).__name__}: {exc}"
    return Approval(False, None, why, request, "error")


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(type(fn).__call__)
