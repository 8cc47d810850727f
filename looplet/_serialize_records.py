"""The side records of a run in a checkpoint: permission decisions and sub-agent runs.

A resumed run must come back with its whole record, not only its steps: the permission
decisions taken so far (the audit trail ``Trajectory.permission_decisions`` that evals and
reviewers read) and the runs of the sub-agents it started (``Trajectory.children``, whose
tokens ``total_usage`` adds in). Both are encoded here field by field and decoded with every
field checked, like the rest of a checkpoint (:mod:`looplet._serialize`).

Two things cannot come back, and the decoded values say so: a permission rule's argument
matcher is code, so a restored :class:`~looplet.permissions.PermissionRule` holds a stand-in
matcher that raises if used (its ``describe()`` still says it had one); and the exception
that ended a sub-agent's run comes back as a :class:`~looplet.errors.LoopletError` carrying
its text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from looplet._serialize import (
    DecodeError,
    _object,
    decode_list,
    decode_message,
    decode_step,
    decode_stop_reason,
    decode_usage,
    encode_data,
    encode_message,
    encode_step,
    encode_usage,
    field_bool,
    field_int,
    field_str,
    optional_str,
)
from looplet.errors import LoopletError
from looplet.types import Trajectory

if TYPE_CHECKING:
    from looplet.permissions import PermissionOutcome, PermissionRule

__all__ = ["decode_child", "decode_permission", "encode_child", "encode_permission"]


# -- permission decisions ----------------------------------------------------------------------


def encode_permission(outcome: PermissionOutcome) -> dict[str, Any]:
    """A permission decision, every field kept (a rule without its matcher: see above)."""
    rule = outcome.rule
    return {
        "tool": outcome.tool,
        "args": encode_data(dict(outcome.args)),
        "decision": outcome.decision.value,
        "rule": None
        if rule is None
        else {
            "decision": rule.decision.value,
            "tool": rule.tool,
            "reason": rule.reason,
            "had_matcher": rule.match is not None,
        },
        "reason": outcome.reason,
        "decided_by": outcome.decided_by,
        "asked": outcome.asked,
        "at": outcome.at,
        "step": outcome.step,
    }


def decode_permission(value: Any, where: str) -> PermissionOutcome:
    """A :class:`~looplet.permissions.PermissionOutcome` from :func:`encode_permission`'s form."""
    from looplet.permissions import PermissionOutcome

    obj = _object(value, where)
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise DecodeError(f"{where}.args", f"expected an object, got {type(args).__name__}")
    rule = obj.get("rule")
    return PermissionOutcome(
        tool=field_str(obj, "tool", where),
        args=args,
        decision=_decision(obj.get("decision"), f"{where}.decision"),
        rule=None if rule is None else _rule(rule, f"{where}.rule"),
        reason=field_str(obj, "reason", where, ""),
        decided_by=field_str(obj, "decided_by", where, ""),
        asked=field_bool(obj, "asked", where, False),
        at=_number(obj.get("at", 0.0), f"{where}.at"),
        step=field_int(obj, "step", where, 0),
    )


def _rule(value: Any, where: str) -> PermissionRule:
    from looplet.permissions import PermissionRule

    obj = _object(value, where)
    had_matcher = field_bool(obj, "had_matcher", where, False)
    return PermissionRule(
        tool=field_str(obj, "tool", where),
        decision=_decision(obj.get("decision"), f"{where}.decision"),
        match=_matcher_not_restored if had_matcher else None,
        reason=field_str(obj, "reason", where, ""),
    )


def _matcher_not_restored(args: Any) -> bool:
    """Stands in for a matcher that a checkpoint could not keep (it is code, not data).

    ``describe()`` still says the rule had a matcher. Should the rule be used again, the
    matcher raises, and a permission engine denies a call whose matcher raises.
    """
    raise LoopletError(
        "this permission rule was read back from a checkpoint: its argument matcher is code "
        "and was not saved, so it cannot decide; build the rule again to use it"
    )


def _decision(value: Any, where: str) -> Any:
    from looplet.permissions import PermissionDecision

    if not isinstance(value, str) or value not in PermissionDecision._value2member_map_:
        valid = ", ".join(d.value for d in PermissionDecision)
        raise DecodeError(where, f"expected one of {valid}, got {value!r}")
    return PermissionDecision(value)


# -- sub-agent runs -----------------------------------------------------------------------------


def encode_child(trajectory: Trajectory) -> dict[str, Any]:
    """A sub-agent's whole run, its own sub-agents included; nothing cut or rounded."""
    error = trajectory.error
    return {
        "task": encode_data(trajectory.task),
        "parent_step": trajectory.parent_step,
        "steps": [encode_step(s) for s in trajectory.steps],
        "messages": [encode_message(m) for m in trajectory.messages],
        "stop_reason": trajectory.stop_reason.value if trajectory.stop_reason else None,
        "stop_detail": trajectory.stop_detail,
        "final_text": trajectory.final_text,
        "llm_calls": trajectory.llm_calls,
        "usage": encode_usage(trajectory.usage),
        "elapsed_ms": trajectory.elapsed_ms,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "permission_decisions": [encode_permission(d) for d in trajectory.permission_decisions],
        "compactions": [encode_data(c.to_dict()) for c in trajectory.compactions],
        "children": [encode_child(c) for c in trajectory.children],
    }


def decode_child(value: Any, where: str) -> Trajectory:
    """A sub-agent's :class:`~looplet.types.Trajectory` from :func:`encode_child`'s form."""
    obj = _object(value, where)
    parent_step = obj.get("parent_step")
    if parent_step is not None:
        parent_step = field_int(obj, "parent_step", where)
    error = optional_str(obj, "error", where)
    return Trajectory(
        task=obj.get("task"),
        steps=decode_list(obj.get("steps", []), f"{where}.steps", decode_step),
        stop_reason=decode_stop_reason(obj.get("stop_reason"), f"{where}.stop_reason"),
        stop_detail=field_str(obj, "stop_detail", where, ""),
        llm_calls=field_int(obj, "llm_calls", where, 0),
        usage=decode_usage(obj.get("usage", {}), f"{where}.usage"),
        messages=decode_list(obj.get("messages", []), f"{where}.messages", decode_message),
        elapsed_ms=_number(obj.get("elapsed_ms", 0.0), f"{where}.elapsed_ms"),
        final_text=field_str(obj, "final_text", where, ""),
        error=None if error is None else LoopletError(error),
        permission_decisions=decode_list(
            obj.get("permission_decisions", []),
            f"{where}.permission_decisions",
            decode_permission,
        ),
        compactions=decode_list(obj.get("compactions", []), f"{where}.compactions", _compaction),
        children=decode_list(obj.get("children", []), f"{where}.children", decode_child),
        parent_step=parent_step,
    )


def _compaction(value: Any, where: str) -> Any:
    from looplet.compact import CompactionRecord

    try:
        return CompactionRecord(**_object(value, where))
    except TypeError as exc:
        raise DecodeError(where, str(exc)) from None


# -- fields ------------------------------------------------------------------------------------


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(where, f"expected a number, got {value!r}")
    return float(value)
