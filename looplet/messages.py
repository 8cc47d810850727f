"""The conversation the model sees, in a provider-neutral form.

A run's conversation is a list of :class:`Message`: the system prompt, the task as the first
user message, then for every turn the assistant's reply (text and tool calls) followed by one
``tool`` message per tool call holding the result. Backends translate this list into their
provider's request format (OpenAI tool messages, Anthropic ``tool_result`` blocks); nothing
here knows about a provider.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from looplet.types import ToolCall, ToolResult, _jsonable

__all__ = ["Message", "Role", "render_task", "render_tool_result"]

Role = Literal["system", "user", "assistant", "tool"]

#: How much of a tool's output is sent back to the model by default (characters).
DEFAULT_MAX_RESULT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the conversation.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: the text (for ``tool``: the rendered result the model reads).
        tool_calls: for ``assistant``: the calls the model made in this turn.
        tool_call_id: for ``tool``: the id of the call this message answers.
        name: for ``tool``: the tool's name.
        is_error: for ``tool``: whether the result is a failure.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""
    is_error: bool = False

    @classmethod
    def system(cls, text: str) -> Message:
        """A system message."""
        return cls("system", text)

    @classmethod
    def user(cls, text: str) -> Message:
        """A user message."""
        return cls("user", text)

    @classmethod
    def assistant(cls, text: str = "", tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        """An assistant turn: text, tool calls, or both."""
        return cls("assistant", text, tool_calls=tool_calls)

    @classmethod
    def tool_result(cls, result: ToolResult, content: str) -> Message:
        """The message that hands ``result`` (rendered as ``content``) back to the model."""
        return cls(
            "tool",
            content,
            tool_call_id=result.call_id,
            name=result.tool,
            is_error=result.error is not None,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, leaving out empty fields."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        if self.is_error:
            out["is_error"] = True
        return out


def render_task(task: Any) -> str:
    """The task as the text of the first user message.

    A string is used as is; a mapping becomes ``key: value`` lines (non-string values as
    JSON); a dataclass is treated as its fields; anything else is ``str(task)``.
    """
    if isinstance(task, str):
        return task
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        task = dataclasses.asdict(task)
    if isinstance(task, Mapping):
        lines = []
        for key, value in task.items():
            text = value if isinstance(value, str) else json.dumps(_jsonable(value))
            lines.append(f"{key}: {text}")
        return "\n".join(lines)
    return str(task)


def render_tool_result(result: ToolResult, max_chars: int = DEFAULT_MAX_RESULT_CHARS) -> str:
    """The text the model reads for ``result``: the data as JSON, or the error and its kind.

    Output longer than ``max_chars`` is cut, and the cut is stated so the model knows.
    """
    if result.error is not None:
        detail = result.error_detail
        if detail is not None:
            text = f"ERROR [{detail.kind.value}]: {detail.message}"
            if detail.retriable:
                text += " (retriable: the same call may succeed if repeated)"
        else:
            text = f"ERROR: {result.error}"
    elif isinstance(result.data, str):
        text = result.data
    elif result.data is None:
        text = "null"
    else:
        text = json.dumps(_jsonable(result.data), ensure_ascii=False)
    if len(text) > max_chars:
        cut = len(text) - max_chars
        text = text[:max_chars] + f"\n[... {cut} more characters cut by looplet]"
    return text
