"""Bad input is an error step or a clear error, never a crash (each test is an attack).

What a backend returns (arguments that are no object or nested without end, something that
is no LLMResponse, lone surrogates, repeated call ids), a hook's rewrite that permissions
refuse, a cassette folder that cannot be written and a run file holding binary data: each
goes through the door a user would use (the loop, the real OpenAI SDK over loopback HTTP,
the cassette API, the pytest plugin, the ``looplet`` command).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from looplet import (
    BaseToolRegistry,
    ErrorKind,
    HookDecision,
    HookError,
    LLMError,
    PermissionEngine,
    PermissionHook,
    StopReason,
    ToolCall,
    ToolSpec,
    Trajectory,
    async_composable_loop,
    composable_loop,
)
from looplet.backends import AsyncOpenAIBackend, LLMRequest, LLMResponse, OpenAIBackend
from looplet.cassettes import CassetteError, use_cassette
from looplet.checkpoint import FileCheckpointStore
from looplet.provenance import ProvenanceError, ProvenanceSink
from looplet.testing import MockLLMBackend, ScriptedModelServer, call, text_reply, tool_reply
from tests._greeter import CONFTEST, recording
from tests.conftest import make_tools

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DEEP = 100_000
GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})


class Scripted:
    """A user's own backend: returns each scripted item as is (a callable is called with the
    request first), with ``complete`` and ``acomplete``; records the requests."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.requests: list[LLMRequest] = []

    def complete(self, request: LLMRequest) -> Any:
        self.requests.append(request)
        item = self.replies.pop(0)
        return item(request) if callable(item) else item

    async def acomplete(self, request: LLMRequest) -> Any:
        return self.complete(request)


def turn(*calls: ToolCall, text: str = "") -> LLMResponse:
    return LLMResponse(text=text, tool_calls=calls)


def run(mode: str, llm: Any, **kwargs: Any) -> Trajectory:
    """Run the greet agent to its end with the sync or async driver; its trajectory."""
    if mode == "async":
        return asyncio.run(arun(llm, **kwargs))
    kwargs.setdefault("tools", make_tools())
    loop = composable_loop(llm=llm, task="Greet Alice.", **kwargs)
    for _ in loop:
        pass
    return loop.trajectory


async def arun(llm: Any, **kwargs: Any) -> Trajectory:
    kwargs.setdefault("tools", make_tools())
    loop = async_composable_loop(llm=llm, task="Greet Alice.", **kwargs)
    async for _ in loop:
        pass
    return loop.trajectory


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    inner = root
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return root


def tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def greeter(greet: Callable[..., Any]) -> BaseToolRegistry:
    """The greet agent's tools, with ``greet`` doing what the test needs."""
    tools = BaseToolRegistry()
    tools.register(ToolSpec("greet", "Greet someone.", {"name": "str"}, greet))
    tools.register(ToolSpec("done", "Finish.", {"answer": "str"}, lambda *, answer: answer))
    return tools


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


# -- arguments that are not a JSON object ------------------------------------------------------


@MODES
@pytest.mark.parametrize("args", [[1, 2], None, 3], ids=["list", "None", "number"])
def test_arguments_that_are_not_an_object_are_an_error_step_the_model_sees(
    mode: str, args: Any
) -> None:
    greeted: list[str] = []
    tools = greeter(lambda *, name: greeted.append(name))
    llm = Scripted(turn(ToolCall("greet", args, call_id="c1")), turn(GREET), turn(DONE))
    traj = run(mode, llm, tools=tools)

    assert traj.stop_reason is StopReason.DONE and traj.tools == ["greet", "greet", "done"]
    bad = traj.steps[0]
    assert bad.tool_result.error_kind is ErrorKind.PARSE and greeted == ["Alice"]
    assert "must be a JSON object" in (bad.tool_result.error or "")
    told = llm.requests[1].messages[-1]  # the model is told, and may retry
    assert told.role == "tool" and "must be a JSON object" in told.content


# -- a backend that returns something else -----------------------------------------------------


