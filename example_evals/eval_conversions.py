"""A dataset-driven eval: the converter agent on each case of ``conversions.yaml``.

``@pytest.mark.looplet_dataset`` makes one item per case (``eval_converts[marathon-in-miles]``),
each with its own cassette and report rows; ``case`` is a :class:`looplet.Case`.
"""

from __future__ import annotations

import re

import pytest

from example_evals.agents import converter
from looplet import BaseToolRegistry, LoopConfig, PermissionEngine, Trajectory, assert_trajectory
from looplet.datasets import Case
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


@pytest.mark.looplet_dataset("conversions.yaml")
def eval_converts(looplet_agent: LoopletAgent, case: Case) -> EvalResult:
    value, from_unit, to_unit = (case.inputs[k] for k in ("value", "from_unit", "to_unit"))
    traj = looplet_agent.run(f"Convert {value} {from_unit} to {to_unit}.")
    if case.expected_trajectory is not None:
        assert_trajectory(traj, case.expected_trajectory, order="subset", args="subset")
    answer = _answer(traj)
    if case.expected is None:  # a unit the tools do not know: the agent must say so
        invented, named = answer is not None, from_unit in (traj.final_text or "")
        said = f"answered {answer}" if invented else "gave no number"
        return EvalResult(
            score=(0.0 if invented else 0.5) + (0.5 if named else 0.0),
            explanation=f"{said} and {'named' if named else 'did not name'} {from_unit!r}",
        )
    error = abs(answer - case.expected) if answer is not None else float("inf")
    return EvalResult(
        score=1.0 if error < 0.01 else 0.0,
        metrics={"abs_error": min(error, 1e9)},
        explanation=f"answered {answer}, expected {case.expected}",
    )


def _answer(traj: Trajectory) -> float | None:
    """The number the agent finished with (its ``done`` answer), if any."""
    steps = traj.calls("done")
    text = steps[-1].tool_call.args.get("answer", "") if steps else ""
    number = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(number.group()) if number else None
