"""Permissions: declarative ALLOW / DENY / ASK rules for tool calls, fail-closed, audited.

A :class:`PermissionEngine` holds rules, added fluently and checked in order; the first rule
whose tool pattern and argument matcher fit the call decides. A call no rule fits gets the
engine's default, which is DENY unless you choose otherwise. An ASK rule hands the call to
your ``ask_handler`` (a human, a policy service), **once** per call. Anything that raises on
the way (a matcher, the handler) denies the call and the audit log says why. Every decision,
allowed or not, is recorded in the audit log, which can be written as JSON lines.

:class:`PermissionHook` plugs an engine into the loop: a denied call becomes a failed step of
kind ``permission_denied`` that the model is told about, and each decision is added to
``Trajectory.permission_decisions`` so tests can assert "the agent asked before deleting".
"""

from __future__ import annotations

import enum
import fnmatch
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from looplet.hooks import Allow, Deny, HookDecision
from looplet.types import ToolCall, Trajectory

__all__ = [
    "ArgMatcher",
    "AskHandler",
    "PermissionDecision",
    "PermissionEngine",
    "PermissionHook",
    "PermissionOutcome",
    "PermissionRule",
]


class PermissionDecision(enum.StrEnum):
    """What a rule says about a call."""

    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


#: How a rule matches a call's arguments: a callable taking the args dict, or a dict mapping
#: argument names to an exact value, a compiled regex (searched in ``str(value)``) or a
#: predicate taking the value.
ArgMatcher = Callable[[Mapping[str, Any]], bool] | Mapping[str, Any] | None

#: Asked about an ASK call; returns ALLOW or DENY (``"allow"``/``"deny"``, or ``True``/``False``
#: as an ``ApprovalHook`` handler may; anything else counts as DENY), or a
#: ``(decision, reason)`` pair.
AskHandler = Callable[[ToolCall, "PermissionRule"], Any]


@dataclass(frozen=True, slots=True)
class PermissionRule:
    """One rule: for calls of tools matching ``tool`` whose arguments fit ``match``.

    Built as in the original looplet: ``PermissionRule("bash", PermissionDecision.DENY,
    arg_matcher=..., reason=...)`` (``arg_matcher=`` is the original name of ``match=``).

    Attributes:
        tool: a tool name or a glob (``"fs_*"``, ``"*"``).
        decision: ALLOW, DENY or ASK (or its string, ``"deny"``).
        match: an argument matcher (see :data:`ArgMatcher`); ``None`` fits any arguments.
        reason: why the rule exists; shown to the model on a denial and kept in the log.

    Raises:
        TypeError: ``decision`` is no decision (the message says when ``tool`` and
            ``decision`` look swapped), or both ``match`` and ``arg_matcher`` are given.
    """

    tool: str
    decision: PermissionDecision
    match: ArgMatcher = None
    reason: str = ""
    arg_matcher: InitVar[ArgMatcher] = None

    def __post_init__(self, arg_matcher: ArgMatcher) -> None:
        if arg_matcher is not None:
            if self.match is not None:
                raise TypeError(
                    "give a rule's argument matcher as match= or arg_matcher=, not both"
                )
            object.__setattr__(self, "match", arg_matcher)
        given: object = self.decision  # "deny" is accepted for DENY
        if not isinstance(given, PermissionDecision):
            try:
                object.__setattr__(self, "decision", PermissionDecision(str(given)))
            except ValueError:
                swapped = self.tool in {d.value for d in PermissionDecision}
                hint = " (tool and decision swapped? the tool comes first)" if swapped else ""
                raise TypeError(
                    f"PermissionRule(tool, decision, ...): decision must be allow, deny or ask, "
                    f"got {given!r}{hint}"
                ) from None
        if not isinstance(self.tool, str) or not self.tool:
            raise TypeError(f"a permission rule needs a tool name or glob, got {self.tool!r}")

    def matches(self, call: ToolCall) -> bool:
        """Whether the rule applies to ``call`` (a matcher that raises propagates)."""
        return _fits(self, call)

    def describe(self) -> str:
        """A short label for logs: ``deny delete_file``."""
        return f"{self.decision.value} {self.tool}" + (
            " (with argument matcher)" if self.match else ""
        )