@MODES
@pytest.mark.parametrize(
    ("reply", "named"),
    [
        ({"text": "hi"}, "returned dict"),
        ("plain text", "returned str"),
        (LLMResponse(text=5), "text is int"),  # type: ignore[arg-type]
        (LLMResponse(tool_calls=({"tool": "greet"},)), "tool_calls[0] is dict"),  # type: ignore[arg-type]
        (turn(ToolCall(None, {})), "tool_calls[0].tool is NoneType"),  # type: ignore[arg-type]
    ],
)
def test_a_backend_returning_no_llm_response_ends_the_run_with_an_llm_error(
    mode: str, reply: Any, named: str, tmp_path: Path
) -> None:
    sink = ProvenanceSink(tmp_path / "run")
    llm = Scripted(turn(GREET), reply)
    with pytest.raises(LLMError) as info:
        run(mode, sink.wrap_llm(llm), hooks=[sink.trajectory_hook()])

    err = info.value
    assert err.kind == "invalid_response" and "the backend Scripted " in str(err)
    assert named in str(err)
    assert err.trajectory is not None and err.trajectory.stop_reason is StopReason.LLM_ERROR
    assert err.trajectory.tools == ["greet"]  # the steps so far are kept
    assert (tmp_path / "run" / "trajectory.json").is_file()  # and recorded
    assert not tmp_files(tmp_path)


# -- arguments nested 100,000 deep -------------------------------------------------------------

DEEP_JSON = '{"name": ' + "[" * DEEP + "]" * DEEP + "}"


def deep_over_http(mode: str) -> Trajectory:
    """The real OpenAI SDK: the server sends the arguments as a JSON string."""
    script = [tool_reply(call("greet", DEEP_JSON)), tool_reply(call("done", {"answer": "ok"}))]
    with ScriptedModelServer(script) as server:
        options: dict[str, Any] = {"base_url": server.base_url, "api_key": "sk-test"}
        if mode == "sync":
            with openai.OpenAI(**options) as client:
                return run(mode, OpenAIBackend(client, model="gpt-4o-mini"))

        async def go() -> Trajectory:
            async with openai.AsyncOpenAI(**options) as client:
                return await arun(AsyncOpenAIBackend(client, model="gpt-4o-mini"))

        return asyncio.run(go())


@MODES
@pytest.mark.parametrize("form", ["json text over http", "decoded dict", "text protocol"])
def test_arguments_nested_100000_deep_are_a_parse_error_step(mode: str, form: str) -> None:
    if form == "json text over http":
        traj = deep_over_http(mode)
    elif form == "decoded dict":
        deep = ToolCall("greet", {"name": nested(DEEP)}, call_id="c1")
        traj = run(mode, Scripted(turn(deep), turn(DONE)))
    else:  # the JSON-text protocol, read by the scripted backend as by a legacy one
        text = '{"tool": "greet", "args": {"name": ' + "[" * DEEP + "]" * DEEP + "}}"
        llm = MockLLMBackend([text, DONE])
        traj = run(mode, llm)

    assert traj.stop_reason is StopReason.DONE and traj.tools == ["greet", "done"]
    step = traj.steps[0]
    assert step.tool_result.error_kind is ErrorKind.PARSE
    assert "nested more than 128 levels deep" in (step.tool_result.error or "")
    assert step.tool_call.args == {}


# -- lone surrogates ---------------------------------------------------------------------------


def test_lone_surrogates_from_the_model_leave_every_file_whole_and_the_next_request_valid(
    tmp_path: Path,
) -> None:
    # Text, reasoning and arguments holding lone surrogates (what a JSON "\ud800" escape
    # decodes to); the rest of the run talks to a real OpenAI-compatible server.
    first = LLMResponse(
        text="Greeting \ud800 now",
        tool_calls=(ToolCall("greet", {"name": "Al\udc00ice"}, reasoning="r\ud800", call_id="c1"),),
    )
    script = [tool_reply(call("done", {"answer": "ok"}))]
    with ScriptedModelServer(script) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
            real = OpenAIBackend(client, model="gpt-4o-mini")
            sink = ProvenanceSink(tmp_path / "prov")
            store = FileCheckpointStore(tmp_path / "checkpoints")
            llm = Scripted(first, real.complete)
            traj = run("sync", sink.wrap_llm(llm), hooks=[sink.trajectory_hook()], checkpoint=store)
        sent = server.requests[0].body

    assert traj.stop_reason is StopReason.DONE and traj.tools == ["greet", "done"]
    assert traj.steps[0].tool_call.args == {"name": "Al\ufffdice"}
    assert traj.steps[0].tool_result.data == {"greeting": "Hello, Al\ufffdice!"}
    assert sent is not None
    assert sent["messages"][2]["content"] == "Greeting \ufffd now"  # the next request went out
    assert "Hello, Al\ufffdice!" in sent["messages"][3]["content"]
    assert (tmp_path / "prov" / "trajectory.json").is_file()
    assert "\ufffd" in (tmp_path / "prov" / "call_0001.response.json").read_text("utf-8")
    assert not tmp_files(tmp_path)
    (run_id,) = store.runs()
    saved = store.load_latest(run_id)
    assert saved is not None and saved.ended and saved.stop_reason is StopReason.DONE
    assert saved.steps[0].tool_call.args == {"name": "Al\ufffdice"}


