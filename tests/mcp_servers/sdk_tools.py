"""A well-behaved MCP server built with the official SDK (``mcp``), for tests/test_mcp.py.

Tools: ``add``, ``echo``, ``forecast`` (structured output), ``fail`` (an MCP error result),
``shout`` (two text parts) and ``crash`` (the process dies mid-call, exit code 3).
"""

from __future__ import annotations

import os
import sys
from typing import TypedDict

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("looplet-test-tools", log_level="WARNING")


class Forecast(TypedDict):
    city: str
    celsius: int


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str, times: int = 1) -> str:
    """Repeat a text."""
    return " ".join([text] * times)


@server.tool()
def forecast(city: str) -> Forecast:
    """Tomorrow's weather in a city."""
    return {"city": city, "celsius": 21}


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the given reason."""
    raise ToolError(f"refused: {reason}")


@server.tool()
def crash() -> str:
    """Kill the server process in the middle of the call."""
    sys.stderr.write("fatal: simulated crash in the crash tool\n")
    sys.stderr.flush()
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
