"""Cassettes end to end: a run recorded against the loopback server replays with it stopped.

Every test records through a real SDK (``openai`` or ``anthropic``, over ``httpx2``) against
a live loopback server, stops the server, then replays: a request that reached the network
would fail to connect, so a passing replay proves the cassette answered it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from looplet import LLMError, LoopConfig, async_composable_loop, composable_loop
from looplet.backends import AsyncOpenAIBackend, OpenAIBackend, RetryPolicy
from looplet.cassettes import CassetteMismatchError, use_cassette
from looplet.testing import ScriptedModelServer, call, error_reply, text_reply, tool_reply
from looplet.types import Step
from tests.conftest import make_tools

FAST_RETRY = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01)
SCRIPT = [
    tool_reply(call("greet", {"name": "Alice"})),
    tool_reply(call("greet", {"name": "Bob"})),
    tool_reply(call("done", {"answer": "Greeted Alice and Bob."})),
]
PROMPT = "You greet people with the greet tool, then call {done_tool}."
CHANGED_PROMPT = "You greet persons with the greet tool, then call {done_tool}."


def step_dicts(steps: list[Step]) -> list[dict[str, Any]]:
    """Steps as dicts without the timings, which differ between runs."""
    out = []
    for step in steps:
        data = step.to_dict()
        del data["tool_result"]["duration_ms"]
        out.append(data)
    return out


def run_sync(base_url: str, prompt: str = PROMPT, api_key: str | None = None) -> list[Step]:
    with openai.OpenAI(base_url=base_url, api_key=api_key) as client:
        llm = OpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
        config = LoopConfig(system_prompt=prompt)
        return list(composable_loop(llm=llm, tools=make_tools(), task="Greet them.", config=config))


def run_async_in_cassette(path: Path, base_url: str, record_mode: str) -> list[Step]:
    """Run the async loop inside ``async with use_cassette(path, record_mode)``."""

    async def go() -> list[Step]:
        async with (
            use_cassette(path, record_mode),
            openai.AsyncOpenAI(base_url=base_url, api_key="replay-no-key") as client,
        ):
            llm = AsyncOpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            loop = async_composable_loop(
                llm=llm,
                tools=make_tools(),
                task="Greet them.",
                config=LoopConfig(system_prompt=PROMPT),
            )
            return [step async for step in loop]

    return asyncio.run(go())


@pytest.fixture
def recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str, list[Step]]]:
    """A greet -> greet -> done run recorded with the sync loop; the server is stopped after."""
    path = tmp_path / "cassettes" / "greet.yaml"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-recording-key-0001")
    with ScriptedModelServer(SCRIPT) as server:
        with use_cassette(path, "once") as cassette:
            steps = run_sync(server.base_url)
        base_url = server.base_url
    assert cassette.new == 3 and path.is_file()
    monkeypatch.delenv("OPENAI_API_KEY")
    yield path, base_url, steps


# -- the acceptance test: record, stop the server, replay ------------------------------------


def test_a_recorded_sync_run_replays_identically_with_the_server_stopped(
    recorded: tuple[Path, str, list[Step]],
) -> None:
    path, base_url, steps = recorded
    assert [s.tool_call.tool for s in steps] == ["greet", "greet", "done"]
    with use_cassette(path, "none") as cassette:
        replayed = run_sync(base_url, api_key="replay-no-key")
    assert step_dicts(replayed) == step_dicts(steps)
    assert cassette.played == 3 and cassette.new == 0


def test_a_recorded_async_run_replays_identically_with_the_server_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "greet_async.yaml"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-recording-key-0002")
    with ScriptedModelServer(SCRIPT) as server:
        steps = run_async_in_cassette(path, server.base_url, "once")
        base_url = server.base_url
    monkeypatch.delenv("OPENAI_API_KEY")
    replayed = run_async_in_cassette(path, base_url, "none")
    assert [s.tool_call.tool for s in steps] == ["greet", "greet", "done"]
    assert step_dicts(replayed) == step_dicts(steps)


def test_the_sync_and_async_loops_replay_each_others_cassettes(
    recorded: tuple[Path, str, list[Step]],
) -> None:
    path, base_url, steps = recorded
    assert step_dicts(run_async_in_cassette(path, base_url, "none")) == step_dicts(steps)


# -- a changed prompt fails with a diff ------------------------------------------------------


def test_a_changed_system_prompt_fails_replay_with_a_diff_naming_the_field(
    recorded: tuple[Path, str, list[Step]],
) -> None:
    path, base_url, _ = recorded
    cassette = use_cassette(path, "none")
    with pytest.raises(CassetteMismatchError) as info, cassette:
        run_sync(base_url, prompt=CHANGED_PROMPT, api_key="replay-no-key")
    message = str(info.value)
    assert str(path) in message
    assert "request 1 of 3" in message
    assert "messages[0].content" in message
    assert "'You greet people with the greet tool, then call done.'" in message
    assert "'You greet persons with the greet tool, then call done.'" in message
    assert "record_mode='all'" in message and "--looplet-record-mode=all" in message
    assert [c.path for c in info.value.changes] == ["messages[0].content"]
    # The loop turned the backend's exception into an LLMError; the cassette kept it.
    assert isinstance(cassette.last_error, CassetteMismatchError)
    assert info.value.trajectory is not None and info.value.trajectory.steps == []


def test_the_async_loop_surfaces_the_mismatch_too(
    recorded: tuple[Path, str, list[Step]],
) -> None:
    path, base_url, _ = recorded

    async def go() -> None:
        async with (
            use_cassette(path, "none"),
            openai.AsyncOpenAI(base_url=base_url, api_key="k") as client,
        ):
            llm = AsyncOpenAIBackend(client, model="gpt-4o-mini", retry=FAST_RETRY)
            config = LoopConfig(system_prompt=CHANGED_PROMPT)
            async for _ in async_composable_loop(llm=llm, tools=make_tools(), config=config):
                pass

    with pytest.raises(CassetteMismatchError, match=r"messages\[0\]\.content"):
        asyncio.run(go())


def mismatch_in(exc: BaseException) -> CassetteMismatchError:
    """The mismatch an SDK raised: itself, or the cause of the SDK's own connection error (which
    SDK versions wrap the transport's exceptions is theirs to decide)."""
    found = exc if isinstance(exc, CassetteMismatchError) else exc.__cause__
    assert isinstance(found, CassetteMismatchError), repr(exc)
    return found


