"""Example agent tests: the greeter's behaviour, offline, through the real OpenAI SDK."""

from __future__ import annotations

from example_evals.agents.greeter import run_greeter
from example_evals.conftest import ScriptedModel
from looplet import ErrorKind, StopReason
from looplet.testing import call, text_reply, tool_reply


def test_greets_then_finishes(scripted_model: ScriptedModel) -> None:
    llm, server = scripted_model(
        [
            tool_reply(call("greet", {"name": "Alice"})),
            tool_reply(call("done", {"answer": "Greeted Alice."})),
        ]
    )
    traj = run_greeter(llm, "Greet Alice, then finish.")
    assert traj.tools == ["greet", "done"]
    assert traj.stop_reason is StopReason.DONE
    assert traj.steps[0].tool_result.data == {"greeting": "Hello, Alice!"}
    assert traj.usage.total_tokens > 0
    # The model was shown the greeting before it decided to finish.
    last_sent = server.requests[1].body["messages"][-1]
    assert last_sent["role"] == "tool" and "Hello, Alice!" in last_sent["content"]


def test_recovers_from_a_misspelled_tool(scripted_model: ScriptedModel) -> None:
    llm, server = scripted_model(
        [
            tool_reply(call("gret", {"name": "Alice"})),
            tool_reply(call("greet", {"name": "Alice"})),
            tool_reply(call("done", {"answer": "Greeted Alice."})),
        ]
    )
    traj = run_greeter(llm, "Greet Alice, then finish.")
    assert traj.tools == ["gret", "greet", "done"]
    assert traj.steps[0].tool_result.error_kind is ErrorKind.UNKNOWN_TOOL
    told = server.requests[1].body["messages"][-1]["content"]
    assert "Did you mean 'greet'?" in told


def test_refuses_to_greet_blocked_names(scripted_model: ScriptedModel) -> None:
    llm, server = scripted_model(
        [
            tool_reply(call("greet", {"name": "Mallory"})),
            tool_reply(call("done", {"answer": "Mallory is blocked."})),
        ]
    )
    traj = run_greeter(llm, "Greet Mallory.")
    assert traj.steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert "block list" in server.requests[1].body["messages"][-1]["content"]
    assert traj.stop_reason is StopReason.DONE


def test_a_model_that_never_finishes_is_stopped_by_the_budget(
    scripted_model: ScriptedModel,
) -> None:
    llm, _ = scripted_model([tool_reply(call("greet", {"name": f"n{i}"})) for i in range(3)])
    traj = run_greeter(llm, "Greet everyone.", max_steps=3)
    assert len(traj.steps) == 3
    assert traj.stop_reason is StopReason.MAX_STEPS


def test_a_plain_answer_ends_the_run(scripted_model: ScriptedModel) -> None:
    llm, _ = scripted_model([text_reply("There is nobody to greet.")])
    traj = run_greeter(llm, "Greet nobody.")
    assert traj.steps == []
    assert traj.stop_reason is StopReason.FINAL_TEXT
    assert traj.final_text == "There is nobody to greet."
