"""An eval of a chat: the support agent held over three turns of one conversation.

Each turn is a run of the loop on the same ``Conversation``, so the model sees everything
said before; the eval checks each turn's own trajectory. The third question names no order:
the agent must take the order number from the first turn. All three turns' model calls are
in this eval's one cassette, replayed in order.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from example_evals.agents import support
from looplet import PermissionHook, Trajectory, composable_loop
from looplet.conversation import Conversation
from pytest_looplet.scoring import record_trajectory


@pytest.fixture
def chat(request: pytest.FixtureRequest, looplet_llm: object) -> Callable[[str], Trajectory]:
    """``chat(message)`` sends the customer's next message to the support agent, as one turn
    of a single conversation, and returns that turn's trajectory.

    ``looplet_agent.run`` takes no conversation, so a chat drives the loop itself, with the
    cassette-backed ``looplet_llm``, and hands each turn to the report with
    ``record_trajectory`` (the report shows the latest).
    """
    conversation = Conversation()

    def say(message: str) -> Trajectory:
        loop = composable_loop(
            looplet_llm,
            message,
            support.build_tools(),
            hooks=[PermissionHook(support.build_permissions())],
            config=support.build_config(),
            conversation=conversation,
        )
        for step in loop:
            print(step.pretty())  # pytest shows these when the eval fails
        record_trajectory(request, loop.trajectory)
        return loop.trajectory

    return say


def eval_remembers_the_order_number_across_turns(chat: Callable[[str], Trajectory]) -> None:
    first = chat("Hi, it's Dana. Where is my order A-1042?")
    assert first == [("look_up_order", {"order_id": "A-1042"})]
    assert "Friday, December 11" in first.final_text

    # Answered from what turn one looked up: no tool call this time.
    second = chat("Can I still change the delivery address?")
    assert second.steps == []
    assert "already shipped" in second.final_text

    # "A-1042" is not in this message: the agent found it in turn one.
    third = chat("OK. Send me the tracking number, please.")
    assert third == [("track_parcel", {"order_id": "A-1042"})]
    assert "JD014600006281" in third.final_text
    assert [turn.stop_reason for turn in (first, second, third)] == ["final_text"] * 3
