"""An eval of memory: the converter agent answers in the unit its user's profile asks for.

The user's preferences live in a file (``profile.md`` in the eval's workspace), given to the
agent as a memory source: the loop reads it before every model call and sends it right after
the system prompt. The task names no unit to answer in, so only the memory can say which.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from example_evals.agents import converter
from looplet import BaseToolRegistry, LoopConfig, PermissionEngine, Regex
from looplet.memory import CallableMemorySource
from looplet.preview import preview_prompt
from pytest_looplet.fixtures import LoopletAgent

TASK = "How long is a 10 km run?"


@pytest.fixture
def looplet_tools() -> BaseToolRegistry:
    return converter.build_tools()


@pytest.fixture
def looplet_permissions() -> PermissionEngine:
    return PermissionEngine().allow("*")  # pure functions: nothing to guard


@pytest.fixture
def looplet_config(looplet_workspace: Path) -> LoopConfig:
    profile = looplet_workspace / "profile.md"
    # Read afresh before every call; None (no profile yet) sends no memory at all.
    preferences = CallableMemorySource(
        lambda: profile.read_text(encoding="utf-8") if profile.exists() else None,
        title="The user's preferences",
    )
    return converter.build_config(memory_sources=[preferences])


@pytest.mark.parametrize(
    ("preference", "unit"),
    [("I run in miles.", "mi"), ("I think in yards.", "yd")],
    ids=["miles", "yards"],
)
def eval_answers_in_the_users_unit(
    looplet_agent: LoopletAgent,
    looplet_tools: BaseToolRegistry,
    looplet_config: LoopConfig,
    looplet_workspace: Path,
    preference: str,
    unit: str,
) -> None:
    (looplet_workspace / "profile.md").write_text(preference, encoding="utf-8")

    # The request the agent is about to send, built without calling the model: the memory
    # (the system message after the prompt) carries the preference.
    preview = preview_prompt(TASK, looplet_tools, config=looplet_config)
    assert preview.memory == f"# Memory\n\n## The user's preferences\n{preference}"
    assert [m.role for m in preview.messages] == ["system", "system", "user"]

    # Replaying checks each request against the cassette's, so the memory was sent too.
    traj = looplet_agent.run(TASK)
    assert traj == [
        ("convert", {"value": 10, "from_unit": "km", "to_unit": unit}),
        ("done", {"answer": Regex(rf"^\d+\.\d\d {unit}$")}),
    ]