def test_the_openai_sdk_raises_the_mismatch_and_the_block_raises_it_again(
    recorded: tuple[Path, str, list[Step]],
) -> None:
    path, base_url, _ = recorded
    with (
        pytest.raises(CassetteMismatchError) as at_exit,
        use_cassette(path, "none"),
        openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client,
        pytest.raises((CassetteMismatchError, openai.APIConnectionError)) as inside,
    ):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Other."}]
        )
    # Caught inside, it still fails the block: a replay that missed a request is no replay.
    assert str(at_exit.value) == str(mismatch_in(inside.value))
    assert (at_exit.value.position, at_exit.value.recorded) == (1, 3)


# -- provider errors and streams are replayed as they were -----------------------------------


@pytest.mark.parametrize(
    ("failure", "attempts"),
    [
        (error_reply(400, "Invalid 'max_tokens': too large.", type="invalid_request_error"), 1),
        (error_reply(500, "The server had an error."), 3),  # retried: three exchanges
    ],
)
def test_a_provider_error_is_recorded_and_replayed_as_the_same_llm_error(
    tmp_path: Path, failure: Any, attempts: int
) -> None:
    path = tmp_path / "error.yaml"

    def run(base_url: str) -> LLMError:
        with pytest.raises(LLMError) as info:
            run_sync(base_url, api_key="sk-test")
        return info.value

    with ScriptedModelServer([SCRIPT[0], failure, failure, failure]) as server:
        with use_cassette(path, "once"):
            live = run(server.base_url)
        base_url = server.base_url
    with use_cassette(path, "none") as cassette:
        replayed = run(base_url)
    assert (replayed.status, replayed.attempts, str(replayed)) == (
        live.status,
        attempts,
        str(live),
    )
    assert replayed.trajectory is not None and replayed.trajectory.tools == ["greet"]
    assert cassette.played == 1 + attempts


def test_a_streamed_response_is_stored_as_text_and_replays_the_same_chunks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stream.yaml"

    def chunks(base_url: str) -> list[dict[str, Any]]:
        with openai.OpenAI(base_url=base_url, api_key="sk-test") as client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Say hello."}],
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk.model_dump() for chunk in stream]

    with ScriptedModelServer([text_reply("Hello there, friend!")]) as server:
        with use_cassette(path, "once"):
            live = chunks(server.base_url)
        base_url = server.base_url
    with use_cassette(path, "none"):
        replayed = chunks(base_url)
    assert replayed == live and len(live) > 3
    body = json.loads(path.read_text())["interactions"][0]["response"]["body"]
    assert body["lines"][0].startswith("data: {")
    assert "data: [DONE]" in body["lines"]


