"""Value types: Step.pretty() in the original format, JSON forms, usage arithmetic."""

from __future__ import annotations

import json

import pytest

from looplet import ErrorKind, Step, ToolCall, ToolError, ToolResult, Trajectory
from looplet.messages import Message
from looplet.types import Usage


def step(data: object = None, error: ToolError | None = None, ms: float = 12.4) -> Step:
    call = ToolCall("greet", {"name": "Alice"}, call_id="c1")
    if error is not None:
        return Step(1, call, ToolResult.failure(call, error, duration_ms=ms))
    return Step(
        1, call, ToolResult("greet", call.args_summary(), data, duration_ms=ms, call_id="c1")
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"greeting": "hi"}, "#1 ✓ greet(name='Alice') → 1 keys [12ms]"),
        ([1, 2, 3], "#1 ✓ greet(name='Alice') → 3 items [12ms]"),
        (None, "#1 ✓ greet(name='Alice') [12ms]"),
        (3, "#1 ✓ greet(name='Alice') → 3 [12ms]"),
        ("x" * 61, "#1 ✓ greet(name='Alice') → " + "x" * 57 + "... [12ms]"),
        ("x" * 60, "#1 ✓ greet(name='Alice') → " + "x" * 60 + " [12ms]"),
    ],
)
def test_pretty_matches_the_original_format(data: object, expected: str) -> None:
    assert step(data).pretty() == expected


def test_pretty_failure_shows_cross_and_error() -> None:
    line = step(
        error=ToolError(ErrorKind.EXECUTION, "ZeroDivisionError: division by zero")
    ).pretty()
    assert (
        line
        == "#1 ✗ greet(name='Alice') → ERROR: execution: ZeroDivisionError: division by zero [12ms]"
    )


def test_pretty_omits_zero_duration_and_clips_long_arguments() -> None:
    call = ToolCall("write", {"text": "y" * 100})
    s = Step(2, call, ToolResult("write", call.args_summary(), {"ok": True}))
    assert s.pretty() == "#2 ✓ write(text='" + "y" * 36 + "...) → 1 keys"


def test_malformed_call_summary_shows_the_raw_text() -> None:
    call = ToolCall("greet", raw_arguments='{"name": "Al', parse_error="Unterminated")
    assert call.args_summary() == repr('{"name": "Al')
    assert call.to_dict()["parse_error"] == "Unterminated"


def test_step_and_trajectory_to_dict_are_json() -> None:
    s = step({"obj": object()})
    traj = Trajectory(
        task={"goal": "g"}, steps=[s], llm_calls=1, usage=Usage(3, 4), messages=[Message.user("g")]
    )
    doc = json.loads(json.dumps(traj.to_dict()))
    assert doc["steps"][0]["tool_call"]["args"] == {"name": "Alice"}
    # A value JSON cannot hold is kept by its repr, marked (looplet.record.codec).
    obj = doc["steps"][0]["tool_result"]["data"]["obj"]
    assert obj["__looplet_repr__"].startswith("<object object")
    assert obj["type"] == "builtins.object"
    assert doc["usage"] == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert doc["messages"] == [{"role": "user", "content": "g"}]


def test_failed_result_carries_the_structured_error() -> None:
    s = step(error=ToolError("validation", "missing required argument 'name'"))
    assert s.tool_result.error_kind is ErrorKind.VALIDATION
    assert s.to_dict()["tool_result"]["error_detail"]["kind"] == "validation"
    assert not s.ok


def test_usage_adds_up() -> None:
    total = Usage(1, 2) + Usage(10, 20)
    assert (total.input_tokens, total.output_tokens, total.total_tokens) == (11, 22, 33)


def test_trajectory_pretty_ends_with_the_stop_line() -> None:
    from looplet import StopReason

    traj = Trajectory(steps=[step({"a": 1})], stop_reason=StopReason.DONE, llm_calls=2)
    assert traj.pretty().splitlines()[-1].startswith("stopped: done · 1 steps · 2 model calls")
