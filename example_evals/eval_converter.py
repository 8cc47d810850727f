"""Evals of the unit-conversion agent: right answers, reached through its tools."""

from __future__ import annotations

import re

import pytest

from example_evals.agents import converter
from looplet import BaseToolRegistry, LoopConfig, PermissionEngine, StopReason, assert_trajectory
from looplet.evals import EvalResult
from pytest_looplet.fixtures import LoopletAgent


@pytest.fixture
def looplet_tools() -> BaseToolRegistry:
    return converter.build_tools()


@pytest.fixture
def looplet_permissions() -> PermissionEngine:
    return PermissionEngine().allow("*")  # pure functions: nothing to guard


@pytest.fixture
def looplet_config() -> LoopConfig:
    return converter.build_config()


def _answer(traj: object) -> float | None:
    steps = traj.calls("done")  # type: ignore[attr-defined]
    text = steps[-1].tool_call.args.get("answer", "") if steps else ""
    number = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(number.group()) if number else None


def eval_adds_miles_and_feet(looplet_agent: LoopletAgent) -> EvalResult:
    traj = looplet_agent.run("How many metres are 3 miles plus 500 feet?")
    expected = 3 * 1609.344 + 500 * 0.3048
    answer = _answer(traj)
    error = abs(answer - expected) if answer is not None else float("inf")
    return EvalResult(
        score=1.0 if error < 0.01 else 0.0,
        metrics={"abs_error": min(error, 1e9), "steps": len(traj.steps)},
        explanation=f"answered {answer}, expected {expected:.2f}",
    )


def eval_converts_before_adding(looplet_agent: LoopletAgent) -> None:
    traj = looplet_agent.run("How many metres are 3 miles plus 500 feet?")
    assert traj.called_before("convert", "add")
    assert traj.count("convert") == 2
    assert traj.called("convert", from_unit="mi", to_unit="m")


def eval_marathon_in_miles(looplet_agent: LoopletAgent) -> dict[str, float]:
    traj = looplet_agent.run("How many miles is a marathon (42.195 km)?")
    assert_trajectory(
        traj,
        [("convert", {"from_unit": "km", "to_unit": "mi"}), "done"],
        order="subset",
        args="subset",
        stop_reason="done",
    )
    answer = _answer(traj) or 0.0
    return {"score": 1.0 if abs(answer - 26.22) < 0.01 else 0.0, "miles": answer}


@pytest.mark.looplet(threshold=1.0)
def eval_reports_an_unknown_unit(looplet_agent: LoopletAgent) -> float:
    traj = looplet_agent.run("How many metres is a furlong?")
    failed = traj.failed()
    # The tool refused the unit; the agent must say so rather than invent a number.
    told = traj.stop_reason is StopReason.FINAL_TEXT and "furlong" in traj.final_text
    return 1.0 if failed and told and traj.not_called("add") else 0.0
