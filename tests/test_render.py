"""What the model reads for a tool result: JSON exactly as json.dumps writes it, never a crash."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from looplet import (
    BaseToolRegistry,
    LoopConfig,
    StopReason,
    ToolCall,
    ToolResult,
    ToolSpec,
    composable_loop,
)
from looplet.messages import _json_encoder, render_tool_result
from looplet.testing import MockLLMBackend


class Shown:
    def __str__(self) -> str:
        return "shown"


SAMPLES: list[Any] = [
    {"greeting": "Hello, Alice!"},
    {"é": 'naïve ☃ \n\t"quoted"', "emoji": "🙂", "ctrl": "\x00\x1f"},
    {1: "int key", 2.5: "float key", False: "bool key", None: "null key"},
    [1, -2, 3.25, 1e300, -0.0, True, False, None, (4, 5)],
    {"nested": {"deeper": [{"a": []}, {}]}},
    "a plain string",
    12345678901234567890,
]


@pytest.mark.parametrize("data", SAMPLES, ids=range(len(SAMPLES)))
def test_results_encode_exactly_as_json_dumps_does(data: Any) -> None:
    encode = _json_encoder()
    assert encode(data) == json.dumps(data, ensure_ascii=False)
    expected = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    assert render_tool_result(ToolResult("t", data=data)) == expected


def test_nan_and_infinity_are_written_as_json_dumps_writes_them() -> None:
    text = render_tool_result(ToolResult("t", data=[math.nan, math.inf, -math.inf]))
    assert text == "[NaN, Infinity, -Infinity]"


def test_without_the_c_accelerator_the_full_encoder_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json.encoder

    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encode = _json_encoder()
    assert encode.__qualname__ == "JSONEncoder.encode"
    assert encode({"é": [1, None]}) == '{"é": [1, null]}'


def test_an_accelerator_with_another_signature_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import json.encoder

    def other(*args: Any) -> Any:
        raise TypeError("takes 10 arguments")

    monkeypatch.setattr(json.encoder, "c_make_encoder", other)
    assert _json_encoder().__qualname__ == "JSONEncoder.encode"


def test_circular_too_deep_and_odd_results_render_as_stand_ins() -> None:
    circular: dict[str, Any] = {"rows": [1, 2]}
    circular["self"] = circular
    assert render_tool_result(ToolResult("t", data=circular)) == (
        '{"rows": [1, 2], "self": "<circular reference>"}'
    )
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    text = render_tool_result(ToolResult("t", data=deep))
    assert '"<nested too deep>"' in text and text.count("[") == 100
    assert render_tool_result(ToolResult("t", data={"o": Shown()})) == '{"o": "shown"}'


def test_a_tool_returning_a_circular_structure_is_a_success_the_model_can_read() -> None:
    def cyclic() -> dict[str, Any]:
        node: dict[str, Any] = {"name": "root"}
        node["parent"] = node
        return node

    tools = BaseToolRegistry([ToolSpec("cyclic", "Returns a cycle.", None, cyclic)])
    llm = MockLLMBackend([ToolCall("cyclic"), ToolCall("done", {"answer": "ok"})])
    loop = composable_loop(llm=llm, tools=tools, task="t", config=LoopConfig(max_steps=3))
    steps = list(loop)
    assert steps[0].ok and loop.trajectory.stop_reason is StopReason.DONE
    tool_message = list(llm.requests[1].messages)[-1]
    assert tool_message.content == '{"name": "root", "parent": "<circular reference>"}'


def test_the_shared_encoder_is_built_once_when_threads_ask_at_the_same_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    from looplet import messages

    built: list[int] = []
    real = messages._json_encoder

    def slow_build(ensure_ascii: bool = False, default: Any = None) -> Any:
        built.append(1)
        time.sleep(0.05)  # wide open for a second thread to build too, if it could
        return real(ensure_ascii, default)

    def own_default(value: object) -> str:  # a key of its own: a fresh encoder to build
        return str(value)

    monkeypatch.setattr(messages, "_json_encoder", slow_build)
    monkeypatch.setattr(messages, "_SHARED_ENCODERS", {})
    start = threading.Barrier(8)
    got: list[Any] = []

    def ask() -> None:
        start.wait()
        got.append(messages._shared_encoder(True, own_default))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(encoder is got[0] for encoder in got)
    assert len(built) == 1
    assert got[0]({"é": Shown()}) == json.dumps({"é": Shown()}, ensure_ascii=True, default=str)
