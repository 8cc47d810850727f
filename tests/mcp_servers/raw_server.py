"""A misbehaving MCP server on the standard library alone, for tests/test_mcp.py.

Start-up options (argv):
  --banner          print non-JSON lines to stdout before anything else
  --version V       answer initialize with protocol version V
  --mute            read requests but never answer any (initialize times out)
  --stderr-flood N  write N KiB to stderr before answering initialize
  --child           start a child process that sleeps (and shares the stdout pipe)
  --linger          keep running for a minute after stdin closes
  --deaf            once the tools are listed, stop reading stdin (and never answer again)

Tools: ``echo`` (answers, after a garbage line on stdout), ``hang`` (never answers),
``stray`` (a response with an unknown id, then the real one), ``misdirected`` (only a response
with a wrong id), ``ask_client`` (sends the client a notification and two requests, ``ping``
and ``sampling/createMessage``, and returns their answers), ``image`` (non-text content),
``where`` (its working directory and $LOOPLET_MCP_TEST) and ``ping_flood`` (sends the client
far more ``ping`` requests than the pipe back holds, never reading the answers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

ARGS = sys.argv[1:]
TOOLS = [
    {
        "name": name,
        "description": f"The {name} tool.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
    for name in (
        "echo",
        "hang",
        "stray",
        "misdirected",
        "ask_client",
        "image",
        "where",
        "ping_flood",
    )
]


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def garbage(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def text_result(request_id: object, text: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": {"content": [{"type": "text", "text": text}]},
    }


def read_message() -> dict[str, Any] | None:
    line = sys.stdin.readline()
    return None if not line else json.loads(line)


def call_tool(request_id: object, name: str, arguments: dict[str, Any]) -> None:
    if name == "echo":
        garbage("DEBUG: echo called")
        send(text_result(request_id, str(arguments.get("text", ""))))
    elif name == "stray":
        send(text_result(9999, "an answer nobody asked for"))
        send(text_result(request_id, "the real answer"))
    elif name == "misdirected":
        send(text_result(f"not-{request_id}", "addressed to someone else"))
    elif name == "ask_client":
        send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}})
        send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
        send({"jsonrpc": "2.0", "id": "srv-2", "method": "sampling/createMessage", "params": {}})
        answers = {}
        while len(answers) < 2:
            message = read_message()
            if message is None:
                return
            answers[message["id"]] = {k: v for k, v in message.items() if k != "id"}
        send(text_result(request_id, json.dumps(answers, sort_keys=True)))
    elif name == "image":
        content = [{"type": "image", "data": "aGk=", "mimeType": "image/png"}]
        send({"jsonrpc": "2.0", "id": request_id, "result": {"content": content}})
    elif name == "where":
        where = {"cwd": os.getcwd(), "env": os.environ.get("LOOPLET_MCP_TEST")}
        send(text_result(request_id, json.dumps(where)))
    elif name == "ping_flood":  # ~1 MiB of answers to 20,000 pings fill our stdin
        for n in range(20_000):
            send({"jsonrpc": "2.0", "id": f"flood-{n}", "method": "ping"})
        time.sleep(300)
    # "hang": never answer


def main() -> None:
    if "--banner" in ARGS:
        garbage("Starting raw server v1.0 ...")
        garbage("{not json either")
    if "--stderr-flood" in ARGS:
        kib = int(ARGS[ARGS.index("--stderr-flood") + 1])
        for n in range(kib):
            sys.stderr.write(f"log line {n:05d} " + "x" * 1008 + "\n")
        sys.stderr.write("last stderr line\n")
        sys.stderr.flush()
    if "--child" in ARGS:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    version = ARGS[ARGS.index("--version") + 1] if "--version" in ARGS else "2025-06-18"
    while (message := read_message()) is not None:
        if "--mute" in ARGS or "id" not in message:
            continue
        method, request_id = message.get("method"), message["id"]
        if method == "initialize":
            result = {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw", "version": "1.0"},
            }
            send({"jsonrpc": "2.0", "id": request_id, "result": result})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
            if "--deaf" in ARGS:  # a request larger than the pipe buffer now blocks its writer
                sys.stderr.write("deaf: no longer reading stdin\n")
                sys.stderr.flush()
                time.sleep(300)
        elif method == "tools/call":
            params = message["params"]
            call_tool(request_id, params["name"], params.get("arguments") or {})
        else:
            error = {"code": -32601, "message": f"no method {method}"}
            send({"jsonrpc": "2.0", "id": request_id, "error": error})
    if "--linger" in ARGS:
        time.sleep(60)


if __name__ == "__main__":
    main()
