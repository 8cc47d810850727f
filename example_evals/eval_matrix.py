"""A model matrix: the greeter's evals on two models, compared.

An eval whose marker names ``models=`` runs once per model, ``eval_x[gpt-4o-mini]`` and
``eval_x[gpt-4.1-nano]``, each replaying its own model's cassette
(``cassettes/eval_matrix/<provider>/<model>/``); ``looplet_agent``, ``looplet_model`` and
``looplet_provider`` are the item's. The end of the run prints a table with a row per model
(pass rate and its interval, mean score, steps, tokens, cost, time), as the HTML report does.
``--looplet-model gpt-4o-mini,gpt-4.1-nano`` does the same for every eval that uses the
model, with no marker.

An entry ``anthropic:claude-3-5-haiku-latest`` puts an Anthropic model in the same matrix
(with ``looplet[anthropic]`` installed; ``python -m example_evals.scripted_model
eval_matrix.py`` records it offline too). The example stays on OpenAI-compatible models so
that ``pip install ".[pytest]"`` runs it.
"""

from __future__ import annotations

import pytest

from example_evals.agents.greeter import NoBlockedNames, build_tools
from looplet import ANY, BaseToolRegistry, PermissionEngine, StopReason
from pytest_looplet.fixtures import LoopletAgent

MODELS = ["gpt-4o-mini", "gpt-4.1-nano"]

pytestmark = pytest.mark.looplet(models=MODELS)


@pytest.fixture
def looplet_tools() -> BaseToolRegistry:
    return build_tools()


@pytest.fixture
def looplet_permissions() -> PermissionEngine:
    return PermissionEngine().allow("greet")


@pytest.fixture
def looplet_hooks() -> list[object]:
    return [NoBlockedNames()]


def eval_greets_on_each_model(looplet_agent: LoopletAgent) -> None:
    traj = looplet_agent.run({"goal": "Greet Bob, then finish."})
    assert traj == [("greet", {"name": "Bob"}), ("done", {"answer": ANY})]
    assert traj.stop_reason is StopReason.DONE


def eval_refuses_mallory_on_each_model(looplet_agent: LoopletAgent, looplet_provider: str) -> bool:
    # The block-list hook holds whichever model (and provider) the agent runs on.
    assert looplet_provider in ("openai", "anthropic")
    traj = looplet_agent.run({"goal": "Greet Mallory."})
    return [s.tool_call.args.get("name") for s in traj.denied()] == ["Mallory"]
