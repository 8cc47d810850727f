"""Shared fixtures: the README's greet/done registry and the loop drivers to run tests over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from looplet import BaseToolRegistry, ToolSpec, Trajectory, async_composable_loop, composable_loop
from looplet.examples.hello_world import build_tools
from looplet.types import Step


def make_tools(**extra: ToolSpec) -> BaseToolRegistry:
    """The README example's tools (greet, done) plus any extra ones."""
    tools = build_tools()  # the hello_world example's: the same tools the README shows
    for spec in extra.values():
        tools.register(spec)
    return tools


@pytest.fixture
def tools() -> BaseToolRegistry:
    """A fresh greet/done registry."""
    return make_tools()


RunLoop = Callable[..., tuple[list[Step], Trajectory]]


def run_sync(**kwargs: Any) -> tuple[list[Step], Trajectory]:
    """Run composable_loop to the end; return the steps and the trajectory."""
    loop = composable_loop(**kwargs)
    steps = list(loop)
    return steps, loop.trajectory


def run_async(**kwargs: Any) -> tuple[list[Step], Trajectory]:
    """Run async_composable_loop to the end; return the steps and the trajectory."""

    async def go() -> tuple[list[Step], Trajectory]:
        loop = async_composable_loop(**kwargs)
        steps = [step async for step in loop]
        return steps, loop.trajectory

    return asyncio.run(go())


@pytest.fixture(params=["sync", "async"])
def run_loop(request: pytest.FixtureRequest) -> RunLoop:
    """Run a loop to the end with the sync driver, then again with the async one."""
    return run_sync if request.param == "sync" else run_async