def test_a_tool_result_with_a_lone_surrogate_is_sent_and_saved_clean(
    tmp_path: Path,
) -> None:
    # A file name read with surrogateescape, say: the tool's own data keeps it, the request
    # and the files get U+FFFD.
    tools = greeter(lambda *, name: f"listed caf\udce9 for {name}")
    script = [
        tool_reply(call("greet", {"name": "Alice"})),
        tool_reply(call("done", {"answer": "ok"})),
    ]
    with ScriptedModelServer(script) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
            sink = ProvenanceSink(tmp_path / "prov")
            store = FileCheckpointStore(tmp_path / "checkpoints")
            llm = sink.wrap_llm(OpenAIBackend(client, model="gpt-4o-mini"))
            traj = run("sync", llm, tools=tools, hooks=[sink.trajectory_hook()], checkpoint=store)
        sent = server.requests[1].body

    assert traj.stop_reason is StopReason.DONE
    assert sent is not None and "listed caf\ufffd for Alice" in sent["messages"][-1]["content"]
    step_file = tmp_path / "prov" / "steps" / "step_0001.json"
    assert "caf\ufffd" in step_file.read_text("utf-8")
    assert not tmp_files(tmp_path)
    assert store.load_latest(store.runs()[0]) is not None


# -- repeated call ids -------------------------------------------------------------------------


def test_repeated_call_ids_are_made_unique_before_they_are_sent_back() -> None:
    script = [
        tool_reply(
            call("greet", {"name": "Alice"}, id="dup"), call("greet", {"name": "Bob"}, id="dup")
        ),
        tool_reply(call("greet", {"name": "Carol"}, id="dup")),
        tool_reply(call("done", {"answer": "ok"}, id="dup")),
    ]
    with ScriptedModelServer(script) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
            traj = run("sync", OpenAIBackend(client, model="gpt-4o-mini"))
        bodies = [r.body for r in server.requests]

    assert traj.stop_reason is StopReason.DONE and traj.tools == ["greet"] * 3 + ["done"]
    assert [s.tool_call.call_id for s in traj.steps] == ["dup", "dup-2", "dup-3", "dup-4"]
    assert [s.tool_result.call_id for s in traj.steps] == ["dup", "dup-2", "dup-3", "dup-4"]
    last = bodies[-1]
    assert last is not None
    offered = [
        c["id"] for m in last["messages"] if m["role"] == "assistant" for c in m["tool_calls"]
    ]
    answered = [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"]
    assert offered == answered == ["dup", "dup-2", "dup-3"]


# -- a hook's rewrite that permissions refuse --------------------------------------------------


class Rewrite:
    """A pre_dispatch hook that sends every greeting to Mallory."""

    def pre_dispatch(self, tool_call: ToolCall) -> HookDecision | None:
        if tool_call.tool == "greet":
            return HookDecision(updated_args={"name": "Mallory"})
        return None


@MODES
def test_a_rewritten_call_that_permissions_deny_is_recorded_as_judged(mode: str) -> None:
    engine = PermissionEngine().deny("greet", {"name": "Mallory"}, reason="not Mallory")
    engine.allow("greet")
    llm = Scripted(turn(GREET), turn(DONE))
    traj = run(mode, llm, hooks=[Rewrite(), PermissionHook(engine)])

    step = traj.steps[0]
    assert step.tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert step.tool_call.args == {"name": "Mallory"}  # what was judged, not what was asked
    assert step.tool_result.args_summary == "name='Mallory'"
    (decision,) = traj.permission_decisions
    assert decision.args == step.tool_call.args


@MODES
def test_a_rewritten_call_that_fails_validation_is_recorded_as_judged(mode: str) -> None:
    class Breaks:
        def pre_dispatch(self, tool_call: ToolCall) -> HookDecision | None:
            return HookDecision(updated_args={"nom": 1}) if tool_call.tool == "greet" else None

    traj = run(mode, Scripted(turn(GREET), turn(DONE)), hooks=[Breaks()])
    step = traj.steps[0]
    assert step.tool_result.error_kind is ErrorKind.VALIDATION
    assert step.tool_call.args == {"nom": 1}


# -- a provenance directory that cannot be written ---------------------------------------------


def test_a_provenance_write_failure_names_the_file_and_keeps_the_stop_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "steps").write_text("a file where the steps folder goes")
    sink = ProvenanceSink(tmp_path / "run")
    loop = composable_loop(
        llm=sink.wrap_llm(Scripted(turn(GREET), turn(DONE))),
        tools=make_tools(),
        task="Greet Alice.",
        hooks=[sink.trajectory_hook()],
    )
    with pytest.raises(HookError) as info:
        list(loop)

    err = info.value
    assert isinstance(err.__cause__, ProvenanceError)
    assert err.__cause__.path == tmp_path / "run" / "steps"
    assert loop.trajectory.stop_reason is StopReason.DONE
    assert "hook_error" not in str(err) and "stop_reason is kept" in str(err)
    assert not tmp_files(tmp_path)


