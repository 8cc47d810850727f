"""The unit-conversion agent scored with looplet's scorers: every score comes with its reason,
shown under the eval in the summary and kept in the JSON and HTML reports."""

from __future__ import annotations

import pytest

from example_evals.agents import converter
from looplet import BaseToolRegistry, LoopConfig, PermissionEngine, Trajectory
from looplet.evals import EvalResult
from looplet.evals.judge import Judge, rubric
from looplet.scorers import (
    all_of,
    contains,
    json_schema_valid,
    regex_match,
    tool_call_f1,
    trajectory_edit_distance,
    weighted_mean,
    within_budget,
)
from pytest_looplet.fixtures import LoopletAgent

MARATHON = "How many miles is a marathon (42.195 km)?"

#: What the converter's ``done`` call must carry: an answer with a number and a unit.
DONE_ARGS = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "minLength": 3}},
    "additionalProperties": False,
}


@pytest.fixture
def looplet_tools() -> BaseToolRegistry:
    return converter.build_tools()


@pytest.fixture
def looplet_permissions() -> PermissionEngine:
    return PermissionEngine().allow("*")  # pure functions: nothing to guard


@pytest.fixture
def looplet_config() -> LoopConfig:
    return converter.build_config()


def _answer(traj: Trajectory) -> str | None:
    steps = traj.calls("done")
    return steps[-1].tool_call.args.get("answer") if steps else None


def eval_marathon_scored(looplet_agent: LoopletAgent) -> EvalResult:
    traj = looplet_agent.run(MARATHON)
    # args="subset": the arguments named must match, others (the value) are not checked.
    calls = tool_call_f1(
        traj, [("convert", {"from_unit": "km", "to_unit": "mi"}), "done"], args="subset"
    )
    # The answer counts twice as much as the calls that led to it and the steps it took.
    return weighted_mean(
        [
            (regex_match(_answer(traj), r"^26\.22 mi$"), 2),
            (calls, 1),
            (within_budget(traj, max_steps=3), 1),
        ]
    )


@pytest.mark.looplet(threshold=1.0)
def eval_miles_plus_feet_in_order(looplet_agent: LoopletAgent) -> EvalResult:
    traj = looplet_agent.run("How many metres are 3 miles plus 500 feet?")
    done = traj.calls("done")
    # Every part must be perfect: the steps in this order, and a well-formed final call.
    return all_of(
        trajectory_edit_distance(traj, ["convert", "convert", "add", "done"], args="ignore"),
        json_schema_valid(done[-1].tool_call.args if done else None, DONE_ARGS),
        contains(_answer(traj), " m"),
    )


def eval_marathon_judged(looplet_agent: LoopletAgent, looplet_judge: Judge) -> EvalResult:
    traj = looplet_agent.run(MARATHON)
    answer = _answer(traj) or ""
    # The judge's call is in this eval's cassette too, so it replays offline like the agent.
    verdict = looplet_judge(rubric("correctness", reference="26.22 mi"), answer)
    return all_of(verdict, contains(answer, "mi"))
