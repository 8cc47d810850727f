"""A customer-support agent for a small coffee-gear shop, talking with a customer in a chat.

It looks orders up, tracks parcels and refunds. It has no ``done`` tool: each turn of the
chat ends when it answers the customer in plain text (stop reason ``final_text``). A refund
above :data:`REFUND_LIMIT` needs a manager's approval, which the refund tool asks for with
``ctx.approve`` before it pays anything; the loop's ``ApprovalHook`` takes the question to
whoever decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from looplet import BaseToolRegistry, LoopConfig, PermissionEngine, ToolContext, ToolError, tool

SYSTEM_PROMPT = (
    "You are the support agent of Bean & Burr, a coffee-gear shop, chatting with a customer. "
    "Look an order up before saying anything about it; never guess. Refunds over $100 need a "
    "manager's approval, which the refund tool asks for: if it is refused, tell the customer "
    "why and do not try again. Answer briefly, in plain text."
)

#: Refunds above this many dollars need a manager's approval.
REFUND_LIMIT = 100.0

#: The shop's orders (a real agent would ask the shop's API).
ORDERS: dict[str, dict[str, Any]] = {
    "A-1042": {
        "item": "Burr grinder",
        "total": 249.0,
        "status": "shipped",
        "shipped_on": "2026-12-07",
        "carrier": "DHL",
        "expected": "2026-12-11",
        "tracking": "JD014600006281",
    },
}


def _order(order_id: str) -> dict[str, Any]:
    order = ORDERS.get(order_id.strip().upper())
    if order is None:
        raise ToolError("validation", f"no order {order_id!r}; ask the customer for the number")
    return order


@tool(concurrent_safe=True)
def look_up_order(order_id: str) -> dict[str, Any]:
    """An order's item, total, status and expected delivery date.

    Args:
        order_id: the order number, e.g. "A-1042".
    """
    order = _order(order_id)
    return {key: order[key] for key in ("item", "total", "status", "shipped_on", "expected")}


@tool(concurrent_safe=True)
def track_parcel(order_id: str) -> dict[str, str]:
    """The carrier and tracking number of a shipped order.

    Args:
        order_id: the order number.
    """
    order = _order(order_id)
    if order["status"] != "shipped":
        raise ToolError("validation", f"order {order_id} has not shipped yet")
    return {"carrier": order["carrier"], "tracking": order["tracking"]}


@tool
def refund(order_id: str, amount: float, reason: str, ctx: ToolContext) -> dict[str, Any]:
    """Refund part or all of an order to the customer's card.

    Args:
        order_id: the order number.
        amount: how many dollars to refund, at most the order's total.
        reason: why, in a few words.
    """
    order = _order(order_id)
    if not 0 < amount <= order["total"]:
        raise ToolError("validation", f"refund between $0 and ${order['total']:.2f}")
    if amount > REFUND_LIMIT:
        # Ask before paying: denied, the step fails with the manager's reason; approved,
        # this call runs again and ctx.approve returns the approval.
        ctx.approve(f"refund ${amount:.2f} on order {order_id} ({reason})")
    ledger = Path(ctx.workspace_root) / "refunds.jsonl"
    with ledger.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"order_id": order_id, "amount": amount, "reason": reason}) + "\n")
    return {"refunded": amount, "order_id": order_id}


def build_tools() -> BaseToolRegistry:
    """The support agent's tools."""
    return BaseToolRegistry([look_up_order, track_parcel, refund])


def build_permissions() -> PermissionEngine:
    """Every tool of the agent may run (a big refund still asks, from inside the tool)."""
    return PermissionEngine().allow("look_up_order").allow("track_parcel").allow("refund")


def build_config(max_steps: int = 6) -> LoopConfig:
    """The support agent's loop settings: each turn of the chat gets ``max_steps`` steps."""
    return LoopConfig(max_steps=max_steps, system_prompt=SYSTEM_PROMPT, temperature=0.0)