# -- a cassette that cannot be written ---------------------------------------------------------
# Tests run as root here, and root writes into read-only folders; so the write is made to
# fail in ways that stop root too: a file where the cassette's folder should be, and a
# folder where the cassette's temporary file goes.


def ask(base_url: str) -> None:
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("blocked", ["folder is a file", "temporary file is a folder"])
def test_a_cassette_that_cannot_be_written_is_one_clear_error(tmp_path: Path, blocked: str) -> None:
    if blocked == "folder is a file":
        (tmp_path / "cassettes").write_text("not a folder")
        path = tmp_path / "cassettes" / "greet.yaml"
    else:
        path = tmp_path / "greet.yaml"
        (tmp_path / f".greet.yaml.{os.getpid()}.tmp").mkdir()
    with ScriptedModelServer([text_reply("hi")]) as server:
        cassette = use_cassette(path, "once")
        with pytest.raises(CassetteError) as info, cassette:
            ask(server.base_url)

    message = str(info.value)
    assert info.value.path == str(path) and f"cannot write cassette {path}:" in message
    assert "--looplet-record-mode=none" in message and ".tmp" not in message
    assert not path.exists() and not [
        p for p in tmp_path.rglob("*") if p.is_file() and ".tmp" in p.name
    ]


def test_the_plugin_reports_a_cassette_it_cannot_write_in_one_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        eval_greeter="""
def eval_greets_alice(looplet_agent):
    traj = looplet_agent.run("Greet Alice, then finish.")
    assert traj.called("greet", name="Alice")
"""
    )
    (pytester.path / "cassettes").write_text("a file where the cassette folder goes")
    argv = ("-p", "pytest_looplet.plugin", "--looplet-evals", "-p", "no:cacheprovider")
    with recording(monkeypatch):
        result = pytester.runpytest_subprocess(*argv, "--looplet-record-mode=all")

    output = result.stdout.str() + result.stderr.str()
    cassette = pytester.path / "cassettes" / "eval_greeter" / "eval_greets_alice.yaml"
    assert result.ret != 0
    assert f"cannot write cassette {cassette}: " in output
    assert "--looplet-record-mode=none" in output
    assert "NotADirectoryError" not in output and "FileExistsError" not in output


# -- a run file holding binary data ------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"


@pytest.mark.parametrize("where", ["trajectory.json", "steps/step_0001.json"])
def test_looplet_show_on_a_binary_file_is_one_line_naming_it(tmp_path: Path, where: str) -> None:
    file = tmp_path / "run" / where
    file.parent.mkdir(parents=True)
    file.write_bytes(PNG)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run(
        [sys.executable, "-m", "looplet", "show", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith("looplet show: error: ")
    assert str(Path("run", where)) in line and "not a looplet run file" in line
