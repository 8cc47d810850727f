"""The scripted model's scenarios that read the whole request, used only for re-recording.

:mod:`example_evals.scripted_model` plays most example cassettes from the task and the tool
results alone. The evals of conversations, memory and approvals need more of the request, as
a real model would use it: a later turn of a chat answers its newest message from what was
said before, and an agent with memory follows what its memory message says. Each scenario
here takes the request's messages (OpenAI's Chat Completions form) and returns the reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from looplet.testing import call, text_reply, tool_reply

#: A scenario gets the request's messages and returns the next reply.
Chat = Callable[[list[dict[str, Any]]], Any]

_ORDER_ID = re.compile(r"\b[A-Z]-\d{4}\b")


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return str(content)


def _result(message: dict[str, Any]) -> Any:
    try:
        return json.loads(_text(message))
    except ValueError:
        return _text(message)  # an error: "ERROR [kind]: ..."


def _this_turn(messages: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The newest user message, and the tool results that came after it."""
    last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    results = [_result(m) for m in messages[last + 1 :] if m.get("role") == "tool"]
    return _text(messages[last]), results


def _results_of(messages: list[dict[str, Any]], tool: str) -> list[Any]:
    """The results of every call of ``tool`` in the request, oldest first."""
    ids = {
        c["id"]
        for m in messages
        for c in m.get("tool_calls") or ()
        if c.get("function", {}).get("name") == tool
    }
    return [_result(m) for m in messages if m.get("tool_call_id") in ids]


def _day(iso: str) -> str:
    day = date.fromisoformat(iso)
    return f"{day:%A, %B} {day.day}"


def _support_chat(messages: list[dict[str, Any]]) -> Any:
    """eval_support_chat.py: where is my order, can I change the address, the tracking number.

    The order number is said once, in the first message; later turns find it there.
    """
    said = " ".join(_text(m) for m in messages if m.get("role") == "user")
    order_id = _ORDER_ID.findall(said)[0]
    asked, results = _this_turn(messages)
    looked_up = _results_of(messages, "look_up_order")
    if "tracking" in asked:
        if not results:
            return tool_reply(call("track_parcel", {"order_id": order_id}))
        parcel = results[0]
        return text_reply(f"Here it is: {parcel['carrier']} tracking number {parcel['tracking']}.")
    if "address" in asked:  # answered from turn one's look-up: nothing new to look up
        if looked_up and looked_up[-1]["status"] == "shipped":
            return text_reply(
                "I'm sorry: it has already shipped, so we can no longer change the address. "
                "The carrier can redirect it; ask me for the tracking number."
            )
        return text_reply("Yes: reply with the new address and I will update the order.")
    if not results:
        return tool_reply(call("look_up_order", {"order_id": order_id}))
    order = results[0]
    return text_reply(
        f"Your {order['item']} (order {order_id}) shipped on {_day(order['shipped_on'])} and "
        f"should arrive on {_day(order['expected'])}."
    )


_UNITS = {"miles": "mi", "yards": "yd", "feet": "ft"}


def _run_length(messages: list[dict[str, Any]]) -> Any:
    """eval_preferences.py: "How long is a 10 km run?" in the unit the memory asks for."""
    memory = " ".join(_text(m) for m in messages[1:] if m.get("role") == "system")
    unit = next((u for word, u in _UNITS.items() if word in memory), "km")
    _, results = _this_turn(messages)
    if not results:
        return tool_reply(call("convert", {"value": 10, "from_unit": "km", "to_unit": unit}))
    return tool_reply(call("done", {"answer": f"{results[0]['value']:.2f} {unit}"}))


def _broken_grinder(messages: list[dict[str, Any]]) -> Any:
    """eval_refunds.py: look the order up, refund it in full, and report what happened."""
    _, results = _this_turn(messages)
    if not results:
        return tool_reply(call("look_up_order", {"order_id": "A-1042"}))
    if len(results) == 1:
        args = {"order_id": "A-1042", "amount": results[0]["total"], "reason": "arrived broken"}
        return tool_reply(call("refund", args))
    outcome = results[1]
    if isinstance(outcome, dict):
        return text_reply(f"Done: ${outcome['refunded']:.2f} is on its way back to your card.")
    why = outcome.rpartition("): ")[2]  # "ERROR [permission_denied]: approval denied ...: why"
    return text_reply(
        f"I'm sorry: I asked for a full refund, but a manager declined it ({why}). "
        "Nothing has been refunded yet."
    )


#: Scenario per first user message (the task of the run, or of a chat's first turn).
CHATS: dict[str, Chat] = {
    "Hi, it's Dana. Where is my order A-1042?": _support_chat,
    "How long is a 10 km run?": _run_length,
    "Order A-1042 arrived broken. Please refund the full $249.": _broken_grinder,
}
