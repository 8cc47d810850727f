"""Streamed runs record and replay like any other: same steps, same chunks, no network."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from looplet import async_composable_loop, composable_loop
from looplet.backends import AsyncOpenAIBackend, OpenAIBackend
from looplet.backends.base import StreamChunk
from looplet.cassettes import use_cassette
from looplet.observe import StreamingHook
from looplet.testing import ScriptedModelServer, call, tool_reply
from tests.conftest import make_tools

SCRIPT = [
    tool_reply(call("greet", {"name": "Alice"}), text="Greeting Alice first."),
    tool_reply(call("greet", {"name": "Bob"})),
    tool_reply(call("done", {"answer": "Greeted Alice and Bob."})),
]


def steps_of(traj: Any) -> list[dict[str, Any]]:
    out = []
    for step in traj.steps:
        d = step.to_dict()
        d["tool_result"].pop("duration_ms")
        out.append(d)
    return out


def run_sync(path: Path, mode: str, base_url: str) -> tuple[Any, list[StreamChunk]]:
    chunks: list[StreamChunk] = []
    with use_cassette(path, mode), openai.OpenAI(base_url=base_url, api_key="k") as client:
        llm = OpenAIBackend(client, model="gpt-4o-mini", stream=True)
        loop = composable_loop(
            llm=llm,
            tools=make_tools(),
            task="Greet Alice and Bob.",
            hooks=[StreamingHook(chunks.append)],
        )
        list(loop)
    return loop.trajectory, chunks


def run_async(path: Path, mode: str, base_url: str) -> tuple[Any, list[StreamChunk]]:
    chunks: list[StreamChunk] = []

    async def go() -> Any:
        async with (
            use_cassette(path, mode),
            openai.AsyncOpenAI(base_url=base_url, api_key="k") as client,
        ):
            llm = AsyncOpenAIBackend(client, model="gpt-4o-mini", stream=True)
            loop = async_composable_loop(
                llm=llm,
                tools=make_tools(),
                task="Greet Alice and Bob.",
                hooks=[StreamingHook(chunks.append)],
            )
            async for _ in loop:
                pass
            return loop.trajectory

    return asyncio.run(go()), chunks


@pytest.mark.parametrize("runner", [run_sync, run_async], ids=["sync", "async"])
def test_a_streamed_run_replays_with_identical_steps_and_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    path = tmp_path / "streamed.yaml"
    with ScriptedModelServer(list(SCRIPT)) as server:
        base_url = server.base_url
        recorded, recorded_chunks = runner(path, "once", base_url)
        assert all(r.body["stream"] is True for r in server.requests)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    replayed, replayed_chunks = runner(path, "none", base_url)  # the server is gone
    assert recorded.tools == ["greet", "greet", "done"]
    assert steps_of(replayed) == steps_of(recorded)
    assert replayed.usage == recorded.usage and replayed.stop_reason == recorded.stop_reason
    assert replayed_chunks == recorded_chunks and len(recorded_chunks) > 6
    assert "data:" in path.read_text()  # the SSE stream is stored as text
