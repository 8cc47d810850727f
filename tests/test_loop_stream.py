"""``stream=`` on the loop: token, model-call, step and loop events to a function or an
:class:`~looplet.streaming.EventStream`, with the real ``openai`` and ``anthropic`` SDKs
streaming from looplet's loopback server.

What must hold: the token events of each model call add up to the reply the trajectory
records, the step events are the trajectory's steps in order, ``loop_end`` comes last; an
``EventStream`` yields that same sequence and ends when the run ends (finished, failed or
cancelled); a reader that stops reading leaves no run going and nothing hanging; a run
without ``stream=`` is untouched.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from looplet import StopReason, async_composable_loop, composable_loop
from looplet.backends.anthropic import AnthropicBackend, AsyncAnthropicBackend
from looplet.backends.base import LLMRequest, LLMResponse, RetryPolicy, StreamChunk
from looplet.backends.openai import AsyncOpenAIBackend, OpenAIBackend
from looplet.errors import ConfigurationError, HookError, LLMError
from looplet.hooks import LoopEvent
from looplet.streaming import EventStream
from looplet.testing import MockLLMBackend, ScriptedModelServer, call, error_reply, tool_reply
from looplet.testing.server import ScriptItem, slow_reply
from looplet.types import Step, ToolCall, Trajectory
from tests._anthropic import async_client_for, client_for
from tests.conftest import make_tools

API_KEY = "sk-test"
FAST = RetryPolicy(max_retries=0)

#: Two model turns, each with text and a tool call, so both kinds of delta stream.
SCRIPT = [
    tool_reply(call("greet", {"name": "Alice"}), text="Greeting Alice now."),
    tool_reply(call("done", {"answer": "Greeted Alice."}), text="All done, thanks."),
]


class Recorder:
    """A hook keeping every event its run delivers (to see what the run's hooks were told)."""

    def __init__(self) -> None:
        self.events: list[LoopEvent] = []
        self.stepped = threading.Event()

    def on_event(self, event: LoopEvent) -> None:
        self.events.append(event)
        if event.kind == "step":
            self.stepped.set()


def kinds(events: list[LoopEvent]) -> list[str]:
    """The kinds, with a call's token events folded into one ``llm_chunk*``."""
    out: list[str] = []
    for event in events:
        kind = "llm_chunk*" if event.kind == "llm_chunk" else event.kind
        if not out or out[-1] != kind or kind != "llm_chunk*":
            out.append(kind)
    return out


def per_call(events: list[LoopEvent]) -> list[tuple[str, str, LLMResponse]]:
    """For each model call: its token text, its tool-argument deltas, and its reply."""
    calls: list[tuple[str, str, LLMResponse]] = []
    texts: list[str] = []
    arguments: list[str] = []
    for event in events:
        if event.kind == "llm_call":
            texts, arguments = [], []
        elif event.kind == "llm_chunk":
            chunk: StreamChunk = event.data["chunk"]
            texts.append(chunk.text)
            arguments.append(chunk.arguments)
        elif event.kind == "llm_response":
            calls.append(("".join(texts), "".join(arguments), event.data["response"]))
    return calls


def check_stream(events: list[LoopEvent], trajectory: Trajectory) -> None:
    """The events tell the run the trajectory records, in order, tokens included."""
    assert kinds(events) == [
        "loop_start",
        *["llm_call", "llm_chunk*", "llm_response", "step"] * len(trajectory.steps),
        "loop_end",
    ]
    assert events[-1].data["trajectory"] is trajectory
    steps = [e.data["step"] for e in events if e.kind == "step"]
    assert steps == trajectory.steps and all(
        a is b for a, b in zip(steps, trajectory.steps, strict=True)
    )
    replies = [m for m in trajectory.messages if m.role == "assistant"]
    calls = per_call(events)
    assert len(calls) == len(replies) == 2
    for (text, arguments, response), message in zip(calls, replies, strict=True):
        assert text == response.text == message.content  # the deltas add up to the reply
        assert arguments == "".join(json.dumps(c.args) for c in message.tool_calls)
    pieces = [e for e in events if e.kind == "llm_chunk" and e.data["chunk"].text]
    assert len(pieces) > len(calls)  # streamed in pieces, not whole
    usage = [r.usage for _, _, r in calls]
    assert sum(u.output_tokens for u in usage) == trajectory.usage.output_tokens > 0


def run_openai(
    mode: str, stream: Any, *, backend_streams: bool = False, script: Any = SCRIPT
) -> tuple[ScriptedModelServer, Trajectory, Any]:
    """Run the loop over the real openai SDK against the loopback server, ``stream=stream``.

    Returns the server, the trajectory and the backend passed in.
    """
    with ScriptedModelServer(list(script)) as server:
        if mode == "sync":
            with openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as client:
                llm = OpenAIBackend(client, model="gpt-test", retry=FAST, stream=backend_streams)
                loop = composable_loop(llm, "Greet Alice.", make_tools(), stream=stream)
                try:
                    list(loop)
                finally:
                    trajectory = loop.trajectory
        else:

            async def go() -> tuple[Trajectory, Any]:
                async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as c:
                    llm = AsyncOpenAIBackend(
                        c, model="gpt-test", retry=FAST, stream=backend_streams
                    )
                    run = async_composable_loop(llm, "Greet Alice.", make_tools(), stream=stream)
                    try:
                        async for _ in run:
                            pass
                    finally:
                        result = (run.trajectory, llm)
                    return result

            trajectory, llm = asyncio.run(go())
    return server, trajectory, llm


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


# -- a function as stream= ----------------------------------------------------------------


@MODES
@pytest.mark.parametrize("backend_streams", [False, True])
def test_callback_gets_tokens_calls_steps_and_the_end(mode: str, backend_streams: bool) -> None:
    events: list[LoopEvent] = []
    server, trajectory, llm = run_openai(mode, events.append, backend_streams=backend_streams)

    check_stream(events, trajectory)
    assert trajectory.stop_reason is StopReason.DONE
    # stream= streamed the run even from a backend built without stream=True, through a copy:
    assert all(r.body["stream"] is True for r in server.requests)
    assert llm.stream is backend_streams  # the backend passed in is unchanged
    assert llm.last_usage == per_call(events)[-1][2].usage  # ...and its last_usage kept


def test_async_def_callback_is_awaited_with_every_event_in_order() -> None:
    events: list[LoopEvent] = []

    async def take(event: LoopEvent) -> None:
        await asyncio.sleep(0)
        events.append(event)

    _, trajectory, _ = run_openai("async", take)

    check_stream(events, trajectory)


def test_an_anthropic_run_streams_the_same_way() -> None:
    events: list[LoopEvent] = []
    with ScriptedModelServer(list(SCRIPT)) as server, client_for(server) as client:
        llm = AnthropicBackend(client, model="claude-test", retry=FAST)
        loop = composable_loop(llm, "Greet Alice.", make_tools(), stream=events.append)
        list(loop)

    check_stream(events, loop.trajectory)
    assert all(r.body["stream"] is True for r in server.requests)
    assert llm.stream is False


def test_an_anthropic_event_stream_in_the_async_loop() -> None:
    async def go() -> tuple[list[LoopEvent], Trajectory]:
        with ScriptedModelServer(list(SCRIPT)) as server:
            async with async_client_for(server) as client:
                llm = AsyncAnthropicBackend(client, model="claude-test", retry=FAST)
                events = EventStream()
                async_composable_loop(llm, "Greet Alice.", make_tools(), stream=events)
                return [e async for e in events], events.trajectory

    events, trajectory = asyncio.run(go())

    check_stream(events, trajectory)


# -- an EventStream ---------------------------------------------------------------------------


@MODES
def test_event_stream_yields_what_the_callback_gets_and_ends_with_the_run(mode: str) -> None:
    told: list[LoopEvent] = []
    run_openai(mode, told.append)
    read: list[LoopEvent] = []
    events = EventStream()
    with ScriptedModelServer(list(SCRIPT)) as server:
        if mode == "sync":
            with openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as client:
                llm = OpenAIBackend(client, model="gpt-test", retry=FAST)
                run = composable_loop(llm, "Greet Alice.", make_tools(), stream=events)
                read = list(events)  # it runs the loop, and ends with it
        else:

            async def go() -> Any:
                async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as c:
                    llm = AsyncOpenAIBackend(c, model="gpt-test", retry=FAST)
                    run = async_composable_loop(llm, "Greet Alice.", make_tools(), stream=events)
                    read.extend([e async for e in events])
                    return run

            run = asyncio.run(go())

    check_stream(read, run.trajectory)
    assert events.trajectory is run.trajectory
    assert run.trajectory.stop_reason is StopReason.DONE
    assert [(e.kind, e.step_num) for e in read] == [(e.kind, e.step_num) for e in told]
    assert per_call(read)[0][:2] == per_call(told)[0][:2]


FAILING: list[ScriptItem] = [
    SCRIPT[0],
    error_reply(400, "The model refused.", type="invalid_request_error"),
]


@MODES
def test_event_stream_ends_on_a_model_error_with_loop_end_then_the_error(mode: str) -> None:
    read: list[LoopEvent] = []
    events = EventStream()
    with ScriptedModelServer(FAILING) as server:
        if mode == "sync":
            with openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as client:
                llm = OpenAIBackend(client, model="gpt-test", retry=FAST)
                composable_loop(llm, "Greet Alice.", make_tools(), stream=events)
                with pytest.raises(LLMError) as raised:
                    for event in events:
                        read.append(event)
        else:

            async def go() -> Any:
                async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as c:
                    llm = AsyncOpenAIBackend(c, model="gpt-test", retry=FAST)
                    async_composable_loop(llm, "Greet Alice.", make_tools(), stream=events)
                    with pytest.raises(LLMError) as raised:
                        async for event in events:
                            read.append(event)
                    return raised

            raised = asyncio.run(go())

    assert kinds(read) == [
        "loop_start",
        *["llm_call", "llm_chunk*", "llm_response", "step"],
        "llm_call",  # the failed call: no llm_response
        "loop_end",
    ]
    trajectory = read[-1].data["trajectory"]
    assert trajectory.stop_reason is StopReason.LLM_ERROR
    assert raised.value.trajectory is trajectory is events.trajectory
    assert raised.value.status == 400


def test_callback_sees_loop_end_last_when_the_model_fails() -> None:
    events: list[LoopEvent] = []
    with pytest.raises(LLMError):
        run_openai("sync", events.append, script=FAILING)

    assert events[-1].kind == "loop_end" and events[-2].kind == "llm_call"
    assert events[-1].data["trajectory"].stop_reason is StopReason.LLM_ERROR


def test_cancelling_the_reader_cancels_the_model_call_and_ends_the_run() -> None:
    recorder = Recorder()
    events = EventStream()

    async def go(server: ScriptedModelServer) -> Any:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as client:
            llm = AsyncOpenAIBackend(client, model="gpt-test", retry=FAST)
            run = async_composable_loop(
                llm, "Greet Alice.", make_tools(), hooks=[recorder], stream=events
            )
            second_call = asyncio.Event()

            async def read() -> None:
                async for event in events:
                    if event.kind == "llm_call" and event.step_num == 2:
                        second_call.set()

            reader = asyncio.create_task(read())
            await second_call.wait()  # the reader is waiting on a model call that hangs
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            return run.trajectory

    # The second reply would come after 60 s; the server ends that wait when it stops.
    with ScriptedModelServer([SCRIPT[0], slow_reply(60, SCRIPT[1])]) as server:
        trajectory = asyncio.run(go(server))

    assert trajectory.stop_reason is StopReason.CANCELLED
    assert [s.tool_call.tool for s in trajectory.steps] == ["greet"]
    assert recorder.events[-1].kind == "loop_end"  # the run's hooks were told it ended


def test_a_reader_that_stops_reading_pauses_the_run_and_closing_it_ends_it() -> None:
    recorder = Recorder()
    events = EventStream()

    async def go(server: ScriptedModelServer) -> Any:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as client:
            llm = AsyncOpenAIBackend(client, model="gpt-test", retry=FAST)
            run = async_composable_loop(
                llm, "Greet Alice.", make_tools(), hooks=[recorder], stream=events
            )
            reader = aiter(events)
            while (await anext(reader)).kind != "llm_chunk":
                pass
            # The reader stops here, mid-reply. The step in flight finishes on its own...
            assert await asyncio.to_thread(recorder.stepped.wait, 60)
            # ...and the run goes no further while nobody reads: no second model call.
            for _ in range(20):
                await asyncio.sleep(0)
            assert len(server.requests) == 1
            await reader.aclose()  # type: ignore[attr-defined]
            return run.trajectory

    with ScriptedModelServer(list(SCRIPT)) as server:
        trajectory = asyncio.run(go(server))

    assert len(server.requests) == 1
    assert trajectory.stop_reason is StopReason.CANCELLED
    assert [s.tool_call.tool for s in trajectory.steps] == ["greet"]
    assert recorder.events[-1].kind == "loop_end"


@MODES
def test_the_run_waits_for_the_reader_before_its_next_step(mode: str) -> None:
    recorder = Recorder()
    greet = LLMResponse("", (ToolCall("greet", {"name": "Bo"}),))
    llm = MockLLMBackend([greet, greet, DONE])
    events = EventStream()
    held: list[bool] = []  # at each step read: the run has done nothing since

    if mode == "sync":
        composable_loop(llm, "Hi.", make_tools(), hooks=[recorder], stream=events)
        for event in events:
            if event.kind == "step":
                held.append(recorder.events[-1] is event)
    else:

        async def go() -> None:
            async_composable_loop(llm, "Hi.", make_tools(), hooks=[recorder], stream=events)
            async for event in events:
                if event.kind == "step":
                    for _ in range(10):  # room for a run that went on by itself
                        await asyncio.sleep(0)
                    held.append(recorder.events[-1] is event)

        asyncio.run(go())

    assert held == [True, True, True]
    assert events.trajectory.stop_reason is StopReason.DONE


def test_breaking_out_of_a_sync_event_stream_ends_the_run_and_leaves_no_thread() -> None:
    recorder = Recorder()
    events = EventStream()
    with (
        ScriptedModelServer(list(SCRIPT)) as server,
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as client,
    ):
        llm = OpenAIBackend(client, model="gpt-test", retry=FAST)
        run = composable_loop(llm, "Greet Alice.", make_tools(), hooks=[recorder], stream=events)
        for event in events:
            if event.kind == "llm_chunk":
                break  # mid-reply: the step thread is still receiving it
        for thread in threading.enumerate():
            if thread.name == "looplet-stream":
                thread.join(60)
        assert not any(t.name == "looplet-stream" for t in threading.enumerate())

    assert len(server.requests) == 1
    assert run.trajectory.stop_reason is StopReason.CANCELLED
    assert [s.tool_call.tool for s in run.trajectory.steps] == ["greet"]
    assert recorder.events[-1].kind == "loop_end"


# -- token events reach the reader while the model is still answering ------------------------

DONE = LLMResponse("Hello", (ToolCall("done", {"answer": "hi"}),))


class Handshake:
    """A backend that streams a first piece, then waits for the reader to have it before
    it finishes its reply: with events held back until the call returned, it would wait
    in vain (``released`` False)."""

    def __init__(self) -> None:
        self.read = threading.Event()
        self.released: bool | None = None

    def complete(self, request: LLMRequest) -> LLMResponse:
        assert request.on_chunk is not None
        request.on_chunk(StreamChunk(text="Hel"))
        self.released = self.read.wait(30)
        request.on_chunk(StreamChunk(text="lo"))
        return DONE


class AsyncHandshake(Handshake):
    """:class:`Handshake` with ``acomplete``, waiting on the event loop."""

    complete = None  # type: ignore[assignment]

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        assert request.on_chunk is not None
        request.on_chunk(StreamChunk(text="Hel"))
        self.released = await asyncio.to_thread(self.read.wait, 30)
        request.on_chunk(StreamChunk(text="lo"))
        return DONE


def texts_until_released(events: Iterator[LoopEvent], backend: Handshake) -> list[str]:
    texts: list[str] = []
    for event in events:
        if event.kind == "llm_chunk":
            texts.append(event.data["chunk"].text)
            backend.read.set()
    return texts


@pytest.mark.parametrize(
    "loop, backend_cls",
    [("sync", Handshake), ("async", Handshake), ("async", AsyncHandshake)],
)
def test_token_events_reach_the_reader_while_the_call_is_in_flight(
    loop: str, backend_cls: Callable[[], Handshake]
) -> None:
    backend = backend_cls()
    events = EventStream()
    if loop == "sync":
        composable_loop(backend, "Hi.", make_tools(), stream=events)
        texts = texts_until_released(iter(events), backend)
    else:

        async def go() -> list[str]:
            async_composable_loop(backend, "Hi.", make_tools(), stream=events)
            texts: list[str] = []
            async for event in events:
                if event.kind == "llm_chunk":
                    texts.append(event.data["chunk"].text)
                    backend.read.set()
            return texts

        texts = asyncio.run(go())

    assert backend.released is True
    assert texts == ["Hel", "lo"]
    assert events.trajectory.stop_reason is StopReason.DONE


# -- what stream= refuses, and runs without it -----------------------------------------------


def mock() -> MockLLMBackend:
    return MockLLMBackend([DONE])


@pytest.mark.parametrize("target", [True, "events", 3])
def test_stream_takes_a_function_or_an_event_stream(target: object) -> None:
    with pytest.raises(ConfigurationError, match="EventStream"):
        composable_loop(mock(), "Hi.", make_tools(), stream=target)  # type: ignore[arg-type]


def test_an_async_callback_needs_the_async_loop() -> None:
    async def take(event: LoopEvent) -> None:
        pass

    with pytest.raises(ConfigurationError, match="async_composable_loop"):
        composable_loop(mock(), "Hi.", make_tools(), stream=take)


def test_an_event_stream_serves_one_run_read_once_in_its_own_loop() -> None:
    events = EventStream()
    with pytest.raises(ConfigurationError, match="not attached"):
        iter(events)
    composable_loop(mock(), "Hi.", make_tools(), stream=events)
    with pytest.raises(ConfigurationError, match="one run"):
        composable_loop(mock(), "Hi.", make_tools(), stream=events)
    with pytest.raises(ConfigurationError, match="for event in events"):
        aiter(events)
    assert [e.kind for e in events][-1] == "loop_end"
    with pytest.raises(ConfigurationError, match="read already"):
        iter(events)


def test_iterating_the_run_instead_of_its_event_stream_says_what_to_do() -> None:
    events = EventStream()
    run = composable_loop(mock(), "Hi.", make_tools(), stream=events)
    with pytest.raises(HookError, match="iterate the stream"):
        list(run)


def test_a_raising_callback_ends_the_run_as_a_hook_error() -> None:
    def fail(event: LoopEvent) -> None:
        if event.kind == "step":
            raise RuntimeError("screen is gone")

    run = composable_loop(mock(), "Hi.", make_tools(), stream=fail)
    with pytest.raises(HookError, match="screen is gone"):
        list(run)
    assert run.trajectory.stop_reason is StopReason.HOOK_ERROR


@MODES
def test_a_run_without_stream_is_untouched(mode: str) -> None:
    server, trajectory, llm = run_openai(mode, None)

    assert all("stream" not in r.body for r in server.requests)
    assert trajectory.stop_reason is StopReason.DONE and llm.stream is False


def test_looplet_streaming_loads_only_for_a_run_with_stream() -> None:
    code = (
        "import sys, looplet\n"
        "from looplet.testing import MockLLMBackend\n"
        "from looplet.backends.base import LLMResponse\n"
        "from looplet.types import ToolCall\n"
        "from tests.conftest import make_tools\n"
        "llm = MockLLMBackend([LLMResponse('', (ToolCall('done', {'answer': 'x'}),))] * 2)\n"
        "list(looplet.composable_loop(llm, 'Hi.', make_tools()))\n"
        "print('looplet.streaming' in sys.modules)\n"
        "list(looplet.composable_loop(llm, 'Hi.', make_tools(), stream=lambda e: None))\n"
        "print('looplet.streaming' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]


def test_step_events_carry_the_steps_the_loop_yields() -> None:
    events: list[LoopEvent] = []
    llm = MockLLMBackend([LLMResponse("", (ToolCall("greet", {"name": "Bo"}),)), DONE])
    steps: list[Step] = list(composable_loop(llm, "Hi.", make_tools(), stream=events.append))

    assert [e.data["step"] for e in events if e.kind == "step"] == steps
    assert [e.kind for e in events if e.kind != "llm_chunk"] == [
        "loop_start",
        *["llm_call", "llm_response", "step"] * 2,
        "loop_end",
    ]