# -- the anthropic SDK, sync and async -------------------------------------------------------

HELLO = "Hello from the loopback."


def ask_anthropic(url: str, text: str = "Say hello.") -> str:
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-test-key", max_retries=0) as client:
        message = client.messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": text}]
        )
    block = message.content[0]
    assert block.type == "text"
    return block.text


async def ask_anthropic_async(url: str) -> str:
    async with anthropic.AsyncAnthropic(
        base_url=url, api_key="sk-ant-test-key", max_retries=0
    ) as client:
        message = await client.messages.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "Hi."}]
        )
    block = message.content[0]
    assert block.type == "text"
    return block.text


def test_the_anthropic_sdk_records_and_replays_sync(tmp_path: Path) -> None:
    path = tmp_path / "anthropic.yaml"
    with ScriptedModelServer([text_reply(HELLO)]) as server:
        url = server.url
        with use_cassette(path, "once"):
            assert ask_anthropic(url) == HELLO
    with pytest.raises(anthropic.APIConnectionError):
        ask_anthropic(url)  # nothing listens any more
    with use_cassette(path, "none") as cassette:
        assert ask_anthropic(url) == HELLO
    assert cassette.played == 1
    assert "sk-ant-test-key" not in path.read_text()


def test_the_anthropic_sdk_records_and_replays_async(tmp_path: Path) -> None:
    path = tmp_path / "anthropic_async.yaml"

    async def ask(url: str, mode: str) -> str:
        async with use_cassette(path, mode):
            return await ask_anthropic_async(url)

    with ScriptedModelServer([text_reply(HELLO)]) as server:
        url = server.url
        assert asyncio.run(ask(url, "once")) == HELLO
    assert asyncio.run(ask(url, "none")) == HELLO


def test_the_anthropic_sdk_raises_the_mismatch_and_the_cassette_raises_it(tmp_path: Path) -> None:
    path = tmp_path / "anthropic.yaml"
    with ScriptedModelServer([text_reply(HELLO)]) as server:
        url = server.url
        with use_cassette(path, "once"):
            ask_anthropic(url)
    cassette = use_cassette(path, "none")
    with (
        pytest.raises(CassetteMismatchError, match=r"messages\[0\]\.content") as info,
        cassette,
        pytest.raises((CassetteMismatchError, anthropic.APIConnectionError)) as inside,
    ):
        ask_anthropic(url, "Say goodbye.")
    assert str(mismatch_in(inside.value)) == str(info.value)
    assert "'Say hello.'" in str(info.value) and "'Say goodbye.'" in str(info.value)
    assert cassette.last_error is not None


def test_a_mismatch_under_the_anthropic_backend_is_raised_at_once_not_retried(
    tmp_path: Path,
) -> None:
    from looplet.backends import AnthropicBackend

    path = tmp_path / "anthropic-loop.yaml"
    script = [
        tool_reply(call("greet", {"name": "Alice"})),
        tool_reply(call("done", {"answer": "ok"})),
    ]

    def run(url: str, prompt: str | None, mode: str) -> None:
        # A slow retry policy: if the mismatch were retried as a connection error, the test
        # would take seconds and end in an LLMError instead.
        slow = RetryPolicy(max_retries=3, base_delay=5, max_delay=5)
        with use_cassette(path, mode), anthropic.Anthropic(base_url=url, api_key="k") as client:
            llm = AnthropicBackend(client, model="claude-sonnet-5-5", retry=slow)
            config = LoopConfig(system_prompt=prompt)
            for _ in composable_loop(llm=llm, tools=make_tools(), task="Greet.", config=config):
                pass

    with ScriptedModelServer(script) as server:
        url = server.url
        run(url, None, "once")
    with pytest.raises(CassetteMismatchError, match=r"system") as info:
        run(url, CHANGED_PROMPT, "none")
    trajectory = info.value.trajectory
    assert trajectory is not None and trajectory.stop_reason is not None
    assert trajectory.stop_reason.value == "llm_error"
    # The loop itself ended on the mismatch (retried, it would have been a connection error).
    assert isinstance(trajectory.error, CassetteMismatchError)
