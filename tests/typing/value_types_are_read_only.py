"""Checked by mypy (.ci/run), never run: looplet's value types are read-only to a type checker.

Each assignment below must be a type error. Under ``--strict`` an ignore that silences no
error is itself an error, so if a type ever stopped being read-only, mypy would fail here.
"""

from looplet import HookDecision, Step, ToolCall, ToolResult
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.hooks import LoopEvent
from looplet.messages import Message
from looplet.types import Usage


def assign_fields(
    call: ToolCall,
    result: ToolResult,
    step: Step,
    usage: Usage,
    message: Message,
    request: LLMRequest,
    response: LLMResponse,
) -> None:
    call.tool = "other"  # type: ignore[misc]
    result.data = None  # type: ignore[misc]
    step.number = 2  # type: ignore[misc]
    usage.input_tokens = 0  # type: ignore[misc]
    message.content = ""  # type: ignore[misc]
    request.step = 0  # type: ignore[misc]
    response.text = ""  # type: ignore[misc]


def assign_hook_values(decision: HookDecision, event: LoopEvent) -> None:
    decision.block = "no"  # type: ignore[misc]
    event.kind = "step"  # type: ignore[misc]
