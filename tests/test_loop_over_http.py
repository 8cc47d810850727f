"""The loop with the real OpenAI SDK over real HTTP: provider failures end a run cleanly.

Each test starts the loopback server with a script, so a 401, a 500 or a time-out reaches the
loop exactly as it would from a provider, through the SDK and the backend's retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from looplet import LLMError, StopReason, async_composable_loop, composable_loop
from looplet.backends import AsyncOpenAIBackend, OpenAIBackend, RetryPolicy
from looplet.testing import (
    ScriptedModelServer,
    call,
    error_reply,
    slow_reply,
    text_reply,
    tool_reply,
)
from tests.conftest import make_tools

FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01)
GREET = tool_reply(call("greet", {"name": "Alice"}))
DONE = tool_reply(call("done", {"answer": "Greeted Alice."}))


def run_over_http(script: list[Any], **client_options: Any) -> tuple[Any, ScriptedModelServer]:
    """Run the greet agent against a scripted server; return (trajectory or error, server)."""
    with ScriptedModelServer(script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", **client_options)
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            loop = composable_loop(llm=llm, tools=make_tools(), task="Greet Alice.")
            try:
                for _ in loop:
                    pass
            except LLMError as err:
                return err, server
            return loop.trajectory, server
        finally:
            client.close()


def test_401_ends_the_run_with_the_provider_message_and_the_partial_trajectory() -> None:
    script = [
        GREET,
        error_reply(401, "Incorrect API key provided: sk-test.", type="invalid_request_error"),
    ]
    err, server = run_over_http(script)
    assert isinstance(err, LLMError)
    assert (err.provider, err.status, err.attempts) == ("openai", 401, 1)
    assert "HTTP 401" in str(err) and "Incorrect API key provided" in str(err)
    assert err.trajectory is not None
    assert err.trajectory.stop_reason is StopReason.LLM_ERROR
    assert err.trajectory.tools == ["greet"]  # the step before the failure is kept
    assert len(server.requests) == 2  # a 401 is not retried


def test_500_is_retried_then_ends_the_run_as_llm_error() -> None:
    boom = error_reply(500, "The server had an error while processing your request.")
    err, server = run_over_http([GREET, boom, boom, boom])
    assert isinstance(err, LLMError)
    assert (err.status, err.attempts, err.retriable) == (500, 3, True)
    assert "The server had an error" in str(err)
    assert err.trajectory is not None and err.trajectory.tools == ["greet"]
    assert len(server.requests) == 4


def test_a_transient_500_is_survived() -> None:
    boom = error_reply(500, "overloaded")
    traj, server = run_over_http([GREET, boom, DONE])
    assert traj.stop_reason is StopReason.DONE and traj.tools == ["greet", "done"]
    assert len(server.requests) == 3


def test_timeout_ends_the_run_as_llm_error() -> None:
    slow = slow_reply(30, text_reply("too late"))
    err, _ = run_over_http([GREET, slow, slow, slow], timeout=0.2)
    assert isinstance(err, LLMError)
    assert err.status is None and err.kind == "timeout"
    assert err.trajectory is not None
    assert err.trajectory.stop_reason is StopReason.LLM_ERROR
    assert err.trajectory.tools == ["greet"]


def test_async_loop_over_http_matches_the_sync_loop() -> None:
    script = [GREET, tool_reply(call("greet", {"nmae": "Bob"})), DONE]
    sync_traj, sync_server = run_over_http(list(script))

    async def go() -> tuple[Any, list[Any]]:
        with ScriptedModelServer(list(script)) as server:
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test")
            try:
                llm = AsyncOpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
                loop = async_composable_loop(llm=llm, tools=make_tools(), task="Greet Alice.")
                async for _ in loop:
                    pass
                return loop.trajectory, [r.body for r in server.requests]
            finally:
                await client.close()

    async_traj, async_bodies = asyncio.run(go())
    assert async_traj.tools == sync_traj.tools == ["greet", "greet", "done"]
    assert [s.tool_result.error for s in async_traj.steps] == [
        s.tool_result.error for s in sync_traj.steps
    ]
    assert async_bodies == [r.body for r in sync_server.requests]


def test_malformed_arguments_from_the_provider_become_a_parse_step() -> None:
    script = [tool_reply(call("greet", '{"name": "Al')), GREET, DONE]
    traj, server = run_over_http(script)
    first = traj.steps[0]
    assert first.tool_result.error_kind.value == "parse"
    assert first.tool_call.raw_arguments == '{"name": "Al'
    # The assistant turn is echoed back to the provider with the raw arguments unchanged.
    echoed = server.requests[1].body["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert echoed == '{"name": "Al'
    assert traj.stop_reason is StopReason.DONE


def test_tool_messages_answer_every_call_of_a_parallel_turn() -> None:
    both = tool_reply(call("greet", {"name": "Alice"}), call("greet", {"name": "Bob"}))
    traj, server = run_over_http([both, DONE])
    sent = server.requests[1].body["messages"]
    ids = [c["id"] for c in sent[2]["tool_calls"]]
    assert [m["tool_call_id"] for m in sent[3:5]] == ids
    assert traj.tools == ["greet", "greet", "done"]
