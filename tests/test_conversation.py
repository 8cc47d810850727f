"""Conversations: several turns on the same loop, forked, saved and loaded.

The model is scripted: ``MockLLMBackend`` (its ``requests`` are what each turn sent) and,
once, the real OpenAI SDK against looplet's loopback server, which rejects a conversation the
real API would reject (a tool call without its result, an unknown call id).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from looplet import (
    ConfigurationError,
    HookError,
    LLMError,
    LoopConfig,
    StopReason,
    ToolCall,
    async_composable_loop,
    composable_loop,
)
from looplet.backends import OpenAIBackend
from looplet.checkpoint import FileCheckpointStore
from looplet.conversation import FORMAT, Conversation
from looplet.messages import Message
from looplet.record.codec import DecodeError, trajectory_document
from looplet.testing import (
    AsyncMockLLMBackend,
    MockLLMBackend,
    ScriptedModelServer,
    call,
    text_reply,
    tool_reply,
)
from looplet.types import Trajectory
from tests.conftest import make_tools


def greet(name: str) -> ToolCall:
    return ToolCall("greet", {"name": name})


def turn(conv: Conversation, llm: Any, task: Any, **kwargs: Any) -> Trajectory:
    """One turn of ``conv`` with the sync loop, run to its end."""
    loop = composable_loop(llm=llm, tools=make_tools(), task=task, conversation=conv, **kwargs)
    for _ in loop:
        pass
    return loop.trajectory


def roles(messages: Any) -> list[str]:
    return [m.role for m in messages]


def three_turn_chat() -> tuple[Conversation, MockLLMBackend]:
    llm = MockLLMBackend(
        [greet("Alice"), "Greeted Alice.", "Alice is a name.", greet("Bob"), "Greeted Bob."]
    )
    conv = Conversation()
    turn(conv, llm, "Greet Alice.")
    turn(conv, llm, "What is Alice?")
    turn(conv, llm, "Now greet Bob.")
    return conv, llm


# -- turns -------------------------------------------------------------------------------------


def test_each_turn_sends_the_whole_conversation_so_far_plus_the_new_user_message() -> None:
    conv, llm = three_turn_chat()
    sent = [list(r.messages) for r in llm.requests]
    assert len(sent) == 5
    t1, t2, t3 = conv.turns
    # Turn 2's request is turn 1's conversation, then the new question.
    assert sent[2] == [*t1.messages, Message.user("What is Alice?")]
    assert sent[3] == [*t2.messages, Message.user("Now greet Bob.")]
    assert sent[3][: len(t1.messages)] == t1.messages
    # Each turn's trajectory is its own (steps, calls, stop), its messages the whole chat.
    assert [t.tools for t in conv.turns] == [["greet"], [], ["greet"]]
    assert [t.llm_calls for t in conv.turns] == [2, 1, 2]
    assert [t.stop_reason for t in conv.turns] == [StopReason.FINAL_TEXT] * 3
    assert t3.steps[0].number == 1
    assert conv.messages == tuple(t3.messages)
    assert [m.content for m in conv.messages if m.role == "user"] == [
        "Greet Alice.",
        "What is Alice?",
        "Now greet Bob.",
    ]
    assert roles(conv.messages).count("system") == 1
    assert conv.last_text == "Greeted Bob."


def test_the_task_is_rendered_by_the_configs_render_task() -> None:
    llm = MockLLMBackend(["one", "two"])
    conv = Conversation()
    config = LoopConfig(render_task=lambda task: f"Q: {task['q']}")
    turn(conv, llm, {"q": "first"}, config=config)
    turn(conv, llm, {"q": "second"}, config=config)
    assert [m.content for m in conv.messages if m.role == "user"] == ["Q: first", "Q: second"]


def test_tool_call_ids_stay_unique_across_turns() -> None:
    conv = Conversation()
    for name in ("Ann", "Bob", "Cy"):  # a new backend each turn numbers its calls afresh
        turn(conv, MockLLMBackend([[greet(name), greet(name + "2")], "ok"]), f"Greet {name}.")
    ids = [c.call_id for m in conv.messages for c in m.tool_calls]
    assert len(ids) == 6 and len(set(ids)) == 6
    answered = [m.tool_call_id for m in conv.messages if m.role == "tool"]
    assert answered == ids


def test_a_conversation_starts_from_a_finished_run() -> None:
    llm = MockLLMBackend([greet("Alice"), "Done.", "Yes."])
    loop = composable_loop(llm=llm, tools=make_tools(), task="Greet Alice.")
    list(loop)
    for source in (loop, loop.trajectory):
        conv = Conversation.from_run(source)
        assert conv.turns == (loop.trajectory,)
        assert conv.messages == tuple(loop.trajectory.messages)
    turn(conv, llm, "Did you?")
    assert list(llm.requests[2].messages)[:-1] == loop.trajectory.messages


def test_from_run_refuses_a_run_that_has_not_ended_or_anything_else() -> None:
    loop = composable_loop(llm=MockLLMBackend(["hi"]), tools=make_tools(), task="x")
    with pytest.raises(ConfigurationError, match="has not ended"):
        Conversation.from_run(loop)
    with pytest.raises(ConfigurationError, match="takes a Trajectory"):
        Conversation.from_run("a transcript")
    with pytest.raises(ConfigurationError, match="system prompt"):
        Conversation([Message.user("hi")])
    with pytest.raises(ConfigurationError, match=r"\[0\] is a str"):
        Conversation(["You are terse."])  # type: ignore[list-item]


def test_a_conversation_given_messages_starts_from_them() -> None:
    shots = [
        Message.system("Answer in one word."),
        Message.user("Sky?"),
        Message("assistant", "Blue"),
    ]
    conv = Conversation(shots)
    llm = MockLLMBackend(["Green"])
    turn(conv, llm, "Grass?")
    assert list(llm.requests[0].messages) == [*shots, Message.user("Grass?")]
    conv.truncate(0)
    assert conv.messages == tuple(shots) and conv.turns == ()


def test_the_conversations_system_prompt_stays_unless_the_turn_sets_one() -> None:
    llm = MockLLMBackend(["a", "b", "c"])
    conv = Conversation()
    turn(conv, llm, "one", system_prompt="You are a pirate.")
    turn(conv, llm, "two")  # no system prompt set: the pirate stays
    assert llm.requests[1].messages[0] == Message.system("You are a pirate.")
    turn(conv, llm, "three", config=LoopConfig(system_prompt="You are a judge."))
    assert llm.requests[2].messages[0] == Message.system("You are a judge.")
    assert conv.system_prompt == "You are a judge."
    assert roles(conv.messages).count("system") == 1


def test_turns_that_are_not_the_start_of_the_conversation_are_saved_whole(
    tmp_path: Path,
) -> None:
    llm = MockLLMBackend(["a", "b"])
    conv = Conversation()
    turn(conv, llm, "one", system_prompt="You are a pirate.")
    turn(conv, llm, "two", system_prompt="You are a judge.")  # the first turn's prompt differs
    conv.save(tmp_path / "c.json")
    doc = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert [("messages" in t, t.get("messages_prefix")) for t in doc["turns"]] == [
        (True, None),
        (False, 5),
    ]
    loaded = Conversation.load(tmp_path / "c.json")
    assert [t.messages for t in loaded.turns] == [t.messages for t in conv.turns]
    assert loaded.turns[0].messages[0] == Message.system("You are a pirate.")
    assert loaded.fork(turns=1).system_prompt == "You are a pirate."


def test_no_task_goes_on_from_where_the_last_turn_stopped() -> None:
    llm = MockLLMBackend([greet("Ann"), greet("Bob"), "Both greeted."])
    conv = Conversation()
    first = turn(conv, llm, "Greet Ann and Bob.", max_steps=1)
    assert first.stop_reason == StopReason.MAX_STEPS
    second = turn(conv, llm, None)
    assert second.tools == ["greet"] and second.stop_reason == StopReason.FINAL_TEXT
    assert list(llm.requests[1].messages) == first.messages  # no new user message
    assert [m.content for m in conv.messages if m.role == "user"] == ["Greet Ann and Bob."]


def test_a_turn_starts_from_the_conversation_as_it_is_when_the_run_starts() -> None:
    llm = MockLLMBackend(["first answer", "second answer"])
    conv = Conversation()
    built_first = composable_loop(llm=llm, tools=make_tools(), task="Q1", conversation=conv)
    built_second = composable_loop(llm=llm, tools=make_tools(), task="Q2", conversation=conv)
    list(built_first)
    list(built_second)  # built before the first turn ran: it still follows it
    assert [m.content for m in llm.requests[1].messages if m.role != "system"] == [
        "Q1",
        "first answer",
        "Q2",
    ]
    assert len(conv.turns) == 2


def test_a_turn_built_before_a_truncate_to_nothing_starts_afresh() -> None:
    conv = Conversation()
    turn(conv, MockLLMBackend(["first"]), "Q1")
    llm = MockLLMBackend(["again"])
    built = composable_loop(llm=llm, tools=make_tools(), task="Q2", conversation=conv)
    conv.truncate(0)
    list(built)
    assert roles(llm.requests[0].messages) == ["system", "user"]
    assert llm.requests[0].messages[1].content == "Q2"
    assert [t.task for t in conv.turns] == ["Q2"]


def test_two_turns_of_one_conversation_cannot_run_at_once() -> None:
    conv = Conversation()
    llm = MockLLMBackend([[greet("Ann"), greet("Bob")], "ok"])
    running = composable_loop(llm=llm, tools=make_tools(), task="Greet both.", conversation=conv)
    next(running)
    with pytest.raises(ConfigurationError, match="already running"):
        composable_loop(llm=llm, tools=make_tools(), task="Other", conversation=conv)
    with pytest.raises(ConfigurationError, match="while one of its turns is running"):
        conv.truncate(0)
    list(running)
    assert len(conv.turns) == 1


def test_a_turn_built_earlier_that_starts_while_another_runs_is_refused() -> None:
    conv = Conversation()
    llm = MockLLMBackend([[greet("Ann"), greet("Bob")], "ok"])
    first = composable_loop(llm=llm, tools=make_tools(), task="Greet both.", conversation=conv)
    second = composable_loop(llm=llm, tools=make_tools(), task="Other", conversation=conv)
    next(first)
    with pytest.raises(ConfigurationError, match="already running") as raised:
        next(second)
    assert raised.value.trajectory is not None
    assert raised.value.trajectory.stop_reason == StopReason.CANCELLED
    assert llm.calls == 1  # the refused turn asked the model nothing
    list(first)
    assert [t.task for t in conv.turns] == ["Greet both."]


def test_a_run_never_iterated_leaves_the_conversation_unchanged() -> None:
    conv = Conversation()
    turn(conv, MockLLMBackend(["hi"]), "Hello")
    before = conv.messages
    composable_loop(llm=MockLLMBackend(["x"]), tools=make_tools(), task="Q", conversation=conv)
    assert conv.messages == before and len(conv.turns) == 1


def test_conversation_must_be_a_conversation() -> None:
    with pytest.raises(ConfigurationError, match="conversation= takes"):
        composable_loop(
            llm=MockLLMBackend(["x"]),
            tools=make_tools(),
            task="Q",
            conversation=[Message.system("hi")],  # type: ignore[arg-type]
        )


# -- turns that fail -----------------------------------------------------------------------------


def test_a_provider_error_keeps_what_the_turn_recorded_and_the_next_turn_goes_on() -> None:
    boom = LLMError("mock", "overloaded", status=529)
    llm = MockLLMBackend(["Hello!", greet("Ann"), boom, "Ann greeted."])
    conv = Conversation()
    turn(conv, llm, "Hi")
    with pytest.raises(LLMError) as raised:
        turn(conv, llm, "Greet Ann.")
    failed = conv.turns[-1]
    assert raised.value.trajectory is failed and failed.stop_reason == StopReason.LLM_ERROR
    # Nothing of the failed turn is lost: the question, the call, its result.
    assert roles(conv.messages) == ["system", "user", "assistant", "user", "assistant", "tool"]
    assert conv.messages[-1].name == "greet" and "Hello, Ann" in conv.messages[-1].content
    assert conv.messages == tuple(failed.messages)
    turn(conv, llm, "Try again.")
    assert list(llm.requests[-1].messages) == [*failed.messages, Message.user("Try again.")]
    assert conv.last_text == "Ann greeted."


class FailOnce:
    """A post_dispatch hook that raises on the first step."""

    def __init__(self) -> None:
        self.failed = False

    def post_dispatch(self, step_num: int) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("disk full")


def test_calls_a_failed_turn_left_without_a_result_get_one_in_the_conversation() -> None:
    conv = Conversation()
    llm = MockLLMBackend([[greet("Ann"), greet("Bob")], "Retried."])
    with pytest.raises(HookError):
        turn(conv, llm, "Greet both.", hooks=[FailOnce()])
    failed = conv.turns[-1]
    assert failed.stop_reason == StopReason.HOOK_ERROR
    # The run's record is what happened: the model's two calls, no step recorded.
    assert roles(failed.messages) == ["system", "user", "assistant"] and not failed.steps
    # The conversation answers each call, so that the next request is a valid one.
    calls = failed.messages[-1].tool_calls
    answers = conv.messages[3:]
    assert [m.tool_call_id for m in answers] == [c.call_id for c in calls]
    assert all(m.role == "tool" and m.is_error for m in answers)
    assert "no result: the turn ended (hook_error)" in answers[0].content
    assert "[cancelled]" in answers[0].content
    turn(conv, llm, "Again.")
    assert conv.turns[-1].stop_reason == StopReason.FINAL_TEXT
    assert list(llm.requests[-1].messages)[3:5] == list(answers)


def test_an_abandoned_turn_keeps_its_steps_and_answers_the_rest() -> None:
    conv = Conversation()
    llm = MockLLMBackend([[greet("Ann"), greet("Bob")], "ok"])
    loop = composable_loop(llm=llm, tools=make_tools(), task="Greet both.", conversation=conv)
    next(loop)  # Ann's step; the caller walks away before Bob's
    loop.close()
    assert conv.turns[-1].stop_reason == StopReason.CANCELLED
    tool_messages = [m for m in conv.messages if m.role == "tool"]
    assert [m.name for m in tool_messages] == ["greet", "greet"]
    assert "Hello, Ann" in tool_messages[0].content
    assert "no result" in tool_messages[1].content and tool_messages[1].is_error
    assert tool_messages[1].tool_call_id == conv.messages[2].tool_calls[1].call_id


def test_the_openai_sdk_continues_a_conversation_over_http() -> None:
    """Real SDK, real HTTP: the server rejects with 400 any call left without its result or
    an answer to an unknown id, as the API does. The same call id twice is scripted on
    purpose: the loop must keep ids unique across turns."""
    script = [
        tool_reply(
            call("greet", {"name": "Ann"}, id="c1"), call("greet", {"name": "Bob"}, id="c2")
        ),
        tool_reply(call("greet", {"name": "Cy"}, id="c1")),
        text_reply("Greeted Cy."),
        text_reply("Ann, Bob and Cy."),
    ]
    with ScriptedModelServer(script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        try:
            llm = OpenAIBackend(client, model="gpt-4o-mini")
            conv = Conversation()
            loop = composable_loop(
                llm=llm, tools=make_tools(), task="Greet Ann and Bob.", conversation=conv
            )
            next(loop)  # abandoned after Ann: Bob's call is left without a run
            loop.close()
            turn(conv, llm, "Greet Cy.")
            turn(conv, llm, "Whom did you greet?")
        finally:
            client.close()
        bodies = [r.body for r in server.requests]
    assert len(bodies) == 4  # none was refused
    assert conv.last_text == "Ann, Bob and Cy."
    last = bodies[-1]["messages"]
    assert [m["role"] for m in last] == [
        "system", "user", "assistant", "tool", "tool",
        "user", "assistant", "tool", "assistant",
        "user",
    ]  # fmt: skip
    assert [m["content"] for m in last if m["role"] == "user"] == [
        "Greet Ann and Bob.",
        "Greet Cy.",
        "Whom did you greet?",
    ]
    sent_ids = [c["id"] for m in last for c in m.get("tool_calls") or ()]
    assert len(sent_ids) == len(set(sent_ids)) == 3


# -- fork, truncate ------------------------------------------------------------------------------


def test_a_fork_is_independent_of_its_original() -> None:
    conv = Conversation()
    turn(conv, MockLLMBackend(["Hi."]), "Hello")
    fork = conv.fork()
    assert fork.messages == conv.messages and fork.turns == conv.turns
    turn(fork, MockLLMBackend(["Paris."]), "Capital of France?")
    assert len(conv.turns) == 1 and len(fork.turns) == 2
    turn(conv, MockLLMBackend(["Rome."]), "Capital of Italy?")
    assert fork.last_text == "Paris." and conv.last_text == "Rome."
    assert fork.messages[:3] == conv.messages[:3]
    assert fork.messages[-2].content == "Capital of France?"
    assert conv.messages[-2].content == "Capital of Italy?"


def test_fork_and_truncate_go_back_to_an_earlier_turn() -> None:
    conv, _ = three_turn_chat()
    second = conv.fork(turns=2)
    assert second.turns == conv.turns[:2] and second.messages == tuple(conv.turns[1].messages)
    assert conv.fork(turns=0).messages == () and len(conv.turns) == 3
    conv.truncate(1)
    assert conv.turns == second.turns[:1] and conv.messages == tuple(second.turns[0].messages)
    with pytest.raises(ConfigurationError, match="from 0 to 1"):
        conv.truncate(2)
    with pytest.raises(ConfigurationError, match="from 0 to 1"):
        conv.fork(turns=-1)


# -- save and load -------------------------------------------------------------------------------


def test_a_saved_conversation_loads_equal_and_goes_on_identically(tmp_path: Path) -> None:
    conv, _ = three_turn_chat()
    path = tmp_path / "chat.json"
    conv.save(path)
    loaded = Conversation.load(path)
    assert loaded.to_dict() == conv.to_dict()
    assert loaded.messages == conv.messages
    assert [t.steps for t in loaded.turns] == [t.steps for t in conv.turns]
    assert [t.messages for t in loaded.turns] == [t.messages for t in conv.turns]
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == FORMAT == "looplet-conversation/1"
    # Each turn's messages are the start of the conversation's: stored as a count.
    assert [t.get("messages_prefix") for t in doc["turns"]] == [5, 7, 11]
    assert all("messages" not in t for t in doc["turns"])
    a, b = MockLLMBackend(["same"]), MockLLMBackend(["same"])
    turn(conv, a, "One more?")
    turn(loaded, b, "One more?")
    assert list(a.requests[0].messages) == list(b.requests[0].messages)
    assert loaded.messages == conv.messages  # (the new turns' timings differ)
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left nothing behind


def test_a_failed_turn_round_trips_with_its_answered_calls(tmp_path: Path) -> None:
    conv = Conversation()
    loop = composable_loop(
        llm=MockLLMBackend([[greet("Ann"), greet("Bob")]]),
        tools=make_tools(),
        task="Greet both.",
        conversation=conv,
    )
    next(loop)
    loop.close()
    conv.save(tmp_path / "c.json")
    loaded = Conversation.load(tmp_path / "c.json")
    assert loaded.messages == conv.messages
    assert loaded.turns[0].messages == conv.turns[0].messages
    assert loaded.turns[0].stop_reason == StopReason.CANCELLED


def test_a_recorded_runs_trajectory_file_loads_as_a_conversation(tmp_path: Path) -> None:
    loop = composable_loop(llm=MockLLMBackend(["Hi."]), tools=make_tools(), task="Hello")
    list(loop)
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(trajectory_document(loop.trajectory)), encoding="utf-8")
    conv = Conversation.load(path)
    assert conv.messages == tuple(loop.trajectory.messages) and len(conv.turns) == 1


def corrupt(tmp_path: Path, change: Any) -> pytest.ExceptionInfo[DecodeError]:
    conv, _ = three_turn_chat()
    path = tmp_path / "chat.json"
    conv.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    text = change(doc)
    path.write_text(text if isinstance(text, str) else json.dumps(doc), encoding="utf-8")
    with pytest.raises(DecodeError) as raised:
        Conversation.load(path)
    assert str(path) in str(raised.value)
    return raised


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        (lambda d: d["messages"][2].update(role="robot"), "messages[2].role", "robot"),
        (lambda d: d["turns"][0]["steps"][0].pop("tool_call"), "turns[0].steps[0]", "null"),
        (lambda d: d["turns"][2].update(messages_prefix=99), "turns[2].messages_prefix", "99"),
        (lambda d: d.update(format="looplet-conversation/2"), "format", "newer looplet"),
        (lambda d: d.update(format="looplet-checkpoint/1"), "format", "not a looplet"),
        (lambda d: d.pop("messages"), "messages", "missing"),
        (lambda d: d["messages"].pop(0), "messages[0].role", "system message first"),
        (lambda d: json.dumps(d)[:200], "line 1", "not valid JSON"),
    ],
)  # fmt: skip
def test_a_broken_file_names_the_file_and_the_field(
    tmp_path: Path, change: Any, where: str, problem: str
) -> None:
    raised = corrupt(tmp_path, change)
    assert raised.value.where.startswith(where)
    assert problem in str(raised.value)
    assert "Conversation.save" in str(raised.value)  # how to go on


def test_a_save_that_cannot_write_says_where(tmp_path: Path) -> None:
    conv = Conversation([Message.system("s")])
    with pytest.raises(OSError, match="cannot save the conversation to"):
        conv.save(tmp_path / "missing-folder" / "c.json")


# -- the async loop, checkpoints -----------------------------------------------------------------


def test_the_async_loop_takes_turns_as_the_sync_one_does() -> None:
    script: list[Any] = [greet("Alice"), "Greeted Alice.", "Alice is a name."]
    conv_sync, sync_llm = Conversation(), MockLLMBackend(script)
    turn(conv_sync, sync_llm, "Greet Alice.")
    turn(conv_sync, sync_llm, "What is Alice?")

    async def chat() -> tuple[Conversation, AsyncMockLLMBackend]:
        conv, llm = Conversation(), AsyncMockLLMBackend(script)
        for task in ("Greet Alice.", "What is Alice?"):
            loop = async_composable_loop(llm=llm, tools=make_tools(), task=task, conversation=conv)
            async for _ in loop:
                pass
        return conv, llm

    conv_async, async_llm = asyncio.run(chat())
    assert conv_async.messages == conv_sync.messages
    assert [list(r.messages) for r in async_llm.requests] == [
        list(r.messages) for r in sync_llm.requests
    ]
    assert [t.tools for t in conv_async.turns] == [["greet"], []]


def test_an_interrupted_turn_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    def script() -> MockLLMBackend:
        return MockLLMBackend(["Hi.", [greet("Ann"), greet("Bob")], "Both greeted."])

    whole = Conversation()
    llm = script()
    turn(whole, llm, "Hello")
    turn(whole, llm, "Greet Ann and Bob.")

    store = FileCheckpointStore(tmp_path / "runs")
    conv = Conversation()
    llm = script()
    turn(conv, llm, "Hello")
    loop = composable_loop(
        llm=llm, tools=make_tools(), task="Greet Ann and Bob.", conversation=conv, checkpoint=store
    )
    next(loop)  # Ann's step is checkpointed; the process "dies" here
    saved = FileCheckpointStore(store.directory).load_latest()
    assert saved is not None and list(saved.messages[:3]) == list(conv.messages)

    again = conv.fork(turns=1)  # the conversation as it was before the interrupted turn
    resumed = composable_loop(
        llm=MockLLMBackend(["Both greeted."]),
        tools=make_tools(),
        task="Greet Ann and Bob.",
        conversation=again,
        checkpoint=store,
        resume=store,
    )
    assert [s.tool_call.args["name"] for s in resumed] == ["Bob"]
    assert again.messages == whole.messages  # no message twice, none missing
    assert again.turns[-1].tools == ["greet", "greet"]


def test_a_run_without_a_conversation_never_loads_the_module() -> None:
    code = (
        "import sys\n"
        "from looplet import composable_loop\n"
        "from looplet.testing import MockLLMBackend\n"
        "from tests.conftest import make_tools\n"
        "list(composable_loop(llm=MockLLMBackend(['hi']), tools=make_tools(), task='x'))\n"
        "print('looplet.conversation' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_messages_that_are_no_list_are_refused_naming_the_fix() -> None:
    # Conversation(5) was a bare "'int' object is not iterable".
    with pytest.raises(ConfigurationError, match=r"Conversation\(messages\) takes a list of"):
        Conversation(5)  # type: ignore[arg-type]


def test_loading_a_folder_says_which_file_to_give(tmp_path: Path) -> None:
    # It was a bare "[Errno 21] Is a directory".
    (tmp_path / "run").mkdir()
    with pytest.raises(IsADirectoryError, match=r"is a folder: give the file .*trajectory.json"):
        Conversation.load(tmp_path / "run")
