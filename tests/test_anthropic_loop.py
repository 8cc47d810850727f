"""The loop end to end with the Anthropic backends over real HTTP, against the OpenAI ones."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import openai

from looplet import StopReason, async_composable_loop, composable_loop
from looplet.backends.anthropic import (
    AnthropicBackend,
    AsyncAnthropicBackend,
)
from looplet.backends.openai import AsyncOpenAIBackend, OpenAIBackend
from looplet.observe import StreamingHook
from looplet.testing.server import (
    ScriptedModelServer,
    ScriptItem,
    call,
    tool_reply,
)
from tests._anthropic import (
    API_KEY,
    FAST,
    MODEL,
    async_client_for,
    client_for,
)
from tests.conftest import make_tools

LOOP_SCRIPT: list[ScriptItem] = [
    tool_reply(call("greet", {"name": "Alice"}, id="toolu_g")),
    tool_reply(call("greet", {"nmae": "Bob"}, id="toolu_h")),
    tool_reply(call("done", {"answer": "Greeted Alice."}, id="toolu_d")),
]


def _steps(steps: Sequence[Any]) -> list[Any]:
    return [(s.number, s.tool_call, s.tool_result.data, s.tool_result.error) for s in steps]


class _Reminder:
    """Injects context after every tool and before every model call."""

    def post_dispatch(self, step_num: int) -> str:
        return f"Step {step_num} is done."

    def pre_prompt(self, step_num: int) -> str:
        return "Be polite."


def test_loop_gives_the_same_steps_as_with_the_openai_backend() -> None:
    with ScriptedModelServer(list(LOOP_SCRIPT)) as server, client_for(server) as client:
        loop = composable_loop(
            llm=AnthropicBackend(client, model=MODEL, retry=FAST),
            tools=make_tools(),
            task="Greet Alice.",
            hooks=[_Reminder()],
        )
        claude_steps = list(loop)
        bodies = [r.body for r in server.requests]
    with (
        ScriptedModelServer(list(LOOP_SCRIPT)) as server,
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as oa,
    ):
        openai_loop = composable_loop(
            llm=OpenAIBackend(oa, model=MODEL, retry=FAST),
            tools=make_tools(),
            task="Greet Alice.",
            hooks=[_Reminder()],
        )
        openai_steps = list(openai_loop)

    assert loop.trajectory.stop_reason is StopReason.DONE
    assert [s.tool_call.tool for s in claude_steps] == ["greet", "greet", "done"]
    assert claude_steps[1].tool_result.error  # the misspelt argument
    assert _steps(claude_steps) == _steps(openai_steps)
    # Tool results and the injected context share one user message; roles alternate.
    last = bodies[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "user"]
    assert [b["type"] for b in last[-1]["content"]] == ["tool_result", "text", "text"]
    assert last[-1]["content"][0]["tool_use_id"] == "toolu_h"
    assert "Step 2 is done." in last[-1]["content"][1]["text"]
    assert last[-1]["content"][2]["text"] == "Be polite."
    assert isinstance(bodies[-1]["system"], str) and bodies[-1]["system"]


def test_async_loop_gives_the_same_steps_and_requests_as_the_sync_loop() -> None:
    with ScriptedModelServer(list(LOOP_SCRIPT)) as server, client_for(server) as client:
        sync_loop = composable_loop(
            llm=AnthropicBackend(client, model=MODEL), tools=make_tools(), task="Greet Alice."
        )
        sync_steps = list(sync_loop)
        sync_bodies = [r.body for r in server.requests]

    async def go() -> tuple[Any, list[Any], list[Any]]:
        with ScriptedModelServer(list(LOOP_SCRIPT)) as server:
            async with async_client_for(server) as client:
                llm = AsyncAnthropicBackend(client, model=MODEL)
                loop = async_composable_loop(llm=llm, tools=make_tools(), task="Greet Alice.")
                steps = [step async for step in loop]
            return loop.trajectory, steps, [r.body for r in server.requests]

    trajectory, steps, bodies = asyncio.run(go())
    assert trajectory.stop_reason is StopReason.DONE
    assert _steps(steps) == _steps(sync_steps)
    assert bodies == sync_bodies and len(bodies) == 3


def test_async_loop_matches_the_async_openai_loop() -> None:
    async def run(use_claude: bool) -> list[Any]:
        with ScriptedModelServer(list(LOOP_SCRIPT)) as server:
            if use_claude:
                async with async_client_for(server) as client:
                    llm: Any = AsyncAnthropicBackend(client, model=MODEL)
                    return [s async for s in async_composable_loop(llm=llm, tools=make_tools())]
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as oa:
                llm = AsyncOpenAIBackend(oa, model=MODEL)
                return [s async for s in async_composable_loop(llm=llm, tools=make_tools())]

    assert _steps(asyncio.run(run(True))) == _steps(asyncio.run(run(False)))


def test_streaming_loop_forwards_chunks_to_a_streaming_hook() -> None:
    texts: list[str] = []
    arguments: list[str] = []
    hook = StreamingHook(lambda chunk: arguments.append(chunk.arguments), on_text=texts.append)
    script = [
        tool_reply(call("greet", {"name": "Alice"}), text="Greeting Alice."),
        *LOOP_SCRIPT[2:],
    ]
    with ScriptedModelServer(script) as server, client_for(server) as client:
        llm = AnthropicBackend(client, model=MODEL, stream=True)
        steps = list(composable_loop(llm=llm, tools=make_tools(), task="T", hooks=[hook]))

    assert [s.tool_call.tool for s in steps] == ["greet", "done"]
    assert "".join(texts) == "Greeting Alice."
    assert "".join(arguments) == '{"name": "Alice"}{"answer": "Greeted Alice."}'


def test_malformed_input_from_the_provider_becomes_a_parse_step_and_is_echoed_as_empty() -> None:
    script = [tool_reply(call("greet", '{"name": "Al')), *LOOP_SCRIPT]
    with ScriptedModelServer(script) as server, client_for(server) as client:
        loop = composable_loop(llm=AnthropicBackend(client, model=MODEL), tools=make_tools())
        steps = list(loop)

    assert steps[0].tool_result.error_kind == "parse"
    echoed = server.requests[1].body["messages"][1]["content"][0]
    assert (echoed["type"], echoed["input"]) == ("tool_use", {})
    assert loop.trajectory.stop_reason is StopReason.DONE
