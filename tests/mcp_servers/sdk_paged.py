"""An MCP server on the official SDK's low-level ``Server`` that lists its tools two per page.

``tools/list`` pages through ``tool_0`` ... ``tool_4`` with an opaque cursor; calling
``tool_<n>`` answers ``"tool <n> called with <arguments as JSON>"``.
"""

from __future__ import annotations

import json

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

PAGE_SIZE = 2
TOOLS = [
    types.Tool(
        name=f"tool_{n}",
        description=f"Tool number {n}.",
        input_schema={
            "type": "object",
            "properties": {"x": {"type": "integer", "description": "any number"}},
            "required": ["x"],
        },
    )
    for n in range(5)
]


async def list_tools(
    ctx: object, params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    start = int((params.cursor if params else None) or "0")
    end = start + PAGE_SIZE
    return types.ListToolsResult(
        tools=TOOLS[start:end], next_cursor=str(end) if end < len(TOOLS) else None
    )


async def call_tool(ctx: object, params: types.CallToolRequestParams) -> types.CallToolResult:
    number = params.name.removeprefix("tool_")
    text = f"tool {number} called with {json.dumps(params.arguments, sort_keys=True)}"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


server = Server("looplet-test-paged", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