@dataclass(frozen=True, slots=True)
class PermissionOutcome:
    """One decision about one call, as the audit log keeps it.

    Attributes:
        tool: the tool called.
        args: the call's arguments.
        decision: the final decision, ALLOW or DENY (an ASK rule is resolved before it is
            logged); ASK only for an approval still waiting for an answer
            (:class:`~looplet.approval.ApprovalHook` with no handler).
        rule: the rule that fit (``None``: the engine's default applied).
        reason: why, in words.
        decided_by: ``"rule"``, ``"default"``, ``"ask_handler"`` or ``"error"``; for an
            approval a tool asked for, ``"approval_handler"``, ``"approval_answer"`` (given
            later) or ``"approval_pending"``.
        asked: whether the ask handler was consulted.
        at: when (seconds since the epoch).
        step: the loop step of the call (0 outside the loop).
    """

    tool: str
    args: Mapping[str, Any]
    decision: PermissionDecision
    rule: PermissionRule | None
    reason: str
    decided_by: str
    asked: bool = False
    at: float = field(default_factory=time.time)
    step: int = 0

    @property
    def allowed(self) -> bool:
        """True when the call may run."""
        return self.decision is PermissionDecision.ALLOW

    @property
    def denied(self) -> bool:
        """True when the call may not run."""
        return self.decision is not PermissionDecision.ALLOW

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (one line of the JSONL audit log)."""
        from looplet.types import _jsonable

        return {
            "tool": self.tool,
            "args": _jsonable(dict(self.args)),
            "decision": self.decision.value,
            "rule": self.rule.describe() if self.rule else None,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "asked": self.asked,
            "at": self.at,
            "step": self.step,
        }


class PermissionEngine:
    """Ordered ALLOW / DENY / ASK rules; the first that fits a call decides.

    Example::

        engine = (PermissionEngine(ask_handler=ask_human)
                  .allow("read_*")
                  .ask("write_file", match={"path": re.compile(r"^/etc/")}, reason="system file")
                  .allow("write_file")
                  .deny("delete_*", reason="never delete"))
        # anything else is denied: the default is DENY

    Args:
        rules: rules to start with, checked in order.
        default: the decision for a call no rule fits (DENY: fail-closed). An ASK default
            asks the handler; without a handler it denies.
        ask_handler: decides ASK calls (see :data:`AskHandler`); without one, ASK denies.
    """

    def __init__(
        self,
        rules: Sequence[PermissionRule] = (),
        *,
        default: PermissionDecision | str = PermissionDecision.DENY,
        ask_handler: AskHandler | None = None,
    ) -> None:
        self.rules: list[PermissionRule] = list(rules)
        self.default = PermissionDecision(default)
        self.ask_handler = ask_handler
        self.audit_log: list[PermissionOutcome] = []

    def allow(
        self,
        tool: str,
        match: ArgMatcher = None,
        reason: str = "",
        *,
        arg_matcher: ArgMatcher = None,
    ) -> PermissionEngine:
        """Add an ALLOW rule; returns the engine for chaining (``arg_matcher=``: the
        original name of ``match=``)."""
        return self._add(PermissionDecision.ALLOW, tool, match, reason, arg_matcher)

    def deny(
        self,
        tool: str,
        match: ArgMatcher = None,
        reason: str = "",
        *,
        arg_matcher: ArgMatcher = None,
    ) -> PermissionEngine:
        """Add a DENY rule; returns the engine for chaining."""
        return self._add(PermissionDecision.DENY, tool, match, reason, arg_matcher)

    def ask(
        self,
        tool: str,
        match: ArgMatcher = None,
        reason: str = "",
        *,
        arg_matcher: ArgMatcher = None,
    ) -> PermissionEngine:
        """Add an ASK rule (the ask handler decides); returns the engine for chaining."""
        return self._add(PermissionDecision.ASK, tool, match, reason, arg_matcher)

    def _add(
        self,
        decision: PermissionDecision,
        tool: str,
        match: ArgMatcher,
        reason: str,
        arg_matcher: ArgMatcher,
    ) -> PermissionEngine:
        if arg_matcher is not None:
            if match is not None:
                raise TypeError(
                    "give a rule's argument matcher as match= or arg_matcher=, not both"
                )
            match = arg_matcher
        if match is not None and not callable(match) and not isinstance(match, Mapping):
            raise TypeError(
                f"match= must be a callable taking the arguments or a dict of per-argument "
                f"matchers, got {type(match).__name__}"
            )
        self.rules.append(PermissionRule(tool, decision, match, reason))
        return self

    @property
    def denials(self) -> list[dict[str, Any]]:
        """The denied calls, as the original looplet listed them: ``{"tool", "args", "rule",
        "reason"}`` (``rule``: the deciding rule's tool pattern, or ``None`` for the default).
        The full record of every decision is :attr:`audit_log`."""
        return [
            {
                "tool": o.tool,
                "args": dict(o.args),
                "rule": o.rule.tool if o.rule else None,
                "reason": o.reason,
            }
            for o in self.audit_log
            if o.decision is PermissionDecision.DENY
        ]

    def evaluate(self, call: ToolCall, *, step: int = 0) -> PermissionOutcome:
        """Decide ``call``, asking the handler at most once, and log the outcome."""
        outcome = self._decide(call, step)
        self.audit_log.append(outcome)
        return outcome

    def _decide(self, call: ToolCall, step: int) -> PermissionOutcome:
        def outcome(
            decision: PermissionDecision,
            rule: PermissionRule | None,
            reason: str,
            by: str,
            asked: bool = False,
        ) -> PermissionOutcome:
            return PermissionOutcome(
                call.tool, call.args, decision, rule, reason, by, asked, step=step
            )

        for rule in self.rules:
            try:
                fits = _fits(rule, call)
            except Exception as exc:  # a broken matcher must not let a call through
                return outcome(
                    PermissionDecision.DENY,
                    rule,
                    f"the argument matcher of rule '{rule.describe()}' raised "
                    f"{type(exc).__name__}: {exc}",
                    "error",
                )
            if not fits:
                continue
            if rule.decision is PermissionDecision.ASK:
                return self._ask(call, rule, step)
            by = "rule"
            reason = rule.reason or f"rule '{rule.describe()}'"
            return outcome(rule.decision, rule, reason, by)
        if self.default is PermissionDecision.ASK:
            return self._ask(call, None, step)
        reason = f"no rule fits '{call.tool}'; the default is {self.default.value}"
        return outcome(self.default, None, reason, "default")

    def _ask(self, call: ToolCall, rule: PermissionRule | None, step: int) -> PermissionOutcome:
        if self.ask_handler is None:
            return PermissionOutcome(
                call.tool,
                call.args,
                PermissionDecision.DENY,
                rule,
                "approval required, but no ask_handler is set",
                "default",
                step=step,
            )
        try:
            answer = self.ask_handler(call, rule or PermissionRule("*", PermissionDecision.ASK))
        except Exception as exc:
            return PermissionOutcome(
                call.tool,
                call.args,
                PermissionDecision.DENY,
                rule,
                f"the ask_handler raised {type(exc).__name__}: {exc}",
                "error",
                asked=True,
                step=step,
            )
        reason = ""
        if isinstance(answer, tuple) and len(answer) == 2:
            answer, reason = answer
        if answer is True or answer is False:  # as ApprovalHook's handlers answer
            answer = PermissionDecision.ALLOW if answer else PermissionDecision.DENY
        try:
            decision = PermissionDecision(answer)
        except ValueError:
            decision = PermissionDecision.DENY
            reason = reason or f"the ask_handler answered {answer!r}, which is not allow/deny"
        if decision is PermissionDecision.ASK:
            decision = PermissionDecision.DENY
            reason = reason or "the ask_handler answered 'ask' again"
        reason = str(reason) or f"{decision.value}ed by the ask_handler"
        return PermissionOutcome(
            call.tool, call.args, decision, rule, reason, "ask_handler", asked=True, step=step
        )

    def write_audit_log(self, path: str | Path) -> Path:
        """Write every decision so far as JSON lines to ``path`` (replacing it)."""
        import json

        target = Path(path)
        lines = (json.dumps(o.to_dict(), ensure_ascii=False) for o in self.audit_log)
        target.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return target


def _fits(rule: PermissionRule, call: ToolCall) -> bool:
    if rule.tool != call.tool and not fnmatch.fnmatchcase(call.tool, rule.tool):
        return False
    match = rule.match
    if match is None:
        return True
    if callable(match):
        return bool(match(call.args))
    for name, expected in match.items():
        if name not in call.args or not _value_fits(expected, call.args[name]):
            return False
    return True


def _value_fits(expected: Any, value: Any) -> bool:
    if hasattr(expected, "search") and hasattr(expected, "pattern"):  # a compiled regex
        return expected.search(str(value)) is not None
    if callable(expected):
        return bool(expected(value))
    return bool(expected == value)


class PermissionHook:
    """Puts a :class:`PermissionEngine` in front of every tool call of a loop.

    A denied call is not run: it becomes a failed step of kind ``permission_denied`` whose
    message (the rule's reason) the model reads. Every decision is appended to the run's
    ``Trajectory.permission_decisions``. The done tool is exempt unless ``guard_done`` is
    set: finishing a run is not a side effect a fail-closed default should block.

    Args:
        engine: the rules.
        guard_done: check the done tool too.
    """

    def __init__(self, engine: PermissionEngine, *, guard_done: bool = False) -> None:
        self.engine = engine
        self.guard_done = guard_done

    def pre_loop(self, tools: Any) -> None:
        """Warn about rules that name a tool the run does not have (likely a typo)."""
        names = list(getattr(tools, "tool_names", ()))
        for rule in self.engine.rules:
            if any(ch in rule.tool for ch in "*?[") or rule.tool in names:
                continue
            import difflib

            close = difflib.get_close_matches(rule.tool, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            warnings.warn(
                f"permission rule '{rule.describe()}' names the tool {rule.tool!r}, which this "
                f"run does not have (tools: {', '.join(names)}); the rule never applies.{hint}",
                UserWarning,
                stacklevel=2,
            )

    def check_permission(
        self, tool_call: ToolCall, step_num: int, config: Any, trajectory: Trajectory
    ) -> HookDecision | None:
        """Evaluate the call once; allow it, or deny it with the rule's reason."""
        if not self.guard_done and tool_call.tool == config.done_tool:
            return None
        outcome = self.engine.evaluate(tool_call, step=step_num)
        trajectory.permission_decisions.append(outcome)
        if outcome.allowed:
            return Allow(outcome.reason)
        return Deny(f"permission denied for {tool_call.tool!r}: {outcome.reason}")
